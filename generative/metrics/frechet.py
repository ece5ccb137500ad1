"""Frechet distance between two feature distributions, each summarised by a Gaussian.

``FD = ||m1 - m2||^2 + tr(S1 + S2 - 2 (S2^{1/2} S1 S2^{1/2})^{1/2})``: the *squared* 2-Wasserstein
distance between ``N(m1, S1)`` and ``N(m2, S2)`` fitted to the features (Heusel et al. 2017).
Inception-FID is this in the features of an Inception-v3 network; probforge ships no Inception
weights, so :func:`generative.fd_classifier.classifier_frechet_distance` computes it in the
features of a small Fashion-MNIST classifier trained by this project instead. Those numbers are
**not** Inception-FID and are not comparable with published FIDs; compare models with each other.

Examples
--------
>>> import torch
>>> f = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
>>> float(frechet_distance(f, f))
0.0
"""

from __future__ import annotations

from torch import Tensor

from probforge.errors import ShapeError
from probforge.validate import check_finite, check_tensor

from .divergences import gaussian_w2

__all__ = ["feature_moments", "frechet_distance"]


def feature_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of finite floating features (n, d), n >= 2,
    d >= 1."""
    features = check_tensor(features, "frechet features", floating=True, ndim=2)
    if features.shape[0] < 2 or features.shape[1] < 1:
        raise ShapeError("frechet features", "must be (n, d) with n >= 2 and d >= 1",
                         found=tuple(features.shape),
                         fix="a covariance needs at least two feature vectors")
    check_finite(features, "frechet features")
    mu = features.mean(0)
    c = features - mu
    return mu, c.T @ c / (features.shape[0] - 1)


def frechet_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    """Frechet distance (a squared W2) between Gaussians fitted to two feature sets (n, d), (m, d).

    Computed in float64 whatever the inputs' (floating) dtype. Both sets need ``n >= 2`` finite
    rows of the same ``d >= 1`` on one device; identical sets give ``0``.
    """
    features_a = check_tensor(features_a, "frechet_distance features_a", floating=True)
    features_b = check_tensor(features_b, "frechet_distance features_b", floating=True,
                              device=features_a.device)
    if features_a.dim() != 2 or features_b.dim() != 2 or \
            features_a.shape[1] != features_b.shape[1]:
        raise ShapeError("frechet_distance", "features must be (n, d) and (m, d)",
                         found=(tuple(features_a.shape), tuple(features_b.shape)))
    ma, ca = feature_moments(features_a.detach().double())
    mb, cb = feature_moments(features_b.detach().double())
    return gaussian_w2(ma, ca, mb, cb, squared=True)
