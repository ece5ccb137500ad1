"""Forward and backward messages: the sequential recursion and the log-depth scan.

Both methods return normalised messages (each step shifted to ``reduce = 0``) and the per-step
shifts, in the log or max semiring; :func:`chain_forward` and :func:`chain_backward` expose them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from probforge.errors import ValidationError
from probforge.ops.chain._base import (
    _MAXPLUS_CHUNK,
    _Chain,
    _check_method,
    _floor,
    _mask_steps,
    _normalise,
    _pair_at,
    _pair_full,
    _pair_steps,
    _prepare,
    _reduce,
    _resolve,
)
from probforge.ops.special import logmatmulexp

__all__ = ["chain_backward", "chain_forward"]


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
    if not isinstance(normalized, bool):
        raise ValidationError(f"{name}: normalized", "must be a bool", found=repr(normalized))
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
