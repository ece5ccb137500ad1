"""The Metropolis-adjusted Langevin algorithm (MALA), vectorised over chains.

The proposal is one Euler step of the Langevin diffusion preconditioned by ``M^-1``::

    x' = x + (eps^2 / 2) M^-1 grad log p(x) + eps * N(0, M^-1)

and is accepted with the Metropolis-Hastings ratio including the *asymmetric* proposal densities
``q(x | x') / q(x' | x)`` (Roberts & Tweedie 1996). Without that correction the chain would
target the wrong distribution; tests/samplers/test_mala.py shows the invariance test catches it.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from samplers.mala import MALA, MALAParams
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> kernel = MALA()
>>> state = kernel.init(torch.zeros(4, 3), logp)
>>> state, info = kernel.step(state, logp, MALAParams(step_size=0.8), make_generator(0))
>>> info.is_accepted.dtype
torch.bool
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from probforge.ops.random import uniform
from samplers._kernel_utils import (
    Metric,
    MetricCache,
    ValueChecks,
    check_generator_arg,
    check_params_fields,
    check_state,
    check_step_size,
    flat_log_density,
    init_with_grad,
    per_chain,
)
from samplers.base import LogDensity, log_density_and_grad

__all__ = ["MALA", "MALAInfo", "MALAParams", "MALAState"]


class MALAState(NamedTuple):
    """Position (chains, *event), its log density (chains,) and gradient (chains, *event)."""

    position: Tensor
    log_density: Tensor
    grad: Tensor


class MALAParams(NamedTuple):
    """Tunable parameters of :class:`MALA`.

    Attributes
    ----------
    step_size : float or Tensor
        ``eps``, scalar or (chains,).
    inverse_mass_matrix : Tensor or None
        Preconditioner: None (identity), (d,) diagonal or (d, d) dense.
    """

    step_size: float | Tensor = 0.1
    inverse_mass_matrix: Tensor | None = None


class MALAInfo(NamedTuple):
    """Per-chain statistics (chains,): ``min(1, MH ratio)`` and whether the proposal was taken."""

    accept_prob: Tensor
    is_accepted: Tensor


class MALA:
    """Metropolis-adjusted Langevin kernel.

    Notes
    -----
    ``eps`` is the scale of the proposal noise; the drift is ``eps**2 / 2`` times the
    preconditioned gradient. A good ``eps`` gives an acceptance rate near 0.57 (Roberts &
    Rosenthal 1998); :class:`samplers.adaptation.WindowAdaptation` with ``target_accept=0.57``
    tunes it.
    """

    def __init__(self) -> None:
        self._metrics = MetricCache()
        self._values = ValueChecks()

    def default_params(self, position: Tensor) -> MALAParams:
        """Untuned defaults (:class:`MALAParams`); prefer warmup with
        :class:`samplers.adaptation.WindowAdaptation`."""
        return MALAParams()

    def init(self, position: Tensor, log_density: LogDensity) -> MALAState:
        """State at ``position`` (chains, *event); raises if a chain's log density is not finite.

        Raises
        ------
        ValidationError
            For a position that is not a floating (chains >= 1, *event) tensor with finite
            entries, or a log-density that is not (chains,), not differentiable, or not finite
            (NaN, +-inf) with a finite gradient at the position (the chains are named).
        """
        lp, grad = init_with_grad("MALA", position, log_density)
        return MALAState(position.detach(), lp, grad)

    def _log_hastings(
        self, x: Tensor, g: Tensor, y: Tensor, gy: Tensor, eps: Tensor, metric: Metric
    ) -> Tensor:
        """``log q(x | y) - log q(y | x)`` for the Langevin proposal, (chains,)."""
        half = 0.5 * eps**2
        log_q_back = metric.log_normal(x, y + half * metric.velocity(gy), eps)
        log_q_fwd = metric.log_normal(y, x + half * metric.velocity(g), eps)
        return log_q_back - log_q_fwd

    def step(
        self,
        state: MALAState,
        log_density: LogDensity,
        params: MALAParams,
        generator: torch.Generator | None = None,
    ) -> tuple[MALAState, MALAInfo]:
        """One MALA transition for every chain.

        Parameters
        ----------
        state : MALAState
        log_density : callable
            (chains, *event) -> (chains,).
        params : MALAParams
        generator : torch.Generator, optional

        Returns
        -------
        (MALAState, MALAInfo)
        """
        check_state("MALA", state, MALAState)
        check_params_fields("MALA", params, ("step_size", "inverse_mass_matrix"), "MALAParams",
                            "WindowAdaptation(target_accept=0.57)")
        xs = state.position
        check_generator_arg(generator, xs.device)
        chains, event = xs.shape[0], xs.shape[1:]
        x = xs.reshape(chains, -1)
        g = state.grad.reshape(chains, -1)
        check_step_size("MALA", params.step_size, chains, self._values)
        metric = self._metrics.get(params.inverse_mass_matrix, x.shape[1], x, "MALA")
        eps = per_chain(params.step_size, x)
        flat_ld = flat_log_density(log_density, event)

        noise = metric.velocity(metric.sample_momentum(chains, x, generator))  # ~ N(0, M^-1)
        y = x + 0.5 * eps**2 * metric.velocity(g) + eps * noise
        lpy, gy = log_density_and_grad(flat_ld, y)
        log_ratio = lpy - state.log_density + self._log_hastings(x, g, y, gy, eps, metric)
        log_ratio = torch.where(torch.isnan(log_ratio), float("-inf"), log_ratio)
        accept_prob = torch.exp(torch.clamp(log_ratio, max=0.0))
        log_u = torch.log(uniform((chains,), generator=generator, dtype=x.dtype, device=x.device))
        accepted = log_u < log_ratio
        m = accepted[:, None]
        new = MALAState(
            torch.where(m, y, x).reshape(xs.shape),
            torch.where(accepted, lpy, state.log_density),
            torch.where(m, gy, g).reshape(xs.shape),
        )
        return new, MALAInfo(accept_prob, accepted)
