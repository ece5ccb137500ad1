"""MMD, sliced Wasserstein, precision/recall, mode coverage and importance-sampled likelihoods."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from generative.metrics import (
    DiagonalNormalProposal,
    importance_log_likelihood,
    mmd2,
    mode_coverage,
    precision_recall,
    ring_centers,
    sliced_wasserstein,
    wasserstein_1d,
)
from probforge.errors import NonFiniteError, ShapeError
from tests.stats import seed_for

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(seed))


def test_mmd2_matches_brute_force_definition() -> None:
    g = _gen(0)
    x, y = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(5, 2, generator=g, dtype=F64)
    h = 0.7

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        d2 = float(((a - b) ** 2).sum())
        return sum(math.exp(-d2 / (2 * (s * h) ** 2)) for s in (0.5, 1.0, 2.0))

    n, m = 6, 5
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    assert mmd2(x, y, bandwidth=h).item() == pytest.approx(sxx + syy - 2 * sxy, abs=1e-12)


def test_mmd2_zero_for_same_law_and_increasing_with_shift() -> None:
    """Same law: |MMD^2_u| is within sampling noise (its sd is ~1/n = 2e-3 here; bound 0.02)."""
    g = _gen(1)
    x = torch.randn(500, 2, generator=g, dtype=F64)
    y = torch.randn(500, 2, generator=g, dtype=F64)
    assert abs(mmd2(x, y, bandwidth=1.0).item()) < 0.02
    vals = [mmd2(x, y + s, bandwidth=1.0).item() for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in itertools.pairwise(vals))


def test_sliced_wasserstein_sanity() -> None:
    g = _gen(2)
    x = torch.randn(300, 3, generator=g, dtype=F64)
    assert sliced_wasserstein(x, x, generator=_gen(3)).item() == 0.0
    vals = [sliced_wasserstein(x, x + s, generator=_gen(3)).item() for s in (0.5, 1.0, 2.0)]
    assert all(a < b for a, b in itertools.pairwise(vals))
    # shift t = (s, s, s) moves projections by theta . t: SW_2^2 = E (theta . t)^2 = |t|^2/d = s^2
    assert vals[2] == pytest.approx(2.0, rel=0.1)
    # 1-D data: every direction is +-1, so SW_p equals the exact W_p
    u, v = torch.randn(40, 1, generator=g, dtype=F64), torch.randn(30, 1, generator=g, dtype=F64)
    assert sliced_wasserstein(u, v, p=1, generator=_gen(4)).item() == pytest.approx(
        wasserstein_1d(u[:, 0], v[:, 0]).item(), abs=1e-12)


def test_precision_recall_extremes() -> None:
    g = _gen(5)
    x = torch.randn(200, 2, generator=g)
    assert precision_recall(x, x) == (1.0, 1.0)
    far = precision_recall(x, x + 100.0)
    assert far == (0.0, 0.0)
    # a collapsed generator (all samples near one real point): high precision, low recall
    collapsed = x[:1] + 0.01 * torch.randn(200, 2, generator=g)
    pr = precision_recall(x, collapsed)
    assert pr.precision > 0.9 and pr.recall < 0.1
    with pytest.raises(ShapeError):
        precision_recall(x[:3], x, k=3)


def test_mode_coverage_on_the_8_gaussians_toy() -> None:
    from generative.data import sample_toy
    from generative.data.toys import TOYS

    info = TOYS["8gaussians"]
    centres, std = info.centres(), info.mode_std
    assert std is not None and centres is not None
    assert torch.allclose(centres, ring_centers(8, 2.0), atol=1e-6)
    x, _ = sample_toy("8gaussians", 4000, generator=_gen(6))
    r = mode_coverage(x, centres, std)
    # 3 std in 2-D keeps 1 - exp(-4.5) = 98.9 % of the mass
    assert r.modes_covered == 8 and r.high_quality_fraction > 0.98 and r.mode_kl < 0.01
    collapsed = centres[3] + std * torch.randn(4000, 2, generator=_gen(7))
    c = mode_coverage(collapsed, centres, std)
    assert c.modes_covered == 1 and c.mode_kl == pytest.approx(math.log(8))
    junk = mode_coverage(torch.zeros(100, 2), centres, std)
    assert junk.modes_covered == 0 and junk.high_quality_fraction == 0.0
    with pytest.raises(NonFiniteError):
        mode_coverage(torch.full((3, 2), float("nan")), centres, std)


def _linear_gaussian_batch() -> tuple[torch.Tensor, float]:
    return torch.tensor([[0.0], [1.5], [-3.0]], dtype=F64), 0.8


def test_importance_log_likelihood_exact_with_posterior_proposal() -> None:
    """p(z) = N(0, 1), p(x|z) = N(z, s^2): the posterior proposal makes every weight p(x)."""
    x, s = _linear_gaussian_batch()

    def log_joint(z: torch.Tensor) -> torch.Tensor:
        return (torch.distributions.Normal(0.0, 1.0).log_prob(z)
                + torch.distributions.Normal(z, s).log_prob(x)).sum(-1)

    post_var = 1 / (1 + 1 / s**2)
    q = DiagonalNormalProposal(x / s**2 * post_var, torch.full_like(x, math.log(post_var)))
    est = importance_log_likelihood(log_joint, q, 1000, chunk_size=64, generator=_gen(8))
    truth = torch.distributions.Normal(0.0, math.sqrt(1 + s**2)).log_prob(x[:, 0])
    assert torch.allclose(est.log_likelihood, truth, atol=1e-12)
    assert torch.allclose(est.ess, torch.full((3,), 1000.0, dtype=F64))
    assert est.log_weights.shape == (3, 1000)


def test_importance_log_likelihood_prior_proposal_within_error() -> None:
    """With the prior as proposal the estimate is consistent: |error| < 5 standard errors.

    Delta-method z-test; false-failure rate about 6e-7 per point (3 points).
    """
    x, s = _linear_gaussian_batch()

    def log_joint(z: torch.Tensor) -> torch.Tensor:
        return (torch.distributions.Normal(0.0, 1.0).log_prob(z)
                + torch.distributions.Normal(z, s).log_prob(x)).sum(-1)

    q = DiagonalNormalProposal(torch.zeros_like(x), torch.zeros_like(x))
    est = importance_log_likelihood(log_joint, q, 20_000, chunk_size=3000, generator=_gen(9))
    truth = torch.distributions.Normal(0.0, math.sqrt(1 + s**2)).log_prob(x[:, 0])
    assert bool(((est.log_likelihood - truth).abs() < 5 * est.std_error).all())
    assert bool((est.ess < 20_000).all())
