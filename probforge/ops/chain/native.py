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

import os
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["available", "enabled", "scaled_backward", "scaled_forward", "viterbi"]

_DTYPES = (torch.float32, torch.float64)


@cache
def _numba() -> ModuleType | None:
    try:
        import numba
    except ImportError:  # optional: the torch path does everything, only slower
        return None
    return numba


def available() -> bool:
    """Whether numba can be imported (the kernels are compiled lazily on first use)."""
    return _numba() is not None


def enabled(*tensors: Tensor, autograd: bool = False) -> bool:
    """Whether the kernels apply to these tensors: CPU, float32/float64, numba on, no autograd.

    Parameters
    ----------
    *tensors : Tensor
        The inputs of the computation.
    autograd : bool, default False
        The caller differentiates the result itself (a ``torch.autograd.Function`` whose
        backward also runs here): inputs that require grad are then fine.

    Returns
    -------
    bool
    """
    if os.environ.get("PROBFORGE_NATIVE", "1") == "0" or not available():
        return False
    grad = torch.is_grad_enabled() and not autograd
    for x in tensors:
        if x.device.type != "cpu" or x.dtype not in _DTYPES or (grad and x.requires_grad):
            return False
    return True


@cache
def _kernels() -> dict[str, Any]:
    nb = _numba()
    assert nb is not None
    njit, prange = nb.njit, nb.prange

    # Sums may be reassociated (vectorised): every term is a finite non-negative number, so
    # only rounding changes; no NaN/inf assumptions are made.
    sums = {"reassoc", "contract"}
    fmax = _fmax_intrinsic(nb)

    @njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")  # type: ignore[untyped-decorator]
    def forward_one(
        E: Any, P: Any, L: int, alphas: Any, cs: Any, store: bool
    ) -> None:  # pragma: no cover
        """Scaled forward of one sequence: E (T, K), P (Tp, K, K); fills cs and, if store,
        alphas (T, K)."""
        T, K = E.shape
        Tp = P.shape[0]
        PT = np.empty((K, K), dtype=P.dtype)  # PT[j, i] = P[i, j]: sums over contiguous i
        prev = np.empty(K, dtype=alphas.dtype)  # local rows: no aliasing with the outputs
        cur = np.empty(K, dtype=alphas.dtype)
        loaded = -1
        s = 0.0
        for k in range(K):
            s += E[0, k]
        cs[0] = s
        for k in range(K):
            prev[k] = E[0, k] / s
            if store:
                alphas[0, k] = prev[k]
        for t in range(1, T):
            if t >= L:  # padding: carry the message, normaliser 1
                if store:
                    for k in range(K):
                        alphas[t, k] = prev[k]
                cs[t] = 1.0
                continue
            pt = t - 1 if Tp > 1 else 0
            if pt != loaded:
                for i in range(K):
                    for j in range(K):
                        PT[j, i] = P[pt, i, j]
                loaded = pt
            s = 0.0
            for j in range(K):
                acc = 0.0
                for i in range(K):
                    acc += prev[i] * PT[j, i]
                acc *= E[t, j]
                cur[j] = acc
                s += acc
            cs[t] = s
            for j in range(K):
                prev[j] = cur[j] / s
            if store:
                for j in range(K):
                    alphas[t, j] = prev[j]

    @njit(parallel=True, cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def forward(
        E: Any, P: Any, lengths: Any, alphas: Any, cs: Any, store: bool
    ) -> None:  # pragma: no cover
        B = E.shape[0]
        Bp = P.shape[0]
        for b in prange(B):
            pb = b if Bp > 1 else b - b  # same integer type as the prange index
            forward_one(E[b], P[pb], lengths[b], alphas[b], cs[b], store)

    @njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")  # type: ignore[untyped-decorator]
    def backward_one(
        E: Any, P: Any, cs: Any, L: int, betas: Any, ws: Any
    ) -> None:  # pragma: no cover
        """Scaled backward of one sequence; fills betas (T, K) and ws (T-1, K)."""
        T, K = E.shape
        Tp = P.shape[0]
        Pl = np.empty((K, K), dtype=P.dtype)
        w = np.empty(K, dtype=betas.dtype)  # local rows: no aliasing with the outputs
        nb = np.ones(K, dtype=betas.dtype)
        loaded = -1
        for k in range(K):
            betas[T - 1, k] = 1.0
        for t in range(T - 2, -1, -1):
            if t + 1 >= L:  # beta = 1 from the last real step on; no pair mass in padding
                for k in range(K):
                    ws[t, k] = 0.0
                    betas[t, k] = 1.0
                continue
            pt = t if Tp > 1 else 0
            if pt != loaded:
                for i in range(K):
                    for j in range(K):
                        Pl[i, j] = P[pt, i, j]
                loaded = pt
            c = cs[t + 1]
            for j in range(K):
                w[j] = E[t + 1, j] * nb[j] / c
                ws[t, j] = w[j]
            for i in range(K):
                acc = 0.0
                for j in range(K):
                    acc += Pl[i, j] * w[j]
                nb[i] = acc
                betas[t, i] = acc

    @njit(parallel=True, cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def backward(
        E: Any, P: Any, cs: Any, lengths: Any, betas: Any, ws: Any
    ) -> None:  # pragma: no cover
        B = E.shape[0]
        Bp = P.shape[0]
        for b in prange(B):
            pb = b if Bp > 1 else b - b  # same integer type as the prange index
            backward_one(E[b], P[pb], cs[b], lengths[b], betas[b], ws[b])

    @njit(cache=True, nogil=True, error_model="numpy")  # type: ignore[untyped-decorator]
    def max_product_one(
        U: Any, P: Any, L: int, path: Any, delta: Any
    ) -> tuple[bool, float]:  # pragma: no cover
        """Viterbi of one sequence: U (T, K), P (Tp, K, K); fills path (T,); (feasible, score).

        ``delta`` (T, K) is the workspace for the normalised messages."""
        T, K = U.shape
        Tp = P.shape[0]
        K4 = K - K % 4
        ninf = -np.inf
        for s in range(T):
            path[s] = -1
        # normalised messages of every step; the back-pointers are recomputed along the chosen
        # path only, so the forward sweep needs max values, not arg-maxima
        PT = np.empty((K, K), dtype=U.dtype)  # PT[j, i] = pair[i, j]: contiguous over i
        Pl = np.empty((K, K), dtype=U.dtype)  # pair[i, j], local (no aliasing with delta)
        cur = np.empty(K, dtype=U.dtype)
        loaded = -1
        mx = ninf
        for k in range(K):
            delta[0, k] = U[0, k]
            mx = delta[0, k] if delta[0, k] > mx else mx
        if mx == ninf:
            return False, ninf
        for k in range(K):
            delta[0, k] -= mx
        for t in range(1, L):
            pt = t - 1 if Tp > 1 else 0
            if pt != loaded:
                for i in range(K):
                    for j in range(K):
                        PT[j, i] = P[pt, i, j]
                        Pl[i, j] = P[pt, i, j]
                loaded = pt
            if K >= 16:
                # rows of the pair matrix into local maxima: llvm.maxnum vectorises over j
                # (no NaN can occur, so maxnum is the exact max)
                for j in range(K):
                    cur[j] = ninf
                for i in range(K):
                    di = delta[t - 1, i]
                    for j in range(K):
                        cur[j] = fmax(cur[j], di + Pl[i, j])
                for j in range(K):
                    delta[t, j] = cur[j] + U[t, j]
            # four states j at a time: four independent max chains per pass over i (the
            # compare-select latency, not the arithmetic, bounds a single chain)
            for j in range(0, K4 if K < 16 else 0, 4):
                b0 = ninf
                b1 = ninf
                b2 = ninf
                b3 = ninf
                for i in range(K):
                    di = delta[t - 1, i]
                    v0 = di + PT[j, i]
                    v1 = di + PT[j + 1, i]
                    v2 = di + PT[j + 2, i]
                    v3 = di + PT[j + 3, i]
                    b0 = v0 if v0 > b0 else b0
                    b1 = v1 if v1 > b1 else b1
                    b2 = v2 if v2 > b2 else b2
                    b3 = v3 if v3 > b3 else b3
                delta[t, j] = b0 + U[t, j]
                delta[t, j + 1] = b1 + U[t, j + 1]
                delta[t, j + 2] = b2 + U[t, j + 2]
                delta[t, j + 3] = b3 + U[t, j + 3]
            for j in range(K4 if K < 16 else K, K):
                best = ninf
                for i in range(K):
                    v = delta[t - 1, i] + PT[j, i]
                    best = v if v > best else best
                delta[t, j] = best + U[t, j]
            mx = ninf
            for j in range(K):
                mx = delta[t, j] if delta[t, j] > mx else mx
            if mx == ninf:
                return False, ninf
            for j in range(K):
                delta[t, j] -= mx
        # first maximum, as torch's argmax; the score is summed along the path
        y = 0
        for k in range(K):
            if delta[L - 1, k] > delta[L - 1, y]:
                y = k
        path[L - 1] = y
        score = 0.0 + U[L - 1, y]
        for s in range(L - 1, 0, -1):
            pt = s - 1 if Tp > 1 else 0
            best = ninf
            arg = 0
            for i in range(K):
                v = delta[s - 1, i] + P[pt, i, y]
                if v > best:
                    best = v
                    arg = i
            score += U[s - 1, arg] + P[pt, arg, y]
            y = arg
            path[s - 1] = y
        return True, score

    @njit(parallel=True, cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def max_product(
        U: Any, P: Any, lengths: Any, path: Any, ok: Any, score: Any, delta: Any
    ) -> None:  # pragma: no cover
        B = U.shape[0]
        Bp = P.shape[0]
        for b in prange(B):
            pb = b if Bp > 1 else b - b  # same integer type as the prange index
            feasible, sc = max_product_one(U[b], P[pb], lengths[b], path[b], delta[b])
            ok[b] = feasible
            score[b] = sc

    return {"forward": forward, "backward": backward, "max_product": max_product}


def _fmax_intrinsic(nb: ModuleType) -> Any:
    """``llvm.maxnum`` on two floats, as a numba intrinsic: unlike a compare-and-select, the
    loop vectoriser turns it into SIMD max instructions. Equal to ``max`` for non-NaN input."""
    from llvmlite import ir

    types = nb.types

    @nb.extending.intrinsic  # type: ignore[untyped-decorator]
    def fmax(typingctx: Any, a: Any, b: Any) -> Any:  # pragma: no cover
        if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
            return None
        ty = a if a == b else types.float64
        sig = ty(a, b)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            lty = context.get_value_type(ty)
            x = context.cast(builder, args[0], signature.args[0], ty)
            y = context.cast(builder, args[1], signature.args[1], ty)
            fnty = ir.FunctionType(lty, [lty, lty])
            fn = builder.module.declare_intrinsic("llvm.maxnum", [lty], fnty)
            return builder.call(fn, [x, y])

        return sig, codegen

    return fmax


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
    _kernels()["max_product"](
        u, _np(P), _lengths(lengths, B, T), path.numpy(), ok.numpy(), score.numpy(), delta
    )
    return path, ok, score.to(U.dtype)
