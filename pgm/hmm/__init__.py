"""Hidden Markov models on the shared chain core (``probforge.ops.chain``).

- :class:`HiddenMarkovModel` (:mod:`pgm.hmm.model`): initial / transition log-probabilities plus an
  emission family (:mod:`pgm.hmm.emissions`: categorical, Gaussian with full / diag / spherical /
  tied covariances, Gaussian mixture, Poisson, Bernoulli, user log-likelihoods, neural modules).
- Inference on batches of variable-length sequences with missing observations and clamped states
  (:mod:`pgm.hmm.inference`): log-likelihood, posteriors, filtering, Viterbi, k-best, FFBS.
- Learning: Baum-Welch with conjugate priors (:mod:`pgm.hmm.baum_welch`), gradient training
  (:mod:`pgm.hmm.module`), a Pyro-compatible distribution (:mod:`pgm.hmm.distribution`).
- Model selection (:mod:`pgm.hmm.selection`): parameter counts, AIC, BIC.
"""

from pgm.hmm.baum_welch import (
    BaumWelchResult,
    SufficientStats,
    baum_welch_step,
    e_step,
    fit,
    init_hmm,
    log_prior,
    m_step,
)
from pgm.hmm.distribution import HMMDistribution
from pgm.hmm.emissions import (
    BernoulliEmission,
    BernoulliPrior,
    CategoricalEmission,
    CategoricalPrior,
    Emission,
    GaussianEmission,
    GaussianMixtureEmission,
    GaussianMixturePrior,
    GaussianPrior,
    LogLikelihoodEmission,
    NeuralEmission,
    PoissonEmission,
    PoissonPrior,
)
from pgm.hmm.inference import (
    HMMPath,
    HMMPosterior,
    chain_inputs,
    filter_states,
    kbest,
    log_likelihood,
    posterior,
    sample_states,
    viterbi,
)
from pgm.hmm.model import HiddenMarkovModel, HMMSample
from pgm.hmm.module import HMMModule, fit_gradient
from pgm.hmm.selection import aic, bic, n_parameters

__all__ = [
    "BaumWelchResult",
    "BernoulliEmission",
    "BernoulliPrior",
    "CategoricalEmission",
    "CategoricalPrior",
    "Emission",
    "GaussianEmission",
    "GaussianMixtureEmission",
    "GaussianMixturePrior",
    "GaussianPrior",
    "HMMDistribution",
    "HMMModule",
    "HMMPath",
    "HMMPosterior",
    "HMMSample",
    "HiddenMarkovModel",
    "LogLikelihoodEmission",
    "NeuralEmission",
    "PoissonEmission",
    "PoissonPrior",
    "SufficientStats",
    "aic",
    "baum_welch_step",
    "bic",
    "chain_inputs",
    "e_step",
    "filter_states",
    "fit",
    "fit_gradient",
    "init_hmm",
    "kbest",
    "log_likelihood",
    "log_prior",
    "m_step",
    "n_parameters",
    "posterior",
    "sample_states",
    "viterbi",
]
