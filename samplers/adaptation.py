"""Stan-style window adaptation of the step size and mass matrix for HMC, NUTS and MALA.

Warmup is split as in Stan: an initial fast buffer (75 steps), a series of doubling slow windows
(25, 50, 100, ...; the last one stretched to the terminal buffer) and a terminal fast buffer (50
steps); short warmups use 15% / 75% / 10% instead. Throughout warmup the step size follows
Nesterov dual averaging towards ``target_accept`` (Hoffman & Gelman 2014, Algorithm 5:
``gamma = 0.05, t0 = 10, kappa = 0.75``, ``mu = log(10 eps)``); at the end of every slow window
the inverse mass matrix becomes the regularised covariance of the positions drawn in that window
(Welford accumulation; ``n / (n + 5) * S + 1e-3 * 5 / (n + 5) * I``), the estimator is reset and
dual averaging restarts from the current step size. The kept draws use ``exp(x_bar)``, the
averaged iterate. After a metric update the step size is first rescaled by how much the
narrowest preconditioned direction changed (see ``_step_rescale``; a deterministic stand-in for
Stan's step-size search), then dual averaging restarts from it.

Step size: shared across chains by default. All chains target the same distribution with the
same pooled mass-matrix estimate, so the optimal step size is the same for all; averaging the
acceptance statistic over chains makes the dual-averaging signal far less noisy; and in a
vectorised NUTS the cost of a transition is the *largest* trajectory over the chains, so one
chain with a tiny step size would slow every chain anyway. ``per_chain_step_size=True`` adapts
one step size per chain (shape (chains,)) from each chain's own acceptance statistic, which can
help when chains sit in regions of very different curvature. The mass matrix is always pooled
over chains.

Examples
--------
>>> import torch
>>> from samplers.adaptation import WindowAdaptation
>>> from samplers.nuts import NUTS, NUTSParams
>>> from samplers.run import sample
>>> logp = lambda x: -0.5 * (x ** 2 / torch.tensor([0.01, 1.0])).sum(-1)
>>> s = sample(NUTS(), logp, torch.zeros(4, 2), num_draws=50, num_warmup=200,
...            params=NUTSParams(step_size=1.0), adaptation=WindowAdaptation(), seed=1)
>>> imm = s.attrs["params"].inverse_mass_matrix
>>> bool(imm[0] < 0.05 < 0.3 < imm[1])
True
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, ValidationError
from probforge.validate import check_choice, check_int, check_real
from samplers._kernel_utils import check_positive_values
from samplers.adaptation_protocol import (
    WelfordState,
    welford_covariance,
    welford_init,
    welford_update,
)
from samplers.metropolis import MHState
from samplers.slice import SliceState

__all__ = [
    "DualAveragingState",
    "WindowAdaptState",
    "WindowAdaptation",
    "dual_averaging_init",
    "dual_averaging_update",
    "window_schedule",
]


# -- dual averaging --------------------------------------------------------------------------
class DualAveragingState(NamedTuple):
    """Dual-averaging iterates: ``log_step`` (x_t), ``log_step_avg`` (x_bar), ``h_bar``, ``mu``
    (all of one shape: () shared or (chains,) per chain) and the iteration count ``t``."""

    log_step: Tensor
    log_step_avg: Tensor
    h_bar: Tensor
    mu: Tensor
    t: int


def dual_averaging_init(step_size: Tensor) -> DualAveragingState:
    """Start (or restart) dual averaging at ``step_size`` with ``mu = log(10 * step_size)``."""
    log_step = torch.log(step_size)
    zero = torch.zeros_like(log_step)
    return DualAveragingState(log_step, zero, zero, log_step + math.log(10.0), 0)


def dual_averaging_update(
    state: DualAveragingState,
    accept: Tensor,
    target: float,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One step of Hoffman & Gelman's Algorithm 5 given the acceptance statistic ``accept``.

    Examples
    --------
    >>> import torch
    >>> s = dual_averaging_init(torch.tensor(1.0))
    >>> s = dual_averaging_update(s, torch.tensor(0.1), target=0.8)
    >>> bool(s.log_step < s.mu)  # too few acceptances: below the shrinkage target
    True
    """
    t = state.t + 1
    eta = 1.0 / (t + t0)
    h_bar = (1.0 - eta) * state.h_bar + eta * (target - accept)
    log_step = state.mu - math.sqrt(t) / gamma * h_bar
    w = t ** (-kappa)
    log_step_avg = w * log_step + (1.0 - w) * state.log_step_avg
    return DualAveragingState(log_step, log_step_avg, h_bar, state.mu, t)


# -- schedule --------------------------------------------------------------------------------
def window_schedule(
    num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> list[tuple[int, int]]:
    """Stan's slow windows ``[(start, end), ...]`` (step indices, end exclusive).

    Examples
    --------
    >>> window_schedule(1000)
    [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    >>> window_schedule(100)
    [(15, 90)]
    """
    num_warmup = check_int(num_warmup, "window_schedule num_warmup", minimum=0)
    init_buffer = check_int(init_buffer, "window_schedule init_buffer", minimum=0)
    term_buffer = check_int(term_buffer, "window_schedule term_buffer", minimum=0)
    base_window = check_int(base_window, "window_schedule base_window", minimum=1)
    if num_warmup < 20:
        return []
    if init_buffer + term_buffer + base_window > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    last = num_warmup - term_buffer
    windows = []
    start, size = init_buffer, base_window
    while start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


def _step_rescale(old: Tensor | None, new: Tensor) -> Tensor:
    """Factor for the step size when the inverse mass matrix changes from ``old`` to ``new``.

    The usable step size is set by the narrowest direction of the target in the metric's
    coordinates. Taking ``new`` as the target's covariance, the narrowest preconditioned
    variance was ``lambda_min(L_old^-1 new L_old^-T)`` under ``old = L_old L_old^T`` and is
    about 1 under ``new``, so the step size scales by ``lambda_min ** -1/2``. This stands in for
    Stan's step-size search after each metric update (which needs extra log-density
    evaluations); dual averaging then refines it.
    """
    if new.dim() == 1:
        old_d = torch.ones_like(new) if old is None else (old if old.dim() == 1 else old.diagonal())
        lam = (new / old_d).min()
    else:
        if old is None:
            rel = new
        else:
            old_m = torch.diag(old) if old.dim() == 1 else old
            chol = torch.linalg.cholesky(old_m)
            half = torch.linalg.solve_triangular(chol, new, upper=False)
            rel = torch.linalg.solve_triangular(chol, half.mT, upper=False)
        lam = torch.linalg.eigvalsh(0.5 * (rel + rel.mT)).min()
    factor = lam.clamp_min(1e-300).rsqrt()
    return torch.nan_to_num(factor, nan=1.0, posinf=1.0).clamp(1e-4, 1e4)


# -- window adaptation -----------------------------------------------------------------------
class _DiagMoments(NamedTuple):
    n: Tensor
    mean: Tensor
    m2: Tensor  # (d,)


def _diag_update(state: _DiagMoments, x: Tensor) -> _DiagMoments:
    n_b = torch.as_tensor(x.shape[0], dtype=x.dtype, device=x.device)
    mean_b = x.mean(0)
    m2_b = ((x - mean_b) ** 2).sum(0)
    n = state.n + n_b
    delta = mean_b - state.mean
    return _DiagMoments(
        n, state.mean + delta * (n_b / n), state.m2 + m2_b + delta**2 * (state.n * n_b / n)
    )


class WindowAdaptState(NamedTuple):
    """State of :class:`WindowAdaptation`.

    Attributes
    ----------
    base_params : NamedTuple
        The kernel parameters being adapted (``step_size`` and ``inverse_mass_matrix`` fields).
    dual : DualAveragingState
    moments : WelfordState or diagonal moments
        Pooled running moments of the positions in the current slow window.
    inverse_mass_matrix : Tensor or None
    target_accept : float
    """

    base_params: Any
    dual: DualAveragingState
    moments: Any
    inverse_mass_matrix: Tensor | None
    target_accept: float


class WindowAdaptation:
    """Stan's windowed adaptation, conforming to :class:`samplers.adaptation_protocol.Adaptation`.

    Parameters
    ----------
    target_accept : float
        Target of the acceptance statistic (0.8 for HMC/NUTS as in Stan; ~0.57 suits MALA).
    metric : {"diag", "dense", "none"}
        Mass-matrix estimate: diagonal, dense, or keep the one given.
    per_chain_step_size : bool
        Adapt one step size per chain instead of one shared (see the module notes).
    initial_step_size : float
        Used when the starting params do not set a step size.
    kernel : object, optional
        Supplies ``default_params(position)`` when :func:`samplers.run.sample` gets
        ``params=None``; without it the default is :class:`samplers.nuts.NUTSParams`.
    init_buffer, term_buffer, base_window : int
        Stan's window sizes.
    """

    def __init__(
        self,
        target_accept: float = 0.8,
        metric: str = "diag",
        per_chain_step_size: bool = False,
        initial_step_size: float = 1.0,
        kernel: Any = None,
        init_buffer: int = 75,
        term_buffer: int = 50,
        base_window: int = 25,
    ) -> None:
        self.target_accept = check_real(target_accept, "WindowAdaptation target_accept",
                                        minimum=0.0, maximum=1.0, strict_minimum=True,
                                        strict_maximum=True)
        self.metric = check_choice(metric, "WindowAdaptation metric", ("diag", "dense", "none"))
        if not isinstance(per_chain_step_size, bool):
            raise ValidationError("WindowAdaptation per_chain_step_size", "must be a bool",
                                  found=type(per_chain_step_size).__name__)
        self.per_chain_step_size = per_chain_step_size
        self.initial_step_size = check_real(initial_step_size, "WindowAdaptation initial_step_size",
                                            minimum=0.0, strict_minimum=True)
        if kernel is not None and not callable(getattr(kernel, "default_params", None)):
            raise ValidationError("WindowAdaptation kernel", "must have default_params(position)",
                                  found=type(kernel).__name__, fix="pass HMC(), NUTS() or MALA()")
        self.kernel = kernel
        self.buffers = (
            check_int(init_buffer, "WindowAdaptation init_buffer", minimum=0),
            check_int(term_buffer, "WindowAdaptation term_buffer", minimum=0),
            check_int(base_window, "WindowAdaptation base_window", minimum=1),
        )

    def _empty_moments(self, d: int, like: Tensor) -> Any:
        if self.metric == "dense":
            return welford_init(d, like.dtype, like.device)
        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        vec = torch.zeros(d, dtype=like.dtype, device=like.device)
        return _DiagMoments(zero, vec, vec.clone())

    def init(self, params: Any, state: Any) -> WindowAdaptState:
        """Start from ``params`` (kernel params with ``step_size`` / ``inverse_mass_matrix``).

        Raises
        ------
        ValidationError
            For params without a ``step_size`` field (e.g. a random-walk scale: use
            :class:`~samplers.adaptation_protocol.ScaleAdaptation`), a step size that is not
            positive and finite, or the state of a kernel without a step size.
        """
        if isinstance(state, MHState | SliceState):
            right = "ScaleAdaptation()" if isinstance(state, MHState) else "SliceWidthAdaptation()"
            raise ValidationError(
                "WindowAdaptation", "tunes the step size of HMC, NUTS and MALA",
                found=f"a {type(state).__name__} (a kernel without a step size)",
                fix=f"use {right} for this kernel")
        x = state.position
        chains, d = x.shape[0], int(math.prod(x.shape[1:]))
        if params is None:
            if self.kernel is not None and hasattr(self.kernel, "default_params"):
                params = self.kernel.default_params(x)
            else:
                from samplers.nuts import NUTSParams

                params = NUTSParams(step_size=self.initial_step_size)
        if not hasattr(params, "_replace") or not hasattr(params, "step_size"):
            raise ValidationError(
                "WindowAdaptation",
                "adapts kernel params with a step_size field (HMCParams, NUTSParams, "
                "MALAParams)",
                found=type(params).__name__,
            )
        step_in = params.step_size
        if isinstance(step_in, Tensor):
            if not step_in.is_floating_point():
                raise DtypeMismatchError("WindowAdaptation step_size",
                                         "must be floating point (or a number)",
                                         found=step_in.dtype, fix="use a float")
            check_positive_values("WindowAdaptation step_size", step_in)
        else:
            check_real(step_in, "WindowAdaptation step_size", minimum=0.0, strict_minimum=True)
        step = torch.as_tensor(step_in, dtype=x.dtype, device=x.device)
        if self.per_chain_step_size:
            step = step.expand(chains).clone() if step.dim() == 0 else step
        elif step.dim() != 0:
            step = step.mean()
        imm = getattr(params, "inverse_mass_matrix", None)
        if self.metric == "dense" and imm is not None and imm.dim() == 1:
            imm = torch.diag(imm)
        return WindowAdaptState(
            params,
            dual_averaging_init(step),
            self._empty_moments(d, x),
            imm,
            self.target_accept,
        )

    def update(
        self,
        adapt_state: WindowAdaptState,
        state: Any,
        info: Any,
        step_index: int,
        num_warmup: int,
    ) -> WindowAdaptState:
        """Dual-averaging step; Welford update in a slow window; metric update at its end."""
        a = adapt_state
        accept = torch.nan_to_num(info.accept_prob.detach(), nan=0.0).to(a.dual.log_step.dtype)
        if not self.per_chain_step_size:
            accept = accept.mean()
        dual = dual_averaging_update(a.dual, accept, a.target_accept)
        moments, imm = a.moments, a.inverse_mass_matrix
        if self.metric != "none":
            for start, end in window_schedule(num_warmup, *self.buffers):
                if start <= step_index < end:
                    x = state.position.detach().reshape(state.position.shape[0], -1)
                    moments = (
                        welford_update(moments, x)
                        if self.metric == "dense"
                        else _diag_update(moments, x)
                    )
                    if step_index == end - 1:
                        new_imm = self._estimate(moments)
                        factor = _step_rescale(imm, new_imm)
                        imm = new_imm
                        moments = self._empty_moments(x.shape[1], x)
                        dual = dual_averaging_init(torch.exp(dual.log_step) * factor)
                    break
        return WindowAdaptState(a.base_params, dual, moments, imm, a.target_accept)

    def _estimate(self, moments: Any) -> Tensor:
        if self.metric == "dense":
            assert isinstance(moments, WelfordState)
            return welford_covariance(moments, shrink=True)
        n: Tensor = moments.n
        var: Tensor = moments.m2 / (n - 1).clamp_min(1)
        return (n / (n + 5)) * var + 1e-3 * (5 / (n + 5))

    def _params(self, a: WindowAdaptState, log_step: Tensor) -> Any:
        fields: dict[str, Any] = {"step_size": torch.exp(log_step)}
        if hasattr(a.base_params, "inverse_mass_matrix"):
            fields["inverse_mass_matrix"] = a.inverse_mass_matrix
        return a.base_params._replace(**fields)

    def params(self, adapt_state: WindowAdaptState) -> Any:
        """Kernel params for the next warmup step."""
        return self._params(adapt_state, adapt_state.dual.log_step)

    def final(self, adapt_state: WindowAdaptState) -> Any:
        """Kernel params for the kept draws: averaged step size, last metric."""
        dual = adapt_state.dual
        log_step = dual.log_step_avg if dual.t > 0 else dual.log_step
        return self._params(adapt_state, log_step)
