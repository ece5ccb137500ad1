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

from typing import TYPE_CHECKING

from probforge.lazy import lazy_exports

# Imported on first use (PEP 562): `probforge --help` must not import torch.
if TYPE_CHECKING:
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

_EXPORTS = {
    "BaumWelchResult": "pgm.hmm.baum_welch",
    "BernoulliEmission": "pgm.hmm.emissions",
    "BernoulliPrior": "pgm.hmm.emissions",
    "CategoricalEmission": "pgm.hmm.emissions",
    "CategoricalPrior": "pgm.hmm.emissions",
    "Emission": "pgm.hmm.emissions",
    "GaussianEmission": "pgm.hmm.emissions",
    "GaussianMixtureEmission": "pgm.hmm.emissions",
    "GaussianMixturePrior": "pgm.hmm.emissions",
    "GaussianPrior": "pgm.hmm.emissions",
    "HMMDistribution": "pgm.hmm.distribution",
    "HMMModule": "pgm.hmm.module",
    "HMMPath": "pgm.hmm.inference",
    "HMMPosterior": "pgm.hmm.inference",
    "HMMSample": "pgm.hmm.model",
    "HiddenMarkovModel": "pgm.hmm.model",
    "LogLikelihoodEmission": "pgm.hmm.emissions",
    "NeuralEmission": "pgm.hmm.emissions",
    "PoissonEmission": "pgm.hmm.emissions",
    "PoissonPrior": "pgm.hmm.emissions",
    "SufficientStats": "pgm.hmm.baum_welch",
    "aic": "pgm.hmm.selection",
    "baum_welch_step": "pgm.hmm.baum_welch",
    "bic": "pgm.hmm.selection",
    "chain_inputs": "pgm.hmm.inference",
    "e_step": "pgm.hmm.baum_welch",
    "filter_states": "pgm.hmm.inference",
    "fit": "pgm.hmm.baum_welch",
    "fit_gradient": "pgm.hmm.module",
    "init_hmm": "pgm.hmm.baum_welch",
    "kbest": "pgm.hmm.inference",
    "log_likelihood": "pgm.hmm.inference",
    "log_prior": "pgm.hmm.baum_welch",
    "m_step": "pgm.hmm.baum_welch",
    "n_parameters": "pgm.hmm.selection",
    "posterior": "pgm.hmm.inference",
    "sample_states": "pgm.hmm.inference",
    "viterbi": "pgm.hmm.inference",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
