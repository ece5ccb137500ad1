"""Gibbs sampling with user-given full conditionals (textbook 11.5.4.3), vectorised over chains.

The position is a flat tensor (chains, d) split into blocks of coordinates. Each block comes with a
sampler of its full conditional ``p(x_B | x_{-B})``: a callable ``(position, generator) -> new
values`` of shape (chains, |B|), vectorised over chains. Every update is an MH move with
acceptance 1 (11.124-11.125).

- ``scan="systematic"``: one step is a sweep over the blocks in order, each conditioned on the
  latest values (11.118-11.123).
- ``scan="random"``: one step updates one block per chain, chosen uniformly and independently per
  chain ("any order", L16325). Every block's conditional is evaluated for all chains and
  selected with ``torch.where``, so a random-scan step costs as much as a sweep but moves one
  block: use about ``len(blocks)`` times more steps.

Blocks with several coordinates are blocked (joint) updates.

Examples
--------
A bivariate Gaussian with correlation ``rho``: ``x_1 | x_2 ~ N(rho x_2, 1 - rho^2)``.

>>> import torch
>>> from probforge.ops import make_generator
>>> from samplers.gibbs import Gibbs
>>> from samplers.run import sample
>>> rho = 0.8
>>> def cond(i):
...     def draw(x, g):
...         m = rho * x[:, 1 - i]
...         z = torch.randn(m.shape, generator=g, dtype=x.dtype)
...         return (m + (1 - rho ** 2) ** 0.5 * z).unsqueeze(-1)
...     return draw
>>> kernel = Gibbs([([0], cond(0)), ([1], cond(1))])
>>> s = sample(kernel, None, torch.zeros(4, 2), num_draws=500, seed=0)
>>> tuple(s["x"].shape), bool(s.stats["accept_prob"].eq(1).all())
((4, 500, 2), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import check_generator
from samplers.base import LogDensity

__all__ = ["Gibbs", "GibbsBlock", "GibbsInfo", "GibbsState"]

#: ``(position (chains, d), generator) -> new block values (chains, |B|)``.
Conditional = Callable[[Tensor, torch.Generator | None], Tensor]


class GibbsBlock(NamedTuple):
    """A block of coordinates and the sampler of its full conditional.

    Attributes
    ----------
    indices : int, slice or sequence of int
        Coordinates of the flat position (last dimension) that the block updates.
    sample : callable
        ``(position, generator) -> Tensor (chains, |B|)``, a draw from ``p(x_B | x_{-B})``.
    """

    indices: int | slice | Sequence[int]
    sample: Conditional


class GibbsState(NamedTuple):
    """Position (chains, d) and its log-density (chains,); NaN when no log-density is given."""

    position: Tensor
    log_density: Tensor


class GibbsInfo(NamedTuple):
    """Acceptance is always 1 for Gibbs updates."""

    accept_prob: Tensor
    is_accepted: Tensor


class Gibbs:
    """Gibbs sampler over blocks of a flat position.

    Parameters
    ----------
    blocks : sequence of GibbsBlock or (indices, sample) pairs
        The blocks, in systematic-scan order. They should cover every coordinate that must move.
    scan : {"systematic", "random"}
        Scan order (see the module docstring).

    Notes
    -----
    ``log_density`` may be None (``init``/``step`` then store NaN as the state's log-density);
    when given, it is evaluated once per step, only for the ``log_density`` sample stat.
    ``params`` is unused.
    """

    name = "gibbs"

    def __init__(self, blocks: Sequence[GibbsBlock | tuple[Any, Conditional]],
                 scan: str = "systematic") -> None:
        if scan not in ("systematic", "random"):
            raise ValidationError("Gibbs", "scan must be 'systematic' or 'random'",
                                  found=repr(scan))
        if not blocks:
            raise ValidationError("Gibbs", "needs at least one block")
        self.blocks = [GibbsBlock(*b) for b in blocks]
        for i, b in enumerate(self.blocks):
            if not callable(b.sample):
                raise ValidationError(f"Gibbs block {i}", "sample must be callable",
                                      found=type(b.sample).__name__)
        self.scan = scan
        self.name = "gibbs" if scan == "systematic" else "gibbs_random_scan"

    def _indices(self, dim: int, device: torch.device) -> list[Tensor]:
        out = []
        for i, b in enumerate(self.blocks):
            idx = b.indices
            if isinstance(idx, int):
                lst = [idx]
            elif isinstance(idx, slice):
                lst = list(range(dim))[idx]
            else:
                lst = [int(j) for j in idx]
            if not lst or any(not -dim <= j < dim for j in lst):
                raise ShapeError(f"Gibbs block {i}", f"indices must lie in [0, {dim})",
                                 found=b.indices)
            out.append(torch.tensor([j % dim for j in lst], dtype=torch.long, device=device))
        return out

    def _log_density(self, log_density: LogDensity | None, x: Tensor) -> Tensor:
        if log_density is None:
            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
            return torch.full(x.shape[:1], math.nan, dtype=dtype, device=x.device)
        return log_density(x).detach()

    def init(self, position: Tensor, log_density: LogDensity | None) -> GibbsState:
        """State at ``position`` (chains, d)."""
        if not isinstance(position, Tensor) or position.dim() != 2:
            raise ShapeError("Gibbs", "position must have shape (chains, d)",
                             found=getattr(position, "shape", type(position).__name__),
                             fix="flatten the event dimensions")
        self._indices(position.shape[1], position.device)
        return GibbsState(position, self._log_density(log_density, position))

    def _draw(self, i: int, x: Tensor, idx: Tensor, generator: torch.Generator | None) -> Tensor:
        new = self.blocks[i].sample(x, generator)
        if new.shape != (x.shape[0], idx.numel()):
            raise ShapeError(f"Gibbs block {i} conditional",
                             f"must return shape (chains, |B|) = ({x.shape[0]}, {idx.numel()})",
                             found=tuple(new.shape))
        return x.index_copy(1, idx, new.to(x.dtype))

    def step(
        self,
        state: GibbsState,
        log_density: LogDensity | None,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[GibbsState, GibbsInfo]:
        """One sweep (systematic) or one random block per chain (random scan)."""
        x = state.position
        check_generator(generator, x.device)
        indices = self._indices(x.shape[1], x.device)
        if self.scan == "systematic":
            for i, idx in enumerate(indices):
                x = self._draw(i, x, idx, generator)
        else:
            choice = torch.randint(0, len(indices), (x.shape[0],), generator=generator,
                                   device=x.device)
            for i, idx in enumerate(indices):
                x = torch.where((choice == i).unsqueeze(-1), self._draw(i, x, idx, generator), x)
        ones = torch.ones(x.shape[:1], dtype=state.log_density.dtype, device=x.device)
        return (GibbsState(x, self._log_density(log_density, x)),
                GibbsInfo(ones, torch.ones(x.shape[:1], dtype=torch.bool, device=x.device)))
