"""Inference on discrete graphical models.

Exact: :class:`VariableElimination` (any query, MAP, log p(e), all marginals at once) and
:class:`JunctionTree` (calibrated once per evidence pattern; all marginals and clique joints).
Both run on :func:`probforge.ops.contract` and accept batched, soft and partially observed
evidence.
"""

from pgm.inference._common import DEFAULT_MEMORY_BUDGET, MAPResult
from pgm.inference.elimination import VariableElimination
from pgm.inference.evidence import Evidence, resolve_evidence
from pgm.inference.junction_tree import CalibratedTree, JunctionTree
from pgm.inference.ordering import HEURISTICS, elimination_order

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "HEURISTICS",
    "CalibratedTree",
    "Evidence",
    "JunctionTree",
    "MAPResult",
    "VariableElimination",
    "elimination_order",
    "resolve_evidence",
]
