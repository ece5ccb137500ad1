"""Slice sampling (Neal 2003) with stepping-out and shrinkage, vectorised over chains.

Each update draws the slice level ``log y = log p(x) - Exponential(1)``, places an interval of
width ``w`` at random around the current point along a line, steps it out (at most ``m`` widths
in all, Neal's Figure 3) while its ends are inside the slice, then samples uniformly on the
interval, shrinking it towards the current point after each rejected draw (Figure 5). Two kinds
of line:

- ``"coordinate"``: every coordinate in turn (a systematic scan), with width ``w_i``;
- ``"hit_and_run"``: one random direction ``u ~ N(0, diag(w**2))`` per transition, interval of
  unit length in ``t`` along ``x + t u``.

All chains advance in lockstep: each stepping-out or shrinkage iteration evaluates the log
density once for the whole batch, and chains that are done are masked. Stepping out is bounded
by ``m``; shrinkage is bounded by ``max_shrink`` iterations. It ends almost surely (the current
point is always inside the slice), so exceeding the bound signals a numerical problem (e.g. a
log density that is not finite at the current point): the chain then keeps its coordinate and
``Info.max_exceeded`` flags it; ``strict=True`` raises :class:`probforge.errors.SamplingError`
instead.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from samplers.slice import SliceParams, SliceSampler
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> kernel = SliceSampler()
>>> state = kernel.init(torch.zeros(4, 2), logp)
>>> state, info = kernel.step(state, logp, SliceParams(width=2.0), make_generator(0))
>>> bool(info.is_accepted.all()), int(info.num_evaluations.min()) >= 2
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, SamplingError, ShapeError, ValidationError
from probforge.ops.random import normal, uniform
from probforge.validate import check_choice, check_int, check_real
from samplers._kernel_utils import (
    ValueChecks,
    check_callable,
    check_generator_arg,
    check_log_density_value,
    check_params_fields,
    check_position,
    check_positive_values,
    check_state,
    flat_log_density,
)
from samplers.base import LogDensity

__all__ = [
    "SliceInfo",
    "SliceParams",
    "SliceSampler",
    "SliceState",
    "SliceWidthAdaptation",
    "SliceWidthState",
]


class SliceState(NamedTuple):
    """Position (chains, *event) and its log density (chains,)."""

    position: Tensor
    log_density: Tensor


class SliceParams(NamedTuple):
    """Tunable parameters of :class:`SliceSampler`.

    Attributes
    ----------
    width : float or Tensor
        Initial interval width ``w``: a scalar, or one per coordinate (shape ``event``); a
        good choice is about the target's scale in that coordinate.
    max_steps_out : int
        Neal's ``m``: the stepped-out interval is at most ``m`` widths long.
    max_shrink : int
        Bound on shrinkage iterations per update.
    """

    width: float | Tensor = 1.0
    max_steps_out: int = 20
    max_shrink: int = 100


class SliceInfo(NamedTuple):
    """Per-chain statistics (chains,).

    ``accept_prob`` is 1 (a slice update is never rejected); ``is_accepted`` whether the chain
    moved; ``num_evaluations`` the log-density evaluations this chain needed;
    ``max_exceeded`` whether some shrinkage hit ``max_shrink`` (that coordinate was kept).
    """

    accept_prob: Tensor
    is_accepted: Tensor
    num_evaluations: Tensor
    max_exceeded: Tensor


class SliceSampler:
    """Slice-sampling kernel: coordinate-wise or hit-and-run.

    Parameters
    ----------
    method : {"coordinate", "hit_and_run"}
        Which lines to slice along (see the module docstring).
    strict : bool
        Raise :class:`probforge.errors.SamplingError` when shrinkage exceeds ``max_shrink``
        instead of flagging it in ``Info.max_exceeded``.
    """

    def __init__(self, method: str = "coordinate", strict: bool = False) -> None:
        self.method = check_choice(method, "SliceSampler method", ("coordinate", "hit_and_run"))
        if not isinstance(strict, bool):
            raise ValidationError("SliceSampler strict", "must be a bool",
                                  found=type(strict).__name__)
        self.strict = strict
        self._values = ValueChecks()

    def default_params(self, position: Tensor) -> SliceParams:
        """Width 1 in every coordinate."""
        return SliceParams()

    def init(self, position: Tensor, log_density: LogDensity) -> SliceState:
        """State at ``position`` (chains, *event); raises if a chain's log density is not finite.

        Raises
        ------
        ValidationError
            For a position that is not a floating (chains >= 1, *event) tensor with finite
            entries, or a log-density that is not (chains,) or not finite (NaN, +-inf) at the
            position (the chains are named).
        """
        check_position("SliceSampler", position, min_ndim=2)
        check_callable("SliceSampler", log_density)
        with torch.no_grad():
            lp = log_density(position.detach())
        check_log_density_value("SliceSampler", lp, position)
        return SliceState(position.detach(), lp.detach())

    def _slice_1d(
        self,
        f: Callable[[Tensor], Tensor],
        lp0: Tensor,
        width: Tensor,
        params: SliceParams,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Slice update of ``t`` (0 = current point) along a line for all chains.

        ``f(t)`` maps (chains,) offsets to log densities (chains,); ``width`` is (chains,).
        Returns the new offsets, their log densities, evaluation counts and exceeded flags.
        """
        dtype, device = lp0.dtype, lp0.device
        chains = lp0.shape[0]

        def rand() -> Tensor:
            return uniform((chains,), generator=generator, dtype=dtype, device=device)

        log_y = lp0 + torch.log1p(-rand())  # lp0 - Exponential(1)
        left = -width * rand()
        right = left + width
        m = int(params.max_steps_out)
        j = torch.floor(m * rand()).long()
        k = (m - 1) - j
        evals = torch.zeros(chains, dtype=torch.long, device=device)
        # Stepping out, left then right: at most m - 1 extra widths in all.
        for _ in range(m):
            going = j > 0
            if not bool(going.any()):
                break
            inside = f(left) > log_y
            evals += going.long()
            going = going & inside
            left = torch.where(going, left - width, left)
            j = torch.where(going, j - 1, torch.zeros_like(j))
        for _ in range(m):
            going = k > 0
            if not bool(going.any()):
                break
            inside = f(right) > log_y
            evals += going.long()
            going = going & inside
            right = torch.where(going, right + width, right)
            k = torch.where(going, k - 1, torch.zeros_like(k))
        # Shrinkage.
        t_new = torch.zeros_like(lp0)
        lp_new = lp0.clone()
        done = torch.zeros(chains, dtype=torch.bool, device=device)
        for _ in range(int(params.max_shrink)):
            t1 = left + rand() * (right - left)
            lp1 = f(t1)
            evals += (~done).long()
            hit = ~done & (lp1 > log_y)
            t_new = torch.where(hit, t1, t_new)
            lp_new = torch.where(hit, lp1, lp_new)
            done = done | hit
            if bool(done.all()):
                break
            shrink = ~done
            right = torch.where(shrink & (t1 > 0), t1, right)
            left = torch.where(shrink & (t1 <= 0), t1, left)
        exceeded = ~done
        if self.strict and bool(exceeded.any()):
            idx = torch.nonzero(exceeded).flatten().tolist()[:20]
            raise SamplingError(
                "SliceSampler",
                f"shrinkage did not find a point in the slice within max_shrink = "
                f"{params.max_shrink} iterations for chain(s) {idx}",
                fix="check that the log density is finite and continuous near these chains, "
                "or raise max_shrink",
            )
        return t_new, lp_new, evals, exceeded

    def _width(self, width: Any, x: Tensor, event: torch.Size) -> Tensor:
        """The widths as a (d,) tensor; a positive finite number or tensor (scalar or event)."""
        d = x.shape[1]
        subject = "SliceParams width"
        if isinstance(width, Tensor):
            if not width.is_floating_point():
                raise DtypeMismatchError(subject, "must be a floating-point tensor (or a number)",
                                         found=width.dtype, fix="use .double() or a float")
            if width.dim() > 0 and width.shape != event and width.shape != (d,):
                raise ShapeError(
                    subject,
                    f"must be a scalar or have the event shape {tuple(event)}",
                    found=tuple(width.shape),
                )
            self._values.run(width, lambda t: check_positive_values(subject, t))
            w = width.to(dtype=x.dtype, device=x.device)
        else:
            w = torch.as_tensor(check_real(width, subject, minimum=0.0, strict_minimum=True),
                                dtype=x.dtype, device=x.device)
        return w.reshape(d) if w.dim() > 0 else w.expand(d)

    def step(
        self,
        state: SliceState,
        log_density: LogDensity,
        params: SliceParams,
        generator: torch.Generator | None = None,
    ) -> tuple[SliceState, SliceInfo]:
        """One slice-sampling transition (a full coordinate scan, or one hit-and-run line).

        Parameters
        ----------
        state : SliceState
        log_density : callable
            (chains, *event) -> (chains,).
        params : SliceParams
        generator : torch.Generator, optional

        Returns
        -------
        (SliceState, SliceInfo)
        """
        check_state("SliceSampler", state, SliceState)
        check_params_fields("SliceSampler", params, ("width", "max_steps_out", "max_shrink"),
                            "SliceParams", "SliceWidthAdaptation()")
        check_int(params.max_steps_out, "SliceParams max_steps_out", minimum=1)
        check_int(params.max_shrink, "SliceParams max_shrink", minimum=1)
        xs = state.position
        check_generator_arg(generator, xs.device)
        chains, event = xs.shape[0], xs.shape[1:]
        x = xs.reshape(chains, -1).detach()
        d = x.shape[1]
        width = self._width(params.width, x, event)
        flat_ld = flat_log_density(log_density, event)
        lp = state.log_density
        evals = torch.zeros(chains, dtype=torch.long, device=x.device)
        exceeded = torch.zeros(chains, dtype=torch.bool, device=x.device)
        x0 = x

        with torch.no_grad():
            if self.method == "coordinate":
                for i in range(d):
                    e_i = torch.zeros(d, dtype=x.dtype, device=x.device)
                    e_i[i] = 1.0

                    def f(t: Tensor, x: Tensor = x, e_i: Tensor = e_i) -> Tensor:
                        return flat_ld(x + t[:, None] * e_i)

                    w_i = width[i].expand(chains)
                    t, lp, n, ex = self._slice_1d(f, lp, w_i, params, generator)
                    x = x + t[:, None] * e_i
                    evals += n
                    exceeded |= ex
            else:
                u = normal((chains, d), generator=generator, dtype=x.dtype, device=x.device)
                u = u * width

                def g(t: Tensor) -> Tensor:
                    return flat_ld(x + t[:, None] * u)

                one = torch.ones(chains, dtype=x.dtype, device=x.device)
                t, lp, evals, exceeded = self._slice_1d(g, lp, one, params, generator)
                x = x + t[:, None] * u

        moved = (x != x0).any(-1)
        info = SliceInfo(torch.ones_like(lp), moved, evals, exceeded)
        return SliceState(x.reshape(xs.shape), lp), info


class SliceWidthState(NamedTuple):
    """State of :class:`SliceWidthAdaptation`.

    Attributes
    ----------
    width : Tensor, shape event
        Current width per coordinate.
    previous : Tensor, shape (chains, *event)
        Positions after the previous warmup step.
    jump_sum : Tensor, shape event
        Sum over counted steps of the chains' mean absolute move per coordinate.
    num_counted : int
        Steps counted so far.
    base : SliceParams
        The starting parameters (``max_steps_out`` and ``max_shrink`` are kept).
    """

    width: Tensor
    previous: Tensor
    jump_sum: Tensor
    num_counted: int
    base: SliceParams


class SliceWidthAdaptation:
    """Warmup adaptation of the slice widths: ``factor`` times the mean absolute move.

    After each warmup step past the first ``skip`` fraction (while chains still travel from
    their starting points), every coordinate's width becomes ``factor`` times the running mean,
    over steps and chains, of that coordinate's absolute move, the tuning rule of PyMC's
    ``Slice`` step. Stepping out makes a slice update insensitive to a width that is too small
    (at the cost of evaluations), so the moves, and with them the widths, settle at the target's
    own scale per coordinate. A coordinate in which no chain has moved keeps its width. The
    kept draws use the last width; the rule applies to both slice methods (for
    ``"hit_and_run"`` the widths scale the random directions).

    Parameters
    ----------
    factor : float
        Width per mean absolute move (default 2, as PyMC).
    skip : float
        Fraction of the warmup ignored before averaging starts, in [0, 1).

    Examples
    --------
    >>> import torch
    >>> from samplers.run import sample
    >>> logp = lambda x: -0.5 * ((x / torch.tensor([10.0, 0.1])) ** 2).sum(-1)
    >>> s = sample(SliceSampler(), logp, torch.zeros(4, 2), num_draws=50, num_warmup=100,
    ...            adaptation=SliceWidthAdaptation(), seed=0)
    >>> s["x"].shape
    torch.Size([4, 50, 2])
    """

    def __init__(self, factor: float = 2.0, skip: float = 0.2) -> None:
        self.factor = check_real(factor, "SliceWidthAdaptation factor", minimum=0.0,
                                 strict_minimum=True)
        self.skip = check_real(skip, "SliceWidthAdaptation skip", minimum=0.0, maximum=1.0,
                               strict_maximum=True)

    def init(self, params: SliceParams | float | Tensor | None,
             state: SliceState) -> SliceWidthState:
        """Start from ``params`` (SliceParams, a width, or None for width 1)."""
        if not (params is None or isinstance(params, SliceParams | Tensor)
                or (isinstance(params, int | float) and not isinstance(params, bool))):
            raise ValidationError("SliceWidthAdaptation params",
                                  "must be SliceParams, a width (number or tensor) or None",
                                  found=type(params).__name__,
                                  fix="SliceWidthAdaptation tunes SliceSampler only")
        base = params if isinstance(params, SliceParams) else (
            SliceParams() if params is None else SliceParams(width=params))
        x = state.position
        if isinstance(base.width, Tensor) and not base.width.is_floating_point():
            raise DtypeMismatchError("SliceWidthAdaptation width",
                                     "must be a floating-point tensor (or a number)",
                                     found=base.width.dtype, fix="use .double() or a float")
        if not isinstance(base.width, Tensor | int | float) or isinstance(base.width, bool):
            raise ValidationError("SliceWidthAdaptation width", "must be a number or a tensor",
                                  found=type(base.width).__name__)
        width = torch.as_tensor(base.width, dtype=x.dtype, device=x.device)
        if width.dim() and width.shape != x.shape[1:]:
            raise ShapeError("SliceWidthAdaptation width",
                             f"must be a scalar or have the event shape {tuple(x.shape[1:])}",
                             found=tuple(width.shape))
        if not bool(torch.isfinite(width).all()) or bool((width <= 0).any()):
            raise ValidationError("SliceWidthAdaptation", "widths must be finite and positive",
                                  found=width.tolist())
        width = width.expand(x.shape[1:]).clone()
        return SliceWidthState(width, x, torch.zeros_like(width), 0, base)

    def update(self, adapt_state: SliceWidthState, state: SliceState, info: SliceInfo,
               step_index: int, num_warmup: int) -> SliceWidthState:
        """Count this step's moves (past the skipped start) and set the widths."""
        a = adapt_state
        x = state.position
        if step_index < int(self.skip * num_warmup):
            return a._replace(previous=x)
        jump_sum = a.jump_sum + (x - a.previous).abs().mean(0)
        count = a.num_counted + 1
        mean = jump_sum / count
        width = torch.where(mean > 0, self.factor * mean, a.width)
        return SliceWidthState(width, x, jump_sum, count, a.base)

    def params(self, adapt_state: SliceWidthState) -> SliceParams:
        """Current :class:`SliceParams`."""
        return adapt_state.base._replace(width=adapt_state.width)

    def final(self, adapt_state: SliceWidthState) -> SliceParams:
        """Parameters for the kept draws (the last adapted widths)."""
        return self.params(adapt_state)
