"""Shared pieces of the chain core: validated inputs, result types, method choice, reductions.

``_prepare`` flattens the batch dims, checks shapes, dtypes, devices, lengths and finiteness and
returns a :class:`_Chain`; the helpers here are used by every recursion of the package.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.special import logsumexp
from probforge.validate import check_choice, check_int

__all__ = ["ChainMarginals", "ChainPath", "choose_method"]


_METHODS = ("auto", "sequential", "parallel")
# Largest number of elements of one (..., K, K, K) max-plus broadcast materialised at once.
_MAXPLUS_CHUNK = 1 << 22
# "auto" uses the scan only when its step matrices fit in this many elements (about 256 MiB in
# float64); beyond it, the sequential recursion (memory O(B T K)) is used.
_SCAN_BUDGET = 1 << 25


class ChainMarginals(NamedTuple):
    """Posterior marginals of a chain.

    Attributes
    ----------
    log_z : Tensor, shape (...)
        Log partition function.
    unary : Tensor, shape (..., T, K)
        ``p(y_t = k)``; zero at padded steps.
    pair : Tensor, shape (..., T-1, K, K), or None
        ``p(y_t = i, y_{t+1} = j)``; zero for ``t >= lengths - 1``. None when not requested.
    """

    log_z: Tensor
    unary: Tensor
    pair: Tensor | None


class ChainPath(NamedTuple):
    """Best (or k best) state paths and their scores.

    Attributes
    ----------
    score : Tensor, shape (...) or (..., k)
        ``score(path)``, the unnormalised log-density of the path (``-inf`` for missing paths).
    path : LongTensor, shape (..., T) or (..., k, T)
        States; ``-1`` at padded steps and for missing paths.
    """

    score: Tensor
    path: Tensor


class _Chain(NamedTuple):
    """Validated, flattened inputs: batch dims collapsed into one dim ``B``."""

    unary: Tensor  # (B, T, K), padded steps set to 0
    pair: Tensor  # (Bp, Tp, K, K), Bp in {1, B}, Tp in {1, T-1}; padded steps untouched
    lengths: Tensor | None  # (B,) on the device, or None when every sequence is full
    batch: tuple[int, ...]
    valid: Tensor | None  # (B, T) bool, True at real steps; None when all are real


def _check_lengths(lengths: Any, batch: tuple[int, ...], T: int, device: torch.device,
                   name: str) -> Tensor:
    """``lengths`` validated (integers of shape ``batch`` in 1..T) as a flat long tensor.

    A bool tensor is refused (True is not a length of 1).
    """
    if (not isinstance(lengths, Tensor) or lengths.is_floating_point() or lengths.is_complex()
            or lengths.dtype == torch.bool):
        raise ValidationError(
            f"{name}: lengths",
            "must be an integer tensor of the batch shape",
            found=lengths.dtype if isinstance(lengths, Tensor) else type(lengths).__name__,
            fix="pass a LongTensor of lengths, e.g. mask.sum(-1)",
        )
    if tuple(lengths.shape) != batch:
        raise ShapeError(
            f"{name}: lengths",
            f"shape must equal unary's batch shape {batch}",
            found=tuple(lengths.shape),
        )
    lens = lengths.to(device=device, dtype=torch.long).reshape(math.prod(batch))
    bad = (lens < 1) | (lens > T)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValidationError(
            f"{name}: lengths[{_index(i, batch)}]",
            f"must lie in 1..T = 1..{T}",
            found=int(lens[i]),
        )
    return lens


def _prepare(unary: Tensor, pair: Tensor, lengths: Tensor | None, name: str) -> _Chain:
    for what, x in (("unary", unary), ("pair", pair)):
        if not isinstance(x, Tensor):
            raise ValidationError(f"{name}: {what}", "must be a torch.Tensor",
                                  found=type(x).__name__, fix="convert with torch.as_tensor(...)")
    if unary.dim() < 2:
        raise ShapeError(
            f"{name}: unary",
            "must be a tensor of shape (..., T, K)",
            found=tuple(unary.shape),
        )
    if pair.dim() < 2:
        raise ShapeError(
            f"{name}: pair",
            "must be a tensor of shape (..., T-1, K, K) or (K, K)",
            found=tuple(pair.shape),
        )
    if not unary.is_floating_point():
        raise DtypeMismatchError(
            f"{name}: unary", "must be a floating-point tensor", found=unary.dtype
        )
    if pair.dtype != unary.dtype:
        raise DtypeMismatchError(
            f"{name}: pair",
            f"dtype {pair.dtype} differs from unary's {unary.dtype}",
            fix="convert both to the same floating dtype",
        )
    if pair.device != unary.device:
        raise DeviceMismatchError(
            f"{name}: pair",
            f"is on {pair.device} but unary is on {unary.device}",
            fix="move both to the same device",
        )
    *batch_l, T, K = unary.shape
    batch = tuple(batch_l)
    if T < 1 or K < 1:
        raise ShapeError(
            f"{name}: unary", "needs T >= 1 steps and K >= 1 states", found=tuple(unary.shape)
        )
    if tuple(pair.shape[-2:]) != (K, K):
        raise ShapeError(
            f"{name}: pair",
            f"last two dims must be (K, K) = ({K}, {K}) to match unary {tuple(unary.shape)}",
            found=tuple(pair.shape),
        )
    if pair.dim() == 2:
        p4 = pair.reshape(1, 1, K, K)
    else:
        Tp = pair.shape[-3]
        if Tp not in (1, T - 1):
            raise ShapeError(
                f"{name}: pair",
                f"time dim (third from last) must be T-1 = {T - 1} or 1 for unary "
                f"{tuple(unary.shape)}",
                found=tuple(pair.shape),
            )
        pbatch = tuple(pair.shape[:-3])
        ok = len(pbatch) <= len(batch) and all(
            q in (1, b) for q, b in zip(reversed(pbatch), reversed(batch), strict=False)
        )
        if not ok:
            raise ShapeError(
                f"{name}: pair",
                f"batch dims {pbatch} do not broadcast to unary's batch dims {batch}",
                found=tuple(pair.shape),
            )
        if all(s == 1 for s in pbatch):
            p4 = pair.reshape(1, Tp, K, K)
        else:
            p4 = pair.expand(*batch, Tp, K, K).reshape(-1, Tp, K, K)
    B = math.prod(batch)
    u3 = unary.reshape(B, T, K)

    valid: Tensor | None = None
    lens: Tensor | None = None
    if lengths is not None:
        lens = _check_lengths(lengths, batch, T, unary.device, name)
        steps = torch.arange(T, device=unary.device)
        valid = steps < lens[:, None]
        if bool(valid.all()):
            valid, lens = None, None
        else:
            u3 = torch.where(valid[..., None], u3, torch.zeros((), dtype=u3.dtype))

    _check_finite(u3, valid, f"{name}: unary", batch if B > 0 else ())
    if p4.shape[1] > 0:
        pvalid: Tensor | None = None
        if valid is not None and p4.shape[1] == T - 1:
            pvalid = valid[:, 1:] if p4.shape[0] == B else valid[:, 1:].any(0, keepdim=True)
        _check_finite(p4, pvalid, f"{name}: pair", batch if p4.shape[0] == B else ())
        if pvalid is not None:  # padding may hold anything; keep it out of values and gradients
            p4 = torch.where(pvalid[..., None, None], p4, torch.zeros((), dtype=p4.dtype))
    return _Chain(u3, p4, lens, batch, valid)


def _index(flat: int, batch: tuple[int, ...]) -> str:
    if not batch:
        return ""
    idx = []
    for s in reversed(batch):
        idx.append(flat % s)
        flat //= s
    return ", ".join(str(i) for i in reversed(idx))


def _check_finite(x: Tensor, valid: Tensor | None, subject: str, batch: tuple[int, ...]) -> None:
    """Raise NonFiniteError at the first NaN / +inf of ``x`` (B, T, ...) where ``valid`` (B, T)."""
    if valid is None and x.numel() > 0:
        # one reduction in the common case: max propagates NaN, so a max that is finite or
        # -inf clears the whole tensor; only a bad one pays for locating the culprit
        top = x.detach().max()
        if not bool(torch.isnan(top) | (top == math.inf)):
            return
    bad = torch.isnan(x) | (x == math.inf)
    if valid is not None:
        bad = bad & valid.reshape(valid.shape + (1,) * (x.dim() - valid.dim()))
    if bool(bad.any()):
        pos = [int(v) for v in bad.nonzero()[0]]
        parts = ([_index(pos[0], batch)] if batch else []) + [str(v) for v in pos[1:]]
        raise NonFiniteError(
            subject,
            "log-potentials must be finite or -inf (no NaN, no +inf)",
            found=f"{float(x.detach()[tuple(pos)])} at [{', '.join(parts)}] "
                  "(batch..., t, states)",
            fix="mark missing observations with a mask instead of NaN",
        )


def _check_method(method: str, name: str) -> None:
    if not isinstance(method, str) or method not in _METHODS:
        raise ValidationError(
            f"{name}: method", f"must be one of {_METHODS}", found=repr(method)
        )


def choose_method(batch: int, T: int, K: int, *, semiring: str = "log") -> str:
    """The method ``"auto"`` resolves to for ``batch`` sequences of ``T`` steps and ``K`` states.

    The scan does ``O(K^3)`` work per step in ``2 log2 T`` batched levels; the recursion does
    ``O(K^2)`` work per step but one interpreted step per time step. The scan wins for long
    chains with few states, the recursion for many states or many short sequences.

    Parameters
    ----------
    batch, T, K : int
        Number of sequences, steps and states.
    semiring : {"log", "max"}
        The max-plus scan materialises ``(K, K, K)`` blocks, so it is used for fewer states.

    Returns
    -------
    str
        ``"sequential"`` or ``"parallel"``.

    Examples
    --------
    >>> choose_method(1, 100_000, 4)
    'parallel'
    >>> choose_method(100, 50, 64)
    'sequential'
    """
    batch = check_int(batch, "choose_method: batch", minimum=0)
    T = check_int(T, "choose_method: T", minimum=0)
    K = check_int(K, "choose_method: K", minimum=0)
    check_choice(semiring, "choose_method: semiring", ("log", "max"))
    return _choose(batch, T, K, semiring)


def _choose(batch: int, T: int, K: int, semiring: str) -> str:
    """:func:`choose_method` without the argument checks (the chain core's own shapes)."""
    if T < 8 or batch * T * K * K > _SCAN_BUDGET:
        return "sequential"
    kmax = 64 if semiring == "log" else 16
    if K > kmax:
        return "sequential"
    # Interpreter overhead: the recursion runs ~8 tensor ops per step, the scan ~20 per level
    # over 2 log2 T levels (~5 us each); work: ~K^2 per step and sequence for the recursion,
    # ~4 K^3 + 40 K^2 (matmul plus the elementwise exp/log passes) for the scan.
    levels = 2 * math.ceil(math.log2(max(T, 2)))
    seq_cost = T * 8 * 5e-6 + batch * T * K * K * 2e-9
    par_cost = levels * 20 * 5e-6 + batch * T * (4 * K**3 + 40 * K * K) * 1.5e-10
    return "parallel" if par_cost < seq_cost else "sequential"


def _resolve(method: str, c: _Chain, semiring: str) -> str:
    if method != "auto":
        return method
    B, T, K = c.unary.shape
    return _choose(B, T, K, semiring)


def _lse(x: Tensor, dim: int) -> Tensor:
    """logsumexp with finite gradients; torch's faster kernel when no gradient is needed."""
    if x.requires_grad:
        return logsumexp(x, dim=dim)
    return torch.logsumexp(x, dim=dim)


def _reduce(x: Tensor, dim: int, semiring: str) -> Tensor:
    return x.amax(dim=dim) if semiring == "max" else _lse(x, dim)


def _normalise(x: Tensor, semiring: str) -> tuple[Tensor, Tensor]:
    """Shift the last dim so that its reduction is 0; returns (shifted, shift).

    The shift is differentiable (so that sums of shifts are the exact log Z as a function) and 0
    where the whole slice is -inf (so nothing becomes NaN).
    """
    inc = _reduce(x, -1, semiring)
    return x - _floor(inc)[..., None], inc


def _floor(m: Tensor) -> Tensor:
    """``m`` with -inf raised to the dtype's lowest finite value, so ``x - m`` is never NaN.

    (A slice whose reduction is -inf is all -inf, and ``-inf - lowest = -inf``.)
    """
    return m.clamp_min(torch.finfo(m.dtype).min)


def _pair_at(p: Tensor, t: int) -> Tensor:
    """Step ``t`` of a (Bp, Tp, K, K) pair tensor: (Bp, K, K)."""
    return p[:, 0] if p.shape[1] == 1 else p[:, t]


def _pair_steps(p: Tensor, n: int) -> Tensor:
    """All ``n = T-1`` steps of a (Bp, Tp, K, K) pair tensor: (Bp, n, K, K), a view."""
    return p.expand(p.shape[0], n, *p.shape[2:])


def _pair_full(c: _Chain) -> Tensor:
    """The pair tensor expanded (as a view where possible) to (B, T-1, K, K)."""
    B, T, K = c.unary.shape
    return c.pair.expand(B, T - 1, K, K)


def _mask_steps(x: Tensor, c: _Chain, fill: float = -math.inf) -> Tensor:
    if c.valid is None:
        return x
    return torch.where(c.valid[..., None], x, torch.full((), fill, dtype=x.dtype, device=x.device))


def _raise_infeasible(log_z: Tensor, c: _Chain, name: str) -> None:
    bad = log_z == -math.inf
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        subject = f"{name}: sequence [{_index(i, c.batch)}]" if c.batch else f"{name}: the chain"
        raise ZeroProbabilityEvidence(
            subject,
            "every state path has zero probability (log Z = -inf), so the posterior is undefined",
            fix="check forbidden (-inf) transitions, clamped states and zero-probability "
            "observations",
        )


def _last_index(c: _Chain) -> Tensor:
    B, T, _ = c.unary.shape
    if c.lengths is None:
        return torch.full((B,), T - 1, dtype=torch.long, device=c.unary.device)
    return c.lengths - 1


def _mask_path(path: Tensor, c: _Chain) -> Tensor:
    if c.valid is None:
        return path
    return torch.where(c.valid.expand_as(path), path, torch.full_like(path, -1))


def _path_score(c: _Chain, path: Tensor) -> Tensor:
    """score(path) for paths (..., B, T) with -1 padding; -inf for an all -1 path."""
    B, T, K = c.unary.shape
    lead = path.shape[:-2]
    y = path.clamp_min(0)
    u = c.unary.expand(*lead, B, T, K)
    s = torch.gather(u, -1, y[..., None])[..., 0]
    ok = path >= 0
    s = torch.where(ok, s, torch.zeros_like(s)).sum(-1)
    if T > 1:
        pr = _pair_steps(c.pair, T - 1).expand(*lead, B, T - 1, K, K)
        rows = torch.gather(pr, -2, y[..., :-1, None, None].expand(*lead, B, T - 1, 1, K))
        ps = torch.gather(rows[..., 0, :], -1, y[..., 1:, None])[..., 0]
        ok2 = ok[..., 1:]
        s = s + torch.where(ok2, ps, torch.zeros_like(ps)).sum(-1)
    return torch.where(ok[..., 0], s, torch.full_like(s, -math.inf))
