"""Markov networks (Markov random fields / factor graphs) over discrete variables.

``p(x) = prod_c phi_c(x_c) / Z`` (textbook 11.16) with log-potentials as :class:`Factor` objects of
any arity; the energy form ``phi = exp(-E)`` (11.18-11.20) via :meth:`MarkovNetwork.from_energies`.
Grid constructors :func:`ising_grid` and :func:`potts_grid` build the classic lattice models.

Examples
--------
>>> import torch
>>> from pgm.markov import ising_grid
>>> mn = ising_grid(2, 2, coupling=0.5, field=0.0, dtype=torch.float64)
>>> len(mn.variables), len(mn.factors())
(4, 8)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from pgm.bayesnet import assignment_tensor
from pgm.factor import Factor
from pgm.graph import all_cliques, maximal_cliques, undirected_from_scopes
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
)
from probforge.ops import contract
from probforge.validate import check_int, check_real

__all__ = ["MarkovNetwork", "ising_grid", "potts_grid"]


class MarkovNetwork:
    """A discrete Markov network given by its factors.

    Parameters
    ----------
    factors : sequence of Factor
        Log-potentials; unbatched (no leading batch dimensions).
    name : str
        Optional name.
    """

    def __init__(self, factors: Sequence[Factor], name: str = "") -> None:
        if not isinstance(name, str):
            raise ValidationError("MarkovNetwork", "name must be a str", found=repr(name))
        if isinstance(factors, Factor) or not isinstance(factors, Sequence):
            raise ValidationError(f"Markov network {name!r}", "expects a sequence of Factor "
                                  "objects", found=type(factors).__name__, fix="pass [f, ...]")
        if not factors:
            raise ValidationError(f"Markov network {name!r}", "needs at least one factor")
        states: dict[str, tuple[str, ...]] = {}
        for i, f in enumerate(factors):
            if not isinstance(f, Factor):
                raise ValidationError(f"Markov network {name!r}", f"factor {i} is not a Factor",
                                      found=type(f).__name__)
            if f.batch_shape:
                raise ShapeError(f"factor {i} {f!r}", "must not have batch dimensions",
                                 found=tuple(f.batch_shape))
            for v, s in f.states.items():
                if states.setdefault(v, s) != s:
                    raise ShapeError(
                        f"factor {i} {f!r}", f"gives variable {v!r} other states than factor "
                        "before it", found=f"{list(s)} vs {list(states[v])}",
                    )
        dtypes = {f.log_values.dtype for f in factors}
        devices = {f.log_values.device for f in factors}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValidationError(f"Markov network {name!r}",
                                  "factors must share one dtype and device",
                                  found=f"{dtypes}, {devices}")
        self.name = name
        self._factors = list(factors)
        self._states = states

    @classmethod
    def from_energies(
        cls,
        scopes: Sequence[Sequence[str]],
        energies: Sequence[Tensor],
        states: Mapping[str, Sequence[str]] | None = None,
        temperature: float = 1.0,
        name: str = "",
    ) -> MarkovNetwork:
        """Boltzmann form: ``phi_c = exp(-E_c / T)``.

        Parameters
        ----------
        scopes : sequence of (str or sequence of str)
            The variables of each energy table (one string is one variable).
        energies : sequence of Tensor
            Floating-point tables, one per scope; ``+inf`` is a forbidden configuration (zero
            potential), NaN and ``-inf`` are refused.
        states : mapping, optional
            State names per variable.
        temperature : float
            ``T > 0``.
        name : str
        """
        temperature = check_real(temperature, "from_energies temperature", minimum=0.0,
                                 strict_minimum=True)
        if isinstance(scopes, str) or not isinstance(scopes, Sequence) \
                or not isinstance(energies, Sequence) or isinstance(energies, Tensor):
            raise ValidationError("from_energies", "scopes and energies must be sequences (one "
                                  "entry per factor)", found=f"{type(scopes).__name__}, "
                                  f"{type(energies).__name__}")
        if len(scopes) != len(energies):
            raise ShapeError("from_energies", "needs one energy table per scope",
                             found=f"{len(scopes)} scopes, {len(energies)} energies")
        for i, e in enumerate(energies):
            if not isinstance(e, Tensor) or not e.is_floating_point():
                raise DtypeMismatchError(
                    f"from_energies: energy {i}", "must be a floating-point tensor",
                    found=e.dtype if isinstance(e, Tensor) else type(e).__name__,
                    fix="convert with torch.as_tensor(..., dtype=torch.float64)")
            if bool(torch.isnan(e).any()) or bool(torch.isneginf(e).any()):
                raise NonFiniteError(
                    f"from_energies: energy {i}", "contains NaN or -inf (an infinite potential)",
                    fix="use +inf for forbidden configurations and finite values elsewhere")
        return cls([Factor(s, -e / temperature, states) for s, e in
                    zip(scopes, energies, strict=True)], name=name)

    @property
    def variables(self) -> tuple[str, ...]:
        """Variables in order of first appearance."""
        return tuple(self._states)

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        """State names of every variable."""
        return dict(self._states)

    @property
    def cards(self) -> dict[str, int]:
        """Number of states of every variable."""
        return {v: len(s) for v, s in self._states.items()}

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the factors."""
        return self._factors[0].log_values.dtype

    @property
    def device(self) -> torch.device:
        """Device of the factors."""
        return self._factors[0].log_values.device

    def factors(self) -> list[Factor]:
        """The factors (log-potentials)."""
        return list(self._factors)

    def graph(self) -> dict[str, set[str]]:
        """The Markov network's undirected graph: neighbours share a factor."""
        return undirected_from_scopes((f.variables for f in self._factors), self._states)

    def neighbours(self, variable: str) -> set[str]:
        """Neighbours of ``variable`` (its Markov blanket, textbook 11.15)."""
        if not isinstance(variable, str):
            raise ValidationError(f"Markov network {self.name!r}",
                                  "a variable is given by its name (str)", found=repr(variable))
        if variable not in self._states:
            raise UnknownVariableError(f"Markov network {self.name!r}",
                                       f"has no variable {variable!r}")
        return set(self.graph()[variable])

    markov_blanket = neighbours

    def maximal_cliques(self) -> list[frozenset[str]]:
        """Maximal cliques of the graph."""
        return maximal_cliques(self.graph())

    def cliques(self, min_size: int = 2) -> list[frozenset[str]]:
        """All cliques of at least ``min_size`` (an int >= 1) variables (textbook Fig. 11.7
        lists size >= 2)."""
        min_size = check_int(min_size, "cliques min_size", minimum=1)
        return all_cliques(self.graph(), min_size)

    def log_potential(self, assignment: Mapping[str, Any] | Tensor) -> Tensor:
        """Unnormalised ``sum_c log phi_c(x_c)`` of full assignments, shape (N,)."""
        x = assignment_tensor(self.variables, self._states, assignment, self.device)
        col = {v: j for j, v in enumerate(self.variables)}
        total = torch.zeros(x.shape[0], dtype=self.dtype, device=self.device)
        for f in self._factors:
            total = total + f.log_values[tuple(x[:, col[v]] for v in f.variables)]
        return total

    def log_partition(self, optimize: Any = "auto") -> Tensor:
        """``log Z`` by exact contraction of all factors."""
        return contract([f.log_values for f in self._factors],
                        [f.variables for f in self._factors], (), optimize=optimize)

    def log_prob(self, assignment: Mapping[str, Any] | Tensor) -> Tensor:
        """Normalised ``log p(x)`` of full assignments, shape (N,)."""
        return self.log_potential(assignment) - self.log_partition()

    def to(self, *args: Any, **kwargs: Any) -> MarkovNetwork:
        """A copy with every factor moved/cast like :meth:`torch.Tensor.to`."""
        return MarkovNetwork([f.to(*args, **kwargs) for f in self._factors], self.name)

    def __repr__(self) -> str:
        return (f"MarkovNetwork({self.name!r}, {len(self._states)} variables, "
                f"{len(self._factors)} factors)")


def _check_grid(rows: Any, cols: Any, periodic: Any, dtype: Any, who: str) -> tuple[int, int]:
    rows = check_int(rows, f"{who} rows", minimum=1)
    cols = check_int(cols, f"{who} cols", minimum=1)
    if not isinstance(periodic, bool):
        raise ValidationError(f"{who} periodic", "must be a bool", found=repr(periodic))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError(f"{who} dtype", "must be a floating-point torch.dtype",
                              found=repr(dtype), fix="use torch.float64 or torch.float32")
    return rows, cols


def _scalar_param(value: Any, subject: str, dtype: torch.dtype,
                  device: torch.device | str | None) -> Tensor:
    """A finite scalar parameter (a number, or a 0-d floating tensor kept for autograd)."""
    if isinstance(value, Tensor):
        if value.dim() != 0 or not value.is_floating_point():
            raise ValidationError(subject, "must be a number or a 0-d floating-point tensor",
                                  found=f"{value.dtype} of shape {tuple(value.shape)}")
        if not bool(torch.isfinite(value)):
            raise NonFiniteError(subject, "must be finite", found=float(value))
        return value.to(dtype=dtype, device=device)
    return torch.tensor(check_real(value, subject), dtype=dtype, device=device)


def _grid_names(rows: int, cols: int) -> list[list[str]]:
    return [[f"x{i}_{j}" for j in range(cols)] for i in range(rows)]


def _grid_edges(
    rows: int, cols: int, periodic: bool
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    edges: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols or (periodic and cols > 2):
                edges.append(((i, j), (i, (j + 1) % cols)))
            if i + 1 < rows or (periodic and rows > 2):
                edges.append(((i, j), ((i + 1) % rows, j)))
    return edges


def ising_grid(
    rows: int,
    cols: int,
    coupling: float | Tensor = 1.0,
    field: float | Tensor = 0.0,
    *,
    periodic: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> MarkovNetwork:
    """Ising model on a ``rows x cols`` grid with spins ``s in {-1, +1}`` (states "-1", "+1").

    ``log p(s) = sum_<ij> J s_i s_j + sum_i h_i s_i - log Z``.

    Parameters
    ----------
    rows, cols : int
        Grid size, ints >= 1.
    coupling : float or Tensor
        ``J`` for every edge: a finite number or a 0-d floating-point tensor.
    field : float or Tensor broadcastable to (rows, cols)
        External field ``h``: a finite number or a floating-point tensor.
    periodic : bool
        Wrap around (torus) when the side is longer than 2.
    dtype : torch.dtype
        A floating-point dtype.
    """
    rows, cols = _check_grid(rows, cols, periodic, dtype, "ising_grid")
    spins = torch.tensor([-1.0, 1.0], dtype=dtype, device=device)
    j = _scalar_param(coupling, "ising_grid coupling", dtype, device)
    if isinstance(field, Tensor):
        if not field.is_floating_point():
            raise DtypeMismatchError("ising_grid field", "must be a floating-point tensor",
                                     found=field.dtype, fix="convert with .double()")
        if not bool(torch.isfinite(field).all()):
            raise NonFiniteError("ising_grid field", "must be finite")
        try:
            h = field.to(dtype=dtype, device=device).expand(rows, cols)
        except RuntimeError as err:
            raise ShapeError("ising_grid field", f"must broadcast to ({rows}, {cols})",
                             found=tuple(field.shape)) from err
    else:
        h = _scalar_param(field, "ising_grid field", dtype, device).expand(rows, cols)
    names = _grid_names(rows, cols)
    st = {"": ("-1", "+1")}
    factors = []
    for a in range(rows):
        for b in range(cols):
            factors.append(Factor([names[a][b]], h[a, b] * spins, {names[a][b]: st[""]}))
    for (a, b), (c, d) in _grid_edges(rows, cols, periodic):
        u, v = names[a][b], names[c][d]
        factors.append(Factor([u, v], j * spins[:, None] * spins[None, :],
                              {u: st[""], v: st[""]}))
    return MarkovNetwork(factors, name=f"ising_{rows}x{cols}")


def potts_grid(
    rows: int,
    cols: int,
    q: int,
    coupling: float | Tensor = 1.0,
    *,
    periodic: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> MarkovNetwork:
    """``q``-state Potts model on a grid: ``log phi(x_i, x_j) = J [x_i == x_j]``.

    Parameters
    ----------
    rows, cols : int
        Grid size, ints >= 1.
    q : int
        Number of states, an int >= 2.
    coupling : float or Tensor
        ``J``: a finite number or a 0-d floating-point tensor.
    periodic : bool
    dtype : torch.dtype
        A floating-point dtype.
    """
    rows, cols = _check_grid(rows, cols, periodic, dtype, "potts_grid")
    q = check_int(q, "potts_grid q", minimum=2)
    names = _grid_names(rows, cols)
    pair = _scalar_param(coupling, "potts_grid coupling", dtype, device) * torch.eye(
        q, dtype=dtype, device=device)
    factors = [Factor([names[a][b], names[c][d]], pair)
               for (a, b), (c, d) in _grid_edges(rows, cols, periodic)]
    if not factors:  # a single site: still a valid (uniform) model
        factors = [Factor([names[0][0]], torch.zeros(q, dtype=dtype, device=device))]
    return MarkovNetwork(factors, name=f"potts{q}_{rows}x{cols}")
