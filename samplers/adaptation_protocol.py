"""Warmup adaptation: the :class:`Adaptation` protocol, a Welford estimator, and random-walk scale
adaptation.

An adaptation is a set of pure functions over an explicit ``AdaptState``, used by
:func:`samplers.run.sample` during warmup:

- ``init(params, state) -> AdaptState`` (``params`` may be None: choose defaults)
- ``update(adapt_state, state, info, step_index, num_warmup) -> AdaptState`` after every warmup
  transition (``step_index`` counts from 0)
- ``params(adapt_state) -> params``: the parameters for the next transition
- ``final(adapt_state) -> params``: the parameters frozen for the kept draws

Adaptation only happens in warmup; the kept draws use fixed parameters, so they are draws of a
time-homogeneous Markov chain.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from samplers.metropolis import RandomWalkMetropolis
>>> from samplers.adaptation_protocol import ScaleAdaptation
>>> from samplers.run import sample
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1) / 0.01
>>> s = sample(RandomWalkMetropolis(), logp, torch.zeros(4, 2), num_draws=200,
...            num_warmup=500, adaptation=ScaleAdaptation(), seed=0)
>>> 0.05 < float(s.attrs["params"].scale) < 0.3   # adapted to the target's sd of 0.1
True
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_int, check_real, check_tensor
from samplers.metropolis import RandomWalkParams, optimal_scale

__all__ = [
    "Adaptation",
    "ScaleAdaptState",
    "ScaleAdaptation",
    "WelfordState",
    "welford_covariance",
    "welford_init",
    "welford_update",
]


class Adaptation(Protocol):
    """What a warmup adaptation provides (see the module docstring)."""

    def init(self, params: Any, state: Any) -> Any: ...

    def update(
        self, adapt_state: Any, state: Any, info: Any, step_index: int, num_warmup: int
    ) -> Any: ...

    def params(self, adapt_state: Any) -> Any: ...

    def final(self, adapt_state: Any) -> Any: ...


# Welford / Chan running moments ---------------------------------------------------------------
class WelfordState(NamedTuple):
    """Running count, mean (d,) and sum of outer products of deviations ``m2`` (d, d)."""

    count: Tensor  # type: ignore[assignment]  # (shadows tuple.count; the name is the idea)
    mean: Tensor
    m2: Tensor


def welford_init(dim: int, dtype: torch.dtype, device: torch.device) -> WelfordState:
    """An empty running estimate over ``dim`` coordinates (``dim >= 1``, a floating dtype)."""
    dim = check_int(dim, "welford_init dim", minimum=1)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DtypeMismatchError("welford_init dtype", "must be a floating torch.dtype",
                                 found=dtype, fix="use torch.float64 or torch.float32")
    return WelfordState(torch.zeros((), dtype=dtype, device=device),
                        torch.zeros(dim, dtype=dtype, device=device),
                        torch.zeros(dim, dim, dtype=dtype, device=device))


def welford_update(state: WelfordState, x: Tensor) -> WelfordState:
    """Merge a batch ``x`` (n, d) into the running moments (Chan et al.'s parallel update).

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(100, 3, dtype=torch.float64)
    >>> w = welford_update(welford_update(welford_init(3, x.dtype, x.device), x[:30]), x[30:])
    >>> torch.allclose(welford_covariance(w, shrink=False), torch.cov(x.T))
    True
    """
    if not isinstance(state, WelfordState):
        raise ValidationError("welford_update state", "must be a WelfordState (welford_init)",
                              found=type(state).__name__)
    d = state.mean.shape[0]
    check_tensor(x, "welford_update x", shape=(None, d), floating=True, nonempty=True,
                 dtype=state.mean.dtype, device=state.mean.device)
    n_b = torch.as_tensor(x.shape[0], dtype=x.dtype, device=x.device)
    mean_b = x.mean(0)
    dev = x - mean_b
    m2_b = dev.T @ dev
    n = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * (n_b / n)
    m2 = state.m2 + m2_b + torch.outer(delta, delta) * (state.count * n_b / n)
    return WelfordState(n, mean, m2)


def welford_covariance(state: WelfordState, shrink: bool = True) -> Tensor:
    """Sample covariance (d, d); with ``shrink``, Stan's regularisation towards ``1e-3 I``:
    ``n / (n + 5) * S + 1e-3 * 5 / (n + 5) * I``.

    With fewer than two points the sample covariance is taken as 0 (no spread seen yet), so
    the shrunk estimate is ``1e-3 * 5 / (n + 5) * I``.
    """
    if not isinstance(state, WelfordState):
        raise ValidationError("welford_covariance state", "must be a WelfordState",
                              found=type(state).__name__)
    if not isinstance(shrink, bool):
        raise ValidationError("welford_covariance shrink", "must be a bool",
                              found=type(shrink).__name__)
    n = state.count
    cov = state.m2 / (n - 1).clamp_min(1)
    if not shrink:
        return cov
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return (n / (n + 5)) * cov + 1e-3 * (5 / (n + 5)) * eye


def _safe_cholesky(cov: Tensor) -> Tensor:
    """Cholesky factor, adding diagonal jitter until it succeeds."""
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    scale = float(cov.diagonal().abs().mean()) or 1.0
    jitter = 0.0
    for _ in range(10):
        chol: Tensor
        chol, info = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        if int(info) == 0:
            return chol
        jitter = 1e-8 if jitter == 0.0 else jitter * 10
    return torch.sqrt(cov.diagonal().clamp_min(1e-12)).diag()


# Random-walk scale adaptation -----------------------------------------------------------------
class ScaleAdaptState(NamedTuple):
    """State of :class:`ScaleAdaptation`.

    Attributes
    ----------
    log_scale : Tensor ()
        Current log proposal scale, shared by all chains.
    cholesky : Tensor (d, d) or None
        Current proposal covariance factor (None until the covariance window closes).
    moments : WelfordState
        Pooled running moments of the positions in the covariance window.
    gain_start : int
        Warmup step at which the Robbins-Monro gains last restarted.
    target_accept : float
    """

    log_scale: Tensor
    cholesky: Tensor | None
    moments: WelfordState
    gain_start: int
    target_accept: float


class ScaleAdaptation:
    """Robbins-Monro adaptation of a random-walk scale, with optional covariance adaptation.

    After warmup step ``t`` (from 0) the shared log-scale moves by
    ``gain * (t - t0 + 1) ** -decay * (mean_chains(accept_prob) - target)``: it grows when moves
    are accepted too often and shrinks otherwise. With ``adapt_covariance`` the positions of all
    chains in the warmup window ``covariance_window`` (fractions of warmup) feed a pooled Welford
    estimate; when the window closes the proposal becomes ``scale * chol(cov)`` (regularised like
    Stan), the scale restarts at ``2.38 / sqrt(d)`` and its gains restart.

    Parameters
    ----------
    target_accept : float, optional
        Default 0.234 for ``d > 1`` and 0.44 for ``d = 1`` (optimal Gaussian random walks).
    adapt_covariance : bool
        Learn the proposal covariance as well (default False).
    covariance_window : (float, float)
        Start and end of the covariance window as fractions of ``num_warmup``.
    gain, decay : float
        Robbins-Monro step ``gain * n ** -decay`` (``0.5 < decay <= 1``).
    """

    def __init__(
        self,
        target_accept: float | None = None,
        adapt_covariance: bool = False,
        covariance_window: tuple[float, float] = (0.25, 0.75),
        gain: float = 1.0,
        decay: float = 0.6,
    ) -> None:
        if target_accept is not None:
            target_accept = check_real(target_accept, "ScaleAdaptation target_accept",
                                       minimum=0.0, maximum=1.0, strict_minimum=True,
                                       strict_maximum=True)
        if not isinstance(adapt_covariance, bool):
            raise ValidationError("ScaleAdaptation adapt_covariance", "must be a bool",
                                  found=type(adapt_covariance).__name__)
        if not isinstance(covariance_window, tuple | list) or len(covariance_window) != 2:
            raise ValidationError("ScaleAdaptation covariance_window",
                                  "must be a pair (start, end) of fractions of the warmup",
                                  found=repr(covariance_window))
        lo = check_real(covariance_window[0], "ScaleAdaptation covariance_window start")
        hi = check_real(covariance_window[1], "ScaleAdaptation covariance_window end")
        if not 0.0 <= lo < hi <= 1.0:
            raise ValidationError("ScaleAdaptation",
                                  "covariance_window must satisfy 0 <= start < end <= 1",
                                  found=covariance_window)
        gain = check_real(gain, "ScaleAdaptation gain", minimum=0.0, strict_minimum=True)
        decay = check_real(decay, "ScaleAdaptation decay", minimum=0.5, maximum=1.0,
                           strict_minimum=True)
        covariance_window = (lo, hi)
        self.target_accept = target_accept
        self.adapt_covariance = adapt_covariance
        self.covariance_window = covariance_window
        self.gain = gain
        self.decay = decay

    def init(self, params: Any, state: Any) -> ScaleAdaptState:
        """Start from ``params`` (a :class:`RandomWalkParams`, a float, or None for defaults)."""
        x = state.position
        d = int(math.prod(x.shape[1:]))
        scale: Any
        if params is None:
            scale = torch.tensor(optimal_scale(d), dtype=x.dtype, device=x.device)
            chol = None
        elif isinstance(params, RandomWalkParams):
            scale, chol = params.scale, params.cholesky
        elif isinstance(params, Tensor) or (isinstance(params, int | float)
                                            and not isinstance(params, bool)):
            scale, chol = params, None
        else:
            raise ValidationError(
                "ScaleAdaptation params", "must be a RandomWalkParams, a scale or None",
                found=type(params).__name__,
                fix="ScaleAdaptation tunes RandomWalkMetropolis; use WindowAdaptation() for "
                "HMC, NUTS and MALA")
        if isinstance(scale, Tensor) and not scale.is_floating_point():
            raise DtypeMismatchError("ScaleAdaptation scale", "must be floating point",
                                     found=scale.dtype, fix="use a float")
        if not isinstance(scale, Tensor):
            check_real(scale, "ScaleAdaptation scale", minimum=0.0, strict_minimum=True)
        scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
        if scale.dim() != 0:
            raise ValidationError("ScaleAdaptation", "adapts one scale shared by all chains",
                                  found=tuple(scale.shape), fix="start from a scalar scale")
        if not bool(torch.isfinite(scale)) or not bool(scale > 0):
            raise ValidationError("ScaleAdaptation scale", "must be positive and finite",
                                  found=float(scale))
        if chol is not None and (not isinstance(chol, Tensor) or chol.shape != (d, d)):
            raise ShapeError("ScaleAdaptation params.cholesky",
                             f"must be (d, d) = ({d}, {d}) over the flattened event",
                             found=tuple(chol.shape) if isinstance(chol, Tensor)
                             else type(chol).__name__)
        target = self.target_accept if self.target_accept is not None else (
            0.44 if d == 1 else 0.234)
        return ScaleAdaptState(torch.log(scale), chol, welford_init(d, x.dtype, x.device), 0,
                               target)

    def _window(self, num_warmup: int) -> tuple[int, int]:
        lo, hi = self.covariance_window
        return int(lo * num_warmup), int(hi * num_warmup)

    def update(
        self, adapt_state: ScaleAdaptState, state: Any, info: Any, step_index: int,
        num_warmup: int,
    ) -> ScaleAdaptState:
        """One Robbins-Monro step (and a Welford update inside the covariance window)."""
        a = adapt_state
        n = step_index - a.gain_start + 1
        rate = self.gain * n ** (-self.decay)
        log_scale = a.log_scale + rate * (info.accept_prob.mean() - a.target_accept)
        moments, chol, gain_start = a.moments, a.cholesky, a.gain_start
        if self.adapt_covariance:
            start, end = self._window(num_warmup)
            if start <= step_index < end:
                x = state.position.reshape(state.position.shape[0], -1)
                moments = welford_update(moments, x)
            if step_index == end - 1 and end > start:
                chol = _safe_cholesky(welford_covariance(moments))
                d = chol.shape[0]
                log_scale = torch.full_like(log_scale, math.log(optimal_scale(d)))
                gain_start = step_index + 1
        return ScaleAdaptState(log_scale, chol, moments, gain_start, a.target_accept)

    def params(self, adapt_state: ScaleAdaptState) -> RandomWalkParams:
        """Current :class:`RandomWalkParams`."""
        return RandomWalkParams(torch.exp(adapt_state.log_scale), adapt_state.cholesky)

    def final(self, adapt_state: ScaleAdaptState) -> RandomWalkParams:
        """Parameters for the kept draws (the last adapted ones)."""
        return self.params(adapt_state)
