"""GAN losses: numerics at saturating logits, the optimal-discriminator identities, WGAN, LSGAN."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats

from generative.gan import (
    GAN,
    clip_weights_,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    optimal_discriminator_logit,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from generative.metrics import js_discrete, kl_discrete
from probforge.errors import ValidationError

LOG2 = math.log(2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_finite_with_correct_gradients_at_saturating_logits(dtype: torch.dtype) -> None:
    real = torch.tensor([1e4, -1e4, 0.0], dtype=dtype, requires_grad=True)
    fake = torch.tensor([1e4, -1e4, 0.0], dtype=dtype, requires_grad=True)
    d = discriminator_loss(real, fake)
    assert torch.isfinite(d)
    # -log D(1e4) = 0, -log D(-1e4) = 1e4, -log D(0) = log 2; -log(1 - D(l)) = softplus(l)
    expected = (0 + 1e4 + LOG2) / 3 + (1e4 + 0 + LOG2) / 3
    assert d.item() == pytest.approx(expected, rel=1e-6)
    d.backward()
    sig = torch.sigmoid(torch.tensor([1e4, -1e4, 0.0], dtype=torch.float64))
    assert real.grad is not None and fake.grad is not None
    assert torch.allclose(real.grad.double(), -(1 - sig) / 3, atol=1e-7)  # d softplus(-l) = -s(-l)
    assert torch.allclose(fake.grad.double(), sig / 3, atol=1e-7)

    for kind, grad_fn in (("non-saturating", lambda s: -(1 - s) / 3),
                          ("label-swap", lambda s: -(1 - s) / 3),
                          ("minimax", lambda s: -s / 3)):
        f = torch.tensor([1e4, -1e4, 0.0], dtype=dtype, requires_grad=True)
        loss = generator_loss(f, kind)
        assert torch.isfinite(loss)
        loss.backward()
        assert f.grad is not None and torch.isfinite(f.grad).all()
        assert torch.allclose(f.grad.double(), grad_fn(sig), atol=1e-7), kind
    # the saturating loss has (almost) no gradient where D confidently rejects the fakes,
    # the non-saturating one has the full gradient there (NNDL 13.3.5.1)
    f = torch.tensor([-1e4], dtype=dtype, requires_grad=True)
    generator_loss(f, "minimax").backward()
    assert f.grad is not None and abs(f.grad.item()) < 1e-30
    f.grad = None
    generator_loss(f, "non-saturating").backward()
    assert f.grad.item() == pytest.approx(-1.0)


def test_losses_match_naive_formulas_at_moderate_logits() -> None:
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g,
                                                                        dtype=torch.float64)
    dr, df = torch.sigmoid(r), torch.sigmoid(f)
    assert discriminator_loss(r, f).item() == pytest.approx(
        -(torch.log(dr).mean() + torch.log(1 - df).mean()).item(), rel=1e-12)
    assert generator_loss(f).item() == pytest.approx(-torch.log(df).mean().item(), rel=1e-12)
    assert generator_loss(f, "minimax").item() == pytest.approx(
        torch.log(1 - df).mean().item(), rel=1e-12)
    assert generator_loss(f, "label-swap").item() == pytest.approx(generator_loss(f).item(),
                                                                   rel=1e-12)
    assert least_squares_discriminator_loss(r, f).item() == pytest.approx(
        (0.5 * (r - 1) ** 2).mean().item() + (0.5 * f**2).mean().item(), rel=1e-12)
    assert least_squares_generator_loss(f).item() == pytest.approx(
        (0.5 * (f - 1) ** 2).mean().item(), rel=1e-12)
    assert wasserstein_critic_loss(r, f).item() == pytest.approx((f.mean() - r.mean()).item())
    assert wasserstein_generator_loss(f).item() == pytest.approx(-f.mean().item())
    with pytest.raises(ValidationError, match="kind"):
        generator_loss(f, "hinge")


def _value(p: torch.Tensor, q: torch.Tensor, logit: torch.Tensor) -> float:
    """V(G, D) = sum p log D + sum q log(1 - D) on a grid, with 0 log 0 = 0."""
    log_d, log_1md = -torch.nn.functional.softplus(-logit), -torch.nn.functional.softplus(logit)
    a = torch.where(p > 0, p * log_d, torch.zeros_like(p)).sum()
    b = torch.where(q > 0, q * log_1md, torch.zeros_like(q)).sum()
    return float(a + b)


def test_optimal_discriminator_and_value_identity_on_1d_gaussians() -> None:
    """D* = p_r / (p_r + p_g) (13.37) maximises V, and V(G, D*) = 2 JS - 2 log 2 (13.41)."""
    pr, pg = stats.norm(0.0, 1.0), stats.norm(1.5, 0.7)
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    dx = float(grid[1] - grid[0])
    lp = torch.tensor(pr.logpdf(grid.numpy()))
    lq = torch.tensor(pg.logpdf(grid.numpy()))
    logit = optimal_discriminator_logit(lp, lq)
    d_star = torch.sigmoid(logit)
    assert torch.allclose(d_star, lp.exp() / (lp.exp() + lq.exp()), atol=1e-12)
    p, q = lp.exp() * dx, lq.exp() * dx
    v_star = _value(p, q, logit)

    # JS by adaptive quadrature, independently of the grid
    def m(x: float) -> float:
        return 0.5 * (pr.pdf(x) + pg.pdf(x))

    def kl_term(dist: stats.rv_continuous) -> float:
        val, _ = integrate.quad(lambda x: dist.pdf(x) * math.log(dist.pdf(x) / m(x))
                                if dist.pdf(x) > 0 else 0.0, -12, 12, limit=400)
        return val

    js = 0.5 * (kl_term(pr) + kl_term(pg))
    assert v_star == pytest.approx(2 * js - 2 * LOG2, abs=1e-6)
    # any other discriminator does worse
    for delta in (0.3, -0.3, 1.0):
        assert _value(p, q, logit + delta) < v_star
    assert _value(p, q, logit * 0.5) < v_star


def test_value_identity_limits_identical_and_disjoint() -> None:
    p = torch.tensor([0.2, 0.3, 0.5, 0.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 0.0, 0.0, 0.4, 0.6], dtype=torch.float64)
    # identical: D* = 1/2 everywhere, V = -2 log 2
    same = optimal_discriminator_logit(torch.log(p), torch.log(p))
    keep = p > 0
    assert torch.allclose(torch.sigmoid(same[keep]), torch.full((3,), 0.5, dtype=torch.float64))
    assert _value(p[keep], p[keep], same[keep]) == pytest.approx(-2 * LOG2, abs=1e-14)
    # disjoint supports: D* is 1 on p's support and 0 on q's, V = 0 and JS = log 2
    logit = optimal_discriminator_logit(torch.log(p), torch.log(q))
    assert _value(p, q, logit) == 0.0
    assert js_discrete(p, q).item() == pytest.approx(LOG2, abs=1e-15)


def test_non_saturating_identity_13_46() -> None:
    """E_pg[log D*] = -KL(pg || pr) + 2 JS(pr, pg) - 2 log 2 - E_pr[log D*] on a histogram."""
    g = torch.Generator().manual_seed(1)
    pr = torch.softmax(torch.randn(12, generator=g, dtype=torch.float64), 0)
    pg = torch.softmax(torch.randn(12, generator=g, dtype=torch.float64), 0)
    log_d = -torch.nn.functional.softplus(-optimal_discriminator_logit(pr.log(), pg.log()))
    lhs = (pg * log_d).sum()
    rhs = -kl_discrete(pg, pr) + 2 * js_discrete(pr, pg) - 2 * LOG2 - (pr * log_d).sum()
    assert lhs.item() == pytest.approx(rhs.item(), abs=1e-12)


def test_gradient_penalty_of_a_linear_critic() -> None:
    a = torch.tensor([3.0, 4.0], dtype=torch.float64)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return x @ a

    g = torch.Generator().manual_seed(2)
    real = torch.randn(16, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(16, 2, generator=g, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, generator=g)
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)


def test_clip_weights_and_validation() -> None:
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(0.5)
    clip_weights_(lin, 0.01)
    assert float(lin.weight.detach().abs().max()) <= 0.01
    with pytest.raises(ValidationError):
        clip_weights_(lin, 0.0)


def test_gan_prior_and_image_scaling() -> None:
    gan = GAN.build((1, 8, 8), 4, arch="dcgan", base_channels=8, prior="uniform")
    z = gan.sample_latent(1000, torch.Generator().manual_seed(3))
    assert float(z.min()) >= -1 and float(z.max()) <= 1
    x = gan.sample(5, generator=torch.Generator().manual_seed(4))
    assert x.shape == (5, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.allclose(gan.to_data_space(gan.to_model_space(x)), x)
    with pytest.raises(ValidationError, match="images"):
        GAN.build((2,), arch="dcgan")
