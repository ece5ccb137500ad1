"""Parameter learning for graphical models: EM for mixture models and its shared monitor.

:class:`EMMonitor` tracks the log marginal likelihood of any EM procedure and asserts that it never
decreases (textbook 11.45); :func:`fit_gmm` and :func:`fit_bernoulli_mixture` fit Gaussian and
Bernoulli mixtures by EM (Algorithm 11.1, Exercise 11-6).
"""

from pgm.learning.bernoulli_mixture import (
    BernoulliMixture,
    BernoulliMixtureFitResult,
    bernoulli_mixture_elbo,
    fit_bernoulli_mixture,
)
from pgm.learning.em_monitor import EMMonitor
from pgm.learning.gmm import CovarianceType, GaussianMixture, GMMFitResult, fit_gmm, gmm_elbo

__all__ = [
    "BernoulliMixture",
    "BernoulliMixtureFitResult",
    "CovarianceType",
    "EMMonitor",
    "GMMFitResult",
    "GaussianMixture",
    "bernoulli_mixture_elbo",
    "fit_bernoulli_mixture",
    "fit_gmm",
    "gmm_elbo",
]
