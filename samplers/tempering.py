"""Parallel tempering (replica exchange), vectorised over chains and temperatures.

Each chain holds ``R`` replicas at inverse temperatures ``1 = beta_0 > beta_1 > ... > beta_{R-1}``
targeting ``pi_r(x) ∝ p(x)^beta_r`` (or ``p(x)^beta_r * q(x)^(1 - beta_r)`` with a reference
density ``q``, which keeps the hot replicas proper when ``p`` is an improper-prior posterior).
A transition moves every replica with the inner kernel (all ``chains * R`` replicas in one batch)
and then proposes swaps between neighbouring temperatures, the even pairs ``(0,1), (2,3), ...``
on even steps and the odd pairs on odd steps (the deterministic even-odd scheme of Syed et al.
2019), each accepted with probability ``min(1, exp((beta_r - beta_{r+1}) (log p(x_{r+1}) -
log p(x_r))))``. Only the ``beta = 1`` replica is reported as the chain's position, so the
driver records draws from ``p``.

Internally replicas have shape (chains, R, *event); the inner kernel sees them flattened to
(chains * R, *event) with a per-replica tempered log density, so any kernel of this package
works inside (random-walk MH, MALA, HMC, NUTS, slice). Its params apply to the whole batch; a
kernel that accepts per-chain step sizes can take one per replica (shape (chains * R,),
replica-major within each chain).

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from samplers.metropolis import RandomWalkMetropolis
>>> from samplers.tempering import ParallelTempering, TemperingParams, geometric_betas
>>> logp = lambda x: torch.logaddexp(-0.5 * ((x - 4) ** 2).sum(-1), -0.5 * ((x + 4) ** 2).sum(-1))
>>> kernel = ParallelTempering(RandomWalkMetropolis(), geometric_betas(4, 0.05))
>>> state = kernel.init(torch.zeros(8, 1), logp)
>>> state, info = kernel.step(state, logp, TemperingParams(1.0), make_generator(0))
>>> state.position.shape, state.replicas.shape, info.swap_accept_prob.shape
(torch.Size([8, 1]), torch.Size([8, 4, 1]), torch.Size([8, 3]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.random import uniform
from probforge.validate import check_finite, check_int, check_real
from samplers._kernel_utils import (
    check_callable,
    check_finite_initial,
    check_generator_arg,
    check_position,
    check_state,
)
from samplers.base import LogDensity, check_per_row_output

__all__ = [
    "ParallelTempering",
    "TemperingInfo",
    "TemperingParams",
    "TemperingState",
    "geometric_betas",
    "replica_values",
    "swap_acceptance_rates",
]


def geometric_betas(num_temperatures: int, min_beta: float = 0.01) -> Tensor:
    """Inverse temperatures ``1, r, r**2, ..., min_beta`` with a constant ratio (float64, (R,)).

    Examples
    --------
    >>> geometric_betas(3, 0.25)
    tensor([1.0000, 0.5000, 0.2500], dtype=torch.float64)
    """
    num_temperatures = check_int(num_temperatures, "geometric_betas num_temperatures", minimum=1)
    min_beta = check_real(min_beta, "geometric_betas min_beta", minimum=0.0, maximum=1.0,
                          strict_minimum=True)
    if num_temperatures == 1:
        return torch.ones(1, dtype=torch.float64)
    return torch.logspace(0.0, torch.log10(torch.tensor(min_beta)).item(), num_temperatures,
                          dtype=torch.float64)


def replica_values(values: Tensor, chains: int) -> Tensor:
    """Per-replica values (R,) laid out for the flattened batch (chains * R,).

    Use it for inner-kernel params that differ by temperature, e.g. a random-walk scale
    ``replica_values(0.5 / betas.sqrt(), chains)``.

    Examples
    --------
    >>> replica_values(torch.tensor([1.0, 2.0]), 3)
    tensor([1., 2., 1., 2., 1., 2.])
    """
    if not isinstance(values, Tensor) or values.dim() != 1 or values.numel() == 0:
        raise ShapeError("replica_values values", "must be a non-empty tensor of shape (R,)",
                         found=tuple(values.shape) if isinstance(values, Tensor)
                         else type(values).__name__)
    chains = check_int(chains, "replica_values chains", minimum=1)
    return values.repeat(chains)


class TemperingState(NamedTuple):
    """State of :class:`ParallelTempering`.

    Attributes
    ----------
    position : Tensor (chains, *event)
        The ``beta = 1`` replica (what the driver records).
    log_density : Tensor (chains,)
        ``log p`` there (untempered).
    replicas : Tensor (chains, R, *event)
    replica_log_density : Tensor (chains, R)
        Untempered ``log p`` of every replica.
    inner : Any
        The inner kernel's state over the (chains * R) tempered replicas.
    step_count : Tensor ()
        Transitions made (its parity picks the even or odd swap pairs).
    swap_accepted : Tensor (chains, R - 1)
        Running count of accepted swaps per neighbouring pair.
    swap_proposed : Tensor (chains, R - 1)
        Running count of proposed swaps per pair.
    """

    position: Tensor
    log_density: Tensor
    replicas: Tensor
    replica_log_density: Tensor
    inner: Any
    step_count: Tensor
    swap_accepted: Tensor
    swap_proposed: Tensor


class TemperingParams(NamedTuple):
    """Params of :class:`ParallelTempering`: the inner kernel's params (shared by replicas)."""

    inner: Any = None


class TemperingInfo(NamedTuple):
    """Per-chain statistics.

    Attributes
    ----------
    accept_prob, is_accepted : Tensor (chains,)
        The inner move of the ``beta = 1`` replica.
    swap_accept_prob : Tensor (chains, R - 1)
        Swap acceptance probability of each neighbouring pair this step (0 where not proposed).
    swap_proposed : Tensor (chains, R - 1)
        Which pairs were proposed this step.
    mean_swap_accept : Tensor (chains,)
        Mean swap acceptance probability over the pairs proposed this step.
    inner_info : Any
        The inner kernel's Info over all (chains * R) replicas.
    """

    accept_prob: Tensor
    is_accepted: Tensor
    swap_accept_prob: Tensor
    swap_proposed: Tensor
    mean_swap_accept: Tensor
    inner_info: Any


def swap_acceptance_rates(state: TemperingState) -> Tensor:
    """Empirical swap acceptance rate of each neighbouring pair, pooled over chains, (R - 1,).

    A pair never proposed yet (before the second step) has rate 0.
    """
    check_state("swap_acceptance_rates", state, TemperingState)
    proposed = state.swap_proposed.sum(0).clamp(min=1)
    return state.swap_accepted.sum(0) / proposed


class ParallelTempering:
    """Replica-exchange wrapper around any kernel.

    Parameters
    ----------
    inner : Kernel
        Kernel for the moves within each temperature.
    betas : sequence of float or Tensor (R,)
        Inverse temperatures, decreasing from exactly 1 and all > 0 (see :func:`geometric_betas`).
    reference_log_density : callable, optional
        Normalised reference ``log q`` (chains, *event) -> (chains,); the replicas then target
        ``beta log p + (1 - beta) log q``.
    """

    def __init__(
        self,
        inner: Any,
        betas: Sequence[float] | Tensor,
        reference_log_density: LogDensity | None = None,
    ) -> None:
        if not callable(getattr(inner, "init", None)) or not callable(getattr(inner, "step", None)):
            raise ValidationError("ParallelTempering inner", "must be a kernel with init and step",
                                  found=type(inner).__name__,
                                  fix="pass e.g. RandomWalkMetropolis() or MALA()")
        if reference_log_density is not None:
            check_callable("ParallelTempering", reference_log_density, "reference_log_density")
        if isinstance(betas, Tensor) and not betas.is_floating_point():
            raise DtypeMismatchError("ParallelTempering betas", "must be floating point",
                                     found=betas.dtype, fix="use geometric_betas(R, min_beta)")
        try:
            b = torch.as_tensor(betas, dtype=torch.float64).flatten()
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError("ParallelTempering betas", "must be a sequence of numbers",
                                  found=repr(betas)[:60]) from err
        check_finite(b, "ParallelTempering betas")
        if b.numel() < 1 or float(b[0]) != 1.0:
            raise ValidationError(
                "ParallelTempering betas", "must start at exactly 1", found=b.tolist()[:5]
            )
        if bool((b <= 0).any()) or bool((b[1:] >= b[:-1]).any()):
            raise ValidationError(
                "ParallelTempering betas",
                "must be positive and strictly decreasing",
                found=b.tolist(),
                fix="use geometric_betas(R, min_beta)",
            )
        self.inner = inner
        self.betas = b
        self.reference_log_density = reference_log_density

    @property
    def num_temperatures(self) -> int:
        """``R``."""
        return int(self.betas.numel())

    def default_params(self, position: Tensor) -> TemperingParams:
        """The inner kernel's default params."""
        flat = position.repeat_interleave(self.num_temperatures, dim=0)
        inner = getattr(self.inner, "default_params", None)
        return TemperingParams(inner(flat) if inner is not None else None)

    # -- helpers ---------------------------------------------------------------------------

    def _betas_like(self, x: Tensor) -> Tensor:
        return self.betas.to(dtype=x.dtype, device=x.device)

    def _tempered(self, log_density: LogDensity, chains: int) -> LogDensity:
        """Log density of the flattened replicas (chains * R, *event) -> (chains * R,)."""
        ref = self.reference_log_density

        def tempered(x: Tensor) -> Tensor:
            beta = self._betas_like(x).repeat(chains)
            lp = log_density(x)
            if ref is None:
                return beta * lp
            return beta * lp + (1.0 - beta) * ref(x)

        return tempered

    def _energy(self, log_density: LogDensity, flat: Tensor) -> Tensor:
        """What swaps exchange: ``log p`` (or ``log p - log q`` with a reference)."""
        lp = log_density(flat)
        if self.reference_log_density is not None:
            lp = lp - self.reference_log_density(flat)
        return lp

    @staticmethod
    def _swap_log_ratio(betas: Tensor, energy: Tensor) -> Tensor:
        """Log MH ratio of exchanging replicas r and r + 1, (chains, R - 1).

        ``pi_r(x_{r+1}) pi_{r+1}(x_r) / (pi_r(x_r) pi_{r+1}(x_{r+1}))
        = exp((beta_r - beta_{r+1}) (E(x_{r+1}) - E(x_r)))`` with ``E = log p (- log q)``.
        """
        return (betas[:-1] - betas[1:]) * (energy[:, 1:] - energy[:, :-1])

    # -- protocol --------------------------------------------------------------------------

    def init(self, position: Tensor, log_density: LogDensity) -> TemperingState:
        """Start every replica of chain ``c`` at ``position[c]`` (chains, *event).

        The position must have at least one chain and one coordinate and be finite; its dtype
        is checked by the inner kernel (integer states only for a kernel that takes them, such
        as :class:`~samplers.metropolis.MetropolisHastings`).
        """
        check_position("ParallelTempering", position, min_ndim=2, floating=False)
        chains = position.shape[0]
        replicas = position.detach().unsqueeze(1).expand(
            (chains, self.num_temperatures, *position.shape[1:])
        )
        return self.init_replicas(replicas.contiguous(), log_density)

    def init_replicas(self, replicas: Tensor, log_density: LogDensity) -> TemperingState:
        """Start from explicit replica positions (chains, R, *event)."""
        r = self.num_temperatures
        if not isinstance(replicas, Tensor) or replicas.dim() < 3 or replicas.shape[1] != r:
            raise ShapeError(
                "ParallelTempering replicas",
                f"must have shape (chains, R = {r}, *event)",
                found=tuple(replicas.shape) if isinstance(replicas, Tensor)
                else type(replicas).__name__,
            )
        check_position("ParallelTempering replicas", replicas, min_ndim=3, floating=False)
        check_callable("ParallelTempering", log_density)
        chains = replicas.shape[0]
        flat = replicas.reshape(chains * r, *replicas.shape[2:])
        with torch.no_grad():
            lp = log_density(flat)
        check_per_row_output("ParallelTempering: log-density (chains * R positions)", lp, flat)
        if not lp.is_floating_point():
            raise DtypeMismatchError("ParallelTempering: log-density",
                                     "must return a floating-point tensor", found=lp.dtype)
        check_finite_initial("ParallelTempering", lp.reshape(chains, r).sum(1))
        inner = self.inner.init(flat, self._tempered(log_density, chains))
        zeros = torch.zeros(chains, max(r - 1, 0), dtype=replicas.dtype, device=replicas.device)
        lp = lp.detach().reshape(chains, r)
        return TemperingState(
            replicas[:, 0],
            lp[:, 0],
            replicas,
            lp,
            inner,
            torch.zeros((), dtype=torch.long, device=replicas.device),
            zeros,
            zeros.clone(),
        )

    def step(
        self,
        state: TemperingState,
        log_density: LogDensity,
        params: TemperingParams | Any,
        generator: torch.Generator | None = None,
    ) -> tuple[TemperingState, TemperingInfo]:
        """Inner moves for all replicas, then one round of even or odd neighbour swaps.

        Parameters
        ----------
        state : TemperingState
        log_density : callable
            Untempered ``log p``, (batch, *event) -> (batch,).
        params : TemperingParams or the inner kernel's params
        generator : torch.Generator, optional

        Returns
        -------
        (TemperingState, TemperingInfo)
        """
        check_state("ParallelTempering", state, TemperingState)
        check_generator_arg(generator, state.replicas.device)
        inner_params = params.inner if isinstance(params, TemperingParams) else params
        chains, r = state.replicas.shape[:2]
        event = state.replicas.shape[2:]
        tempered = self._tempered(log_density, chains)
        inner_state, inner_info = self.inner.step(state.inner, tempered, inner_params, generator)
        flat = inner_state.position
        x = flat.reshape(chains, r, *event)
        with torch.no_grad():
            energy = self._energy(log_density, flat).reshape(chains, r)

        betas = self._betas_like(energy)
        dtype, device = energy.dtype, energy.device
        if r > 1:
            # Pairs (i, i+1) with i of the current parity are proposed, all chains at once.
            pair = torch.arange(r - 1, device=device)
            proposed = (pair % 2 == state.step_count % 2).expand(chains, r - 1)
            log_ratio = torch.nan_to_num(self._swap_log_ratio(betas, energy), nan=-torch.inf)
            swap_prob = torch.exp(log_ratio.clamp(max=0.0)) * proposed
            log_u = torch.log(uniform((chains, r - 1), generator=generator, dtype=dtype,
                                      device=device))
            swap = proposed & (log_u < log_ratio)
            # Permutation: i <-> i+1 where swap[:, i] (pairs of one parity are disjoint).
            idx = torch.arange(r, device=device).expand(chains, r).clone()
            idx[:, :-1] = torch.where(swap, idx[:, :-1] + 1, idx[:, :-1])
            idx[:, 1:] = torch.where(swap, idx[:, 1:] - 1, idx[:, 1:])
            gather = idx.reshape(chains, r, *([1] * len(event))).expand_as(x)
            x = torch.gather(x, 1, gather)
            energy = torch.gather(energy, 1, idx)
            swapped_any = bool(swap.any())
            n_prop = proposed.sum(1).clamp(min=1)
            mean_swap = swap_prob.sum(1) / n_prop
            swap_accepted = state.swap_accepted + swap.to(dtype)
            swap_proposed = state.swap_proposed + proposed.to(dtype)
        else:
            proposed = torch.zeros(chains, 0, dtype=torch.bool, device=device)
            swap_prob = torch.zeros(chains, 0, dtype=dtype, device=device)
            swapped_any = False
            mean_swap = torch.zeros(chains, dtype=dtype, device=device)
            swap_accepted, swap_proposed = state.swap_accepted, state.swap_proposed

        flat = x.reshape(chains * r, *event)
        if swapped_any:  # the inner state caches tempered densities (and gradients): rebuild
            inner_state = self.inner.init(flat, tempered)
        if self.reference_log_density is None:
            lp = energy
        else:
            with torch.no_grad():
                lp = log_density(flat).reshape(chains, r)
        new = TemperingState(
            x[:, 0],
            lp[:, 0],
            x,
            lp,
            inner_state,
            state.step_count + 1,
            swap_accepted,
            swap_proposed,
        )
        acc = inner_info.accept_prob.reshape(chains, r)[:, 0]
        is_acc = inner_info.is_accepted.reshape(chains, r)[:, 0]
        info = TemperingInfo(acc, is_acc, swap_prob, proposed, mean_swap, inner_info)
        return new, info
