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

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_choice
from samplers._kernel_utils import (
    check_callable,
    check_generator_arg,
    check_log_density_value,
    check_position,
    check_state,
)
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


def _is_index(j: Any) -> bool:
    if isinstance(j, Tensor):
        return j.dim() == 0 and not j.is_floating_point() and j.dtype != torch.bool
    return not isinstance(j, bool) and hasattr(j, "__index__")


def _check_index_spec(i: int, idx: Any) -> None:
    """Block indices: an int, a slice or a sequence of ints (bools and floats refused)."""
    if isinstance(idx, slice):
        return
    if isinstance(idx, Tensor):
        ok = idx.dim() <= 1 and not idx.is_floating_point() and idx.dtype != torch.bool
    elif isinstance(idx, Sequence) and not isinstance(idx, str | bytes):
        ok = all(_is_index(j) for j in idx)
    else:
        ok = _is_index(idx)
    if not ok:
        raise ValidationError(f"Gibbs block {i}",
                              "indices must be an int, a slice or a sequence of ints",
                              found=repr(idx)[:60])


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
    ``log_density`` may be None (``init``/``step`` then store NaN as the state's log-density,
    meaning "not computed"; :func:`samplers.sample` then reports no ``log_density`` stat, so
    no NaN reaches the samples); when given, it is
    evaluated once per step, only for the ``log_density`` sample stat, and must not be NaN or
    ``+inf`` at the initial position (``-inf``, a start outside the support, is allowed).
    ``params`` is unused (pass None).

    Positions may be floating point (then finite) or integer (state indices of a discrete
    model); a conditional's draws are cast to the position's dtype, except that floating
    draws are refused for an integer position (they would be truncated).
    """

    name = "gibbs"

    def __init__(self, blocks: Sequence[GibbsBlock | tuple[Any, Conditional]],
                 scan: str = "systematic") -> None:
        check_choice(scan, "Gibbs scan", ("systematic", "random"))
        if isinstance(blocks, str | bytes | Tensor) or not isinstance(blocks, Sequence):
            raise ValidationError("Gibbs blocks", "must be a sequence of (indices, sample) pairs",
                                  found=type(blocks).__name__)
        if not blocks:
            raise ValidationError("Gibbs", "needs at least one block")
        self.blocks = []
        for i, b in enumerate(blocks):
            if not isinstance(b, tuple) or len(b) != 2:
                raise ValidationError(f"Gibbs block {i}", "must be an (indices, sample) pair",
                                      found=repr(b)[:60],
                                      fix="pass GibbsBlock(indices, sample) or a 2-tuple")
            block = GibbsBlock(*b)
            if not callable(block.sample):
                raise ValidationError(f"Gibbs block {i}", "sample must be callable",
                                      found=type(block.sample).__name__)
            _check_index_spec(i, block.indices)
            self.blocks.append(block)
        self.scan = scan
        self.name = "gibbs" if scan == "systematic" else "gibbs_random_scan"

    def _indices(self, dim: int, device: torch.device) -> list[Tensor]:
        out = []
        for i, b in enumerate(self.blocks):
            idx = b.indices
            if isinstance(idx, slice):
                lst = list(range(dim))[idx]
            elif isinstance(idx, Tensor):
                lst = [int(j) for j in idx.reshape(-1).tolist()]
            elif isinstance(idx, Sequence):
                lst = [int(j) for j in idx]
            else:
                lst = [int(idx)]
            if not lst or any(not -dim <= j < dim for j in lst):
                raise ShapeError(f"Gibbs block {i}", f"indices must lie in [0, {dim})",
                                 found=b.indices)
            norm = [j % dim for j in lst]
            if len(set(norm)) != len(norm):
                raise ValidationError(f"Gibbs block {i}", "names a coordinate twice",
                                      found=b.indices, fix="give each coordinate once")
            out.append(torch.tensor(norm, dtype=torch.long, device=device))
        return out

    def _log_density(self, log_density: LogDensity | None, x: Tensor) -> Tensor:
        if log_density is None:
            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
            return torch.full(x.shape[:1], math.nan, dtype=dtype, device=x.device)
        return log_density(x).detach()

    def init(self, position: Tensor, log_density: LogDensity | None) -> GibbsState:
        """State at ``position`` (chains, d): floating (finite) or integer, at least one chain.

        Raises
        ------
        ValidationError
            For a position that is not a (chains >= 1, d >= 1) tensor, has NaN / inf entries,
            or block indices outside [0, d); for a log-density that is not (chains,), or is NaN
            or +inf at the position.
        """
        if not isinstance(position, Tensor) or position.dim() != 2:
            raise ShapeError("Gibbs", "position must have shape (chains, d)",
                             found=getattr(position, "shape", type(position).__name__),
                             fix="flatten the event dimensions")
        if position.dtype == torch.bool or position.is_complex():
            raise DtypeMismatchError("Gibbs initial position",
                                     "must be a floating or integer tensor",
                                     found=position.dtype)
        check_position("Gibbs", position, min_ndim=2, floating=False)
        self._indices(position.shape[1], position.device)
        if log_density is not None:
            check_callable("Gibbs", log_density)
            lp = log_density(position)
            check_log_density_value("Gibbs", lp, position, allow_neg_inf=True)
        return GibbsState(position, self._log_density(log_density, position))

    def _draw(self, i: int, x: Tensor, idx: Tensor, generator: torch.Generator | None) -> Tensor:
        new = self.blocks[i].sample(x, generator)
        if not isinstance(new, Tensor) or new.shape != (x.shape[0], idx.numel()):
            raise ShapeError(f"Gibbs block {i} conditional",
                             f"must return shape (chains, |B|) = ({x.shape[0]}, {idx.numel()})",
                             found=tuple(new.shape) if isinstance(new, Tensor)
                             else type(new).__name__)
        if new.is_floating_point() and not x.is_floating_point():
            raise DtypeMismatchError(
                f"Gibbs block {i} conditional",
                f"returned floating draws ({new.dtype}) for an integer position ({x.dtype}); "
                "casting would truncate them", found=new.dtype,
                fix="return state indices as an integer tensor (e.g. torch.multinomial)")
        if new.device != x.device:
            raise DeviceMismatchError(f"Gibbs block {i} conditional",
                                      f"must return draws on the position's device {x.device}",
                                      found=new.device)
        return x.index_copy(1, idx, new.to(x.dtype))

    def step(
        self,
        state: GibbsState,
        log_density: LogDensity | None,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[GibbsState, GibbsInfo]:
        """One sweep (systematic) or one random block per chain (random scan).

        The draws are not checked for NaN here (a host synchronisation per step);
        :func:`samplers.run.sample` checks the kept positions once at the end.
        """
        check_state("Gibbs", state, GibbsState)
        if params is not None:
            raise ValidationError("Gibbs params", "the Gibbs kernel has no tunable parameters",
                                  found=type(params).__name__, fix="pass params=None")
        x = state.position
        check_generator_arg(generator, x.device)
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
