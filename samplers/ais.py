"""Annealed importance sampling (Neal 2001) for normalising constants.

Particles (one per chain) start from a normalised base distribution ``p_0`` and are moved through
the geometric path ``log gamma_t(x) = (1 - beta_t) log p_0(x) + beta_t log f(x)``, ``0 = beta_0 <
beta_1 < ... < beta_T = 1``, by MCMC transitions that leave ``gamma_t`` invariant (any kernel of
this package). The importance weight of a particle accumulates
``(beta_t - beta_{t-1}) (log f(x_{t-1}) - log p_0(x_{t-1}))`` before the move at step ``t``;
every weight ``w`` is an unbiased estimate of ``Z = ∫ f``. The estimate is
``log Z_hat = log mean(w)`` with the delta-method standard error
``sd(w / mean(w)) / sqrt(N)``, all computed in log space.

Examples
--------
>>> import math, torch
>>> from probforge.ops.random import make_generator
>>> from samplers.ais import DiagonalNormal, ais
>>> from samplers.hmc import HMC, HMCParams
>>> log_f = lambda x: -0.5 * ((x - 1.0) ** 2).sum(-1)      # Z = 2 pi in 2-d
>>> base = DiagonalNormal(torch.zeros(2, dtype=torch.float64), 2.0)
>>> res = ais(log_f, base, HMC(), HMCParams(0.5, 5), num_particles=256,
...           num_temperatures=50, generator=make_generator(0))
>>> abs(res.log_z - math.log(2 * math.pi)) < 4 * res.log_z_se + 0.05
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import normal
from probforge.validate import check_finite, check_int, check_log_values, check_tensor
from samplers._kernel_utils import check_callable, check_generator_arg, check_position
from samplers.base import LogDensity, check_per_row_output

__all__ = ["AISResult", "Base", "DiagonalNormal", "ais", "log_evidence_se"]


class Base(Protocol):
    """A normalised base distribution: ``sample(n, generator)`` (n, *event), ``log_prob``."""

    def sample(self, n: int, generator: torch.Generator | None) -> Tensor: ...

    def log_prob(self, x: Tensor) -> Tensor: ...


class DiagonalNormal:
    """``N(loc, diag(scale**2))`` over an event of ``loc``'s shape, sampled with a generator.

    Parameters
    ----------
    loc : Tensor (*event)
    scale : float or Tensor (*event)
    """

    def __init__(self, loc: Tensor, scale: float | Tensor) -> None:
        check_tensor(loc, "DiagonalNormal loc", floating=True, finite=True)
        if isinstance(scale, Tensor) and not scale.is_floating_point():
            raise DtypeMismatchError("DiagonalNormal scale", "must be floating point (or a number)",
                                     found=scale.dtype, fix="use a float")
        if not isinstance(scale, Tensor | int | float) or isinstance(scale, bool):
            raise ValidationError("DiagonalNormal scale", "must be a number or a tensor",
                                  found=type(scale).__name__)
        self.loc = loc
        s = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        try:
            self.scale = s.expand_as(loc)
        except RuntimeError as err:
            raise ShapeError("DiagonalNormal scale", "must broadcast to loc's shape",
                             found=(tuple(s.shape), tuple(loc.shape))) from err
        check_finite(self.scale, "DiagonalNormal scale")
        if bool((self.scale <= 0).any()):
            raise ValidationError("DiagonalNormal scale", "must be positive",
                                  found=self.scale[self.scale <= 0][:5].tolist())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draws (n, *event); ``n = 0`` gives an empty (0, *event) tensor."""
        n = check_int(n, "DiagonalNormal.sample n", minimum=0)
        check_generator_arg(generator, self.loc.device)
        eps = normal((n, *self.loc.shape), generator=generator, dtype=self.loc.dtype,
                     device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density (n,) of x (n, *event)."""
        check_tensor(x, "DiagonalNormal.log_prob x", floating=True)
        if tuple(x.shape[1:]) != tuple(self.loc.shape) or x.dim() < 1:
            raise ShapeError("DiagonalNormal.log_prob x",
                             f"must have shape (n, *{tuple(self.loc.shape)})",
                             found=tuple(x.shape))
        z = (x - self.loc) / self.scale
        lp = -0.5 * z**2 - torch.log(self.scale) - 0.5 * math.log(2 * math.pi)
        return lp.reshape(x.shape[0], -1).sum(-1)


class AISResult(NamedTuple):
    """Result of :func:`ais`.

    Attributes
    ----------
    log_z : float
        ``log mean(w)``, the log normalising constant estimate.
    log_z_se : float
        Delta-method standard error of ``log_z``.
    log_weights : Tensor (particles,)
        Log importance weights (each ``exp`` is unbiased for Z).
    positions : Tensor (particles, *event)
        Final particles (weighted draws from the target).
    ess : float
        Effective sample size of the normalised weights, ``1 / sum(w_norm**2)``.
    accept_rate : Tensor (T,)
        Mean acceptance probability of the transitions at each temperature.
    """

    log_z: float
    log_z_se: float
    log_weights: Tensor
    positions: Tensor
    ess: float
    accept_rate: Tensor


def log_evidence_se(log_weights: Tensor) -> tuple[float, float, float]:
    """``(log mean w, se of it, ESS)`` from log weights (n,), in log space.

    Examples
    --------
    >>> import torch
    >>> log_z, se, ess = log_evidence_se(torch.zeros(10))
    >>> log_z, se, ess
    (0.0, 0.0, 10.0)

    With one weight the standard error is undefined and returned as ``inf`` (not NaN); NaN
    weights, or weights that are all zero (``-inf``), raise :class:`NonFiniteError`.
    """
    check_tensor(log_weights, "log_evidence_se log_weights", ndim=1, floating=True,
                 nonempty=True)
    check_log_values(log_weights, "log_evidence_se log_weights",
                     fix="make log_target return -inf (not NaN) outside its support")
    if not bool(torch.isfinite(log_weights).any()):
        raise NonFiniteError("log_evidence_se log_weights",
                             "every weight is zero (all log-weights are -inf)",
                             fix="use a base distribution that covers the target's support")
    n = log_weights.shape[0]
    log_mean = torch.logsumexp(log_weights, 0) - math.log(n)
    w = torch.exp(log_weights - log_mean)  # w / mean(w), mean 1
    sd = float(w.std(unbiased=True)) if n > 1 else float("inf")
    ess = float(n**2 / (w**2).sum())
    return float(log_mean), sd / math.sqrt(n), ess


def ais(
    log_target: LogDensity,
    base: Base,
    kernel: Any,
    params: Any = None,
    *,
    num_particles: int | None = None,
    num_temperatures: int = 100,
    betas: Sequence[float] | Tensor | None = None,
    num_mcmc_steps: int = 1,
    initial_position: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Estimate ``log Z`` of an unnormalised ``log_target`` by annealed importance sampling.

    Parameters
    ----------
    log_target : callable
        Unnormalised ``log f``, (particles, *event) -> (particles,).
    base : Base
        Normalised starting distribution with ``sample(n, generator)`` and ``log_prob``
        (e.g. :class:`DiagonalNormal`); its support must cover the target's.
    kernel : Kernel
        MCMC kernel used at every intermediate temperature.
    params : object or callable, optional
        The kernel's params, or a function ``beta -> params`` (e.g. a step size that shrinks as
        the target sharpens). None uses ``kernel.default_params``.
    num_particles : int, optional
        Number of particles (chains); required unless ``initial_position`` is given.
    num_temperatures : int
        ``T``: number of annealing steps on the geometric schedule ``beta_t = t / T`` raised to
        the power 4 (dense near the base, where the weights change fastest), unless ``betas``
        is given.
    betas : sequence or Tensor, optional
        Increasing schedule ending at 1 (``beta_0 = 0`` is implied).
    num_mcmc_steps : int
        Transitions per temperature.
    initial_position : Tensor (particles, *event), optional
        Draws from ``base`` made by the caller.
    generator : torch.Generator, optional

    Returns
    -------
    AISResult
        With one particle ``log_z_se`` is ``inf`` (undefined). A particle whose log-density
        turns NaN during the run gets weight zero (NaN is outside the support, as for every
        kernel); if every weight is zero, :class:`~probforge.errors.NonFiniteError` is raised.
    """
    check_callable("ais", log_target, "log_target")
    for name in ("sample", "log_prob"):
        if not callable(getattr(base, name, None)):
            raise ValidationError("ais base", "must have sample(n, generator) and log_prob(x)",
                                  found=type(base).__name__, fix="use DiagonalNormal(loc, scale)")
    for name in ("init", "step"):
        if not callable(getattr(kernel, name, None)):
            raise ValidationError("ais kernel", "must have init and step (see samplers.base)",
                                  found=type(kernel).__name__, fix="pass e.g. HMC() or MALA()")
    num_mcmc_steps = check_int(num_mcmc_steps, "ais num_mcmc_steps", minimum=0)
    if initial_position is None:
        if num_particles is None:
            raise ValidationError(
                "ais", "num_particles must be >= 1 (or pass initial_position)",
                found=num_particles,
            )
        num_particles = check_int(num_particles, "ais num_particles", minimum=1)
        x = base.sample(num_particles, generator)
        if not isinstance(x, Tensor):
            raise ValidationError("ais base.sample", "must return a tensor (n, *event)",
                                  found=type(x).__name__)
    else:
        x = initial_position
        check_position("ais", x, min_ndim=1)
        if num_particles is not None and check_int(num_particles, "ais num_particles",
                                                   minimum=1) != x.shape[0]:
            raise ShapeError("ais", "num_particles disagrees with initial_position",
                             found=(num_particles, tuple(x.shape)),
                             fix="pass one of them, or make them agree")
    check_generator_arg(generator, x.device, "ais generator")
    if betas is None:
        num_temperatures = check_int(num_temperatures, "ais num_temperatures", minimum=1)
        sched = (torch.arange(1, num_temperatures + 1, dtype=torch.float64) / num_temperatures)
        sched = sched**4
    else:
        if isinstance(betas, Tensor) and not betas.is_floating_point():
            raise DtypeMismatchError("ais betas", "must be floating point", found=betas.dtype)
        sched = torch.as_tensor(betas, dtype=torch.float64).flatten()
        check_finite(sched, "ais betas")
        if sched.numel() < 1 or bool((sched[1:] <= sched[:-1]).any()) or float(sched[0]) <= 0:
            raise ValidationError(
                "ais betas", "must be strictly increasing in (0, 1]", found=sched.tolist()[:5]
            )
        if float(sched[-1]) != 1.0:
            raise ValidationError("ais betas", "must end at 1", found=float(sched[-1]))

    def diff(z: Tensor) -> Tensor:
        with torch.no_grad():
            return log_target(z) - base.log_prob(z)

    def path(beta: float) -> LogDensity:
        def log_gamma(z: Tensor) -> Tensor:
            return (1.0 - beta) * base.log_prob(z) + beta * log_target(z)

        return log_gamma

    x = x.detach()
    log_w = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for what, value in (("log_target", log_target(x)), ("base.log_prob", base.log_prob(x))):
            check_per_row_output(f"ais {what} (of the particles)", value, x)
    delta = diff(x)
    bad = torch.isnan(delta)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()[:20]
        raise NonFiniteError(
            "ais", f"log f - log p_0 is NaN at the initial particles {idx}",
            fix="make log_target return -inf (not NaN) outside its support",
        )
    prev = 0.0
    accept = []
    get_params: Callable[[float], Any]
    if callable(params) and not hasattr(params, "_fields"):
        get_params = params
    else:
        fixed = params if params is not None else getattr(
            kernel, "default_params", lambda _: None)(x)

        def get_params(_: float) -> Any:
            return fixed

    for beta_t in sched.tolist():
        log_w = log_w + (beta_t - prev) * delta
        prev = beta_t
        rates = []
        if num_mcmc_steps > 0:
            ld = path(beta_t)
            state = kernel.init(x, ld)
            p = get_params(beta_t)
            for _ in range(num_mcmc_steps):
                state, info = kernel.step(state, ld, p, generator)
                rates.append(info.accept_prob.mean())
            x = state.position.detach()
            delta = diff(x)
        accept.append(torch.stack(rates).mean() if rates else torch.ones((), dtype=x.dtype))
    # A NaN log-density met during the run is outside the support (the package's policy): the
    # particle gets weight zero.
    log_w = torch.nan_to_num(log_w, nan=-math.inf)
    if not bool(torch.isfinite(log_w).any()):
        raise NonFiniteError("ais", "every particle's weight is zero (log-weights all -inf)",
                             fix="use a base distribution that covers the target's support, "
                             "more temperatures, or smaller MCMC steps")
    log_z, se, ess = log_evidence_se(log_w)
    return AISResult(log_z, se, log_w, x, ess, torch.stack([a.to(x.device) for a in accept]))
