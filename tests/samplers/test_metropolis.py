"""Metropolis-Hastings kernels: moments (MCSE z-tests), one-step invariance, a broken kernel that
the invariance tests reject, and warmup adaptation.

False-failure rates: every moment test is a Bonferroni family at alpha = 1e-3; every invariance
test has alpha = 1e-4 (split over its coordinates).
"""

from __future__ import annotations

import math

import pytest
import torch

from probforge.errors import ShapeError, ValidationError
from probforge.ops import make_generator
from samplers.adaptation_protocol import ScaleAdaptation
from samplers.metropolis import (
    IndependenceMetropolis,
    MetropolisHastings,
    RandomWalkMetropolis,
    RandomWalkParams,
)
from samplers.proposals import Gaussian, Uniform
from samplers.run import sample
from samplers.space import Interval, ParameterSpace
from tests.stats import chi_square_gof, ks_test, mcse_z_test, seed_for

ALPHA = 1e-3

MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)
SD = torch.tensor([1.0, 2.0], dtype=torch.float64)
RHO = 0.9
COV = torch.tensor([[1.0, RHO * 2.0], [RHO * 2.0, 4.0]], dtype=torch.float64)
PREC = torch.linalg.inv(COV)
CHOL = torch.linalg.cholesky(COV)


def gauss_logp(x: torch.Tensor) -> torch.Tensor:
    d = x - MEAN
    return -0.5 * ((d @ PREC) * d).sum(-1)


def exact_gauss(n: int, g: torch.Generator) -> torch.Tensor:
    return MEAN + torch.randn(n, 2, generator=g, dtype=torch.float64) @ CHOL.T


def gauss_invariance(kernel: object, params: object, seed: int = 0, n: int = 20_000,
                     alpha: float = 1e-4) -> None:
    """Exact draws, ONE transition, KS on both coordinates and on a whitened projection."""
    g = make_generator(seed_for(seed))
    x0 = exact_gauss(n, g)
    state = kernel.init(x0, gauss_logp)  # type: ignore[attr-defined]
    state, info = kernel.step(state, gauss_logp, params, g)  # type: ignore[attr-defined]
    assert 0.05 < float(info.accept_prob.mean()) < 0.99  # the step does move
    x = state.position
    z = torch.linalg.solve_triangular(CHOL, (x - MEAN).T, upper=False).T
    ks_test(x[:, 0], ("norm", 1.0, 1.0), alpha / 4)
    ks_test(x[:, 1], ("norm", -1.0, 2.0), alpha / 4)
    ks_test(z[:, 1], ("norm", 0.0, 1.0), alpha / 4)
    ks_test((z[:, 0] + z[:, 1]) / math.sqrt(2), ("norm", 0.0, 1.0), alpha / 4)


def check_gauss_moments(draws: torch.Tensor) -> None:
    assert draws.shape[0] >= 4
    for i in range(2):
        mcse_z_test(draws[..., i], MEAN[i], ALPHA, num_tests=4)
        mcse_z_test((draws[..., i] - MEAN[i]) ** 2, SD[i] ** 2, ALPHA, num_tests=4)


# moments ------------------------------------------------------------------------------------
def test_random_walk_moments_with_covariance_adaptation() -> None:
    g = make_generator(seed_for(11))
    x0 = torch.randn(8, 2, generator=g, dtype=torch.float64)
    s = sample(RandomWalkMetropolis(), gauss_logp, x0, num_draws=2500, num_warmup=1500,
               adaptation=ScaleAdaptation(adapt_covariance=True), generator=g)
    check_gauss_moments(s["x"])
    p = s.attrs["params"]
    learned = p.cholesky @ p.cholesky.T
    corr = learned[0, 1] / torch.sqrt(learned[0, 0] * learned[1, 1])
    assert abs(float(corr) - RHO) < 0.05
    assert abs(float(s.stats["accept_prob"].mean()) - 0.234) < 0.08


def test_random_walk_beta_bernoulli_through_interval_transform() -> None:
    """p ~ Beta(2, 2), 7 successes in 20: posterior Beta(9, 15), sampled on logit(p)."""
    space = ParameterSpace({"p": Interval(0, 1)})
    logp = space.wrap(lambda v: 8 * torch.log(v["p"]) + 14 * torch.log1p(-v["p"]))
    g = make_generator(seed_for(5))
    s = sample(RandomWalkMetropolis(), logp, space.initial_position(6, g, dtype=torch.float64),
               num_draws=3000, num_warmup=500, adaptation=ScaleAdaptation(), generator=g,
               space=space)
    a, b = 9.0, 15.0
    mcse_z_test(s["p"], a / (a + b), ALPHA, num_tests=2)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    mcse_z_test((s["p"] - a / (a + b)) ** 2, var, ALPHA, num_tests=2)
    assert abs(float(s.stats["accept_prob"].mean()) - 0.44) < 0.08  # d = 1 target


def test_independence_sampler_beta_bernoulli() -> None:
    def logp(x: torch.Tensor) -> torch.Tensor:
        p = x[:, 0]
        inside = (p > 0) & (p < 1)
        val = 8 * torch.log(p.clamp(1e-300, 1)) + 14 * torch.log1p(-p.clamp(0, 1 - 1e-16))
        return torch.where(inside, val, torch.full_like(p, -math.inf))

    q = Uniform(torch.zeros(1, dtype=torch.float64), 1.0)
    g = make_generator(seed_for(2))
    s = sample(IndependenceMetropolis(q), logp, q.sample(6, g), num_draws=3000, generator=g)
    mcse_z_test(s["x"][..., 0], 9 / 24, ALPHA, num_tests=2)
    mcse_z_test((s["x"][..., 0] - 9 / 24) ** 2, 9 * 15 / (24**2 * 25), ALPHA, num_tests=2)


def lognormal_walk(x: torch.Tensor, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    y = x * torch.exp(0.7 * torch.randn(x.shape, generator=g, dtype=x.dtype))
    return y, (torch.log(x) - torch.log(y)).sum(-1)  # log q(y|x) - log q(x|y)


def gamma_logp(x: torch.Tensor) -> torch.Tensor:  # Gamma(shape 3, rate 2), unnormalised
    v = x[:, 0]
    return torch.where(v > 0, 2 * torch.log(v.abs()) - 2 * v, torch.full_like(v, -math.inf))


def test_generic_mh_with_hastings_correction_gamma_target() -> None:
    g = make_generator(seed_for(4))
    s = sample(MetropolisHastings(lognormal_walk), gamma_logp,
               torch.ones(8, 1, dtype=torch.float64), num_draws=3000, num_warmup=200,
               generator=g)
    mcse_z_test(s["x"][..., 0], 1.5, ALPHA, num_tests=2)
    mcse_z_test((s["x"][..., 0] - 1.5) ** 2, 0.75, ALPHA, num_tests=2)


# one-step invariance ------------------------------------------------------------------------
def test_random_walk_one_step_invariance() -> None:
    gauss_invariance(RandomWalkMetropolis(), 1.5)
    gauss_invariance(RandomWalkMetropolis(), RandomWalkParams(torch.tensor(1.0), CHOL), seed=1)


def test_independence_one_step_invariance() -> None:
    q = Gaussian(torch.tensor([0.5, -0.5], dtype=torch.float64), 2.5)
    gauss_invariance(IndependenceMetropolis(q), None)


def drift_proposal(correct: bool):  # type: ignore[no-untyped-def]
    """x' = x + delta + s eps: asymmetric; its Hastings term is 2 (x' - x) . delta / s^2."""
    delta, s = 0.6, 0.6

    def propose(x: torch.Tensor, g: torch.Generator | None):  # type: ignore[no-untyped-def]
        y = x + delta + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
        corr = 2 * ((y - x) * delta).sum(-1) / s**2
        return y, corr if correct else torch.zeros_like(corr)

    return propose


def test_generic_mh_one_step_invariance_and_the_broken_kernel_fails() -> None:
    gauss_invariance(MetropolisHastings(drift_proposal(correct=True)), None)
    # Without the Hastings correction the same proposal is not invariant: the test must bite.
    with pytest.raises(AssertionError, match="Kolmogorov-Smirnov"):
        gauss_invariance(MetropolisHastings(drift_proposal(correct=False)), None)


PI = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64) / 21


def cycle_walk(correct: bool):  # type: ignore[no-untyped-def]
    """On the cycle 0..5: +1 with probability 0.7, -1 with 0.3."""

    def propose(x: torch.Tensor, g: torch.Generator | None):  # type: ignore[no-untyped-def]
        up = torch.rand(x.shape[0], generator=g, dtype=torch.float64) < 0.7
        y = torch.where(up.unsqueeze(-1), x + 1, x - 1) % 6
        corr = torch.where(up, math.log(0.7 / 0.3), math.log(0.3 / 0.7))
        return y, corr if correct else torch.zeros_like(corr)

    return propose


def discrete_invariance(kernel: MetropolisHastings, seed: int = 0, n: int = 60_000) -> None:
    g = make_generator(seed_for(seed))
    x0 = torch.multinomial(PI, n, replacement=True, generator=g).unsqueeze(-1)

    def logp(x: torch.Tensor) -> torch.Tensor:
        return torch.log(PI)[x[:, 0]]

    state = kernel.init(x0, logp)
    state, _ = kernel.step(state, logp, None, g)
    chi_square_gof(torch.bincount(state.position[:, 0], minlength=6), PI, alpha=1e-4)


def test_discrete_mh_one_step_invariance_and_the_broken_kernel_fails() -> None:
    discrete_invariance(MetropolisHastings(cycle_walk(correct=True)))
    with pytest.raises(AssertionError, match="chi-square"):
        discrete_invariance(MetropolisHastings(cycle_walk(correct=False)))


# adaptation and edge cases ----------------------------------------------------------------
def test_scale_adaptation_hits_the_target_for_any_starting_scale() -> None:
    logp = lambda x: -0.5 * (x**2).sum(-1) / 0.05**2  # noqa: E731
    for start in (1e-4, 10.0):
        s = sample(RandomWalkMetropolis(), logp, torch.zeros(16, 1), num_draws=500,
                   num_warmup=1000, params=start, adaptation=ScaleAdaptation(), seed=seed_for(0))
        assert abs(float(s.stats["accept_prob"].mean()) - 0.44) < 0.06
        assert s.attrs["target_accept"] == 0.44


def test_start_outside_the_support_moves_in_and_never_leaves() -> None:
    x0 = torch.full((4, 1), -1.0, dtype=torch.float64)  # log p = -inf
    s = sample(MetropolisHastings(lambda x, g: (x.abs() + 0.1, torch.zeros(x.shape[0]))),
               gamma_logp, x0, num_draws=3, seed=0)
    assert bool((s["x"] > 0).all())


def test_metropolis_input_errors() -> None:
    k = RandomWalkMetropolis()
    with pytest.raises(ValidationError, match="floating point"):
        k.init(torch.zeros(2, 2, dtype=torch.long), lambda x: x.sum(-1).double())
    st = k.init(torch.zeros(3, 2), lambda x: -(x**2).sum(-1))
    with pytest.raises(ShapeError, match="scale"):
        k.step(st, lambda x: -(x**2).sum(-1), torch.ones(2), make_generator(seed_for(0)))
    with pytest.raises(ShapeError, match="cholesky"):
        k.step(st, lambda x: -(x**2).sum(-1), RandomWalkParams(torch.tensor(1.0), torch.eye(3)),
               make_generator(seed_for(0)))
    bad = MetropolisHastings(lambda x, g: (x, torch.zeros(5)))
    with pytest.raises(ShapeError, match="propose"):
        bad.step(bad.init(torch.zeros(3, 2), lambda x: x.sum(-1)), lambda x: x.sum(-1), None,
                 None)
    with pytest.raises(ValidationError, match="target_accept"):
        ScaleAdaptation(target_accept=1.5)
