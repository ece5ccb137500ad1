"""A junction tree's sum-product calibration as one compiled CPU kernel (numba).

In torch, calibrating a tree of small cliques is a few dozen tensor operations of a few
microseconds of dispatch each, for a few thousand multiply-adds of work (alarm: 1,020 clique
entries). This kernel runs the whole calibration of one evidence row (potentials, both passes,
every single-variable marginal and ``log p(e)``) as compiled loops, in parallel over the evidence
rows (``prange``).

How it computes
---------------
- Hugin propagation in probability space, in float64 whatever the model's dtype. Each factor
  table is divided by its largest entry once (its log is added back to ``log p(e)``), so clique
  potentials, products of entries at most 1, cannot overflow. Each upward message is divided by
  its sum, whose log goes into ``log p(e)``; the downward pass multiplies each child by the ratio
  of the parent's calibrated separator marginal to the upward message (``0 / 0 = 0``, exact: a
  zero upward entry means every child entry behind it is zero).
- On a Bayesian network, a subtree whose factors are all normalised conditionals of the
  variables it sums out sends a message that is exactly one (:mod:`pgm.inference._unit_messages`):
  it is skipped, and such tables are not divided by their largest entry (at most 1 already), so
  the sum stays one. Messages from below a skipped clique are passed undivided: the skipped sum
  is one only over the exact product. The root is chosen to skip the most work.
- Hard evidence indexes the full factor tables (an offset per factor and row), so the cliques
  hold the hidden variables only, as the torch paths do; soft evidence multiplies in the
  likelihood vector at the variable's home clique.
- Clique tables are walked in row-major order with a mixed-radix counter per target table
  (factor, message or marginal): no index arrays, so cliques of tens of millions of entries cost
  no extra memory. Trailing clique variables that are contiguous (or absent) in the target merge
  into one inner run, so most work is a unit-stride or broadcast loop.
- A row whose message or belief sums to zero gets ``log p(e) = -inf``; the caller re-runs such
  rows on the log-space torch path, which tells zero-probability evidence from underflow
  (entries below ~1e-308 of their clique's largest).

Used by :class:`pgm.inference.JunctionTree` for sum-product on CPU when numba is installed and no
autograd graph is needed (``PROBFORGE_NATIVE=0`` disables it); the torch paths are the reference
it is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pgm.factor import Factor
from pgm.inference._flat_tree import variable_strides, walk_offsets
from pgm.inference._unit_messages import normalised_head, plan_rooting

__all__ = ["NativeTree"]


#: Walks whose merged inner run is shorter than this read precomputed indices ...
_SHORT_RUN = 16
#: ... in cliques of at most this many entries (building tables for larger ones costs more
#: time than it saves in one calibration) ...
_INDEX_CLIQUE = 2**18
#: ... up to this many index entries per tree (int32: 64 MiB).
_INDEX_ENTRIES = 2**24
#: Fixed clique tables kept per tree, at most (float64: 32 MiB).
_FIXED_ENTRIES = 2**22


class _Walks:
    """Mixed-radix walks of clique tables: per walk, its clique and (cards, target strides) with
    trailing runs merged."""

    def __init__(self) -> None:
        self.clique: list[int] = []
        self.cards: list[list[int]] = []
        self.strides: list[list[int]] = []

    def add(self, clique: int, cards: Sequence[int], strides: Sequence[int]) -> int:
        cs, st = list(cards) or [1], list(strides) or [0]
        # merge the last two digits while the target sees them as one constant-stride run
        while len(cs) > 1 and st[-2] == st[-1] * cs[-1]:
            last = cs.pop()
            cs[-1] *= last
            st[-1] = st.pop()  # the merged digit steps by the inner stride
        self.clique.append(clique)
        self.cards.append(cs)
        self.strides.append(st)
        return len(self.clique) - 1

    def index_tables(self, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Precomputed target indices for the walks whose inner runs are short (there the
        counter's carry logic costs more than the arithmetic), within a memory cap; offsets
        (-1: count instead) and one flat int32 table."""
        ioff = np.full(len(self.clique), -1, dtype=np.int64)
        parts: list[np.ndarray] = []
        pos = 0
        for w, (c, cs, st) in enumerate(zip(self.clique, self.cards, self.strides, strict=True)):
            if (cs[-1] >= _SHORT_RUN or sizes[c] > _INDEX_CLIQUE
                    or pos + sizes[c] > _INDEX_ENTRIES):
                continue
            idx = walk_offsets(cs, st)
            if idx.size and int(idx.max()) >= 2**31:
                continue
            ioff[w] = pos
            parts.append(idx.astype(np.int32))
            pos += idx.size
        table = np.concatenate(parts) if parts else np.zeros(1, dtype=np.int32)
        return ioff, table

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        d = max((len(c) for c in self.cards), default=1)
        cards = np.ones((len(self.cards), d), dtype=np.int64)
        strides = np.zeros((len(self.cards), d), dtype=np.int64)
        nd = np.zeros(len(self.cards), dtype=np.int64)
        for w, (c, s) in enumerate(zip(self.cards, self.strides, strict=True)):
            nd[w] = len(c)
            cards[w, :len(c)] = c
            strides[w, :len(s)] = s
        return np.asarray(self.clique, dtype=np.int64), nd, cards, strides


class NativeTree:
    """The compiled calibration plan of one junction tree (built once, reused for every call).

    Parameters
    ----------
    cliques : list of tuples of str
        Hidden variables of each clique (row-major table layout, last variable fastest).
    edges : list of (int, int)
        Tree edges.
    cards : dict str -> int
    factors : list of Factor
        The model's factors (full scopes, evidence variables included).
    assignment : list of int
        Clique of each factor, then of each soft-evidence variable (in ``soft_vars`` order).
    evidence_vars : sequence of str
        Hard-evidence variables, in the column order of the ``evidence`` matrix given to
        :meth:`run`.
    soft_vars : sequence of str
        Soft-evidence variables, in the order of the likelihood blocks given to :meth:`run`.
    marginal_vars : sequence of str
        Hidden variables whose marginals :meth:`run` returns, in this order.
    home : dict str -> int
        Clique each marginal is read from.
    heads : sequence of (str or None), optional
        Per factor, the variable it is the conditional distribution of (a Bayesian network's
        CPDs). Upward messages out of subtrees that only hold such distributions of the
        variables they sum out are exactly one and are skipped
        (:mod:`pgm.inference._unit_messages`); the root and the factors' cliques are then
        chosen to skip the most work.
    """

    def __init__(self, cliques: Sequence[tuple[str, ...]], edges: Sequence[tuple[int, int]],
                 cards: dict[str, int], factors: Sequence[Factor], assignment: Sequence[int],
                 evidence_vars: Sequence[str], soft_vars: Sequence[str],
                 marginal_vars: Sequence[str], home: dict[str, int],
                 heads: Sequence[str | None] | None = None) -> None:
        n = len(cliques)
        sizes = [math.prod(cards[v] for v in c) for c in cliques]
        self.sizes = sizes
        self.c_size = np.asarray(sizes, dtype=np.int64)
        self.offset = np.zeros(n, dtype=np.int64)
        for c in range(1, n):
            self.offset[c] = self.offset[c - 1] + sizes[c - 1]
        self.size = int(sum(sizes))
        ccards = [[cards[v] for v in c] for c in cliques]
        walks = _Walks()

        def target(c: int, strides: dict[str, int]) -> int:
            return walks.add(c, ccards[c], [strides.get(v, 0) for v in cliques[c]])

        # factors: prob-space tables over their full scopes, each divided by its largest entry,
        # except normalised conditionals (entries at most 1 already), whose sums must stay one
        ev_col = {v: j for j, v in enumerate(evidence_vars)}
        hidden_heads: list[str | None] = []
        tables: list[np.ndarray] = []
        shifts: list[float] = []
        for k, f in enumerate(factors):
            lv = f.log_values.detach().to("cpu", torch.float64).numpy()
            head = heads[k] if heads is not None and heads[k] not in ev_col else None
            eps = float(torch.finfo(f.log_values.dtype).eps)
            m = float(lv.max()) if lv.size else -math.inf
            # a head's table must be checked as is; any other may overflow unshifted
            p = np.exp(lv) if head is not None else None
            head = normalised_head(p, f.variables, head, eps) if p is not None else None
            shift = 0.0 if head is not None or not math.isfinite(m) else m
            hidden_heads.append(head)
            tables.append(p.reshape(-1) if shift == 0.0 and p is not None
                          else np.exp(lv.reshape(-1) - shift))
            shifts.append(shift if math.isfinite(m) else -math.inf)
        scopes = [tuple(v for v in f.variables if v not in ev_col) for f in factors]
        soft_cliques = {assignment[len(factors) + j] for j in range(len(soft_vars))}
        plan = plan_rooting(cliques, edges, sizes, scopes, assignment[:len(factors)],
                            hidden_heads, soft_cliques)
        values: list[np.ndarray] = []
        f_off, f_walk = [], []
        ev_str = np.zeros((len(factors), max(len(evidence_vars), 1)), dtype=np.int64)
        log_norm = 0.0
        pos = 0
        first_seen: set[int] = set()
        f_first = []
        for k, f in enumerate(factors):
            log_norm += shifts[k]
            values.append(tables[k])
            st = variable_strides(f.variables, cards)
            for v, s in st.items():
                if v in ev_col:
                    ev_str[k, ev_col[v]] = s
            f_off.append(pos)
            pos += tables[k].size
            c = plan.assignment[k]
            f_walk.append(target(c, st))
            f_first.append(c not in first_seen)
            first_seen.add(c)
        self.values = np.concatenate(values) if values else np.zeros(1)
        self.log_norm = log_norm
        self.f_off = np.asarray(f_off, dtype=np.int64)
        self.f_walk = np.asarray(f_walk, dtype=np.int64)
        self.f_first = np.asarray(f_first, dtype=np.bool_)
        self.ev_str = ev_str
        self.n_ev = len(evidence_vars)
        self.has_factor = np.asarray([c in first_seen for c in range(n)], dtype=np.bool_)
        # soft evidence: one likelihood block per variable, multiplied in at its clique
        s_off, s_walk = [], []
        pos = 0
        for j, v in enumerate(soft_vars):
            c = assignment[len(factors) + j]
            s_walk.append(target(c, {v: 1}))
            s_off.append(pos)
            pos += cards[v]
        self.soft_size = pos
        self.s_off = np.asarray(s_off, dtype=np.int64)
        self.s_walk = np.asarray(s_walk, dtype=np.int64)
        # tree: breadth-first from the chosen root; upward messages in reversed order
        order, parent = plan.order, plan.parent
        self.root = plan.root
        self.kind = np.asarray(plan.message_kinds(), dtype=np.int8)
        self.order = np.asarray(order, dtype=np.int64)
        self.parent = np.asarray(parent, dtype=np.int64)
        up_in = np.full(n, -1, dtype=np.int64)
        up_par = np.full(n, -1, dtype=np.int64)
        m_off = np.zeros(n, dtype=np.int64)
        m_size = np.zeros(n, dtype=np.int64)
        pos = 0
        for c in order[1:]:
            p = parent[c]
            sep = [v for v in cliques[c] if v in set(cliques[p])]
            st = variable_strides(sep, cards)
            up_in[c] = target(c, st)
            up_par[c] = target(p, st)
            m_off[c] = pos
            m_size[c] = math.prod(cards[v] for v in sep)
            pos += int(m_size[c])
        self.up_in, self.up_par, self.m_off, self.m_size = up_in, up_par, m_off, m_size
        self.msg_size = max(pos, 1)
        self.max_sep = int(max(m_size.max(initial=0), 1))
        # marginals, concatenated in marginal_vars order
        self.marginal_vars = tuple(marginal_vars)
        out_off, out_walk, out_card = [], [], []
        pos = 0
        for v in marginal_vars:
            out_walk.append(target(home[v], {v: 1}))
            out_off.append(pos)
            out_card.append(cards[v])
            pos += cards[v]
        self.out_size = pos
        self.out_off = np.asarray(out_off, dtype=np.int64)
        self.out_walk = np.asarray(out_walk, dtype=np.int64)
        self.out_card = np.asarray(out_card, dtype=np.int64)
        self.marginal_offset = dict(zip(self.marginal_vars, out_off, strict=True))
        self.marginal_cards = list(out_card)
        self.w_clique, self.w_nd, self.w_cards, self.w_strides = walks.arrays()
        self.w_ioff, self.w_idx = walks.index_tables(sizes)
        self._fixed_tables(plan.message_kinds(), soft_cliques)

    def _fixed_tables(self, kind: Sequence[int], soft_cliques: set[int]) -> None:
        """Cliques whose table no evidence or message changes before the downward pass (a
        barren clique whose children are all barren, no evidence in its factors): their
        potentials are computed here once, and each calibration writes them in one pass, as
        base times the downward message."""
        n = len(self.sizes)
        children_barren = [True] * n
        for c in self.order[1:]:
            if kind[c] != 1:
                children_barren[int(self.parent[c])] = False
        evidence_in = set(self.f_walk[np.flatnonzero(self.ev_str.any(axis=1))].tolist())
        evidence_cliques = {int(self.w_clique[w]) for w in evidence_in} | soft_cliques
        self.b_off = np.full(n, -1, dtype=np.int64)
        pos = 0
        for c in range(n):
            if (kind[c] == 1 and children_barren[c] and c not in evidence_cliques
                    and pos + self.sizes[c] <= _FIXED_ENTRIES):
                self.b_off[c] = pos
                pos += self.sizes[c]
        self.base = np.empty(max(pos, 1))
        if pos:
            scratch = np.empty(self.size)
            dig = np.empty(self.w_cards.shape[1], dtype=np.int64)
            _kernels()["potentials"](
                scratch, self.values, self.f_off, self.f_walk, self.f_first, self.ev_str,
                np.zeros(self.ev_str.shape[1], dtype=np.int64), self.has_factor,
                self.w_clique, self.w_nd, self.w_cards, self.w_strides, self.w_ioff,
                self.w_idx, self.offset, self.c_size, self.b_off < 0, dig)
            for c in np.flatnonzero(self.b_off >= 0):
                o, b = int(self.offset[c]), int(self.b_off[c])
                self.base[b:b + self.sizes[c]] = scratch[o:o + self.sizes[c]]

    def run(self, evidence: np.ndarray, soft: np.ndarray | None,
            store_beliefs: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Calibrate every evidence row.

        Parameters
        ----------
        evidence : int64 array, shape (N, n_evidence_vars)
            State index of each hard-evidence variable (all observed).
        soft : float64 array, shape (N, soft_size), or None
            Likelihoods (probability space), blocks in ``soft_vars`` order.
        store_beliefs : bool
            Also return the calibrated clique tables.

        Returns
        -------
        marginals : float64 array, shape (N, out_size)
            Normalised posteriors, blocks in ``marginal_vars`` order.
        log_z : float64 array, shape (N,)
            ``log p(e)``; -inf where some sum came out zero (see the module docstring).
        beliefs : float64 array, shape (N, size), or None
            Calibrated clique tables (each proportional to the clique's posterior joint).
        """
        n = evidence.shape[0]
        ev = np.ascontiguousarray(evidence, dtype=np.int64).reshape(n, max(self.n_ev, 1)) \
            if self.n_ev else np.zeros((n, 1), dtype=np.int64)
        sf = (np.ascontiguousarray(soft, dtype=np.float64) if soft is not None
              else np.zeros((n, 1)))
        marg = np.empty((n, max(self.out_size, 1)))
        log_z = np.empty(n)
        beliefs = np.empty((n, self.size)) if store_beliefs else np.empty((1, 1))
        head = (self.values, self.f_off, self.f_walk, self.f_first, self.ev_str)
        plan = (self.s_off, self.s_walk, self.order, self.parent, self.kind, self.up_in,
                self.up_par, self.m_off, self.m_size, self.msg_size, self.max_sep, self.out_off,
                self.out_walk, self.out_card, self.w_clique, self.w_nd, self.w_cards,
                self.w_strides, self.w_ioff, self.w_idx, self.offset, self.c_size, self.b_off,
                self.base)
        k = _kernels()
        if n == 1:  # one row: the row kernel itself, without starting the thread pool
            beta = beliefs[0] if store_beliefs else np.empty(self.size)
            log_z[0] = k["calibrate_one"](*head, ev[0], self.has_factor, sf[0], *plan,
                                          self.log_norm, beta, marg[0])
        else:
            k["calibrate"](*head, ev, self.has_factor, sf, *plan, self.size, self.log_norm,
                           marg, log_z, beliefs, store_beliefs)
        return marg[:, :self.out_size], log_z, (beliefs if store_beliefs else None)

    @staticmethod
    def to_torch(x: np.ndarray, dtype: torch.dtype) -> Tensor:
        """A kernel output as a tensor of the model's dtype."""
        t = torch.from_numpy(x)
        return t if dtype == torch.float64 else t.to(dtype)


@cache
def _kernels() -> dict[str, Any]:
    from pgm.inference import _tree_kernels as k

    return {"calibrate": k.calibrate, "calibrate_one": k.calibrate_one,
            "potentials": k.potentials}
