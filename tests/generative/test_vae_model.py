"""VAE likelihoods, architectures, conditioning, generation helpers and reproducibility."""

from __future__ import annotations

import pytest
import torch

from generative.vae import VAE, tile_images
from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import make_generator

F64 = torch.float64


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_log_likelihoods_match_torch_distributions(arch: str) -> None:
    g = make_generator(0)
    z = torch.randn(3, 5, 4, generator=g, dtype=F64)  # (S, B, d)
    xb = (torch.rand(5, 1, 8, 8, generator=g, dtype=F64) > 0.5).to(F64)
    v = VAE((1, 8, 8), 4, arch=arch, hidden=(16,), channels=(8, 16)).double()
    params = v.decode(z)
    assert params.shape == (3, 5, 1, 8, 8)
    ref = torch.distributions.Bernoulli(logits=params).log_prob(xb).sum((-3, -2, -1))
    assert torch.allclose(v.log_likelihood(xb, params), ref, atol=1e-10)

    vg = VAE((1, 8, 8), 4, arch=arch, likelihood="gaussian", hidden=(16,),
             channels=(8, 16)).double()
    with torch.no_grad():
        assert vg.log_std is not None
        vg.log_std.fill_(-0.7)
    params = vg.decode(z)
    xg = torch.randn(5, 1, 8, 8, generator=g, dtype=F64)
    ref = torch.distributions.Normal(params, torch.exp(torch.tensor(-0.7, dtype=F64))).log_prob(
        xg).sum((-3, -2, -1))
    assert torch.allclose(vg.log_likelihood(xg, params), ref, atol=1e-10)

    vc = VAE((1, 8, 8), 4, arch=arch, likelihood="categorical", num_categories=5, hidden=(16,),
             channels=(8, 16)).double()
    params = vc.decode(z)
    assert params.shape == (3, 5, 1, 8, 8, 5)
    xc = torch.randint(0, 5, (5, 1, 8, 8), generator=g).to(F64)
    ref = torch.distributions.Categorical(logits=params).log_prob(xc.long()).sum((-3, -2, -1))
    assert torch.allclose(vc.log_likelihood(xc, params), ref, atol=1e-10)


def test_bernoulli_likelihood_stable_at_extreme_logits() -> None:
    v = VAE((3,), 2, hidden=())
    params = torch.tensor([[1e4, -1e4, 0.0]])
    lp = v.log_likelihood(torch.tensor([[1.0, 0.0, 1.0]]), params)
    assert torch.isfinite(lp).all() and lp.item() == pytest.approx(-0.6931, abs=1e-4)
    wrong = v.log_likelihood(torch.tensor([[0.0, 1.0, 1.0]]), params)
    assert wrong.item() == pytest.approx(-2e4 - 0.6931, rel=1e-6)


def test_input_validation() -> None:
    v = VAE((4,), 2, hidden=(8,))
    with pytest.raises(ValidationError, match=r"x in \[0, 1\]"):
        v.elbo(torch.full((2, 4), 2.0))
    with pytest.raises(ShapeError, match="VAE input x"):
        v.elbo(torch.zeros(2, 5))
    with pytest.raises(ValidationError, match="unconditional"):
        v.elbo(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValidationError, match="num_categories"):
        VAE((4,), 2, likelihood="categorical")
    vc = VAE((4,), 2, likelihood="categorical", num_categories=3, hidden=(8,))
    with pytest.raises(ValidationError, match="integers"):
        vc.elbo(torch.full((1, 4), 1.5))
    cond = VAE((4,), 2, hidden=(8,), num_classes=3)
    with pytest.raises(ValidationError, match="conditional"):
        cond.elbo(torch.zeros(2, 4))
    with pytest.raises(ValidationError, match="labels"):
        cond.elbo(torch.zeros(2, 4), torch.tensor([0, 3]))


def test_conditional_vae_depends_on_labels() -> None:
    v = VAE((1, 8, 8), 3, arch="conv", channels=(8, 16), num_classes=10)
    v.eval()
    z = torch.zeros(2, 3)
    with torch.no_grad():
        a, b = v.decode(z, torch.tensor([0, 0])), v.decode(z, torch.tensor([7, 7]))
    assert not torch.allclose(a, b)
    x = (torch.rand(4, 1, 8, 8, generator=make_generator(1)) > 0.5).float()
    y = torch.tensor([1, 2, 3, 4])
    assert v.iwae_bound(x, y, k=3, generator=make_generator(2)).shape == (4,)
    assert v.sample(4, y, generator=make_generator(3)).shape == (4, 1, 8, 8)


def test_generation_helpers() -> None:
    v = VAE((1, 8, 8), 2, hidden=(16,))
    x = (torch.rand(2, 1, 8, 8, generator=make_generator(4)) > 0.5).float()
    path = v.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 1, 8, 8)
    rec = v.reconstruct(x)
    assert torch.allclose(path[0], rec[0], atol=1e-6) and torch.allclose(path[-1], rec[1],
                                                                          atol=1e-6)
    grid = v.latent_map(6)
    assert grid.shape == (1, 6 * 9 + 1, 6 * 9 + 1)
    assert v.latent_map(6, as_grid=False).shape == (36, 1, 8, 8)
    draws = v.sample(50, generator=make_generator(5), mean=False)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert tile_images(torch.zeros(3, 1, 2, 2), 2).shape == (1, 7, 7)
    with pytest.raises(ValidationError, match="latent_dim >= 2"):
        VAE((4,), 1, hidden=()).latent_map(3)


def test_reproducible_and_global_rng_untouched() -> None:
    state = torch.get_rng_state()
    a, b = VAE((1, 8, 8), 4, seed=3), VAE((1, 8, 8), 4, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    x = (torch.rand(3, 1, 8, 8, generator=make_generator(6)) > 0.5).float()
    e1 = a.elbo(x, num_samples=2, generator=make_generator(7))
    e2 = b.elbo(x, num_samples=2, generator=make_generator(7))
    assert torch.equal(e1, e2)
    a.log_marginal(x, num_samples=20, generator=make_generator(8))
    assert torch.equal(torch.get_rng_state(), state)


def test_elbo_improves_with_training_on_digits() -> None:
    from generative.data import load
    from generative.tasks import VAETask

    ds = load("digits", "train", n=512, binarize="fixed")
    for objective in ("elbo", "iwae"):
        task = VAETask(VAE((1, 8, 8), 4, hidden=(64,)), lr=3e-3, objective=objective,
                       eval_importance_samples=50)
        nets = task.networks()
        opts, _ = task.make_optimizers(nets)
        g = make_generator(9)
        first = task.evaluate(nets, (ds.x[:256], None), g)
        for step in range(100):
            idx = torch.randint(0, 512, (64,), generator=g)
            task.training_step(nets, opts, (ds.x[idx], None), step, g)
        last = task.evaluate(nets, (ds.x[:256], None), g)
        assert last["elbo"] > first["elbo"] + 5, objective
        # bounds order: ELBO <= IWAE_5 <= log p (estimated with k = 50)
        assert last["elbo"] <= last["iwae_k5"] + 0.5 <= -last["nll_k50"] + 1.0
