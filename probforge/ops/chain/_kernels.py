"""The numba kernels of :mod:`probforge.ops.chain.native` (imported only when numba is).

They live at module level so that numba's disk cache finds them again in a new process: kernels
defined inside a function close over the dispatchers they call, and such closures are compiled
afresh in every process (seconds per kernel).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types

from probforge.ops._exp_kernel import exp_nonpositive_of


@numba.extending.intrinsic
def fmax(typingctx: Any, a: Any, b: Any) -> Any:  # pragma: no cover
    """``llvm.maxnum`` on two floats: unlike a compare-and-select, the loop vectoriser turns it
    into SIMD max instructions. Equal to ``max`` for non-NaN input."""
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


ZERO32 = np.float32(0.0)
ONE32 = np.float32(1.0)

# Sums may be reassociated (vectorised): every term is a finite non-negative number, so
# only rounding changes; no NaN/inf assumptions are made.
sums = {"reassoc", "contract"}

@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
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

@njit(parallel=True, cache=True, nogil=True)
def forward(
    E: Any, P: Any, lengths: Any, alphas: Any, cs: Any, store: bool
) -> None:  # pragma: no cover
    B = E.shape[0]
    Bp = P.shape[0]
    for b in prange(B):
        pb = b if Bp > 1 else b - b  # same integer type as the prange index
        forward_one(E[b], P[pb], lengths[b], alphas[b], cs[b], store)

@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def row_shift(u: Any) -> tuple[bool, Any]:  # pragma: no cover
    """``(valid, m)`` of a row of log-potentials: ``m`` its max in the row's dtype (0 if all
    are -inf); ``valid`` False where the row holds NaN or +inf (its sum is then NaN / +inf)."""
    m = u[0]
    chk = ZERO32  # float32 zeros: a float64 literal would promote a float32 row's arithmetic
    for j in range(u.shape[0]):
        m = fmax(m, u[j])
        chk += u[j]
    if not chk < np.inf:
        return False, m
    if m == -np.inf:
        m = ZERO32
    return True, m


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def matvec_rows(p: Any, PT: Any, c: Any) -> None:  # pragma: no cover
    """``c[j] = sum_i p[i] * PT[j, i]``: the message times the transition matrix, one dot
    product per state (for blocks too small for a BLAS product)."""
    for j in range(c.shape[0]):
        acc = ZERO32
        for i in range(p.shape[0]):
            acc += p[i] * PT[j, i]
        c[j] = acc


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def scale_into(c: Any, tot: Any, p: Any) -> None:  # pragma: no cover
    """``p = c / tot`` (the normalised message); a zero ``tot`` leaves ``p`` zero: the
    caller's check of the normalisers sends such chains to the log-space path."""
    inv = ONE32 / tot if tot > 0 else tot
    for j in range(c.shape[0]):
        p[j] = c[j] * inv


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def log_forward_block(
    U: Any, P: Any, PT: Any, lengths: Any, t0: int, b0: int, b1: int, prev: Any, cs: Any,
    ms: Any, use_dot: bool,
) -> None:  # pragma: no cover
    """Steps ``t0 .. t0 + Tc - 1`` of the scaled forward of sequences ``b0 .. b1 - 1``, from
    log-potentials: U (Tc, B, K) the chunk's unary, time-major (each step's rows of a block
    are adjacent in memory; batch-major rows ``T * K`` apart would meet in the same cache
    sets); P / PT (K, K) the shifted ``exp`` of the pair and its transpose; ``prev`` (B, K)
    the normalised messages, carried between chunks.

    Each step's unary is shifted by its max (into ``ms`` (T, B), 0 if all are -inf) and
    exponentiated here, so no table of exponentials is ever written; ``cs`` (T, B) gets the
    normalisers (1 at padded steps), NaN where a row holds NaN or +inf (the caller then takes
    the checked path, which names it). The arithmetic is in the dtype of U (float32 SIMD
    lanes are twice as many). ``use_dot``: one BLAS product for the whole block per step
    (large K), else a dot product per state."""
    Tc, K = U.shape[0], U.shape[2]
    S = b1 - b0
    pv = prev[b0:b1]
    cur = np.empty((S, K), dtype=prev.dtype)
    for tt in range(Tc):
        t = t0 + tt
        if t > 0 and use_dot:
            np.dot(pv, P, cur)
        for s in range(S):
            b = b0 + s
            if t >= lengths[b]:  # padding: carry the message, normaliser 1
                cs[t, b] = 1.0
                ms[t, b] = 0.0
                continue
            u = U[tt, b]
            c = cur[s]
            p = pv[s]
            valid, m = row_shift(u)
            if not valid:
                cs[t, b] = np.nan
                ms[t, b] = 0.0
                continue
            ms[t, b] = m
            if t == 0:
                for j in range(K):
                    c[j] = 1.0
            elif not use_dot:
                matvec_rows(p, PT, c)
            tot = ZERO32  # the normaliser, summed in the same pass as the products
            for j in range(K):
                v = c[j] * exp_nonpositive_of(u[j] - m)
                c[j] = v
                tot += v
            cs[t, b] = tot
            scale_into(c, tot, p)

@njit(parallel=True, cache=True, nogil=True)
def log_forward(
    U: Any, P: Any, lengths: Any, t0: int, prev: Any, cs: Any, ms: Any, n_blocks: int,
    use_dot: bool,
) -> None:  # pragma: no cover
    B = U.shape[1]
    PT = np.ascontiguousarray(P.T)
    for q in prange(n_blocks):
        log_forward_block(U, P, PT, lengths, t0, q * B // n_blocks, (q + 1) * B // n_blocks,
                          prev, cs, ms, use_dot)

@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def log_forward_indexed_block(
    E: Any, msym: Any, X: Any, U0: Any, P: Any, PT: Any, lengths: Any, b0: int, b1: int,
    prev: Any, cs: Any, ms: Any, use_dot: bool,
) -> None:  # pragma: no cover
    """The scaled forward of sequences ``b0 .. b1 - 1`` whose unary potentials are rows of a
    table: step ``t > 0`` of sequence ``b`` has ``table[X[t, b]]``, given here exponentiated
    as ``E = exp(table - msym[:, None])`` (M, K) with its row maxima ``msym`` (M,) (0 for
    rows all -inf), so the steps need neither a max nor an exp; ``U0`` (B, K) is step 0's
    unary in log space. X (T, B) holds the symbols (time-major; only real steps are read);
    the rest as in :func:`log_forward_block`."""
    T, K = X.shape[0], E.shape[1]
    S = b1 - b0
    pv = prev[b0:b1]
    cur = np.empty((S, K), dtype=prev.dtype)
    for t in range(T):
        if t > 0 and use_dot:
            np.dot(pv, P, cur)
        for s in range(S):
            b = b0 + s
            if t >= lengths[b]:  # padding: carry the message, normaliser 1
                cs[t, b] = 1.0
                ms[t, b] = 0.0
                continue
            c = cur[s]
            p = pv[s]
            tot = ZERO32  # the normaliser, summed in the same pass as the products
            if t == 0:
                u = U0[b]
                valid, m = row_shift(u)
                if not valid:
                    cs[t, b] = np.nan
                    ms[t, b] = 0.0
                    continue
                for j in range(K):
                    v = exp_nonpositive_of(u[j] - m)
                    c[j] = v
                    tot += v
                ms[t, b] = m
            else:
                if not use_dot:
                    matvec_rows(p, PT, c)
                e = E[X[t, b]]
                for j in range(K):
                    v = c[j] * e[j]
                    c[j] = v
                    tot += v
                ms[t, b] = msym[X[t, b]]
            cs[t, b] = tot
            scale_into(c, tot, p)

@njit(parallel=True, cache=True, nogil=True)
def log_forward_indexed(
    E: Any, msym: Any, X: Any, U0: Any, P: Any, lengths: Any, prev: Any, cs: Any, ms: Any,
    n_blocks: int, use_dot: bool,
) -> None:  # pragma: no cover
    B = X.shape[1]
    PT = np.ascontiguousarray(P.T)
    for q in prange(n_blocks):
        log_forward_indexed_block(E, msym, X, U0, P, PT, lengths, q * B // n_blocks,
                                  (q + 1) * B // n_blocks, prev, cs, ms, use_dot)

@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
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

@njit(parallel=True, cache=True, nogil=True)
def backward(
    E: Any, P: Any, cs: Any, lengths: Any, betas: Any, ws: Any
) -> None:  # pragma: no cover
    B = E.shape[0]
    Bp = P.shape[0]
    for b in prange(B):
        pb = b if Bp > 1 else b - b  # same integer type as the prange index
        backward_one(E[b], P[pb], cs[b], lengths[b], betas[b], ws[b])

@njit(cache=True, nogil=True, error_model="numpy", fastmath={"nnan"})
def max_plus_rows(d: Any, PT: Any, u: Any, o: Any) -> float:  # pragma: no cover
    """``o[j] = max_i (d[i] + PT[j, i]) + u[j]``; returns ``max_j o[j]``.

    Max-reductions over contiguous ``i``, four states ``j`` at a time (four independent
    chains share each load of ``d[i]`` and hide each other's latency); nnan (no NaN reaches
    these kernels; -inf is kept) lets LLVM vectorise them with SIMD max instructions."""
    K = d.shape[0]
    K4 = K - K % 4
    mx = -np.inf
    for j in range(0, K4, 4):
        r0 = PT[j]
        r1 = PT[j + 1]
        r2 = PT[j + 2]
        r3 = PT[j + 3]
        a0 = -np.inf
        a1 = -np.inf
        a2 = -np.inf
        a3 = -np.inf
        for i in range(K):
            di = d[i]
            a0 = fmax(a0, di + r0[i])
            a1 = fmax(a1, di + r1[i])
            a2 = fmax(a2, di + r2[i])
            a3 = fmax(a3, di + r3[i])
        v0 = a0 + u[j]
        v1 = a1 + u[j + 1]
        v2 = a2 + u[j + 2]
        v3 = a3 + u[j + 3]
        o[j] = v0
        o[j + 1] = v1
        o[j + 2] = v2
        o[j + 3] = v3
        mx = fmax(mx, fmax(fmax(v0, v1), fmax(v2, v3)))
    for j in range(K4, K):
        r = PT[j]
        acc = -np.inf
        for i in range(K):
            acc = fmax(acc, d[i] + r[i])
        v = acc + u[j]
        o[j] = v
        mx = fmax(mx, v)
    return mx


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"nnan"})
def first_argmax_plus(d: Any, r: Any) -> int:  # pragma: no cover
    """The first ``i`` maximising ``d[i] + r[i]``: a vectorised max, then a search for it (the
    same sums, so it is met exactly)."""
    best = -np.inf
    for i in range(d.shape[0]):
        best = fmax(best, d[i] + r[i])
    arg = 0
    while d[arg] + r[arg] != best:
        arg += 1
    return arg


@njit(cache=True, nogil=True, error_model="numpy")
def max_product_one(
    U: Any, P: Any, L: int, path: Any, delta: Any, by_rows: bool
) -> tuple[bool, float]:  # pragma: no cover
    """Viterbi of one sequence: U (T, K), P (Tp, K, K); fills path (T,); (feasible, score).

    ``delta`` (T, K) is the workspace for the normalised messages. ``by_rows``: max-reductions
    over the transposed pair (:func:`max_plus_rows`), else the loops below; the caller picks
    the faster (measured: by_rows in float64 at K >= 16, 1.4-2x, and in float32 at K < 32;
    float32's 8-wide horizontal reductions cost more at larger K)."""
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
        if by_rows:
            mx = max_plus_rows(delta[t - 1], PT, U[t], delta[t])
            if mx == ninf:
                return False, ninf
            for j in range(K):
                delta[t, j] -= mx
            continue
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
        if by_rows and Tp == 1:  # PT[y] holds the pair's column y
            arg = first_argmax_plus(delta[s - 1], PT[y])
        else:
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

@njit(parallel=True, cache=True, nogil=True)
def max_product(
    U: Any, P: Any, lengths: Any, path: Any, ok: Any, score: Any, delta: Any, by_rows: bool
) -> None:  # pragma: no cover
    B = U.shape[0]
    Bp = P.shape[0]
    for b in prange(B):
        pb = b if Bp > 1 else b - b  # same integer type as the prange index
        feasible, sc = max_product_one(U[b], P[pb], lengths[b], path[b], delta[b], by_rows)
        ok[b] = feasible
        score[b] = sc
