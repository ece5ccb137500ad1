"""Two-sample discrepancies of model samples and data: MMD, sliced Wasserstein, precision/recall.

For low-dimensional data (the 2-D toys, or features):

- :func:`mmd2` the *unbiased* estimate of the squared maximum mean discrepancy (Gretton et al.
  2012, eq. 3) with a Gaussian (RBF) kernel ``k(a, b) = exp(-||a - b||^2 / (2 h^2))`` or a sum of
  them. Bandwidth choice: by default ``h`` is the *median heuristic*, the median of the pairwise
  distances in the pooled sample ``x ∪ y`` (computed once, without gradient), multiplied by
  ``scales`` (default ``(0.5, 1, 2)``, a sum of three kernels, which is less sensitive to a bad
  median than one kernel). Pass ``bandwidth=`` to fix ``h`` (e.g. when comparing several models
  against the same data: use one fixed bandwidth for all of them). The unbiased estimate can be
  slightly negative when the distributions are equal.
- :func:`sliced_wasserstein` ``SW_p`` averaged over random unit directions, each 1-D ``W_p``
  computed exactly by :func:`generative.metrics.divergences.wasserstein_1d`.
- :func:`precision_recall` the k-nearest-neighbour manifold estimate of Kynkäänniemi et al. (2019):
  precision = share of generated samples inside the union of k-NN balls around real samples;
  recall = share of real samples inside the union of k-NN balls around generated samples.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.metrics.two_sample import mmd2, sliced_wasserstein
>>> g = make_generator(0)
>>> x = torch.randn(200, 2, generator=g)
>>> bool(mmd2(x, x + 3) > mmd2(x, torch.randn(200, 2, generator=g)))
True
>>> float(sliced_wasserstein(x, x, generator=g))
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import normal
from probforge.validate import check_int, check_real, check_tensor

from ..checks import check_optional_generator, check_positive_real
from .divergences import wasserstein_1d

__all__ = ["PrecisionRecall", "median_bandwidth", "mmd2", "precision_recall",
           "sliced_wasserstein"]


def _flat_pair(name: str, x: Tensor, y: Tensor, min_n: int = 1) -> tuple[Tensor, Tensor]:
    x = check_tensor(x, f"{name} x", floating=True)
    y = check_tensor(y, f"{name} y", floating=True, device=x.device)
    if x.dim() < 1 or y.dim() < 1:
        raise ShapeError(name, "samples must be (n, *event)",
                         found=(tuple(x.shape), tuple(y.shape)))
    if x.dtype != y.dtype:
        raise DtypeMismatchError(name, "both samples must share a dtype",
                                 found=(x.dtype, y.dtype), fix="convert one of them")
    if tuple(x.shape[1:]) != tuple(y.shape[1:]) or math.prod(x.shape[1:]) == 0:
        raise ShapeError(name, "both samples must have the same, non-empty event shape",
                         found=(tuple(x.shape), tuple(y.shape)))
    d = math.prod(x.shape[1:])
    xf, yf = x.reshape(x.shape[0], d), y.reshape(y.shape[0], d)
    if xf.shape[0] < min_n or yf.shape[0] < min_n:
        raise ShapeError(name, f"each sample needs at least {min_n} points",
                         found=(xf.shape[0], yf.shape[0]))
    if not (bool(torch.isfinite(xf).all()) and bool(torch.isfinite(yf).all())):
        raise NonFiniteError(name, "samples contain NaN or inf")
    return xf, yf


def median_bandwidth(x: Tensor, y: Tensor) -> Tensor:
    """Median pairwise Euclidean distance in the pooled sample (the median heuristic), detached.

    Parameters
    ----------
    x : Tensor (n, *event)
    y : Tensor (m, *event)

    Returns
    -------
    Tensor ()
        ``1`` when every pooled point coincides (the median distance is 0: any positive
        bandwidth is as good, and 1 keeps the kernel finite).

    Raises
    ------
    ShapeError
        Fewer than two points in all (no pair to measure).
    """
    xf, yf = _flat_pair("median_bandwidth", x, y)
    if xf.shape[0] + yf.shape[0] < 2:
        raise ShapeError("median_bandwidth", "needs at least two points in all",
                         found=(xf.shape[0], yf.shape[0]))
    z = torch.cat([xf, yf]).detach()
    d = torch.cdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], 1, device=z.device)
    med = d[iu[0], iu[1]].median()
    return med if bool(med > 0) else torch.ones_like(med)


def mmd2(x: Tensor, y: Tensor, *, bandwidth: float | Tensor | None = None,
         scales: Sequence[float] = (0.5, 1.0, 2.0)) -> Tensor:
    """Unbiased estimate of the squared MMD between the laws of ``x`` and ``y`` (RBF kernels).

    ``MMD^2_u = sum_{i != j} k(x_i, x_j) / (n(n-1)) + sum_{i != j} k(y_i, y_j) / (m(m-1))
    - 2 sum_{i, j} k(x_i, y_j) / (nm)`` with ``k = sum_s exp(-||a - b||^2 / (2 (s h)^2))``.

    Parameters
    ----------
    x : Tensor (n, *event)
    y : Tensor (m, *event)
        ``n, m >= 2``; events are flattened.
    bandwidth : float or Tensor, optional
        ``h``; default: the median heuristic (:func:`median_bandwidth`).
    scales : sequence of float
        Multipliers of ``h``; one kernel per scale, summed.

    Returns
    -------
    Tensor ()
        Differentiable in ``x`` and ``y`` (the median bandwidth is not).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0], [2.0]])
    >>> float(mmd2(x, x, bandwidth=1.0)) < 0
    True
    """
    xf, yf = _flat_pair("mmd2", x, y, min_n=2)
    if isinstance(scales, str | bytes) or not isinstance(scales, Sequence) or not scales:
        raise ValidationError("mmd2 scales", "must be a non-empty sequence of positive numbers",
                              found=repr(scales))
    scales = [check_positive_real(s, f"mmd2 scales[{i}]") for i, s in enumerate(scales)]
    if bandwidth is None:
        h = median_bandwidth(xf, yf)
    else:
        value = check_positive_real(bandwidth, "mmd2 bandwidth")
        h = (bandwidth.to(dtype=xf.dtype, device=xf.device) if isinstance(bandwidth, Tensor)
             else torch.as_tensor(value, dtype=xf.dtype, device=xf.device))
    n, m = xf.shape[0], yf.shape[0]

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * (s * h) ** 2)) for s in scales)  # type: ignore[return-value]

    kxx, kyy, kxy = kernel(xf, xf), kernel(yf, yf), kernel(xf, yf)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()


def sliced_wasserstein(x: Tensor, y: Tensor, *, num_projections: int = 128, p: float = 2.0,
                       generator: torch.Generator | None = None) -> Tensor:
    """Sliced ``p``-Wasserstein distance ``(E_theta W_p^p(theta^T x, theta^T y))^{1/p}``.

    Directions ``theta`` are uniform on the unit sphere (normalised Gaussian draws from
    ``generator``); each projected ``W_p`` is exact, so the only error is the Monte Carlo average
    over ``num_projections`` directions.

    Parameters
    ----------
    x : Tensor (n, *event)
    y : Tensor (m, *event)
    num_projections : int
    p : float
        ``>= 1``.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor ()
    """
    xf, yf = _flat_pair("sliced_wasserstein", x, y)
    num_projections = check_int(num_projections, "sliced_wasserstein num_projections",
                                minimum=1)
    p = check_real(p, "sliced_wasserstein p", minimum=1.0)
    check_optional_generator(generator, "sliced_wasserstein generator", xf.device)
    d = xf.shape[1]
    theta = normal((d, num_projections), generator=generator, dtype=xf.dtype, device=xf.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, py = (xf @ theta).T, (yf @ theta).T  # (P, n), (P, m)
    wpp = wasserstein_1d(px, py, p=p) ** p
    return wpp.mean() ** (1.0 / p)


class PrecisionRecall(NamedTuple):
    """Improved precision and recall of generated samples (Kynkäänniemi et al. 2019)."""

    precision: float
    recall: float


def _knn_radii(z: Tensor, k: int) -> Tensor:
    d = torch.cdist(z, z)
    # the k-th nearest neighbour other than the point itself is at sorted index k
    return d.kthvalue(k + 1, dim=1).values


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> PrecisionRecall:
    """k-NN manifold precision and recall of ``fake`` with respect to ``real``.

    The real manifold is the union of balls around each real sample with radius its distance to
    its ``k``-th nearest real neighbour; precision is the share of fake samples inside it. Recall
    swaps the roles. Both lie in ``[0, 1]``; identical samples give ``(1, 1)``.

    Parameters
    ----------
    real : Tensor (n, *event)
    fake : Tensor (m, *event)
        ``n, m > k``; events are flattened (use features for images).
    k : int

    Returns
    -------
    PrecisionRecall

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    >>> precision_recall(x, x)
    PrecisionRecall(precision=1.0, recall=1.0)
    """
    k = check_int(k, "precision_recall k", minimum=1)
    rf, ff = _flat_pair("precision_recall", real, fake, min_n=k + 1)
    rf, ff = rf.detach(), ff.detach()
    r_real, r_fake = _knn_radii(rf, k), _knn_radii(ff, k)
    d = torch.cdist(ff, rf)  # (m, n)
    precision = (d <= r_real.unsqueeze(0)).any(1).to(rf.dtype).mean()
    recall = (d.T <= r_fake.unsqueeze(0)).any(1).to(rf.dtype).mean()
    return PrecisionRecall(float(precision), float(recall))
