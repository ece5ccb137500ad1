"""Junction tree (clique tree) inference, Lauritzen & Spiegelhalter (1988).

Built once per model and evidence pattern: the interaction graph of the evidence-reduced factors
is triangulated along an elimination order, its maximal cliques joined by a maximum-weight
spanning tree on separator sizes, and every factor assigned to a clique that covers it.
:meth:`JunctionTree.calibrate` then runs two passes of Shafer-Shenoy messages (leaves to root,
root to leaves), batched over evidence rows, and returns a :class:`CalibratedTree` from which
every single-variable marginal, any clique-contained joint and log p(e) are read without further
message passing.

The sum-product pass is compiled at construction into one einsum per message over *scaled*
probability tables: each clique potential is divided by its maximum and each message by its sum,
and those scales are carried in log space, so nothing overflows or underflows and log p(e) stays
exact (the scaling of the forward algorithm, applied to a tree). Entries smaller than ~1e-308
times their clique's largest entry round to zero. The max-product pass (max-marginals) runs on
the log-space contraction core.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference import JunctionTree
>>> jt = JunctionTree(bundled_network("asia"), evidence_vars=["xray"])
>>> cal = jt.calibrate({"xray": ["yes", "no"]})
>>> cal.marginal("tub").shape
torch.Size([2, 2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pgm.graph import undirected_from_scopes
from pgm.inference._common import (
    DEFAULT_MEMORY_BUDGET,
    DiscreteModel,
    check_budget,
    raise_if_zero,
)
from pgm.inference.evidence import Evidence, apply_evidence, reduce_tables, resolve_evidence
from pgm.inference.ordering import OrderSpec, elimination_order, triangulate
from probforge.errors import UnknownVariableError, ValidationError
from probforge.ops import ContractionCost, contract

__all__ = ["CalibratedTree", "JunctionTree"]


class JunctionTree:
    """A clique tree for a model and a fixed set of evidence variables.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence_vars : sequence of str
        Variables that will carry hard evidence (fully observed in every row).
    soft_evidence_vars : sequence of str
        Variables that will carry soft evidence.
    order : elimination order spec used for triangulation.
    memory_budget : int
        Bytes allowed for the largest clique table (per evidence row times rows, checked at
        calibration).
    """

    def __init__(
        self,
        model: DiscreteModel,
        evidence_vars: Sequence[str] = (),
        soft_evidence_vars: Sequence[str] = (),
        order: OrderSpec = "min_fill",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        for v in (*evidence_vars, *soft_evidence_vars):
            if v not in model.states:
                raise UnknownVariableError(f"model {model.name!r}", f"has no variable {v!r}")
        self.model = model
        self.memory_budget = memory_budget
        self.evidence_vars = frozenset(evidence_vars)
        self.soft_evidence_vars = frozenset(soft_evidence_vars)
        self._factors = model.factors()
        cards = model.cards
        # Scopes after slicing the evidence variables away; soft evidence adds unary scopes.
        # A fixed order of the soft-evidence tables: calibrate() appends them in this order.
        self._soft_order = tuple(v for v in model.variables if v in self.soft_evidence_vars)
        probe = Evidence({v: torch.zeros((), dtype=torch.long) for v in self.evidence_vars},
                         {v: torch.zeros(cards[v]) for v in self._soft_order}, ())
        _, scopes = apply_evidence(self._factors, probe)
        self._scopes = scopes
        hidden = [v for v in model.variables if v not in self.evidence_vars]
        adj = undirected_from_scopes(scopes, hidden)
        order_ = elimination_order(adj, cards, order)
        cliques = triangulate(adj, order_)
        self.cliques: list[tuple[str, ...]] = [
            tuple(v for v in hidden if v in c) for c in cliques] or [()]
        self.edges = self._spanning_tree()
        # assign each reduced factor to the smallest clique covering it
        self.assignment: list[int] = []
        for s in scopes:
            fits = [i for i, c in enumerate(self.cliques) if set(s) <= set(c)]
            self.assignment.append(min(fits, key=lambda i: len(self.cliques[i])))
        self._schedule = self._message_schedule()
        self.home = {v: min((i for i, c in enumerate(self.cliques) if v in c),
                            key=lambda i: len(self.cliques[i])) for v in hidden}
        self._prob_tables: list[Tensor] | None = None
        self.cost = ContractionCost(
            max(self.clique_size(i) for i in range(len(self.cliques))),
            sum(self.clique_size(i) for i in range(len(self.cliques))),
        )

    def clique_size(self, i: int) -> int:
        """Number of entries of clique ``i``'s table (per evidence row)."""
        n = 1
        for v in self.cliques[i]:
            n *= self.model.cards[v]
        return n

    def _spanning_tree(self) -> list[tuple[int, int]]:
        """Maximum-weight spanning forest on separator sizes (Kruskal), joined into a tree."""
        n = len(self.cliques)
        cand = sorted(
            ((len(set(self.cliques[i]) & set(self.cliques[j])), i, j)
             for i in range(n) for j in range(i + 1, n)),
            key=lambda t: (-t[0], t[1], t[2]),
        )
        parent = list(range(n))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        edges = []
        for _, i, j in cand:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[ri] = rj
                edges.append((i, j))
        return edges

    def _message_schedule(self) -> list[tuple[int, int]]:
        """Directed messages: leaves to root 0 (post-order), then root to leaves."""
        nbrs: dict[int, list[int]] = {i: [] for i in range(len(self.cliques))}
        for i, j in self.edges:
            nbrs[i].append(j)
            nbrs[j].append(i)
        self._nbrs = nbrs
        up: list[tuple[int, int]] = []
        down: list[tuple[int, int]] = []
        stack, seen = [(0, -1)], {0}
        order: list[tuple[int, int]] = []
        while stack:
            node, par = stack.pop()
            order.append((node, par))
            for c in nbrs[node]:
                if c not in seen:
                    seen.add(c)
                    stack.append((c, node))
        for node, par in reversed(order):
            if par >= 0:
                up.append((node, par))
        for node, par in order:
            if par >= 0:
                down.append((par, node))
        return up + down

    def _compile(self) -> None:
        """Precompute how every table is broadcast into every clique it multiplies into."""
        cards = self.model.cards
        self._pot_plan: list[tuple[list[int], tuple[int, ...]]] = []
        for c, clique in enumerate(self.cliques):
            members = [k for k, a in enumerate(self.assignment) if a == c]
            self._pot_plan.append((members, tuple(cards[v] for v in clique)))
        self._align: dict[tuple[tuple[str, ...], tuple[str, ...]], _Aligner] = {}
        for k, c in enumerate(self.assignment):
            self._aligner(self._scopes[k], self.cliques[c])
        for i, j in self._schedule:
            self._aligner(self._sep(i, j), self.cliques[j])

    def _aligner(self, scope: tuple[str, ...], target: tuple[str, ...]) -> _Aligner:
        key = (scope, target)
        if key not in self._align:
            self._align[key] = _Aligner(scope, target, self.model.cards)
        return self._align[key]

    def calibrate(
        self,
        evidence: Any = None,
        soft_evidence: Any = None,
        semiring: str = "log",
    ) -> CalibratedTree:
        """Run the two message passes.

        Parameters
        ----------
        evidence : mapping or DataFrame
            Hard evidence on exactly ``evidence_vars`` (every row fully observed).
        soft_evidence : mapping
            Likelihoods for exactly ``soft_evidence_vars``.
        semiring : {"log", "max"}
            "log" for marginals and log p(e); "max" for max-marginals.

        Raises
        ------
        ZeroProbabilityEvidence, ValidationError, MemoryBudgetExceeded
        """
        if semiring not in ("log", "max"):
            raise ValidationError("calibrate", "semiring must be 'log' or 'max'",
                                  found=repr(semiring))
        fs = self._factors[0].log_values
        ev = resolve_evidence(self.model.states, evidence, soft_evidence, dtype=fs.dtype,
                              device=fs.device)
        if frozenset(ev.hard) != self.evidence_vars or any(
                bool((t < 0).any()) for t in ev.hard.values()):
            raise ValidationError(
                "junction tree", "was built for hard evidence on exactly "
                f"{sorted(self.evidence_vars)}, observed in every row",
                found=sorted(ev.hard), fix="build a JunctionTree for this evidence pattern",
            )
        if frozenset(ev.soft) != self.soft_evidence_vars:
            raise ValidationError("junction tree", "was built for soft evidence on "
                                  f"{sorted(self.soft_evidence_vars)}", found=sorted(ev.soft))
        ev = ev._replace(soft={v: ev.soft[v] for v in self._soft_order})
        check_budget(self.cost, fs.dtype, ev.batch_shape, self.memory_budget,
                     f"junction tree of model {self.model.name!r}")
        rows = None
        if ev.batch_shape and ev.hard and not ev.soft:
            # Evidence rows over discrete variables repeat: calibrate each distinct row once.
            names = sorted(ev.hard)
            table = torch.stack([ev.hard[v] for v in names], dim=1)
            uniq, inverse = torch.unique(table, dim=0, return_inverse=True)
            if uniq.shape[0] < table.shape[0]:
                ev = Evidence({v: uniq[:, k] for k, v in enumerate(names)}, {},
                              (uniq.shape[0],))
                rows = inverse
        if semiring == "max":
            return self._calibrate_max(ev, rows)
        if self._prob_tables is None:
            self._prob_tables = [f.log_values.exp() for f in self._factors]
            self._compile()
        tables, _ = reduce_tables(self._prob_tables, [f.variables for f in self._factors],
                                  self.model.cards, ev, log=False)
        nb = len(ev.batch_shape)
        pots: list[Tensor] = []
        pot_scale: list[Tensor] = []
        for c, (members, shape) in enumerate(self._pot_plan):
            p = torch.ones(shape, dtype=fs.dtype, device=fs.device)
            for k in members:
                p = p * self._align[(self._scopes[k], self.cliques[c])](tables[k])
            p = p.expand(ev.batch_shape + shape)
            m = p.reshape(ev.batch_shape + (-1,)).amax(-1)
            pots.append(p / _safe(m).reshape(m.shape + (1,) * len(shape)))
            pot_scale.append(torch.log(m))
        msgs: dict[tuple[int, int], Tensor] = {}
        scale: dict[tuple[int, int], Tensor] = {}
        for i, j in self._schedule:
            ins = [k for k in self._nbrs[i] if k != j]
            t = pots[i]
            for k in ins:
                t = t * self._align[(self._sep(k, i), self.cliques[i])](msgs[(k, i)])
            sep = self._sep(i, j)
            drop = tuple(nb + d for d, v in enumerate(self.cliques[i]) if v not in sep)
            m = t.sum(drop) if drop else t
            s = m.reshape(ev.batch_shape + (-1,)).sum(-1)
            msgs[(i, j)] = m / _safe(s).reshape(s.shape + (1,) * len(sep))
            scale[(i, j)] = torch.log(s) + pot_scale[i] + sum(
                (scale[(k, i)] for k in ins), torch.zeros_like(s))
        return CalibratedTree(self, pots, pot_scale, msgs, scale, ev, rows=rows)

    def _calibrate_max(self, ev: Evidence, rows: Tensor | None) -> CalibratedTree:
        tables, scopes = apply_evidence(self._factors, ev)
        fs = self._factors[0].log_values
        pots = []
        for c, clique in enumerate(self.cliques):
            members = [k for k, a in enumerate(self.assignment) if a == c]
            unit = torch.zeros(tuple(self.model.cards[v] for v in clique), dtype=fs.dtype,
                               device=fs.device)
            pots.append(contract(
                [unit] + [tables[k] for k in members], [clique] + [scopes[k] for k in members],
                clique, semiring="max", validate=False,
            ).expand(ev.batch_shape + tuple(unit.shape)))
        msgs: dict[tuple[int, int], Tensor] = {}
        for i, j in self._schedule:
            ins = [k for k in self._nbrs[i] if k != j]
            msgs[(i, j)] = contract(
                [pots[i]] + [msgs[(k, i)] for k in ins],
                [self.cliques[i]] + [self._sep(k, i) for k in ins],
                self._sep(i, j), semiring="max", validate=False,
            )
        zero = torch.zeros(ev.batch_shape, dtype=fs.dtype, device=fs.device)
        return CalibratedTree(self, pots, [zero] * len(pots), msgs,
                              dict.fromkeys(msgs, zero), ev, semiring="max", rows=rows)

    def _sep(self, i: int, j: int) -> tuple[str, ...]:
        return tuple(v for v in self.cliques[i] if v in set(self.cliques[j]))


class _Aligner:
    """Views a table over ``scope`` (with leading batch dims) as broadcastable to ``target``."""

    __slots__ = ("perm", "view")

    def __init__(self, scope: tuple[str, ...], target: tuple[str, ...],
                 cards: dict[str, int]) -> None:
        ordered = [v for v in target if v in scope]
        self.perm = [scope.index(v) for v in ordered]
        self.view = tuple(cards[v] if v in scope else 1 for v in target)

    def __call__(self, t: Tensor) -> Tensor:
        nb = t.dim() - len(self.perm)
        if self.perm != sorted(self.perm):
            t = t.permute(list(range(nb)) + [nb + p for p in self.perm])
        return t.reshape(t.shape[:nb] + self.view)


def _safe(x: Tensor) -> Tensor:
    """Divisor that is 1 where ``x`` is 0 (zero-probability rows are reported, not divided)."""
    return torch.where(x > 0, x, torch.ones_like(x))


class CalibratedTree:
    """The result of :meth:`JunctionTree.calibrate`: beliefs on demand.

    In the log semiring clique potentials and messages are scaled probability tables with their
    log-scales; in the max semiring they are log-tables (scales zero).
    """

    def __init__(self, tree: JunctionTree, pots: list[Tensor], pot_scale: list[Tensor],
                 messages: dict[tuple[int, int], Tensor], scales: dict[tuple[int, int], Tensor],
                 ev: Evidence, semiring: str = "log", rows: Tensor | None = None) -> None:
        self.tree = tree
        self._rows = rows  # distinct evidence row of each requested row, when deduplicated
        self._pots = pots
        self._pot_scale = pot_scale
        self._messages = messages
        self._scales = scales
        self._ev = ev  # distinct rows when deduplicated
        self.semiring = semiring
        self._beliefs: dict[int, Tensor] = {}
        nb = len(ev.batch_shape)
        root_table = self._table(0, ())
        if semiring == "log":
            log_z = torch.log(root_table) + pot_scale[0] + sum(
                (scales[(k, 0)] for k in tree._nbrs[0]), torch.zeros_like(pot_scale[0]))
            log_z = torch.where(torch.isnan(log_z), torch.full_like(log_z, -math.inf), log_z)
            if rows is not None:
                full = Evidence({v: t[rows] for v, t in ev.hard.items()}, {}, tuple(rows.shape))
                raise_if_zero(log_z.reshape(-1)[rows], full,
                              f"junction tree of model {tree.model.name!r}")
            else:
                raise_if_zero(log_z, ev, f"junction tree of model {tree.model.name!r}")
        else:
            log_z = root_table
        self._log_z = log_z.reshape(ev.batch_shape) if nb else log_z.reshape(())

    def _table(self, i: int, keep: Sequence[str]) -> Tensor:
        """Clique ``i``'s belief reduced to ``keep`` (scaled probabilities, or log for max)."""
        t = self.tree
        ins = t._nbrs[i]
        if self.semiring == "max":
            return contract(
                [self._pots[i]] + [self._messages[(k, i)] for k in ins],
                [t.cliques[i]] + [t._sep(k, i) for k in ins],
                tuple(keep), semiring="max", validate=False,
            )
        belief = self._beliefs.get(i)
        if belief is None:
            belief = self._pots[i]
            for k in ins:
                belief = belief * t._align[(t._sep(k, i), t.cliques[i])](self._messages[(k, i)])
            self._beliefs[i] = belief
        nb = len(self._ev.batch_shape)
        drop = tuple(nb + d for d, v in enumerate(t.cliques[i]) if v not in keep)
        red = belief.sum(drop) if drop else belief
        kept = [v for v in t.cliques[i] if v in keep]
        if kept != list(keep):
            red = red.permute(list(range(nb)) + [nb + kept.index(v) for v in keep])
        return red

    def _expand_rows(self, t: Tensor) -> Tensor:
        return t if self._rows is None else t[self._rows]

    @property
    def log_evidence(self) -> Tensor:
        """``log p(e)`` (log semiring) or the max log-joint (max semiring), shape batch."""
        return self._expand_rows(self._log_z)

    def marginal(self, variable: str) -> Tensor:
        """Posterior of one variable, shape batch + (card,).

        For the max semiring: the max-marginal divided by the overall max (its largest entry
        is 1).
        """
        home = self.tree.home.get(variable)
        if home is None:
            raise UnknownVariableError("calibrated tree", f"has no hidden variable {variable!r}")
        return self._expand_rows(self._normalised(home, [variable]))

    def _normalised(self, i: int, variables: Sequence[str]) -> Tensor:
        table = self._table(i, variables)
        nb = len(self._ev.batch_shape)
        dims = tuple(range(nb, table.dim()))
        if self.semiring == "max":
            shape = self._log_z.shape + (1,) * len(variables)
            return (table - self._log_z.reshape(shape)).exp()
        return table / table.sum(dims, keepdim=True)

    def joint(self, variables: Sequence[str]) -> Tensor:
        """Posterior over variables that lie in one clique, shape batch + cards.

        Raises
        ------
        ValidationError
            If no clique contains all of them (use VariableElimination for such queries).
        """
        t = self.tree
        fits = [i for i, c in enumerate(t.cliques) if set(variables) <= set(c)]
        if not fits:
            raise ValidationError(
                "junction tree joint query", "no clique contains all of the variables",
                found=list(variables), fix="use VariableElimination.query for this joint",
            )
        return self._expand_rows(self._normalised(min(fits, key=t.clique_size), list(variables)))

    def marginals(self) -> dict[str, Tensor]:
        """Every hidden variable's posterior."""
        return {v: self.marginal(v) for v in self.tree.home}
