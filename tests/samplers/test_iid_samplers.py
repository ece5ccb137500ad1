"""Plain Monte Carlo, inverse CDF, rejection and importance sampling (i.i.d. samplers).

False-failure rates are stated per test; z-tests at 4 standard errors have alpha = 6.3e-5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from probforge.errors import SamplingError, ValidationError
from probforge.ops import make_generator
from samplers.importance import ImportanceWarning, importance_sample, kish_ess
from samplers.monte_carlo import estimate_pi, inverse_cdf_sample, monte_carlo_expectation
from samplers.proposals import Cauchy, DistributionProposal, Gaussian
from samplers.rejection import (
    EnvelopeWarning,
    estimate_log_envelope,
    rejection_sample,
)
from tests.stats import ks_test, seed_for, z_test_mean

# A Fig. 11.15-like target on [-6, 6]: an unnormalised two-component mixture, Z = 2.5.
Z = 2.5
W, MU, SIG = (0.6, 0.4), (-1.5, 2.0), (1.0, 0.8)


def log_p_hat(x: torch.Tensor) -> torch.Tensor:
    v = x[:, 0]
    comps = [math.log(w) - 0.5 * ((v - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
             for w, m, s in zip(W, MU, SIG, strict=True)]
    return math.log(Z) + torch.logsumexp(torch.stack(comps), 0)


def mixture_cdf(x: np.ndarray) -> np.ndarray:
    return sum(w * stats.norm.cdf(x, m, s) for w, m, s in zip(W, MU, SIG, strict=True))


MIX_MEAN = sum(w * m for w, m in zip(W, MU, strict=True))
MIX_VAR = sum(w * (s**2 + m**2) for w, m, s in zip(W, MU, SIG, strict=True)) - MIX_MEAN**2
PROPOSAL = Gaussian(torch.zeros(1, dtype=torch.float64), 3.0)


def exact_log_M() -> float:
    grid = torch.linspace(-30, 30, 600_001, dtype=torch.float64).unsqueeze(-1)
    return float((log_p_hat(grid) - PROPOSAL.log_prob(grid)).max()) + 1e-6


# plain Monte Carlo ----------------------------------------------------------------------------
def test_pi_estimate_and_expectation() -> None:
    est = estimate_pi(200_000, generator=make_generator(seed_for(0)))
    z_test_mean(float(est.mean), math.pi, float(est.std_error), alpha=1e-4)
    assert float(est.std_error) < 0.005

    def draw(n: int, g: torch.Generator | None) -> torch.Tensor:
        return torch.rand(n, generator=g, dtype=torch.float64)

    e = monte_carlo_expectation(lambda u: torch.stack([u, u**2], -1), draw, 50_000,
                                generator=make_generator(seed_for(1)), batch_size=7_000)
    z_test_mean(float(e.mean[0]), 0.5, float(e.std_error[0]), alpha=1e-4 / 2)
    z_test_mean(float(e.mean[1]), 1 / 3, float(e.std_error[1]), alpha=1e-4 / 2)


def test_inverse_cdf_exponential_ks() -> None:
    x = inverse_cdf_sample(lambda u: -torch.log1p(-u) / 2.0, 20_000,
                           generator=make_generator(seed_for(2)))
    ks_test(x, ("expon", 0.0, 0.5), alpha=1e-4)
    with pytest.raises(ValidationError, match="non-finite"):
        inverse_cdf_sample(lambda u: torch.log(u - u), 10)


# rejection ------------------------------------------------------------------------------------
def test_rejection_exact_draws_and_acceptance_rate_z_over_m() -> None:
    log_M = exact_log_M()
    r = rejection_sample(log_p_hat, PROPOSAL, log_M, 20_000,
                         generator=make_generator(seed_for(3)), batch_size=5_000)
    assert r.samples.shape == (20_000, 1) and r.num_accepted == 20_000
    assert r.num_violations == 0 and r.max_log_ratio <= 1e-9
    # acceptance ~ Z / M: a binomial z-test (alpha 1e-4 / 3 each for the family of three)
    z_test_mean(r.acceptance_rate, r.expected_rate(math.log(Z)), r.acceptance_rate_se, 1e-4 / 3)
    ks_test(r.samples, mixture_cdf, 1e-4 / 3)
    z_test_mean(float(r.samples.mean()), MIX_MEAN, math.sqrt(MIX_VAR / 20_000), 1e-4 / 3)
    assert abs(r.log_evidence() - math.log(Z)) < 0.05


def test_rejection_counts_error_and_envelope_checks() -> None:
    log_M = exact_log_M()
    with pytest.raises(SamplingError, match="max_proposals = 500") as err:
        rejection_sample(log_p_hat, PROPOSAL, log_M + 20, 10, max_proposals=500,
                         generator=make_generator(0))
    assert err.value.found["num_proposed"] == 500 and err.value.found["num_accepted"] < 10
    with pytest.raises(ValidationError, match="k q >= p_hat is violated"):
        rejection_sample(log_p_hat, PROPOSAL, log_M - 1.0, 100, generator=make_generator(0))
    with pytest.warns(EnvelopeWarning):
        r = rejection_sample(log_p_hat, PROPOSAL, log_M - 1.0, 100, on_violation="warn",
                             generator=make_generator(0))
    assert r.num_violations > 0
    bound = estimate_log_envelope(log_p_hat, PROPOSAL, generator=make_generator(1))
    assert bound > log_M - 0.01  # the heuristic bound with its margin covers the true sup


def test_rejection_reproducible_and_global_rng_untouched() -> None:
    dist = torch.distributions.Independent(torch.distributions.Normal(
        torch.zeros(1, dtype=torch.float64), 3.0), 1)
    q = DistributionProposal(dist)
    state = torch.get_rng_state()
    a = rejection_sample(log_p_hat, q, exact_log_M(), 500, generator=make_generator(5))
    b = rejection_sample(log_p_hat, q, exact_log_M(), 500, generator=make_generator(5))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.samples, b.samples) and a.num_proposed == b.num_proposed


# importance -----------------------------------------------------------------------------------
def test_importance_log_evidence_and_expectations() -> None:
    r = importance_sample(log_p_hat, Cauchy(torch.zeros(1, dtype=torch.float64), 2.0), 50_000,
                          generator=make_generator(seed_for(6)))
    # log Z within 4 SE (alpha = 6.3e-5), ESS, Pareto k
    assert abs(r.log_evidence - math.log(Z)) < 4 * r.log_evidence_se
    assert r.pareto_k < 0.7 and not r.warnings
    assert 0.2 * 50_000 < r.ess <= 50_000
    assert math.isclose(r.ess, float(kish_ess(r.log_weights)))
    assert torch.allclose(r.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    m = r.expectation(lambda x: x[:, 0])  # self-normalised (11.106)
    assert abs(float(m.mean) - MIX_MEAN) < 4 * float(m.std_error)
    # (11.103) with a normalised target: E[x] directly; with p_hat it is Z E[x]
    norm = importance_sample(lambda x: log_p_hat(x) - math.log(Z),
                             Cauchy(torch.zeros(1, dtype=torch.float64), 2.0), 50_000,
                             generator=make_generator(seed_for(7)))
    u = norm.expectation(lambda x: x[:, 0], self_normalised=False)
    assert abs(float(u.mean) - MIX_MEAN) < 4 * float(u.std_error)
    one = norm.expectation(lambda x: torch.ones_like(x[:, 0]), self_normalised=False)
    assert abs(float(one.mean) - 1.0) < 4 * float(one.std_error)


def test_importance_pareto_k_warns_on_a_bad_proposal() -> None:
    narrow = Gaussian(torch.zeros(1, dtype=torch.float64), 0.5)  # much lighter tails than p
    with pytest.warns(ImportanceWarning, match="Pareto k"):
        r = importance_sample(log_p_hat, narrow, 5_000, generator=make_generator(seed_for(8)))
    assert r.pareto_k > 0.7 and r.warnings and "Pareto k" in r.warnings[0]
    assert r.ess < 500


def test_importance_errors() -> None:
    with pytest.raises(ValidationError, match="num_samples"):
        importance_sample(log_p_hat, PROPOSAL, 1)
    with pytest.raises(ValidationError, match="zero"):
        importance_sample(lambda x: torch.full_like(x[:, 0], -math.inf), PROPOSAL, 10,
                          diagnose=False)
