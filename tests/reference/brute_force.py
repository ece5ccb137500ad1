"""Brute-force oracles: materialise the full joint table and reduce it directly.

Only for tiny models (the joint has prod(cards) entries); used to check every exact algorithm.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence

from torch import Tensor


def joint_table(
    factors: Sequence[Tensor], scopes: Sequence[Sequence[Hashable]], variables: Sequence[Hashable]
) -> Tensor:
    """Sum of all log-factors broadcast over ``variables``: shape batch + cards(variables)."""
    variables = tuple(variables)
    total: Tensor | None = None
    for f, scope in zip(factors, scopes, strict=True):
        scope = tuple(scope)
        nb = f.dim() - len(scope)
        perm = list(range(nb)) + [nb + scope.index(v) for v in variables if v in scope]
        g = f.permute(perm)
        shape = list(g.shape[:nb])
        it = iter(g.shape[nb:])
        shape += [next(it) if v in scope else 1 for v in variables]
        g = g.reshape(shape)
        total = g if total is None else _broadcast_add(total, g, len(variables))
    assert total is not None
    return total


def _broadcast_add(a: Tensor, b: Tensor, nvars: int) -> Tensor:
    nba, nbb = a.dim() - nvars, b.dim() - nvars
    if nba < nbb:
        a = a.reshape((1,) * (nbb - nba) + tuple(a.shape))
    elif nbb < nba:
        b = b.reshape((1,) * (nba - nbb) + tuple(b.shape))
    return a + b


def enumerate_assignments(cards: Sequence[int]) -> list[tuple[int, ...]]:
    """Every joint configuration, last variable fastest."""
    return list(itertools.product(*(range(c) for c in cards)))
