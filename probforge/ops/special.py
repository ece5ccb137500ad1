"""Log-space primitives that stay finite where torch's own would produce NaN.

Zero probability is ``-inf`` throughout probforge. torch's ``logsumexp`` returns ``-inf`` for an
all ``-inf`` slice, but its gradient there is NaN (``exp(-inf - -inf)``), which poisons every
gradient that flows through a model with a deterministic zero. The functions here give the same
values and *finite* gradients (zero towards entries of zero probability).

Examples
--------
>>> import torch
>>> from probforge.ops.special import logsumexp
>>> x = torch.tensor([[0.0, 0.0], [float("-inf"), float("-inf")]], requires_grad=True)
>>> y = logsumexp(x, dim=-1)
>>> y.detach()
tensor([0.6931,   -inf])
>>> y[0].backward(); x.grad
tensor([[0.5000, 0.5000],
        [0.0000, 0.0000]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["finite_shift", "log1mexp", "logaddexp", "logmatmulexp", "logsumexp", "safe_log"]

_LOG_HALF = -math.log(2.0)


class _SafeLog(torch.autograd.Function):
    """``log(x)`` whose gradient is 0 (not inf) where ``x == 0``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.log(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return torch.where(x == 0, torch.zeros_like(grad), grad / x)


def safe_log(x: Tensor) -> Tensor:
    """Natural log with a zero gradient at ``x == 0``.

    Parameters
    ----------
    x : Tensor, any shape, non-negative
        Values to take the log of; 0 maps to ``-inf``.

    Returns
    -------
    Tensor, same shape
        ``log(x)``; the backward pass gives ``grad / x`` where ``x > 0`` and 0 where ``x == 0``,
        the right derivative of a log-probability with respect to an impossible entry.
    """
    out: Tensor = _SafeLog.apply(x)  # type: ignore[no-untyped-call]
    return out


def finite_shift(m: Tensor) -> Tensor:
    """Replace non-finite entries of a (detached) max by 0 so that ``x - shift`` is never NaN."""
    m = m.detach()
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def logsumexp(x: Tensor, dim: int | Sequence[int], keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, exact for all ``-inf`` slices in value and gradient.

    Parameters
    ----------
    x : Tensor, shape (..., n, ...)
    dim : int or sequence of int
        Dimension(s) to reduce.
    keepdim : bool
        Keep reduced dimensions with size one.

    Returns
    -------
    Tensor
        ``x`` reduced over ``dim``; ``-inf`` where every entry is ``-inf``, with gradient 0 there.
    """
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if x.numel() == 0 or any(x.shape[d] == 0 for d in dims):
        return torch.logsumexp(x, dim=dims, keepdim=keepdim)
    m = finite_shift(x.amax(dim=dims, keepdim=True))
    out = safe_log(torch.exp(x - m).sum(dim=dims, keepdim=True)) + m
    return out if keepdim else out.squeeze(dims)


def logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))`` elementwise with broadcasting; finite gradients at ``-inf + -inf``.

    Parameters
    ----------
    a, b : Tensor, broadcastable shapes

    Returns
    -------
    Tensor, broadcast shape
    """
    m = finite_shift(torch.maximum(a, b))
    return safe_log(torch.exp(a - m) + torch.exp(b - m)) + m


def log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and for very negative ``x``.

    Uses ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))`` otherwise (Maechler, 2012).

    Parameters
    ----------
    x : Tensor, any shape, entries ``<= 0``
        Log-probabilities. ``x == 0`` gives ``-inf``; ``x > 0`` is outside the domain and gives NaN
        (callers that accept user input validate it first).

    Returns
    -------
    Tensor, same shape
    """
    near_zero = x > _LOG_HALF
    # Evaluate both branches on inputs where each is safe, so that neither yields a NaN gradient.
    x_hi = torch.where(near_zero, x, torch.full_like(x, _LOG_HALF))
    x_lo = torch.where(near_zero, torch.full_like(x, _LOG_HALF), x)
    hi = safe_log(-torch.expm1(x_hi))
    lo = torch.log1p(-torch.exp(x_lo))
    return torch.where(near_zero, hi, lo)


def logmatmulexp(a: Tensor, b: Tensor, *, exact: bool = False) -> Tensor:
    """``log(exp(a) @ exp(b))`` with batch broadcasting, via one matmul.

    Each operand is shifted by its own maximum over the contracted dimension, so the largest term
    of every row of ``a`` and column of ``b`` is represented exactly; values below the dtype's
    range relative to those maxima underflow to zero probability.

    Parameters
    ----------
    a : Tensor, shape (..., n, k)
    b : Tensor, shape (..., k, m)
    exact : bool
        Also recompute, by an exact log-sum-exp over their ``k`` terms, the entries whose shifted
        sum fell below the normal range (where underflow may have cost precision or turned a
        finite value into ``-inf``), so the result is exact wherever it is finite. Costs one
        comparison, and the recomputation only where it is needed.

    Returns
    -------
    Tensor, shape (..., n, m)
    """
    if exact:  # a hot path of the chain core: one clamp instead of finite_shift's three ops
        lowest = torch.finfo(a.dtype).min
        a_max = a.detach().amax(dim=-1, keepdim=True).clamp_min(lowest)
        b_max = b.detach().amax(dim=-2, keepdim=True).clamp_min(lowest)
    else:
        a_max = finite_shift(a.amax(dim=-1, keepdim=True))
        b_max = finite_shift(b.amax(dim=-2, keepdim=True))
    prod = torch.matmul(torch.exp(a - a_max), torch.exp(b - b_max))
    grad = a.requires_grad or b.requires_grad
    out = (safe_log(prod) if grad or not exact else torch.log(prod)) + a_max + b_max
    if not exact:
        return out
    info = torch.finfo(a.dtype)
    small = prod < info.tiny / info.eps
    if bool(small.any()):
        lead_shape = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])  # type: ignore[no-untyped-call]
        ae = a.expand(*lead_shape, *a.shape[-2:])
        be = b.expand(*lead_shape, *b.shape[-2:])
        idx = small.nonzero(as_tuple=True)
        lead, i, j = idx[:-2], idx[-2], idx[-1]
        rows = ae[(*lead, i)]  # (n, k)
        cols = be.transpose(-1, -2)[(*lead, j)]  # (n, k)
        terms = rows + cols
        exact_vals = logsumexp(terms, -1) if grad else torch.logsumexp(terms, -1)
        out = out.index_put(idx, exact_vals)
    return out
