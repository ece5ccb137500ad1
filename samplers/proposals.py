"""Proposal distributions that draw from an explicit ``torch.Generator``.

Rejection sampling, importance sampling and the independence Metropolis sampler need a proposal
``q`` that can be sampled and evaluated: an object with

- ``sample(num, generator) -> Tensor (num, *event)``
- ``log_prob(x) -> Tensor (num,)`` (normalised; the event dimensions are summed)

:class:`Gaussian`, :class:`Uniform` and :class:`Cauchy` are written directly on the generator.
:class:`DistributionProposal` adapts any ``torch.distributions.Distribution``; since those draw
from the global RNG, it draws a seed from ``generator`` and samples inside
``torch.random.fork_rng``, so the global RNG state is the same afterwards as before.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from samplers.proposals import Gaussian
>>> q = Gaussian(torch.zeros(2), 1.0)
>>> x = q.sample(5, make_generator(0))
>>> tuple(x.shape), tuple(q.log_prob(x).shape)
((5, 2), (5,))
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.random import check_generator, random_seed, sample_distribution
from probforge.validate import check_finite, check_int, check_tensor

__all__ = ["Cauchy", "DistributionProposal", "Gaussian", "Proposal", "Uniform", "as_proposal"]


@runtime_checkable
class Proposal(Protocol):
    """A distribution that samples from a given generator and has a normalised log-density."""

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor: ...

    def log_prob(self, x: Tensor) -> Tensor: ...


def _check_num(who: str, num: Any, generator: Any, device: torch.device | None) -> int:
    """``num`` as an int >= 0 (0 draws give an empty (0, *event) tensor) and a generator that
    draws on ``device`` (any, if None)."""
    out = check_int(num, f"{who}.sample num", minimum=0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValidationError(f"{who}.sample generator", "must be a torch.Generator or None",
                              found=type(generator).__name__)
    if device is not None:
        check_generator(generator, device)
    return out


def _check_x(who: str, x: Tensor, event_shape: torch.Size) -> Tensor:
    """``x`` (n, *event), floating."""
    x = check_tensor(x, f"{who}.log_prob x", floating=True)
    k = len(event_shape)
    if x.dim() < k + 1 or tuple(x.shape[x.dim() - k:]) != tuple(event_shape):
        raise ShapeError(f"{who}.log_prob x", f"must have shape (n, *{tuple(event_shape)})",
                         found=tuple(x.shape))
    return x


def _scale_tensor(who: str, scale: Any, loc: Tensor) -> Tensor:
    """A positive finite scale (number or floating tensor) broadcast to ``loc``'s shape."""
    if isinstance(scale, Tensor) and not scale.is_floating_point():
        raise DtypeMismatchError(f"{who} scale", "must be floating point (or a number)",
                                 found=scale.dtype, fix="use a float")
    if not isinstance(scale, Tensor | int | float) or isinstance(scale, bool):
        raise ValidationError(f"{who} scale", "must be a number or a tensor",
                              found=type(scale).__name__)
    s = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
    check_finite(s, f"{who} scale")
    if bool((s <= 0).any()):
        raise ValidationError(who, "scale must be > 0", found=s.tolist())
    try:
        return s.expand(loc.shape)
    except RuntimeError as err:
        raise ShapeError(f"{who} scale", "must broadcast to loc's shape",
                         found=(tuple(s.shape), tuple(loc.shape))) from err


def _check_loc(who: str, loc: Any) -> Tensor:
    return check_tensor(loc, f"{who} loc", floating=True, finite=True)


def _event_sum(t: Tensor, event_ndim: int) -> Tensor:
    return t.sum(tuple(range(t.dim() - event_ndim, t.dim()))) if event_ndim else t


class Gaussian:
    """Normal proposal: diagonal (``scale``) or full covariance (``scale_tril``, 1-d events).

    Parameters
    ----------
    loc : Tensor, shape event
        Mean; its shape is the event shape, its dtype/device those of the draws.
    scale : float or Tensor broadcastable to event, optional
        Standard deviations (diagonal covariance). Default 1.
    scale_tril : Tensor (d, d), optional
        Lower Cholesky factor of the covariance, for ``loc`` of shape (d,). Excludes ``scale``.
    """

    def __init__(self, loc: Tensor, scale: float | Tensor | None = None,
                 scale_tril: Tensor | None = None) -> None:
        if scale is not None and scale_tril is not None:
            raise ValidationError("Gaussian proposal", "give scale or scale_tril, not both")
        _check_loc("Gaussian proposal", loc)
        self.loc = loc
        self.event_shape = loc.shape
        if scale_tril is not None:
            d = loc.numel()
            check_tensor(scale_tril, "Gaussian proposal scale_tril", floating=True, finite=True)
            if loc.dim() != 1 or scale_tril.shape != (d, d):
                raise ShapeError("Gaussian proposal", "scale_tril must be (d, d) for loc (d,)",
                                 found=(tuple(loc.shape), tuple(scale_tril.shape)))
            if bool((torch.triu(scale_tril, 1) != 0).any()):
                # sample() would use the whole matrix, log_prob only its lower triangle
                raise ValidationError("Gaussian proposal scale_tril",
                                      "must be lower triangular (zeros above the diagonal)",
                                      fix="pass torch.linalg.cholesky(covariance)")
            diag = torch.diagonal(scale_tril)
            if bool((diag <= 0).any()):
                raise ValidationError("Gaussian proposal",
                                      "scale_tril must have a positive diagonal",
                                      found=diag.tolist())
            self.scale_tril: Tensor | None = scale_tril.to(loc)
            self.scale = None
            self._log_det = torch.log(diag.to(loc)).sum()
        else:
            self.scale = _scale_tensor("Gaussian proposal", 1.0 if scale is None else scale, loc)
            self.scale_tril = None
            self._log_det = torch.log(self.scale).sum()

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        num = _check_num("Gaussian", num, generator, self.loc.device)
        z = torch.randn((num, *self.event_shape), generator=generator, dtype=self.loc.dtype,
                        device=self.loc.device)
        if self.scale_tril is not None:
            return self.loc + z @ self.scale_tril.T
        assert self.scale is not None
        return self.loc + self.scale * z

    def log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)``, shape (num,)."""
        _check_x("Gaussian", x, self.event_shape)
        diff = x - self.loc
        if self.scale_tril is not None:
            z = torch.linalg.solve_triangular(self.scale_tril, diff.unsqueeze(-1),
                                              upper=False).squeeze(-1)
        else:
            assert self.scale is not None
            z = diff / self.scale
        n = self.loc.numel()
        k = len(self.event_shape)
        return -0.5 * _event_sum(z * z, k) - self._log_det - 0.5 * n * math.log(2 * math.pi)


class Uniform:
    """Uniform proposal on the box ``[low, high)`` (elementwise; shape of ``low`` = event)."""

    def __init__(self, low: Tensor, high: Tensor | float) -> None:
        _check_loc("Uniform proposal", low)
        if isinstance(high, Tensor) and not high.is_floating_point():
            raise DtypeMismatchError("Uniform proposal high", "must be floating point",
                                     found=high.dtype)
        if not isinstance(high, Tensor | int | float) or isinstance(high, bool):
            raise ValidationError("Uniform proposal high", "must be a number or a tensor",
                                  found=type(high).__name__)
        high_t = torch.as_tensor(high, dtype=low.dtype, device=low.device)
        try:
            high_t = high_t.expand(low.shape)
        except RuntimeError as err:
            raise ShapeError("Uniform proposal high", "must broadcast to low's shape",
                             found=(tuple(high_t.shape), tuple(low.shape))) from err
        check_finite(high_t, "Uniform proposal high")
        if bool((high_t <= low).any()):
            raise ValidationError("Uniform proposal", "needs high > low everywhere",
                                  found=(low.tolist(), high_t.tolist()))
        self.low, self.high = low, high_t
        self.event_shape = low.shape
        self._log_volume = torch.log(high_t - low).sum()

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        num = _check_num("Uniform", num, generator, self.low.device)
        u = torch.rand((num, *self.event_shape), generator=generator, dtype=self.low.dtype,
                       device=self.low.device)
        return self.low + (self.high - self.low) * u

    def log_prob(self, x: Tensor) -> Tensor:
        """``-log volume`` inside the box, ``-inf`` outside; shape (num,)."""
        _check_x("Uniform", x, self.event_shape)
        k = len(self.event_shape)
        inside = ((x >= self.low) & (x < self.high))
        if k:
            inside = inside.flatten(x.dim() - k).all(-1)
        out = torch.full(inside.shape, -math.inf, dtype=x.dtype, device=x.device)
        return torch.where(inside, -self._log_volume, out)


class Cauchy:
    """Product of independent Cauchy distributions: a heavy-tailed proposal (inverse CDF)."""

    def __init__(self, loc: Tensor, scale: float | Tensor = 1.0) -> None:
        _check_loc("Cauchy proposal", loc)
        self.loc, self.scale = loc, _scale_tensor("Cauchy proposal", scale, loc)
        self.event_shape = loc.shape

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        num = _check_num("Cauchy", num, generator, self.loc.device)
        u = torch.rand((num, *self.event_shape), generator=generator, dtype=self.loc.dtype,
                       device=self.loc.device)
        return self.loc + self.scale * torch.tan(math.pi * (u - 0.5))

    def log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)``, shape (num,)."""
        _check_x("Cauchy", x, self.event_shape)
        z = (x - self.loc) / self.scale
        lp = -math.log(math.pi) - torch.log(self.scale) - torch.log1p(z * z)
        return _event_sum(lp, len(self.event_shape))


class DistributionProposal:
    """Adapt a ``torch.distributions.Distribution`` (empty ``batch_shape``) to :class:`Proposal`.

    Sampling draws one seed from ``generator`` and samples inside ``torch.random.fork_rng`` so the
    global RNG is restored afterwards; the draws are reproducible from ``generator``.
    """

    def __init__(self, distribution: torch.distributions.Distribution) -> None:
        if not isinstance(distribution, torch.distributions.Distribution):
            raise ValidationError("DistributionProposal", "needs a torch Distribution",
                                  found=type(distribution).__name__)
        if distribution.batch_shape != torch.Size():
            raise ShapeError(
                f"proposal {type(distribution).__name__}",
                "must have an empty batch_shape (one joint distribution over the event)",
                found=tuple(distribution.batch_shape),
                fix="wrap it: torch.distributions.Independent(dist, len(dist.batch_shape))",
            )
        self.distribution = distribution
        self.event_shape = distribution.event_shape

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        num = _check_num("DistributionProposal", num, generator, None)
        if generator is None:  # still reproducible from the global RNG's state
            generator = torch.Generator().manual_seed(random_seed(None))
        return sample_distribution(self.distribution, (num,), generator)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)``, shape (num,)."""
        return self.distribution.log_prob(x)


def as_proposal(q: Proposal | torch.distributions.Distribution) -> Proposal:
    """``q`` itself, or a :class:`DistributionProposal` around a torch distribution."""
    if isinstance(q, torch.distributions.Distribution):
        return DistributionProposal(q)
    if not isinstance(q, Proposal):
        raise ValidationError(
            "proposal", "must have sample(num, generator) and log_prob(x)",
            found=type(q).__name__,
            fix="use samplers.proposals.Gaussian / Uniform / Cauchy or a torch distribution",
        )
    return q
