"""Inference on discrete graphical models.

Exact: :class:`VariableElimination` (any query, MAP, log p(e), all marginals at once) and
:class:`JunctionTree` (calibrated once per evidence pattern; all marginals and clique joints);
:class:`PosteriorMarginals` picks the cheaper of the two for all single-variable posteriors.
Both run on :func:`probforge.ops.contract` and accept batched, soft and partially observed
evidence. Approximate: :func:`loopy_belief_propagation` (sum / max product, damping, Bethe log Z,
convergence flag), :func:`mean_field` (CAVI with a monitored ELBO); the textbook's chain
sum-product (11.73-11.80) is :func:`chain_belief_propagation`.
"""

from pgm.inference._common import DEFAULT_MEMORY_BUDGET, MAPResult
from pgm.inference.all_marginals import PosteriorMarginals
from pgm.inference.elimination import VariableElimination
from pgm.inference.evidence import Evidence, resolve_evidence
from pgm.inference.junction_tree import CalibratedTree, JunctionTree
from pgm.inference.loopy_bp import (
    ChainBPResult,
    LoopyBeliefPropagation,
    LoopyBPResult,
    chain_belief_propagation,
    loopy_belief_propagation,
)
from pgm.inference.meanfield import MeanField, MeanFieldResult, mean_field
from pgm.inference.ordering import HEURISTICS, elimination_order

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "HEURISTICS",
    "CalibratedTree",
    "ChainBPResult",
    "Evidence",
    "JunctionTree",
    "LoopyBPResult",
    "LoopyBeliefPropagation",
    "MAPResult",
    "MeanField",
    "MeanFieldResult",
    "PosteriorMarginals",
    "VariableElimination",
    "chain_belief_propagation",
    "elimination_order",
    "loopy_belief_propagation",
    "mean_field",
    "resolve_evidence",
]
