"""MALA: moments, one-step invariance, MALA without the Hastings correction fails, errors.

False-failure rates: each statistical assertion states its family-wise ``alpha``.
"""

from __future__ import annotations

import pytest
import torch

from probforge.errors import NonFiniteError, ShapeError
from probforge.ops.random import make_generator
from samplers.adaptation import WindowAdaptation
from samplers.mala import MALA, MALAParams
from samplers.run import sample
from tests.samplers._mcmc_checks import (
    DTYPE,
    assert_invariant,
    beta_bernoulli,
    correlated_cov,
    exact_draws,
    gaussian,
    invariance_pvalues,
    mcse_z_test,
    single_thread,  # noqa: F401  (fixture)
)
from tests.stats import seed_for

ALPHA = 1e-3
pytestmark = pytest.mark.usefixtures("single_thread")
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)
COV = correlated_cov(3, 0.8, torch.tensor([1.0, 2.0, 0.5], dtype=DTYPE))


class MALAWithoutHastings(MALA):
    """Deliberately broken: drops ``q(x | x') / q(x' | x)`` (an unadjusted-Langevin ratio)."""

    def _log_hastings(self, x, g, y, gy, eps, metric):  # type: ignore[no-untyped-def]
        return torch.zeros(x.shape[0], dtype=x.dtype)


def test_moments_correlated_gaussian_preconditioned() -> None:
    logp, _ = gaussian(MEAN, COV)
    s = sample(MALA(), logp, torch.zeros(16, 3, dtype=DTYPE), num_draws=600, num_warmup=200,
               params=MALAParams(0.8, COV), seed=seed_for(1))
    mcse_z_test(s["x"], MEAN, ALPHA, COV.diagonal() + MEAN**2)


def test_adapted_step_size_reaches_target_acceptance() -> None:
    logp, _ = gaussian(MEAN, COV)
    s = sample(MALA(), logp, torch.zeros(16, 3, dtype=DTYPE), num_draws=400, num_warmup=400,
               adaptation=WindowAdaptation(target_accept=0.57), seed=seed_for(2))
    # dual averaging hits the target during warmup; the averaged final step size typically
    # accepts a little more often (as in Stan)
    assert 0.5 < float(s.stats["accept_prob"].mean()) < 0.75
    mcse_z_test(s["x"], MEAN, ALPHA)


def test_moments_beta_bernoulli_through_space() -> None:
    logp, space, mean, second = beta_bernoulli()
    x0 = space.initial_position(16, make_generator(seed_for(3)), dtype=DTYPE)
    s = sample(MALA(), logp, x0, num_draws=500, num_warmup=200, params=MALAParams(1.0),
               adaptation=WindowAdaptation(target_accept=0.57), space=space, seed=seed_for(3))
    mcse_z_test(s["theta"][..., None], torch.tensor([mean], dtype=DTYPE), ALPHA,
                torch.tensor([second], dtype=DTYPE))


@pytest.mark.parametrize("imm", ["unit", "diag", "dense"])
def test_one_step_invariance(imm: str) -> None:
    logp, chol = gaussian(MEAN, COV)
    g = make_generator(seed_for(12))
    x0 = exact_draws(MEAN, chol, 20000, g)
    metric, eps = {"unit": (None, 0.3), "diag": (COV.diagonal(), 0.5), "dense": (COV, 0.9)}[imm]
    kernel = MALA()
    state, info = kernel.step(kernel.init(x0, logp), logp, MALAParams(eps, metric), g)
    assert float(info.is_accepted.double().mean()) > 0.3
    assert_invariant(state.position, MEAN, chol, ALPHA)


def test_missing_hastings_correction_fails_invariance() -> None:
    logp, chol = gaussian(MEAN, COV)
    g = make_generator(seed_for(12))
    x0 = exact_draws(MEAN, chol, 20000, g)
    kernel = MALAWithoutHastings()
    state, _ = kernel.step(kernel.init(x0, logp), logp, MALAParams(0.5, COV.diagonal()), g)
    ps = invariance_pvalues(state.position, MEAN, chol)
    assert min(ps) < ALPHA / len(ps)


def test_hastings_term_is_the_proposal_density_ratio() -> None:
    """Against torch.distributions: log q(x|y) - log q(y|x) for the dense-preconditioned case."""
    from samplers._kernel_utils import Metric

    g = make_generator(seed_for(0))
    x, y, gx, gy = torch.randn(4, 5, 3, generator=g, dtype=DTYPE)
    eps = torch.full((5, 1), 0.7, dtype=DTYPE)
    metric = Metric(COV, 3, x)
    ours = MALA()._log_hastings(x, gx, y, gy, eps, metric)
    cov = 0.49 * COV
    mvn = torch.distributions.MultivariateNormal
    back = mvn(y + 0.245 * gy @ COV, cov).log_prob(x)
    fwd = mvn(x + 0.245 * gx @ COV, cov).log_prob(y)
    assert torch.allclose(ours, back - fwd, atol=1e-10)


def test_reproducible_and_global_rng_untouched() -> None:
    logp, _ = gaussian(MEAN, COV)
    x0 = torch.zeros(4, 3, dtype=DTYPE)
    torch.manual_seed(9)
    before = torch.get_rng_state()
    a = sample(MALA(), logp, x0, num_draws=20, params=MALAParams(0.5), seed=seed_for(3))
    b = sample(MALA(), logp, x0, num_draws=20, params=MALAParams(0.5), seed=seed_for(3))
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(a["x"], b["x"])


def test_errors() -> None:
    logp = lambda x: torch.where(x[:, 0] > 0, -0.5 * (x**2).sum(-1), -torch.inf)  # noqa: E731
    with pytest.raises(NonFiniteError, match=r"\[0\]"):
        MALA().init(torch.tensor([[-1.0, 0.0], [1.0, 1.0]], dtype=DTYPE), logp)
    state = MALA().init(torch.ones(2, 2, dtype=DTYPE), logp)
    with pytest.raises(ShapeError, match="step_size"):
        MALA().step(state, logp, MALAParams(torch.ones(3, dtype=DTYPE)), None)
