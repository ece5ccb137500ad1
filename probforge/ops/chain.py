"""Semiring inference on chains: the shared core of hidden Markov models and linear-chain CRFs.

A chain over ``T`` discrete variables ``y_0 .. y_{T-1}``, each with ``K`` states, has the
unnormalised log-density

``score(y) = sum_t unary[t, y_t] + sum_{t<T-1} pair[t, y_t, y_{t+1}]``

and partition function ``log Z = logsumexp_y score(y)``. An HMM passes ``unary[0] = log pi +
log p(x_0 | y_0)``, ``unary[t] = log p(x_t | y_t)`` and ``pair = log A``; a CRF passes its
emission scores (with start/end scores folded in) and transition scores.

Shapes: ``...`` are batch dimensions (possibly none); ``unary`` is ``(..., T, K)``; ``pair`` is
``(..., T-1, K, K)`` or broadcastable to it: ``(K, K)`` is one matrix for every step and every
sequence, a time dimension of 1 is shared over time, and its batch dimensions broadcast to those of
``unary``. A three-dimensional ``pair`` is read as ``(T-1 or 1, K, K)``; give per-sequence shared
matrices as ``(B, 1, K, K)``. ``-inf`` entries are forbidden states or transitions.
``lengths`` (a LongTensor of the batch shape, ``1 <= lengths <= T``) marks steps
``t >= lengths[b]`` as padding: they are ignored exactly and may hold any value, even NaN.

Every function works on normalised messages (each forward/backward message is shifted to
``logsumexp = 0`` and the shift kept apart), so float32 stays accurate on very long chains, and
every quantity (marginals, Viterbi score, log Z) is assembled from local, per-step terms.
The sequential ``log Z`` runs the same recursion in the probability domain (each step one
``(B, K) @ (K, K)`` matmul, normalised to sum 1, the logs of the normalisers summed), with its
gradient, the posterior marginals, from the matching scaled backward recursion; wherever a
normaliser is too small for that to be exact it falls back to the log-space recursion.

Two methods compute the messages: ``"sequential"``, the textbook recursion (one step per time
step, batched over sequences), and ``"parallel"``, a log-depth associative scan over the ``K x K``
step matrices (``O(T K^3)`` work in ``2 log2 T`` batched levels), which is much faster for long
chains with few states. ``"auto"`` picks from the shapes. Both are tested equal to each other and
to enumeration of all ``K^T`` paths. On CPU, with numba installed, ``"auto"`` and
``"sequential"`` run the sequential recursions (scaled forward and backward, Viterbi) as compiled
kernels (:mod:`probforge.ops.chain_native`), tested equal to the torch recursions.

Sequences whose every path is forbidden have ``log Z = -inf``: :func:`chain_log_partition`,
:func:`chain_forward` and :func:`chain_backward` return it; the functions that need a posterior
(:func:`chain_marginals`, :func:`chain_viterbi`, :func:`chain_sample`, :func:`chain_entropy`)
raise :class:`~probforge.errors.ZeroProbabilityEvidence` naming the batch index, and
:func:`chain_kbest` returns ``-inf`` scores and ``-1`` paths for the missing paths.

Examples
--------
>>> import torch
>>> from probforge.ops.chain import chain_log_partition, chain_marginals, chain_viterbi
>>> unary = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64))
>>> pair = torch.log(torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=torch.float64))
>>> chain_log_partition(unary, pair).exp()
tensor(0.1990, dtype=torch.float64)
>>> chain_marginals(unary, pair).unary[1]
tensor([0.3367, 0.6633], dtype=torch.float64)
>>> chain_viterbi(unary, pair).path
tensor([0, 1, 1])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

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
from probforge.ops import chain_native
from probforge.ops.random import check_generator
from probforge.ops.semiring import gumbel
from probforge.ops.special import logmatmulexp, logsumexp

__all__ = [
    "ChainMarginals",
    "ChainPath",
    "chain_backward",
    "chain_entropy",
    "chain_forward",
    "chain_kbest",
    "chain_log_partition",
    "chain_marginals",
    "chain_sample",
    "chain_viterbi",
    "choose_method",
]

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


# ----------------------------------------------------------------------------------------------
# validation


def _prepare(unary: Tensor, pair: Tensor, lengths: Tensor | None, name: str) -> _Chain:
    if not isinstance(unary, Tensor) or unary.dim() < 2:
        raise ShapeError(
            f"{name}: unary",
            "must be a tensor of shape (..., T, K)",
            found=tuple(unary.shape) if isinstance(unary, Tensor) else type(unary).__name__,
        )
    if not isinstance(pair, Tensor) or pair.dim() < 2:
        raise ShapeError(
            f"{name}: pair",
            "must be a tensor of shape (..., T-1, K, K) or (K, K)",
            found=tuple(pair.shape) if isinstance(pair, Tensor) else type(pair).__name__,
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
        if not isinstance(lengths, Tensor) or lengths.is_floating_point() or lengths.is_complex():
            raise ValidationError(
                f"{name}: lengths",
                "must be an integer tensor of the batch shape",
                found=lengths.dtype if isinstance(lengths, Tensor) else type(lengths).__name__,
            )
        if tuple(lengths.shape) != batch:
            raise ShapeError(
                f"{name}: lengths",
                f"shape must equal unary's batch shape {batch}",
                found=tuple(lengths.shape),
            )
        lens = lengths.to(device=unary.device, dtype=torch.long).reshape(B)
        bad = (lens < 1) | (lens > T)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValidationError(
                f"{name}: lengths[{_index(i, batch)}]",
                f"must lie in 1..T = 1..{T}",
                found=int(lens[i]),
            )
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
    bad = torch.isnan(x) | (x == math.inf)
    if valid is not None:
        bad = bad & valid.reshape(valid.shape + (1,) * (x.dim() - valid.dim()))
    if bool(bad.any()):
        pos = [int(v) for v in bad.nonzero()[0]]
        parts = ([_index(pos[0], batch)] if batch else []) + [str(v) for v in pos[1:]]
        raise NonFiniteError(
            subject,
            "log-potentials must be finite or -inf (no NaN, no +inf)",
            found=f"{float(x[tuple(pos)])} at [{', '.join(parts)}] (batch..., t, states)",
            fix="mark missing observations with a mask instead of NaN",
        )


def _check_method(method: str, name: str) -> None:
    if method not in _METHODS:
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
    return choose_method(B, T, K, semiring=semiring)


# ----------------------------------------------------------------------------------------------
# reductions that stay NaN-free


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


def _vecmat(v: Tensor, m: Tensor, semiring: str) -> Tensor:
    """``reduce_i v[..., i] + m[..., i, j]``: (..., K) x (..., K, K) -> (..., K)."""
    if semiring == "max":
        return (v[..., :, None] + m).amax(dim=-2)
    return _log_matmul(v[..., None, :], m)[..., 0, :]


def _matvec(m: Tensor, v: Tensor, semiring: str) -> Tensor:
    """``reduce_j m[..., i, j] + v[..., j]``: (..., K, K) x (..., K) -> (..., K)."""
    if semiring == "max":
        return (m + v[..., None, :]).amax(dim=-1)
    return _log_matmul(m, v[..., :, None])[..., 0]


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


# ----------------------------------------------------------------------------------------------
# messages


def _forward_messages(c: _Chain, semiring: str, method: str) -> tuple[Tensor, Tensor]:
    """Normalised forward messages and per-step increments.

    Returns
    -------
    hat : (B, T, K), ``hat[t] = alpha[t] - sum_{s<=t} inc[s]`` with ``reduce(hat[t]) = 0``.
    inc : (B, T), so that ``log alpha[t] = hat[t] + cumsum(inc)[t]``. Padded steps: hat is the
        last real step's message carried forward and inc is 0.
    """
    u, p = c.unary, c.pair
    _B, T, _K = u.shape
    hat0, inc0 = _normalise(u[:, 0], semiring)
    if T == 1:
        return hat0[:, None], inc0[:, None]
    if method == "parallel":
        mats = _step_matrices(c)  # (T-1, B, K, K)
        prefix = _scan(mats, _combine(semiring))  # prefix[t-1] = M_1 ... M_t
        msgs = _vecmat(hat0[None], prefix, semiring)  # (T-1, B, K)
        rest = _normalise(msgs, semiring)[0].transpose(0, 1)  # (B, T-1, K)
        prev = torch.cat([hat0[:, None], rest[:, :-1]], 1)  # hat[t-1] for t = 1..T-1
        a = _vecmat(prev, _pair_steps(p, T - 1), semiring) + u[:, 1:]
        if c.valid is not None:
            keep = c.valid[:, 1:, None]
            a = torch.where(keep, a, prev)
        h, inc = _normalise(a, semiring)
        if c.valid is not None:
            inc = torch.where(c.valid[:, 1:], inc, torch.zeros_like(inc))
        hat = torch.cat([hat0[:, None], h], 1)
        return hat, torch.cat([inc0[:, None], inc], 1)
    hats = [hat0]
    incs = [inc0]
    h = hat0
    for t in range(1, T):
        a = _reduce(h[:, :, None] + _pair_at(p, t - 1), -2, semiring) + u[:, t]
        if c.valid is not None:
            a = torch.where(c.valid[:, t, None], a, h)
        h, inc = _normalise(a, semiring)
        if c.valid is not None:
            inc = torch.where(c.valid[:, t], inc, torch.zeros_like(inc))
        hats.append(h)
        incs.append(inc)
    return torch.stack(hats, 1), torch.stack(incs, 1)


def _backward_messages(c: _Chain, semiring: str, method: str) -> tuple[Tensor, Tensor]:
    """Normalised backward messages ``v`` (B, T, K) and increments (B, T).

    ``log beta[t] = v[t] + sum_{s>=t} inc[s]``; ``v[t] = 0`` and ``inc[t] = 0`` for
    ``t >= lengths - 1`` (``beta = 1`` at the last real step).
    """
    u, p = c.unary, c.pair
    B, T, K = u.shape
    zero = torch.zeros(B, K, dtype=u.dtype, device=u.device)
    if T == 1:
        return zero[:, None], torch.zeros(B, 1, dtype=u.dtype, device=u.device)
    last_real = None if c.lengths is None else (c.lengths - 1)
    if method == "parallel":
        mats = _step_matrices(c)  # (T-1, B, K, K): M_t, t = 1..T-1
        comb = _combine(semiring)
        suffix = _scan(mats.flip(0), lambda a, b: comb(b, a)).flip(0)  # M_t ... M_{T-1}
        ones = torch.zeros((), dtype=u.dtype, device=u.device).expand(K)
        v_rest = _normalise(_matvec(suffix, ones, semiring), semiring)[0].transpose(0, 1)
        if last_real is not None:  # beta = 1 (v = 0) from the last real step on
            done = torch.arange(T - 1, device=u.device)[None, :] >= last_real[:, None]
            v_rest = torch.where(done[..., None], torch.zeros_like(v_rest), v_rest)
        nxt = torch.cat([v_rest[:, 1:], zero[:, None]], 1)  # v[t+1] for t = 0..T-2
        b = _matvec(_pair_steps(p, T - 1), u[:, 1:] + nxt, semiring)
        v, inc = _normalise(b, semiring)
        if last_real is not None:
            after = torch.arange(T - 1, device=u.device)[None, :] >= last_real[:, None]
            v = torch.where(after[..., None], torch.zeros_like(v), v)
            inc = torch.where(after, torch.zeros_like(inc), inc)
        v_all = torch.cat([v, zero[:, None]], 1)
        inc_all = torch.cat([inc, torch.zeros(B, 1, dtype=u.dtype, device=u.device)], 1)
        return v_all, inc_all
    vs = [zero]
    incs = [torch.zeros(B, dtype=u.dtype, device=u.device)]
    nv = zero
    for t in range(T - 2, -1, -1):
        b = _reduce(_pair_at(p, t) + (u[:, t + 1] + nv)[:, None, :], -1, semiring)
        nv, inc = _normalise(b, semiring)
        if last_real is not None:
            after = (t >= last_real)
            nv = torch.where(after[:, None], torch.zeros_like(nv), nv)
            inc = torch.where(after, torch.zeros_like(inc), inc)
        vs.append(nv)
        incs.append(inc)
    return torch.stack(vs[::-1], 1), torch.stack(incs[::-1], 1)


def _step_matrices(c: _Chain) -> Tensor:
    """``M_t[i, j] = pair[t-1, i, j] + unary[t, j]`` for t = 1..T-1, time first: (T-1, B, K, K).

    Padded steps become the identity (0 on the diagonal, -inf elsewhere).
    """
    u = c.unary
    _B, _T, K = u.shape
    m = _pair_full(c) + u[:, 1:, None, :]
    if c.valid is not None:
        eye = torch.full((K, K), -math.inf, dtype=u.dtype, device=u.device)
        eye.fill_diagonal_(0.0)
        m = torch.where(c.valid[:, 1:, None, None], m, eye)
    return m.transpose(0, 1)


# ----------------------------------------------------------------------------------------------
# the associative scan


def _scan(x: Tensor, combine: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Inclusive prefix combination along dim 0: ``out[t] = x[0] o x[1] o ... o x[t]``.

    Odd-even (Blelloch-style) recursion: ``O(n)`` applications of ``combine`` in ``2 log2 n``
    batched levels. ``combine(a, b)`` must be associative, ``a`` coming first.
    """
    n = x.shape[0]
    if n == 1:
        return x
    m = n // 2
    pairs = combine(x[0 : 2 * m : 2], x[1 : 2 * m : 2])
    sp = _scan(pairs, combine)  # sp[i] = x[0] o ... o x[2i+1]
    n_even = (n + 1) // 2
    even = x[:1]
    if n_even > 1:
        even = torch.cat([even, combine(sp[: n_even - 1], x[2:n:2])], 0)
    out = torch.stack([even[:m], sp], 1).reshape((2 * m, *x.shape[1:]))
    if n_even > m:
        out = torch.cat([out, even[m:]], 0)
    return out


def _combine(semiring: str) -> Callable[[Tensor, Tensor], Tensor]:
    def combine(a: Tensor, b: Tensor) -> Tensor:
        prod = _maxplus_matmul(a, b) if semiring == "max" else _log_matmul(a, b)
        # A scalar shift per matrix keeps the entries bounded; every consumer renormalises
        # messages, which is invariant to it, so the shift carries no gradient.
        return prod - _floor(prod.detach().amax(dim=(-2, -1), keepdim=True))

    return combine


def _log_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) @ exp(b))``, exact wherever finite (see :func:`logmatmulexp`)."""
    return logmatmulexp(a, b, exact=True)


def _maxplus_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``max_k a[..., i, k] + b[..., k, j]`` for equal-shaped (..., K, K), chunked over batch."""
    K = a.shape[-1]
    lead = a.shape[:-2]
    a2 = a.reshape(-1, K, K)
    b2 = b.reshape(-1, K, K)
    n = a2.shape[0]
    step = max(1, _MAXPLUS_CHUNK // (K**3))
    parts = [
        (a2[s : s + step, :, :, None] + b2[s : s + step, None, :, :]).amax(dim=2)
        for s in range(0, n, step)
    ]
    return torch.cat(parts, 0).reshape(*lead, K, K)


# ----------------------------------------------------------------------------------------------
# fast sequential log Z: scaled forward in the probability domain, analytic gradient


def _scaled_log_z(c: _Chain) -> Tensor:
    """``log Z`` (B,) by the scaled forward recursion, with its gradient computed analytically.

    Equal to the generic log-space recursion (which it falls back to wherever a step's
    normaliser is too small to be exact, e.g. for a sequence with no feasible path), but one
    ``(B, K) @ (K, K)`` matmul per step instead of two log-sum-exps over ``(B, K, K)``.
    """
    out: Tensor = _ScaledLogZ.apply(c.unary, c.pair, c.lengths)  # type: ignore[no-untyped-call]
    return out


def _log_space_log_z(unary: Tensor, pair: Tensor, lengths: Tensor | None) -> Tensor:
    """The generic log-space sequential ``log Z`` (B,) of prepared inputs, differentiable."""
    B, T, _K = unary.shape
    valid = None if lengths is None else torch.arange(T, device=unary.device) < lengths[:, None]
    c = _Chain(unary, pair, lengths, (B,), valid)
    return _forward_messages(c, "log", "sequential")[1].sum(-1)


def _scaled_forward(
    unary: Tensor, pair: Tensor, lengths: Tensor | None, valid: Tensor | None, *,
    store: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor] | None:
    """(log_z, alphas, E, P, cs) of the scaled forward recursion; None if it is not exact.

    ``store=False`` may skip the (B, T, K) ``alphas`` (then None) when only ``log Z`` is needed.

    ``E = exp(unary - max_k)``, ``P = exp(pair - max_ij)``, ``alphas[:, t]`` the filtering
    distributions and ``cs[:, t]`` their normalisers (1 at padded steps).
    """
    B, T, _K = unary.shape
    m = unary.amax(-1)  # (B, T); exact shifts, restored in log Z
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    E = torch.exp(unary - m[..., None])
    pm = pair.amax((-2, -1))  # (Bp, Tp)
    pm = torch.where(torch.isfinite(pm), pm, torch.zeros_like(pm))
    P = torch.exp(pair - pm[..., None, None])
    alpha_t: Tensor | None
    if chain_native.enabled(E, P):
        alpha_t, cst = chain_native.scaled_forward(E, P, lengths, store=store)
    else:
        alpha_t, cst = _scaled_forward_loop(E, P, valid)
    info = torch.finfo(unary.dtype)
    # Below tiny / eps the normaliser may have lost precision to subnormals (or be 0): exact
    # answers there need the log-space recursion. One sync, outside the loop.
    if bool((cst < info.tiny / info.eps).any()):
        return None
    shifts = m.sum(-1) if valid is None else torch.where(valid, m, torch.zeros_like(m)).sum(-1)
    pms = pm.expand(B, T - 1)
    if valid is not None:
        pms = torch.where(valid[:, 1:], pms, torch.zeros_like(pms))
    log_z = torch.log(cst).sum(-1) + shifts + pms.sum(-1)
    return log_z, alpha_t, E, P, cst


def _scaled_forward_loop(E: Tensor, P: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """The scaled forward recursion in torch: (alphas (B, T, K), normalisers (B, T))."""
    T = E.shape[1]
    shared = P.shape[0] == 1
    cs = [E[:, 0].sum(-1)]
    a = E[:, 0] / cs[0][:, None]
    alphas = [a]
    for t in range(1, T):
        Pt = _pair_at(P, t - 1)
        n = (a @ Pt[0] if shared else torch.bmm(a[:, None, :], Pt)[:, 0]) * E[:, t]
        ct = n.sum(-1)
        if valid is not None:  # padding: carry the message, normaliser 1
            vt = valid[:, t]
            ct = torch.where(vt, ct, torch.ones_like(ct))
            n = torch.where(vt[:, None], n, a)
        a = n / ct[:, None]
        alphas.append(a)
        cs.append(ct)
    return torch.stack(alphas, 1), torch.stack(cs, 1)


class _ScaledLogZ(torch.autograd.Function):
    """``log Z`` of prepared (B, T, K) unary and (Bp, Tp, K, K) pair, T >= 2.

    The backward pass is the scaled backward recursion (the posterior marginals). Double
    backward (``create_graph=True``), and any step where the scaled quantities are not exact,
    use the generic log-space recursion instead.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        unary: Tensor,
        pair: Tensor,
        lengths: Tensor | None,
    ) -> Tensor:
        T = unary.shape[1]
        valid = None if lengths is None else torch.arange(T, device=unary.device) < lengths[:, None]
        # without any input needing a gradient, only log Z is kept
        store = any(ctx.needs_input_grad[:2])  # type: ignore[attr-defined]
        res = _scaled_forward(unary, pair, lengths, valid, store=store)
        ctx.fast = res is not None  # type: ignore[attr-defined]
        ctx.has_lengths = lengths is not None  # type: ignore[attr-defined]
        lens = lengths if lengths is not None else unary.new_empty(0, dtype=torch.long)
        if res is None:
            ctx.save_for_backward(unary, pair, lens)
            return _log_space_log_z(unary, pair, lengths)
        log_z, alphas, E, P, cs = res
        if alphas is None:  # no backward will run
            ctx.fast = False  # type: ignore[attr-defined]
            ctx.save_for_backward(unary, pair, lens)
        else:
            ctx.save_for_backward(unary, pair, lens, alphas, E, P, cs)
        return log_z

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None]:
        saved = ctx.saved_tensors  # type: ignore[attr-defined]
        unary, pair, lens = saved[:3]
        lengths = lens if ctx.has_lengths else None  # type: ignore[attr-defined]
        need_u, need_p = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
        grads: tuple[Tensor | None, Tensor | None] | None = None
        if ctx.fast and not torch.is_grad_enabled():  # type: ignore[attr-defined]
            alphas, E, P, cs = saved[3:]
            grads = _scaled_grads(alphas, E, P, cs, lengths, g)
        if grads is None:
            grads = _log_space_grads(unary, pair, lengths, g, need_u, need_p)
        gu, gp = grads
        return (gu if need_u else None), (gp if need_p else None), None


def _scaled_grads(
    alphas: Tensor, E: Tensor, P: Tensor, cs: Tensor, lengths: Tensor | None, g: Tensor
) -> tuple[Tensor, Tensor] | None:
    """Gradients of ``sum g * log Z`` by the scaled backward recursion; None if not finite.

    ``beta[t] = P[t] (E[t+1] beta[t+1]) / cs[t+1]`` with ``beta[T-1] = 1``, so that
    ``alphas * beta`` are the unary marginals and ``alphas[t, i] P[t, i, j] w[t, j]``, with
    ``w[t] = E[t+1] beta[t+1] / cs[t+1]``, the pair marginals.
    """
    T = alphas.shape[1]
    valid = None if lengths is None else torch.arange(T, device=g.device) < lengths[:, None]
    betas, ws = _scaled_backward(E, P, cs, lengths, valid)
    gu = alphas * betas * g[:, None, None]
    if valid is not None:
        gu = torch.where(valid[..., None], gu, torch.zeros_like(gu))
    W = ws * g[:, None, None]  # (B, T-1, K)
    A = alphas[:, :-1]
    Bp, Tp = P.shape[:2]
    if Bp == 1 and Tp == 1:
        core = torch.einsum("bti,btj->ij", A, W)[None, None]
    elif Bp == 1:
        core = torch.einsum("bti,btj->tij", A, W)[None]
    elif Tp == 1:
        core = torch.einsum("bti,btj->bij", A, W)[:, None]
    else:
        core = A[..., :, None] * W[..., None, :]
    gp = P * core
    # 0 * inf where a state of zero filtering mass has a huge scaled beta: redo in log space
    if not bool(torch.isfinite(gu).all() & torch.isfinite(gp).all()):
        return None
    return gu, gp


def _scaled_backward(
    E: Tensor, P: Tensor, cs: Tensor, lengths: Tensor | None, valid: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The scaled backward recursion: ``betas`` (B, T, K) and pair weights ``ws`` (B, T-1, K).

    ``beta[t] = P[t] ws[t]`` with ``ws[t] = E[t+1] beta[t+1] / cs[t+1]`` and ``beta[T-1] = 1``;
    ``ws`` is 0 and ``beta`` 1 from the last real step on.
    """
    if chain_native.enabled(E, P, cs):
        return chain_native.scaled_backward(E, P, cs, lengths)
    B, T, K = E.shape
    shared = P.shape[0] == 1
    PT = P.transpose(-1, -2)
    b = torch.ones(B, K, dtype=E.dtype, device=E.device)
    betas = [b]
    ws: list[Tensor] = []
    for t in range(T - 2, -1, -1):
        w = E[:, t + 1] * b / cs[:, t + 1, None]
        if valid is not None:  # beta = 1 from the last real step on; no pair mass in padding
            w = torch.where(valid[:, t + 1, None], w, torch.zeros_like(w))
        Pt = _pair_at(PT, t)
        b = w @ Pt[0] if shared else torch.bmm(w[:, None, :], Pt)[:, 0]
        if valid is not None:
            b = torch.where(valid[:, t + 1, None], b, torch.ones_like(b))
        betas.append(b)
        ws.append(w)
    if not ws:
        return torch.stack(betas, 1), E.new_zeros(B, 0, K)
    return torch.stack(betas[::-1], 1), torch.stack(ws[::-1], 1)


def _log_space_grads(
    unary: Tensor, pair: Tensor, lengths: Tensor | None, g: Tensor, need_u: bool, need_p: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``sum g * log Z`` through the generic log-space recursion.

    Under ``create_graph=True`` (grad mode on in backward) they are built on the saved inputs,
    so they are themselves differentiable, as for the generic path.
    """
    create = torch.is_grad_enabled()
    with torch.enable_grad():
        u = unary if create else unary.detach().requires_grad_(need_u)
        p = pair if create else pair.detach().requires_grad_(need_p)
        log_z = _log_space_log_z(u, p, lengths)
        wanted = [x for x, need in ((u, need_u), (p, need_p)) if need]
        got = torch.autograd.grad(log_z, wanted, g, create_graph=create, allow_unused=True)
    it = iter(got)
    out: list[Tensor | None] = []
    for x, need in ((u, need_u), (p, need_p)):
        if not need:
            out.append(None)
            continue
        gx = next(it)
        out.append(torch.zeros_like(x) if gx is None else gx)
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------
# public functions


def chain_log_partition(
    unary: Tensor,
    pair: Tensor,
    lengths: Tensor | None = None,
    *,
    semiring: str = "log",
    method: str = "auto",
) -> Tensor:
    """Log partition function (or best path score) of a batch of chains.

    Parameters
    ----------
    unary : Tensor, shape (..., T, K)
        Log-potentials of each state at each step.
    pair : Tensor, shape (..., T-1, K, K) or broadcastable (e.g. (K, K))
        ``pair[..., t, i, j]``: log-potential of ``y_t = i, y_{t+1} = j``.
    lengths : LongTensor, shape (...), optional
        Real lengths ``1 <= lengths <= T``; later steps are padding and ignored.
    semiring : {"log", "max"}
        ``"log"``: ``log Z = logsumexp_y score(y)``; ``"max"``: ``max_y score(y)``.
    method : {"auto", "sequential", "parallel"}
        Recursion over time, log-depth scan, or chosen from the shapes.

    Returns
    -------
    Tensor, shape (...)
        ``-inf`` for a sequence on which every path is forbidden. Differentiable; the gradient of
        ``log Z`` with respect to ``unary`` / ``pair`` is the posterior marginals.

    Raises
    ------
    ShapeError, ValidationError, NonFiniteError
        On inconsistent shapes, lengths out of range, NaN or +inf potentials.

    Examples
    --------
    >>> import torch
    >>> unary = torch.zeros(2, 3)                    # T = 2 steps, K = 3 states
    >>> chain_log_partition(unary, torch.zeros(3, 3)).exp()
    tensor(9.)
    """
    name = "chain_log_partition"
    _check_method(method, name)
    if semiring not in ("log", "max"):
        raise ValidationError(
            f"{name}: semiring", "must be 'log' or 'max'", found=repr(semiring)
        )
    c = _prepare(unary, pair, lengths, name)
    m = _resolve(method, c, semiring)
    native = method != "parallel" and chain_native.enabled(c.unary, c.pair, autograd=True)
    if semiring == "log" and (m == "sequential" or native) and c.unary.shape[1] > 1:
        return _scaled_log_z(c).reshape(c.batch)
    _, inc = _forward_messages(c, semiring, m)
    return inc.sum(-1).reshape(c.batch)


def chain_forward(
    unary: Tensor, pair: Tensor, lengths: Tensor | None = None, *, method: str = "auto",
    normalized: bool = False,
) -> Tensor:
    """Forward messages ``log alpha[t, k] = log sum over y_{0..t-1} of exp(score up to y_t = k)``.

    Parameters
    ----------
    unary, pair, lengths, method
        As in :func:`chain_log_partition`.
    normalized : bool, default False
        Return each message shifted to ``logsumexp = 0`` instead: the filtering distribution
        ``log p(y_t | evidence up to t)``, accurate in float32 however long the chain.

    Returns
    -------
    Tensor, shape (..., T, K)
        ``-inf`` at padded steps. ``log Z = logsumexp(alpha[..., lengths - 1, :])``.

    Examples
    --------
    >>> import torch
    >>> chain_forward(torch.zeros(2, 2), torch.zeros(2, 2)).exp()
    tensor([[1., 1.],
            [2., 2.]])
    """
    name = "chain_forward"
    _check_method(method, name)
    c = _prepare(unary, pair, lengths, name)
    hat, inc = _forward_messages(c, "log", _resolve(method, c, "log"))
    out = hat if normalized else hat + inc.cumsum(-1)[..., None]
    return _mask_steps(out, c).reshape(*c.batch, *out.shape[1:])


def chain_backward(
    unary: Tensor, pair: Tensor, lengths: Tensor | None = None, *, method: str = "auto"
) -> Tensor:
    """Backward messages ``log beta[t, k] = log sum over y_{t+1..} of exp(score after y_t = k)``.

    Parameters
    ----------
    unary, pair, lengths, method
        As in :func:`chain_log_partition`.

    Returns
    -------
    Tensor, shape (..., T, K)
        ``0`` at the last real step, ``-inf`` at padded steps.

    Examples
    --------
    >>> import torch
    >>> chain_backward(torch.zeros(2, 2), torch.zeros(2, 2)).exp()
    tensor([[2., 2.],
            [1., 1.]])
    """
    name = "chain_backward"
    _check_method(method, name)
    c = _prepare(unary, pair, lengths, name)
    v, inc = _backward_messages(c, "log", _resolve(method, c, "log"))
    suffix = inc.flip(-1).cumsum(-1).flip(-1)
    out = v + suffix[..., None]
    return _mask_steps(out, c).reshape(*c.batch, *out.shape[1:])


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


def _posterior(
    c: _Chain, method: str, pairwise: bool | str, name: str
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """(log_z (B,), unary marginals (B,T,K), pair marginals or None, hat).

    Pair marginals: (B, T-1, K, K) for ``pairwise=True``; summed over steps, (B, K, K), for
    ``pairwise="sum"`` (computed in blocks of steps, so never (B, T-1, K, K) at once).
    """
    if method != "parallel" and chain_native.enabled(c.unary, c.pair):
        fast = _scaled_posterior(c, pairwise)
        if fast is not None:
            return fast
    m = _resolve(method, c, "log")
    hat, inc = _forward_messages(c, "log", m)
    log_z = inc.sum(-1)
    _raise_infeasible(log_z, c, name)
    v, _ = _backward_messages(c, "log", m)
    g, _ = _normalise(hat + v, "log")
    gamma = _mask_steps(g, c).exp()
    xi: Tensor | None = None
    B, T, K = c.unary.shape
    if pairwise == "sum":
        xi = c.unary.new_zeros(B, K, K)
        block = max(1, _SCAN_BUDGET // max(B * K * K, 1))
        for s in range(0, T - 1, block):
            e = min(s + block, T - 1)
            xi = xi + _pair_block(c, hat, v, s, e).sum(1)
    elif pairwise:
        xi = c.unary.new_zeros(B, 0, K, K) if T == 1 else _pair_block(c, hat, v, 0, T - 1)
    return log_z, gamma, xi, hat


def _scaled_posterior(
    c: _Chain, pairwise: bool | str
) -> tuple[Tensor, Tensor, Tensor | None, Tensor] | None:
    """:func:`_posterior` by the scaled recursions (no autograd); None where they are not exact.

    ``gamma = alphas * betas`` and ``xi[t] = alphas[t, :, None] * P[t] * ws[t, None, :]``, the
    pair potentials' max shift cancelling in the normalisation.
    """
    B, T, K = c.unary.shape
    if T == 1:
        return None
    res = _scaled_forward(c.unary, c.pair, c.lengths, c.valid)
    if res is None:
        return None
    log_z, alphas, E, P, cs = res
    assert alphas is not None
    betas, ws = _scaled_backward(E, P, cs, c.lengths, c.valid)
    gamma = alphas * betas
    gamma = gamma / gamma.sum(-1, keepdim=True)  # sums to 1 up to rounding; make it exact
    if c.valid is not None:
        gamma = torch.where(c.valid[..., None], gamma, torch.zeros_like(gamma))
    A = alphas[:, :-1]
    xi: Tensor | None = None
    Tp = P.shape[1]
    if pairwise == "sum":
        if Tp == 1:
            xi = torch.einsum("bti,btj->bij", A, ws) * P[:, 0]
        else:
            xi = c.unary.new_zeros(B, K, K)
            block = max(1, _SCAN_BUDGET // max(B * K * K, 1))
            for s in range(0, T - 1, block):
                e = min(s + block, T - 1)
                xi = xi + (A[:, s:e, :, None] * P[:, s:e] * ws[:, s:e, None, :]).sum(1)
    elif pairwise:
        xi = A[..., :, None] * P * ws[..., None, :]
    # 0 * inf where a state of zero filtering mass has a huge scaled beta: log space instead
    if not bool(torch.isfinite(gamma).all()) or (xi is not None and not bool(xi.isfinite().all())):
        return None
    return log_z, gamma, xi, torch.log(alphas)


def _pair_block(c: _Chain, hat: Tensor, v: Tensor, s: int, e: int) -> Tensor:
    """Pairwise marginals of steps ``s..e-1`` (pairs (t, t+1)): (B, e - s, K, K)."""
    B, _T, K = c.unary.shape
    pr = c.pair if c.pair.shape[1] == 1 else c.pair[:, s:e]
    logits = hat[:, s:e, :, None] + pr + (c.unary[:, s + 1 : e + 1] + v[:, s + 1 : e + 1])[
        :, :, None, :
    ]
    flat, _ = _normalise(logits.reshape(B, e - s, K * K), "log")
    xi = flat.exp().reshape(B, e - s, K, K)
    if c.valid is not None:
        xi = torch.where(c.valid[:, s + 1 : e + 1, None, None], xi, torch.zeros_like(xi))
    return xi


def chain_marginals(
    unary: Tensor,
    pair: Tensor,
    lengths: Tensor | None = None,
    *,
    method: str = "auto",
    pairwise: bool | Literal["sum"] = True,
) -> ChainMarginals:
    """Posterior marginals of every state and every pair of consecutive states.

    Parameters
    ----------
    unary, pair, lengths, method
        As in :func:`chain_log_partition`.
    pairwise : bool or "sum", default True
        Also return the pairwise marginals (a ``(..., T-1, K, K)`` tensor); ``"sum"`` returns
        them summed over steps, ``(..., K, K)`` (expected transition counts), without ever
        holding all steps in memory.

    Returns
    -------
    ChainMarginals
        ``log_z`` (...), ``unary`` (..., T, K) and ``pair`` (..., T-1, K, K) or None, as
        probabilities; zero at padded steps. Equal to the gradients of ``log Z`` with respect to
        ``unary`` and ``pair`` (a shared ``(K, K)`` pair gets the sum over steps), and themselves
        differentiable.

    Raises
    ------
    ZeroProbabilityEvidence
        If some sequence has no feasible path; the message names its batch index.

    Examples
    --------
    >>> import torch
    >>> m = chain_marginals(torch.zeros(3, 2), torch.zeros(2, 2))
    >>> m.unary.sum(-1), m.pair.shape
    (tensor([1., 1., 1.]), torch.Size([2, 2, 2]))
    """
    name = "chain_marginals"
    _check_method(method, name)
    c = _prepare(unary, pair, lengths, name)
    log_z, gamma, xi, _ = _posterior(c, method, pairwise, name)
    _B, T, K = c.unary.shape
    if xi is not None:
        xi = xi.reshape(*c.batch, K, K) if pairwise == "sum" else xi.reshape(*c.batch, T - 1, K, K)
    return ChainMarginals(log_z.reshape(c.batch), gamma.reshape(*c.batch, T, K), xi)


def chain_viterbi(
    unary: Tensor, pair: Tensor, lengths: Tensor | None = None, *, method: str = "auto"
) -> ChainPath:
    """Most probable state path (max-product) and its score.

    Parameters
    ----------
    unary, pair, lengths, method
        As in :func:`chain_log_partition`.

    Returns
    -------
    ChainPath
        ``score`` (...) = ``score(path)``; ``path`` LongTensor (..., T), ``-1`` at padded steps.
        Among tied best paths one is returned.

    Raises
    ------
    ZeroProbabilityEvidence
        If some sequence has no feasible path.

    Examples
    --------
    >>> import torch
    >>> unary = torch.log(torch.tensor([[0.6, 0.4], [0.1, 0.9]]))
    >>> chain_viterbi(unary, torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5]]))).path
    tensor([1, 1])
    """
    name = "chain_viterbi"
    _check_method(method, name)
    c = _prepare(unary, pair, lengths, name)
    m = _resolve(method, c, "max")
    B, T, K = c.unary.shape
    if method != "parallel" and T > 1 and chain_native.enabled(c.unary, c.pair):
        path, _, score = chain_native.viterbi(c.unary, c.pair, c.lengths)
        _raise_infeasible(score, c, name)
        return ChainPath(score.reshape(c.batch), path.reshape(*c.batch, T))
    if m == "sequential" and T > 1:
        hat, y_last = _viterbi_forward(c)
        _raise_infeasible(hat[-1].amax(-1), c, name)
        path = _mask_path(_viterbi_backtrack(c, hat, y_last), c)
        return ChainPath(_path_score(c, path).reshape(c.batch), path.reshape(*c.batch, T))
    hat, inc = _forward_messages(c, "max", m)
    best = inc.sum(-1)
    _raise_infeasible(best, c, name)
    last = _last_index(c)
    y_last = hat.gather(1, last[:, None, None].expand(B, 1, K))[:, 0].argmax(-1)  # (B,)
    if T == 1:
        path = y_last[:, None]
    else:
        # bp[b, t, j] = argmax_i hat[t, i] + pair[t, i, j]: the best predecessor of y_{t+1} = j
        bp = (hat[:, :-1, :, None] + _pair_steps(c.pair, T - 1)).argmax(-2)
        if c.valid is not None:
            ident = torch.arange(K, device=bp.device).expand_as(bp)
            bp = torch.where(c.valid[:, 1:, None], bp, ident)
        path = _follow(bp, y_last, m)
    path = _mask_path(path, c)
    return ChainPath(_path_score(c, path).reshape(c.batch), path.reshape(*c.batch, T))


def _viterbi_forward(c: _Chain) -> tuple[Tensor, Tensor]:
    """Max-product recursion, values only (T >= 2).

    Returns the normalised messages ``hat``, time first (T, B, K) for the backtrack's per-step
    reads, with the same values as :func:`_forward_messages` (padded steps carry the last real
    one), and each sequence's last state ``y_last`` (B,). The back-pointers are recomputed
    along the chosen path only, by :func:`_viterbi_backtrack`, so neither the (B, T-1, K, K)
    scores nor an argmax over them are needed.
    """
    u = c.unary
    T = u.shape[1]
    pt = c.pair.transpose(-1, -2)  # reduce over the last, contiguous dim
    if pt.shape[1] == 1:
        pt = pt.contiguous()
    h, _ = _normalise(u[:, 0], "max")
    hats = [h]
    for t in range(1, T):
        a = (h[:, None, :] + _pair_at(pt, t - 1)).amax(-1) + u[:, t]
        if c.valid is not None:
            a = torch.where(c.valid[:, t, None], a, h)
        h, _ = _normalise(a, "max")
        hats.append(h)
    return torch.stack(hats, 0), h.argmax(-1)


def _viterbi_backtrack(c: _Chain, hat: Tensor, y_last: Tensor) -> Tensor:
    """``y_t = argmax_i hat[t, i] + pair[t, i, y_{t+1}]`` back from ``y_last``: (B, T).

    ``hat`` is time first, (T, B, K), as :func:`_viterbi_forward` returns it. The same values
    and ties as an argmax over all (i, j) at once, evaluated at ``j = y_{t+1}`` only; padded
    steps keep ``y_{t+1}``.
    """
    T, B, _K = hat.shape
    pt = c.pair.transpose(-1, -2)
    if pt.shape[1] == 1:
        pt = pt.contiguous()  # rows of pt are the columns of pair: gathered per step
    rows = torch.arange(B, device=hat.device)
    y = y_last
    ys = [y]
    for t in range(T - 2, -1, -1):
        pr = _pair_at(pt, t)  # (Bp, K, K), [j, i]
        col = pr[0].index_select(0, y) if pr.shape[0] == 1 else pr[rows, y]  # pair[t, :, y_b]
        prev = (hat[t] + col).argmax(-1)
        if c.valid is not None:
            prev = torch.where(c.valid[:, t + 1], prev, y)
        y = prev
        ys.append(y)
    return torch.stack(ys[::-1], -1)


def _last_index(c: _Chain) -> Tensor:
    B, T, _ = c.unary.shape
    if c.lengths is None:
        return torch.full((B,), T - 1, dtype=torch.long, device=c.unary.device)
    return c.lengths - 1


def _follow(bp: Tensor, y_last: Tensor, method: str) -> Tensor:
    """Trace ``y_t = bp[t, y_{t+1}]`` back from ``y_{T-1} = y_last``.

    bp : (..., T-1, K) maps; y_last : (...). Returns (..., T). ``"parallel"`` composes the maps
    by a log-depth scan (pointer jumping) instead of a loop over time.
    """
    T = bp.shape[-2] + 1
    if method == "parallel":
        maps = bp.movedim(-2, 0).flip(0)  # f_{T-2}, ..., f_0
        # out[s] = f_{T-2-s} o ... o f_{T-2}: compose "later" maps on the right
        comp = _scan(maps, lambda a, b: torch.gather(b, -1, a)).flip(0)  # (T-1, ..., K)
        got = torch.gather(comp, -1, y_last[None, ..., None].expand(T - 1, *y_last.shape, 1))
        return torch.cat([got[..., 0].movedim(0, -1), y_last[..., None]], -1)
    ys = [y_last]
    y = y_last
    for t in range(T - 2, -1, -1):
        y = torch.gather(bp[..., t, :], -1, y[..., None])[..., 0]
        ys.append(y)
    return torch.stack(ys[::-1], -1)


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


def chain_kbest(
    unary: Tensor, pair: Tensor, k: int, lengths: Tensor | None = None
) -> ChainPath:
    """The ``k`` highest-scoring distinct paths (list Viterbi), best first.

    Parameters
    ----------
    unary, pair, lengths
        As in :func:`chain_log_partition`.
    k : int
        Number of paths, ``>= 1``.

    Returns
    -------
    ChainPath
        ``score`` (..., k) in decreasing order and ``path`` (..., k, T). If fewer than ``k``
        feasible paths exist, the extra scores are ``-inf`` and their paths ``-1``.

    Examples
    --------
    >>> import torch
    >>> unary = torch.log(torch.tensor([[0.6, 0.4], [0.3, 0.7]]))
    >>> top = chain_kbest(unary, torch.zeros(2, 2), 3)
    >>> top.path.tolist()
    [[0, 1], [1, 1], [0, 0]]
    """
    name = "chain_kbest"
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(f"{name}: k", "must be an int >= 1", found=repr(k))
    c = _prepare(unary, pair, lengths, name)
    u, p = c.unary, c.pair
    B, T, K = u.shape
    ninf = torch.full((), -math.inf, dtype=u.dtype, device=u.device)
    # delta[b, j, r]: r-th best score of a partial path ending in state j.
    delta = torch.full((B, K, k), -math.inf, dtype=u.dtype, device=u.device)
    delta[:, :, 0] = u[:, 0]
    back: list[Tensor] = []  # (B, K, k) flat indices i * k + r' of the predecessor
    for t in range(1, T):
        cand = delta[:, :, None, :] + _pair_at(p, t - 1)[:, :, :, None]  # (B, i, j, r')
        cand = cand.permute(0, 2, 1, 3).reshape(B, K, K * k)
        kk = min(k, K * k)
        top, arg = cand.topk(kk, dim=-1)
        if kk < k:
            top = torch.cat([top, ninf.expand(B, K, k - kk)], -1)
            arg = torch.cat([arg, arg.new_zeros(B, K, k - kk)], -1)
        new = top + u[:, t, :, None]
        if c.valid is not None:
            real = c.valid[:, t, None, None]
            new = torch.where(real, new, delta)
            ident = (torch.arange(K, device=u.device)[:, None] * k
                     + torch.arange(k, device=u.device)[None, :])
            arg = torch.where(real, arg, ident.expand(B, K, k))
        delta = new
        back.append(arg)
    flat = delta.reshape(B, K * k)
    kk = min(k, K * k)
    score, idx = flat.topk(kk, dim=-1)
    if kk < k:
        score = torch.cat([score, ninf.expand(B, k - kk)], -1)
        idx = torch.cat([idx, idx.new_zeros(B, k - kk)], -1)
    states = [idx // k]
    cur = idx  # (B, k) flat (j, r)
    for t in range(T - 1, 0, -1):
        cur = torch.gather(back[t - 1].reshape(B, K * k), -1, cur)
        states.append(cur // k)
    path = torch.stack(states[::-1], -1)  # (B, k, T)
    feasible = score > -math.inf
    path = torch.where(feasible[..., None], path, torch.full_like(path, -1))
    if c.valid is not None:
        path = torch.where(c.valid[:, None, :], path, torch.full_like(path, -1))
    return ChainPath(score.reshape(*c.batch, k), path.reshape(*c.batch, k, T))


def chain_sample(
    unary: Tensor,
    pair: Tensor,
    lengths: Tensor | None = None,
    *,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    method: str = "auto",
) -> Tensor:
    """Exact posterior draws of state paths (forward filtering, backward sampling).

    Parameters
    ----------
    unary, pair, lengths
        As in :func:`chain_log_partition`.
    num_samples : int, default 1
        Number of independent draws per sequence.
    generator : torch.Generator, optional
        Source of randomness (the global RNG if None).
    method : {"auto", "sequential", "parallel"}
        How the forward messages are computed and how the backward draws are chained (a loop
        over time, or a log-depth composition of per-step random maps).

    Returns
    -------
    LongTensor, shape (num_samples, ..., T)
        ``-1`` at padded steps.

    Raises
    ------
    ZeroProbabilityEvidence
        If some sequence has no feasible path.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> unary = torch.log(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
    >>> chain_sample(unary, torch.zeros(2, 2), num_samples=3, generator=make_generator(0))[:, 0]
    tensor([0, 0, 0])
    """
    name = "chain_sample"
    _check_method(method, name)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValidationError(
            f"{name}: num_samples", "must be an int >= 1", found=repr(num_samples)
        )
    c = _prepare(unary, pair, lengths, name)
    check_generator(generator, c.unary.device)
    m = _resolve(method, c, "log")
    B, T, K = c.unary.shape
    S = num_samples
    if m == "parallel" and S * B * T * K * K > _SCAN_BUDGET:
        m = "sequential"
    hat, inc = _forward_messages(c, "log", m)
    _raise_infeasible(inc.sum(-1), c, name)
    hat = hat.detach()
    last = _last_index(c)
    end = hat.gather(1, last[:, None, None].expand(B, 1, K))[:, 0]  # (B, K)
    y_last = (end + gumbel((S, B, K), end, generator)).argmax(-1)  # (S, B)
    if T == 1:
        path = y_last[..., None]
    else:
        logits = (hat[:, :-1, :, None] + _pair_steps(c.pair, T - 1).detach())  # (B,T-1,i,j)
        if m == "parallel":
            g = gumbel((S, B, T - 1, K, K), end, generator)
            maps = (logits + g).argmax(-2)  # (S, B, T-1, K): a draw of y_t for each y_{t+1}
            if c.valid is not None:
                ident = torch.arange(K, device=maps.device).expand_as(maps)
                maps = torch.where(c.valid[:, 1:, None], maps, ident)
            path = _follow(maps, y_last, "parallel")
        else:
            ys = [y_last]
            y = y_last
            lr = last
            for t in range(T - 2, -1, -1):
                col = torch.gather(
                    logits[:, t].expand(S, B, K, K), -1,
                    y[..., None, None].expand(S, B, K, 1),
                )[..., 0]  # (S, B, K) over y_t
                draw = (col + gumbel((S, B, K), col, generator)).argmax(-1)
                y = torch.where(t < lr, draw, y)
                ys.append(y)
            path = torch.stack(ys[::-1], -1)
    path = _mask_path(path, c)
    return path.reshape(S, *c.batch, T)


def chain_entropy(unary: Tensor, pair: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Entropy of the chain's distribution over paths, ``-sum_y p(y) log p(y)``.

    Computed as ``log Z - E[score(y)]`` from the marginals; differentiable.

    Parameters
    ----------
    unary, pair, lengths
        As in :func:`chain_log_partition`.

    Returns
    -------
    Tensor, shape (...)
        In nats.

    Raises
    ------
    ZeroProbabilityEvidence
        If some sequence has no feasible path.

    Examples
    --------
    >>> import torch
    >>> chain_entropy(torch.zeros(3, 2), torch.zeros(2, 2))   # uniform over 8 paths: log 8
    tensor(2.0794)
    """
    name = "chain_entropy"
    c = _prepare(unary, pair, lengths, name)
    log_z, gamma, xi, _ = _posterior(c, "auto", True, name)
    B, T, K = c.unary.shape
    eu = (gamma * torch.where(gamma > 0, c.unary, torch.zeros_like(c.unary))).sum((-2, -1))
    h = log_z - eu
    if T > 1:
        assert xi is not None
        pr = _pair_steps(c.pair, T - 1).expand(B, T - 1, K, K)
        ep = (xi * torch.where(xi > 0, pr, torch.zeros_like(pr))).sum((-3, -2, -1))
        h = h - ep
    return h.reshape(c.batch)
