"""Emission families of hidden Markov models: ``log p(x_t | y_t = k)`` for every state ``k``.

Every emission is an immutable object holding its parameters as tensors. It provides

- :meth:`Emission.log_prob`: observations ``(..., T, *event)`` -> log-likelihoods ``(..., T, K)``;
- :meth:`Emission.check`: named errors for invalid observations (symbols out of range, NaN ...);
- :meth:`Emission.m_step`: a new emission from posterior weights (maximum likelihood, or MAP with
  the family's conjugate prior);
- :meth:`Emission.sample`: draws given states, with an explicit generator;
- :meth:`Emission.init`: k-means or random initialisation from data, with a generator;
- :meth:`Emission.n_parameters` and :meth:`Emission.log_prior` (for model selection and MAP-EM).

Families: :class:`CategoricalEmission`, :class:`GaussianEmission` (full, diag, spherical, tied),
:class:`GaussianMixtureEmission`, :class:`PoissonEmission`, :class:`BernoulliEmission`, plus
:class:`LogLikelihoodEmission` (the user gives the log-likelihood tensor itself) and
:class:`NeuralEmission` (any ``nn.Module`` mapping observations to log-likelihoods).

Prior conventions follow hmmlearn where it has them, so the same settings give the same M-step
(see each class), with two deliberate differences: a scalar ``covars_prior`` of a full or tied
covariance means ``covars_prior * I`` (hmmlearn adds the scalar to every entry), and the Poisson
Gamma prior is per state (hmmlearn divides by the posterior mass of all states together).

Examples
--------
>>> import torch
>>> from pgm.hmm.emissions import CategoricalEmission
>>> em = CategoricalEmission(torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log())
>>> em.log_prob(torch.tensor([0, 1, 1])).exp()
tensor([[0.9000, 0.2000],
        [0.1000, 0.8000],
        [0.1000, 0.8000]])
"""

from __future__ import annotations

from ._base import CovarianceType, Emission
from .categorical import CategoricalEmission, CategoricalPrior
from .counts import BernoulliEmission, BernoulliPrior, PoissonEmission, PoissonPrior
from .gaussian import GaussianEmission, GaussianPrior
from .mixture import GaussianMixtureEmission, GaussianMixturePrior
from .user import LogLikelihoodEmission, NeuralEmission

__all__ = [
    "BernoulliEmission",
    "BernoulliPrior",
    "CategoricalEmission",
    "CategoricalPrior",
    "CovarianceType",
    "Emission",
    "GaussianEmission",
    "GaussianMixtureEmission",
    "GaussianMixturePrior",
    "GaussianPrior",
    "LogLikelihoodEmission",
    "NeuralEmission",
    "PoissonEmission",
    "PoissonPrior",
]
