"""Graph algorithms for graphical models: ordering, moralisation, cliques, d-separation.

Graphs are plain dicts: a DAG as ``node -> parents`` and an undirected graph as
``node -> set of neighbours``. Everything is deterministic (ties broken by insertion order).

Examples
--------
>>> from pgm.graph import moral_graph, d_separated
>>> parents = {"a": (), "b": (), "c": ("a", "b")}     # collider a -> c <- b
>>> d_separated(parents, {"a"}, {"b"}, set()), d_separated(parents, {"a"}, {"b"}, {"c"})
(True, False)
>>> sorted(moral_graph(parents)["a"])
['b', 'c']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

from probforge.errors import CycleError, UnknownVariableError, ValidationError
from probforge.validate import check_names

__all__ = [
    "all_cliques",
    "children_of",
    "d_separated",
    "markov_blanket",
    "maximal_cliques",
    "moral_graph",
    "topological_order",
    "undirected_from_scopes",
]

Parents = Mapping[str, Sequence[str]]
Adjacency = dict[str, set[str]]


def _check_known(parents: Parents) -> None:
    for v, ps in parents.items():
        for p in ps:
            if p not in parents:
                raise UnknownVariableError(
                    f"node {v!r}", f"has parent {p!r}, which is not a node of the graph",
                    fix="add a CPD for it or correct the parent's name",
                )


def topological_order(parents: Parents) -> list[str]:
    """Nodes ordered parents-first (Kahn's algorithm, stable in insertion order).

    Raises
    ------
    CycleError
        Naming one directed cycle edge by edge.
    UnknownVariableError
        If a parent is not a node.
    """
    _check_known(parents)
    indeg = {v: len(ps) for v, ps in parents.items()}
    kids = children_of(parents)
    queue = deque(v for v in parents if indeg[v] == 0)
    order: list[str] = []
    while queue:
        v = queue.popleft()
        order.append(v)
        for c in kids[v]:
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    if len(order) < len(parents):
        cycle = _find_cycle({v: ps for v, ps in parents.items() if indeg[v] > 0})
        edges = ", ".join(f"{a} -> {b}" for a, b in pairwise(cycle))
        raise CycleError(
            "graph", "is not acyclic", found=f"the cycle {edges}",
            fix="remove or reverse one of these edges",
        )
    return order


def _find_cycle(parents: Parents) -> list[str]:
    """One directed cycle among nodes that all lie on or lead into cycles."""
    start = next(iter(parents))
    seen: dict[str, int] = {}
    path: list[str] = []
    v = start
    while v not in seen:  # walk backwards along parents; every node here has one in the set
        seen[v] = len(path)
        path.append(v)
        v = next(p for p in parents[v] if p in parents)
    cycle = [*path[seen[v]:], v]
    return cycle[::-1]  # parent -> child direction


def children_of(parents: Parents) -> dict[str, list[str]]:
    """``node -> children`` for a DAG given as ``node -> parents``."""
    kids: dict[str, list[str]] = {v: [] for v in parents}
    for v, ps in parents.items():
        for p in ps:
            kids[p].append(v)
    return kids


def moral_graph(parents: Parents) -> Adjacency:
    """Moralise a DAG (textbook 11.26): link co-parents, drop directions."""
    _check_known(parents)
    adj: Adjacency = {v: set() for v in parents}
    for v, ps in parents.items():
        for p in ps:
            adj[v].add(p)
            adj[p].add(v)
        for i, p in enumerate(ps):
            for q in ps[i + 1:]:
                adj[p].add(q)
                adj[q].add(p)
    return adj


def undirected_from_scopes(scopes: Iterable[Sequence[str]], nodes: Iterable[str] = ()) -> Adjacency:
    """Interaction graph: variables sharing a factor are neighbours."""
    adj: Adjacency = {v: set() for v in nodes}
    for s in scopes:
        for v in s:
            adj.setdefault(v, set()).update(u for u in s if u != v)
    return adj


def markov_blanket(parents: Parents, node: str) -> set[str]:
    """Parents, children and the children's other parents of ``node`` (one node name)."""
    if not isinstance(node, str):
        raise ValidationError("markov_blanket", "a node is given by its name (str)",
                              found=repr(node))
    if node not in parents:
        raise UnknownVariableError("graph", f"has no node {node!r}")
    kids = children_of(parents)[node]
    blanket = set(parents[node]) | set(kids)
    for c in kids:
        blanket |= set(parents[c])
    blanket.discard(node)
    return blanket


def maximal_cliques(adj: Mapping[str, set[str]]) -> list[frozenset[str]]:
    """Maximal cliques by Bron-Kerbosch with pivoting."""
    out: list[frozenset[str]] = []

    def expand(r: set[str], p: set[str], x: set[str]) -> None:
        if not p and not x:
            out.append(frozenset(r))
            return
        pivot = max(p | x, key=lambda u: len(adj[u] & p))
        for v in list(p - adj[pivot]):
            expand(r | {v}, p & adj[v], x & adj[v])
            p.discard(v)
            x.add(v)

    expand(set(), set(adj), set())
    return out


def all_cliques(adj: Mapping[str, set[str]], min_size: int = 1) -> list[frozenset[str]]:
    """Every clique (every subset of a maximal clique) with at least ``min_size`` nodes."""
    from itertools import combinations

    found: set[frozenset[str]] = set()
    for mc in maximal_cliques(adj):
        members = sorted(mc)
        for k in range(min_size, len(members) + 1):
            found.update(frozenset(c) for c in combinations(members, k))
    return sorted(found, key=lambda c: (len(c), sorted(c)))


def d_separated(parents: Parents, x: Iterable[str] | str, y: Iterable[str] | str,
                given: Iterable[str] | str) -> bool:
    """Whether ``x`` and ``y`` are d-separated by ``given`` in the DAG (reachability algorithm).

    Follows Koller & Friedman's Algorithm 3.1: a trail is active when every collider on it is
    in ``given`` or has a descendant there, and no other node on it is in ``given``. Each node
    set is a collection of names or one name (a str is one node, never its characters).
    """
    x = set(check_names(x, "d_separated x"))
    y = set(check_names(y, "d_separated y"))
    given = set(check_names(given, "d_separated given"))
    _check_known(parents)
    for v in (*x, *y, *given):
        if v not in parents:
            raise UnknownVariableError("graph", f"has no node {v!r}")
    kids = children_of(parents)
    # ancestors of the evidence (colliders there or above them are open)
    anc: set[str] = set()
    stack = list(given)
    while stack:
        v = stack.pop()
        if v not in anc:
            anc.add(v)
            stack.extend(parents[v])
    # (node, direction): "up" = reached from a child, "down" = reached from a parent
    visited: set[tuple[str, str]] = set()
    queue = deque((v, "up") for v in x)
    while queue:
        v, d = queue.popleft()
        if (v, d) in visited:
            continue
        visited.add((v, d))
        if v not in given and v in y:
            return False
        if d == "up" and v not in given:
            queue.extend((p, "up") for p in parents[v])
            queue.extend((c, "down") for c in kids[v])
        elif d == "down":
            if v not in given:
                queue.extend((c, "down") for c in kids[v])
            if v in anc:  # collider with evidence at or below it
                queue.extend((p, "up") for p in parents[v])
    return True
