"""Variable elimination (textbook 11.3.1) on the semiring contraction core.

Any query: a joint over several variables, conditionals given hard / soft / batched evidence,
the probability of the evidence (log Z), every single-variable marginal at once (the gradient of
log Z with respect to unit "probe" factors, one forward and one backward pass), and MAP / MPE by
max-product with traceback. The elimination order is pluggable (see :mod:`.ordering`) and cached
per evidence pattern; the size of the largest table is checked against a memory budget before
anything is allocated.

On a Bayesian network, sum-product queries first drop *barren* nodes: a CPD whose child is
neither queried, observed, nor an ancestor of either sums to one over its child and leaves the
answer unchanged, so only the ancestral set of the query and evidence variables is contracted
(as pgmpy does). MPE (``map_query()`` over every variable) maximises instead of summing and
always uses the whole network.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference import VariableElimination
>>> asia = bundled_network("asia")
>>> ve = VariableElimination(asia)
>>> round(float(ve.query(["lung"], evidence={"smoke": "yes", "dysp": "yes"}).probs()[0]), 6)
0.148334
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pgm.factor import Factor
from pgm.graph import undirected_from_scopes
from pgm.inference._common import (
    DEFAULT_MEMORY_BUDGET,
    DiscreteModel,
    MAPResult,
    check_budget,
    check_memory_budget,
    check_model,
    check_order,
    check_query,
    raise_if_zero,
)
from pgm.inference.evidence import Evidence, apply_evidence, resolve_evidence
from pgm.inference.ordering import OrderSpec, elimination_order, order_to_path
from probforge.errors import ValidationError
from probforge.ops import ContractionCost, contract, contract_argmax, contraction_cost

__all__ = ["VariableElimination"]


class VariableElimination:
    """Exact inference by variable elimination.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
        Anything with ``variables``, ``states``, ``cards`` and ``factors()``.
    order : str, sequence or callable
        Elimination order heuristic (``"min_fill"``, ``"min_neighbours"``, ``"min_weight"``,
        ``"weighted_min_fill"``), an explicit order, or a callable; see :mod:`.ordering`.
    memory_budget : int
        Largest table (bytes, all evidence rows together) a query may form; an int >= 1.

    Notes
    -----
    Everywhere a list of variables is taken, one string is one variable: ``query("lung")`` is
    ``query(["lung"])``, and ``query("RW")`` asks for a variable named ``RW``. A query variable
    may not be observed, nor named twice. Evidence with N = 0 rows gives results with a leading
    dimension 0.
    """

    def __init__(
        self,
        model: DiscreteModel,
        order: OrderSpec = "min_fill",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        check_model(model, "VariableElimination")
        self.model = model
        self.order = check_order(order, "VariableElimination", model)
        self.memory_budget = check_memory_budget(memory_budget, "VariableElimination")
        self._factors = model.factors()
        self._dtype = self._factors[0].log_values.dtype
        self._device = self._factors[0].log_values.device
        self._paths: dict[Any, list[tuple[int, ...]]] = {}
        parents = getattr(model, "parents", None)
        # Child of each CPD factor (its last scope variable) on a Bayesian network, else None.
        self._parents: dict[str, tuple[str, ...]] | None = (
            dict(parents) if isinstance(parents, dict) else None)

    # internals --------------------------------------------------------------------------------
    def _evidence(self, evidence: Any, soft_evidence: Any) -> Evidence:
        return resolve_evidence(self.model.states, evidence, soft_evidence,
                                dtype=self._dtype, device=self._device)

    def _relevant(self, ev: Evidence, targets: Sequence[str]) -> list[Factor]:
        """The factors a sum-product query on ``targets`` needs: on a Bayesian network the CPDs
        of the ancestral set of the targets and the observed variables; otherwise all."""
        if self._parents is None:
            return self._factors
        keep: set[str] = set()
        stack = [*targets, *ev.hard, *ev.soft]
        while stack:
            v = stack.pop()
            if v not in keep:
                keep.add(v)
                stack.extend(self._parents[v])
        if not keep or len(keep) == len(self._factors):  # nothing asked: contract it all
            return self._factors
        return [f for f in self._factors if f.variables[-1] in keep]

    def _plan(
        self, ev: Evidence, output: Sequence[str], extra: Sequence[tuple[str, ...]] = (),
        *, prune: bool = True,
    ) -> tuple[list[Tensor], list[tuple[str, ...]], list[tuple[int, ...]]]:
        targets = [*output, *(v for scope in extra for v in scope)]
        factors = self._relevant(ev, targets) if prune else self._factors
        tables, scopes = apply_evidence(factors, ev)
        scopes = scopes + list(extra)
        key = (ev.pattern, tuple(output), tuple(extra), len(tables), prune,
               None if isinstance(self.order, str) else id(self.order))
        path = self._paths.get(key)
        if path is None:
            adj = undirected_from_scopes(scopes)
            order = elimination_order(adj, self.model.cards, self.order, keep=output)
            path = order_to_path(scopes, order)
            cost = contraction_cost(scopes, self.model.cards, output, path)
            check_budget(cost, self._dtype, ev.batch_shape, self.memory_budget,
                         f"query on model {self.model.name!r}")
            self._paths[key] = path
        return tables, scopes, path

    # queries ----------------------------------------------------------------------------------
    def cost(self, variables: str | Sequence[str] = (), evidence: Any = None,
             soft_evidence: Any = None) -> ContractionCost:
        """Size of the tables a query would form, without running it."""
        ev = self._evidence(evidence, soft_evidence)
        variables = check_query(self.model, variables, ev)
        _, scopes = apply_evidence(self._relevant(ev, variables), ev)
        order = elimination_order(undirected_from_scopes(scopes), self.model.cards, self.order,
                                  keep=variables)
        return contraction_cost(scopes, self.model.cards, tuple(variables),
                                order_to_path(scopes, order))

    def log_evidence(self, evidence: Any = None, soft_evidence: Any = None) -> Tensor:
        """``log p(e)`` (for a Markov network: ``log Z`` of the model reduced by the evidence).

        Returns
        -------
        Tensor, shape () or (N,) for N evidence rows. ``-inf`` for impossible evidence.
        """
        ev = self._evidence(evidence, soft_evidence)
        tables, scopes, path = self._plan(ev, ())
        return contract(tables, scopes, (), optimize=path, validate=False)

    def query(
        self,
        variables: str | Sequence[str],
        evidence: Any = None,
        soft_evidence: Any = None,
        *,
        joint: bool = True,
    ) -> Any:
        """Posterior over ``variables`` given the evidence.

        Parameters
        ----------
        variables : str or sequence of str
            Query variables (not observed, each named once); one string is one variable. An
            empty list gives the factor over no variables (probability 1).
        evidence, soft_evidence
            See :func:`pgm.inference.evidence.resolve_evidence`.
        joint : bool
            True: one normalised :class:`Factor` over all query variables (batch dim N for N
            evidence rows). False: a dict of single-variable posterior Factors.

        Raises
        ------
        ZeroProbabilityEvidence
            If some evidence row has probability zero.
        UnknownVariableError, ValidationError
            An unknown, repeated or observed query variable.
        """
        if not isinstance(joint, bool):
            raise ValidationError("query", "joint must be a bool", found=repr(joint))
        ev = self._evidence(evidence, soft_evidence)
        variables = check_query(self.model, variables, ev)
        if not joint:
            margs = self._marginals(ev, variables)
            return {v: Factor([v], torch.log(m), {v: self.model.states[v]})
                    for v, m in margs.items()}
        tables, scopes, path = self._plan(ev, variables)
        table = contract(tables, scopes, variables, optimize=path, validate=False)
        dims = tuple(range(len(ev.batch_shape), table.dim()))
        log_z = torch.logsumexp(table, dims, keepdim=True) if dims else table
        raise_if_zero(log_z, ev, f"query {variables} on model {self.model.name!r}")
        return Factor(variables, table - log_z, {v: self.model.states[v] for v in variables})

    def marginals(
        self, evidence: Any = None, soft_evidence: Any = None,
        variables: str | Sequence[str] | None = None,
    ) -> dict[str, Tensor]:
        """Every single-variable posterior at once (the gradient of log Z).

        Parameters
        ----------
        evidence, soft_evidence
            See :func:`pgm.inference.evidence.resolve_evidence`.
        variables : str or sequence of str, optional
            The variables wanted (one string is one variable); default every unobserved one.

        Returns
        -------
        dict str -> Tensor of shape batch_shape + (card,)
            For every unobserved variable (or those in ``variables``).
        """
        ev = self._evidence(evidence, soft_evidence)
        if variables is None:
            variables = [v for v in self.model.variables if v not in ev.hard]
        variables = check_query(self.model, variables, ev)
        return self._marginals(ev, variables)

    def _marginals(self, ev: Evidence, variables: list[str]) -> dict[str, Tensor]:
        if not variables:
            return {}
        probe_scopes = tuple((v,) for v in variables)
        tables, scopes, path = self._plan(ev, (), probe_scopes)
        cards = self.model.cards
        with torch.enable_grad():
            probes = [torch.zeros(ev.batch_shape + (cards[v],), dtype=self._dtype,
                                  device=self._device, requires_grad=True) for v in variables]
            log_z = contract([t.detach() for t in tables] + probes, scopes, (), optimize=path,
                             validate=False)
            raise_if_zero(log_z.detach(), ev, f"marginals on model {self.model.name!r}")
            grads = torch.autograd.grad(log_z.sum(), probes)
        return dict(zip(variables, grads, strict=True))

    def map_query(
        self,
        variables: Sequence[str] | None = None,
        evidence: Any = None,
        soft_evidence: Any = None,
    ) -> MAPResult:
        """Most probable assignment by max-product with traceback.

        Parameters
        ----------
        variables : str or sequence of str, optional
            None (default): the MPE over every unobserved variable. A subset (one string is
            one variable): marginal MAP,
            ``argmax_q sum_rest p(q, rest, e)``, computed exactly from the joint table over
            ``variables`` (checked against the memory budget).

        Returns
        -------
        MAPResult
        """
        ev = self._evidence(evidence, soft_evidence)
        if variables is not None:  # checked before any work
            variables = check_query(self.model, variables, ev)
        log_e = self.log_evidence(evidence, soft_evidence)
        raise_if_zero(log_e, ev, f"MAP query on model {self.model.name!r}")
        if variables is not None:
            tables, scopes, path = self._plan(ev, variables)
            table = contract(tables, scopes, variables, optimize=path, validate=False)
            best = contract_argmax([table], [tuple(variables)], validate=False)
            found = {str(v): a for v, a in best.assignment.items()}
            return MAPResult(found, best.value, log_e, self.model.states)
        tables, scopes, path = self._plan(ev, (), prune=False)
        best = contract_argmax(tables, scopes, (), optimize=path, validate=False)
        hidden = [v for v in self.model.variables if v not in ev.hard]
        indices = {v: best.assignment[v] for v in hidden}
        return MAPResult(indices, best.value, log_e, self.model.states)
