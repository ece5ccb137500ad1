"""Exact posterior draws of state paths: forward filtering, backward sampling."""

from __future__ import annotations

import torch
from torch import Tensor

from probforge.ops.chain._base import (
    _SCAN_BUDGET,
    _check_method,
    _last_index,
    _mask_path,
    _pair_steps,
    _prepare,
    _raise_infeasible,
    _resolve,
)
from probforge.ops.chain.decode import (
    _follow,
)
from probforge.ops.chain.messages import (
    _forward_messages,
)
from probforge.ops.random import check_generator
from probforge.ops.semiring import gumbel
from probforge.validate import check_int

__all__ = ["chain_sample"]


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
    num_samples = check_int(num_samples, f"{name}: num_samples", minimum=1)
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
