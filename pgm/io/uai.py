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

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn, cast, get_args

import numpy as np
import numpy.typing as npt

from probforge.errors import (
    NonFiniteError,
    ParseError,
    ShapeError,
    ValidationError,
)

from ._atomic import atomic_write_text
from ._source import END_OF_FILE, display_name, parse_error, read_source

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

#: Largest function table (float64 entries) the parser allocates unless told otherwise (1 GiB).
DEFAULT_MAX_TABLE_ENTRIES = 2**27

UAIKind = Literal["BAYES", "MARKOV"]
UAITask = Literal["PR", "MAR", "MAP", "MPE"]
#: Evidence: one dict per sample, variable index -> observed value index.
UAIEvidence = list[dict[int, int]]

FloatArray = npt.NDArray[np.float64]

_TOKEN = re.compile(r"\S+")
_INT = re.compile(r"\+?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NOT_NUMERIC = re.compile(r"[^\s0-9eE+\-.]")


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UAIModel:
    """A model in UAI form: variables are indices ``0 .. n-1``, functions are dense tables.

    Parameters
    ----------
    kind : {"BAYES", "MARKOV"}
        ``BAYES``: every function is a CPT whose child is the *last* scope variable, and every
        variable is the child of exactly one function. ``MARKOV``: non-negative potentials.
    cards : tuple of int
        Cardinality of each variable (>= 1).
    scopes : tuple of tuple of int
        Variables of each function, in table-axis order (no repeats).
    tables : tuple of numpy.ndarray
        Table ``i`` has shape ``tuple(cards[v] for v in scopes[i])``; stored as read-only float64.
        The UAI file lists its entries in C order (last scope variable fastest).

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import UAIModel
    >>> m = UAIModel("BAYES", (2, 2), ((0,), (0, 1)),
    ...              (np.array([0.3, 0.7]), np.array([[0.9, 0.1], [0.2, 0.8]])))
    >>> m.tables[1][1]  # p(x1 | x0 = 1)
    array([0.2, 0.8])
    """

    kind: UAIKind
    cards: tuple[int, ...]
    scopes: tuple[tuple[int, ...], ...]
    tables: tuple[FloatArray, ...]

    def __post_init__(self) -> None:
        if self.kind not in get_args(UAIKind):
            raise ValidationError("UAI model", "kind must be 'BAYES' or 'MARKOV'", found=self.kind)
        cards = tuple(int(c) for c in self.cards)
        if any(c < 1 for c in cards):
            raise ShapeError("UAI model", "every cardinality must be >= 1", found=cards)
        scopes = tuple(tuple(int(v) for v in s) for s in self.scopes)
        if len(self.tables) != len(scopes):
            raise ShapeError(
                "UAI model",
                f"one table per scope is needed ({len(scopes)} scopes)",
                found=f"{len(self.tables)} tables",
            )
        tables: list[FloatArray] = []
        for i, (scope, table) in enumerate(zip(scopes, self.tables, strict=True)):
            if any(not 0 <= v < len(cards) for v in scope) or len(set(scope)) != len(scope):
                raise ValidationError(
                    f"scope of function {i}",
                    f"indices must be distinct and in [0, {len(cards)})",
                    found=scope,
                )
            arr = np.array(table, dtype=np.float64, copy=True)
            shape = tuple(cards[v] for v in scope)
            if arr.shape != shape:
                raise ShapeError(
                    f"table of function {i}",
                    "shape must be the cardinalities of its scope, in scope order",
                    found=f"{arr.shape}, expected {shape}",
                )
            if not np.isfinite(arr).all():
                raise NonFiniteError(f"table of function {i}", "values must be finite")
            if (arr < 0).any():
                raise ValidationError(
                    f"table of function {i}", "values must be >= 0", found=float(arr.min())
                )
            arr.setflags(write=False)
            tables.append(arr)
        if self.kind == "BAYES":
            children = [s[-1] if s else None for s in scopes]
            if None in children:
                raise ValidationError("BAYES model", "a CPT has an empty scope")
            if sorted(cast(list[int], children)) != list(range(len(cards))):
                raise ValidationError(
                    "BAYES model",
                    "every variable must be the child (last scope variable) of exactly one CPT",
                    found=f"children {children}",
                )
        object.__setattr__(self, "cards", cards)
        object.__setattr__(self, "scopes", scopes)
        object.__setattr__(self, "tables", tuple(tables))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UAIModel):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.cards == other.cards
            and self.scopes == other.scopes
            and all(np.array_equal(a, b) for a, b in zip(self.tables, other.tables, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"UAIModel(kind={self.kind!r}, variables={len(self.cards)}, "
            f"functions={len(self.scopes)})"
        )


@dataclass(frozen=True, eq=False)
class UAIResult:
    """One solution from a UAI result file.

    Parameters
    ----------
    task : {"PR", "MAR", "MAP", "MPE"}
        ``MPE`` is the older name of ``MAP`` (both mean the most probable full assignment).
    value : float or tuple
        ``PR``: :math:`\\log_{10}` of the partition function / probability of evidence (a float;
        ``-inf`` for probability zero). ``MAR``: one 1-D float64 array of marginal probabilities
        per variable. ``MAP`` / ``MPE``: one value index per variable.

    Examples
    --------
    >>> import math
    >>> from pgm.io import UAIResult
    >>> r = UAIResult("PR", math.log10(0.25))
    >>> round(r.log10_probability, 4)
    -0.6021
    """

    task: UAITask
    value: float | tuple[FloatArray, ...] | tuple[int, ...]

    def __post_init__(self) -> None:
        task = self.task
        if task not in get_args(UAITask):
            raise ValidationError("UAI result", "task must be PR, MAR, MAP or MPE", found=task)
        value: float | tuple[FloatArray, ...] | tuple[int, ...]
        if task == "PR":
            if isinstance(self.value, tuple | list | np.ndarray) and np.ndim(self.value) != 0:
                raise ValidationError("PR result", "the value is one number (log10 Pr)")
            value = float(cast(float, self.value))
            if math.isnan(value) or value == math.inf:
                raise NonFiniteError(
                    "PR result", "log10 of a probability must be finite or -inf", found=value
                )
        elif task == "MAR":
            arrays: list[FloatArray] = []
            for i, m in enumerate(cast(Sequence[npt.ArrayLike], self.value)):
                arr = np.array(m, dtype=np.float64, copy=True)
                if arr.ndim != 1 or arr.size < 1:
                    raise ShapeError(f"marginal of variable {i}", "must be a non-empty 1-D array")
                if not np.isfinite(arr).all() or (arr < 0).any():
                    raise ValidationError(
                        f"marginal of variable {i}", "probabilities must be finite and >= 0"
                    )
                arr.setflags(write=False)
                arrays.append(arr)
            value = tuple(arrays)
        else:
            ints: list[int] = []
            for x in cast(Sequence[int], self.value):
                if isinstance(x, float | np.floating) and not float(x).is_integer():
                    raise ValidationError(f"{task} result", "values must be integers", found=x)
                if int(x) < 0:
                    raise ValidationError(f"{task} result", "values must be >= 0", found=x)
                ints.append(int(x))
            value = tuple(ints)
        object.__setattr__(self, "value", value)

    @property
    def log10_probability(self) -> float:
        """``PR``: the base-10 log of the partition function / probability of evidence."""
        self._require("PR")
        return cast(float, self.value)

    @property
    def marginals(self) -> tuple[FloatArray, ...]:
        """``MAR``: one array of marginal probabilities per variable."""
        self._require("MAR")
        return cast(tuple[FloatArray, ...], self.value)

    @property
    def assignment(self) -> tuple[int, ...]:
        """``MAP`` / ``MPE``: the value index of every variable."""
        self._require("MAP", "MPE")
        return cast(tuple[int, ...], self.value)

    def _require(self, *tasks: str) -> None:
        if self.task not in tasks:
            raise ValidationError(
                f"UAI {self.task} result", f"has no {'/'.join(tasks)} value", found=self.task
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UAIResult):
            return NotImplemented
        if self.task != other.task:
            return False
        if self.task == "MAR":
            a = cast(tuple[FloatArray, ...], self.value)
            b = cast(tuple[FloatArray, ...], other.value)
            return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        return self.value == other.value

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------------
# Tokens with positions (used for preambles, evidence and results -- the small parts)
# --------------------------------------------------------------------------------------------------


class _Tokens:
    """Whitespace-separated tokens read one at a time; errors carry line and column."""

    def __init__(self, text: str, filename: str, start: int = 0) -> None:
        self.check_lines = True
        self.text = text
        self.filename = filename
        self._it: Iterator[re.Match[str]] = _TOKEN.finditer(text, start)
        self._peeked: re.Match[str] | None = None
        self.last_end = start  # end offset of the last token taken

    def peek(self) -> re.Match[str] | None:
        if self._peeked is None:
            self._peeked = next(self._it, None)
        return self._peeked

    def take(self, expected: str) -> tuple[str, int]:
        m = self.peek()
        if m is None:
            raise self.error_at(len(self.text), END_OF_FILE, expected)
        self._peeked = None
        self.last_end = m.end()
        return m.group(), m.start()

    def integer(
        self,
        expected: str,
        *,
        low: int = 0,
        high: int | None = None,
        line: str | None = None,
    ) -> tuple[int, int]:
        """Take a whole number in ``[low, high)``; return it and its offset.

        With ``line`` (a description of the current line), the number must be on the line of the
        previous token (checked only for files with line structure).
        """
        if line is not None and self.check_lines:
            m = self.peek()
            if m is not None and "\n" in self.text[self.last_end : m.start()]:
                raise self.error_at(m.start(), m.group(), f"{expected} on {line}")
        tok, at = self.take(expected)
        if not _INT.fullmatch(tok):
            raise self.error_at(at, tok, expected)
        value = int(tok)
        if value < low or (high is not None and value >= high):
            raise self.error_at(at, tok, expected)
        return value, at

    def error_at(
        self, offset: int, token: str, expected: str, *, fix: str | None = None
    ) -> ParseError:
        return parse_error(self.filename, self.text, offset, token, expected, fix=fix)

    def end_of_line(self, what: str, fix: str | None = None) -> None:
        """Require that the next token (if any) is not on the line of the last one taken."""
        m = self.peek()
        if self.check_lines and m is not None and "\n" not in self.text[self.last_end : m.start()]:
            raise self.error_at(m.start(), m.group(), f"the end of the line after {what}", fix=fix)


# --------------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------------


def parse_uai(
    text: str, filename: str = "<string>", *, max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES
) -> UAIModel:
    """Parse the text of a UAI model file.

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    max_table_entries : int, default 2**27
        Refuse any function table with more entries (before allocating it).

    Returns
    -------
    UAIModel
        Tables reshaped in C order: ``tables[i].shape == tuple(cards[v] for v in scopes[i])``.

    Raises
    ------
    probforge.errors.ParseError
        Unknown network type; a count that disagrees with what follows (cardinalities on the
        cardinality line, scope sizes, table sizes not equal to the product of the scope's
        cardinalities, too few values); an index out of range; a repeated scope variable; a
        negative, NaN or infinite value; anything after the last table. In a ``BAYES`` file,
        also a variable that is not the child (last scope variable) of exactly one CPT.

    Examples
    --------
    >>> from pgm.io import parse_uai
    >>> m = parse_uai('''BAYES
    ... 2
    ... 2 3
    ... 2
    ... 1 0
    ... 2 0 1
    ... 2  0.4 0.6
    ... 6  0.2 0.3 0.5
    ...    0.1 0.1 0.8''')
    >>> m.tables[1][0]  # p(x1 | x0 = 0): the child is the last scope variable
    array([0.2, 0.3, 0.5])
    """
    toks = _Tokens(text, filename)
    kind_tok, kind_at = toks.take("'BAYES' or 'MARKOV'")
    if kind_tok not in ("BAYES", "MARKOV"):
        raise toks.error_at(
            kind_at,
            kind_tok,
            "'BAYES' or 'MARKOV'",
            fix="the first line of a UAI model file names the network type",
        )
    kind = cast(UAIKind, kind_tok)
    # A file that puts its type on a line of its own follows the line layout of the preamble, and
    # a line holding more numbers than its count announces is reported right there. A file
    # without line structure is read as a plain stream of numbers.
    nxt = toks.peek()
    toks.check_lines = nxt is None or "\n" in text[toks.last_end : nxt.start()]
    n_vars, _ = toks.integer("the number of variables (a whole number >= 0)")
    toks.end_of_line("the number of variables")
    cards: list[int] = []
    for i in range(n_vars):
        card, _ = toks.integer(
            f"the cardinality of variable {i} (a whole number >= 1)",
            low=1,
            line=f"the cardinality line ({n_vars} variables declared)" if i else None,
        )
        cards.append(card)
    toks.end_of_line(
        f"{n_vars} cardinalities",
        fix="the cardinality line must hold exactly as many values as the variable count says",
    )
    n_funcs, _ = toks.integer("the number of functions (a whole number >= 0)")
    toks.end_of_line("the number of functions")
    scopes: list[tuple[int, ...]] = []
    children: dict[int, int] = {}
    for f in range(n_funcs):
        size, _ = toks.integer(
            f"the scope size of function {f} (a whole number <= {n_vars})",
            low=1 if kind == "BAYES" else 0,
            high=n_vars + 1,
        )
        scope: list[int] = []
        for j in range(size):
            v, v_at = toks.integer(
                f"variable {j} of the scope of function {f} (an index in [0, {n_vars}))",
                high=n_vars,
                line=f"the scope line of function {f} (its size is {size})",
            )
            if v in scope:
                raise toks.error_at(
                    v_at, str(v), f"a variable not already in the scope of function {f}"
                )
            scope.append(v)
        toks.end_of_line(
            f"the {size} variables of the scope of function {f}",
            fix="each scope line holds its size and exactly that many variable indices",
        )
        if kind == "BAYES":
            child = scope[-1]
            if child in children:
                raise toks.error_at(
                    v_at,
                    str(child),
                    f"a child variable (last of the scope) without a CPT yet; variable {child} "
                    f"is already the child of function {children[child]}",
                )
            children[child] = f
        scopes.append(tuple(scope))
    if kind == "BAYES" and len(children) != n_vars:
        missing = next(v for v in range(n_vars) if v not in children)
        m = toks.peek()
        at, tok = (m.start(), m.group()) if m is not None else (len(text), END_OF_FILE)
        raise toks.error_at(
            at,
            tok,
            f"a CPT for every variable: variable {missing} is not the last (child) variable of "
            "any scope",
        )

    # Function tables: the bulk of the file, read with str.split for speed. Positions are
    # recovered (by rescanning) only when an error is reported.
    nxt = toks.peek()
    data_start = len(text) if nxt is None else nxt.start()
    words = text[data_start:].split()
    bad = _NOT_NUMERIC.search(text, data_start)
    bad_word = len(words)  # index of the first word holding a non-numeric character
    if bad is not None:
        word_start = bad.start()
        while word_start > data_start and not text[word_start - 1].isspace():
            word_start -= 1
        bad_word = len(text[data_start:word_start].split())

    def word_offset(k: int) -> int:
        for i, m in enumerate(_TOKEN.finditer(text, data_start)):
            if i == k:
                return m.start()
        return len(text)  # pragma: no cover - callers pass valid indices

    tables: list[FloatArray] = []
    pos = 0
    for f, scope_t in enumerate(scopes):
        shape = tuple(cards[v] for v in scope_t)
        expected = math.prod(shape)
        what = (
            f"the number of entries of function {f}: {expected}, the product of the "
            f"cardinalities {list(shape)} of its scope {list(scope_t)}"
        )
        if pos >= len(words):
            raise toks.error_at(len(text), END_OF_FILE, what)
        tok = words[pos]
        if not _INT.fullmatch(tok) or int(tok) != expected:
            raise toks.error_at(word_offset(pos), tok, what)
        if expected > max_table_entries:
            raise toks.error_at(
                word_offset(pos),
                tok,
                f"a table of at most max_table_entries={max_table_entries} entries",
                fix="pass a larger max_table_entries if the memory is available",
            )
        pos += 1
        chunk = words[pos : pos + expected]
        if len(chunk) < expected:
            raise toks.error_at(
                len(text),
                END_OF_FILE,
                f"{expected} values for function {f}, not {len(chunk)}",
            )
        if pos <= bad_word < pos + expected:
            _raise_bad_value(toks, chunk, pos, word_offset, f)
        try:
            values = np.fromiter(map(float, chunk), dtype=np.float64, count=expected)
        except ValueError:
            _raise_bad_value(toks, chunk, pos, word_offset, f)
        if not (np.isfinite(values).all() and (values >= 0).all()):
            _raise_bad_value(toks, chunk, pos, word_offset, f)
        tables.append(values.reshape(shape))
        pos += expected
    if pos < len(words):
        raise toks.error_at(
            word_offset(pos),
            words[pos],
            f"the end of the file after the {n_funcs} function tables",
        )
    return UAIModel(kind, tuple(cards), tuple(scopes), tuple(tables))


def _raise_bad_value(
    toks: _Tokens, chunk: list[str], pos: int, offsets: Callable[[int], int], f: int
) -> NoReturn:
    for j, tok in enumerate(chunk):
        ok = bool(_NUMBER.fullmatch(tok))
        if ok:
            value = float(tok)
            ok = math.isfinite(value) and value >= 0
        if not ok:
            raise toks.error_at(
                offsets(pos + j),
                tok,
                f"entry {j} of function {f}: a finite, non-negative number",
            )
    raise AssertionError("no bad value found")  # pragma: no cover


def read_uai(
    path: str | os.PathLike[str], *, max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES
) -> UAIModel:
    """Read a UAI model file (plain or gzip-compressed).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.uai`` file.
    max_table_entries : int, default 2**27
        See :func:`parse_uai`.

    Returns
    -------
    UAIModel

    Raises
    ------
    probforge.errors.ParseError
        See :func:`parse_uai`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai"
    >>> _ = p.write_text("MARKOV\\n1\\n2\\n1\\n1 0\\n\\n2\\n 1.5 0.5\\n")
    >>> read_uai(p).tables[0]
    array([1.5, 0.5])
    """
    return parse_uai(read_source(path), display_name(path), max_table_entries=max_table_entries)


def write_uai_text(model: UAIModel) -> str:
    """Return ``model`` in UAI model format (values with ``repr``: no precision is lost).

    Parameters
    ----------
    model : UAIModel

    Returns
    -------
    str
        Text with ``parse_uai(text) == model``; each table is written one row (last axis) per line.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import UAIModel, write_uai_text
    >>> print(write_uai_text(UAIModel("MARKOV", (2,), ((0,),), (np.array([1.0, 3.0]),))))
    MARKOV
    1
    2
    1
    1 0
    <BLANKLINE>
    2
     1.0 3.0
    <BLANKLINE>
    """
    out = [
        model.kind,
        str(len(model.cards)),
        " ".join(map(str, model.cards)),
        str(len(model.scopes)),
    ]
    out.extend(" ".join(map(str, (len(s), *s))) for s in model.scopes)
    for table in model.tables:
        out.append("")
        out.append(str(table.size))
        rows = table.reshape(-1, table.shape[-1]) if table.ndim else table.reshape(1, 1)
        out.extend(" " + " ".join(map(repr, row)) for row in rows.tolist())
    return "\n".join(out) + "\n"


def write_uai(model: UAIModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to a UAI model file, atomically.

    Parameters
    ----------
    model : UAIModel
    path : str or os.PathLike
        Destination (its directory must exist).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from pgm.io import UAIModel, read_uai, write_uai
    >>> m = UAIModel("MARKOV", (2, 2), ((0, 1),), (np.array([[1.0, 2.0], [3.0, 4.0]]),))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai"
    >>> write_uai(m, p)
    >>> read_uai(p) == m
    True
    """
    atomic_write_text(path, write_uai_text(model))


# --------------------------------------------------------------------------------------------------
# Evidence files
# --------------------------------------------------------------------------------------------------


def _check_against_model(
    toks: _Tokens, model: UAIModel | None, var: int, var_at: int, value: int, value_at: int
) -> None:
    if model is None:
        return
    n = len(model.cards)
    if var >= n:
        raise toks.error_at(var_at, str(var), f"a variable index in [0, {n})")
    if value >= model.cards[var]:
        raise toks.error_at(
            value_at, str(value), f"a value of variable {var} in [0, {model.cards[var]})"
        )


def _evidence_sample(toks: _Tokens, model: UAIModel | None, label: str) -> dict[int, int]:
    count, _ = toks.integer(f"the number of observed variables{label}")
    sample: dict[int, int] = {}
    for _i in range(count):
        var, var_at = toks.integer(f"an observed variable index{label}")
        value, value_at = toks.integer(f"the observed value of variable {var}{label}")
        if var in sample:
            raise toks.error_at(var_at, str(var), f"a variable not observed already{label}")
        _check_against_model(toks, model, var, var_at, value, value_at)
        sample[var] = value
    return sample


def _expect_end(toks: _Tokens, what: str) -> None:
    m = toks.peek()
    if m is not None:
        raise toks.error_at(m.start(), m.group(), f"the end of the file after {what}")


def parse_uai_evidence(
    text: str, filename: str = "<string>", *, model: UAIModel | None = None
) -> UAIEvidence:
    """Parse an evidence file in either UAI layout.

    Layout detection: the file is read as **one sample** (``n v1 x1 ... vn xn``, UAI 2008 and
    2012+) when its first line holds exactly ``1 + 2 n`` numbers, ``n`` being the first number;
    otherwise as **several samples** (UAI 2010: ``N``, then ``N`` groups ``n v1 x1 ...``), and if
    that fails but the whole file holds ``1 + 2 n`` numbers, as one sample spread over lines.
    (So a file containing just ``0`` is one sample with no evidence, ``[{}]``.)

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    model : UAIModel, optional
        If given, indices and values are checked against its cardinalities.

    Returns
    -------
    list of dict of int to int
        One dict per sample: variable index -> observed value index.

    Raises
    ------
    probforge.errors.ParseError
        A token is not a whole number, a count disagrees with the data, a variable is observed
        twice in a sample, or (with ``model``) an index or value is out of range.

    Examples
    --------
    >>> from pgm.io import parse_uai_evidence
    >>> parse_uai_evidence("2 1 0 2 1")            # one sample, UAI 2014
    [{1: 0, 2: 1}]
    >>> parse_uai_evidence("2\\n1 0 1\\n2 0 0 1 1\\n")  # two samples, UAI 2010
    [{0: 1}, {0: 0, 1: 1}]
    """
    first = _TOKEN.search(text)
    if first is None:
        raise parse_error(
            filename, text, len(text), END_OF_FILE, "the number of observed variables"
        )
    line_end = text.find("\n", first.start())
    first_line = text[first.start() : len(text) if line_end < 0 else line_end].split()
    lead = first_line[0]
    n = int(lead) if _INT.fullmatch(lead) else -1

    def single() -> UAIEvidence:
        toks = _Tokens(text, filename)
        sample = _evidence_sample(toks, model, "")
        _expect_end(toks, "the evidence sample")
        return [sample]

    if n >= 0 and len(first_line) == 1 + 2 * n:
        return single()
    toks = _Tokens(text, filename)
    try:
        n_samples, _ = toks.integer("the number of evidence samples")
        samples = [_evidence_sample(toks, model, f" (sample {k})") for k in range(n_samples)]
        _expect_end(toks, f"{n_samples} evidence samples")
    except ParseError:
        if n >= 0 and len(text.split()) == 1 + 2 * n:
            return single()
        raise
    return samples


def read_uai_evidence(
    path: str | os.PathLike[str], *, model: UAIModel | None = None
) -> UAIEvidence:
    """Read a UAI evidence file (``.evid``); see :func:`parse_uai_evidence` for the layouts.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    model : UAIModel, optional
        Check indices and values against it.

    Returns
    -------
    list of dict of int to int

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_evidence
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> _ = p.write_text("1 0 1\\n")
    >>> read_uai_evidence(p)
    [{0: 1}]
    """
    return parse_uai_evidence(read_source(path), display_name(path), model=model)


def _normalise_evidence(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]], model: UAIModel | None
) -> UAIEvidence:
    samples = [evidence] if isinstance(evidence, Mapping) else list(evidence)
    out: UAIEvidence = []
    for k, sample in enumerate(samples):
        clean: dict[int, int] = {}
        for var, value in sample.items():
            v, x = int(var), int(value)
            if v != var or x != value or v < 0 or x < 0:
                raise ValidationError(
                    f"evidence sample {k}",
                    "indices and values must be whole numbers >= 0",
                    found=(var, value),
                )
            if model is not None and (v >= len(model.cards) or x >= model.cards[v]):
                raise ValidationError(
                    f"evidence sample {k}",
                    "variable or value out of the model's range",
                    found=(var, value),
                )
            clean[v] = x
        out.append(clean)
    return out


def write_uai_evidence_text(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]],
    *,
    layout: Literal["auto", "single", "multi"] = "auto",
    model: UAIModel | None = None,
) -> str:
    """Format evidence as a UAI evidence file.

    Parameters
    ----------
    evidence : mapping or sequence of mappings
        One sample (variable index -> value index) or several.
    layout : {"auto", "single", "multi"}, default "auto"
        ``"single"``: the one-line UAI 2008/2012+ layout (exactly one sample). ``"multi"``: the
        UAI 2010 layout with the sample count first. ``"auto"``: single for one sample, multi
        otherwise.
    model : UAIModel, optional
        Check indices and values against it.

    Returns
    -------
    str

    Raises
    ------
    probforge.errors.ValidationError
        Negative or non-integer entries, out-of-range values (with ``model``), ``"single"`` with
        other than one sample, or no sample at all (which no layout can express unambiguously).

    Examples
    --------
    >>> from pgm.io.uai import write_uai_evidence_text
    >>> write_uai_evidence_text({1: 0, 2: 1})
    '2 1 0 2 1\\n'
    >>> write_uai_evidence_text([{0: 1}, {}])
    '2\\n1 0 1\\n0\\n'
    """
    samples = _normalise_evidence(evidence, model)
    if not samples:
        raise ValidationError(
            "evidence", "there is no sample to write", fix="pass [{}] for 'no evidence'"
        )
    if layout not in ("auto", "single", "multi"):
        raise ValidationError("layout", "must be 'auto', 'single' or 'multi'", found=layout)
    if layout == "single" and len(samples) != 1:
        raise ValidationError(
            "evidence", "the single layout holds exactly one sample", found=len(samples)
        )
    lines = [" ".join(map(str, [len(s), *(x for kv in s.items() for x in kv)])) for s in samples]
    if layout == "multi" or (layout == "auto" and len(samples) > 1):
        lines.insert(0, str(len(samples)))
    return "\n".join(lines) + "\n"


def write_uai_evidence(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]],
    path: str | os.PathLike[str],
    *,
    layout: Literal["auto", "single", "multi"] = "auto",
    model: UAIModel | None = None,
) -> None:
    """Write a UAI evidence file atomically; see :func:`write_uai_evidence_text`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_evidence, write_uai_evidence
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> write_uai_evidence([{0: 1}, {1: 0}], p)
    >>> read_uai_evidence(p)
    [{0: 1}, {1: 0}]
    """
    atomic_write_text(path, write_uai_evidence_text(evidence, layout=layout, model=model))


# --------------------------------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------------------------------


def _solution(toks: _Tokens, task: UAITask, model: UAIModel | None) -> UAIResult:
    if task == "PR":
        tok, at = toks.take("log10 of the probability (a number)")
        ok = bool(_NUMBER.fullmatch(tok)) or tok.lower() in ("-inf", "-infinity")
        if not ok or (math.isinf(float(tok)) and not tok.startswith("-")):
            raise toks.error_at(
                at, tok, "log10 of the probability: a number, or -inf for probability zero"
            )
        return UAIResult("PR", float(tok))
    n_expected = None if model is None else len(model.cards)
    high = None if n_expected is None else n_expected + 1
    n, _ = toks.integer(
        "the number of variables" + ("" if n_expected is None else f" ({n_expected})"),
        low=0 if n_expected is None else n_expected,
        high=high,
    )
    if task == "MAR":
        marginals: list[FloatArray] = []
        for i in range(n):
            model_card = None if model is None else model.cards[i]
            card, _ = toks.integer(
                f"the cardinality of variable {i}"
                + ("" if model_card is None else f" ({model_card})"),
                low=1 if model_card is None else model_card,
                high=None if model_card is None else model_card + 1,
            )
            values: list[float] = []
            for j in range(card):
                tok, at = toks.take(f"marginal probability {j} of variable {i}")
                if not _NUMBER.fullmatch(tok) or not 0 <= float(tok) < math.inf:
                    raise toks.error_at(
                        at, tok, f"marginal probability {j} of variable {i}: a number >= 0"
                    )
                values.append(float(tok))
            marginals.append(np.array(values, dtype=np.float64))
        return UAIResult("MAR", tuple(marginals))
    assignment: list[int] = []
    for i in range(n):
        bound = None if model is None else model.cards[i]
        value, _ = toks.integer(
            f"the value of variable {i}" + ("" if bound is None else f" (in [0, {bound}))"),
            high=bound,
        )
        assignment.append(value)
    return UAIResult(task, tuple(assignment))


def parse_uai_results(
    text: str, filename: str = "<string>", *, model: UAIModel | None = None
) -> list[UAIResult]:
    """Parse a UAI result file into one solution per evidence sample.

    The last ``-BEGIN-`` section is the one read. Within it, a UAI 2014+ solution is tried first;
    if it does not account for every token, the UAI 2010 layout (the number of evidence samples,
    then one solution per sample) is used.

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    model : UAIModel, optional
        If given, variable counts, cardinalities and values are checked against it.

    Returns
    -------
    list of UAIResult

    Examples
    --------
    >>> from pgm.io.uai import parse_uai_results
    >>> [r.log10_probability for r in parse_uai_results("PR\\n2\\n-0.5\\n-1.25\\n")]
    [-0.5, -1.25]
    """
    toks = _Tokens(text, filename)
    task_tok, task_at = toks.take("the task: PR, MAR, MAP or MPE")
    if task_tok not in get_args(UAITask):
        raise toks.error_at(task_at, task_tok, "the task: PR, MAR, MAP or MPE")
    task = cast(UAITask, task_tok)
    start = toks.last_end
    for m in _TOKEN.finditer(text, start):
        if m.group() == "-BEGIN-":
            start = m.end()
    if _TOKEN.search(text, start) is None:
        raise parse_error(filename, text, len(text), END_OF_FILE, f"a {task} solution")

    def run(with_count: bool) -> list[UAIResult]:
        toks = _Tokens(text, filename, start)
        count = toks.integer("the number of evidence samples")[0] if with_count else 1
        results = [_solution(toks, task, model) for _ in range(count)]
        _expect_end(toks, f"the {task} solution" + ("s" if count != 1 else ""))
        return results

    try:
        return run(with_count=False)
    except ParseError as first_error:
        try:
            return run(with_count=True)
        except ParseError:
            raise first_error from None


def parse_uai_result(
    text: str, filename: str = "<string>", *, model: UAIModel | None = None
) -> UAIResult:
    """Parse a UAI result file holding one solution (the usual case since UAI 2012).

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    model : UAIModel, optional
        If given, check the solution against it.

    Returns
    -------
    UAIResult

    Raises
    ------
    probforge.errors.ParseError
        Malformed file, or a UAI 2010 file with solutions for several evidence samples (use
        :func:`parse_uai_results`).

    Examples
    --------
    >>> from pgm.io.uai import parse_uai_result
    >>> parse_uai_result("MAR\\n2 2 0.1 0.9 3 0.2 0.2 0.6\\n").marginals[1]
    array([0.2, 0.2, 0.6])
    >>> parse_uai_result("MPE\\n3 0 1 0\\n").assignment
    (0, 1, 0)
    """
    results = parse_uai_results(text, filename, model=model)
    if len(results) != 1:
        raise parse_error(
            filename,
            text,
            0,
            text.split(maxsplit=1)[0],
            f"a result file with one solution (this one has {len(results)}, one per evidence "
            "sample)",
            fix="use read_uai_results",
        )
    return results[0]


def read_uai_result(path: str | os.PathLike[str], *, model: UAIModel | None = None) -> UAIResult:
    """Read a UAI result file with one solution; see :func:`parse_uai_result`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_result
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.PR"
    >>> _ = p.write_text("PR\\n-0.2008\\n")
    >>> read_uai_result(p).log10_probability
    -0.2008
    """
    return parse_uai_result(read_source(path), display_name(path), model=model)


def read_uai_results(
    path: str | os.PathLike[str], *, model: UAIModel | None = None
) -> list[UAIResult]:
    """Read a UAI result file, one solution per evidence sample; see :func:`parse_uai_results`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_results
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.MPE"
    >>> _ = p.write_text("MPE\\n1\\n2 1 0\\n")   # UAI 2010 layout: one evidence sample
    >>> read_uai_results(p)[0].assignment
    (1, 0)
    """
    return parse_uai_results(read_source(path), display_name(path), model=model)


def format_uai_result(
    task: UAITask,
    value: float | Sequence[npt.ArrayLike] | Sequence[int] | UAIResult,
    *,
    model: UAIModel | None = None,
) -> str:
    """Format one solution as a UAI 2014+ result file.

    Parameters
    ----------
    task : {"PR", "MAR", "MAP", "MPE"}
        The task line.
    value : float, sequence or UAIResult
        ``PR``: **log10** of the probability (convert a natural log with ``ln_z / math.log(10)``).
        ``MAR``: one probability vector per variable. ``MAP`` / ``MPE``: one value per variable.
    model : UAIModel, optional
        Check the number of variables and the cardinalities against it.

    Returns
    -------
    str

    Examples
    --------
    >>> import math
    >>> from pgm.io.uai import format_uai_result
    >>> format_uai_result("PR", math.log10(0.5))
    'PR\\n-0.3010299956639812\\n'
    >>> format_uai_result("MAR", [[0.25, 0.75], [1.0, 0.0, 0.0]])
    'MAR\\n2 2 0.25 0.75 3 1.0 0.0 0.0\\n'
    """
    result = value if isinstance(value, UAIResult) else UAIResult(task, value)  # type: ignore[arg-type]
    if result.task != task:
        raise ValidationError("UAI result", f"task {task!r} given for a {result.task} result")
    if task == "PR":
        body = repr(result.log10_probability)
    elif task == "MAR":
        marginals = result.marginals
        if model is not None and tuple(m.size for m in marginals) != model.cards:
            raise ShapeError(
                "MAR result",
                "one marginal per model variable, of its cardinality",
                found=[m.size for m in marginals],
            )
        parts = [str(len(marginals))]
        for m in marginals:
            parts.append(str(m.size))
            parts.extend(map(repr, m.tolist()))
        body = " ".join(parts)
    else:
        assignment = result.assignment
        if model is not None and (
            len(assignment) != len(model.cards)
            or any(x >= c for x, c in zip(assignment, model.cards, strict=True))
        ):
            raise ValidationError(
                f"{task} result",
                "one value per model variable, within its cardinality",
                found=assignment,
            )
        body = " ".join(map(str, (len(assignment), *assignment)))
    return f"{task}\n{body}\n"


def write_uai_result(
    task: UAITask,
    value: float | Sequence[npt.ArrayLike] | Sequence[int] | UAIResult,
    path: str | os.PathLike[str],
    *,
    model: UAIModel | None = None,
) -> None:
    """Write one solution to a UAI result file, atomically; see :func:`format_uai_result`.

    Note that ``PR`` values are **base-10** logarithms, as the UAI competitions specify.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_result, write_uai_result
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.MAP"
    >>> write_uai_result("MAP", [1, 0, 2], p)
    >>> read_uai_result(p).assignment
    (1, 0, 2)
    """
    atomic_write_text(path, format_uai_result(task, value, model=model))
