"""Metrics for deep generative models: likelihoods, divergences, two-sample and mode figures.

- :mod:`~generative.metrics.likelihood`: importance-sampled log-likelihood (VAE test NLL);
- :mod:`~generative.metrics.divergences`: KL (discrete, Gaussian), JS, 1-D empirical and Gaussian
  closed-form Wasserstein;
- :mod:`~generative.metrics.two_sample`: unbiased MMD, sliced Wasserstein, k-NN precision/recall;
- :mod:`~generative.metrics.modes`: mode coverage and high-quality fraction on mixture toys;
- :mod:`~generative.metrics.frechet`: Frechet distance between feature distributions, and the
  Frechet *classifier* distance in the features of a small Fashion-MNIST classifier trained by
  this project (not Inception-FID: its numbers are not comparable with published FIDs).

Examples
--------
>>> import torch
>>> from generative.metrics import kl_normal_diag
>>> kl_normal_diag(torch.zeros(2), torch.zeros(2))
tensor(0.)
"""

from .divergences import (
    gaussian_w2,
    js_discrete,
    kl_discrete,
    kl_gaussian,
    kl_normal_diag,
    sqrtm_psd,
    wasserstein_1d,
)
from .frechet import frechet_distance
from .likelihood import (
    BatchedProposal,
    DiagonalNormalProposal,
    LogLikelihoodEstimate,
    importance_log_likelihood,
)
from .modes import ModeCoverage, mode_coverage, ring_centers
from .two_sample import (
    PrecisionRecall,
    median_bandwidth,
    mmd2,
    precision_recall,
    sliced_wasserstein,
)

__all__ = [
    "BatchedProposal",
    "DiagonalNormalProposal",
    "LogLikelihoodEstimate",
    "ModeCoverage",
    "PrecisionRecall",
    "frechet_distance",
    "gaussian_w2",
    "importance_log_likelihood",
    "js_discrete",
    "kl_discrete",
    "kl_gaussian",
    "kl_normal_diag",
    "median_bandwidth",
    "mmd2",
    "mode_coverage",
    "precision_recall",
    "ring_centers",
    "sliced_wasserstein",
    "sqrtm_psd",
    "wasserstein_1d",
]
