"""Best paths of a chain: Viterbi (max-product) and the k best paths."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from probforge.errors import MemoryBudgetExceeded
from probforge.ops.chain import native as chain_native
from probforge.ops.chain._base import (
    ChainPath,
    _Chain,
    _check_method,
    _last_index,
    _mask_path,
    _normalise,
    _pair_at,
    _pair_steps,
    _path_score,
    _prepare,
    _raise_infeasible,
    _resolve,
)
from probforge.ops.chain.messages import (
    _forward_messages,
    _scan,
)
from probforge.validate import check_int

__all__ = ["KBEST_MEMORY_BUDGET", "chain_kbest", "chain_viterbi"]

#: Largest tables (bytes) :func:`chain_kbest` forms; a larger ``k`` raises MemoryBudgetExceeded.
KBEST_MEMORY_BUDGET = 2**32


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
    k = check_int(k, f"{name}: k", minimum=1)
    c = _prepare(unary, pair, lengths, name)
    u, p = c.unary, c.pair
    B, T, K = u.shape
    # The candidates (B, K, K k) and the back-pointers (T, B, K, k) grow with k: refuse a k
    # whose tables could not be allocated before torch fails with a raw allocation error.
    need = B * K * k * (K * (u.element_size() + 8) + T * 8)
    if need > KBEST_MEMORY_BUDGET:
        raise MemoryBudgetExceeded(
            f"{name}: k", f"{k} best paths need about {need / 2**30:.3g} GiB of tables "
            f"(budget {KBEST_MEMORY_BUDGET / 2**30:.3g} GiB)", found=k,
            fix="ask for fewer paths, or decode fewer or shorter sequences at a time")
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
