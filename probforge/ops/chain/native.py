"""Compiled CPU kernels for the chain core's sequential recursions (numba).

The chain recursions (:mod:`probforge.ops.chain`) are sequential in time: in torch each step is a
few tensor operations of a few microseconds of interpreter and dispatch overhead each, which
dominates for long sequences with few states (``T = 100,000``, ``K = 4``: ~1 s against ~2 ms of
arithmetic). These kernels run the same recursions as compiled loops over time, in parallel over
the sequences of a batch (numba ``prange``), on the tensors' memory (no copies for contiguous
CPU inputs):

- :func:`scaled_forward`: the probability-domain forward recursion with per-step normalisers,
  the filtering distributions ``alphas`` and normalisers ``cs``;
- :func:`scaled_backward`: the matching scaled backward recursion, ``betas`` and the pair weights
  ``ws`` (``alphas * betas`` are the posterior marginals, ``alphas[t, i] P[t, i, j] ws[t, j]`` the
  pairwise ones);
- :func:`viterbi`: the max-plus recursion with back-pointers and the backtrack.

They compute exactly what the torch recursions compute (same recursion, same normalisation, same
tie-breaking: the lowest state index among equal maxima) and are tested equal to them. The chain
core calls them for CPU tensors of float32/float64 when numba is installed and no autograd graph
is being built through the call; everything else (CUDA, other dtypes, double backward) takes the
torch path. Set ``PROBFORGE_NATIVE=0`` in the environment to disable them.

Compilation happens on first use (a few seconds per dtype) and is cached on disk by numba.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probforge.ops.native import available, enabled

__all__ = ["available", "enabled", "scaled_backward", "scaled_forward", "viterbi"]

@cache
def _kernels() -> dict[str, Any]:
    from probforge.ops.chain import _kernels as k

    return {"forward": k.forward, "backward": k.backward, "max_product": k.max_product}


def _empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """Uninitialised work or output memory from numpy, whose large blocks are advised as huge
    pages on Linux: a fresh (T, K) buffer then costs a few page faults instead of one per 4 KiB
    (which, on some virtual machines, cost as much as the recursion itself)."""
    return np.empty(shape, dtype=dtype)


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def _lengths(lengths: Tensor | None, B: int, T: int) -> np.ndarray:
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    return _np(lengths.to(torch.long))


def scaled_forward(
    E: Tensor, P: Tensor, lengths: Tensor | None, *, store: bool = True
) -> tuple[Tensor | None, Tensor]:
    """Scaled forward recursion in the probability domain.

    Parameters
    ----------
    E : Tensor, shape (B, T, K)
        ``exp`` of the unary log-potentials, each step shifted by its max.
    P : Tensor, shape (Bp, Tp, K, K)
        ``exp`` of the pair log-potentials, shifted; ``Bp`` in {1, B}, ``Tp`` in {1, T-1}.
    lengths : LongTensor, shape (B,), optional
        Real lengths; later steps are padding.
    store : bool, default True
        Keep every step's filtering distribution (False: only ``cs``, e.g. for ``log Z`` alone,
        saving a (B, T, K) write).

    Returns
    -------
    alphas : Tensor, shape (B, T, K), or None
        Filtering distributions (padded steps carry the last real one); None unless ``store``.
    cs : Tensor, shape (B, T)
        Per-step normalisers (1 at padded steps); ``log Z = sum log cs`` plus the shifts.

    Examples
    --------
    >>> import torch
    >>> a, c = scaled_forward(torch.ones(1, 3, 2, dtype=torch.float64),
    ...                       torch.ones(1, 1, 2, 2, dtype=torch.float64), None)
    >>> c
    tensor([[2., 2., 2.]], dtype=torch.float64)
    """
    B, T, K = E.shape
    e = _np(E)
    alphas = _empty((B, T if store else 1, K), e.dtype)
    cs = _empty((B, T), e.dtype)
    _kernels()["forward"](e, _np(P), _lengths(lengths, B, T), alphas, cs, store)
    return (torch.from_numpy(alphas) if store else None), torch.from_numpy(cs)


def scaled_backward(
    E: Tensor, P: Tensor, cs: Tensor, lengths: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Scaled backward recursion matching :func:`scaled_forward`.

    Parameters
    ----------
    E, P, lengths
        As in :func:`scaled_forward`.
    cs : Tensor, shape (B, T)
        The normalisers :func:`scaled_forward` returned.

    Returns
    -------
    betas : Tensor, shape (B, T, K)
        ``beta[t] = P[t] ws[t]``, 1 from the last real step on; ``alphas * betas`` are the
        posterior marginals.
    ws : Tensor, shape (B, T-1, K)
        ``ws[t] = E[t+1] * betas[t+1] / cs[t+1]`` (0 in padding); the pairwise marginals are
        ``alphas[t, i] * P[t, i, j] * ws[t, j]``.

    Examples
    --------
    >>> import torch
    >>> E, P = torch.ones(1, 3, 2, dtype=torch.float64), torch.ones(1, 1, 2, 2, dtype=torch.float64)
    >>> a, c = scaled_forward(E, P, None)
    >>> b, w = scaled_backward(E, P, c, None)
    >>> (a * b).sum(-1)
    tensor([[1., 1., 1.]], dtype=torch.float64)
    """
    B, T, K = E.shape
    e = _np(E)
    betas = _empty((B, T, K), e.dtype)
    ws = _empty((B, max(T - 1, 0), K), e.dtype)
    _kernels()["backward"](e, _np(P), _np(cs), _lengths(lengths, B, T), betas, ws)
    return torch.from_numpy(betas), torch.from_numpy(ws)


def viterbi(U: Tensor, P: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Max-product recursion and backtrack.

    Parameters
    ----------
    U : Tensor, shape (B, T, K)
        Unary log-potentials.
    P : Tensor, shape (Bp, Tp, K, K)
        Pair log-potentials; ``Bp`` in {1, B}, ``Tp`` in {1, T-1}.
    lengths : LongTensor, shape (B,), optional
        Real lengths; later steps are padding (never read).

    Returns
    -------
    path : LongTensor, shape (B, T)
        A best path; ``-1`` at padded steps and for infeasible sequences.
    feasible : BoolTensor, shape (B,)
        False where every path has score ``-inf``.
    score : Tensor, shape (B,)
        The path's score (sum of its unary and pair log-potentials); ``-inf`` where infeasible.

    Examples
    --------
    >>> import torch
    >>> U = torch.log(torch.tensor([[[0.6, 0.4], [0.1, 0.9]]]))
    >>> viterbi(U, torch.log(torch.tensor([[[[0.9, 0.1], [0.5, 0.5]]]])), None)[0]
    tensor([[1, 1]])
    """
    B, T, K = U.shape
    u = _np(U)
    path = torch.empty(B, T, dtype=torch.long)
    ok = torch.empty(B, dtype=torch.bool)
    score = torch.empty(B, dtype=torch.float64)
    delta = _empty((B, T, K), u.dtype)
    # measured crossovers (see max_product_one)
    by_rows = K >= 16 and (u.dtype == np.float64 or K < 32)
    _kernels()["max_product"](
        u, _np(P), _lengths(lengths, B, T), path.numpy(), ok.numpy(), score.numpy(), delta,
        by_rows,
    )
    return path, ok, score.to(U.dtype)
