"""A large bucket split into two smaller products and the matrix products that join them.

A bucket multiplies its inputs over its whole clique and sums out some variables; walked entry
by entry that costs a few gathered reads per clique entry (about 1.4 ns on the CI machine).
When the inputs fall into two groups whose own scopes are much smaller than the clique, the
bucket is ``sum_c L[b, l, c] R[b, r, c]``: each group's product (``L``, ``R``: two ordinary
buckets over the group's scope, summing out what only that group holds) and then, per state
of the shared kept variables ``b``, a matrix product over the shared summed-out variables
``c``, whose inner loop runs over contiguous memory at about 0.1 ns per multiply-add. Barley's
``protein`` query has a bucket of 1.2e6 entries whose two messages hold 3.5e4 and 1.7e4: 1.7
ms walked, 0.15 ms as six 72 x 80 by 80 x 35 products. Sweeping all 48 of barley's queries
without evidence takes 1.0 ms with splits where it took 6.1 ms.

A bucket whose product is mostly structural zeros lists its nonzero entries instead of walking
its clique (:mod:`pgm.inference._bucket_support`). It may split too, when one side's message
is sparse and the other's dense: then each nonzero entry of the left message scales a
contiguous row of the right one into a row of the output (mildew's 19 such splits: 0.57 ->
0.46 ms for all 35 posteriors; water 0.144 -> 0.134 ms, munin1 0.184 -> 0.175 ms; 2 threads).

:func:`best_split` (dense buckets) and :func:`best_sparse_split` (buckets with zeros) pick the
grouping of a bucket's inputs with the lowest estimated time, if it beats the bucket as it is
(:data:`SPLIT_GAIN`, :data:`SPARSE_SPLIT_GAIN`). A side that is one incoming message, summing
nothing, is that message itself, laid out by its own bucket as the products read it.

Examples
--------
>>> from pgm.inference._bucket_split import best_split
>>> cards = dict.fromkeys("abcdexy", 10)
>>> s = best_split([("a", "b", "x", "y"), ("x", "y", "c", "d")], ("x", "y"), cards)
>>> s.left, s.right, s.contracted
((0,), (1,), ('x', 'y'))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from pgm.inference._bucket_support import message_support, support_product

__all__ = ["SPLIT_MIN_ENTRIES", "Split", "best_sparse_split", "best_split", "contraction_ns",
           "sparse_contraction_ns", "walk_ns"]

#: Buckets below this many clique entries are walked (a split saves less than it costs) ...
SPLIT_MIN_ENTRIES = 2**12
#: ... and a larger one is split when the estimate of the split's time is below this fraction
#: of the walk's. Measured on barley (2 threads, all posteriors; without evidence / with 5
#: evidence variables): no splits 6.1 / 0.91 ms; 2**14 and 0.6: 1.9 / 0.89 ms; 2**12 and 0.6:
#: 1.6 / 0.54 ms; 2**12 and 1.0: 1.0 / 0.39 ms (1.5: no better beyond the noise).
SPLIT_GAIN = 1.0
#: Estimated nanoseconds per clique entry walked (2 threads on the CI machine, barley and
#: water's dense buckets) ...
WALK_NS = 1.4
#: ... and per multiply-add of the matrix products: a fixed part plus a part per inner-loop
#: pass, which is short when few states are contracted (single thread, measured: 0.12 ns with
#: 80 contracted states, 0.21 with 50, 0.5 with 10).
DOT_NS = 0.1
DOT_PASS_NS = 4.0
#: A bucket with zeros is split when the estimate is below this fraction of its own (on
#: mildew's query of dm_4, single thread, the splits estimated at 0.43-0.79 of the bucket
#: each saved 8-81 us; those at 0.86-0.96 each lost 7-105 us. All 35 posteriors, 2 threads,
#: with the final kernel: 0.8 457 us, 0.9 507, 1.0 565, 1.1 579; 0.5-0.7 slower than 0.8).
SPARSE_SPLIT_GAIN = 0.8
#: Estimated nanoseconds per listed entry of a sparse bucket (single thread, mildew: 8.4e5
#: entries in 0.86 ms) ...
LIST_NS = 1.0
#: ... and of sparse products: per nonzero entry of the left message (its offsets read, two
#: rows found) and per multiply-add along the contiguous row of the right message it scales
#: (measured: 3.7 ns per entry with rows of 4, 5.1 with 20, 15.7 with 112).
SPARSE_ENTRY_NS = 3.0
SPARSE_NS = 0.12
#: ... and per entry of their dense output (zeroed, summed and divided by its total), where
#: the bucket they replace may have stored its nonzero entries alone.
SPARSE_OUT_NS = 0.5
#: Buckets with zeros are split only with this many inputs or fewer (each grouping's
#: supports are formed to size it).
MAX_SPARSE_INPUTS = 4


class Split(NamedTuple):
    """Two groups of a bucket's inputs (positions) and the variables' roles: kept by both
    (``batch``), kept by one (``free_left``, ``free_right``), summed out over both
    (``contracted``), summed out inside one group's own product (``sum_left``,
    ``sum_right``); the estimated time of the matrix products (ns) and of the whole split.

    ``sparse``: the left side's message is mostly zero, and the products run over its
    nonzero entries only (each adds a row of the right side's message, laid out as (batch,
    contracted, right) for that); else both are dense, the right one laid out as (batch,
    right, contracted)."""

    left: tuple[int, ...]
    right: tuple[int, ...]
    batch: tuple[str, ...]
    free_left: tuple[str, ...]
    free_right: tuple[str, ...]
    contracted: tuple[str, ...]
    sum_left: tuple[str, ...]
    sum_right: tuple[str, ...]
    product_ns: float = 0.0
    cost: float = 0.0
    sparse: bool = False

    def dims(self, cards: Mapping[str, int]) -> tuple[int, int, int, int]:
        """(batch, left free, right free, contracted) state counts."""
        return (_size(self.batch, cards), _size(self.free_left, cards),
                _size(self.free_right, cards), _size(self.contracted, cards))

    def left_clique(self) -> tuple[str, ...]:
        """The left side's bucket: its message is (batch, left, contracted)."""
        return (*self.batch, *self.free_left, *self.contracted, *self.sum_left)

    def right_clique(self) -> tuple[str, ...]:
        """The right side's bucket, its message laid out as the products read it."""
        if self.sparse:
            return (*self.batch, *self.contracted, *self.free_right, *self.sum_right)
        return (*self.batch, *self.free_right, *self.contracted, *self.sum_right)


def _size(variables: Sequence[str], cards: Mapping[str, int]) -> int:
    return math.prod(cards[v] for v in variables)


def walk_ns(entries: float) -> float:
    """Estimated time of walking a dense bucket of ``entries`` clique entries."""
    return WALK_NS * entries


def contraction_ns(dims: tuple[int, int, int, int]) -> float:
    """Estimated time of the dense matrix products of a split with these dims."""
    nb, fl, fr, nc = dims
    return nb * fl * fr * nc * (DOT_NS + DOT_PASS_NS / nc)


def sparse_contraction_ns(nonzero: int, free_right: int) -> float:
    """Estimated time of the sparse products: per nonzero entry of the left message, a row of
    ``free_right`` multiply-adds."""
    return nonzero * (SPARSE_ENTRY_NS + SPARSE_NS * free_right)


def _groupings(scopes: Sequence[Sequence[str]], summed: Sequence[str], both: bool
               ) -> Iterator[Split]:
    """Every grouping of the inputs into two non-empty sides (input 0 on the left unless
    ``both``), with the variables' roles, each in the order of the right side's inputs, then
    the left's (a right side that is one split's products then often has the layout they
    write already, and needs no copy)."""
    gone = set(summed)
    n = len(scopes)
    masks = range(1, (1 << n) - 1, 1 if both else 2)
    for mask in masks:
        left = tuple(i for i in range(n) if mask >> i & 1)
        right = tuple(i for i in range(n) if not mask >> i & 1)
        clique = list(dict.fromkeys(v for i in (*right, *left) for v in scopes[i]))
        sl = set(itertools.chain.from_iterable(scopes[i] for i in left))
        sr = set(itertools.chain.from_iterable(scopes[i] for i in right))
        yield Split(
            left, right,
            batch=tuple(v for v in clique if v in sl and v in sr and v not in gone),
            free_left=tuple(v for v in clique if v in sl and v not in sr and v not in gone),
            free_right=tuple(v for v in clique if v in sr and v not in sl and v not in gone),
            contracted=tuple(v for v in clique if v in sl and v in sr and v in gone),
            sum_left=tuple(v for v in clique if v in sl and v not in sr and v in gone),
            sum_right=tuple(v for v in clique if v in sr and v not in sl and v in gone))


def best_split(scopes: Sequence[Sequence[str]], summed: Sequence[str],
               cards: Mapping[str, int]) -> Split | None:
    """The cheapest split of a dense bucket with inputs over ``scopes`` that sums out
    ``summed``, or None when it is not estimated faster than walking the clique
    (:data:`SPLIT_GAIN`), or the bucket is small or has one input."""
    size = _size(list(dict.fromkeys(v for s in scopes for v in s)), cards)
    if len(scopes) < 2 or size < SPLIT_MIN_ENTRIES:
        return None
    best: Split | None = None
    for split in _groupings(scopes, summed, both=False):
        sides = _size(split.left_clique(), cards) + _size(split.right_clique(), cards)
        product = contraction_ns(split.dims(cards))
        cost = walk_ns(sides) + product
        if best is None or cost < best.cost:
            best = split._replace(product_ns=product, cost=cost)
    if best is None or best.cost > SPLIT_GAIN * walk_ns(size):
        return None
    return best


def _listed_ns(support: np.ndarray) -> float:
    """Estimated time of a bucket with this support: walked, or its nonzero entries listed."""
    return min(WALK_NS * support.size, LIST_NS * int(np.count_nonzero(support)))


def best_sparse_split(operands: Sequence[tuple[tuple[str, ...], np.ndarray]],
                      summed: Sequence[str], cards: Mapping[str, int]) -> Split | None:
    """The cheapest split of a bucket with zeros, whose inputs are ``(scope, support)``
    pairs: each side walked or listed as its own support makes cheaper
    (:func:`~pgm.inference._bucket_support.bucket_work`), the products over the left
    message's nonzero entries; or None when that is not estimated faster than the bucket as
    it is (:data:`SPARSE_SPLIT_GAIN`), or it is small or has one input or more than
    :data:`MAX_SPARSE_INPUTS`."""
    scopes = [scope for scope, _ in operands]
    clique = tuple(dict.fromkeys(v for s in scopes for v in s))
    if not 2 <= len(scopes) <= MAX_SPARSE_INPUTS or _size(clique, cards) < SPLIT_MIN_ENTRIES:
        return None
    whole = support_product(clique, operands, cards)
    now = _listed_ns(whole)
    best: Split | None = None
    for split in _groupings(scopes, summed, both=True):
        split = split._replace(sparse=True)
        left = support_product(split.left_clique(), [operands[i] for i in split.left], cards)
        right = support_product(split.right_clique(), [operands[i] for i in split.right],
                                cards)
        nonzero = int(np.count_nonzero(message_support(left, len(split.sum_left))))
        nb, fl, fr, _ = split.dims(cards)
        product = sparse_contraction_ns(nonzero, fr) + SPARSE_OUT_NS * nb * fl * fr
        cost = _listed_ns(left) + _listed_ns(right) + product
        if best is None or cost < best.cost:
            best = split._replace(product_ns=product, cost=cost)
    if best is None or best.cost > SPARSE_SPLIT_GAIN * now:
        return None
    return best
