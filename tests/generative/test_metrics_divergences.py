"""Divergences against scipy, torch.distributions and closed forms (generative.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon

from generative.metrics import (
    frechet_distance,
    gaussian_w2,
    js_discrete,
    kl_discrete,
    kl_gaussian,
    kl_normal_diag,
    wasserstein_1d,
)
from probforge.errors import NormalisationError, ShapeError, ValidationError
from tests.stats import seed_for, z_test_mean

F64 = torch.float64


def _dirichlet(k: int, n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.dirichlet(np.ones(k), size=n), dtype=F64)


def test_kl_discrete_matches_scipy_entropy() -> None:
    p, q = _dirichlet(6, 5, 0), _dirichlet(6, 5, 1)
    ours = kl_discrete(p, q)
    for i in range(5):
        assert ours[i].item() == pytest.approx(stats.entropy(p[i], q[i]), abs=1e-12)
    assert kl_discrete(p, p).abs().max() < 1e-15


def test_kl_discrete_zero_conventions() -> None:
    p = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    q = torch.tensor([0.25, 0.25, 0.5], dtype=F64)
    assert kl_discrete(p, q).item() == pytest.approx(math.log(2), abs=1e-14)  # 0 log 0/q = 0
    assert kl_discrete(q, p).item() == math.inf  # q puts mass where p has none


def test_kl_discrete_refuses_unnormalised_and_log_inputs() -> None:
    with pytest.raises(NormalisationError, match="sum to 1"):
        kl_discrete(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValidationError, match="non-negative"):
        kl_discrete(torch.log(torch.tensor([0.5, 0.5])), torch.tensor([0.5, 0.5]))


def test_js_matches_scipy_and_bounds() -> None:
    p, q = _dirichlet(5, 4, 2), _dirichlet(5, 4, 3)
    ours = js_discrete(p, q)
    for i in range(4):
        assert ours[i].item() == pytest.approx(jensenshannon(p[i], q[i]) ** 2, abs=1e-12)
    assert bool((ours >= 0).all() and (ours <= math.log(2)).all())
    disjoint = js_discrete(torch.tensor([0.3, 0.7, 0.0, 0.0], dtype=F64),
                           torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=F64))
    assert disjoint.item() == pytest.approx(math.log(2), abs=1e-15)
    assert js_discrete(p, p).abs().max() < 1e-15


def _random_spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=F64)


def test_kl_gaussian_matches_torch_distributions() -> None:
    d = 4
    mu1 = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=F64)
    mu2 = torch.randn(d, generator=torch.Generator().manual_seed(1), dtype=F64)
    c1, c2 = _random_spd(d, 2), _random_spd(d, 3)
    ref = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mu1, c1),
        torch.distributions.MultivariateNormal(mu2, c2))
    assert kl_gaussian(mu1, c1, mu2, c2).item() == pytest.approx(ref.item(), rel=1e-10)


def test_kl_normal_diag_equals_full_form_and_textbook_13_24() -> None:
    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(3, 5, generator=g, dtype=F64), torch.randn(3, 5, generator=g,
                                                                         dtype=F64)
    mu_p, logvar_p = torch.randn(3, 5, generator=g, dtype=F64), torch.randn(3, 5, generator=g,
                                                                             dtype=F64)
    full = kl_gaussian(mu, torch.diag_embed(logvar.exp()), mu_p, torch.diag_embed(logvar_p.exp()))
    assert torch.allclose(kl_normal_diag(mu, logvar, mu_p, logvar_p), full, atol=1e-12)
    # (13.24): KL(q, N(0, I)) = 1/2 (tr(sigma^2) + mu^T mu - d - log|sigma^2|)
    textbook = 0.5 * (logvar.exp().sum(-1) + (mu**2).sum(-1) - 5 - logvar.sum(-1))
    assert torch.allclose(kl_normal_diag(mu, logvar), textbook, atol=1e-12)


def test_analytic_gaussian_kl_vs_monte_carlo() -> None:
    """KL(q || N(0, I)) analytic (13.24) vs mean of log q(z) - log p(z) over 200,000 draws.

    z-test with false-failure rate alpha = 1e-4 (standard error from the draws).
    """
    g = torch.Generator().manual_seed(seed_for(5))
    mu = torch.tensor([0.3, -1.2, 2.0], dtype=F64)
    logvar = torch.tensor([-0.5, 0.4, -1.5], dtype=F64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, generator=g, dtype=F64)
    log_ratio = q.log_prob(z).sum(-1) - torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    z_test_mean(log_ratio.mean().item(), kl_normal_diag(mu, logvar).item(),
                log_ratio.std().item() / math.sqrt(z.shape[0]), alpha=1e-4)


def test_wasserstein_1d_matches_scipy_unequal_sizes() -> None:
    rng = np.random.default_rng(6)
    for n, m in [(7, 13), (50, 20), (1, 5), (30, 30)]:
        u, v = rng.normal(size=n), rng.normal(1.0, 2.0, size=m)
        ours = wasserstein_1d(torch.tensor(u), torch.tensor(v)).item()
        assert ours == pytest.approx(stats.wasserstein_distance(u, v), abs=1e-12)


def test_wasserstein_1d_order_two_by_replication_and_batching() -> None:
    rng = np.random.default_rng(7)
    u, v = rng.normal(size=4), rng.normal(size=6)
    # equal-weight empirical laws: replicate to a common size 12, then W2 is the sorted match
    uu, vv = np.sort(np.repeat(u, 3)), np.sort(np.repeat(v, 2))
    ref = math.sqrt(np.mean((uu - vv) ** 2))
    assert wasserstein_1d(torch.tensor(u), torch.tensor(v), p=2).item() == pytest.approx(
        ref, abs=1e-12)
    batch_u = torch.tensor(rng.normal(size=(3, 10)))
    batch_v = torch.tensor(rng.normal(size=(3, 8)))
    out = wasserstein_1d(batch_u, batch_v)
    for i in range(3):
        assert out[i].item() == pytest.approx(
            stats.wasserstein_distance(batch_u[i].numpy(), batch_v[i].numpy()), abs=1e-12)
    with pytest.raises(ShapeError):
        wasserstein_1d(torch.zeros(0), torch.zeros(3))


def test_gaussian_w2_closed_forms_and_squared_flag() -> None:
    # 1-D: W2 = sqrt((m1 - m2)^2 + (s1 - s2)^2)
    w = gaussian_w2(torch.tensor([1.0], dtype=F64), torch.tensor([[4.0]], dtype=F64),
                    torch.tensor([-2.0], dtype=F64), torch.tensor([[0.25]], dtype=F64))
    assert w.item() == pytest.approx(math.sqrt(9 + 1.5**2), abs=1e-12)
    # commuting (diagonal) covariances: sum of per-coordinate terms
    s1, s2 = torch.tensor([1.0, 2.0, 0.5], dtype=F64), torch.tensor([0.3, 2.0, 1.5], dtype=F64)
    m1, m2 = torch.tensor([0.0, 1.0, 2.0], dtype=F64), torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    sq = gaussian_w2(m1, torch.diag(s1**2), m2, torch.diag(s2**2), squared=True)
    assert sq.item() == pytest.approx(((m1 - m2) ** 2).sum().item()
                                      + ((s1 - s2) ** 2).sum().item(), abs=1e-12)
    # the seed's (E.21) right-hand side is W2 squared: the default return is its square root
    assert gaussian_w2(m1, torch.diag(s1**2), m2, torch.diag(s2**2)).item() == pytest.approx(
        math.sqrt(sq.item()), abs=1e-12)
    c = _random_spd(3, 8)
    assert gaussian_w2(m1, c, m1, c).item() == pytest.approx(0.0, abs=1e-6)


def test_gaussian_w2_general_matches_scipy_sqrtm() -> None:
    from scipy.linalg import sqrtm

    c1, c2 = _random_spd(4, 9), _random_spd(4, 10)
    r2 = sqrtm(c2.numpy())
    ref_tr = np.trace(c1.numpy() + c2.numpy() - 2 * np.real(sqrtm(r2 @ c1.numpy() @ r2)))
    z = torch.zeros(4, dtype=F64)
    assert gaussian_w2(z, c1, z, c2, squared=True).item() == pytest.approx(ref_tr, rel=1e-8)


def test_frechet_distance_is_w2_squared_of_fitted_gaussians() -> None:
    g = torch.Generator().manual_seed(11)
    a = torch.randn(400, 3, generator=g, dtype=F64)
    b = 0.5 * torch.randn(300, 3, generator=g, dtype=F64) + 1.0
    ma, ca = a.mean(0), torch.cov(a.T)
    mb, cb = b.mean(0), torch.cov(b.T)
    assert frechet_distance(a, b).item() == pytest.approx(
        gaussian_w2(ma, ca, mb, cb, squared=True).item(), rel=1e-10)
    assert frechet_distance(a, a).item() == pytest.approx(0.0, abs=1e-8)
