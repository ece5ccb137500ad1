"""A large dense bucket split into two smaller products and one batched matrix product.

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

:func:`best_split` picks the grouping of a bucket's inputs with the lowest estimated time, if
it beats walking the clique (:data:`SPLIT_GAIN`).

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
from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = ["SPLIT_MIN_ENTRIES", "Split", "best_split", "contraction_ns", "walk_ns"]

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


class Split(NamedTuple):
    """Two groups of a bucket's inputs (positions) and the variables' roles: kept by both
    (``batch``), kept by one (``free_left``, ``free_right``), summed out over both
    (``contracted``), summed out inside one group's own product (``sum_left``,
    ``sum_right``)."""

    left: tuple[int, ...]
    right: tuple[int, ...]
    batch: tuple[str, ...]
    free_left: tuple[str, ...]
    free_right: tuple[str, ...]
    contracted: tuple[str, ...]
    sum_left: tuple[str, ...]
    sum_right: tuple[str, ...]
    cost: float

    def dims(self, cards: Mapping[str, int]) -> tuple[int, int, int, int]:
        """(batch, left free, right free, contracted) state counts."""
        return (_size(self.batch, cards), _size(self.free_left, cards),
                _size(self.free_right, cards), _size(self.contracted, cards))


def _size(variables: Sequence[str], cards: Mapping[str, int]) -> int:
    return math.prod(cards[v] for v in variables)


def walk_ns(entries: int) -> float:
    """Estimated time of walking a dense bucket of ``entries`` clique entries."""
    return WALK_NS * entries


def contraction_ns(dims: tuple[int, int, int, int]) -> float:
    """Estimated time of the matrix products of a split with these dims."""
    nb, fl, fr, nc = dims
    return nb * fl * fr * nc * (DOT_NS + DOT_PASS_NS / nc)


def best_split(scopes: Sequence[Sequence[str]], summed: Sequence[str],
               cards: Mapping[str, int]) -> Split | None:
    """The cheapest split of a bucket with inputs over ``scopes`` that sums out ``summed``, or
    None when walking the clique is estimated at most 1 / SPLIT_GAIN times slower (or the
    bucket is small or has one input)."""
    clique = list(dict.fromkeys(v for s in scopes for v in s))
    size = _size(clique, cards)
    if len(scopes) < 2 or size < SPLIT_MIN_ENTRIES:
        return None
    gone = set(summed)
    best: Split | None = None
    n = len(scopes)
    # every grouping into two non-empty sides, input 0 on the left
    for mask in range(1 << (n - 1)):
        left = tuple(i for i in range(n) if i == 0 or mask >> (i - 1) & 1)
        right = tuple(i for i in range(n) if i not in left)
        if not right:
            continue
        sl = set(itertools.chain.from_iterable(scopes[i] for i in left))
        sr = set(itertools.chain.from_iterable(scopes[i] for i in right))
        split = Split(
            left, right,
            batch=tuple(v for v in clique if v in sl and v in sr and v not in gone),
            free_left=tuple(v for v in clique if v in sl and v not in sr and v not in gone),
            free_right=tuple(v for v in clique if v in sr and v not in sl and v not in gone),
            contracted=tuple(v for v in clique if v in sl and v in sr and v in gone),
            sum_left=tuple(v for v in clique if v in sl and v not in sr and v in gone),
            sum_right=tuple(v for v in clique if v in sr and v not in sl and v in gone),
            cost=0.0)
        cost = (walk_ns(_size(list(sl), cards)) + walk_ns(_size(list(sr), cards))
                + contraction_ns(split.dims(cards)))
        if best is None or cost < best.cost:
            best = split._replace(cost=cost)
    if best is None or best.cost > SPLIT_GAIN * walk_ns(size):
        return None
    return best
