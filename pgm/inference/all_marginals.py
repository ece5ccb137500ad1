"""Every unobserved variable's posterior, by whichever exact method is cheaper for the model.

A junction tree answers all single-variable queries in two passes, which wins while its cliques
are small (alarm: one calibration beats 37 separate queries; with the compiled CPU kernel, up to
millions of clique entries). On a Bayesian network whose triangulation is larger still (mildew,
barley), separate variable-elimination queries win instead: each contracts only the ancestral
set of its variable and the evidence (barren nodes pruned), which is far smaller than the tree.
On CPU those queries run as one compiled program (:mod:`pgm.inference._query_forest`), which
also beats a tree that fits when it needs fewer entries (water without evidence).
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

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from pgm.inference._common import (
    DiscreteModel,
    check_evidence_variables,
    check_model,
    check_order,
)
from pgm.inference._prob_queries import prob_query
from pgm.inference._query_forest import QueryForest
from pgm.inference.elimination import VariableElimination
from pgm.inference.evidence import resolve_evidence
from pgm.inference.junction_tree import (
    DENSE_CLIQUE_ENTRIES,
    NATIVE_TREE_ENTRIES,
    JunctionTree,
)
from pgm.inference.ordering import BEST, OrderSpec
from probforge.errors import ValidationError
from probforge.ops.native import enabled as native_enabled

__all__ = ["FOREST_TRIAL_ENTRIES", "PosteriorMarginals"]

_METHODS = ("auto", "junction_tree", "per_variable")

#: "auto" on a Bayesian network weighs the compiled per-variable queries against a compiled
#: junction tree of more than this many clique entries (below it the tree takes under 3 ms,
#: and planning the queries costs more than it could save: andes 0.07 s against 1-3 s).
FOREST_TRIAL_ENTRIES = 2**19

#: The rough cost of one evidence row on 2 CPU cores of the compiled tree's calibration per
#: clique entry (nanoseconds; without evidence: water and mildew 3.7, barley 7.6; with 5
#: evidence variables: water 7.2, barley 4.8, andes 6.8), weighed against
#: :meth:`QueryForest.estimated_ns` only to choose between two exact methods.
TREE_NS_PER_ENTRY = 5.0


class PosteriorMarginals:
    """All single-variable posteriors for one model and one evidence pattern.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence_vars, soft_evidence_vars : str or sequence of str
        The variables that will carry hard (observed in every row) and soft evidence; one
        string is one variable, and no variable may be in both.
    method : {"auto", "junction_tree", "per_variable"}
        "junction_tree": one calibrated tree. "per_variable": one variable-elimination query
        per unobserved variable (on a Bayesian network each contracts only the ancestral set of
        its variable and the evidence); on CPU with numba and no soft evidence all of them run
        as one compiled program (:mod:`pgm.inference._query_forest`). "auto": the tree unless
        the model is a Bayesian network whose tree is large: more than
        :data:`~pgm.inference.junction_tree.NATIVE_TREE_ENTRIES` clique entries in all when
        the tree runs the compiled CPU kernel (or more than :data:`FOREST_TRIAL_ENTRIES` and
        the queries' estimated time is lower: :data:`TREE_NS_PER_ENTRY` and the constants
        after it), else a clique larger than
        :data:`~pgm.inference.junction_tree.DENSE_CLIQUE_ENTRIES`.
    order : elimination order spec (see :mod:`pgm.inference.ordering`). The default, "best",
        takes the cheapest of the heuristics' orders (for the tree, and per query).

    Calling the object with the evidence returns ``{variable: Tensor batch_shape + (card,)}``
    for every unobserved variable; both methods give the same numbers (to rounding).
    """

    def __init__(self, model: DiscreteModel, evidence_vars: Sequence[str] = (),
                 soft_evidence_vars: Sequence[str] = (), *, method: str = "auto",
                 order: OrderSpec = BEST) -> None:
        check_model(model, "PosteriorMarginals")
        if method not in _METHODS:
            raise ValidationError("PosteriorMarginals", f"method must be one of {_METHODS}",
                                  found=repr(method))
        evidence_vars, soft_evidence_vars = check_evidence_variables(
            model, evidence_vars, soft_evidence_vars, "PosteriorMarginals")
        order = check_order(order, "PosteriorMarginals", model)
        self.model = model
        self.evidence_vars = tuple(evidence_vars)
        self.soft_evidence_vars = tuple(soft_evidence_vars)
        self._tree: JunctionTree | None = None
        self._ve: VariableElimination | None = None
        self._forest: QueryForest | None = None
        self._hidden = [v for v in model.variables if v not in set(self.evidence_vars)]
        factors = model.factors()
        compiled = not self.soft_evidence_vars and native_enabled(
            *(f.log_values for f in factors), autograd=True) and not any(
            f.log_values.requires_grad for f in factors)
        if method != "per_variable":
            self._tree = JunctionTree(model, evidence_vars=evidence_vars,
                                      soft_evidence_vars=soft_evidence_vars, order=order)
            entries = self._tree.cost.total_entries
            if method == "auto" and isinstance(getattr(model, "parents", None), dict):
                if (entries > NATIVE_TREE_ENTRIES if self._tree.native
                        else self._tree.cost.largest_table > DENSE_CLIQUE_ENTRIES):
                    self._tree = None
                elif compiled and self._tree.native and entries > FOREST_TRIAL_ENTRIES:
                    forest = QueryForest(model, self.evidence_vars, self._hidden, order)
                    if forest.estimated_ns() < TREE_NS_PER_ENTRY * entries:
                        self._tree, self._forest = None, forest
        if self._tree is None:
            self._ve = VariableElimination(model, order=order)
            if compiled and self._forest is None:
                self._forest = QueryForest(model, self.evidence_vars, self._hidden, order)
        self.method = "junction_tree" if self._tree is not None else "per_variable"

    def __call__(self, evidence: Any = None, soft_evidence: Any = None) -> dict[str, Tensor]:
        """Posteriors given evidence on exactly the declared variables.

        Every declared hard-evidence variable must be observed in every row (and no other);
        N = 0 rows give tensors with a leading dimension 0.

        Raises
        ------
        ValidationError
            Evidence on other variables than declared, or a declared one unobserved in a row.
        """
        if self._tree is not None:
            return self._tree.calibrate(evidence, soft_evidence).marginals()
        assert self._ve is not None
        # (no evidence, None or {}, has nothing to resolve: 6 us of a 0.5 ms call on mildew;
        # anything else is resolved once here and checked against the declared pattern, as
        # the junction tree does: every declared variable observed in every row, no other)
        empty = evidence is None or (isinstance(evidence, Mapping) and not evidence)
        hard = {} if empty else resolve_evidence(self.model.states, evidence, None).hard
        if set(hard) != set(self.evidence_vars) or any(
                bool((t < 0).any()) for t in hard.values()):
            raise ValidationError(
                "PosteriorMarginals",
                f"was built for hard evidence on {sorted(self.evidence_vars)}, observed in "
                "every row", found=sorted(hard), fix="build one for this evidence pattern")
        if self._forest is not None and soft_evidence is None and native_enabled():
            out = self._forest.run(hard)
            if out is not None:  # else zero-probability evidence or underflow: torch tells
                if not self._forest.left and list(out) == self._hidden:
                    return out
                left = set(self._forest.left)
                out.update((v, self._query(v, evidence, None)) for v in self._hidden
                           if v in left)
                return {v: out[v] for v in self._hidden}
        return {v: self._query(v, evidence, soft_evidence) for v in self._hidden}

    def _query(self, v: str, evidence: Any, soft_evidence: Any) -> Tensor:
        """One variable's posterior: in probability space when that cannot underflow, else
        (and with soft evidence) by the log-space contraction."""
        assert self._ve is not None
        if soft_evidence is None:
            p = prob_query(self._ve, v, evidence)
            if p is not None:
                return p
        probs: Tensor = self._ve.query([v], evidence, soft_evidence).probs()
        return probs
