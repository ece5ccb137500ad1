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
        out = fn(x)
        batch = x.shape[: x.dim() - event_ndim]
        if not isinstance(out, Tensor) or out.shape != batch:
            raise ShapeError(
                "log-density",
                f"must map positions of shape (chains, *event) = {tuple(x.shape)} to "
                f"(chains,) = {tuple(batch)}",
                found=tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__,
                fix="sum over the event dimensions inside the log-density",
            )
        return out

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
        lp = log_density(xg)
        if not isinstance(lp, Tensor) or lp.shape != x.shape[:1]:
            raise ShapeError(
                "log-density",
                f"must map positions of shape {tuple(x.shape)} to (chains,) = "
                f"{tuple(x.shape[:1])}",
                found=tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__,
                fix="sum over the event dimensions (no keepdim) inside the log-density",
            )
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
