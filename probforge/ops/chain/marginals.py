"""Posterior marginals (unary and pairwise) and the entropy of a chain."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from probforge.errors import ValidationError
from probforge.ops.chain import native as chain_native
from probforge.ops.chain._base import (
    _SCAN_BUDGET,
    ChainMarginals,
    _Chain,
    _check_method,
    _mask_steps,
    _normalise,
    _pair_steps,
    _prepare,
    _raise_infeasible,
    _resolve,
)
from probforge.ops.chain.messages import (
    _backward_messages,
    _forward_messages,
)
from probforge.ops.chain.partition import (
    _scaled_backward,
    _scaled_forward,
)

__all__ = ["chain_entropy", "chain_marginals"]


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
    if not (isinstance(pairwise, bool) or pairwise == "sum"):
        raise ValidationError(f"{name}: pairwise", "must be True, False or 'sum'",
                              found=repr(pairwise))
    c = _prepare(unary, pair, lengths, name)
    log_z, gamma, xi, _ = _posterior(c, method, pairwise, name)
    _B, T, K = c.unary.shape
    if xi is not None:
        xi = xi.reshape(*c.batch, K, K) if pairwise == "sum" else xi.reshape(*c.batch, T - 1, K, K)
    return ChainMarginals(log_z.reshape(c.batch), gamma.reshape(*c.batch, T, K), xi)


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
