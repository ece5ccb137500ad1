"""Mode coverage and sample quality on Gaussian-mixture toys (mode-collapse diagnostics).

The classic GAN mode-collapse experiment ("target: 8 modes", USTC slides; Srivastava et al. 2017,
Metz et al. 2017) draws samples from the model and assigns each to its nearest mixture centre:

- a sample is *high quality* if it lies within ``num_std`` standard deviations of that centre
  (default 3, which keeps 98.9 % of a 2-D Gaussian's mass);
- a mode is *covered* if it receives at least ``min_count`` high-quality samples; the default is
  10 % of its fair share, ``max(1, ceil(0.1 * n / K))``, so that a stray sample does not count;
- ``mode_kl`` is ``KL(h || uniform)`` of the histogram ``h`` of high-quality samples over the
  modes (0 when the modes are equally populated, ``log K`` for total collapse onto one mode);
  when no sample is high quality at all (no mode is hit) it is ``log K`` too, the worst value,
  never NaN.

Examples
--------
>>> import math, torch
>>> from generative.metrics.modes import mode_coverage, ring_centers
>>> c = ring_centers(8, radius=2.0)
>>> r = mode_coverage(c.repeat(10, 1), c, std=0.02)
>>> r.modes_covered, r.high_quality_fraction, round(r.mode_kl, 6)
(8, 1.0, 0.0)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.validate import check_finite, check_int, check_real, check_tensor

__all__ = ["ModeCoverage", "mode_coverage", "ring_centers"]


def ring_centers(num_modes: int = 8, radius: float = 2.0, *,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """Centres ``radius (cos 2 pi k / K, sin 2 pi k / K)`` of a ring mixture, shape (K, 2).

    ``num_modes >= 1``; ``radius`` a finite number; ``dtype`` floating.
    """
    num_modes = check_int(num_modes, "ring_centers num_modes", minimum=1)
    radius = check_real(radius, "ring_centers radius")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError("ring_centers dtype", "must be a floating torch.dtype",
                              found=repr(dtype))
    angle = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (radius * torch.stack([torch.cos(angle), torch.sin(angle)], -1)).to(dtype)


class ModeCoverage(NamedTuple):
    """Result of :func:`mode_coverage`.

    Attributes
    ----------
    modes_covered : int
        Modes with at least ``min_count`` high-quality samples.
    num_modes : int
    high_quality_fraction : float
        Share of samples within ``num_std`` standard deviations of their nearest centre.
    counts : Tensor (K,)
        High-quality samples per mode.
    mode_kl : float
        ``KL(counts / sum || uniform)`` in nats; ``log K`` (total collapse, the maximum) if no
        sample is high quality.
    """

    modes_covered: int
    num_modes: int
    high_quality_fraction: float
    counts: Tensor
    mode_kl: float


def mode_coverage(samples: Tensor, centers: Tensor, std: float, *, num_std: float = 3.0,
                  min_count: int | None = None) -> ModeCoverage:
    """Count the mixture modes a sample covers and the share of high-quality samples.

    Parameters
    ----------
    samples : Tensor (n, d)
        ``n >= 1`` finite floating points.
    centers : Tensor (K, d)
        ``K >= 1`` finite mixture means.
    std : float
        Standard deviation of each (isotropic) component, ``> 0``.
    num_std : float
        High-quality radius in standard deviations, ``> 0``.
    min_count : int, optional
        High-quality samples a mode needs to count as covered, ``>= 1`` (default
        ``ceil(0.1 n / K)``).

    Returns
    -------
    ModeCoverage

    Raises
    ------
    ShapeError
        Not ``(n, d)`` and ``(K, d)`` with ``n, K >= 1``, ``d >= 1``.
    NonFiniteError
        NaN or infinite samples or centres.
    """
    samples = check_tensor(samples, "mode_coverage samples", floating=True, ndim=2)
    centers = check_tensor(centers, "mode_coverage centers", floating=True, ndim=2)
    if samples.shape[1] != centers.shape[1] or samples.shape[1] == 0:
        raise ShapeError("mode_coverage", "samples must be (n, d) and centers (K, d), d >= 1",
                         found=(tuple(samples.shape), tuple(centers.shape)))
    if samples.shape[0] == 0 or centers.shape[0] == 0:
        raise ShapeError("mode_coverage", "needs at least one sample and one centre",
                         found=(tuple(samples.shape), tuple(centers.shape)))
    std = check_real(std, "mode_coverage std", minimum=0.0, strict_minimum=True)
    num_std = check_real(num_std, "mode_coverage num_std", minimum=0.0, strict_minimum=True)
    if min_count is not None:
        min_count = check_int(min_count, "mode_coverage min_count", minimum=1)
    if not bool(torch.isfinite(samples).all()):
        raise NonFiniteError("mode_coverage: samples", "contain NaN or inf",
                             fix="the generator diverged; check its training losses")
    check_finite(centers, "mode_coverage centers")
    n, k = samples.shape[0], centers.shape[0]
    centers = centers.to(samples)
    d = torch.cdist(samples.detach(), centers)
    dist, idx = d.min(1)
    good = dist <= num_std * std
    counts = torch.bincount(idx[good], minlength=k)
    need = max(1, math.ceil(0.1 * n / k)) if min_count is None else min_count
    covered = int((counts >= need).sum())
    total = int(counts.sum())
    if total == 0:
        kl = math.log(k)  # no mode hit at all: as collapsed as it gets (not an undefined 0/0)
    else:
        h = counts.double() / total
        nz = h > 0
        kl = float((h[nz] * torch.log(h[nz] * k)).sum())
    return ModeCoverage(covered, k, total / max(n, 1), counts, kl)
