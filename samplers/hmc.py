"""Hamiltonian Monte Carlo with a leapfrog integrator, vectorised over chains.

Every chain draws a momentum ``p ~ N(0, M)``, integrates Hamilton's equations for ``num_steps``
leapfrog steps of size ``step_size`` in lockstep with the other chains, and accepts the end point
with probability ``min(1, exp(H(z, p) - H(z', p')))`` (a ``torch.where`` per chain). The mass
matrix is given through its inverse: None (identity), a diagonal ``(d,)`` or a dense ``(d, d)``
matrix, ``d`` being the flattened event size. A transition whose energy error exceeds
``divergence_threshold`` (1000, as in Stan) is flagged divergent and rejected.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from samplers.hmc import HMC, HMCParams
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> kernel = HMC()
>>> state = kernel.init(torch.zeros(4, 3), logp)
>>> params = HMCParams(step_size=0.3, num_steps=10)
>>> state, info = kernel.step(state, logp, params, make_generator(0))
>>> state.position.shape, info.accept_prob.shape
(torch.Size([4, 3]), torch.Size([4]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from probforge.ops.random import uniform
from probforge.validate import check_int, check_real
from samplers._kernel_utils import (
    MetricCache,
    ValueChecks,
    check_generator_arg,
    check_params_fields,
    check_state,
    check_step_size,
    flat_log_density,
    init_with_grad,
    leapfrog,
    per_chain,
)
from samplers.base import LogDensity

__all__ = ["HMC", "HMCInfo", "HMCParams", "HMCState"]


class HMCState(NamedTuple):
    """Position (chains, *event), its log density (chains,) and gradient (chains, *event)."""

    position: Tensor
    log_density: Tensor
    grad: Tensor


class HMCParams(NamedTuple):
    """Tunable parameters of :class:`HMC` (and of NUTS and MALA, which ignore ``num_steps``).

    Attributes
    ----------
    step_size : float or Tensor
        Leapfrog step size, a scalar or one per chain (chains,).
    num_steps : int
        Leapfrog steps per transition.
    inverse_mass_matrix : Tensor or None
        None (identity), (d,) diagonal or (d, d) dense, d = prod(event shape).
    """

    step_size: float | Tensor = 0.1
    num_steps: int = 10
    inverse_mass_matrix: Tensor | None = None


class HMCInfo(NamedTuple):
    """Per-chain transition statistics, each of shape (chains,).

    ``accept_prob`` is ``min(1, exp(-energy error))``; ``energy`` the Hamiltonian of the state
    kept (for E-BFMI); ``is_divergent`` flags energy errors above the threshold.
    """

    accept_prob: Tensor
    is_accepted: Tensor
    is_divergent: Tensor
    energy: Tensor


class HMC:
    """Hamiltonian Monte Carlo kernel (Duane et al. 1987; Neal 2011).

    Parameters
    ----------
    divergence_threshold : float
        Energy error above which a transition is reported divergent (and rejected).
    step_size_jitter : float
        In [0, 1): each transition every chain uses ``step_size * u``, ``u ~ U(1 - j, 1 + j)``
        drawn independently of the state (so the chain stays exact). A fixed trajectory length
        can resonate with the target's periods (an ESS of a few per thousand draws on a
        Gaussian); jittering breaks that (Neal 2011, section 5.4.2.2). Default 0, as in Stan.

    Notes
    -----
    The step size may be a tensor of shape (chains,); ``num_steps`` is shared so that all chains
    move in lockstep. Use :class:`samplers.adaptation.WindowAdaptation` to tune the step size and
    mass matrix during warmup.
    """

    def __init__(self, divergence_threshold: float = 1000.0, step_size_jitter: float = 0.0) -> None:
        self.divergence_threshold = check_real(
            divergence_threshold, "HMC divergence_threshold", minimum=0.0, strict_minimum=True,
            allow_inf=True)
        self.step_size_jitter = check_real(step_size_jitter, "HMC step_size_jitter",
                                           minimum=0.0, maximum=1.0, strict_maximum=True)
        self._metrics = MetricCache()
        self._values = ValueChecks()

    def default_params(self, position: Tensor) -> HMCParams:
        """Untuned defaults (:class:`HMCParams`); prefer warmup with
        :class:`samplers.adaptation.WindowAdaptation`."""
        return HMCParams()

    def init(self, position: Tensor, log_density: LogDensity) -> HMCState:
        """State at ``position`` (chains, *event); raises if a chain's log density is not finite.

        Raises
        ------
        ValidationError
            For a position that is not a floating (chains >= 1, *event) tensor with finite
            entries, or a log-density that is not (chains,), not differentiable, or not finite
            (NaN, +-inf) with a finite gradient at the position (the chains are named).
        """
        lp, grad = init_with_grad("HMC", position, log_density)
        return HMCState(position.detach(), lp, grad)

    def step(
        self,
        state: HMCState,
        log_density: LogDensity,
        params: HMCParams,
        generator: torch.Generator | None = None,
    ) -> tuple[HMCState, HMCInfo]:
        """One HMC transition for every chain.

        Parameters
        ----------
        state : HMCState
        log_density : callable
            (chains, *event) -> (chains,).
        params : HMCParams
        generator : torch.Generator, optional

        Returns
        -------
        (HMCState, HMCInfo)
        """
        check_state("HMC", state, HMCState)
        check_params_fields("HMC", params, ("step_size", "num_steps", "inverse_mass_matrix"),
                            "HMCParams", "WindowAdaptation()")
        x = state.position
        check_generator_arg(generator, x.device)
        chains, event = x.shape[0], x.shape[1:]
        z0 = x.reshape(chains, -1)
        g0 = state.grad.reshape(chains, -1)
        d = z0.shape[1]
        num_steps = check_int(params.num_steps, "HMC num_steps", minimum=1)
        check_step_size("HMC", params.step_size, chains, self._values)
        metric = self._metrics.get(params.inverse_mass_matrix, d, z0, "HMC")
        eps = per_chain(params.step_size, z0)
        flat_ld = flat_log_density(log_density, event)
        if self.step_size_jitter > 0:
            u = uniform((chains, 1), generator=generator, dtype=z0.dtype, device=z0.device)
            eps = eps * (1.0 + self.step_size_jitter * (2.0 * u - 1.0))

        p0 = metric.sample_momentum(chains, z0, generator)
        h0 = -state.log_density + metric.kinetic(p0)
        z1, p1, g1, lp1 = leapfrog(flat_ld, z0, p0, g0, eps, metric, num_steps)
        h1 = -lp1 + metric.kinetic(p1)
        h1 = torch.where(torch.isnan(h1), torch.full_like(h1, float("inf")), h1)
        delta = h0 - h1  # log acceptance ratio
        divergent = -delta > self.divergence_threshold
        accept_prob = torch.exp(torch.clamp(delta, max=0.0))
        log_u = torch.log(uniform((chains,), generator=generator, dtype=z0.dtype, device=z0.device))
        accepted = (log_u < delta) & ~divergent
        mask = accepted[:, None]
        new = HMCState(
            torch.where(mask, z1, z0).reshape(x.shape),
            torch.where(accepted, lp1, state.log_density),
            torch.where(mask, g1, g0).reshape(x.shape),
        )
        info = HMCInfo(accept_prob, accepted, divergent, torch.where(accepted, h1, h0))
        return new, info
