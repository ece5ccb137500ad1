"""Generic samplers over batched log-densities and discrete models (issue 4: samplers).

Layer 2 of probforge: imports ``probforge`` only (ArviZ and Pyro lazily, where used).

- Kernels (``init`` / ``step`` over NamedTuples, vectorised over chains, :mod:`samplers.base`):
  :class:`RandomWalkMetropolis`, :class:`IndependenceMetropolis`, :class:`MetropolisHastings`,
  :class:`Gibbs`; gradient-based and others (``HMC``, ``MALA``, ``NUTS``, ``SliceSampler``,
  ``ParallelTempering``) are loaded on first access.
- Driver and output: :func:`sample` (warmup with an :class:`Adaptation`, thinning, progress) ->
  :class:`Samples` -> ``to_arviz()``; :mod:`samplers.diagnostics` (R-hat, ESS, MCSE, warnings).
- Constrained parameters: :class:`ParameterSpace` with :class:`Real`, :class:`Positive`,
  :class:`Interval`, :class:`Simplex`, :class:`Ordered`, ...; Pyro models via
  :func:`from_pyro_model`.
- i.i.d. methods: :func:`rejection_sample`, :func:`importance_sample`,
  :func:`monte_carlo_expectation`, :func:`estimate_pi`, :func:`inverse_cdf_sample`.
- Markov-chain utilities (:mod:`samplers.markov_chain`) and multi-process runs
  (:mod:`samplers.distributed`).

Examples
--------
>>> import torch
>>> import samplers
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> s = samplers.sample(samplers.RandomWalkMetropolis(), logp, torch.zeros(4, 2),
...                     num_draws=100, num_warmup=100, adaptation=samplers.ScaleAdaptation(),
...                     seed=0)
>>> s.num_chains, s.num_draws
(4, 100)
"""

from __future__ import annotations

from samplers.adaptation import WindowAdaptation
from samplers.adaptation_protocol import (
    Adaptation,
    ScaleAdaptation,
    WelfordState,
    welford_covariance,
    welford_init,
    welford_update,
)
from samplers.ais import AISResult
from samplers.ais import ais as annealed_importance_sampling
from samplers.base import Kernel, LogDensity, as_log_density, batched_where
from samplers.diagnostics import check, ess, mcse, rhat
from samplers.gibbs import Gibbs, GibbsBlock
from samplers.hmc import HMC, HMCParams
from samplers.importance import ImportanceResult, importance_sample
from samplers.mala import MALA, MALAParams
from samplers.markov_chain import (
    detailed_balance_violation,
    empirical_transition_matrix,
    gibbs_transition_matrix,
    metropolis_hastings_matrix,
    stationary_distribution,
)
from samplers.metropolis import (
    IndependenceMetropolis,
    MetropolisHastings,
    RandomWalkMetropolis,
    RandomWalkParams,
)
from samplers.monte_carlo import (
    Estimate,
    estimate_pi,
    inverse_cdf_sample,
    monte_carlo_expectation,
)
from samplers.nuts import NUTS, NUTSParams
from samplers.proposals import Cauchy, DistributionProposal, Gaussian, Proposal, Uniform
from samplers.rejection import RejectionResult, estimate_log_envelope, rejection_sample
from samplers.run import sample
from samplers.samples import Samples, concat
from samplers.slice import SliceParams, SliceSampler, SliceWidthAdaptation
from samplers.space import (
    Interval,
    LowerBounded,
    Ordered,
    ParameterSpace,
    Positive,
    Real,
    Simplex,
    Support,
)
from samplers.targets import from_pyro_model
from samplers.tempering import ParallelTempering, TemperingParams, geometric_betas

__all__ = [
    "HMC",
    "MALA",
    "NUTS",
    "AISResult",
    "Adaptation",
    "Cauchy",
    "DistributionProposal",
    "Estimate",
    "Gaussian",
    "Gibbs",
    "GibbsBlock",
    "HMCParams",
    "ImportanceResult",
    "IndependenceMetropolis",
    "Interval",
    "Kernel",
    "LogDensity",
    "LowerBounded",
    "MALAParams",
    "MetropolisHastings",
    "NUTSParams",
    "Ordered",
    "ParallelTempering",
    "ParameterSpace",
    "Positive",
    "Proposal",
    "RandomWalkMetropolis",
    "RandomWalkParams",
    "Real",
    "RejectionResult",
    "Samples",
    "ScaleAdaptation",
    "Simplex",
    "SliceParams",
    "SliceSampler",
    "SliceWidthAdaptation",
    "Support",
    "TemperingParams",
    "Uniform",
    "WelfordState",
    "WindowAdaptation",
    "annealed_importance_sampling",
    "as_log_density",
    "batched_where",
    "check",
    "concat",
    "detailed_balance_violation",
    "empirical_transition_matrix",
    "ess",
    "estimate_log_envelope",
    "estimate_pi",
    "from_pyro_model",
    "geometric_betas",
    "gibbs_transition_matrix",
    "importance_sample",
    "inverse_cdf_sample",
    "mcse",
    "metropolis_hastings_matrix",
    "monte_carlo_expectation",
    "rejection_sample",
    "rhat",
    "sample",
    "stationary_distribution",
    "welford_covariance",
    "welford_init",
    "welford_update",
]
