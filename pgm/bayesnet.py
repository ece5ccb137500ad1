"""Discrete Bayesian networks: a DAG with one tabular CPD per node.

The joint is ``p(x) = prod_k p(x_k | x_parents(k))`` (textbook 11.8). The network validates itself
at construction: unique nodes, known parents, acyclicity (a cycle is listed edge by edge), parent
state names and cardinalities that agree with the parents' own CPDs, rows that sum to one.

Examples
--------
>>> from pgm.bayesnet import BayesianNetwork
>>> from pgm.cpd import TabularCPD
>>> bn = BayesianNetwork([
...     TabularCPD("rain", [0.8, 0.2], states={"rain": ["no", "yes"]}),
...     TabularCPD("wet", [[0.9, 0.1], [0.2, 0.8]], parents=["rain"],
...                states={"wet": ["no", "yes"], "rain": ["no", "yes"]}),
... ])
>>> bn.variables, bn.num_free_parameters
(('rain', 'wet'), 3)
>>> round(float(bn.log_prob({"rain": "yes", "wet": "yes"}).exp()), 6)
0.16
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from pgm.cpd import TabularCPD
from pgm.factor import Factor, state_index
from pgm.graph import (
    children_of,
    d_separated,
    markov_blanket,
    moral_graph,
    topological_order,
)
from probforge.errors import (
    DtypeMismatchError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)
from probforge.ops import check_generator, gumbel
from probforge.validate import check_int, check_names

__all__ = ["BayesianNetwork", "assignment_tensor"]


def assignment_tensor(
    variables: Sequence[str],
    states: Mapping[str, Sequence[str]],
    assignment: Mapping[str, Any] | Tensor,
    device: torch.device | None = None,
) -> Tensor:
    """Full assignments as a LongTensor of shape (N, len(variables)).

    ``assignment`` is either such a tensor already (an integer tensor: a floating-point or bool
    tensor is refused, never rounded), or a mapping from every variable to a state name, an
    index, a list of those (N rows, the same N for every variable, a scalar or one-row list
    broadcasting; N = 0 gives no rows) or a LongTensor of shape (N,).
    """
    if isinstance(assignment, Tensor):
        if assignment.is_floating_point() or assignment.is_complex() \
                or assignment.dtype == torch.bool:
            raise DtypeMismatchError(
                "assignment", "must be an integer tensor of state indices", found=assignment.dtype,
                fix="use a LongTensor, or a mapping of state names")
        if assignment.dim() == 1:
            assignment = assignment.unsqueeze(0)
        if assignment.dim() != 2 or assignment.shape[1] != len(variables):
            raise ShapeError(
                "assignment", f"must have shape (N, {len(variables)}) in variable order",
                found=tuple(assignment.shape),
            )
        for j, v in enumerate(variables):
            col = assignment[:, j]
            if bool(((col < 0) | (col >= len(states[v]))).any()):
                raise UnknownStateError(
                    f"variable {v!r}", f"state index out of range [0, {len(states[v])})",
                    found=col[(col < 0) | (col >= len(states[v]))][0].item(),
                )
        return assignment.long().to(device)
    if not isinstance(assignment, Mapping):
        raise ValidationError(
            "assignment", "must be a mapping variable -> state(s) or a LongTensor (N, V)",
            found=type(assignment).__name__)
    missing = [v for v in variables if v not in assignment]
    if missing:
        raise UnknownVariableError(
            "assignment", "must give every variable", found=f"missing {missing}"
        )
    extra = [v for v in assignment if v not in states]
    if extra:
        raise UnknownVariableError("assignment", "names unknown variables", found=extra)
    cols = []
    lengths: set[int] = set()  # rows given as lists / 1-D tensors; scalars broadcast
    for v in variables:
        a = assignment[v]
        if isinstance(a, Tensor) and a.dim() == 1:
            cols.append(assignment_tensor([v], states, a.unsqueeze(1))[:, 0])
            lengths.add(int(a.shape[0]))
        elif isinstance(a, list | tuple):
            cols.append(torch.tensor([state_index(v, states[v], s) for s in a],
                                     dtype=torch.long))
            lengths.add(len(a))
        else:
            cols.append(torch.tensor([state_index(v, states[v], a)], dtype=torch.long))
    if len(lengths) > 1:  # a one-row list broadcasts against N rows, as a scalar does
        lengths.discard(1)
    if len(lengths) > 1:
        raise ShapeError("assignment", "every variable needs the same number of rows",
                         found=sorted(lengths), fix="give each variable one value per row")
    n = lengths.pop() if lengths else 1
    if not cols:  # the empty network: one empty assignment
        return torch.empty((n, 0), dtype=torch.long, device=device)
    return torch.stack([c.expand(n) for c in cols], dim=1).to(device)


def _as_set(a: str | Any, subject: str) -> set[str]:
    return set(check_names(a, subject))


class BayesianNetwork:
    """A discrete Bayesian network.

    Parameters
    ----------
    cpds : sequence of TabularCPD
        One per node, in any order. An empty sequence gives the empty network (no nodes):
        its joint is the empty product, so ``log_prob`` of an assignment is 0.
    name : str
        Optional network name.
    """

    def __init__(self, cpds: Sequence[TabularCPD], name: str = "") -> None:
        if not isinstance(name, str):
            raise ValidationError("BayesianNetwork", "name must be a str", found=repr(name))
        if isinstance(cpds, TabularCPD) or not isinstance(cpds, Sequence):
            raise ValidationError(f"network {name!r}", "expects a sequence of TabularCPD objects",
                                  found=type(cpds).__name__, fix="pass [cpd, ...]")
        by_var: dict[str, TabularCPD] = {}
        for c in cpds:
            if not isinstance(c, TabularCPD):
                raise ValidationError(
                    f"network {name!r}", "expects TabularCPD objects", found=type(c).__name__
                )
            if c.variable in by_var:
                raise ValidationError(f"network {name!r}", "two CPDs for one node",
                                      found=repr(c.variable))
            by_var[c.variable] = c
        parents = {v: c.parents for v, c in by_var.items()}
        order = topological_order(parents)  # raises on unknown parents and cycles
        states = {v: c.states[v] for v, c in by_var.items()}
        for v, c in by_var.items():
            for p in c.parents:
                if c.states[p] != states[p] and c.states[p] != tuple(
                        str(i) for i in range(len(c.states[p]))):
                    raise ShapeError(
                        f"CPD of {v!r}", f"names the states of parent {p!r} differently",
                        found=f"{list(c.states[p])} vs {list(states[p])}",
                        fix="use the parent's own state names",
                    )
                if len(c.states[p]) != len(states[p]):
                    raise ShapeError(
                        f"CPD of {v!r}",
                        f"gives parent {p!r} {len(c.states[p])} states, its own CPD "
                        f"{len(states[p])}",
                    )
        dtypes = {c.log_probs.dtype for c in by_var.values()}
        devices = {c.log_probs.device for c in by_var.values()}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValidationError(
                f"network {name!r}", "CPD tables must share one dtype and device",
                found=f"{dtypes}, {devices}", fix="cast with .to(dtype) first",
            )
        self.name = name
        self._cpds = {v: by_var[v] for v in order}
        self._states = {v: states[v] for v in order}

    # structure ------------------------------------------------------------------------------
    @property
    def variables(self) -> tuple[str, ...]:
        """Nodes in topological order (parents before children)."""
        return tuple(self._cpds)

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        """State names of every node."""
        return dict(self._states)

    @property
    def cards(self) -> dict[str, int]:
        """Number of states of every node."""
        return {v: len(s) for v, s in self._states.items()}

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the CPD tables (float64 for the empty network)."""
        for c in self._cpds.values():
            return c.log_probs.dtype
        return torch.float64

    @property
    def device(self) -> torch.device:
        """Device of the CPD tables (the CPU for the empty network)."""
        for c in self._cpds.values():
            return c.log_probs.device
        return torch.device("cpu")

    @property
    def parents(self) -> dict[str, tuple[str, ...]]:
        """``node -> parents``."""
        return {v: c.parents for v, c in self._cpds.items()}

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Directed edges ``(parent, child)``."""
        return [(p, v) for v, c in self._cpds.items() for p in c.parents]

    def children(self, node: str) -> list[str]:
        """Children of ``node``."""
        self._check(node)
        return children_of(self.parents)[node]

    def cpd(self, node: str) -> TabularCPD:
        """The CPD of ``node``."""
        self._check(node)
        return self._cpds[node]

    @property
    def cpds(self) -> list[TabularCPD]:
        """All CPDs in topological order."""
        return list(self._cpds.values())

    def _check(self, node: str) -> None:
        if not isinstance(node, str):
            raise ValidationError(f"network {self.name!r}", "a node is given by its name (str)",
                                  found=repr(node))
        if node not in self._cpds:
            raise UnknownVariableError(
                f"network {self.name!r}", f"has no node {node!r}",
                fix=f"use one of {list(self._cpds)[:10]}{'...' if len(self._cpds) > 10 else ''}",
            )

    @property
    def num_free_parameters(self) -> int:
        """Sum over nodes of ``(card - 1) * prod(parent cards)``."""
        return sum(c.num_free_parameters for c in self._cpds.values())

    def moralize(self) -> dict[str, set[str]]:
        """The moral graph (textbook 11.26) as ``node -> neighbours``."""
        return moral_graph(self.parents)

    def markov_blanket(self, node: str) -> set[str]:
        """Parents, children and co-parents of ``node`` (one node name)."""
        self._check(node)
        return markov_blanket(self.parents, node)

    def is_dseparated(self, x: Any, y: Any, given: Any = ()) -> bool:
        """Whether node sets ``x`` and ``y`` are d-separated given ``given``.

        Each of ``x``, ``y`` and ``given`` is one node name (a str) or a collection of names.
        An empty ``x`` or ``y`` is trivially d-separated (True); a node in both ``x`` and ``y``
        and not in ``given`` is not separated from itself (False).
        """
        xs, ys = _as_set(x, "is_dseparated x"), _as_set(y, "is_dseparated y")
        zs = _as_set(given, "is_dseparated given")
        for v in (*xs, *ys, *zs):
            self._check(v)
        return d_separated(self.parents, xs, ys, zs)

    # numbers --------------------------------------------------------------------------------
    def factors(self) -> list[Factor]:
        """One factor per CPD, over ``parents + (node,)``."""
        return [c.to_factor() for c in self._cpds.values()]

    def log_prob(self, assignment: Mapping[str, Any] | Tensor) -> Tensor:
        """``log p(x)`` of full assignments.

        Parameters
        ----------
        assignment : mapping or LongTensor of shape (N, V)
            See :func:`assignment_tensor`; columns in :attr:`variables` order.

        Returns
        -------
        Tensor, shape (N,) (or () for a single mapping of scalars)
        """
        single = isinstance(assignment, Mapping) and not any(
            isinstance(a, list | tuple | Tensor) for a in assignment.values())
        x = assignment_tensor(self.variables, self._states, assignment, self.device)
        col = {v: j for j, v in enumerate(self.variables)}
        total = torch.zeros(x.shape[0], dtype=self.dtype, device=self.device)
        for c in self._cpds.values():
            idx = tuple(x[:, col[u]] for u in c.scope)
            total = total + c.log_probs[idx]
        return total[0] if single else total

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral (forward) sampling.

        Parameters
        ----------
        n : int
            Number of joint draws, an int >= 0; ``n = 0`` returns an empty (0, V) tensor.
        generator : torch.Generator, optional

        Returns
        -------
        LongTensor, shape (n, V)
            State indices, columns in :attr:`variables` order.
        """
        n = check_int(n, "sample n", minimum=0)
        check_generator(generator, self.device)
        x = torch.empty((n, len(self._cpds)), dtype=torch.long, device=self.device)
        col = {v: j for j, v in enumerate(self.variables)}
        for v, c in self._cpds.items():
            logits = c.log_probs[tuple(x[:, col[p]] for p in c.parents)] if c.parents \
                else c.log_probs.expand(n, -1)
            x[:, col[v]] = (logits + gumbel(logits.shape, logits, generator)).argmax(-1)
        return x

    def to_markov_network(self) -> Any:
        """The equivalent Markov network: one factor per CPD, over the moral graph's cliques."""
        from pgm.markov import MarkovNetwork

        return MarkovNetwork(self.factors(), name=self.name)

    def to(self, *args: Any, **kwargs: Any) -> BayesianNetwork:
        """A copy with every CPD table moved/cast like :meth:`torch.Tensor.to`."""
        return BayesianNetwork([c.to(*args, **kwargs) for c in self._cpds.values()], self.name)

    def __repr__(self) -> str:
        return (f"BayesianNetwork({self.name!r}, {len(self._cpds)} nodes, "
                f"{len(self.edges)} edges)")
