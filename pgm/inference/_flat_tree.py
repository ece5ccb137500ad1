"""A junction tree's sum-product calibration compiled into a few flat tensor operations per level.

Every clique table is a slice of one log-space vector (batch, S); every message a slice of one
message vector. The tree is rooted at its centre; the upward pass runs level by level over
*heights* (all cliques of one height at once) and the downward pass over *depths*. Within a level
one gather collects the clique entries, one ``index_add`` adds the incoming log-messages, and a
scatter log-sum-exp (``scatter_reduce`` max shift, ``exp``, ``index_add``, ``log``) forms every
outgoing message of the level. So the work is a handful of torch calls per level however many
cliques the level holds, which matters on CPU where each call costs microseconds.

Messages follow Shafer-Shenoy (no division), so deterministic zeros are exact; everything is in
log space, so nothing over- or underflows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from probforge.ops import finite_shift

__all__ = ["FlatTree"]


def _strides(cards: Sequence[int]) -> list[int]:
    out: list[int] = []
    s = 1
    for c in reversed(cards):
        out.append(s)
        s *= c
    return out[::-1]


def variable_strides(variables: Sequence[str], cards: Mapping[str, int]) -> dict[str, int]:
    """Row-major strides of a table over ``variables`` (last fastest), by variable."""
    return dict(zip(variables, _strides([cards[v] for v in variables]), strict=True))


def walk_offsets(cards: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """Offsets into a target table read along a row-major walk of digits with these cards
    (int64, one per walk entry): the sum of digit times stride."""
    idx = np.zeros(1, dtype=np.int64)
    for card, stride in zip(cards, strides, strict=True):
        idx = (idx[:, None] + np.arange(card, dtype=np.int64) * stride).reshape(-1)
    return idx


def _scatter_logsumexp(values: Tensor, index: Tensor, size: int) -> Tensor:
    """``out[:, g] = logsumexp(values[:, index == g])`` for a (batch, n) ``values``."""
    batch = values.shape[0]
    idx = index.expand(batch, -1)
    m = torch.full((batch, size), -math.inf, dtype=values.dtype, device=values.device)
    m = m.scatter_reduce(1, idx, values, "amax", include_self=True)
    m = finite_shift(m)
    s = torch.zeros((batch, size), dtype=values.dtype, device=values.device)
    s = s.index_add(1, index, torch.exp(values - m.gather(1, idx)))
    return torch.log(s) + m


class FlatTree:
    """Index plans for one clique tree (built once; reused for every calibration).

    Parameters
    ----------
    cliques : list of tuples of str
    edges : list of (int, int)
        Tree edges between clique indices.
    cards : dict str -> int
    factor_scopes : list of tuples of str
        Scopes of the (evidence-reduced) factors, in the order their tables will be given.
    assignment : list of int
        Clique of each factor.
    device : torch.device
    """

    def __init__(self, cliques: list[tuple[str, ...]], edges: list[tuple[int, int]],
                 cards: dict[str, int], factor_scopes: list[tuple[str, ...]],
                 assignment: list[int], device: torch.device) -> None:
        n = len(cliques)
        self.cliques = cliques
        self.cards = cards
        nbrs: list[list[int]] = [[] for _ in range(n)]
        for i, j in edges:
            nbrs[i].append(j)
            nbrs[j].append(i)
        root = self._centre(nbrs)
        parent = [-1] * n
        depth = [0] * n
        order = [root]
        for c in order:  # BFS from the root
            for k in nbrs[c]:
                if k != parent[c] and k != root and parent[k] == -1:
                    parent[k] = c
                    depth[k] = depth[c] + 1
                    order.append(k)
        children: list[list[int]] = [[] for _ in range(n)]
        for c in order[1:]:
            children[parent[c]].append(c)
        height = [0] * n
        for c in reversed(order):
            height[c] = max((height[k] + 1 for k in children[c]), default=0)
        self.root, self.parent, self.children = root, parent, children

        sizes = [math.prod(cards[v] for v in c) for c in cliques]
        self.offset = [0] * n
        for c in range(1, n):
            self.offset[c] = self.offset[c - 1] + sizes[c - 1]
        self.size = sum(sizes)
        self.sizes = sizes
        # State index of each clique variable at each clique entry (numpy: built once, on CPU).
        states: list[dict[str, np.ndarray]] = []
        for c, clique in enumerate(cliques):
            st = _strides([cards[v] for v in clique])
            e = np.arange(sizes[c], dtype=np.int64)
            states.append({v: (e // st[p]) % cards[v] for p, v in enumerate(clique)})

        def sep_index(c: int, sep: tuple[str, ...]) -> np.ndarray:
            st = _strides([cards[v] for v in sep])
            out = np.zeros(sizes[c], dtype=np.int64)
            for p, v in enumerate(sep):
                out += states[c][v] * st[p]
            return out

        def long(parts: list[np.ndarray]) -> Tensor:
            arr = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            return torch.as_tensor(arr, dtype=torch.long).to(device)

        # message slots: up message of c (c -> parent) and down message of c (parent -> c)
        self.sep = {c: tuple(v for v in cliques[c] if v in set(cliques[parent[c]]))
                    for c in range(n) if parent[c] >= 0}
        msize = {c: math.prod(cards[v] for v in self.sep[c]) for c in self.sep}
        up_order = sorted(self.sep, key=lambda c: (height[c], c))
        down_order = sorted(self.sep, key=lambda c: (depth[c], c))
        self.up_off: dict[int, int] = {}
        self.down_off: dict[int, int] = {}
        pos = 0
        for c in up_order:
            self.up_off[c] = pos
            pos += msize[c]
        for c in down_order:
            self.down_off[c] = pos
            pos += msize[c]
        self.msg_size = pos
        sidx_in = {c: sep_index(c, self.sep[c]) for c in self.sep}  # child's own entries
        sidx_par = {c: sep_index(parent[c], self.sep[c]) for c in self.sep}  # parent's entries

        def incoming(c: int, skip: int = -1) -> tuple[list[np.ndarray], list[np.ndarray]]:
            """(entry within c, message slot) arrays of the messages into c, except from skip."""
            pos_: list[np.ndarray] = []
            idx_: list[np.ndarray] = []
            entries = np.arange(sizes[c], dtype=np.int64)
            for k in children[c]:
                if k != skip:
                    pos_.append(entries)
                    idx_.append(self.up_off[k] + sidx_par[k])
            if parent[c] >= 0 and parent[c] != skip:
                pos_.append(entries)
                idx_.append(self.down_off[c] + sidx_in[c])
            return pos_, idx_

        Level = tuple[Tensor, Tensor, Tensor, Tensor, int, int]

        def level(pairs: list[tuple[int, int, np.ndarray]], offsets: dict[int, int],
                  key: int) -> Level:
            """One level: (clique whose table is read, message slot owner, sep index) triples."""
            ent: list[np.ndarray] = []
            pos_l: list[np.ndarray] = []
            idx_l: list[np.ndarray] = []
            out: list[np.ndarray] = []
            base = 0
            first = offsets[pairs[0][1]]
            for reader, owner, sidx in pairs:
                ent.append(np.arange(self.offset[reader], self.offset[reader] + sizes[reader]))
                skip = parent[reader] if key == 0 else owner
                inc_pos, inc_idx = incoming(reader, skip=skip)
                pos_l += [base + p for p in inc_pos]
                idx_l += inc_idx
                out.append(offsets[owner] - first + sidx)
                base += sizes[reader]
            last = pairs[-1][1]
            return (long(ent), long(pos_l), long(idx_l), long(out), first,
                    offsets[last] + msize[last])

        # upward levels: cliques of height h send to their parents
        self.up_levels: list[Level] = []
        for h in range(max(height) + 1):
            senders = [c for c in up_order if height[c] == h]
            if senders:
                self.up_levels.append(level([(c, c, sidx_in[c]) for c in senders],
                                            self.up_off, 0))
        # downward levels: parents at depth d send to each child
        self.down_levels: list[Level] = []
        for d in range(1, max(depth) + 1):
            receivers = [c for c in down_order if depth[c] == d]
            if receivers:
                self.down_levels.append(level([(parent[c], c, sidx_par[c]) for c in receivers],
                                              self.down_off, 1))
        # beliefs: every clique with all its incoming messages
        bpos: list[np.ndarray] = []
        bidx: list[np.ndarray] = []
        for c in range(n):
            inc_pos, inc_idx = incoming(c)
            bpos += [self.offset[c] + p for p in inc_pos]
            bidx += inc_idx
        self.belief_pos, self.belief_idx = long(bpos), long(bidx)
        # potentials: each clique entry gathers from the flat concatenation of its factors
        self.factor_scopes = factor_scopes
        fsizes = [math.prod(cards[v] for v in s) for s in factor_scopes]
        foff = [0] * len(fsizes)
        for k in range(1, len(fsizes)):
            foff[k] = foff[k - 1] + fsizes[k - 1]
        self.factor_size = sum(fsizes)
        ppos: list[np.ndarray] = []
        pidx: list[np.ndarray] = []
        for k, (sc, c) in enumerate(zip(factor_scopes, assignment, strict=True)):
            ppos.append(np.arange(self.offset[c], self.offset[c] + sizes[c]))
            pidx.append(foff[k] + sep_index(c, sc))
        self.pot_pos, self.pot_idx = long(ppos), long(pidx)
        # single-variable marginals from each variable's smallest clique
        self.home: dict[str, int] = {}
        for v in cards:
            homes = [c for c, cl in enumerate(cliques) if v in cl]
            if homes:
                self.home[v] = min(homes, key=lambda c: sizes[c])
        self.marg_vars = [v for v in cliques_vars(cliques) if v in self.home]
        self.marg_off: dict[str, int] = {}
        mpos: list[np.ndarray] = []
        midx: list[np.ndarray] = []
        o = 0
        for v in self.marg_vars:
            c = self.home[v]
            self.marg_off[v] = o
            mpos.append(np.arange(self.offset[c], self.offset[c] + sizes[c]))
            midx.append(o + states[c][v])
            o += cards[v]
        self.marg_size = o
        self.marg_pos, self.marg_idx = long(mpos), long(midx)

    @staticmethod
    def _centre(nbrs: list[list[int]]) -> int:
        """A clique of minimum eccentricity (two BFS sweeps find a diameter path)."""
        def bfs(s: int) -> list[int]:
            dist = [-1] * len(nbrs)
            dist[s] = 0
            queue = [s]
            for c in queue:
                for k in nbrs[c]:
                    if dist[k] < 0:
                        dist[k] = dist[c] + 1
                        queue.append(k)
            return dist

        d0 = bfs(0)
        a = max(range(len(nbrs)), key=lambda c: d0[c])
        da = bfs(a)
        b = max(range(len(nbrs)), key=lambda c: da[c])
        db = bfs(b)
        return min(range(len(nbrs)), key=lambda c: (max(da[c], db[c]), c))

    def calibrate(self, tables: list[Tensor], batch: int) -> tuple[Tensor, Tensor]:
        """Clique log-beliefs (batch, S) and log Z (batch,) from evidence-reduced log-tables."""
        dtype, device = tables[0].dtype, tables[0].device
        flat = torch.cat([t.expand((batch,) + t.shape[t.dim() - len(s):]).reshape(batch, -1)
                          if t.dim() > len(s) else t.reshape(1, -1).expand(batch, -1)
                          for t, s in zip(tables, self.factor_scopes, strict=True)], dim=1)
        pot = torch.zeros((batch, self.size), dtype=dtype, device=device)
        pot = pot.index_add(1, self.pot_pos, flat[:, self.pot_idx])
        msg = torch.zeros((batch, self.msg_size), dtype=dtype, device=device)
        for ent, pos, idx, out, start, stop in (*self.up_levels, *self.down_levels):
            t = pot[:, ent]
            if idx.numel():
                t = t.index_add(1, pos, msg[:, idx])
            msg[:, start:stop] = _scatter_logsumexp(t, out, stop - start)
        belief = pot.index_add(1, self.belief_pos, msg[:, self.belief_idx])
        r0, r1 = self.offset[self.root], self.offset[self.root] + self.sizes[self.root]
        log_z = torch.logsumexp(belief[:, r0:r1], dim=1) if r1 > r0 else belief[:, 0] * 0
        return belief, log_z

    def marginals(self, belief: Tensor, log_z: Tensor) -> Tensor:
        """All single-variable posteriors, flat (batch, sum of cards), in ``marg_vars`` order."""
        m = _scatter_logsumexp(belief[:, self.marg_pos], self.marg_idx, self.marg_size)
        return torch.exp(m - finite_shift(log_z)[:, None])


def cliques_vars(cliques: list[tuple[str, ...]]) -> list[str]:
    """Variables of the cliques in first-appearance order."""
    return list(dict.fromkeys(v for c in cliques for v in c))
