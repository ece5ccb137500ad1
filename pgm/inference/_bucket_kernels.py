"""The numba kernel of :mod:`pgm.inference._bucket_program` (imported only when numba is).

At module level so that numba's disk cache finds it again in a new process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

# Sums may be reassociated (vectorised): every term is finite and non-negative.
sums = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def run_buckets(
    values: Any, ev: Any, buckets: Any,
    nd_out: Any, o_cards: Any, n_blocks: Any, block: Any, red: Any, out_off: Any,
    out_size: Any, to_marg: Any, in_start: Any, in_count: Any,
    i_factor: Any, i_off: Any, i_ev: Any, ev_str: Any, i_ostr: Any, i_tab: Any,
    i_contig: Any, tab: Any, sp_first: Any, sp_n: Any, i_list: Any, sp_in: Any, sp_out: Any,
    msg: Any, marg: Any, tmp: Any, cur: Any, dig: Any,
) -> bool:  # pragma: no cover
    """The given buckets (children first) for one evidence row.

    Each bucket walks its clique in blocks of ``block[b]`` entries (its trailing variables): the
    block's product of every input (factor tables indexed by the evidence row, child messages)
    is formed in ``tmp`` through per-input index tables, and its sums over the trailing
    ``red[b]`` entries are the bucket's output (its message, or at a query tree's root the
    marginal), which is then divided by its total. A sparse bucket (``sp_first[b] >= 0``)
    instead forms only its ``sp_n[b]`` listed entries, each input read at its listed offset
    (``sp_in`` from ``i_list[i]``), and adds each into its listed output slot (``sp_out``).
    False when a total is zero."""
    for b in buckets:
        i0 = in_start[b]
        ni = in_count[b]
        for i in range(i0, i0 + ni):
            off = i_off[i]
            if i_factor[i]:
                k = i_ev[i]
                for j in range(ev.shape[0]):
                    off += ev[j] * ev_str[k, j]
            cur[i - i0] = off
        out = marg if to_marg[b] else msg
        o0 = out_off[b]
        osz = out_size[b]
        for s in range(o0, o0 + osz):
            out[s] = 0.0
        B = block[b]
        R = red[b]
        no = nd_out[b]
        for d in range(no):
            dig[d] = 0
        sp = sp_first[b]
        if sp >= 0:
            # sparse: the listed entries, a chunk at a time
            n_sp = sp_n[b]
            for e0 in range(0, n_sp, tmp.shape[0]):
                m = min(tmp.shape[0], n_sp - e0)
                for i in range(i0, i0 + ni):
                    src = values if i_factor[i] else msg
                    c = cur[i - i0]
                    li = i_list[i] + e0
                    if i == i0:
                        for q in range(m):
                            tmp[q] = src[c + sp_in[li + q]]
                    else:
                        for q in range(m):
                            tmp[q] *= src[c + sp_in[li + q]]
                # entries come sorted by slot: sum each run in a register
                so = sp + e0
                slot = sp_out[so]
                acc = 0.0
                for q in range(m):
                    o = sp_out[so + q]
                    if o != slot:
                        out[o0 + slot] += acc
                        acc = 0.0
                        slot = o
                    acc += tmp[q]
                out[o0 + slot] += acc
        for blk in range(0 if sp >= 0 else n_blocks[b]):  # dense: block by block
            if ni == 0:
                for j in range(B):
                    tmp[j] = 1.0
            for i in range(i0, i0 + ni):
                src = values if i_factor[i] else msg
                c = cur[i - i0]
                t = i_tab[i]
                if i == i0:
                    if i_contig[i]:
                        for j in range(B):
                            tmp[j] = src[c + j]
                    else:
                        for j in range(B):
                            tmp[j] = src[c + tab[t + j]]
                elif i_contig[i]:
                    for j in range(B):
                        tmp[j] *= src[c + j]
                else:
                    for j in range(B):
                        tmp[j] *= src[c + tab[t + j]]
            if not to_marg[b]:
                # the block is (x, rest): the message block sums the R slices of tmp
                inner = B // R
                w = o0 + blk * inner
                for j in range(inner):
                    out[w + j] = tmp[j]
                for xi in range(1, R):
                    s0 = xi * inner
                    for j in range(inner):
                        out[w + j] += tmp[s0 + j]
            elif R <= B:
                rows = B // R
                w = o0 + blk * rows
                for r in range(rows):
                    acc = 0.0
                    for j in range(r * R, r * R + R):
                        acc += tmp[j]
                    out[w + r] = acc
            else:
                acc = 0.0
                for j in range(B):
                    acc += tmp[j]
                out[o0 + (blk * B) // R] += acc
            # next block: the counter over the clique's leading variables
            d = no - 1
            while d >= 0:
                dig[d] += 1
                for i in range(i0, i0 + ni):
                    cur[i - i0] += i_ostr[i, d]
                if dig[d] < o_cards[b, d]:
                    break
                for i in range(i0, i0 + ni):
                    cur[i - i0] -= o_cards[b, d] * i_ostr[i, d]
                dig[d] = 0
                d -= 1
        tot = 0.0
        for s in range(o0, o0 + osz):
            tot += out[s]
        if not tot > 0.0:
            return False
        inv = 1.0 / tot
        for s in range(o0, o0 + osz):
            out[s] *= inv
    return True


@njit(parallel=True, cache=True, nogil=True)
def run_rows(
    values: Any, ev: Any, g_start: Any, g_buckets: Any,
    nd_out: Any, o_cards: Any, n_blocks: Any, block: Any, red: Any, out_off: Any,
    out_size: Any, to_marg: Any, in_start: Any, in_count: Any,
    i_factor: Any, i_off: Any, i_ev: Any, ev_str: Any, i_ostr: Any, i_tab: Any,
    i_contig: Any, tab: Any, sp_first: Any, sp_n: Any, i_list: Any, sp_in: Any, sp_out: Any,
    msgs: Any, max_block: int, max_in: int, max_nd: int, marg: Any, ok: Any,
) -> None:  # pragma: no cover
    """Every row's query trees: jobs (row, group of trees) spread over ``msgs.shape[0]``
    parallel tasks, each with its own message buffer (a row of ``msgs``);
    ``g_buckets[g_start[g]:g_start[g + 1]]`` are the buckets of group g (one group when there
    are rows enough to keep every thread busy)."""
    n = ev.shape[0]
    n_groups = g_start.shape[0] - 1
    n_tasks = msgs.shape[0]
    good = np.ones((n, n_groups), dtype=np.bool_)
    for w in prange(n_tasks):
        tmp = np.empty(max_block)
        cur = np.empty(max_in, dtype=np.int64)
        dig = np.empty(max_nd, dtype=np.int64)
        for job in range(w, n * n_groups, n_tasks):
            r = job // n_groups
            g = job - r * n_groups
            good[r, g] = run_buckets(
                values, ev[r], g_buckets[g_start[g]:g_start[g + 1]], nd_out, o_cards,
                n_blocks, block, red, out_off, out_size, to_marg, in_start, in_count,
                i_factor, i_off, i_ev, ev_str, i_ostr, i_tab, i_contig, tab, sp_first, sp_n,
                i_list, sp_in, sp_out, msgs[w], marg[r], tmp, cur, dig)
    for r in range(n):
        ok[r] = True
        for g in range(n_groups):
            if not good[r, g]:
                ok[r] = False
