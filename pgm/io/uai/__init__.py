"""The UAI inference-competition formats: model (``.uai``), evidence (``.evid``) and result files.

Model file (UAI 2008-2022, unchanged)::

    MARKOV            <- or BAYES
    3                 <- number of variables
    2 2 3             <- their cardinalities, on one line
    2                 <- number of functions (factors / CPTs)
    2 0 1             <- each function's scope, one per line: size, then variable indices
    2 1 2
                      <- then, per function in the same order: the number of entries, followed
    4                    by the entries (white space, line breaks included, is just a separator)
     0.1 0.9
     0.5 0.5
    6
     ...

**Value order.** Entries enumerate the scope's assignments with the *first* scope variable most
significant and the *last* one changing fastest -- a C-order (row-major) flattening. So
:attr:`UAIModel.tables` ``[i]`` is simply ``numpy.reshape(values, [cards[v] for v in scope])``;
in the example, table 1 is ``T[y, z]`` and its 6 values are ``T[0,0] T[0,1] T[0,2] T[1,0] ...``.
For ``BAYES`` files each function is a CPT whose *child is the last scope variable*, so each row
over the last axis is ``p(child | parents)``.

Evidence file: two layouts exist and both are read (see :func:`parse_uai_evidence`):

* single sample (UAI 2008, 2012, 2014, 2016, 2022): one line ``n v1 x1 ... vn xn``;
* several samples (UAI 2010, PIC 2011): ``N`` on the first line, then ``N`` samples each
  ``n v1 x1 ... vn xn``.

Result file (UAI 2014+): the task on the first line (``PR``, ``MAR``, ``MAP`` or its older name
``MPE``), then the solution: for **PR the base-10 logarithm** of the partition function or of the
probability of evidence (not the natural log: ``log10 Z = ln Z / ln 10``); for MAR ``n`` then,
per variable, its cardinality and its marginal probabilities; for MAP ``n`` and the value index
of every variable. Anytime solvers may append further solutions after ``-BEGIN-`` lines; the last
one counts. Result files of UAI 2010 put the number of evidence samples before the solutions;
they are read as well (:func:`read_uai_results`).

Sizes are checked before anything is allocated; every error is a
:class:`~probforge.errors.ParseError` with file, line, column, the token and what was expected.

Examples
--------
>>> import numpy as np
>>> from pgm.io.uai import parse_uai, write_uai_text
>>> m = parse_uai("MARKOV 2 2 3 1 2 0 1 6 1 2 3 4 5 6")
>>> m.tables[0]          # shape (card of var 0, card of var 1); last variable fastest
array([[1., 2., 3.],
       [4., 5., 6.]])
>>> parse_uai(write_uai_text(m)) == m
True
"""

from ._common import DEFAULT_MAX_TABLE_ENTRIES, UAIEvidence, UAIKind, UAITask
from .evidence import (
    parse_uai_evidence,
    read_uai_evidence,
    write_uai_evidence,
    write_uai_evidence_text,
)
from .model import UAIModel, parse_uai, read_uai, write_uai, write_uai_text
from .result import (
    UAIResult,
    format_uai_result,
    parse_uai_result,
    parse_uai_results,
    read_uai_result,
    read_uai_results,
    write_uai_result,
)

__all__ = [
    "DEFAULT_MAX_TABLE_ENTRIES",
    "UAIEvidence",
    "UAIKind",
    "UAIModel",
    "UAIResult",
    "UAITask",
    "format_uai_result",
    "parse_uai",
    "parse_uai_evidence",
    "parse_uai_result",
    "parse_uai_results",
    "read_uai",
    "read_uai_evidence",
    "read_uai_result",
    "read_uai_results",
    "write_uai",
    "write_uai_evidence",
    "write_uai_evidence_text",
    "write_uai_result",
    "write_uai_text",
]
