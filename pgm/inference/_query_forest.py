"""Per-variable pruned variable elimination, compiled: every query of a sweep in one kernel call.

Answering each variable's posterior by its own variable elimination contracts only the factors
that query needs (on a Bayesian network: the ancestral set of the variable and the evidence;
barren nodes pruned), which on some networks is far less work than one junction tree over the
whole model (munin1: 1.8M entries for all 186 queries against a 2.7e8-entry tree). Run through
:func:`probforge.ops.contract` each query costs a few milliseconds of tensor-call overhead for a
few thousand multiply-adds. Here each query's elimination is laid out as a tree of *buckets*
(eliminating x multiplies every table that holds x into one clique, whose sum over x is the
message to the bucket that next uses the result) rooted at the query variable; the query trees
are chained root to root by empty separators into one tree, and the compiled junction-tree
kernel (:mod:`pgm.inference._native_tree`) runs its upward pass once for all of them and reads
each marginal at its tree's root. Evidence rows run in parallel, as in the kernel.

Queries are split into chunks of at most :data:`CHUNK_ENTRIES` clique entries; a query whose own
tree is larger than :data:`TREE_ENTRIES` is left to the
caller (:attr:`QueryForest.left`).

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference._query_forest import QueryForest
>>> asia = bundled_network("asia")
>>> qf = QueryForest(asia, ["smoke"], ["lung", "tub"])
>>> m = qf.run({"smoke": [0, 1]})
>>> m["lung"].shape
torch.Size([2, 2])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from pgm.factor import Factor
from pgm.graph import undirected_from_scopes
from pgm.inference._common import DiscreteModel
from pgm.inference._native_tree import NativeTree
from pgm.inference.ordering import OrderSpec, elimination_order

__all__ = ["CHUNK_ENTRIES", "QueryForest"]

#: Clique entries per kernel call (float64 scratch per evidence row: 32 MiB).
CHUNK_ENTRIES = 2**22
#: A single query tree larger than this is not run here: the caller contracts it in torch,
#: where BLAS on its large tables beats the kernel's walks (barley without evidence: 200 ms with
#: every tree here, 90 ms with trees up to 2**20 entries; munin1 with 5 evidence variables wants
#: 2**20 too: 141 ms, against 233 ms with 2**18).
TREE_ENTRIES = 2**20


class _QueryTree:
    """One query's buckets: clique variables, parent bucket, factors assigned, root index."""

    def __init__(self, query: str, factors: Sequence[int], scopes: Sequence[tuple[str, ...]],
                 cards: Mapping[str, int], order: OrderSpec) -> None:
        self.query = query
        adj = undirected_from_scopes([scopes[k] for k in factors], [query])
        elim = elimination_order(adj, cards, order, keep=[query])
        # pool items: (scope, factor index or -1, bucket index or -1)
        pool: list[tuple[frozenset[str], tuple[str, ...], int, int]] = [
            (frozenset(scopes[k]), scopes[k], k, -1) for k in factors]
        self.cliques: list[tuple[str, ...]] = []
        self.parent: list[int] = []
        self.factors: list[tuple[int, int]] = []  # (factor, bucket)
        for x in elim:
            hold = [it for it in pool if x in it[0]]
            pool = [it for it in pool if x not in it[0]]
            b = self._bucket(hold, x)
            rest = tuple(v for v in self.cliques[b] if v != x)
            pool.append((frozenset(rest), rest, -1, b))
        self.root = self._bucket(pool, None, (query,))
        self.parent[self.root] = -1
        self.sizes = [math.prod(cards[v] for v in c) for c in self.cliques]

    def _bucket(self, items: Sequence[tuple[frozenset[str], tuple[str, ...], int, int]],
                x: str | None, lead: tuple[str, ...] = ()) -> int:
        """A clique over the union of the items' scopes: the largest item's layout first (its
        gather runs unit-stride), ``x`` last (summed out as the innermost run)."""
        names: list[str] = list(lead)
        for _, scope, _, _ in sorted(items, key=lambda it: -len(it[1])):
            names += [v for v in scope if v not in names and v != x]
        if x is not None:
            names.append(x)
        b = len(self.cliques)
        self.cliques.append(tuple(names))
        self.parent.append(-1)
        for _, _, k, child in items:
            if k >= 0:
                self.factors.append((k, b))
            else:
                self.parent[child] = b
        return b


class QueryForest:
    """Every requested variable's posterior by its own pruned elimination, compiled.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence_vars : sequence of str
        Hard-evidence variables (observed in every row).
    variables : sequence of str
        Hidden variables to answer.
    order : elimination order heuristic (see :mod:`pgm.inference.ordering`).

    Attributes
    ----------
    entries : int
        Clique entries of all query trees run here.
    left : list of str
        Variables whose query tree exceeds ``TREE_ENTRIES`` (not answered by :meth:`run`).
    """

    def __init__(self, model: DiscreteModel, evidence_vars: Sequence[str],
                 variables: Sequence[str], order: OrderSpec = "min_fill") -> None:
        self.model = model
        self.evidence_vars = tuple(sorted(evidence_vars))
        self._factors = model.factors()
        cards = model.cards
        observed = set(self.evidence_vars)
        scopes = [tuple(v for v in f.variables if v not in observed) for f in self._factors]
        parents = getattr(model, "parents", None)
        trees = [_QueryTree(q, self._relevant(q, parents), scopes, cards, order)
                 for q in variables]
        self.left = [t.query for t in trees if sum(t.sizes) > TREE_ENTRIES]
        kept = [t for t in trees if sum(t.sizes) <= TREE_ENTRIES]
        self.entries = sum(sum(t.sizes) for t in kept)
        chunks: list[list[_QueryTree]] = []
        total = CHUNK_ENTRIES
        for t in kept:
            if total + sum(t.sizes) > CHUNK_ENTRIES:
                chunks.append([])
                total = 0
            chunks[-1].append(t)
            total += sum(t.sizes)
        self._chunks = chunks
        self._cards = dict(cards)
        self._built: list[NativeTree] | None = None

    @property
    def _plans(self) -> list[NativeTree]:
        """The chunks' compiled plans, built on first use (sizing the trees is cheaper, and
        decides whether they are used at all)."""
        if self._built is None:
            self._built = [self._chain(c, self._cards) for c in self._chunks]
        return self._built

    def _relevant(self, query: str, parents: object) -> list[int]:
        """Factor indices a query needs: on a Bayesian network the CPDs of the ancestral set of
        the query and the evidence (each factor's head is its last variable); else all."""
        if not isinstance(parents, dict):
            return list(range(len(self._factors)))
        keep: set[str] = set()
        stack = [query, *self.evidence_vars]
        while stack:
            v = stack.pop()
            if v not in keep:
                keep.add(v)
                stack.extend(parents[v])
        return [k for k, f in enumerate(self._factors) if f.variables[-1] in keep]

    def _chain(self, trees: Sequence[_QueryTree], cards: Mapping[str, int]) -> NativeTree:
        """The chunk's query trees as one tree: each root the child of the previous root."""
        cliques: list[tuple[str, ...]] = []
        edges: list[tuple[int, int]] = []
        factors: list[Factor] = []
        assignment: list[int] = []
        home: dict[str, int] = {}
        roots: list[int] = []
        for t in trees:
            base = len(cliques)
            cliques += t.cliques
            edges += [(base + c, base + p) for c, p in enumerate(t.parent) if p >= 0]
            for k, b in t.factors:
                factors.append(self._factors[k])
                assignment.append(base + b)
            home[t.query] = base + t.root
            roots.append(base + t.root)
        # clique 0 must be the first root (the kernel's upward pass ends there)
        first = roots[0]
        perm = [first] + [c for c in range(len(cliques)) if c != first]
        where = {c: i for i, c in enumerate(perm)}
        edges = [(where[a], where[b]) for a, b in edges]
        edges += [(where[roots[i]], where[roots[i + 1]]) for i in range(len(roots) - 1)]
        return NativeTree(
            [cliques[c] for c in perm], edges, dict(cards), factors,
            [where[a] for a in assignment], self.evidence_vars, (), [t.query for t in trees],
            {q: where[c] for q, c in home.items()}, upward_only=True)

    def run(self, evidence: Mapping[str, Tensor | Sequence[int] | int]
            ) -> dict[str, Tensor] | None:
        """Posteriors of the answered variables for N evidence rows (state indices), shape
        (N, card) (or (card,) for scalar evidence); None when some row's sum came out zero
        (zero-probability evidence or underflow: the caller's log-space path tells them
        apart)."""
        cols = [torch.as_tensor(evidence[v]).reshape(-1) for v in self.evidence_vars]
        scalar = all(torch.as_tensor(evidence[v]).dim() == 0 for v in self.evidence_vars)
        n = max((c.numel() for c in cols), default=1)
        ev = (torch.stack([c.expand(n) for c in cols], 1).numpy() if cols
              else np.zeros((1, 0), dtype=np.int64))
        dtype = self._factors[0].log_values.dtype
        out: dict[str, Tensor] = {}
        for plan in self._plans:
            marg, log_z, _ = plan.run(ev, None)
            if not np.isfinite(log_z).all():
                return None
            m = NativeTree.to_torch(marg, dtype)
            if scalar:
                m = m[0]
            parts = m.split_with_sizes(plan.marginal_cards, dim=-1)
            out.update(zip(plan.marginal_vars, parts, strict=True))
        return out
