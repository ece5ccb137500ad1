"""Upward junction-tree messages that are exactly one: barren subtrees of a Bayesian network.

Sum out every variable of a subtree that is not in its separator. When each factor assigned in
the subtree is the conditional distribution p(d | parents) of one of those summed variables d
(normalised, with no hard or soft evidence on d), the sum is a product of normalised conditionals
over all of them, so the upward message is 1 for every separator state: the subtree is *barren*
given the separator (pgmpy's VariableElimination prunes the same nodes per query). Its message
need not be computed, multiplied in or divided out again.

Which messages are ones depends on the root and on which covering clique each factor is given.
:func:`plan_rooting` tries a few roots and two assignments (the junction tree's own: smallest
covering clique; and the covering clique nearest the root) and keeps the cheapest, counting the
clique entries the upward pass and the potentials touch.

Examples
--------
>>> from pgm.inference._unit_messages import plan_rooting
>>> # chain a -> b -> c as cliques (a, b), (b, c): both CPDs of b and c sit below the root
>>> p = plan_rooting([("a", "b"), ("b", "c")], [(0, 1)], [4, 4],
...                  [("a",), ("a", "b"), ("b", "c")], [0, 0, 1], [None, "b", "c"], set())
>>> p.root, p.unit, p.message_kinds()
(0, [False, True], [0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["RootedPlan", "normalised_head", "plan_rooting"]

#: Roots tried exhaustively up to this many cliques; beyond, a short list of likely ones.
_ALL_ROOTS = 16
_MAX_ROOTS = 8


class RootedPlan(NamedTuple):
    """A rooting of a junction tree and its factor assignment.

    root : int
    parent : list of int
        Each clique's parent (-1 for the root).
    order : list of int
        Breadth-first order from the root (parents before children).
    assignment : list of int
        Clique of each factor.
    unit : list of bool
        Per clique: its upward message is exactly one (always False for the root).
    """

    root: int
    parent: list[int]
    order: list[int]
    assignment: list[int]
    unit: list[bool]

    def message_kinds(self) -> list[int]:
        """Per clique: 1 when its upward message is one (skipped); 2 when it lies below such a
        clique, whose sum is one only over the *exact* product of its subtree, so its message
        must be passed as computed, not divided by its sum; 0 otherwise (the root too)."""
        kind = [0] * len(self.parent)
        below = [False] * len(self.parent)
        for c in self.order[1:]:
            p = self.parent[c]
            below[c] = below[p] or self.unit[p]
            kind[c] = 1 if self.unit[c] else 2 if below[c] else 0
        return kind


def normalised_head(values: np.ndarray, variables: Sequence[str], head: str | None,
                    eps: float) -> str | None:
    """``head`` when the probability table ``values`` (axes in ``variables`` order) sums to one
    over the head's axis for every other index, within ``4 * card * eps``; else None.

    A table off by more (bnlearn files are off by up to 3e-7) keeps its exact products: its
    messages are computed, never assumed to be one.
    """
    if head is None or head not in variables or values.size == 0:
        return None
    axis = list(variables).index(head)
    sums = values.sum(axis=axis)
    tol = 4.0 * values.shape[axis] * eps
    return head if bool(np.all(np.abs(sums - 1.0) <= tol)) else None


def plan_rooting(cliques: Sequence[tuple[str, ...]], edges: Sequence[tuple[int, int]],
                 sizes: Sequence[int], scopes: Sequence[Sequence[str]],
                 assignment: Sequence[int], heads: Sequence[str | None],
                 soft_cliques: set[int]) -> RootedPlan:
    """The cheapest rooting and assignment of a junction tree's factors.

    Parameters
    ----------
    cliques : clique variables (hidden variables only)
    edges : tree edges
    sizes : entries of each clique's table
    scopes : hidden variables of each factor
    assignment : the tree's assignment of each factor (a clique covering its scope)
    heads : per factor, the hidden variable it is a normalised conditional distribution of,
        or None (any other factor, evidence on the head, or a table not normalised)
    soft_cliques : cliques that take a soft-evidence likelihood

    Without heads this is clique 0 as root, the given assignment and no unit messages.
    """
    n = len(cliques)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges:
        nbrs[i].append(j)
        nbrs[j].append(i)
    if not any(h is not None for h in heads):
        parent, order, _ = _bfs(nbrs, 0)
        return RootedPlan(0, parent, order, list(assignment), [False] * n)
    bit = {h: 1 << b for b, h in enumerate(h for h in heads if h is not None)}
    mask = [sum(bit.get(v, 0) for v in c) for c in cliques]
    holders: dict[str, list[int]] = {}
    for c, vs in enumerate(cliques):
        for v in vs:
            holders.setdefault(v, []).append(c)
    fits = [[c for c in (holders[s[0]] if s else range(n)) if set(s) <= set(cliques[c])]
            for s in scopes]
    if n <= _ALL_ROOTS:
        roots = list(range(n))
    else:  # the tree's first clique and the homes of the topologically first factors
        first = [c for k, h in enumerate(heads[:8]) if h is not None for c in fits[k]]
        roots = list(dict.fromkeys([0, *sorted(set(first), key=lambda c: sizes[c])]))
        roots = roots[:_MAX_ROOTS]
    best: tuple[int, RootedPlan] | None = None
    for r in roots:
        parent, order, depth = _bfs(nbrs, r)
        near = [min(f, key=lambda c: (depth[c], sizes[c])) for f in fits]
        for assign in (list(assignment), near):
            unit = _unit_messages(order, parent, mask, assign, heads, bit, soft_cliques)
            cost = sum(sizes[c] + sizes[parent[c]] for c in order[1:] if not unit[c])
            cost += sum(sizes[c] for c in assign)
            if best is None or cost < best[0]:
                best = (cost, RootedPlan(r, parent, order, assign, unit))
    assert best is not None
    return best[1]


def _bfs(nbrs: list[list[int]], root: int) -> tuple[list[int], list[int], list[int]]:
    n = len(nbrs)
    parent, depth = [-1] * n, [0] * n
    order, seen = [root], {root}
    for c in order:
        for k in nbrs[c]:
            if k not in seen:
                seen.add(k)
                parent[k] = c
                depth[k] = depth[c] + 1
                order.append(k)
    return parent, order, depth


def _unit_messages(order: list[int], parent: list[int], mask: list[int], assign: list[int],
                   heads: Sequence[str | None], bit: dict[str, int],
                   soft_cliques: set[int]) -> list[bool]:
    """Per clique, whether its subtree is barren given its separator (bitmasks of heads)."""
    n = len(order)
    below = [0] * n  # heads of the factors assigned in the subtree
    other = [c in soft_cliques for c in range(n)]  # a factor that is not such a conditional
    for k, c in enumerate(assign):
        h = heads[k]
        if h is None:
            other[c] = True
        else:
            below[c] |= bit[h]
    unit = [False] * n
    for c in reversed(order[1:]):
        p = parent[c]
        unit[c] = not other[c] and not (below[c] & mask[c] & mask[p])
        below[p] |= below[c]
        other[p] = other[p] or other[c]
    return unit
