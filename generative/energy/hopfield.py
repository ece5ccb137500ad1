"""Discrete Hopfield networks (NNDL 8.6.1): +-1 states, Hebbian storage, retrieval, capacity.

A network of ``M`` units holds a symmetric weight matrix ``W`` (M, M) with a zero diagonal
(8.33) and biases ``b`` (M,). A state ``s`` is a vector in ``{-1, +1}^M``; batches of states are
tensors (B, M), updated together. The dynamics follow the sign rule (8.32)

    s_i <- +1 if sum_j w_ij s_j + b_i >= 0 else -1

(a field of exactly zero gives +1, as the book writes it), one unit at a time (asynchronous, in
a fixed or a freshly drawn random order per sweep) or all units at once (synchronous, 8.34). The
energy (8.36)

    E(s) = -1/2 s^T W s - b^T s

never increases under asynchronous updates, so they reach a fixed point; synchronous updates can
end in a 2-cycle, which :meth:`HopfieldNetwork.retrieve` detects and reports. Patterns are stored
with the Hebbian rule (8.37), ``w_ij = (1/N) sum_n x_i^(n) x_j^(n)`` with the diagonal set to
zero; about ``0.14 M`` random patterns can be stored before retrieval breaks down
(:func:`capacity_experiment` measures it).

Examples
--------
>>> import torch
>>> from generative.energy.hopfield import HopfieldNetwork, corrupt
>>> from probforge.ops import make_generator
>>> g = make_generator(0)
>>> patterns = torch.randint(0, 2, (3, 64), generator=g).double() * 2 - 1
>>> net = HopfieldNetwork.hebbian(patterns)
>>> noisy = corrupt(patterns, 0.1, generator=g)
>>> out = net.retrieve(noisy, generator=g)
>>> bool(torch.equal(out.states, patterns)), bool(out.converged.all())
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from generative.checks import check_batch, check_optional_generator
from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_choice, check_int, check_real, check_tensor

__all__ = [
    "CapacityResult",
    "HopfieldNetwork",
    "HopfieldRetrieval",
    "capacity_experiment",
    "corrupt",
]


class HopfieldRetrieval(NamedTuple):
    """What :meth:`HopfieldNetwork.retrieve` returns.

    Attributes
    ----------
    states : Tensor (B, M)
        The final states.
    num_sweeps : Tensor (B,) int64
        Sweeps that changed each row (0 if the start was already a fixed point).
    converged : Tensor (B,) bool
        The row ended at a fixed point (a full sweep left it unchanged).
    oscillating : Tensor (B,) bool
        Synchronous updates only: the row entered a 2-cycle ``s -> s' -> s`` (then it is not
        converged; ``states`` holds the last state reached).
    energies : Tensor (S + 1, B)
        The energy before the first sweep and after each of the ``S`` sweeps run.
    """

    states: Tensor
    num_sweeps: Tensor
    converged: Tensor
    oscillating: Tensor
    energies: Tensor


class CapacityResult(NamedTuple):
    """What :func:`capacity_experiment` returns, one entry per number of stored patterns.

    Attributes
    ----------
    pattern_counts : Tensor (C,) int64
        Numbers of stored patterns ``N``.
    load : Tensor (C,) float64
        ``N / M``, to compare with the capacity ``0.14``.
    success_rate : Tensor (C,) float64
        Fraction of corrupted patterns retrieved exactly (every bit right).
    mean_overlap : Tensor (C,) float64
        Mean overlap ``s . x / M`` of the retrieved state with its pattern (1 is perfect).
    """

    pattern_counts: Tensor
    load: Tensor
    success_rate: Tensor
    mean_overlap: Tensor


def _check_plus_minus_one(x: Tensor, subject: str, num_units: int | None = None,
                          like: Tensor | None = None) -> Tensor:
    """A floating (B, M) tensor of +-1 values (0/1 data refused with the 2x - 1 fix)."""
    if num_units is None:
        check_tensor(x, subject, ndim=2)
        num_units = x.shape[1]
        if num_units < 1:
            raise ShapeError(subject, "must have at least one unit (column)",
                             found=tuple(x.shape))
    check_batch(x, subject, (num_units,), like=like)
    if like is not None and x.dtype != like.dtype:
        raise DtypeMismatchError(subject, f"must have the network's dtype {like.dtype}",
                                 found=x.dtype, fix=f"convert with .to({like.dtype})")
    bad = (x != 1) & (x != -1)
    if bool(bad.any()):
        binary = bool(((x == 0) | (x == 1)).all())
        raise ValidationError(
            subject, "values must be -1 or +1",
            found=f"{float(x[bad][0])} at index {tuple(int(i) for i in bad.nonzero()[0])}",
            fix="map 0/1 data to -1/+1 with 2 * x - 1" if binary
            else "binarise the data to -1/+1 first",
        )
    return x


def _check_generator(generator: Any, subject: str, like: Tensor) -> torch.Generator | None:
    return check_optional_generator(generator, subject, like.device)


def _sweep(s: Tensor, weight: Tensor, bias: Tensor, mode: str, order: Sequence[int]) -> Tensor:
    """One sweep of the sign rule (8.32) on states ``s`` (..., B, M).

    ``weight`` is (..., M, M) and ``bias`` (..., M), broadcasting over the leading dims; ``order``
    is the unit order of an asynchronous sweep. Returns a new tensor.
    """
    if mode == "sync":
        field = s @ weight + bias.unsqueeze(-2)  # W symmetric: s W = (W s)^T row-wise
        return (field >= 0).to(s.dtype) * 2 - 1
    s = s.clone()
    for i in order:
        field = (s @ weight[..., :, i : i + 1]).squeeze(-1) + bias[..., i : i + 1]
        s[..., i] = (field >= 0).to(s.dtype) * 2 - 1
    return s


def _unit_order(num_units: int, order: str, generator: torch.Generator | None,
                device: torch.device) -> list[int]:
    if order == "fixed":
        return list(range(num_units))
    # one host transfer per sweep: the unit loop runs in Python anyway
    return torch.randperm(num_units, generator=generator, device=device).tolist()


class HopfieldNetwork:
    """A discrete Hopfield network: symmetric weights with a zero diagonal, and biases.

    Parameters
    ----------
    weight : Tensor (M, M)
        Floating, finite, symmetric (up to ``100 * eps * max(1, max |w|)``), zero diagonal
        (exactly). The tensor is kept, not copied; the network never modifies it.
    bias : Tensor (M,), optional
        Floating, finite, same dtype and device as ``weight``; zeros if omitted.

    Raises
    ------
    ValidationError, ShapeError, NonFiniteError, DtypeMismatchError, DeviceMismatchError
        For a weight that is not a square floating matrix, is asymmetric, has a nonzero
        diagonal or a NaN / inf entry; for a bias of the wrong shape, dtype or device.

    Examples
    --------
    >>> w = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> net = HopfieldNetwork(w)
    >>> net.energy(torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64))
    tensor([-1.,  1.], dtype=torch.float64)
    """

    #: The two values a unit takes (low, high).
    unit_values: tuple[float, float] = (-1.0, 1.0)

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        check_tensor(weight, "HopfieldNetwork weight", ndim=2, floating=True, finite=True)
        m = weight.shape[0]
        if weight.shape[1] != m or m < 1:
            raise ShapeError("HopfieldNetwork weight", "must be a square (M, M) matrix, M >= 1",
                             found=tuple(weight.shape))
        tol = 100 * torch.finfo(weight.dtype).eps * max(1.0, float(weight.abs().max()))
        asym = (weight - weight.T).abs()
        if bool((asym > tol).any()):
            i, j = divmod(int(asym.argmax()), m)
            raise ValidationError("HopfieldNetwork weight", "must be symmetric (w_ij = w_ji)",
                                  found=f"w[{i},{j}] = {float(weight[i, j])} but w[{j},{i}] = "
                                  f"{float(weight[j, i])}",
                                  fix="use (weight + weight.T) / 2")
        diag = weight.diagonal()
        if bool((diag != 0).any()):
            i = int((diag != 0).nonzero()[0])
            raise ValidationError("HopfieldNetwork weight", "must have a zero diagonal (no "
                                  "self-connections, w_ii = 0)",
                                  found=f"w[{i},{i}] = {float(diag[i])}",
                                  fix="zero it with weight - torch.diag(weight.diagonal())")
        if bias is None:
            bias = torch.zeros(m, dtype=weight.dtype, device=weight.device)
        check_tensor(bias, "HopfieldNetwork bias", shape=(m,), finite=True, dtype=weight.dtype,
                     device=weight.device)
        self.weight = weight
        self.bias = bias

    @classmethod
    def hebbian(cls, patterns: Tensor) -> HopfieldNetwork:
        """Store ``patterns`` by the Hebbian rule (8.37), zero diagonal, zero biases.

        Parameters
        ----------
        patterns : Tensor (N, M)
            Floating, values -1 or +1 (0/1 data are refused: map them with ``2 x - 1``).

        Returns
        -------
        HopfieldNetwork
            ``w_ij = (1/N) sum_n x_i^(n) x_j^(n)`` for ``i != j``, ``w_ii = 0``.

        Examples
        --------
        >>> x = torch.tensor([[1.0, -1.0, 1.0]])
        >>> HopfieldNetwork.hebbian(x).weight
        tensor([[ 0., -1.,  1.],
                [-1.,  0., -1.],
                [ 1., -1.,  0.]])
        """
        _check_plus_minus_one(patterns, "HopfieldNetwork.hebbian patterns")
        weight = patterns.T @ patterns / patterns.shape[0]
        weight.fill_diagonal_(0)
        return cls(weight)

    @property
    def num_units(self) -> int:
        """The number of units ``M``."""
        return int(self.weight.shape[0])

    def _states(self, s: Tensor, subject: str) -> Tensor:
        return _check_plus_minus_one(s, f"HopfieldNetwork.{subject} states", self.num_units,
                                     like=self.weight)

    def energy(self, s: Tensor) -> Tensor:
        """The energy (8.36) ``-1/2 s^T W s - b^T s`` of each state.

        Parameters
        ----------
        s : Tensor (B, M)
            States of -1/+1 values, the network's dtype and device.

        Returns
        -------
        Tensor (B,)

        Examples
        --------
        >>> net = HopfieldNetwork(torch.zeros(2, 2), torch.tensor([1.0, 2.0]))
        >>> net.energy(torch.tensor([[1.0, -1.0]]))
        tensor([1.])
        """
        return self._energy(self._states(s, "energy"))

    def _energy(self, s: Tensor) -> Tensor:
        out: Tensor = -0.5 * ((s @ self.weight) * s).sum(-1) - s @ self.bias
        return out

    def update(self, s: Tensor, mode: str = "async", order: str = "random",
               generator: torch.Generator | None = None) -> Tensor:
        """One sweep of the sign rule (8.32) over every unit; ``s`` is not modified.

        Parameters
        ----------
        s : Tensor (B, M)
            States of -1/+1 values; all rows move together.
        mode : {"async", "sync"}
            ``"async"``: one unit at a time, each seeing the latest values; ``"sync"``: all units
            at once from the old state (8.34).
        order : {"random", "fixed"}
            Asynchronous unit order: a permutation drawn from ``generator`` for this sweep (shared
            by the rows), or ``0, ..., M - 1``. Ignored by ``"sync"``.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor (B, M)

        Examples
        --------
        >>> net = HopfieldNetwork(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        >>> net.update(torch.tensor([[1.0, -1.0]]), order="fixed")
        tensor([[-1., -1.]])
        """
        self._states(s, "update")
        check_choice(mode, "HopfieldNetwork.update mode", ("async", "sync"))
        check_choice(order, "HopfieldNetwork.update order", ("random", "fixed"))
        generator = _check_generator(generator, "HopfieldNetwork.update generator", s)
        units = _unit_order(self.num_units, order, generator, s.device) if mode == "async" \
            else []
        return _sweep(s, self.weight, self.bias, mode, units)

    def retrieve(self, s0: Tensor, max_sweeps: int = 100, mode: str = "async",
                 order: str = "random",
                 generator: torch.Generator | None = None) -> HopfieldRetrieval:
        """Run the dynamics from ``s0`` until every row is a fixed point (or oscillates).

        A row stops when a full sweep leaves it unchanged (converged) or, for synchronous
        updates, when it returns to the state of two sweeps before (a 2-cycle: oscillating).
        The loop stops when every row has stopped or after ``max_sweeps`` sweeps; checking this
        costs one host synchronisation per sweep.

        Parameters
        ----------
        s0 : Tensor (B, M)
            Start states of -1/+1 values (a corrupted pattern, say); not modified.
        max_sweeps : int
            At most this many sweeps (>= 1).
        mode, order, generator
            As in :meth:`update`.

        Returns
        -------
        HopfieldRetrieval

        Examples
        --------
        >>> net = HopfieldNetwork(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
        >>> out = net.retrieve(torch.tensor([[1.0, 1.0]]), mode="sync")
        >>> bool(out.oscillating[0]), bool(out.converged[0])
        (True, False)
        """
        self._states(s0, "retrieve")
        max_sweeps = check_int(max_sweeps, "HopfieldNetwork.retrieve max_sweeps", minimum=1)
        check_choice(mode, "HopfieldNetwork.retrieve mode", ("async", "sync"))
        check_choice(order, "HopfieldNetwork.retrieve order", ("random", "fixed"))
        generator = _check_generator(generator, "HopfieldNetwork.retrieve generator", s0)
        rows = s0.shape[0]
        states = s0.clone()
        previous: Tensor | None = None
        converged = torch.zeros(rows, dtype=torch.bool, device=s0.device)
        oscillating = torch.zeros_like(converged)
        sweeps = torch.zeros(rows, dtype=torch.long, device=s0.device)
        energies = [self._energy(states)]
        for t in range(max_sweeps):
            units = _unit_order(self.num_units, order, generator, s0.device) \
                if mode == "async" else []
            new = _sweep(states, self.weight, self.bias, mode, units)
            active = ~(converged | oscillating)
            changed = (new != states).any(-1)
            converged = converged | (active & ~changed)
            moving = active & changed
            if mode == "sync" and previous is not None:
                oscillating = oscillating | (moving & (new == previous).all(-1))
            previous = states
            states = torch.where(moving.unsqueeze(-1), new, states)
            sweeps = sweeps + moving.long()
            energies.append(self._energy(states))
            if t + 1 < max_sweeps and not bool((~(converged | oscillating)).any()):
                break
        return HopfieldRetrieval(states, sweeps, converged, oscillating, torch.stack(energies))


def corrupt(patterns: Tensor, flip_fraction: float,
            generator: torch.Generator | None = None) -> Tensor:
    """Flip ``round(flip_fraction * M)`` randomly chosen bits of each +-1 row (a new tensor).

    Parameters
    ----------
    patterns : Tensor (N, M)
        Floating, values -1 or +1.
    flip_fraction : float
        In [0, 1]; the same number of bits is flipped in every row, at positions drawn
        independently per row.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor (N, M)

    Examples
    --------
    >>> from probforge.ops import make_generator
    >>> x = torch.ones(2, 10)
    >>> (corrupt(x, 0.2, make_generator(0)) == -1).sum(-1)
    tensor([2, 2])
    """
    _check_plus_minus_one(patterns, "corrupt patterns")
    frac = check_real(flip_fraction, "corrupt flip_fraction", minimum=0.0, maximum=1.0)
    generator = _check_generator(generator, "corrupt generator", patterns)
    n, m = patterns.shape
    k = round(frac * m)
    u = torch.rand(n, m, generator=generator, device=patterns.device)
    picked = u.argsort(-1)[:, :k]
    mask = torch.zeros(n, m, dtype=torch.bool, device=patterns.device).scatter(1, picked, True)
    return torch.where(mask, -patterns, patterns)


def capacity_experiment(num_units: int, pattern_counts: Sequence[int], flip_fraction: float = 0.1,
                        trials: int = 10, max_sweeps: int = 50,
                        generator: torch.Generator | None = None,
                        dtype: torch.dtype = torch.float64) -> CapacityResult:
    """Retrieval success against the number of stored random patterns (capacity ~ 0.14 M).

    For each count ``N``, ``trials`` independent networks each store ``N`` random +-1 patterns
    (Hebbian rule); every pattern, with ``flip_fraction`` of its bits flipped, is the start of
    asynchronous retrieval (random order). All trials and patterns run as one batch.

    Parameters
    ----------
    num_units : int
        ``M >= 2``.
    pattern_counts : sequence of int
        Non-empty; each ``N >= 1``.
    flip_fraction : float
        In [0, 1].
    trials : int
        Networks per count (>= 1).
    max_sweeps : int
        Sweep limit of each retrieval (>= 1).
    generator : torch.Generator, optional
    dtype : torch.dtype
        float32 or float64.

    Returns
    -------
    CapacityResult

    Examples
    --------
    >>> from probforge.ops import make_generator
    >>> r = capacity_experiment(50, [2, 25], trials=2, generator=make_generator(0))
    >>> r.load.tolist(), bool(r.success_rate[0] > r.success_rate[1])
    ([0.04, 0.5], True)
    """
    m = check_int(num_units, "capacity_experiment num_units", minimum=2)
    if isinstance(pattern_counts, str | bytes | Tensor) or not isinstance(pattern_counts,
                                                                          Sequence):
        raise ValidationError("capacity_experiment pattern_counts",
                              "must be a sequence of ints", found=type(pattern_counts).__name__,
                              fix="pass e.g. [5, 10, 20]")
    counts = [check_int(c, f"capacity_experiment pattern_counts[{i}]", minimum=1)
              for i, c in enumerate(pattern_counts)]
    if not counts:
        raise ValidationError("capacity_experiment pattern_counts", "needs at least one count")
    frac = check_real(flip_fraction, "capacity_experiment flip_fraction", minimum=0.0,
                      maximum=1.0)
    trials = check_int(trials, "capacity_experiment trials", minimum=1)
    max_sweeps = check_int(max_sweeps, "capacity_experiment max_sweeps", minimum=1)
    if dtype not in (torch.float32, torch.float64):
        raise ValidationError("capacity_experiment dtype", "must be torch.float32 or "
                              "torch.float64", found=repr(dtype))
    generator = check_optional_generator(generator, "capacity_experiment generator")
    device = generator.device if generator is not None else torch.device("cpu")
    success, overlap = [], []
    for n in counts:
        bits = torch.rand(trials, n, m, generator=generator, device=device) < 0.5
        x = bits.to(dtype) * 2 - 1
        weight = x.transpose(-1, -2) @ x / n
        weight.diagonal(dim1=-2, dim2=-1).zero_()
        bias = torch.zeros(trials, m, dtype=dtype, device=device)
        s = corrupt(x.reshape(trials * n, m), frac, generator).reshape(trials, n, m)
        for _ in range(max_sweeps):
            new = _sweep(s, weight, bias, "async", _unit_order(m, "random", generator, device))
            if torch.equal(new, s):
                break
            s = new
        success.append((s == x).all(-1).double().mean())
        overlap.append((s * x).mean(-1).double().mean())
    count_t = torch.tensor(counts, dtype=torch.long)
    return CapacityResult(count_t, count_t.double() / m, torch.stack(success).cpu(),
                          torch.stack(overlap).cpu())
