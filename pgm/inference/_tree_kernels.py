"""The numba kernels of :mod:`pgm.inference._native_tree` (imported only when numba is).

At module level so that numba's disk cache finds them again in a new process (kernels defined
inside a function close over the dispatchers they call and are recompiled in every process).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

# Sums may be reassociated (vectorised): every term is finite and non-negative.
sums = {"reassoc", "contract"}

#: gather modes
MULTIPLY, ASSIGN, FROM_BASE = 0, 1, 2


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def gather(beta: Any, b0: int, size: int, nd: int, cards: Any, strides: Any, ioff: int,
           idx_table: Any, src: Any, s0: int, mode: int, base: Any, base0: int,
           dig: Any) -> None:  # pragma: no cover
    """Over the clique's entries e, with x = src[s0 + idx(e)]: beta[b0 + e] *= x (MULTIPLY),
    = x (ASSIGN) or = base[base0 + e] * x (FROM_BASE); idx(e) read from idx_table[ioff:] when
    ioff >= 0, else counted."""
    if ioff >= 0:
        # views at the offsets: plain indices in the loops, without an offset addition and a
        # wraparound test per read (the bucket program's fused pass: 2.5x)
        bv = beta[b0:b0 + size]
        it = idx_table[ioff:ioff + size]
        sv = src[s0:]
        if mode == ASSIGN:
            for e in range(size):
                bv[e] = sv[it[e]]
        elif mode == MULTIPLY:
            for e in range(size):
                bv[e] *= sv[it[e]]
        else:
            gv = base[base0:base0 + size]
            for e in range(size):
                bv[e] = gv[e] * sv[it[e]]
        return
    inner = cards[nd - 1]
    st = strides[nd - 1]
    for d in range(nd):
        dig[d] = 0
    idx = s0
    e = b0
    q = base0 - b0  # base index = beta index + q
    stop = b0 + size
    while e < stop:
        bv = beta[e:e + inner]
        if st == 0:
            x = src[idx]
            if mode == ASSIGN:
                for j in range(inner):
                    bv[j] = x
            elif mode == MULTIPLY:
                for j in range(inner):
                    bv[j] *= x
            else:
                gv = base[q + e:q + e + inner]
                for j in range(inner):
                    bv[j] = gv[j] * x
        else:
            sv = src[idx:]
            if mode == ASSIGN:
                for j in range(inner):
                    bv[j] = sv[j * st]
            elif mode == MULTIPLY:
                for j in range(inner):
                    bv[j] *= sv[j * st]
            else:
                gv = base[q + e:q + e + inner]
                for j in range(inner):
                    bv[j] = gv[j] * sv[j * st]
        e += inner
        d = nd - 2
        while d >= 0:
            dig[d] += 1
            idx += strides[d]
            if dig[d] < cards[d]:
                break
            idx -= cards[d] * strides[d]
            dig[d] = 0
            d -= 1

@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def scatter(beta: Any, b0: int, size: int, nd: int, cards: Any, strides: Any, ioff: int,
            idx_table: Any, dst: Any, d0: int, dig: Any) -> None:  # pragma: no cover
    """dst[d0 + idx(e)] += beta[b0 + e] over the clique's entries e (idx as in gather).

    The counter is written out here and in gather on purpose: moved into a shared inline helper
    it doubled the time of large cliques (water: 31 -> 60 ms per calibration)."""
    if ioff >= 0:
        bv = beta[b0:b0 + size]
        it = idx_table[ioff:ioff + size]
        dv = dst[d0:]
        for e in range(size):
            dv[it[e]] += bv[e]
        return
    inner = cards[nd - 1]
    st = strides[nd - 1]
    for d in range(nd):
        dig[d] = 0
    idx = d0
    e = b0
    stop = b0 + size
    while e < stop:
        bv = beta[e:e + inner]
        if st == 0:
            acc = 0.0
            for j in range(inner):
                acc += bv[j]
            dst[idx] += acc
        else:
            dv = dst[idx:]
            for j in range(inner):
                dv[j * st] += bv[j]
        e += inner
        d = nd - 2
        while d >= 0:
            dig[d] += 1
            idx += strides[d]
            if dig[d] < cards[d]:
                break
            idx -= cards[d] * strides[d]
            dig[d] = 0
            d -= 1

@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def normalise(out: Any) -> bool:  # pragma: no cover
    """Divide ``out`` by its total; False (and ``out`` left) when the total is zero."""
    tot = out.sum()
    if not tot > 0.0:
        return False
    out *= 1.0 / tot
    return True


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def potentials(
    beta: Any, values: Any, f_off: Any, f_walk: Any, f_first: Any, ev_str: Any, ev: Any,
    has_factor: Any, w_clique: Any, w_nd: Any, w_cards: Any, w_strides: Any, w_ioff: Any,
    w_idx: Any, c_off: Any, c_size: Any, skip: Any, dig: Any,
) -> None:  # pragma: no cover
    """Each clique's product of its factors (evidence-indexed) into beta, but for skip[c]."""
    empty = np.empty(0)
    for c in range(c_off.shape[0]):
        if not has_factor[c] and not skip[c]:
            for e in range(c_off[c], c_off[c] + c_size[c]):
                beta[e] = 1.0
    for k in range(f_off.shape[0]):
        w = f_walk[k]
        c = w_clique[w]
        if skip[c]:
            continue
        off = f_off[k]
        for j in range(ev.shape[0]):
            off += ev[j] * ev_str[k, j]
        gather(beta, c_off[c], c_size[c], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
               w_idx, values, off, ASSIGN if f_first[k] else MULTIPLY, empty, 0, dig)


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def calibrate_one(
    values: Any, f_off: Any, f_walk: Any, f_first: Any, ev_str: Any, ev: Any,
    has_factor: Any, soft: Any, s_off: Any, s_walk: Any,
    order: Any, parent: Any, kind: Any, up_in: Any, up_par: Any, m_off: Any, m_size: Any,
    msg_size: int, max_sep: int, out_off: Any, out_walk: Any, out_card: Any,
    w_clique: Any, w_nd: Any, w_cards: Any, w_strides: Any, w_ioff: Any, w_idx: Any,
    c_off: Any, c_size: Any, b_off: Any, base: Any,
    log_norm: float, beta: Any, marg: Any,
) -> float:  # pragma: no cover
    """One evidence row: fills beta (calibrated cliques) and marg; returns log p(e).

    A clique with ``b_off[c] >= 0`` has a fixed table ``base[b_off[c]:]`` that no message
    changes before the downward pass (its own potential, all its children barren): it is
    written once, by the downward pass, as base times the parent's message."""
    dig = np.empty(w_cards.shape[1], dtype=np.int64)
    msg = np.empty(msg_size)
    tmp = np.empty(max_sep)
    n = order.shape[0]
    potentials(beta, values, f_off, f_walk, f_first, ev_str, ev, has_factor, w_clique, w_nd,
               w_cards, w_strides, w_ioff, w_idx, c_off, c_size, b_off >= 0, dig)
    for j in range(s_off.shape[0]):
        w = s_walk[j]
        c = w_clique[w]
        gather(beta, c_off[c], c_size[c], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
               w_idx, soft, s_off[j], MULTIPLY, base, 0, dig)
    log_z = log_norm
    # upward: children before parents
    for i in range(n - 1, 0, -1):
        c = order[i]
        if kind[c] == 1:  # a barren subtree: the message is exactly one
            continue
        o = m_off[c]
        for s in range(o, o + m_size[c]):
            msg[s] = 0.0
        w = up_in[c]
        scatter(beta, c_off[c], c_size[c], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
                w_idx, msg, o, dig)
        tot = 0.0
        for s in range(o, o + m_size[c]):
            tot += msg[s]
        if not tot > 0.0:
            return -np.inf
        if kind[c] == 0:  # else the barren sum above needs the exact message
            inv = 1.0 / tot
            for s in range(o, o + m_size[c]):
                msg[s] *= inv
            log_z += np.log(tot)
        w = up_par[c]
        p = parent[c]
        gather(beta, c_off[p], c_size[p], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
               w_idx, msg, o, MULTIPLY, base, 0, dig)
    r = order[0]
    tot = 0.0
    for e in range(c_off[r], c_off[r] + c_size[r]):
        tot += beta[e]
    if not tot > 0.0:
        return -np.inf
    log_z += np.log(tot)
    # downward: parents before children; child *= (parent's separator marginal) / upward
    for i in range(1, n):
        c = order[i]
        p = parent[c]
        o = m_off[c]
        size = m_size[c]
        for s in range(size):
            tmp[s] = 0.0
        w = up_par[c]
        scatter(beta, c_off[p], c_size[p], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
                w_idx, tmp, 0, dig)
        tot = 0.0
        for s in range(size):
            tot += tmp[s]
        inv = 1.0 / tot
        if kind[c] == 1:
            for s in range(size):
                tmp[s] *= inv
        else:
            for s in range(size):
                u = msg[o + s]
                tmp[s] = tmp[s] * inv / u if u > 0.0 else 0.0
        w = up_in[c]
        if b_off[c] >= 0:
            gather(beta, c_off[c], c_size[c], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
                   w_idx, tmp, 0, FROM_BASE, base, b_off[c], dig)
        else:
            gather(beta, c_off[c], c_size[c], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
                   w_idx, tmp, 0, MULTIPLY, base, 0, dig)
    for v in range(out_off.shape[0]):
        o = out_off[v]
        for s in range(o, o + out_card[v]):
            marg[s] = 0.0
        w = out_walk[v]
        c = w_clique[w]
        scatter(beta, c_off[c], c_size[c], w_nd[w], w_cards[w], w_strides[w], w_ioff[w],
                w_idx, marg, o, dig)
        normalise(marg[o:o + out_card[v]])
    return float(log_z)

@njit(parallel=True, cache=True, nogil=True)
def calibrate(
    values: Any, f_off: Any, f_walk: Any, f_first: Any, ev_str: Any, ev: Any,
    has_factor: Any, soft: Any, s_off: Any, s_walk: Any,
    order: Any, parent: Any, kind: Any, up_in: Any, up_par: Any, m_off: Any, m_size: Any,
    msg_size: int, max_sep: int, out_off: Any, out_walk: Any, out_card: Any,
    w_clique: Any, w_nd: Any, w_cards: Any, w_strides: Any, w_ioff: Any, w_idx: Any,
    c_off: Any, c_size: Any, b_off: Any, base: Any,
    size: int, log_norm: float, marg: Any, log_z: Any, beliefs: Any,
    store: bool,
) -> None:  # pragma: no cover
    n = ev.shape[0]
    n_soft = soft.shape[0]
    for r in prange(n):
        beta = beliefs[r] if store else np.empty(size)
        srow = soft[r] if n_soft > 1 else soft[0]
        log_z[r] = calibrate_one(
            values, f_off, f_walk, f_first, ev_str, ev[r], has_factor, srow, s_off,
            s_walk, order, parent, kind, up_in, up_par, m_off, m_size, msg_size, max_sep,
            out_off, out_walk, out_card, w_clique, w_nd, w_cards, w_strides, w_ioff, w_idx, c_off,
            c_size, b_off, base, log_norm, beta, marg[r])
