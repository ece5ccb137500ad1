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
>>> from pgm.inference._bucket_support import bucket_supports
>>> asia = bundled_network("asia")
>>> fs = asia.factors()
>>> scopes = [f.variables for f in fs]
>>> tree = _QueryTree("either", range(len(fs)), scopes, asia.cards, "min_fill")
>>> sup = bucket_supports(tree, fs, asia.cards, ())
>>> [s.shape == tuple(asia.cards[v] for v in c) for s, c in zip(sup, tree.cliques)][:3]
[True, True, True]
"""

from __future__ import annotations

import math
import string
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pgm.factor import Factor

if TYPE_CHECKING:
    from pgm.inference._query_forest import _QueryTree

__all__ = ["SPARSE_COST", "bucket_supports", "bucket_work", "factor_support"]

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


def bucket_supports(tree: _QueryTree, factors: Sequence[Factor], cards: Mapping[str, int],
                    observed: Collection[str]) -> list[np.ndarray]:
    """Per bucket of ``tree`` (children before parents), where its product over its clique can
    be nonzero for some evidence: a bool array shaped by the clique's cards, in clique order.

    Parameters
    ----------
    tree : _QueryTree
    factors : list of Factor
        The model's factors (full scopes), indexed by ``tree.factors``.
    cards : dict str -> int
    observed : collection of str
        Hard-evidence variables (any of their states may be observed).
    """
    out: list[np.ndarray] = []
    messages: dict[int, tuple[tuple[str, ...], np.ndarray]] = {}
    for b, clique in enumerate(tree.cliques):
        letter = dict(zip(clique, string.ascii_letters, strict=False))
        operands = [factor_support(factors[k], observed) for k in tree.assigned[b]]
        operands += [messages.pop(c) for c in tree.children[b]]
        shape = tuple(cards[v] for v in clique)
        if operands:
            spec = ",".join("".join(letter[v] for v in scope) for scope, _ in operands)
            held = {v for scope, _ in operands for v in scope}
            prod = np.einsum(f"{spec}->{''.join(letter[v] for v in clique if v in held)}",
                             *(s for _, s in operands))
            # a variable no operand holds (a query with no table left) is unconstrained
            prod = np.broadcast_to(
                prod.reshape([cards[v] if v in held else 1 for v in clique]), shape)
        else:
            prod = np.ones(shape, dtype=np.bool_)
        out.append(prod)
        if b != tree.root:
            messages[b] = (clique[:-1], prod.any(axis=-1))
    return out
