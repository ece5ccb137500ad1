"""Log-space primitives that stay finite where torch's own would produce NaN.

Zero probability is ``-inf`` throughout probforge. torch's ``logsumexp`` returns ``-inf`` for an
all ``-inf`` slice, but its gradient there is NaN (``exp(-inf - -inf)``), which poisons every
gradient that flows through a model with a deterministic zero. The functions here give the same
values and *finite* gradients (zero towards entries of zero probability).

Inputs: every function takes floating-point tensors (an integer tensor is refused, never cast)
and checks shapes, dimensions and devices on every call, which costs no host synchronisation.
:func:`safe_log` and :func:`log1mexp`, whose domain is smaller than the real line, also refuse
values outside it (one synchronisation; ``validate=False`` skips it for callers that guarantee
the domain). The others are the inner loops of recursions and do not scan values: their inputs
are log-values in ``[-inf, +inf)``, and a NaN entry propagates to the result (public entry
points such as :func:`probforge.ops.contract` check for NaN once, where the data come in).

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

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops.device import check_dims, check_floating

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


def _safe_log(x: Tensor) -> Tensor:
    out: Tensor = _SafeLog.apply(x)  # type: ignore[no-untyped-call]
    return out


def _check_flag(value: object, subject: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(subject, "must be True or False", found=repr(value))
    return value


def _refuse_outside(x: Tensor, bad: Tensor, subject: str, rule: str, fix: str) -> None:
    """Raise naming the first entry of ``x`` flagged by ``bad`` (one host synchronisation)."""
    if not bool(bad.any()):
        return
    idx = tuple(int(i) for i in bad.nonzero()[0]) if x.dim() else ()
    value = float(x[idx]) if x.dim() else float(x)
    n = int(bad.sum())
    where = f"{n} entr{'y' if n == 1 else 'ies'} outside the domain, the first at index {idx}"
    if math.isnan(value):
        raise NonFiniteError(subject, f"{rule}; {where}", found=value,
                             fix="remove or impute the NaN values")
    raise ValidationError(subject, f"{rule}; {where}", found=value, fix=fix)


def safe_log(x: Tensor, *, validate: bool = True) -> Tensor:
    """Natural log with a zero gradient at ``x == 0``.

    Parameters
    ----------
    x : Tensor, any shape, floating, non-negative
        Values to take the log of; 0 maps to ``-inf``, ``+inf`` to ``+inf``.
    validate : bool, default True
        Refuse negative and NaN entries (one host synchronisation). ``False`` skips the scan,
        for callers whose ``x`` is non-negative by construction (a sum of exponentials); a
        negative entry then gives NaN.

    Returns
    -------
    Tensor, same shape
        ``log(x)``; the backward pass gives ``grad / x`` where ``x > 0`` and 0 where ``x == 0``,
        the right derivative of a log-probability with respect to an impossible entry.

    Raises
    ------
    ValidationError
        A negative entry (its log is not a real number).
    NonFiniteError
        A NaN entry.
    DtypeMismatchError
        An integer tensor (refused, not cast).

    Examples
    --------
    >>> safe_log(torch.tensor([0.0, 1.0]))
    tensor([-inf, 0.])
    """
    check_floating(x, "safe_log x")
    if _check_flag(validate, "safe_log validate"):
        _refuse_outside(x, ~(x >= 0), "safe_log x", "entries must be >= 0",
                        "take the log of probabilities or counts, which are never negative")
    return _safe_log(x)


def finite_shift(m: Tensor) -> Tensor:
    """Replace non-finite entries of a (detached) max by 0 so that ``x - shift`` is never NaN.

    Parameters
    ----------
    m : Tensor, floating
        A maximum (of log-values) over some dimensions.

    Returns
    -------
    Tensor, same shape, detached
    """
    check_floating(m, "finite_shift m")
    m = m.detach()
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def _logsumexp(x: Tensor, dims: tuple[int, ...], keepdim: bool) -> Tensor:
    if not dims or x.dim() == 0:  # nothing to reduce, or the log-sum-exp of one entry
        return x
    if any(x.shape[d] == 0 for d in dims):  # an empty sum is 0: its log is -inf
        return torch.logsumexp(x, dim=dims, keepdim=keepdim)
    m = finite_shift(x.amax(dim=dims, keepdim=True))
    out = _safe_log(torch.exp(x - m).sum(dim=dims, keepdim=True)) + m
    return out if keepdim else out.squeeze(dims)


def logsumexp(x: Tensor, dim: int | Sequence[int], keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, exact for all ``-inf`` slices in value and gradient.

    Parameters
    ----------
    x : Tensor, shape (..., n, ...), floating
        Log-values in ``[-inf, +inf]``; NaN propagates (not scanned: see the module).
    dim : int or sequence of int
        Distinct dimension(s) to reduce, negative ones counting from the end. An empty
        sequence reduces nothing and returns ``x``; a 0-d ``x`` accepts ``0`` or ``-1`` and is
        returned as it is (the log-sum-exp of one value).
    keepdim : bool
        Keep reduced dimensions with size one.

    Returns
    -------
    Tensor
        ``x`` reduced over ``dim``; ``-inf`` where every entry is ``-inf``, with gradient 0 there.
        The log-sum-exp over an empty dimension (size 0) is ``-inf``: an empty sum is 0.

    Raises
    ------
    ValidationError
        ``dim`` out of range, repeated or not ints; ``keepdim`` not a bool.
    DtypeMismatchError
        An integer tensor (refused, not cast).

    Examples
    --------
    >>> logsumexp(torch.zeros(2, 0), dim=1)
    tensor([-inf, -inf])
    """
    check_floating(x, "logsumexp x")
    dims = check_dims(x, dim, "logsumexp dim")
    return _logsumexp(x, dims, _check_flag(keepdim, "logsumexp keepdim"))


def _same_device(a: Tensor, b: Tensor, subject: str) -> None:
    if a.device != b.device:
        raise DeviceMismatchError(subject, "a and b live on different devices",
                                  found=f"{a.device} and {b.device}",
                                  fix="move both to one device with .to(device)")


def logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))`` elementwise with broadcasting; finite gradients at ``-inf + -inf``.

    Parameters
    ----------
    a, b : Tensor, broadcastable shapes, floating, on one device
        Log-values; NaN propagates (not scanned: see the module).

    Returns
    -------
    Tensor, broadcast shape

    Raises
    ------
    ShapeError, DeviceMismatchError, DtypeMismatchError, ValidationError
    """
    check_floating(a, "logaddexp a")
    check_floating(b, "logaddexp b")
    _same_device(a, b, "logaddexp")
    try:
        m = finite_shift(torch.maximum(a, b))
    except RuntimeError as err:
        raise ShapeError("logaddexp", "a and b do not broadcast",
                         found=f"{tuple(a.shape)} and {tuple(b.shape)}") from err
    return _safe_log(torch.exp(a - m) + torch.exp(b - m)) + m


def log1mexp(x: Tensor, *, validate: bool = True) -> Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and for very negative ``x``.

    Uses ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))`` otherwise (Maechler, 2012).

    Parameters
    ----------
    x : Tensor, any shape, floating, entries ``<= 0``
        Log-probabilities. ``x == 0`` gives ``-inf``, ``x == -inf`` gives 0.
    validate : bool, default True
        Refuse entries ``> 0`` (where ``1 - exp(x) < 0`` has no real log) and NaN, with one
        host synchronisation. ``False`` skips the scan for callers that guarantee the domain;
        such entries then give NaN.

    Returns
    -------
    Tensor, same shape

    Raises
    ------
    ValidationError
        An entry ``> 0`` (including ``+inf``).
    NonFiniteError
        A NaN entry.
    DtypeMismatchError
        An integer tensor (refused, not cast).
    """
    check_floating(x, "log1mexp x")
    if _check_flag(validate, "log1mexp validate"):
        _refuse_outside(x, ~(x <= 0), "log1mexp x",
                        "entries must be <= 0 (log-probabilities)",
                        "pass log p with p <= 1; log(1 - p) is undefined for p > 1")
    near_zero = x > _LOG_HALF
    # Evaluate both branches on inputs where each is safe, so that neither yields a NaN gradient.
    x_hi = torch.where(near_zero, x, torch.full_like(x, _LOG_HALF))
    x_lo = torch.where(near_zero, torch.full_like(x, _LOG_HALF), x)
    hi = _safe_log(-torch.expm1(x_hi))
    lo = torch.log1p(-torch.exp(x_lo))
    return torch.where(near_zero, hi, lo)


def logmatmulexp(a: Tensor, b: Tensor, *, exact: bool = False) -> Tensor:
    """``log(exp(a) @ exp(b))`` with batch broadcasting, via one matmul.

    Each operand is shifted by its own maximum over the contracted dimension, so the largest term
    of every row of ``a`` and column of ``b`` is represented exactly; values below the dtype's
    range relative to those maxima underflow to zero probability.

    Parameters
    ----------
    a : Tensor, shape (..., n, k), floating
    b : Tensor, shape (..., k, m), same dtype and device as ``a``
        Log-values in ``[-inf, +inf)``; NaN and ``+inf`` are outside the domain and give NaN
        (not scanned: this is the inner step of the chain recursions, see the module). Batch
        dimensions broadcast.
    exact : bool
        Also recompute, by an exact log-sum-exp over their ``k`` terms, the entries whose shifted
        sum fell below the normal range (where underflow may have cost precision or turned a
        finite value into ``-inf``), so the result is exact wherever it is finite. Costs one
        comparison, and the recomputation only where it is needed.

    Returns
    -------
    Tensor, shape (..., n, m)
        With ``k == 0`` every entry is an empty sum: ``-inf``.

    Raises
    ------
    ShapeError
        Fewer than 2 dimensions, inner sizes that differ, or batch shapes that do not broadcast.
    DtypeMismatchError, DeviceMismatchError, ValidationError
    """
    check_floating(a, "logmatmulexp a")
    check_floating(b, "logmatmulexp b")
    if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-2]:
        raise ShapeError("logmatmulexp", "needs a of shape (..., n, k) and b of shape "
                         "(..., k, m)", found=f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise DtypeMismatchError("logmatmulexp", "a and b must have one dtype",
                                 found=f"{a.dtype} and {b.dtype}", fix="cast one of them")
    _same_device(a, b, "logmatmulexp")
    exact = _check_flag(exact, "logmatmulexp exact")
    if a.shape[-1] == 0:  # k == 0: every entry is an empty sum, log 0 = -inf
        shape = (*_broadcast_lead(a, b), a.shape[-2], b.shape[-1])
        # a.sum() and b.sum() are exactly 0 (no entries) and keep the result in the graph
        return a.new_full(shape, -math.inf) + a.sum() + b.sum()
    if exact:  # a hot path of the chain core: one clamp instead of finite_shift's three ops
        lowest = torch.finfo(a.dtype).min
        a_max = a.detach().amax(dim=-1, keepdim=True).clamp_min(lowest)
        b_max = b.detach().amax(dim=-2, keepdim=True).clamp_min(lowest)
    else:
        a_max = finite_shift(a.amax(dim=-1, keepdim=True))
        b_max = finite_shift(b.amax(dim=-2, keepdim=True))
    try:
        prod = torch.matmul(torch.exp(a - a_max), torch.exp(b - b_max))
    except RuntimeError as err:
        _broadcast_lead(a, b)  # raises ShapeError if that is the cause
        raise err
    grad = a.requires_grad or b.requires_grad
    out = (_safe_log(prod) if grad or not exact else torch.log(prod)) + a_max + b_max
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
        exact_vals = _logsumexp(terms, (terms.dim() - 1,), False) if grad \
            else torch.logsumexp(terms, -1)
        out = out.index_put(idx, exact_vals)
    return out


def _broadcast_lead(a: Tensor, b: Tensor) -> tuple[int, ...]:
    """The broadcast batch shape of two matmul operands, or a ShapeError."""
    try:
        lead: torch.Size = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
            a.shape[:-2], b.shape[:-2]
        )
    except RuntimeError as err:
        raise ShapeError("logmatmulexp", "the batch dimensions of a and b do not broadcast",
                         found=f"{tuple(a.shape)} and {tuple(b.shape)}") from err
    return tuple(lead)
