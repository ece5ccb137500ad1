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
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import check_generator, random_seed, sample_distribution

__all__ = ["Cauchy", "DistributionProposal", "Gaussian", "Proposal", "Uniform", "as_proposal"]


@runtime_checkable
class Proposal(Protocol):
    """A distribution that samples from a given generator and has a normalised log-density."""

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor: ...

    def log_prob(self, x: Tensor) -> Tensor: ...


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
        self.loc = loc
        self.event_shape = loc.shape
        if scale_tril is not None:
            d = loc.numel()
            if loc.dim() != 1 or scale_tril.shape != (d, d):
                raise ShapeError("Gaussian proposal", "scale_tril must be (d, d) for loc (d,)",
                                 found=(tuple(loc.shape), tuple(scale_tril.shape)))
            diag = torch.diagonal(scale_tril)
            if bool((diag <= 0).any()):
                raise ValidationError("Gaussian proposal",
                                      "scale_tril must have a positive diagonal",
                                      found=diag.tolist())
            self.scale_tril: Tensor | None = scale_tril.to(loc)
            self.scale = None
            self._log_det = torch.log(diag.to(loc)).sum()
        else:
            s = torch.as_tensor(1.0 if scale is None else scale, dtype=loc.dtype,
                                device=loc.device)
            if bool((s <= 0).any()):
                raise ValidationError("Gaussian proposal", "scale must be > 0",
                                      found=s.tolist())
            self.scale = s.expand(loc.shape)
            self.scale_tril = None
            self._log_det = torch.log(self.scale).sum()

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        check_generator(generator, self.loc.device)
        z = torch.randn((num, *self.event_shape), generator=generator, dtype=self.loc.dtype,
                        device=self.loc.device)
        if self.scale_tril is not None:
            return self.loc + z @ self.scale_tril.T
        assert self.scale is not None
        return self.loc + self.scale * z

    def log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)``, shape (num,)."""
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
        high_t = torch.as_tensor(high, dtype=low.dtype, device=low.device).expand(low.shape)
        if bool((high_t <= low).any()):
            raise ValidationError("Uniform proposal", "needs high > low everywhere",
                                  found=(low.tolist(), high_t.tolist()))
        self.low, self.high = low, high_t
        self.event_shape = low.shape
        self._log_volume = torch.log(high_t - low).sum()

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        check_generator(generator, self.low.device)
        u = torch.rand((num, *self.event_shape), generator=generator, dtype=self.low.dtype,
                       device=self.low.device)
        return self.low + (self.high - self.low) * u

    def log_prob(self, x: Tensor) -> Tensor:
        """``-log volume`` inside the box, ``-inf`` outside; shape (num,)."""
        k = len(self.event_shape)
        inside = ((x >= self.low) & (x < self.high))
        if k:
            inside = inside.flatten(x.dim() - k).all(-1)
        out = torch.full(inside.shape, -math.inf, dtype=x.dtype, device=x.device)
        return torch.where(inside, -self._log_volume, out)


class Cauchy:
    """Product of independent Cauchy distributions: a heavy-tailed proposal (inverse CDF)."""

    def __init__(self, loc: Tensor, scale: float | Tensor = 1.0) -> None:
        s = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if bool((s <= 0).any()):
            raise ValidationError("Cauchy proposal", "scale must be > 0", found=s.tolist())
        self.loc, self.scale = loc, s.expand(loc.shape)
        self.event_shape = loc.shape

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Draws, shape (num, *event)."""
        check_generator(generator, self.loc.device)
        u = torch.rand((num, *self.event_shape), generator=generator, dtype=self.loc.dtype,
                       device=self.loc.device)
        return self.loc + self.scale * torch.tan(math.pi * (u - 0.5))

    def log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)``, shape (num,)."""
        z = (x - self.loc) / self.scale
        lp = -math.log(math.pi) - torch.log(self.scale) - torch.log1p(z * z)
        return _event_sum(lp, len(self.event_shape))


class DistributionProposal:
    """Adapt a ``torch.distributions.Distribution`` (empty ``batch_shape``) to :class:`Proposal`.

    Sampling draws one seed from ``generator`` and samples inside ``torch.random.fork_rng`` so the
    global RNG is restored afterwards; the draws are reproducible from ``generator``.
    """

    def __init__(self, distribution: torch.distributions.Distribution) -> None:
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
