"""Per-variable pruned variable elimination, compiled: every query of a sweep in one kernel call.

Answering each variable's posterior by its own variable elimination contracts only the factors
that query needs (on a Bayesian network: the ancestral set of the variable and the evidence;
barren nodes pruned), which on some networks is far less work than one junction tree over the
whole model (munin1: 1.8M entries for all 186 queries against a 2.7e8-entry tree). Run through
:func:`probforge.ops.contract` each query costs a few milliseconds of tensor-call overhead for a
few thousand multiply-adds. Here each query's elimination is laid out as a tree of *buckets*
(eliminating x multiplies every table that holds x into one clique, whose sum over x is the
message to the bucket that next uses the result) rooted at the query variable, and all query
trees run as one compiled program (:mod:`pgm.inference._bucket_program`: each bucket's product
and sum in one pass, over its nonzero entries only where the tables' structural zeros make
most of it zero; buckets that several queries share run once), evidence rows (or, for one
row, groups of query trees) in parallel. On a Bayesian network the CPDs lose their vacuous
parents first (:mod:`pgm.inference._vacuous_parents`: barley 1.1e7 -> 3.9e6 entries), and
large buckets whose inputs fall into two small groups run as matrix products of the groups'
own products (:mod:`pgm.inference._bucket_split`: barley 5.7 -> 1.0 ms, mildew 0.57 -> 0.46
ms).

The order ``"best"`` is applied per query: a query tree under :data:`CHOOSE_ENTRIES` entries
keeps min-fill's order (choosing costs more than it could save); a larger one takes the
cheapest of the heuristics' orders. A query whose own tree would take longer here than
contracted in torch (by the costs :data:`FOREST_NS_PER_ENTRY` and after it) is left to the
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

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from pgm.graph import undirected_from_scopes
from pgm.inference._bucket_plan import BucketPlan
from pgm.inference._bucket_program import BucketProgram
from pgm.inference._bucket_split import WALK_NS, Split, best_sparse_split, best_split
from pgm.inference._bucket_support import (
    bucket_supports,
    bucket_work,
    factor_support,
    message_support,
)
from pgm.inference._common import DiscreteModel
from pgm.inference._vacuous_parents import drop_vacuous_parents
from pgm.inference.ordering import OrderSpec, elimination_order

__all__ = ["QueryForest"]

#: Rough costs of one evidence row on 2 CPU cores (nanoseconds, measured on the bundled
#: networks): the compiled program per entry of its distinct buckets (with 5 evidence
#: variables: munin1 1.1, water 1.15, barley 1.3; mildew without evidence 1.4) ...
FOREST_NS_PER_ENTRY = 1.3
#: ... and a query contracted in torch instead: a fixed cost (tensor calls, 3-6 ms on mildew,
#: barley, munin1) and BLAS work per entry of its elimination. A query tree that would cost
#: more here is left to the caller: without evidence, barley 17 ms with trees up to 1.8e6
#: entries here and its largest (8.5e6) in torch, against 37 ms with trees up to 2**20 and 28
#: ms with every tree here; mildew's two largest trees (1.1e7 entries, 8e5 of them nonzero)
#: here: 13 -> 5.4 ms.
LEFT_NS_PER_QUERY = 5e6
LEFT_NS_PER_ENTRY = 0.3
#: Under the order "best", query trees up to this many entries keep min-fill's order.
CHOOSE_ENTRIES = 2**16
#: A query tree with a zero in some table, up to this many entries, has its buckets' supports
#: found (:mod:`pgm.inference._bucket_support`): its sparse buckets walk only their nonzero
#: entries, and it is sized by those.
SUPPORT_ENTRIES = 2**25


def _last_in_groups(found: Split, last: frozenset[str]) -> Split:
    """A split with its kept variables reordered within their groups, those in ``last``
    last."""
    def ordered(group: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(group, key=lambda v: v in last))

    return found._replace(batch=ordered(found.batch), free_left=ordered(found.free_left),
                          free_right=ordered(found.free_right))


class _QueryTree:
    """One query's buckets (children before parents): clique variables, parent bucket,
    factors assigned, root index, and the number of trailing clique variables each sums out.

    A variable that only the message of one bucket holds is summed out by that bucket too (a
    bucket of its own would only marginalise the message: 8-21% of the entries on water,
    mildew, munin1 and barley). With ``split``, large buckets whose inputs fall into two
    small groups become two products and a matrix product (:mod:`pgm.inference._bucket_split`;
    only for trees without zeros, whose buckets are all walked densely)."""

    def __init__(self, query: str, factors: Sequence[int], scopes: Sequence[tuple[str, ...]],
                 cards: Mapping[str, int], order: OrderSpec, split: bool = False) -> None:
        self.query = query
        adj = undirected_from_scopes([scopes[k] for k in factors], [query])
        elim = elimination_order(adj, cards, order, keep=[query], best_above=CHOOSE_ENTRIES)
        # pool items: (scope, factor index or -1, bucket index or -1)
        pool: list[tuple[frozenset[str], tuple[str, ...], int, int]] = [
            (frozenset(scopes[k]), scopes[k], k, -1) for k in factors]
        self.cliques: list[tuple[str, ...]] = []
        self.parent: list[int] = []
        self.factors: list[tuple[int, int]] = []  # (factor, bucket)
        self.n_sum: list[int] = []
        for x in elim:
            hold = [it for it in pool if x in it[0]]
            pool = [it for it in pool if x not in it[0]]
            if len(hold) == 1 and hold[0][2] < 0:
                b = hold[0][3]
                clique, n = self.cliques[b], self.n_sum[b]
                self.cliques[b] = (*(v for v in clique[:-n] if v != x), x, *clique[-n:])
                self.n_sum[b] = n + 1
            else:
                b = self._bucket(hold, x)
            rest = self.message_vars(b)
            pool.append((frozenset(rest), rest, -1, b))
        self.root = self._bucket(pool, None, (query,))
        self.parent[self.root] = -1
        #: per bucket: the split whose matrix products it is (:mod:`pgm.inference._bucket_split`;
        #: its two children, in that order, are the sides), else None
        self.split: list[Split | None] = [None] * len(self.cliques)
        self._sides: dict[int, tuple[int, int]] = {}
        self._scopes = scopes
        self._index(cards)
        if split:
            self.split_buckets(lambda b: best_split(self.input_scopes(b), self.summed(b), cards),
                               cards)

    def _index(self, cards: Mapping[str, int]) -> None:
        """The lists derived from the buckets: sizes, work, children and factors per bucket."""
        self.sizes = [math.prod(cards[v] for v in c) for c in self.cliques]
        #: per bucket: its estimated work in entries walked (a split's products are cheaper)
        self.work = [float(n) if d is None else d.product_ns / WALK_NS
                     for n, d in zip(self.sizes, self.split, strict=True)]
        #: per bucket: the buckets sending it their messages, and the factors it multiplies
        self.children: list[list[int]] = [[] for _ in self.cliques]
        self.assigned: list[list[int]] = [[] for _ in self.cliques]
        for c, p in enumerate(self.parent):
            if p >= 0:
                self.children[p].append(c)
        for b, sides in self._sides.items():  # a split's children: its left side first
            self.children[b] = list(sides)
        for k, b in self.factors:
            self.assigned[b].append(k)

    def inputs(self, b: int) -> list[tuple[int, int]]:
        """Bucket ``b``'s inputs in the order a split numbers them: (factor, -1) for each
        factor assigned, then (-1, child) for each incoming message."""
        return [(k, -1) for k in self.assigned[b]] + [(-1, c) for c in self.children[b]]

    def input_scopes(self, b: int) -> list[tuple[str, ...]]:
        """The variables of each of bucket ``b``'s :meth:`inputs`."""
        return [self._scopes[k] if k >= 0 else self.message_vars(c) for k, c in self.inputs(b)]

    def summed(self, b: int) -> tuple[str, ...]:
        """The variables bucket ``b`` sums out."""
        return self.cliques[b][len(self.cliques[b]) - self.n_sum[b]:]

    def split_buckets(self, choose: Callable[[int], Split | None],
                      cards: Mapping[str, int]) -> None:
        """Every non-root bucket for which ``choose(b)`` gives a split becomes three: the two
        sides' products (their cliques ordered so that their messages are the matrices the
        products read) and the matrix products, which take the bucket's place."""
        cliques: list[tuple[str, ...]] = []
        n_sum: list[int] = []
        parent: list[int] = []
        factors: list[tuple[int, int]] = []
        split: list[Split | None] = []
        new_id: list[int] = []
        sides_of: dict[int, tuple[int, int]] = {}

        def add(clique: tuple[str, ...], n: int, items: Sequence[tuple[int, int]],
                found: Split | None = None) -> int:
            b = len(cliques)
            cliques.append(clique)
            n_sum.append(n)
            parent.append(-1)
            split.append(found)
            for k, c in items:
                if k >= 0:
                    factors.append((k, b))
                else:
                    parent[new_id[c]] = b
            return b

        for b, clique in enumerate(self.cliques):
            items = self.inputs(b)
            # (a split's products, or one of its sides, keep the layout they were given)
            p = self.parent[b]
            found = None if p < 0 or self.split[b] is not None or self.split[p] is not None \
                else choose(b)
            if found is not None and found.sparse:
                # the variables the parent sums out last in their groups: the parent then
                # reads its entries of one slot closer together (mildew 0.47 -> 0.45 ms; on
                # barley's dense splits it costs more in buckets no longer shared by trees)
                found = _last_in_groups(found, frozenset(self.summed(p)))
            if found is None:
                new_id.append(add(clique, self.n_sum[b], items, self.split[b]))
                if b in self._sides:
                    sides_of[new_id[-1]] = (new_id[self._sides[b][0]],
                                            new_id[self._sides[b][1]])
                continue
            sides = []
            for keep, side, n in ((found.left, found.left_clique(), len(found.sum_left)),
                                  (found.right, found.right_clique(), len(found.sum_right))):
                k, c = items[keep[0]]
                c = new_id[c] if k < 0 else -1
                if len(keep) == 1 and k < 0 and n == 0 and (
                        split[c] is None or cliques[c][:len(side)] == side):
                    # one incoming message as it is: its bucket lays it out as the side's
                    # (a bucket of the side's own would only copy it; a split's products
                    # have their layout, which may be the side's already)
                    cliques[c] = (*side, *cliques[c][len(cliques[c]) - n_sum[c]:])
                    sides.append(c)
                else:
                    sides.append(add(side, n, [items[i] for i in keep]))
            left, right = sides
            new_id.append(add(
                (*found.batch, *found.free_left, *found.free_right, *found.contracted),
                len(found.contracted), (), found))
            parent[left] = parent[right] = new_id[-1]
            sides_of[new_id[-1]] = (left, right)
        self.cliques, self.n_sum, self.parent, self.factors, self.split = (
            cliques, n_sum, parent, factors, split)
        self._sides = sides_of
        self.root = new_id[self.root]
        self._index(cards)

    def message_vars(self, b: int) -> tuple[str, ...]:
        """The variables of bucket ``b``'s message: its clique but the summed-out tail."""
        return self.cliques[b][:-self.n_sum[b]] if self.n_sum[b] else self.cliques[b]

    def _bucket(self, items: Sequence[tuple[frozenset[str], tuple[str, ...], int, int]],
                x: str | None, lead: tuple[str, ...] = ()) -> int:
        """A clique over the union of the items' scopes: ``lead`` first, the largest item's
        variables last in its own order (the bucket program walks trailing variables in blocks,
        where that item's reads are then the most regular: water 8.7 -> 8.2 ms, barley 26.5 ->
        25.3 ms, single thread), and ``x``, the variable summed out, after them."""
        names: list[str] = list(lead)
        tail: list[str] = []
        if items:
            largest = max(items, key=lambda it: len(it[1]))[1]
            tail = [v for v in largest if v != x and v not in names]
        for _, scope, _, _ in items:
            names += [v for v in scope if v not in names and v != x and v not in tail]
        names += tail
        if x is not None:
            names.append(x)
        b = len(self.cliques)
        self.cliques.append(tuple(names))
        self.n_sum.append(0 if x is None else 1)
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
        Clique entries walked by the query trees run here, each distinct bucket once (a sparse
        bucket's nonzero entries weighted as
        :func:`~pgm.inference._bucket_support.bucket_work` does, a split's matrix products
        as the entries walked in their estimated time).
    left : list of str
        Variables whose query tree is cheaper in torch (not answered by :meth:`run`).
    left_entries : int
        Clique entries of their query trees (what variable elimination on them will create).
    """

    def __init__(self, model: DiscreteModel, evidence_vars: Sequence[str],
                 variables: Sequence[str], order: OrderSpec = "min_fill") -> None:
        self.model = model
        self.evidence_vars = tuple(sorted(evidence_vars))
        self._factors = model.factors()
        parents = getattr(model, "parents", None)
        if isinstance(parents, dict):
            self._factors, parents = drop_vacuous_parents(self._factors, parents)
        cards = model.cards
        observed = set(self.evidence_vars)
        scopes = [tuple(v for v in f.variables if v not in observed) for f in self._factors]
        f_support = [factor_support(f, observed) for f in self._factors]
        zeros = [not s.all() for _, s in f_support]
        trees = []
        for q in variables:
            relevant = self._relevant(q, parents)
            # a tree with no zero in its tables is dense throughout: its large buckets may
            # split into matrix products (sparse buckets walk their nonzero entries instead)
            trees.append(_QueryTree(q, relevant, scopes, cards, order,
                                    split=not any(zeros[k] for k in relevant)))
        memo: dict[tuple[object, ...], tuple[int, np.ndarray]] = {}
        supports = [bucket_supports(t, f_support, cards, memo)
                    if sum(t.sizes) <= SUPPORT_ENTRIES and any(zeros[k] for k, _ in t.factors)
                    else None for t in trees]
        decided: dict[tuple[object, ...], Split | None] = {}
        for i, t in enumerate(trees):
            sup = supports[i]
            if sup is not None:
                t.split_buckets(functools.partial(self._sparse_split, t, sup, f_support, cards,
                                                  decided), cards)
                if any(t.split):
                    supports[i] = bucket_supports(t, f_support, cards, memo)
        nonzero = [None if s is None else [int(np.count_nonzero(a)) for a in s] for s in supports]
        keep = [FOREST_NS_PER_ENTRY * (sum(t.work) if nz is None else sum(
                    bucket_work(n, z) if d is None else w
                    for n, z, d, w in zip(t.sizes, nz, t.split, t.work, strict=True)))
                <= LEFT_NS_PER_QUERY + LEFT_NS_PER_ENTRY * sum(t.sizes)
                for t, nz in zip(trees, nonzero, strict=True)]
        self.left = [t.query for t, k in zip(trees, keep, strict=True) if not k]
        self.left_entries = sum(sum(t.sizes) for t, k in zip(trees, keep, strict=True)
                                if not k)
        self._trees = [t for t, k in zip(trees, keep, strict=True) if k]
        self._supports: list[list[np.ndarray] | None] | None = [
            s for s, k in zip(supports, keep, strict=True) if k]
        self._plan = BucketPlan(self._trees,
                                [nz for nz, k in zip(nonzero, keep, strict=True) if k])
        self.entries = round(self._plan.entries)
        self._cards = dict(cards)
        self._built: BucketProgram | None = None

    @staticmethod
    def _sparse_split(tree: _QueryTree, support: Sequence[np.ndarray],
                      f_support: Sequence[tuple[tuple[str, ...], np.ndarray]],
                      cards: Mapping[str, int], decided: dict[tuple[object, ...], Split | None],
                      b: int) -> Split | None:
        """:func:`best_sparse_split` for bucket ``b`` of a tree with zeros (``support``: its
        buckets' supports), once per distinct bucket (``decided``)."""
        key = (tree.cliques[b], tree.n_sum[b], tuple(tree.assigned[b]),
               tuple(id(support[c]) for c in tree.children[b]))
        if key not in decided:
            decided[key] = best_sparse_split(
                [f_support[k] for k in tree.assigned[b]]
                + [(tree.message_vars(c), message_support(support[c], tree.n_sum[c]))
                   for c in tree.children[b]], tree.summed(b), cards)
        return decided[key]

    def estimated_ns(self) -> float:
        """The rough time of one evidence row (nanoseconds, 2 CPU cores): the program's entries
        and the queries left to the caller (:data:`FOREST_NS_PER_ENTRY` and after it)."""
        return (FOREST_NS_PER_ENTRY * self.entries + LEFT_NS_PER_QUERY * len(self.left)
                + LEFT_NS_PER_ENTRY * self.left_entries)

    @property
    def _program(self) -> BucketProgram:
        """The compiled program, built on first use (sizing the trees is cheaper, and decides
        whether they are used at all)."""
        if self._built is None:
            self._built = BucketProgram(self._trees, self._factors, self._cards,
                                        self.evidence_vars, self._supports, self._plan)
            self._supports = None  # held in the program's entry lists now
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

    def run(self, evidence: Mapping[str, Tensor | Sequence[int] | int]
            ) -> dict[str, Tensor] | None:
        """Posteriors of the answered variables for N evidence rows (state indices), shape
        (N, card) (or (card,) for scalar evidence); None when some row's sum came out zero
        (zero-probability evidence or underflow: the caller's log-space path tells them
        apart)."""
        given = [evidence[v] for v in self.evidence_vars]
        if given and all(isinstance(g, Tensor) and g.dim() == 0 for g in given):
            # one row as 0-d tensors (what resolve_evidence gives): two tensor calls, not 17
            scalar, ev = True, torch.stack(given).numpy().reshape(1, -1)  # type: ignore[arg-type]
        else:
            cols = [torch.as_tensor(g).reshape(-1) for g in given]
            scalar = all(torch.as_tensor(g).dim() == 0 for g in given)
            n = max((c.numel() for c in cols), default=1)
            ev = (torch.stack([c.expand(n) for c in cols], 1).numpy() if cols
                  else np.zeros((1, 0), dtype=np.int64))
        dtype = self._factors[0].log_values.dtype
        program = self._program
        marg, ok = program.run(ev)
        if not ok.all():
            return None
        m = torch.from_numpy(marg[0] if scalar else marg)
        m = m if dtype == torch.float64 else m.to(dtype)
        parts = m.split_with_sizes(program.marginal_cards, dim=-1)
        return dict(zip(program.marginal_vars, parts, strict=True))
