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

from typing import TYPE_CHECKING

from probforge.lazy import lazy_exports

# Imported on first use (PEP 562): `probforge --help` must not import torch.
if TYPE_CHECKING:
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

_EXPORTS = {
    "AISResult": "samplers.ais",
    "Adaptation": "samplers.adaptation_protocol",
    "Cauchy": "samplers.proposals",
    "DistributionProposal": "samplers.proposals",
    "Estimate": "samplers.monte_carlo",
    "Gaussian": "samplers.proposals",
    "Gibbs": "samplers.gibbs",
    "GibbsBlock": "samplers.gibbs",
    "HMC": "samplers.hmc",
    "HMCParams": "samplers.hmc",
    "ImportanceResult": "samplers.importance",
    "IndependenceMetropolis": "samplers.metropolis",
    "Interval": "samplers.space",
    "Kernel": "samplers.base",
    "LogDensity": "samplers.base",
    "LowerBounded": "samplers.space",
    "MALA": "samplers.mala",
    "MALAParams": "samplers.mala",
    "MetropolisHastings": "samplers.metropolis",
    "NUTS": "samplers.nuts",
    "NUTSParams": "samplers.nuts",
    "Ordered": "samplers.space",
    "ParallelTempering": "samplers.tempering",
    "ParameterSpace": "samplers.space",
    "Positive": "samplers.space",
    "Proposal": "samplers.proposals",
    "RandomWalkMetropolis": "samplers.metropolis",
    "RandomWalkParams": "samplers.metropolis",
    "Real": "samplers.space",
    "RejectionResult": "samplers.rejection",
    "Samples": "samplers.samples",
    "ScaleAdaptation": "samplers.adaptation_protocol",
    "Simplex": "samplers.space",
    "SliceParams": "samplers.slice",
    "SliceSampler": "samplers.slice",
    "SliceWidthAdaptation": "samplers.slice",
    "Support": "samplers.space",
    "TemperingParams": "samplers.tempering",
    "Uniform": "samplers.proposals",
    "WelfordState": "samplers.adaptation_protocol",
    "WindowAdaptation": "samplers.adaptation",
    "annealed_importance_sampling": "samplers.ais:ais",
    "as_log_density": "samplers.base",
    "batched_where": "samplers.base",
    "check": "samplers.diagnostics",
    "concat": "samplers.samples",
    "detailed_balance_violation": "samplers.markov_chain",
    "empirical_transition_matrix": "samplers.markov_chain",
    "ess": "samplers.diagnostics",
    "estimate_log_envelope": "samplers.rejection",
    "estimate_pi": "samplers.monte_carlo",
    "from_pyro_model": "samplers.targets",
    "geometric_betas": "samplers.tempering",
    "gibbs_transition_matrix": "samplers.markov_chain",
    "importance_sample": "samplers.importance",
    "inverse_cdf_sample": "samplers.monte_carlo",
    "mcse": "samplers.diagnostics",
    "metropolis_hastings_matrix": "samplers.markov_chain",
    "monte_carlo_expectation": "samplers.monte_carlo",
    "rejection_sample": "samplers.rejection",
    "rhat": "samplers.diagnostics",
    "sample": "samplers.run",
    "stationary_distribution": "samplers.markov_chain",
    "welford_covariance": "samplers.adaptation_protocol",
    "welford_init": "samplers.adaptation_protocol",
    "welford_update": "samplers.adaptation_protocol",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
