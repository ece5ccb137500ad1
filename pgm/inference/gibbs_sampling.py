"""Gibbs sampling on discrete Bayesian and Markov networks, vectorised over chains.

Each update draws a block of variables from its full conditional (textbook 11.116-11.124), which
only involves the factors that contain the block: the Markov blanket. For a block ``B``,

``log p(x_B | x_{-B}) = sum_{f : scope(f) meets B} log phi_f(x_B, x_{scope(f) - B}) + const``,

computed for all chains at once by indexing each factor's log-table with the chains' current
states (a gather), then sampled by the Gumbel-max trick. The kernel is
:class:`samplers.gibbs.Gibbs`, driven by :func:`samplers.run.sample`.

Blocks. Single-site Gibbs is reducible when the model has deterministic relations: in ``asia``,
``either = tub OR lung`` pins ``either`` given its parents and pins the parents given ``either``, so
single-site moves can never switch ``either``. ``blocks="auto"`` therefore merges every node whose
CPD is deterministic (all probabilities 0 or 1) with its unobserved parents into one block, which
is sampled jointly by enumerating its states. Other zero entries can still make a chain
reducible; pass explicit ``blocks`` then.

Scans: ``"systematic"`` (the textbook's sweep), ``"random"`` (one random block per chain per
step) and ``"colour"``: blocks are greedily coloured so that no factor touches two blocks of one
colour; blocks of a colour are conditionally independent given the others, so a whole colour
class is updated at once from the same state (the checkerboard update of a grid MRF).

Evidence is clamped: observed variables are removed by reducing the factors, and appear in the
output as constant draws.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference.gibbs_sampling import GibbsSampler
>>> asia = bundled_network("asia")
>>> gs = GibbsSampler(asia, evidence={"dysp": "yes"})
>>> gs.blocks
[['asia'], ['smoke'], ['tub', 'lung', 'either'], ['bronc'], ['xray']]
>>> s = gs.run(num_chains=200, num_draws=50, num_warmup=20, seed=0)
>>> tuple(s["lung"].shape), int(s["dysp"].unique().item())
((200, 50), 0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from pgm.factor import Factor, state_index
from pgm.inference._common import check_model
from probforge.errors import (
    DtypeMismatchError,
    MemoryBudgetExceeded,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)
from probforge.ops import check_generator, gumbel, make_generator
from probforge.validate import check_int, check_names
from samplers.gibbs import Gibbs
from samplers.run import sample
from samplers.samples import Samples

__all__ = ["GibbsSampler"]

#: Largest joint state space a block may have (its conditional is enumerated).
MAX_BLOCK_STATES = 1 << 16


class _Term:
    """One factor's contribution to a block's conditional."""

    def __init__(self, table: Tensor, other_cols: list[int], view: tuple[int, ...]) -> None:
        self.table = table          # log-values, dims ordered (others..., block vars in factor)
        self.other_cols = other_cols  # columns of the position that index the "others" dims
        self.view = view            # (1, c_b1 or 1, ..., c_bk or 1) broadcast shape per chain


class GibbsSampler:
    """Gibbs sampler for a ``BayesianNetwork`` or ``MarkovNetwork`` given evidence.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
        Anything with ``variables``, ``states``, ``cards``, ``factors()``, ``dtype`` and
        ``device``.
    evidence : mapping str -> state name or index, optional
        Hard evidence, clamped (one state per variable; batches of evidence rows are not
        supported here).
    blocks : "auto", "single" or list of lists of variable names
        ``"auto"``: deterministic nodes merged with their parents (see the module docstring);
        ``"single"``: single-site Gibbs; or explicit blocks covering every unobserved variable
        exactly once (a block given as one string is one variable).
    scan : {"systematic", "random", "colour"}
        See the module docstring (``"checkerboard"`` is accepted for ``"colour"``).
    """

    def __init__(
        self,
        model: Any,
        evidence: Mapping[str, Any] | None = None,
        *,
        blocks: str | Sequence[Sequence[str]] = "auto",
        scan: str = "systematic",
    ) -> None:
        check_model(model, "GibbsSampler")
        if scan == "checkerboard":
            scan = "colour"
        if scan not in ("systematic", "random", "colour"):
            raise ValidationError("GibbsSampler", "scan must be 'systematic', 'random' or "
                                  "'colour'", found=repr(scan))
        self.model = model
        self.scan = scan
        states = model.states
        if evidence is not None and not isinstance(evidence, Mapping):
            raise ValidationError("GibbsSampler evidence", "must be a mapping variable -> state",
                                  found=type(evidence).__name__, fix="pass e.g. {'dysp': 'yes'}")
        ev: dict[str, int] = {}
        for v, s in (evidence or {}).items():
            if v not in states:
                raise UnknownVariableError(f"model {getattr(model, 'name', '')!r}",
                                           f"has no variable {v!r} (in the evidence)",
                                           fix=f"use one of {list(model.variables)}")
            ev[v] = state_index(v, states[v], s)
        self.evidence = ev
        self.free = [v for v in model.variables if v not in ev]
        if not self.free:
            raise ValidationError("GibbsSampler", "every variable is observed; nothing to sample")
        self._col = {v: i for i, v in enumerate(self.free)}
        self.factors: list[Factor] = []
        for f in model.factors():
            r = f.reduce(ev)
            if r.variables:
                self.factors.append(r)
        self.blocks = self._make_blocks(blocks)
        self._terms = [self._block_terms(b) for b in self.blocks]
        self.colours = self._colour_classes()

    # structure -------------------------------------------------------------------------------
    def _make_blocks(self, blocks: str | Sequence[Sequence[str]]) -> list[list[str]]:
        if isinstance(blocks, str):
            if blocks not in ("auto", "single"):
                raise ValidationError("GibbsSampler", "blocks must be 'auto', 'single' or a list "
                                      "of lists of variables", found=repr(blocks))
            groups = {v: v for v in self.free}

            def find(v: str) -> str:
                while groups[v] != v:
                    groups[v] = groups[groups[v]]
                    v = groups[v]
                return v

            if blocks == "auto" and hasattr(self.model, "cpd"):
                for v in self.free:
                    cpd = self.model.cpd(v)
                    p = cpd.probs
                    if bool(((p == 0) | (p == 1)).all()):
                        for u in cpd.parents:
                            if u in groups:
                                groups[find(u)] = find(v)
            members: dict[str, list[str]] = {}
            for v in self.free:
                members.setdefault(find(v), []).append(v)
            out = list(members.values())
            out.sort(key=lambda b: min(self.free.index(v) for v in b))
            for b in out:
                b.sort(key=self.free.index)
        else:
            if not isinstance(blocks, Sequence):
                raise ValidationError("GibbsSampler blocks", "must be 'auto', 'single' or a list "
                                      "of lists of variables", found=type(blocks).__name__)
            out = [check_names(b, "GibbsSampler block") for b in blocks]
            seen = [v for b in out for v in b]
            if sorted(seen) != sorted(self.free) or len(set(seen)) != len(seen):
                raise ValidationError(
                    "GibbsSampler blocks",
                    "must cover every unobserved variable exactly once",
                    found=f"missing {sorted(set(self.free) - set(seen))}, extra or repeated "
                    f"{sorted(v for v in set(seen) if seen.count(v) > 1 or v not in self._col)}",
                    fix="list each unobserved variable in one block")
        cards = self.model.cards
        for b in out:
            size = math.prod(cards[v] for v in b)
            if size > MAX_BLOCK_STATES:
                raise MemoryBudgetExceeded(f"Gibbs block {b}",
                                           f"has {size} joint states (limit {MAX_BLOCK_STATES})",
                                           fix="use smaller blocks")
        return out

    def _block_terms(self, block: list[str]) -> list[_Term]:
        cards = self.model.cards
        pos = {v: i for i, v in enumerate(block)}
        terms = []
        for f in self.factors:
            inside = [v for v in f.variables if v in pos]
            if not inside:
                continue
            inside.sort(key=pos.__getitem__)
            others = [v for v in f.variables if v not in pos]
            table = f.permute(others + inside).log_values
            view = (1, *(cards[v] if v in inside else 1 for v in block))
            terms.append(_Term(table, [self._col[v] for v in others], view))
        return terms

    def _colour_classes(self) -> list[list[int]]:
        touching = [set() for _ in self.blocks]  # type: list[set[int]]
        where = {v: i for i, b in enumerate(self.blocks) for v in b}
        for f in self.factors:
            ids = {where[v] for v in f.variables}
            for i in ids:
                touching[i] |= ids - {i}
        colour: dict[int, int] = {}
        for i in sorted(range(len(self.blocks)), key=lambda j: -len(touching[j])):
            used = {colour[j] for j in touching[i] if j in colour}
            colour[i] = next(c for c in range(len(self.blocks)) if c not in used)
        classes: dict[int, list[int]] = {}
        for i in range(len(self.blocks)):
            classes.setdefault(colour[i], []).append(i)
        return [classes[c] for c in sorted(classes)]

    # numbers ---------------------------------------------------------------------------------
    def conditional_logits(self, block: int, x: Tensor) -> Tensor:
        """Unnormalised log full conditional of block ``block`` for positions ``x`` (chains, F).

        Returns
        -------
        Tensor (chains, prod of the block's cardinalities)
            Joint states in row-major order of the block's variables.
        """
        cards = self.model.cards
        shape = (x.shape[0], *(cards[v] for v in self.blocks[block]))
        logits = torch.zeros(shape, dtype=self.model.dtype, device=x.device)
        for t in self._terms[block]:
            vals = t.table[tuple(x[:, c] for c in t.other_cols)] if t.other_cols \
                else t.table.unsqueeze(0)
            logits = logits + vals.reshape((vals.shape[0], *t.view[1:]))
        return logits.reshape(x.shape[0], -1)

    def _draw_block(self, block: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        logits = self.conditional_logits(block, x)
        # From a zero-probability start a row can be all -inf: move uniformly until the chain
        # reaches the support (once there, the current state always has positive probability).
        dead = torch.isneginf(logits).all(-1, keepdim=True)
        logits = torch.where(dead, torch.zeros_like(logits), logits)
        flat = (logits + gumbel(logits.shape, logits, generator)).argmax(-1)
        out = []
        for v in reversed(self.blocks[block]):
            c = self.model.cards[v]
            out.append(flat % c)
            flat = flat // c
        return torch.stack(out[::-1], -1)

    def log_density(self, x: Tensor) -> Tensor:
        """``log p(x, evidence)`` up to a constant, (chains,), at positions (chains, F)."""
        total = torch.zeros(x.shape[0], dtype=self.model.dtype, device=x.device)
        for f in self.factors:
            total = total + f.log_values[tuple(x[:, self._col[v]] for v in f.variables)]
        return total

    @property
    def kernel(self) -> Gibbs:
        """The :class:`samplers.gibbs.Gibbs` kernel over positions (chains, F) of state indices."""
        def single(i: int) -> Any:
            return lambda x, g: self._draw_block(i, x, g)

        def together(ids: list[int]) -> Any:
            def draw(x: Tensor, g: torch.Generator | None) -> Tensor:
                return torch.cat([self._draw_block(i, x, g) for i in ids], -1)
            return draw

        if self.scan == "colour":
            blocks = [([self._col[v] for i in ids for v in self.blocks[i]], together(ids))
                      for ids in self.colours]
            kernel = Gibbs(blocks, scan="systematic")
            kernel.name = "gibbs_colour"
            return kernel
        blocks = [([self._col[v] for v in b], single(i)) for i, b in enumerate(self.blocks)]
        return Gibbs(blocks, scan=self.scan)

    def initial_position(self, num_chains: int,
                         generator: torch.Generator | None = None) -> Tensor:
        """Starting states (chains, F): ancestral draws for a Bayesian network (evidence
        ignored), uniform states otherwise. ``num_chains`` is an int >= 1."""
        num_chains = check_int(num_chains, "GibbsSampler num_chains", minimum=1)
        check_generator(generator, self.model.device)
        if hasattr(self.model, "sample") and hasattr(self.model, "cpd"):
            full: Tensor = self.model.sample(num_chains, generator=generator)
            cols = [list(self.model.variables).index(v) for v in self.free]
            return full[:, cols]
        cards = torch.tensor([self.model.cards[v] for v in self.free], device=self.model.device)
        u = torch.rand((num_chains, len(self.free)), generator=generator,
                       dtype=torch.float64, device=self.model.device)
        return (u * cards).long().clamp_max(cards - 1)

    def run(
        self,
        num_chains: int,
        num_draws: int,
        *,
        num_warmup: int = 100,
        thin: int = 1,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        initial_position: Tensor | None = None,
        progress: bool = False,
    ) -> Samples:
        """Run the chains; returns one variable per node, state indices (chain, draw).

        Parameters
        ----------
        num_chains, num_draws : int
            Ints >= 1 (zero chains or draws are refused: there would be no samples).
        num_warmup : int
            Discarded sweeps (a fixed burn-in).
        thin : int
        generator : torch.Generator, optional
        seed : int, optional
            Used when ``generator`` is None.
        initial_position : LongTensor (chains, F), optional
            States of the unobserved variables (order of :attr:`free`), ``num_chains`` rows.
        """
        num_chains = check_int(num_chains, "GibbsSampler num_chains", minimum=1)
        if generator is None and seed is not None:
            generator = make_generator(seed, self.model.device)
        if initial_position is not None:
            x0 = self._check_position(initial_position, num_chains)
        else:
            x0 = self.initial_position(num_chains, generator)
        raw = sample(self.kernel, self.log_density, x0, num_draws=num_draws,
                     num_warmup=num_warmup, thin=thin, generator=generator, seed=seed,
                     progress=progress)
        pos = raw["x"]
        draws: dict[str, Tensor] = {}
        for v in self.model.variables:
            if v in self._col:
                draws[v] = pos[..., self._col[v]]
            else:
                draws[v] = torch.full(pos.shape[:2], self.evidence[v], dtype=pos.dtype,
                                      device=pos.device)
        attrs = dict(raw.attrs)
        attrs["model"] = getattr(self.model, "name", "")
        attrs["evidence"] = ", ".join(
            f"{v}={self.model.states[v][i]}" for v, i in self.evidence.items())
        attrs["blocks"] = [" ".join(b) for b in self.blocks]
        return Samples(draws, raw.stats, attrs)

    def _check_position(self, x0: Any, num_chains: int) -> Tensor:
        """A starting position: an integer tensor (num_chains, F) of valid state indices."""
        if not isinstance(x0, Tensor):
            raise ValidationError("GibbsSampler initial_position", "must be a LongTensor",
                                  found=type(x0).__name__)
        if x0.is_floating_point() or x0.is_complex() or x0.dtype == torch.bool:
            raise DtypeMismatchError("GibbsSampler initial_position",
                                     "must hold integer state indices", found=x0.dtype)
        if tuple(x0.shape) != (num_chains, len(self.free)):
            raise ShapeError("GibbsSampler initial_position",
                             f"must have shape (num_chains, {len(self.free)}) = "
                             f"({num_chains}, {len(self.free)}), columns {self.free[:5]}...",
                             found=tuple(x0.shape))
        cards = torch.tensor([self.model.cards[v] for v in self.free], device=x0.device)
        bad = (x0 < 0) | (x0 >= cards)
        if bool(bad.any()):
            row, col = (int(i) for i in torch.nonzero(bad)[0])
            raise UnknownStateError(f"GibbsSampler initial_position[{row}, {col}]",
                                    f"state index of {self.free[col]!r} out of range "
                                    f"[0, {int(cards[col])})", found=int(x0[row, col]))
        return x0.long()

    def marginals(self, samples: Samples) -> dict[str, Tensor]:
        """Estimated marginal of every variable from ``samples`` (frequencies), shape (card,)."""
        out = {}
        for v in self.model.variables:
            c = self.model.cards[v]
            counts = torch.bincount(samples[v].reshape(-1), minlength=c)
            out[v] = counts.to(self.model.dtype) / counts.sum()
        return out
