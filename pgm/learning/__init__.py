"""Parameter learning for graphical models.

- Bayesian networks from complete data: :func:`fit_mle` (textbook 11.29, normalised counts) and
  :func:`fit_bayesian` (Dirichlet / BDeu / K2 pseudo-counts), :func:`structure_score`.
- Bayesian networks with missing values and latent variables: :func:`fit_em` (E-step by one
  batched junction-tree calibration over the distinct rows).
- Mixtures: :func:`fit_gmm` and :func:`fit_bernoulli_mixture` (Algorithm 11.1, Exercise 11-6).
- :class:`EMMonitor` tracks the log marginal likelihood of any EM procedure and asserts that it
  never decreases (textbook 11.45).
"""

from pgm.learning.bernoulli_mixture import (
    BernoulliMixture,
    BernoulliMixtureFitResult,
    bernoulli_mixture_elbo,
    fit_bernoulli_mixture,
)
from pgm.learning.bn_em import (
    EMResult,
    expected_family_counts,
    fit_em,
    initial_model,
    observed_log_likelihood,
)
from pgm.learning.counts import NetworkStructure, as_structure, encode_data, family_counts
from pgm.learning.em_monitor import EMMonitor
from pgm.learning.gmm import CovarianceType, GaussianMixture, gmm_elbo
from pgm.learning.gmm_fit import GMMFitResult, fit_gmm
from pgm.learning.parameters import (
    UnseenParentConfigurationError,
    dirichlet_pseudo_counts,
    fit_bayesian,
    fit_mle,
    log_likelihood,
    model_from_counts,
    structure_score,
)

__all__ = [
    "BernoulliMixture",
    "BernoulliMixtureFitResult",
    "CovarianceType",
    "EMMonitor",
    "EMResult",
    "GMMFitResult",
    "GaussianMixture",
    "NetworkStructure",
    "UnseenParentConfigurationError",
    "as_structure",
    "bernoulli_mixture_elbo",
    "dirichlet_pseudo_counts",
    "encode_data",
    "expected_family_counts",
    "family_counts",
    "fit_bayesian",
    "fit_bernoulli_mixture",
    "fit_em",
    "fit_gmm",
    "fit_mle",
    "gmm_elbo",
    "initial_model",
    "log_likelihood",
    "model_from_counts",
    "observed_log_likelihood",
    "structure_score",
]
