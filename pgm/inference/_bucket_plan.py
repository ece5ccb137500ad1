"""Which buckets a list of query trees runs, each how, and how they are split among threads.

Query trees of one model repeat each other's lower buckets: two queries whose ancestral sets
overlap eliminate the same variables from the same tables in the same order (munin1 with five
evidence variables: 1.15e7 entries in all trees, 5.2e6 in distinct buckets). A bucket is the
same when its clique, its tables and its incoming messages are, so buckets are matched bottom
up and each distinct one is run once.

Each bucket is *sparse* when listing its nonzero entries costs less than walking its clique
(:func:`~pgm.inference._bucket_support.bucket_work`), and its message is *compact* (only its
nonzero entries stored) when it goes from a sparse bucket to a sparse bucket.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference._query_forest import _QueryTree
>>> from pgm.inference._bucket_plan import BucketPlan
>>> asia = bundled_network("asia")
>>> scopes = [f.variables for f in asia.factors()]
>>> trees = [_QueryTree(q, range(len(scopes)), scopes, asia.cards, "min_fill")
...          for q in ("either", "dysp")]
>>> plan = BucketPlan(trees, [None, None])
>>> len(plan.work) < sum(len(t.cliques) for t in trees)  # shared lower buckets
True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pgm.inference._bucket_support import bucket_work

if TYPE_CHECKING:
    from pgm.inference._query_forest import _QueryTree

__all__ = ["BucketPlan"]

#: The speed of each of two threads running groups side by side, relative to one thread alone
#: (measured on the 2-vCPU CI machine, where the gathers share memory bandwidth: water with 5
#: evidence variables, 4.3 ms on one thread, 3.2 ms on two with 53% of the work each).
THREAD_SPEED = 0.68


def _sparse_left(tree: _QueryTree, b: int, p: int) -> bool:
    """Whether bucket ``b`` is the left side of a sparse split at its parent ``p``."""
    found = tree.split[p]
    return found is not None and found.sparse and tree.children[p][0] == b


class BucketPlan:
    """The distinct buckets of a list of query trees.

    Parameters
    ----------
    trees : list of _QueryTree
    nonzero : list of (list of int, or None)
        Per tree, each bucket's nonzero entries (None: all of them).

    Attributes
    ----------
    gid : list of list of int
        Per tree, per bucket: the distinct bucket it is (ids are children first).
    first : list of (int, int)
        Per distinct bucket: the tree and bucket where it first occurs.
    sparse, compact : list of list of bool
        Per tree, per bucket: whether it walks only its nonzero entries, and whether its
        message holds only its nonzero entries.
    work : list of float
        Per distinct bucket: its walking cost in dense-entry units.
    tree_buckets : list of list of int
        Per tree: the distinct buckets it needs, children first.
    entries : float
        The total work.
    """

    def __init__(self, trees: Sequence[_QueryTree],
                 nonzero: Sequence[Sequence[int] | None]) -> None:
        self.gid: list[list[int]] = []
        self.first: list[tuple[int, int]] = []
        self.sparse: list[list[bool]] = []
        self.compact: list[list[bool]] = []
        self.work: list[float] = []
        self.tree_buckets: list[list[int]] = []
        seen: dict[tuple[object, ...], int] = {}
        for ti, t in enumerate(trees):
            nz = nonzero[ti] if nonzero[ti] is not None else t.sizes
            assert nz is not None
            sparse = [bool(t.assigned[b] or t.children[b]) and t.split[b] is None
                      and bucket_work(t.sizes[b], nz[b]) < t.sizes[b]
                      for b in range(len(t.cliques))]
            # (a sparse split's products read the left side's nonzero entries alone)
            compact = [p >= 0 and sparse[b] and (sparse[p] or _sparse_left(t, b, p))
                       for b, p in enumerate(t.parent)]
            gid: list[int] = []
            for b, clique in enumerate(t.cliques):
                key = (clique, t.query if b == t.root else (t.n_sum[b], compact[b]),
                       tuple(sorted(t.assigned[b])),
                       tuple(sorted(gid[c] for c in t.children[b])))
                if key not in seen:
                    seen[key] = len(self.work)
                    self.first.append((ti, b))
                    self.work.append(bucket_work(t.sizes[b], nz[b]) if sparse[b]
                                     else float(t.work[b]))
                gid.append(seen[key])
            self.gid.append(gid)
            self.sparse.append(sparse)
            self.compact.append(compact)
            self.tree_buckets.append(sorted(set(gid)))
        self.entries = sum(self.work)
        self._groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def split(self, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """The groups to run one evidence row on ``threads`` threads: :meth:`groups` of
        ``threads``, unless the buckets that several groups share make one group (one thread)
        the faster, each of several threads running at :data:`THREAD_SPEED` of one alone."""
        if -threads not in self._groups:  # (the choice, kept under a negative key)
            one = self.groups(1)
            start, flat = self.groups(max(threads, 1))
            work = np.asarray(self.work)
            heaviest = max(float(work[flat[a:b]].sum()) for a, b in itertools.pairwise(start))
            self._groups[-threads] = (start, flat) if (
                threads > 1 and heaviest / THREAD_SPEED < self.entries) else one
        return self._groups[-threads]

    def groups(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The trees split into ``n`` groups, each run by one task: group starts, and each
        group's buckets (those of its trees, children first).

        Trees go largest first to the group that would then finish first, counting only the
        buckets that group does not already run, so trees that share buckets tend to share a
        group (a bucket two groups need is run by both)."""
        if n not in self._groups:
            work = self.work
            load = [0.0] * n
            members: list[set[int]] = [set() for _ in range(n)]
            tree_work = [sum(work[b] for b in bs) for bs in self.tree_buckets]
            for t in sorted(range(len(tree_work)), key=lambda t: -tree_work[t]):
                extra = [sum(work[b] for b in self.tree_buckets[t] if b not in m)
                         for m in members]
                g = min(range(n), key=lambda g: load[g] + extra[g])
                members[g].update(self.tree_buckets[t])
                load[g] += extra[g]
            runs = [sorted(m) for m in members if m] or [[]]
            start = np.cumsum([0] + [len(m) for m in runs]).astype(np.int64)
            flat = np.asarray([b for m in runs for b in m], dtype=np.int64)
            self._groups[n] = (start, flat)
        return self._groups[n]
