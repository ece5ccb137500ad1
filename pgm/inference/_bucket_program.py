"""Query trees of buckets as one compiled program: each bucket's product and sum in one pass.

A bucket of variable elimination multiplies every table that holds the variables it eliminates
over the bucket's clique and sums them out. Written as separate passes (potential, then each
further factor and message multiplied in, then the sum), every pass streams the whole clique
table through memory. Here the clique is never stored. A *dense* bucket is walked in blocks of
its trailing variables (a few hundred entries, kept in L1): each block's product of all inputs
is formed through per-input index tables (a plain unit-stride read where the input is
contiguous over the block), and summed over the eliminated variables (moved to the head of the
block) straight into the message. A *sparse* bucket (:mod:`pgm.inference._bucket_support`:
most of its product is a structural zero) lists its nonzero entries at build time: per input
the offset each entry reads, and the slot it adds into; the entries run in one fused pass
(products summed in a register over each run of equal slots), the tables that no evidence
indexes folded into one stored product per entry. A message between two sparse buckets holds
only its nonzero entries. A query tree's root sums all but the query variable (its first) into
the marginal.

Messages and marginals are divided by their totals (probability space, factor tables each
divided by their largest entry), so long chains do not underflow; a total of zero marks the
evidence row as failed and the caller answers it in log space, which tells zero-probability
evidence from underflow. Buckets shared by several query trees run once
(:mod:`pgm.inference._bucket_plan`). Evidence rows run in parallel; a single row runs groups of
query trees in parallel, or, where the groups would share most of their buckets, its large
sparse buckets in two halves.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference._query_forest import QueryForest
>>> qf = QueryForest(bundled_network("asia"), [], ["lung"])
>>> m = qf.run({})
>>> round(float(m["lung"][0]), 4)
0.055
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from pgm.factor import Factor
from pgm.inference._bucket_plan import BucketPlan
from pgm.inference._bucket_support import message_support
from pgm.inference._flat_tree import variable_strides, walk_offsets

if TYPE_CHECKING:
    from pgm.inference._query_forest import _QueryTree

__all__ = ["BucketProgram"]

#: A bucket's block is its shortest run of trailing variables with at least this many entries
#: (or the whole clique): long enough that the per-block work (a counter step per input) is
#: small, short enough that the block's product stays in L1.
MIN_BLOCK = 256
#: A sparse bucket's listed entries are formed this many at a time (the products stay in L1).
SPARSE_CHUNK = 512
#: On one evidence row, a sparse bucket of at least this many entries (and up to four inputs)
#: runs in two halves on two threads, where splitting the query trees among threads would
#: share too many buckets (mildew without evidence: 1.6 -> 1.2 ms).
SPLIT_ENTRIES = 16384
#: A sparse bucket (of up to four inputs) whose offsets and slots are all below this keeps them
#: as uint16: half the bytes streamed per entry (mildew without evidence 1.27 -> 0.99 ms,
#: munin1 with 5 evidence variables 7.8 -> 5.3 ms, single-threaded).
SMALL_OFFSETS = 2**16
#: A sparse bucket folds a single table that no evidence indexes into a stored product per
#: entry (read in order) when it has more entries than this (its random reads would leave L1).
FOLD_ENTRIES = 4096


class BucketProgram:
    """The compiled form of a list of query trees (built once, run for every evidence matrix).

    Parameters
    ----------
    trees : list of _QueryTree
        Buckets (clique variables, parent, factors assigned, root), children before parents;
        a root's first variable is its query, every other bucket's last variable is the one it
        sums out.
    factors : list of Factor
        The model's factors (full scopes, evidence variables included), indexed by the trees.
    cards : dict str -> int
    evidence_vars : sequence of str
        Hard-evidence variables, in the column order of the evidence matrix given to
        :meth:`run`.
    supports : list of (list of bool arrays, or None), optional
        Per tree, where each bucket's product can be nonzero
        (:func:`pgm.inference._bucket_support.bucket_supports`); None walks the whole clique.
    plan : BucketPlan, optional
        The trees' distinct buckets, as planned for these supports (made here if not given).
    """

    def __init__(self, trees: Sequence[_QueryTree], factors: Sequence[Factor],
                 cards: Mapping[str, int], evidence_vars: Sequence[str],
                 supports: Sequence[Sequence[np.ndarray] | None] | None = None,
                 plan: BucketPlan | None = None) -> None:
        if plan is None:
            plan = BucketPlan(trees, [None if supports is None or s is None
                                      else [int(np.count_nonzero(a)) for a in s]
                                      for s in (supports or [None] * len(trees))])
        self.plan = plan
        ev_col = {v: j for j, v in enumerate(evidence_vars)}
        self.n_ev = len(ev_col)
        used = sorted({k for t in trees for k, _ in t.factors})
        self.values, self.ev_str, f_off, f_strides = _factor_tables(
            [factors[k] for k in used], cards, ev_col)
        f_row = {k: row for row, k in enumerate(used)}
        f_size = np.diff([*f_off, self.values.size]).tolist()
        # rows of ev_str: one per factor, and a last one of zeros for folded tables
        self.ev_str = np.vstack([self.ev_str[:len(used)],
                                 np.zeros((1, self.ev_str.shape[1]), dtype=np.int64)])
        folded: list[np.ndarray] = []

        nd_out: list[int] = []
        o_cards: list[list[int]] = []
        n_blocks: list[int] = []
        block: list[int] = []
        red: list[int] = []
        out_off: list[int] = []
        out_size: list[int] = []
        to_marg: list[bool] = []
        in_start: list[int] = []
        in_count: list[int] = []
        i_factor: list[bool] = []
        i_off: list[int] = []
        i_ev: list[int] = []
        i_ostr: list[list[int]] = []
        i_tab: list[int] = []
        i_contig: list[bool] = []
        tabs: list[np.ndarray] = []
        prod_spec: list[tuple[int, ...]] = []
        prod_left: list[np.ndarray] = []
        prod_out: list[np.ndarray] = []
        prod_right: list[np.ndarray] = []
        prod_n = 0
        sp_first: list[int] = []
        sp_n: list[int] = []
        sp_mid: list[int] = []
        sp_seq: list[bool] = []
        i_list: list[int] = []
        sp_in: list[np.ndarray] = []
        sp_out: list[np.ndarray] = []
        sp_in_n = sp_out_n = sp16_in_n = sp16_out_n = 0
        sp_small: list[bool] = []
        sp_in16: list[np.ndarray] = []
        sp_out16: list[np.ndarray] = []
        tab_pos = msg_pos = marg_pos = 0
        self.marginal_vars: list[str] = []
        self.marginal_cards: list[int] = []
        for ti, b in plan.first:
            t = trees[ti]
            support = supports[ti] if supports is not None else None
            sparse, compact, gid = plan.sparse[ti], plan.compact[ti], plan.gid[ti]
            root = b == t.root
            clique = t.cliques[b]
            if sparse[b]:
                nb_dims, bsize = len(clique), t.sizes[b]
            else:
                clique, nb_dims, bsize = _block_layout(clique, root, cards, t.n_sum[b])
            cs = [cards[v] for v in clique]
            size = math.prod(cs)
            # the entries summed into each output slot (x's states; at a root, all but the
            # query's); a dense bucket's x heads its block
            r = size // cs[0] if root else math.prod(
                cards[v] for v in t.cliques[b][len(t.cliques[b]) - t.n_sum[b]:])
            lead = len(cs) - nb_dims
            nd_out.append(lead)
            o_cards.append(cs[:lead])
            block.append(bsize)
            # a split's matrix products (its two children are the sides) walk no blocks
            found = t.split[b]
            n_blocks.append(size // bsize if found is None else 0)
            mid = 0  # (where a sparse split's products divide between two threads)
            if found is None:
                prod_spec.append((0, 0, 0, 0, 0, 0, 0))
            elif not found.sparse:
                prod_spec.append((*found.dims(cards), 0, 0, 0))
            else:
                assert support is not None
                dims = found.dims(cards)
                left = t.children[b][0]
                rows = _product_rows(support[left], t.n_sum[left], dims, compact[left])
                prod_spec.append((*dims, 1, prod_n, rows[0].size))
                for part, lst in zip(rows, (prod_left, prod_out, prod_right), strict=True):
                    lst.append(part)
                prod_n += rows[0].size
                mid = _split_point(rows[1], SPLIT_ENTRIES // dims[2])
            red.append(r)
            m_rank = _ranks(support, b, t.n_sum[b]) if compact[b] else None
            n_out = size // r if m_rank is None else int(m_rank[-1]) + 1
            out_size.append(n_out)
            to_marg.append(root)
            if root:
                out_off.append(marg_pos)
                marg_pos += n_out
                self.marginal_vars.append(t.query)
                self.marginal_cards.append(cs[0])
            else:
                out_off.append(msg_pos)
                msg_pos += n_out
            in_start.append(len(i_off))
            inputs: list[tuple[bool, int, int, dict[str, int], np.ndarray | None]] = []
            for k in t.assigned[b]:
                row = f_row[k]
                inputs.append((True, f_off[row], row, f_strides[row], None))
            for c in t.children[b]:
                st = variable_strides(t.message_vars(c), cards)
                inputs.append((False, out_off[gid[c]], 0, st,
                               _ranks(support, c, t.n_sum[c]) if compact[c] else None))
            if sparse[b]:
                assert support is not None
                lists, into = _sparse_entries(
                    support[b], clique, [(st, rk) for _, _, _, st, rk in inputs],
                    None if root else variable_strides(t.message_vars(b), cards), m_rank)
                folded_at = self.values.size + sum(a.size for a in folded)
                inputs, lists = _fold_constants(inputs, lists, self.values, f_size,
                                                self.ev_str, folded, folded_at)
                small = 1 <= len(inputs) <= 4 and max(
                    int(a.max(initial=0)) for a in (into, *lists)) < SMALL_OFFSETS
                sp_small.append(small)
                sp_n.append(into.size)
                sp_mid.append(_split_point(into) if 1 <= len(inputs) <= 4 else 0)
                sp_seq.append(inputs[0][2] == self.ev_str.shape[0] - 1)
                if small:
                    sp_first.append(sp16_out_n)
                    sp_out16.append(into.astype(np.uint16))
                    sp16_out_n += into.size
                else:
                    sp_first.append(sp_out_n)
                    sp_out.append(into)
                    sp_out_n += into.size
            else:
                sp_first.append(-1)
                sp_n.append(0)
                sp_mid.append(mid)
                sp_seq.append(False)
                sp_small.append(False)
            in_count.append(len(inputs))
            for j, (is_f, off, row, st, _) in enumerate(inputs):
                i_factor.append(is_f)
                i_off.append(off)
                i_ev.append(row)
                if sparse[b]:
                    if sp_small[-1]:
                        i_list.append(sp16_in_n)
                        sp_in16.append(lists[j].astype(np.uint16))
                        sp16_in_n += lists[j].size
                    else:
                        i_list.append(sp_in_n)
                        sp_in.append(lists[j])
                        sp_in_n += lists[j].size
                    i_ostr.append([])
                    i_tab.append(0)
                    i_contig.append(False)
                    continue
                strides = [st.get(v, 0) for v in clique]
                idx = walk_offsets(cs[lead:], strides[lead:])
                i_list.append(0)
                i_ostr.append(strides[:lead])
                i_tab.append(tab_pos)
                i_contig.append(bool((idx == np.arange(bsize)).all()))
                tabs.append(idx.astype(np.int32))
                tab_pos += bsize
        self.msg_size = max(msg_pos, 1)
        self.out_size = marg_pos
        d = max((len(c) for c in o_cards), default=0)
        self.max_nd = max(d, 1)
        self.o_cards = np.ones((len(o_cards), self.max_nd), dtype=np.int64)
        for b, oc in enumerate(o_cards):
            self.o_cards[b, :len(oc)] = oc
        self.i_ostr = np.zeros((max(len(i_ostr), 1), self.max_nd), dtype=np.int64)
        for i, ost in enumerate(i_ostr):
            self.i_ostr[i, :len(ost)] = ost

        def as64(x: Sequence[int]) -> np.ndarray:
            return np.asarray(x, dtype=np.int64)

        self.nd_out, self.n_blocks, self.block, self.red = (
            as64(nd_out), as64(n_blocks), as64(block), as64(red))
        self.out_off, self.out_size_b = as64(out_off), as64(out_size)
        self.to_marg = np.asarray(to_marg, dtype=np.bool_)
        self.prod_spec = np.asarray(prod_spec, dtype=np.int64).reshape(len(prod_spec), 7)
        self.prod_left, self.prod_out, self.prod_right = (
            np.concatenate(x) if x else np.zeros(1, dtype=np.int32)
            for x in (prod_left, prod_out, prod_right))
        self.in_start, self.in_count = as64(in_start), as64(in_count)
        self.i_factor = np.asarray(i_factor or [False], dtype=np.bool_)
        self.i_off, self.i_ev, self.i_tab = as64(i_off or [0]), as64(i_ev or [0]), as64(
            i_tab or [0])
        self.i_contig = np.asarray(i_contig or [False], dtype=np.bool_)
        self.tab = np.concatenate(tabs) if tabs else np.zeros(1, dtype=np.int32)
        self.values = np.concatenate([self.values, *folded])
        self.sp_first, self.sp_n = as64(sp_first or [-1]), as64(sp_n or [0])
        self.sp_mid = as64(sp_mid or [0])
        self.sp_seq = np.asarray(sp_seq or [False], dtype=np.bool_)
        self.i_list = as64(i_list or [0])

        def cat32(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(1, dtype=np.int32)

        self.sp_in, self.sp_out = cat32(sp_in), cat32(sp_out)
        self.sp_small = np.asarray(sp_small or [False], dtype=np.bool_)
        self.sp_in16 = np.concatenate(sp_in16) if sp_in16 else np.zeros(1, dtype=np.uint16)
        self.sp_out16 = np.concatenate(sp_out16) if sp_out16 else np.zeros(1, dtype=np.uint16)
        self._lock = threading.Lock()
        self._packed: Any = None
        self._msgs = np.empty((0, self.msg_size))
        self.sparse_entries = sp_out_n + sp16_out_n
        self.max_block = max(int(max(block, default=1)), SPARSE_CHUNK)
        self.max_in = int(max(in_count, default=1)) or 1

    def _arrays(self) -> Any:
        """The kernels' arrays as one named tuple (built on first use)."""
        if self._packed is None:
            from pgm.inference._bucket_kernels import Arrays

            per_bucket = {"out_size": self.out_size_b}  # (self.out_size is the total)
            self._packed = Arrays(**{f: per_bucket.get(f, getattr(self, f, None))
                                     for f in Arrays._fields})
        return self._packed

    def run(self, evidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run every query tree for every evidence row.

        Parameters
        ----------
        evidence : int64 array, shape (N, n_evidence_vars)

        Returns
        -------
        marginals : float64 array, shape (N, out_size)
            Normalised posteriors, blocks in ``marginal_vars`` order.
        ok : bool array, shape (N,)
            False where some total came out zero (zero-probability evidence or underflow).
        """
        from numba import get_num_threads

        n = evidence.shape[0]
        ev = np.ascontiguousarray(evidence, dtype=np.int64).reshape(n, self.n_ev)
        threads = get_num_threads()
        g_start, g_buckets = self.plan.groups(1) if n >= threads else self.plan.split(threads)
        marg = np.empty((n, max(self.out_size, 1)))
        ok = np.empty(n, dtype=np.bool_)
        tasks = min(n * (len(g_start) - 1), threads)
        # the message buffers are kept between calls, unless another thread is running this
        # program
        mine = self._lock.acquire(blocking=False)
        try:
            if not mine or self._msgs.shape[0] < tasks:
                msgs = np.empty((tasks, self.msg_size))
                if mine:
                    self._msgs = msgs
            else:
                msgs = self._msgs
            arrays = self._arrays()
            if n == 1 and threads > 1 and len(g_start) == 2 and self.sp_mid.any():
                ok[0] = _kernels()["run_split"](arrays, ev[0], g_buckets, msgs[0],
                                                self.max_block, self.max_in, self.max_nd,
                                                marg[0])
            else:
                _kernels()["run_rows"](arrays, ev, g_start, g_buckets, msgs[:tasks],
                                       self.max_block, self.max_in, self.max_nd, marg, ok)
        finally:
            if mine:
                self._lock.release()
        return marg[:, :self.out_size], ok


def _factor_tables(factors: Sequence[Factor], cards: Mapping[str, int],
                   ev_col: Mapping[str, int]
                   ) -> tuple[np.ndarray, np.ndarray, list[int], list[dict[str, int]]]:
    """The factors' tables in probability space, each divided by its largest entry, end to
    end; per factor its evidence strides (one row per factor, one column per evidence
    variable), its offset, and its variables' strides."""
    parts: list[np.ndarray] = []
    ev_str = np.zeros((max(len(factors), 1), max(len(ev_col), 1)), dtype=np.int64)
    offsets: list[int] = []
    strides: list[dict[str, int]] = []
    pos = 0
    for row, f in enumerate(factors):
        lv = f.log_values.detach().to("cpu").double().numpy().reshape(-1)
        m = float(lv.max()) if lv.size else -math.inf
        parts.append(np.exp(lv - m) if math.isfinite(m) else np.zeros(lv.size))
        st = variable_strides(f.variables, cards)
        for v, s in st.items():
            if v in ev_col:
                ev_str[row, ev_col[v]] = s
        offsets.append(pos)
        strides.append(st)
        pos += lv.size
    return (np.concatenate(parts) if parts else np.zeros(1)), ev_str, offsets, strides


def _ranks(support: Sequence[np.ndarray] | None, b: int, n_sum: int) -> np.ndarray:
    """A compact message's slot for each of its dense offsets (the rank among its nonzero
    entries): bucket ``b``'s support or-ed over its ``n_sum`` summed-out trailing variables."""
    assert support is not None
    return np.cumsum(message_support(support[b], n_sum).reshape(-1)) - 1


def _product_rows(support: np.ndarray, n_sum: int, dims: tuple[int, int, int, int],
                  compact: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sparse split's products, given the support of its left side's bucket: per nonzero
    entry of the left message, its offset there (its rank where the message is compact), the
    output row it adds into and the right message's row it scales (int32 each)."""
    nb, fl, fr, nc = dims
    q = np.flatnonzero(message_support(support, n_sum))
    bb, i, c = np.unravel_index(q, (nb, fl, nc))
    if compact:  # the message holds those entries alone, in this order
        q = np.arange(q.size)
    return (q.astype(np.int32), ((bb * fl + i) * fr).astype(np.int32),
            ((bb * nc + c) * fr).astype(np.int32))


def _split_point(slots: np.ndarray, least: int | None = None) -> int:
    """Where a sparse bucket's entries split into two halves that add into different slots
    (the first change of slot from the middle on), or 0 if it has fewer than ``least``
    (default :data:`SPLIT_ENTRIES`)."""
    if slots.size < (SPLIT_ENTRIES if least is None else least) or slots.size < 2:
        return 0
    change = np.flatnonzero(slots[slots.size // 2:] != slots[slots.size // 2 - 1:-1])
    return int(slots.size // 2 + change[0]) if change.size else 0


def _fold_constants(
    inputs: list[tuple[bool, int, int, dict[str, int], np.ndarray | None]],
    lists: list[np.ndarray], values: np.ndarray, f_size: Sequence[int], ev_str: np.ndarray,
    folded: list[np.ndarray], at: int,
) -> tuple[list[tuple[bool, int, int, dict[str, int], np.ndarray | None]], list[np.ndarray]]:
    """A sparse bucket's tables that no evidence indexes, folded into one: their product at
    each listed entry, stored (appended to ``folded``, at ``at`` in the values) and read as
    one table in entry order, when that replaces two or more reads, or a read from a table
    too large for the cache (mildew's CPTs of 2e5-3e5 entries)."""
    free = ev_str.shape[0] - 1  # the row of zeros
    const = [j for j, (is_f, _, row, _, _) in enumerate(inputs)
             if is_f and row != free and not ev_str[row].any()]
    if not const or (len(const) == 1 and f_size[inputs[const[0]][2]] <= FOLD_ENTRIES):
        return inputs, lists
    n = lists[0].size
    product = np.ones(n)
    for j in const:
        product *= values[inputs[j][1] + lists[j]]
    folded.append(product)
    keep = [j for j in range(len(inputs)) if j not in const]
    # first: the kernel reads input 0 of a bucket with a folded table in entry order
    return ([(True, at, free, {}, None)] + [inputs[j] for j in keep],
            [np.arange(n, dtype=np.int32)] + [lists[j] for j in keep])


def _sparse_entries(support: np.ndarray, clique: Sequence[str],
                    inputs: Sequence[tuple[Mapping[str, int], np.ndarray | None]],
                    out_strides: Mapping[str, int] | None, out_rank: np.ndarray | None
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """A sparse bucket's nonzero entries (row-major over its clique): per input the offset
    each entry reads (through ``rank`` where that input is a compact message), and the slot it
    sums into (its message's offset, ranked where compact; at a root, the query's state)."""
    # entries as flat indices split into a high and a low part (an n-d nonzero costs 7x a flat
    # one: mildew's build 31 -> 10 ms); an input's offset is the sum of its offsets in the two
    # parts, each the strides times that part's coordinates (one row per variable)
    shape = support.shape
    cut = 0
    while cut < len(shape) and math.prod(shape[cut:]) > math.prod(shape[:cut]):
        cut += 1
    n_hi, n_lo = math.prod(shape[:cut]), math.prod(shape[cut:])
    hi, lo = np.divmod(np.flatnonzero(support), n_lo)
    at_hi = np.indices(shape[:cut]).reshape(cut, n_hi)
    at_lo = np.indices(shape[cut:]).reshape(len(shape) - cut, n_lo)

    def offsets(strides: Mapping[str, int], rank: np.ndarray | None) -> np.ndarray:
        st = np.asarray([strides.get(v, 0) for v in clique], dtype=np.int64)
        off = (st[:cut] @ at_hi)[hi] + (st[cut:] @ at_lo)[lo]
        found: np.ndarray = (off if rank is None else rank[off]).astype(np.int32)
        return found

    lists = [offsets(st, rk) for st, rk in inputs]
    into = offsets({clique[0]: 1}, None) if out_strides is None else offsets(out_strides,
                                                                             out_rank)
    return lists, into


def _block_layout(clique: tuple[str, ...], root: bool, cards: Mapping[str, int], n_sum: int
                  ) -> tuple[tuple[str, ...], int, int]:
    """A bucket's clique in walking order, the number of its trailing variables that form a
    block, and the block's entries.

    A root (query first) keeps its order; its block is the shortest trailing run of at least
    MIN_BLOCK entries. Any other bucket sums out its last ``n_sum`` variables: they move to the
    head of the block, followed by the shortest trailing run of the rest that makes the block
    at least MIN_BLOCK entries, so that the message (the rest, in order) is the sum of the
    block's contiguous slices, one per state of the summed-out variables."""
    if root:
        nb_dims, bsize = 0, 1
        while nb_dims < len(clique) and bsize < MIN_BLOCK:
            nb_dims += 1
            bsize *= cards[clique[-nb_dims]]
        return clique, nb_dims, bsize
    k = len(clique) - n_sum  # (a split's side may sum out nothing)
    xs, rest = clique[k:], clique[:k]
    nb_dims, bsize = 0, math.prod(cards[x] for x in xs)
    while nb_dims < len(rest) and bsize < MIN_BLOCK:
        nb_dims += 1
        bsize *= cards[rest[-nb_dims]]
    cut = len(rest) - nb_dims
    return (*rest[:cut], *xs, *rest[cut:]), nb_dims + n_sum, bsize


@cache
def _kernels() -> dict[str, Any]:
    from pgm.inference import _bucket_kernels as k

    return {"run_rows": k.run_rows, "run_split": k.run_split}
