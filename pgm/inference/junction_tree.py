"""Junction tree (clique tree) inference, Lauritzen & Spiegelhalter (1988).

Built once per model and evidence pattern: the interaction graph of the evidence-reduced factors
is triangulated along an elimination order, its maximal cliques joined by a maximum-weight
spanning tree on separator sizes, and every factor assigned to a clique that covers it.
:meth:`JunctionTree.calibrate` then runs two passes of Shafer-Shenoy messages (leaves to root,
root to leaves), batched over evidence rows, and returns a :class:`CalibratedTree` from which
every single-variable marginal, any clique-contained joint and log p(e) are read without further
message passing.

On CPU (float tables, numba installed, no autograd graph) sum-product calibration runs as one
compiled kernel per batch of evidence rows (:mod:`pgm.inference._native_tree`: Hugin passes in
scaled probability space, every marginal and log p(e) in one call, parallel over rows); a batch
in which some row's sum comes out zero is re-run on the log-space torch path below (it tells
zero-probability evidence from underflow), which also serves GPU tensors and gradients.

The torch sum-product pass is compiled at construction into one einsum per message over *scaled*
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

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pgm.graph import undirected_from_scopes
from pgm.inference._common import (
    DEFAULT_MEMORY_BUDGET,
    DiscreteModel,
    check_budget,
    check_evidence_variables,
    check_memory_budget,
    check_model,
    check_order,
    raise_if_zero,
)
from pgm.inference._flat_tree import FlatTree
from pgm.inference._native_tree import NativeTree
from pgm.inference.evidence import Evidence, apply_evidence, resolve_evidence
from pgm.inference.ordering import OrderSpec, elimination_order, triangulate
from probforge.errors import UnknownVariableError, ValidationError
from probforge.ops import ContractionCost, contract
from probforge.ops.native import enabled as native_enabled
from probforge.validate import check_names

__all__ = ["DENSE_CLIQUE_ENTRIES", "NATIVE_TREE_ENTRIES", "CalibratedTree", "JunctionTree"]

#: Sum-product switches from the flat index plans to dense per-clique contractions when the
#: largest clique holds more entries than this: gathers and scatters over millions of entries
#: cost far more than einsum on shifted exponentials (water, mildew, barley), while a tree of
#: small cliques is dominated by per-call overhead, which the flat plans keep low (alarm).
DENSE_CLIQUE_ENTRIES = 2**15

#: With the compiled kernel, one calibration of a tree of up to this many clique entries in all
#: beats separate pruned queries per variable (andes: 5 ms against 2.2 s; water, 3.7M entries:
#: 38 ms against 54 ms); beyond it (mildew, barley) the pruned queries touch less memory.
NATIVE_TREE_ENTRIES = 2**23

#: Under the order "best", a tree whose min-fill triangulation creates at most this many
#: entries keeps it: the other heuristics cost more build time than they could save
#: (pathfinder: 80 -> 160 ms of build for the same tree).
BEST_ABOVE = 2**20


class JunctionTree:
    """A clique tree for a model and a fixed set of evidence variables.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence_vars : str or sequence of str
        Variables that will carry hard evidence (fully observed in every row); one string is
        one variable.
    soft_evidence_vars : str or sequence of str
        Variables that will carry soft evidence (none of them also in ``evidence_vars``).
    order : elimination order spec used for triangulation.
    memory_budget : int
        Bytes allowed for the largest clique table (per evidence row times rows, checked at
        calibration); an int >= 1.
    method : {"auto", "flat", "dense"}
        How sum-product calibration runs: one flat level-by-level program over all cliques
        (fastest for many small cliques), dense per-clique contractions (fastest for large
        ones), or "auto": dense when the largest clique exceeds :data:`DENSE_CLIQUE_ENTRIES`.
        Both give the same numbers.
    """

    def __init__(
        self,
        model: DiscreteModel,
        evidence_vars: Sequence[str] = (),
        soft_evidence_vars: Sequence[str] = (),
        order: OrderSpec = "min_fill",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        method: str = "auto",
    ) -> None:
        check_model(model, "JunctionTree")
        if method not in ("auto", "flat", "dense"):
            raise ValidationError("JunctionTree", "method must be 'auto', 'flat' or 'dense'",
                                  found=repr(method))
        evidence_vars, soft_evidence_vars = check_evidence_variables(
            model, evidence_vars, soft_evidence_vars, "JunctionTree")
        order = check_order(order, "JunctionTree", model)
        self.model = model
        self.memory_budget = check_memory_budget(memory_budget, "JunctionTree")
        self.evidence_vars = frozenset(evidence_vars)
        self._evidence_order = sorted(self.evidence_vars)
        self._states = model.states
        self.soft_evidence_vars = frozenset(soft_evidence_vars)
        self._factors = model.factors()
        cards = self._cards = model.cards  # a fresh dict per access: read it once
        # Scopes after slicing the evidence variables away; soft evidence adds unary scopes.
        # A fixed order of the soft-evidence tables: calibrate() appends them in this order.
        self._soft_order = tuple(v for v in model.variables if v in self.soft_evidence_vars)
        probe = Evidence({v: torch.zeros((), dtype=torch.long) for v in self.evidence_vars},
                         {v: torch.zeros(cards[v]) for v in self._soft_order}, ())
        _, scopes = apply_evidence(self._factors, probe)
        self._scopes = scopes
        hidden = [v for v in model.variables if v not in self.evidence_vars]
        adj = undirected_from_scopes(scopes, hidden)
        order_ = elimination_order(adj, cards, order, best_above=BEST_ABOVE)
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
        self._flat: FlatTree | None = None
        self._native: NativeTree | None = None
        self._factors_native: bool | None = None
        self._factors_grad = False
        self.cost = ContractionCost(
            max(self.clique_size(i) for i in range(len(self.cliques))),
            sum(self.clique_size(i) for i in range(len(self.cliques))),
        )
        self.dense = method == "dense" or (
            method == "auto" and self.cost.largest_table > DENSE_CLIQUE_ENTRIES)

    def clique_size(self, i: int) -> int:
        """Number of entries of clique ``i``'s table (per evidence row)."""
        n = 1
        for v in self.cliques[i]:
            n *= self._cards[v]
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
        ev = resolve_evidence(self._states, evidence, soft_evidence, dtype=fs.dtype,
                              device=fs.device)
        names = self._evidence_order
        # (rows, evidence variables) state indices, one tensor for every check below
        same = frozenset(ev.hard) == self.evidence_vars
        table = (torch.stack([ev.hard[v].reshape(-1) for v in names], dim=1)
                 if ev.hard and same else None)
        if not same or (
                table is not None and bool((table < 0).any())):
            raise ValidationError(
                "junction tree", "was built for hard evidence on exactly "
                f"{sorted(self.evidence_vars)}, observed in every row",
                found=sorted(ev.hard), fix="build a JunctionTree for this evidence pattern",
            )
        if frozenset(ev.soft) != self.soft_evidence_vars:
            raise ValidationError("junction tree", "was built for soft evidence on "
                                  f"{sorted(self.soft_evidence_vars)}", found=sorted(ev.soft))
        if ev.soft:
            ev = ev._replace(soft={v: ev.soft[v] for v in self._soft_order})
        check_budget(self.cost, fs.dtype, ev.batch_shape, self.memory_budget,
                     f"junction tree of model {self.model.name!r}")
        rows = None
        if ev.batch_shape and table is not None and not ev.soft:
            # Evidence rows over discrete variables repeat: calibrate each distinct row once.
            uniq, inverse = torch.unique(table, dim=0, return_inverse=True)
            if uniq.shape[0] < table.shape[0]:
                ev = Evidence({v: uniq[:, k] for k, v in enumerate(names)}, {},
                              (uniq.shape[0],))
                rows = inverse
                table = uniq
        if semiring == "log" and self._use_native(ev):
            cal = self._calibrate_native(ev, rows, table)
            if cal is not None:
                return cal
        return self._calibrate_torch(ev, rows, semiring)

    def _calibrate_torch(self, ev: Evidence, rows: Tensor | None, semiring: str) -> CalibratedTree:
        """Calibration by tensor operations (any device, autograd, both semirings)."""
        fs = self._factors[0].log_values
        if semiring == "max" or self.dense:
            return self._calibrate_dense(ev, rows, semiring)
        if self._flat is None:
            self._flat = FlatTree(self.cliques, self.edges, self._cards, self._scopes,
                                  self.assignment, fs.device)
        tables, _ = apply_evidence(self._factors, ev)
        n = ev.batch_shape[0] if ev.batch_shape else 1
        belief, log_z = self._flat.calibrate(tables, n)
        return CalibratedTree(self, belief, log_z, ev, rows=rows)

    @property
    def native(self) -> bool:
        """Whether sum-product calibration runs the compiled CPU kernel (CPU float tables,
        numba installed, ``PROBFORGE_NATIVE`` not 0), unless autograd or evidence needs torch."""
        if self._factors_native is None:  # the model's tables do not change: check once
            self._factors_native = native_enabled(*(f.log_values for f in self._factors),
                                                  autograd=True)
            self._factors_grad = any(f.log_values.requires_grad for f in self._factors)
        return self._factors_native and native_enabled()

    def _use_native(self, ev: Evidence) -> bool:
        return (self.native and native_enabled(*ev.soft.values())
                and not (self._factors_grad and torch.is_grad_enabled()))

    def _native_plan(self) -> NativeTree:
        if self._native is None:
            # a Bayesian network's factors are its CPDs, in order: their heads let the kernel
            # skip the upward messages of barren subtrees
            cpds = getattr(self.model, "cpds", None)
            heads = ([c.variable for c in cpds] if isinstance(cpds, list)
                     and len(cpds) == len(self._factors) else None)
            self._native = NativeTree(
                self.cliques, self.edges, self._cards, self._factors, self.assignment,
                self._evidence_order, self._soft_order, list(self.home), self.home, heads)
        return self._native

    def native_inputs(self, ev: Evidence, table: Tensor | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """Evidence as the compiled kernel takes it: (N, n_evidence) state indices and
        (N or 1, soft_size) likelihoods (``table``: the indices, when already stacked)."""
        n = ev.batch_shape[0] if ev.batch_shape else 1
        names = self._evidence_order
        if table is None and names:
            table = torch.stack([ev.hard[v].reshape(-1) for v in names], dim=1)
        if table is not None:
            evm = table.expand(n, -1).numpy()
        else:
            evm = np.zeros((n, 0), dtype=np.int64)
        soft = None
        if self._soft_order:
            blocks = [ev.soft[v].detach().to("cpu", torch.float64).exp() for v in self._soft_order]
            rows_ = max(b.shape[0] if b.dim() == 2 else 1 for b in blocks)
            soft = torch.cat([b.reshape(-1, b.shape[-1]).expand(rows_, -1) for b in blocks],
                             dim=1).numpy()
        return evm, soft

    def _calibrate_native(self, ev: Evidence, rows: Tensor | None,
                          table: Tensor | None) -> CalibratedTree | None:
        """The compiled CPU calibration; None when some row needs the log-space path (zero
        probability or underflow, told apart there)."""
        plan = self._native_plan()
        evm, soft = self.native_inputs(ev, table)
        marg, log_z, _ = plan.run(evm, soft)
        if not np.isfinite(log_z).all():
            return None
        dtype = self._factors[0].log_values.dtype
        return CalibratedTree(self, None, NativeTree.to_torch(log_z, dtype), ev, rows=rows,
                              native_marginals=NativeTree.to_torch(marg, dtype))

    def _calibrate_dense(self, ev: Evidence, rows: Tensor | None, semiring: str) -> CalibratedTree:
        """Messages as dense tables contracted clique by clique (max-product, and sum-product on
        trees with large cliques, where BLAS contractions beat the flat index plans)."""
        tables, scopes = apply_evidence(self._factors, ev)
        fs = self._factors[0].log_values
        pots = []
        for c, clique in enumerate(self.cliques):
            members = [k for k, a in enumerate(self.assignment) if a == c]
            unit = torch.zeros(tuple(self._cards[v] for v in clique), dtype=fs.dtype,
                               device=fs.device)
            pots.append(contract(
                [unit] + [tables[k] for k in members], [clique] + [scopes[k] for k in members],
                clique, semiring=semiring, validate=False,
            ).expand(ev.batch_shape + tuple(unit.shape)))
        msgs: dict[tuple[int, int], Tensor] = {}
        for i, j in self._schedule:
            ins = [k for k in self._nbrs[i] if k != j]
            msgs[(i, j)] = contract(
                [pots[i]] + [msgs[(k, i)] for k in ins],
                [self.cliques[i]] + [self._sep(k, i) for k in ins],
                self._sep(i, j), semiring=semiring, validate=False,
            )
        return CalibratedTree(self, None, None, ev, rows=rows, tables=(pots, msgs),
                              semiring=semiring)

    def _sep(self, i: int, j: int) -> tuple[str, ...]:
        return tuple(v for v in self.cliques[i] if v in set(self.cliques[j]))


class CalibratedTree:
    """The result of :meth:`JunctionTree.calibrate`: beliefs on demand.

    Sum-product results hold the flat clique log-beliefs of :class:`FlatTree`; max-product
    results hold log clique potentials and messages.
    """

    def __init__(self, tree: JunctionTree, belief: Tensor | None, log_z: Tensor | None,
                 ev: Evidence, rows: Tensor | None = None,
                 tables: tuple[list[Tensor], dict[tuple[int, int], Tensor]] | None = None,
                 semiring: str = "log", native_marginals: Tensor | None = None) -> None:
        self.tree = tree
        self._rows = rows  # distinct evidence row of each requested row, when deduplicated
        self._ev = ev  # distinct rows when deduplicated
        self.semiring = semiring
        self._tables = tables  # dense clique potentials and messages, when calibrated densely
        self._belief = belief
        self._marg: Tensor | None = native_marginals  # (rows, sum of cards), home order
        self._native = native_marginals is not None
        self._clique_beliefs: dict[int, Tensor] = {}
        batch = ev.batch_shape
        if tables is not None:
            log_z = self._table(0, ())
        assert log_z is not None
        if self.semiring == "log" and not self._native:  # the native path returns finite
            if rows is not None:
                full = Evidence({v: t[rows] for v, t in ev.hard.items()}, {}, tuple(rows.shape))
                raise_if_zero(log_z[rows], full, f"junction tree of model {tree.model.name!r}")
            else:
                raise_if_zero(log_z.reshape(batch), ev,
                              f"junction tree of model {tree.model.name!r}")
        self._log_z = log_z.reshape(batch)

    def _table(self, i: int, keep: Sequence[str]) -> Tensor:
        """Clique ``i``'s log-belief (dense calibration) reduced to ``keep``."""
        t = self.tree
        assert self._tables is not None
        if self.semiring == "log":  # reused by every variable whose home is clique i
            if i not in self._clique_beliefs:
                pots, msgs = self._tables
                ins = t._nbrs[i]
                self._clique_beliefs[i] = contract(
                    [pots[i]] + [msgs[(k, i)] for k in ins],
                    [t.cliques[i]] + [t._sep(k, i) for k in ins],
                    t.cliques[i], semiring="log", validate=False,
                )
            return contract([self._clique_beliefs[i]], [t.cliques[i]], tuple(keep),
                            semiring="log", validate=False)
        pots, msgs = self._tables
        ins = t._nbrs[i]
        return contract(
            [pots[i]] + [msgs[(k, i)] for k in ins],
            [t.cliques[i]] + [t._sep(k, i) for k in ins],
            tuple(keep), semiring=self.semiring, validate=False,
        )

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
        if not isinstance(variable, str):
            raise ValidationError("calibrated tree", "marginal takes one variable name (str)",
                                  found=repr(variable), fix="use joint([...]) for several")
        if variable not in self.tree.home:
            raise UnknownVariableError("calibrated tree", f"has no hidden variable {variable!r}")
        if self._tables is not None:
            return self.joint([variable])
        if self._native:
            assert self._marg is not None and self.tree._native is not None
            o = self.tree._native.marginal_offset[variable]
            m = self._marg[:, o:o + self.tree._cards[variable]]
            return self._expand_rows(m if self._ev.batch_shape else m[0])
        flat = self.tree._flat
        assert flat is not None and self._belief is not None
        if self._marg is None:
            self._marg = flat.marginals(self._belief, self._log_z.reshape(-1))
        o = flat.marg_off[variable]
        m = self._marg[:, o:o + self.tree._cards[variable]]
        return self._expand_rows(m if self._ev.batch_shape else m[0])

    def joint(self, variables: str | Sequence[str]) -> Tensor:
        """Posterior over variables that lie in one clique, shape batch + cards.

        ``variables`` are hidden (unobserved) variables, each named once; one string is one
        variable. The joint over no variables is 1 (shape batch).

        Raises
        ------
        UnknownVariableError
            A variable that is not a hidden variable of the tree.
        ValidationError
            If no clique contains all of them (use VariableElimination for such queries).
        """
        t = self.tree
        variables = check_names(variables, "calibrated tree joint variables")
        for v in variables:
            if v not in t.home:
                raise UnknownVariableError("calibrated tree", f"has no hidden variable {v!r}",
                                           fix="observed variables have no joint here; check "
                                           "the spelling against model.variables")
        fits = [i for i, c in enumerate(t.cliques) if set(variables) <= set(c)]
        if not fits:
            raise ValidationError(
                "junction tree joint query", "no clique contains all of the variables",
                found=variables, fix="use VariableElimination.query for this joint",
            )
        i = min(fits, key=t.clique_size)
        batch = self._ev.batch_shape
        if self._tables is not None:
            table = self._table(i, variables)
            shape = self._log_z.shape + (1,) * len(variables)
            return self._expand_rows((table - self._log_z.reshape(shape)).exp())
        cards = [t._cards[v] for v in t.cliques[i]]
        if self._native:
            plan = t._native
            assert plan is not None
            if self._belief is None:  # clique tables only when a joint is asked for
                _, _, beliefs = plan.run(*t.native_inputs(self._ev), store_beliefs=True)
                assert beliefs is not None
                self._belief = torch.from_numpy(beliefs).log()
            o = int(plan.offset[i])
            b = self._belief[:, o:o + plan.sizes[i]]
            table = contract([b.reshape([-1, *cards])], [t.cliques[i]], variables,
                             validate=False)
            dims = tuple(range(1, table.dim()))
            out = (table - torch.logsumexp(table, dim=dims, keepdim=True)).exp()
            out = out.to(self._log_z.dtype)
            return self._expand_rows(out if batch else out[0])
        flat = t._flat
        assert flat is not None and self._belief is not None
        b = self._belief[:, flat.offset[i]:flat.offset[i] + flat.sizes[i]]
        table = contract([b.reshape([-1, *cards])], [t.cliques[i]], variables, validate=False)
        out = (table - self._log_z.reshape((-1,) + (1,) * len(variables))).exp()
        return self._expand_rows(out if batch else out[0])

    def marginals(self) -> dict[str, Tensor]:
        """Every hidden variable's posterior."""
        if self._native and self._rows is None:
            assert self._marg is not None and self.tree._native is not None
            # one split into views: the per-variable slicing costs more than the kernel on
            # small networks
            m = self._marg if self._ev.batch_shape else self._marg[0]
            parts = m.split_with_sizes(self.tree._native.marginal_cards, dim=-1)
            return dict(zip(self.tree._native.marginal_vars, parts, strict=True))
        return {v: self.marginal(v) for v in self.tree.home}
