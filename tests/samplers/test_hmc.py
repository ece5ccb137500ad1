"""HMC: moments (MCSE z-tests), one-step invariance, a broken leapfrog, reproducibility, errors.

False-failure rates: every statistical assertion states its family-wise ``alpha``; with the fixed
seeds the tests are deterministic (other seeds were checked during development).
"""

from __future__ import annotations

import pytest
import torch

from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import make_generator
from samplers import hmc as hmc_module
from samplers.adaptation import WindowAdaptation
from samplers.hmc import HMC, HMCParams
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


def test_moments_correlated_gaussian_dense_metric() -> None:
    logp, _ = gaussian(MEAN, COV)
    x0 = torch.zeros(8, 3, dtype=DTYPE)
    s = sample(HMC(), logp, x0, num_draws=400, params=HMCParams(0.35, 8, COV), seed=seed_for(1))
    second = COV.diagonal() + MEAN**2
    mcse_z_test(s["x"], MEAN, ALPHA, second)
    assert 0.6 < float(s.stats["accept_prob"].mean()) <= 1.0


def test_moments_gaussian_with_window_adaptation() -> None:
    mean = torch.tensor([0.0, 3.0], dtype=DTYPE)
    cov = torch.diag(torch.tensor([0.01, 4.0], dtype=DTYPE))  # scales 0.1 and 2: needs a metric
    logp, _ = gaussian(mean, cov)
    s = sample(HMC(), logp, torch.zeros(8, 2, dtype=DTYPE), num_draws=300, num_warmup=300,
               params=HMCParams(0.1, 6), adaptation=WindowAdaptation(), seed=seed_for(2))
    mcse_z_test(s["x"], mean, ALPHA, cov.diagonal() + mean**2)
    imm = s.attrs["params"].inverse_mass_matrix
    assert torch.allclose(imm, cov.diagonal(), rtol=0.5)


def test_moments_beta_bernoulli_through_space() -> None:
    logp, space, mean, second = beta_bernoulli()
    x0 = space.initial_position(8, make_generator(seed_for(3)), dtype=DTYPE)
    s = sample(HMC(), logp, x0, num_draws=400, num_warmup=200, params=HMCParams(0.5, 5),
               adaptation=WindowAdaptation(), space=space, seed=seed_for(3))
    theta = s["theta"][..., None]
    assert bool(((theta > 0) & (theta < 1)).all())
    mcse_z_test(theta, torch.tensor([mean], dtype=DTYPE), ALPHA,
                torch.tensor([second], dtype=DTYPE))


@pytest.mark.parametrize("metric", ["unit", "diag", "dense"])
def test_one_step_invariance(metric: str) -> None:
    logp, chol = gaussian(MEAN, COV)
    g = make_generator(seed_for(10))
    x0 = exact_draws(MEAN, chol, 20000, g)
    imm = {"unit": None, "diag": COV.diagonal(), "dense": COV}[metric]
    kernel = HMC()
    state, info = kernel.step(kernel.init(x0, logp), logp, HMCParams(0.3, 5, imm), g)
    assert float(info.is_accepted.double().mean()) > 0.3  # the chains did move
    assert_invariant(state.position, MEAN, chol, ALPHA)


def _wrong_sign_leapfrog(flat_ld, z, p, grad, step_size, metric, num_steps=1):  # type: ignore[no-untyped-def]
    """Leapfrog with the sign of the final momentum half step flipped: the map is neither
    reversible nor volume preserving, so the Hamiltonian accept ratio no longer corrects it."""
    from samplers.base import log_density_and_grad

    lp = torch.empty(0)
    for _ in range(num_steps):
        p = p + 0.5 * step_size * grad
        z = z + step_size * metric.velocity(p)
        lp, grad = log_density_and_grad(flat_ld, z)
        p = p - 0.5 * step_size * grad
    return z, p, grad, lp


def test_broken_leapfrog_fails_invariance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariance test bites: a wrong-sign leapfrog is rejected at the same alpha."""
    logp, chol = gaussian(MEAN, COV)
    monkeypatch.setattr(hmc_module, "leapfrog", _wrong_sign_leapfrog)
    g = make_generator(seed_for(10))
    x0 = exact_draws(MEAN, chol, 20000, g)
    kernel = HMC()
    # one leapfrog step: the broken map is still accepted often enough to show its bias
    state, _ = kernel.step(kernel.init(x0, logp), logp, HMCParams(0.3, 1, COV.diagonal()), g)
    ps = invariance_pvalues(state.position, MEAN, chol)
    assert min(ps) < ALPHA / len(ps)


def test_reproducible_and_global_rng_untouched() -> None:
    logp, _ = gaussian(MEAN, COV)
    x0 = torch.zeros(4, 3, dtype=DTYPE)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = sample(HMC(), logp, x0, num_draws=20, params=HMCParams(0.3, 4), seed=seed_for(7))
    b = sample(HMC(), logp, x0, num_draws=20, params=HMCParams(0.3, 4), seed=seed_for(7))
    c = sample(HMC(), logp, x0, num_draws=20, params=HMCParams(0.3, 4), seed=seed_for(8))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], c["x"])


def test_divergences_flagged_and_rejected() -> None:
    logp, _ = gaussian(torch.zeros(2, dtype=DTYPE), torch.eye(2, dtype=DTYPE) * 1e-4)
    kernel = HMC()
    state = kernel.init(torch.full((6, 2), 0.01, dtype=DTYPE), logp)
    new, info = kernel.step(state, logp, HMCParams(1.0, 20), make_generator(seed_for(0)))
    assert bool(info.is_divergent.all()) and not bool(info.is_accepted.any())
    assert torch.equal(new.position, state.position)
    assert float(info.accept_prob.max()) == 0.0


def test_per_chain_step_size_and_float32_follow_inputs() -> None:
    logp = lambda x: -0.5 * (x**2).sum(-1)  # noqa: E731
    x0 = torch.zeros(3, 2, dtype=torch.float32)
    kernel = HMC()
    params = HMCParams(torch.tensor([0.1, 0.2, 0.3]), 3, torch.ones(2))
    state, info = kernel.step(kernel.init(x0, logp), logp, params, make_generator(seed_for(0)))
    assert state.position.dtype == torch.float32 and info.energy.dtype == torch.float32


def test_errors_name_the_problem() -> None:
    logp = lambda x: torch.where(x[:, 0] > 0, -0.5 * (x**2).sum(-1), -torch.inf)  # noqa: E731
    x0 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-3.0, 1.0]], dtype=DTYPE)
    with pytest.raises(NonFiniteError, match=r"chain\(s\) \[1, 3\]"):
        HMC().init(x0, logp)
    ok = HMC().init(x0[::2], logp)
    with pytest.raises(ShapeError, match="inverse_mass_matrix"):
        HMC().step(ok, logp, HMCParams(0.1, 2, torch.ones(3, dtype=DTYPE)), None)
    with pytest.raises(ValidationError, match="step_size"):
        HMC().step(ok, logp, HMCParams(-0.1, 2), None)
    with pytest.raises(ValidationError, match="positive definite"):
        HMC().step(ok, logp, HMCParams(0.1, 2, -torch.eye(2, dtype=DTYPE)), None)
    with pytest.raises(ValidationError, match="num_steps"):
        HMC().step(ok, logp, HMCParams(0.1, 0), None)
