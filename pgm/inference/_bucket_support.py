"""Where a query tree's bucket products can be nonzero: the support the bucket program walks.

Many networks' tables are mostly structural zeros (mildew's largest CPTs are 95% zero, water's
about half), and a bucket's product is zero wherever any of its inputs is, so most of its
clique can be skipped (mildew without evidence: 2.3e7 entries in all buckets, 1.9e6 of them
nonzero; water 2.1e6 and 2.4e5). The support is found once, in the Boolean semiring (product:
and, sum over the eliminated variable: or), with every evidence variable's states or-ed
together, so it holds for every evidence row; a row's own evidence only adds zeros.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference._query_forest import _QueryTree
>>> from pgm.inference._bucket_support import bucket_supports, factor_support
>>> asia = bundled_network("asia")
>>> fs = [factor_support(f, ()) for f in asia.factors()]
>>> scopes = [scope for scope, _ in fs]
>>> tree = _QueryTree("either", range(len(fs)), scopes, asia.cards, "min_fill")
>>> sup = bucket_supports(tree, fs, asia.cards)
>>> [s.shape == tuple(asia.cards[v] for v in c) for s, c in zip(sup, tree.cliques)][:3]
[True, True, True]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pgm.factor import Factor

if TYPE_CHECKING:
    from pgm.inference._query_forest import _QueryTree

__all__ = ["SPARSE_COST", "bucket_supports", "bucket_work", "factor_support", "message_support",
           "support_product"]

#: The time of one listed entry of a sparse bucket (gathered through its position), in entries
#: of a dense one (a unit-stride or table-indexed walk that vectorises).
SPARSE_COST = 1.5


def bucket_work(size: int, nonzero: int) -> float:
    """A bucket's walking cost in dense-entry units: its listed entries if that is cheaper
    than walking all ``size`` entries."""
    return min(float(size), SPARSE_COST * nonzero)


def factor_support(factor: Factor, observed: Collection[str]) -> tuple[tuple[str, ...],
                                                                        np.ndarray]:
    """A factor's nonzero entries (bool), its observed variables or-ed out: (scope, array)."""
    s = (factor.log_values > -math.inf).detach().to("cpu").numpy()
    scope = list(factor.variables)
    for axis in reversed(range(len(scope))):
        if scope[axis] in observed:
            s = np.asarray(s.any(axis=axis))
            del scope[axis]
    return tuple(scope), s


def bucket_supports(tree: _QueryTree, factors: Sequence[tuple[tuple[str, ...], np.ndarray]],
                    cards: Mapping[str, int],
                    memo: dict[tuple[object, ...], tuple[int, np.ndarray]] | None = None
                    ) -> list[np.ndarray]:
    """Per bucket of ``tree`` (children before parents), where its product over its clique can
    be nonzero for some evidence: a bool array shaped by the clique's cards, in clique order.

    Parameters
    ----------
    tree : _QueryTree
    factors : list of (scope, bool array)
        The model's factors' supports (:func:`factor_support`), indexed by ``tree.factors``.
    cards : dict str -> int
    memo : dict, optional
        Supports of buckets already found (for other trees of the same model): a bucket with
        the same clique, factors and incoming buckets has the same support.
    """
    memo = {} if memo is None else memo
    out: list[np.ndarray] = []
    ids: list[int] = []
    for b, clique in enumerate(tree.cliques):
        key = (clique, tuple(sorted(tree.assigned[b])),
               tuple(sorted(ids[c] for c in tree.children[b])))
        if key not in memo:
            memo[key] = (len(memo), support_product(
                clique, [factors[k] for k in tree.assigned[b]]
                + [(tree.message_vars(c), message_support(out[c], tree.n_sum[c]))
                   for c in tree.children[b]],
                cards))
        ids.append(memo[key][0])
        out.append(memo[key][1])
    return out


def message_support(support: np.ndarray, n: int) -> np.ndarray:
    """A bucket's message support: its support or-ed over its ``n`` trailing variables."""
    return np.asarray(support.any(axis=tuple(range(support.ndim - n, support.ndim))))


def support_product(clique: tuple[str, ...],
                    operands: Sequence[tuple[tuple[str, ...], np.ndarray]],
                    cards: Mapping[str, int]) -> np.ndarray:
    """The Boolean product of the operands over the clique (in its order).

    Each operand is laid along the clique's axes and and-ed in by broadcasting (einsum on
    bool arrays is 3x slower: mildew's largest bucket 8.8 -> 2.7 ms)."""
    pos = {v: i for i, v in enumerate(clique)}
    prod: np.ndarray | None = None
    for scope, s in operands:
        axes = sorted(range(len(scope)), key=lambda a: pos[scope[a]])
        held = set(scope)
        view = np.transpose(s, axes).reshape([cards[v] if v in held else 1 for v in clique])
        prod = view if prod is None else prod & view
    shape = tuple(cards[v] for v in clique)
    # a variable no operand holds (a query with no table left) is unconstrained
    return np.ones(shape, dtype=np.bool_) if prod is None else np.broadcast_to(prod, shape)
