"""Simulated annealing (Kirkpatrick et al. 1983; NNDL 12.1.2) for pairwise binary energies.

Both a :class:`~generative.energy.boltzmann.BoltzmannMachine` (units in {0, 1}) and a
:class:`~generative.energy.hopfield.HopfieldNetwork` (units in {-1, +1}) have the energy
``E(x) = -1/2 x^T W x - b^T x`` with a symmetric ``W`` of zero diagonal. With unit values
``lo < hi``, the energy gap of unit ``i`` is

    E(x_i = lo) - E(x_i = hi) = (hi - lo) (sum_j w_ij x_j + b_i),

and a heat-bath (Gibbs) update at temperature ``T`` sets ``x_i = hi`` with probability
``sigmoid(gap / T)``: the Boltzmann machine's rule (12.5) at temperature ``T``. Annealing makes
sweeps of these updates while ``T`` follows a user schedule (the book gives none; the helpers
build geometric and logarithmic ones). As ``T -> 0`` the update becomes the deterministic
descent rule (12.15) / (8.32); as ``T -> inf`` every unit is a fair coin. A Boltzmann machine's
own ``temperature`` is not used: the schedule sets it.

Chains run as one batch; the best state of each chain (lowest energy after any sweep) is kept.

Examples
--------
>>> import torch
>>> from generative.energy.annealing import geometric_schedule, simulated_annealing
>>> from generative.energy.boltzmann import BoltzmannMachine
>>> from probforge.ops import make_generator
>>> bm = BoltzmannMachine(8, init_std=1.0, generator=make_generator(0), dtype=torch.float64)
>>> out = simulated_annealing(bm, geometric_schedule(3.0, 0.05, 50), num_chains=4,
...                           generator=make_generator(1))
>>> out.best_states.shape, out.energies.shape
(torch.Size([4, 8]), torch.Size([51, 4]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from generative.checks import check_optional_generator
from generative.energy.boltzmann import BoltzmannMachine
from generative.energy.hopfield import HopfieldNetwork
from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.validate import check_choice, check_int, check_real, check_tensor

__all__ = [
    "AnnealingResult",
    "geometric_schedule",
    "logarithmic_schedule",
    "simulated_annealing",
]


class AnnealingResult(NamedTuple):
    """What :func:`simulated_annealing` returns.

    Attributes
    ----------
    best_states : Tensor (C, K)
        The lowest-energy state each chain visited (checked after every sweep).
    best_energies : Tensor (C,)
        Their energies.
    final_states : Tensor (C, K)
        The states after the last sweep.
    energies : Tensor (S + 1, C)
        The energy at the start and after the sweeps at each of the ``S`` temperatures.
    """

    best_states: Tensor
    best_energies: Tensor
    final_states: Tensor
    energies: Tensor


def _check_schedule(schedule: Any, subject: str) -> list[float]:
    """A non-empty, non-increasing sequence of finite temperatures ``> 0``, as floats."""
    if isinstance(schedule, Tensor):
        check_tensor(schedule, subject, ndim=1, floating=True)
        values = [float(t) for t in schedule.detach().cpu().tolist()]
    elif isinstance(schedule, Sequence) and not isinstance(schedule, str | bytes):
        values = [check_real(t, f"{subject}[{i}]", allow_inf=True)
                  for i, t in enumerate(schedule)]
    else:
        raise ValidationError(subject, "must be a sequence of temperatures or a 1-D tensor",
                              found=type(schedule).__name__,
                              fix="use geometric_schedule(t0, t_end, steps)")
    if not values:
        raise ValidationError(subject, "must hold at least one temperature", found=[],
                              fix="use geometric_schedule(t0, t_end, steps)")
    for i, t in enumerate(values):
        if not math.isfinite(t):
            raise NonFiniteError(subject, f"temperature {i} must be finite", found=t)
        if t <= 0:
            raise ValidationError(subject, f"temperatures must be > 0 (entry {i})", found=t,
                                  fix="end the schedule at a small positive temperature")
    for i in range(1, len(values)):
        if values[i] > values[i - 1]:
            raise ValidationError(subject, "must not increase (annealing cools)",
                                  found=f"{values[i - 1]:g} then {values[i]:g} at entries "
                                  f"{i - 1}, {i}", fix="sort it in decreasing order")
    return values


def geometric_schedule(t0: float, t_end: float, steps: int) -> Tensor:
    """``steps`` temperatures from ``t0`` down to ``t_end`` in a constant ratio.

    Parameters
    ----------
    t0 : float
        Start temperature ``> 0``.
    t_end : float
        End temperature, ``0 < t_end <= t0``.
    steps : int
        Number of temperatures (>= 1; with 1, just ``t0``).

    Returns
    -------
    Tensor (steps,) float64

    Examples
    --------
    >>> geometric_schedule(8.0, 1.0, 4)
    tensor([8., 4., 2., 1.], dtype=torch.float64)
    """
    t0 = check_real(t0, "geometric_schedule t0", minimum=0.0, strict_minimum=True)
    t_end = check_real(t_end, "geometric_schedule t_end", minimum=0.0, strict_minimum=True,
                       maximum=t0)
    steps = check_int(steps, "geometric_schedule steps", minimum=1)
    if steps == 1:
        return torch.tensor([t0], dtype=torch.float64)
    k = torch.arange(steps, dtype=torch.float64)
    out = t0 * (t_end / t0) ** (k / (steps - 1))
    out[-1] = t_end  # exact end point despite rounding
    return out


def logarithmic_schedule(t0: float, steps: int) -> Tensor:
    """The slow logarithmic schedule ``T_k = t0 log(2) / log(k + 2)``, ``k = 0, ..., steps-1``.

    A schedule ``c / log(k + 2)`` with ``c`` at least the depth of the deepest local minimum
    that is not global converges in probability to the global minima (Hajek 1988); it cools
    slowly, so it is mainly of theoretical interest.

    Parameters
    ----------
    t0 : float
        Start temperature ``> 0``.
    steps : int
        Number of temperatures (>= 1).

    Returns
    -------
    Tensor (steps,) float64

    Examples
    --------
    >>> logarithmic_schedule(1.0, 3)
    tensor([1.0000, 0.6309, 0.5000], dtype=torch.float64)
    """
    t0 = check_real(t0, "logarithmic_schedule t0", minimum=0.0, strict_minimum=True)
    steps = check_int(steps, "logarithmic_schedule steps", minimum=1)
    k = torch.arange(steps, dtype=torch.float64)
    return t0 * math.log(2.0) / torch.log(k + 2)


def simulated_annealing(model: BoltzmannMachine | HopfieldNetwork,
                        schedule: Sequence[float] | Tensor, num_chains: int = 16, *,
                        sweeps_per_temperature: int = 1,
                        initial: Tensor | None = None, scan: str = "systematic",
                        generator: torch.Generator | None = None) -> AnnealingResult:
    """Minimise the energy of a Boltzmann machine or a Hopfield network by simulated annealing.

    At each temperature of ``schedule`` every chain makes ``sweeps_per_temperature`` sweeps of
    heat-bath updates (see the module docstring).

    Parameters
    ----------
    model : BoltzmannMachine or HopfieldNetwork
        Its weights and biases are read (detached); it is not modified.
    schedule : sequence of float or Tensor (S,)
        Temperatures: non-empty, finite, ``> 0`` and non-increasing.
    num_chains : int
        Independent chains (>= 1) started uniformly at random; ignored when ``initial`` is
        given.
    sweeps_per_temperature : int
        Sweeps at each temperature (>= 1).
    initial : Tensor (C, K), optional
        Start states: the model's unit values (0/1 or -1/+1), dtype and device.
    scan : {"systematic", "random"}
        Unit order of a sweep: ``0, ..., K - 1``, or a permutation drawn per sweep (shared by
        the chains).
    generator : torch.Generator, optional

    Returns
    -------
    AnnealingResult

    Examples
    --------
    >>> from generative.energy.hopfield import HopfieldNetwork
    >>> from probforge.ops import make_generator
    >>> net = HopfieldNetwork.hebbian(torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
    >>> out = simulated_annealing(net, [1.0, 0.1, 0.01], num_chains=3,
    ...                           generator=make_generator(0))
    >>> out.best_energies
    tensor([-6., -6., -6.])
    """
    if not isinstance(model, BoltzmannMachine | HopfieldNetwork):
        raise ValidationError("simulated_annealing model",
                              "must be a BoltzmannMachine or a HopfieldNetwork",
                              found=type(model).__name__)
    temps = _check_schedule(schedule, "simulated_annealing schedule")
    sweeps = check_int(sweeps_per_temperature, "simulated_annealing sweeps_per_temperature",
                       minimum=1)
    check_choice(scan, "simulated_annealing scan", ("systematic", "random"))
    weight = model.weight.detach()
    bias = model.bias.detach()
    generator = check_optional_generator(generator, "simulated_annealing generator",
                                         weight.device)
    lo, hi = model.unit_values
    k = weight.shape[0]
    if initial is None:
        chains = check_int(num_chains, "simulated_annealing num_chains", minimum=1)
        coin = torch.rand(chains, k, generator=generator, device=weight.device) < 0.5
        x = torch.where(coin, hi, lo).to(weight.dtype)
    else:
        if not isinstance(initial, Tensor) or initial.dim() != 2:
            raise ShapeError("simulated_annealing initial", f"must be (C, {k}) states",
                             found=getattr(initial, "shape", type(initial).__name__))
        model.energy(initial)  # checks the values, shape, dtype and device
        x = initial.clone()
    gap_scale = hi - lo

    def energy(s: Tensor) -> Tensor:
        return -0.5 * ((s @ weight) * s).sum(-1) - s @ bias

    e = energy(x)
    trace = [e]
    best_x, best_e = x.clone(), e.clone()
    for temp in temps:
        for _ in range(sweeps):
            order = (torch.randperm(k, generator=generator, device=x.device).tolist()
                     if scan == "random" else range(k))
            u = torch.rand(k, x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
            for step, i in enumerate(order):
                gap = gap_scale * (x @ weight[:, i] + bias[i])
                x[:, i] = torch.where(u[step] < torch.sigmoid(gap / temp), hi, lo).to(x.dtype)
            e = energy(x)
            better = e < best_e
            best_x = torch.where(better.unsqueeze(-1), x, best_x)
            best_e = torch.where(better, e, best_e)
        trace.append(e)
    return AnnealingResult(best_x, best_e, x, torch.stack(trace))
