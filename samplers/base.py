"""The sampling-kernel protocol shared by every MCMC method in probforge.

A kernel is a pair of pure functions, as in BlackJAX:

- ``init(position, log_density) -> State``
- ``step(state, log_density, params, generator) -> (State, Info)``

over explicit NamedTuples. A position has shape ``(chains, *event)`` and a log-density maps it to
``(chains,)``; every chain moves in the same tensor operations (accept/reject is a
``torch.where``, never a Python loop over chains). ``params`` holds the tunable quantities (step
size, proposal scale, mass matrix, ...) and is returned, not mutated, by adaptation.

Examples
--------
>>> import torch
>>> from samplers.base import as_log_density
>>> logp = as_log_density(lambda x: -0.5 * (x ** 2).sum(-1))
>>> logp(torch.zeros(4, 2)).shape
torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.validate import check_int

__all__ = [
    "Kernel",
    "LogDensity",
    "as_log_density",
    "batched_where",
    "check_per_row_output",
    "log_density_and_grad",
]

#: A batched log-density: positions (chains, *event) -> (chains,). -inf outside the support.
LogDensity = Callable[[Tensor], Tensor]


class Kernel(Protocol):
    """What every sampler kernel provides (see the module docstring)."""

    def init(self, position: Tensor, log_density: LogDensity) -> NamedTuple: ...

    def step(
        self,
        state: Any,
        log_density: LogDensity,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[Any, Any]: ...


def check_per_row_output(subject: str, value: Any, x: Tensor,
                         batch: tuple[int, ...] | torch.Size | None = None) -> Tensor:
    """``value`` if it is a tensor with one entry per row of ``x``, else a named ShapeError.

    A log-density (or log-target, or proposal ``log_prob``) maps inputs ``x`` of shape
    ``batch + event`` to ``batch`` (default: ``x``'s leading dimension, the chains or draws);
    a ``(chains, 1)`` output, a scalar or a number are refused rather than broadcast.

    Parameters
    ----------
    subject : str
        The function's name in the message (``"HMC: log-density"``).
    value : object
        What the function returned.
    x : Tensor
        What it was given.
    batch : tuple of int, optional
        The expected shape.
    """
    want = tuple(x.shape[:1] if batch is None else batch)
    if not isinstance(value, Tensor) or tuple(value.shape) != want:
        raise ShapeError(
            subject, f"must map inputs of shape {tuple(x.shape)} to one value per row: "
            f"shape (chains,) = {want}",
            found=tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__,
            fix="sum over the event dimensions (no keepdim) inside the function",
        )
    return value


def as_log_density(fn: Callable[[Tensor], Tensor], event_ndim: int = 1) -> LogDensity:
    """Wrap a user log-density and check it maps ``(chains, *event)`` to ``(chains,)``.

    Parameters
    ----------
    fn : callable
        Batched log-density.
    event_ndim : int
        Number of trailing event dimensions of a position (>= 0).
    """
    if not callable(fn):
        raise ValidationError("as_log_density", "fn must be callable", found=type(fn).__name__)
    event_ndim = check_int(event_ndim, "as_log_density event_ndim", minimum=0)

    def checked(x: Tensor) -> Tensor:
        return check_per_row_output("log-density", fn(x), x, x.shape[: x.dim() - event_ndim])

    return checked


def log_density_and_grad(log_density: LogDensity, x: Tensor) -> tuple[Tensor, Tensor]:
    """``log p(x)`` (chains,) and its gradient (chains, *event) by autograd, detached.

    Chains are independent, so the gradient of the sum is each chain's own gradient. Non-finite
    gradients (outside the support) are returned as they are; kernels reject such proposals.

    Raises
    ------
    ShapeError
        If ``log p`` is not a tensor of shape (chains,).
    ValidationError
        If ``log p`` is not differentiable by autograd (it does not depend on ``x`` through
        torch operations: detached, computed with numpy or ``.item()``, or a constant).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        lp = check_per_row_output("log-density", log_density(xg), x)
        if not lp.requires_grad:
            raise ValidationError(
                "log-density",
                "is not differentiable by autograd (its value does not depend on the position "
                "through torch operations), so a gradient-based kernel cannot use it",
                fix="compute it with torch operations on the position (no .detach(), .item() "
                "or numpy), or use a gradient-free kernel (RandomWalkMetropolis, SliceSampler)",
            )
        (grad,) = torch.autograd.grad(lp.sum(), xg)
    return lp.detach(), grad.detach()


def batched_where(accept: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-chain select: ``accept`` has shape (chains,), ``new``/``old`` (chains, *event)."""
    if not isinstance(accept, Tensor) or accept.dtype != torch.bool or accept.dim() != 1:
        raise ValidationError("batched_where accept", "must be a bool tensor of shape (chains,)",
                              found=(accept.dtype, tuple(accept.shape))
                              if isinstance(accept, Tensor) else type(accept).__name__)
    if new.shape != old.shape or new.shape[:1] != accept.shape:
        raise ShapeError("batched_where", "new and old must have one shape (chains, *event) "
                         "with chains = len(accept)",
                         found=(tuple(accept.shape), tuple(new.shape), tuple(old.shape)))
    mask = accept.reshape(accept.shape + (1,) * (new.dim() - accept.dim()))
    return torch.where(mask, new, old)
