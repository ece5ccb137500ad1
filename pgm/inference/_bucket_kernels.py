"""The numba kernel of :mod:`pgm.inference._bucket_program` (imported only when numba is).

At module level so that numba's disk cache finds it again in a new process.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from pgm.inference._tree_kernels import normalise

# Sums may be reassociated (vectorised): every term is finite and non-negative.
sums = {"reassoc", "contract"}


class Arrays(NamedTuple):
    """A compiled program's arrays (see :class:`pgm.inference._bucket_program.BucketProgram`):
    factor values; per bucket its block walk, output and sparse entry lists, and where it is a
    split's matrix products their spec (batch, left, right and contracted sizes, sparse or
    not, first and number of listed entries; all zero otherwise); per listed entry of sparse
    products the left message's offset, the output row, the right message's row; per input
    its source, offsets and index table."""

    values: Any
    nd_out: Any
    o_cards: Any
    n_blocks: Any
    block: Any
    red: Any
    out_off: Any
    out_size: Any
    to_marg: Any
    prod_spec: Any
    prod_left: Any
    prod_out: Any
    prod_right: Any
    in_start: Any
    in_count: Any
    i_factor: Any
    i_off: Any
    i_ev: Any
    ev_str: Any
    i_ostr: Any
    i_tab: Any
    i_contig: Any
    tab: Any
    sp_first: Any
    sp_n: Any
    sp_seq: Any
    i_list: Any
    sp_in: Any
    sp_out: Any
    sp_small: Any
    sp_in16: Any
    sp_out16: Any
    sp_mid: Any


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def run_buckets(
    a: Arrays, ev: Any, buckets: Any, msg: Any, marg: Any, tmp: Any, cur: Any, dig: Any,
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
        i0 = a.in_start[b]
        ni = a.in_count[b]
        input_offsets(cur, i0, ni, a.i_off, a.i_factor, a.i_ev, a.ev_str, ev)
        out = marg if a.to_marg[b] else msg
        o0 = a.out_off[b]
        osz = a.out_size[b]
        out[o0:o0 + osz] = 0.0
        B = a.block[b]
        R = a.red[b]
        no = a.nd_out[b]
        for d in range(no):
            dig[d] = 0
        sp = a.sp_first[b]
        if sp >= 0:
            # sparse: the listed entries in one fused pass for up to four inputs (each entry's
            # product straight into a register sum over its run of equal slots), else a chunk
            # at a time
            n_sp = a.sp_n[b]
            if 1 <= ni <= 4:
                s0 = a.values if a.i_factor[i0] else msg
                s1 = a.values if ni < 2 or a.i_factor[i0 + 1] else msg
                s2 = a.values if ni < 3 or a.i_factor[i0 + 2] else msg
                s3 = a.values if ni < 4 or a.i_factor[i0 + 3] else msg
                if a.sp_small[b]:  # (a second compiled version, for uint16 offsets)
                    fused_entries(ni, a.sp_seq[b], s0, s1, s2, s3, cur, a.sp_in16,
                                  a.i_list[i0:i0 + ni], a.sp_out16, sp, 0, n_sp, out, o0)
                else:
                    fused_entries(ni, a.sp_seq[b], s0, s1, s2, s3, cur, a.sp_in,
                                  a.i_list[i0:i0 + ni], a.sp_out, sp, 0, n_sp, out, o0)
            else:
                for e0 in range(0, n_sp, tmp.shape[0]):
                    m = min(tmp.shape[0], n_sp - e0)
                    for i in range(i0, i0 + ni):
                        src = a.values[cur[i - i0]:] if a.i_factor[i] else msg[cur[i - i0]:]
                        idx = a.sp_in[a.i_list[i] + e0:a.i_list[i] + e0 + m]
                        if i == i0:
                            for q in range(m):
                                tmp[q] = src[idx[q]]
                        else:
                            for q in range(m):
                                tmp[q] *= src[idx[q]]
                    slots = a.sp_out[sp + e0:sp + e0 + m]
                    dst = out[o0:]
                    for q in range(m):
                        dst[slots[q]] += tmp[q]
        ps = a.prod_spec[b]
        if ps[0] > 0:  # a split's matrix products: its two inputs are the sides
            if ps[4]:
                e0, e1 = ps[5], ps[5] + ps[6]
                sparse_products(msg, cur[0], cur[1], out, o0, ps[2], a.prod_left[e0:e1],
                                a.prod_out[e0:e1], a.prod_right[e0:e1])
            else:
                matrix_products(msg, cur[0], cur[1], out, o0, ps[0], ps[1], ps[2], ps[3])
        for blk in range(0 if sp >= 0 else a.n_blocks[b]):  # dense: a.block by a.block
            if ni == 0:
                for j in range(B):
                    tmp[j] = 1.0
            for i in range(i0, i0 + ni):
                # views at the offsets: plain indices inside the loops (see fused_entries)
                src = a.values[cur[i - i0]:] if a.i_factor[i] else msg[cur[i - i0]:]
                idx = a.tab[a.i_tab[i]:a.i_tab[i] + B]
                if i == i0:
                    if a.i_contig[i]:
                        for j in range(B):
                            tmp[j] = src[j]
                    else:
                        for j in range(B):
                            tmp[j] = src[idx[j]]
                elif a.i_contig[i]:
                    for j in range(B):
                        tmp[j] *= src[j]
                else:
                    for j in range(B):
                        tmp[j] *= src[idx[j]]
            if not a.to_marg[b]:
                # the a.block is (x, rest): the message a.block sums the R slices of tmp
                inner = B // R
                dst = out[o0 + blk * inner:o0 + blk * inner + inner]
                if inner < 8:
                    # few slots, many slices each: summed down the column (a view per slice
                    # cost barley's protein query 14 ns per entry where its message has 8)
                    for j in range(inner):
                        acc = 0.0
                        for xi in range(R):
                            acc += tmp[xi * inner + j]
                        dst[j] = acc
                else:
                    for j in range(inner):
                        dst[j] = tmp[j]
                    for xi in range(1, R):
                        part = tmp[xi * inner:xi * inner + inner]
                        for j in range(inner):
                            dst[j] += part[j]
            elif R <= B:
                rows = B // R
                dst = out[o0 + blk * rows:o0 + blk * rows + rows]
                for r in range(rows):
                    dst[r] = tmp[r * R:r * R + R].sum()
            else:
                acc = 0.0
                for j in range(B):
                    acc += tmp[j]
                out[o0 + (blk * B) // R] += acc
            # next a.block: the counter over the clique's leading variables
            d = no - 1
            while d >= 0:
                dig[d] += 1
                for i in range(i0, i0 + ni):
                    cur[i - i0] += a.i_ostr[i, d]
                if dig[d] < a.o_cards[b, d]:
                    break
                for i in range(i0, i0 + ni):
                    cur[i - i0] -= a.o_cards[b, d] * a.i_ostr[i, d]
                dig[d] = 0
                d -= 1
        if not normalise(out[o0:o0 + osz]):
            return False
    return True


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def matrix_products(msg: Any, left: int, right: int, out: Any, o0: int, nb: int, fl: int,
                    fr: int, nc: int) -> None:  # pragma: no cover
    """``out[o0:]`` as (nb, fl, fr) = the sum over c of ``msg[left:]`` as (nb, fl, nc) times
    ``msg[right:]`` as (nb, fr, nc): per batch a matrix times a transposed one, each entry a
    dot product over contiguous memory."""
    lm = msg[left:]
    rm = msg[right:]
    dst = out[o0:]
    for bb in range(nb):
        for i in range(fl):
            row = lm[(bb * fl + i) * nc:(bb * fl + i + 1) * nc]
            for j in range(fr):
                col = rm[(bb * fr + j) * nc:(bb * fr + j + 1) * nc]
                acc = 0.0
                for k in range(nc):
                    acc += row[k] * col[k]
                dst[(bb * fl + i) * fr + j] = acc


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def sparse_products(msg: Any, left: int, right: int, out: Any, o0: int, fr: int, q: Any,
                    orow: Any, rrow: Any) -> None:  # pragma: no cover
    """The sparse form of :func:`matrix_products` (``out[o0:]`` already zeroed): each listed
    nonzero entry ``q[e]`` of the left message scales the right message's row at ``rrow[e]``
    (laid out as (batch, contracted, right)) into the output row at ``orow[e]``."""
    lm = msg[left:]
    rm = msg[right:]
    dst = out[o0:]
    n = q.shape[0]
    e = 0
    while e < n:
        o = orow[e]
        row = dst[o:o + fr]
        if e + 3 < n and orow[e + 3] == o:
            # four entries of one output row (they come sorted by row): the row is read and
            # written once for the four (a row of 112: 22 -> 14 ns per entry)
            v0, v1, v2, v3 = lm[q[e]], lm[q[e + 1]], lm[q[e + 2]], lm[q[e + 3]]
            s0 = rm[rrow[e]:rrow[e] + fr]
            s1 = rm[rrow[e + 1]:rrow[e + 1] + fr]
            s2 = rm[rrow[e + 2]:rrow[e + 2] + fr]
            s3 = rm[rrow[e + 3]:rrow[e + 3] + fr]
            for j in range(fr):
                row[j] += v0 * s0[j] + v1 * s1[j] + v2 * s2[j] + v3 * s3[j]
            e += 4
        else:
            v = lm[q[e]]
            src = rm[rrow[e]:rrow[e] + fr]
            for j in range(fr):
                row[j] += v * src[j]
            e += 1


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def input_offsets(cur: Any, i0: int, ni: int, i_off: Any, i_factor: Any, i_ev: Any,
                  ev_str: Any, ev: Any) -> None:  # pragma: no cover
    """cur[i - i0]: where input i of a bucket starts (a factor table's at the row's
    evidence)."""
    for i in range(i0, i0 + ni):
        off = i_off[i]
        if i_factor[i]:
            for j in range(ev.shape[0]):
                off += ev[j] * ev_str[i_ev[i], j]
        cur[i - i0] = off


@njit(cache=True, nogil=True, fastmath=sums, error_model="numpy")
def fused_entries(
    ni: int, seq: bool, s0: Any, s1: Any, s2: Any, s3: Any, cur: Any, sp_in: Any,
    lists: Any, sp_out: Any, first: int, e0: int, n: int, out: Any, o0: int,
) -> None:  # pragma: no cover
    """A sparse bucket's listed entries e0..e0+n-1 with ``ni`` (1-4) inputs: entry q reads
    input i at ``cur[i] + sp_in[lists[i] + q]`` (input 0 at ``cur[0] + q`` when ``seq``: a
    folded table, stored in entry order) and adds the product into ``out[o0 + sp_out[first +
    q]]``. The slots come sorted, so each run of equal slots is summed in a register (an add
    into memory per entry would wait on the one before)."""
    if n == 0:
        return
    first += e0
    lists = lists + e0
    # views starting at each offset: plain indices let the compiler drop the checks and
    # additions that offsets would need on every read (2.5x on water's largest bucket)
    a0 = s0[cur[0] + e0:] if seq else s0[cur[0]:]
    v0 = sp_in[lists[0]:lists[0] + n]
    k = min(1, ni - 1)
    a1 = s1[cur[k]:]
    v1 = sp_in[lists[k]:lists[k] + n]
    k = min(2, ni - 1)
    a2 = s2[cur[k]:]
    v2 = sp_in[lists[k]:lists[k] + n]
    k = min(3, ni - 1)
    a3 = s3[cur[k]:]
    v3 = sp_in[lists[k]:lists[k] + n]
    slots = sp_out[first:first + n]
    dst = out[o0:]
    slot = slots[0]
    acc = 0.0
    # one loop per case (a test inside the loop keeps it from being scheduled well)
    if seq and ni == 1:
        for q in range(n):
            v = a0[q]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    elif seq and ni == 2:
        for q in range(n):
            v = a0[q] * a1[v1[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    elif seq and ni == 3:
        for q in range(n):
            v = a0[q] * a1[v1[q]] * a2[v2[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    elif seq:
        for q in range(n):
            v = a0[q] * a1[v1[q]] * a2[v2[q]] * a3[v3[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    elif ni == 1:
        for q in range(n):
            v = a0[v0[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    elif ni == 2:
        for q in range(n):
            v = a0[v0[q]] * a1[v1[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    elif ni == 3:
        for q in range(n):
            v = a0[v0[q]] * a1[v1[q]] * a2[v2[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    else:
        for q in range(n):
            v = a0[v0[q]] * a1[v1[q]] * a2[v2[q]] * a3[v3[q]]
            if slots[q] != slot:
                dst[slot] += acc
                acc = 0.0
                slot = slots[q]
            acc += v
    dst[slot] += acc


@njit(parallel=True, cache=True, nogil=True)
def run_rows(
    a: Arrays, ev: Any, g_start: Any, g_buckets: Any, msgs: Any, max_block: int, max_in: int,
    max_nd: int, marg: Any, ok: Any,
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
            good[r, g] = run_buckets(a, ev[r], g_buckets[g_start[g]:g_start[g + 1]], msgs[w],
                                      marg[r], tmp, cur, dig)
    for r in range(n):
        ok[r] = True
        for g in range(n_groups):
            if not good[r, g]:
                ok[r] = False


@njit(parallel=True, cache=True, nogil=True)
def run_split(
    a: Arrays, ev: Any, buckets: Any, msg: Any, max_block: int, max_in: int, max_nd: int,
    marg: Any,
) -> bool:  # pragma: no cover
    """One evidence row's buckets (children first) on two threads, where groups of query trees
    would share too many buckets: a sparse bucket with a split point (``sp_mid[b] > 0``, a
    change of slot, so the halves write apart) runs its two halves in parallel, runs of other
    buckets go through :func:`run_buckets` on this thread. False when a total is zero."""
    tmp = np.empty(max_block)
    cur = np.empty(max_in, dtype=np.int64)
    dig = np.empty(max_nd, dtype=np.int64)
    i = 0
    while i < buckets.shape[0]:
        b = buckets[i]
        if a.sp_mid[b] == 0:
            j = i
            while j < buckets.shape[0] and a.sp_mid[buckets[j]] == 0:
                j += 1
            if not run_buckets(a, ev, buckets[i:j], msg, marg, tmp, cur, dig):
                return False
            i = j
            continue
        # run_buckets' bucket opening, written out: as an njit helper it slowed every bucket,
        # called (munin1 without evidence 0.46 -> 0.68 ms) or inlined (0.30 -> 0.36 ms)
        i0 = a.in_start[b]
        ni = a.in_count[b]
        input_offsets(cur, i0, ni, a.i_off, a.i_factor, a.i_ev, a.ev_str, ev)
        out = marg if a.to_marg[b] else msg
        o0 = a.out_off[b]
        osz = a.out_size[b]
        out[o0:o0 + osz] = 0.0
        if a.prod_spec[b, 4]:  # a sparse split's products, in two halves of their rows
            ps = a.prod_spec[b]
            mid, fr, e_first, n_b = a.sp_mid[b], ps[2], ps[5], ps[6]
            q, orow, rrow = a.prod_left, a.prod_out, a.prod_right
            left, right = cur[0], cur[1]
            for half in prange(2):
                e0 = e_first if half == 0 else e_first + mid
                e1 = e_first + mid if half == 0 else e_first + n_b
                sparse_products(msg, left, right, out, o0, fr, q[e0:e1], orow[e0:e1],
                                rrow[e0:e1])
            if not normalise(out[o0:o0 + osz]):
                return False
            i += 1
            continue
        s0 = a.values if a.i_factor[i0] else msg
        s1 = a.values if ni < 2 or a.i_factor[i0 + 1] else msg
        s2 = a.values if ni < 3 or a.i_factor[i0 + 2] else msg
        s3 = a.values if ni < 4 or a.i_factor[i0 + 3] else msg
        # read-only locals for the parallel loop (fields of ``a`` read inside it draw a
        # spurious race warning)
        mid, n_b, seq, first = a.sp_mid[b], a.sp_n[b], a.sp_seq[b], a.sp_first[b]
        lists = a.i_list[i0:i0 + ni]
        small = a.sp_small[b]
        sp_in, sp_out, sp_in16, sp_out16 = a.sp_in, a.sp_out, a.sp_in16, a.sp_out16
        for half in prange(2):
            e0 = 0 if half == 0 else mid
            e1 = mid if half == 0 else n_b
            if small:
                fused_entries(ni, seq, s0, s1, s2, s3, cur, sp_in16, lists, sp_out16, first, e0,
                              e1 - e0, out, o0)
            else:
                fused_entries(ni, seq, s0, s1, s2, s3, cur, sp_in, lists, sp_out, first, e0,
                              e1 - e0, out, o0)
        if not normalise(out[o0:o0 + osz]):
            return False
        i += 1
    return True
