"""Every unobserved variable's posterior, by whichever exact method is cheaper for the model.

A junction tree answers all single-variable queries in two passes, which wins while its cliques
are small (alarm: one calibration beats 37 separate queries; with the compiled CPU kernel, up to
millions of clique entries). On a Bayesian network whose triangulation is larger still (mildew,
barley), separate variable-elimination queries win instead: each contracts only the ancestral
set of its variable and the evidence (barren nodes pruned), which is far smaller than the tree.
:class:`PosteriorMarginals` makes that choice once per model and evidence pattern and reuses the
chosen engine.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference.all_marginals import PosteriorMarginals
>>> asia = bundled_network("asia")
>>> pm = PosteriorMarginals(asia, evidence_vars=["smoke", "dysp"])
>>> pm.method
'junction_tree'
>>> round(float(pm({"smoke": "yes", "dysp": "yes"})["lung"][0]), 6)
0.148334
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from pgm.inference._common import DiscreteModel
from pgm.inference.elimination import VariableElimination
from pgm.inference.junction_tree import (
    DENSE_CLIQUE_ENTRIES,
    NATIVE_TREE_ENTRIES,
    JunctionTree,
)
from pgm.inference.ordering import OrderSpec
from probforge.errors import ValidationError

__all__ = ["PosteriorMarginals"]

_METHODS = ("auto", "junction_tree", "per_variable")


class PosteriorMarginals:
    """All single-variable posteriors for one model and one evidence pattern.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence_vars, soft_evidence_vars : sequence of str
        The variables that will carry hard (observed in every row) and soft evidence.
    method : {"auto", "junction_tree", "per_variable"}
        "junction_tree": one calibrated tree. "per_variable": one variable-elimination query
        per unobserved variable (on a Bayesian network each contracts only the ancestral set of
        its variable and the evidence). "auto": the tree unless the model is a Bayesian network
        whose tree is large: more than
        :data:`~pgm.inference.junction_tree.NATIVE_TREE_ENTRIES` clique entries in all when
        the tree runs the compiled CPU kernel, else a clique larger than
        :data:`~pgm.inference.junction_tree.DENSE_CLIQUE_ENTRIES`.
    order : elimination order spec (see :mod:`pgm.inference.ordering`).

    Calling the object with the evidence returns ``{variable: Tensor batch_shape + (card,)}``
    for every unobserved variable; both methods give the same numbers (to rounding).
    """

    def __init__(self, model: DiscreteModel, evidence_vars: Sequence[str] = (),
                 soft_evidence_vars: Sequence[str] = (), *, method: str = "auto",
                 order: OrderSpec = "min_fill") -> None:
        if method not in _METHODS:
            raise ValidationError("PosteriorMarginals", f"method must be one of {_METHODS}",
                                  found=repr(method))
        self.model = model
        self.evidence_vars = tuple(evidence_vars)
        self.soft_evidence_vars = tuple(soft_evidence_vars)
        self._tree: JunctionTree | None = None
        self._ve: VariableElimination | None = None
        if method != "per_variable":
            self._tree = JunctionTree(model, evidence_vars=evidence_vars,
                                      soft_evidence_vars=soft_evidence_vars, order=order)
            if method == "auto" and isinstance(getattr(model, "parents", None), dict) and (
                    self._tree.cost.total_entries > NATIVE_TREE_ENTRIES if self._tree.native
                    else self._tree.cost.largest_table > DENSE_CLIQUE_ENTRIES):
                self._tree = None
        if self._tree is None:
            self._ve = VariableElimination(model, order=order)
        self.method = "junction_tree" if self._tree is not None else "per_variable"
        self._hidden = [v for v in model.variables if v not in set(self.evidence_vars)]

    def __call__(self, evidence: Any = None, soft_evidence: Any = None) -> dict[str, Tensor]:
        """Posteriors given evidence on exactly the declared variables."""
        if self._tree is not None:
            return self._tree.calibrate(evidence, soft_evidence).marginals()
        assert self._ve is not None
        given = set(evidence) if evidence is not None and hasattr(evidence, "keys") else set()
        if given != set(self.evidence_vars):
            raise ValidationError(
                "PosteriorMarginals",
                f"was built for hard evidence on {sorted(self.evidence_vars)}",
                found=sorted(given), fix="build one for this evidence pattern")
        return {v: self._ve.query([v], evidence, soft_evidence).probs() for v in self._hidden}
