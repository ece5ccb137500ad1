"""Autoencoders of NNDL 9.1: tied weights, weight decay, denoising corruption, sparsity penalty."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from generative.autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from generative.tasks import AETask
from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import make_generator
from tests.stats import seed_for

F64 = torch.float64


def test_tied_weights_share_the_encoder_matrix() -> None:
    ae = Autoencoder((6,), 3, hidden=(), tied=True, output="linear").double()
    assert sum(p.numel() for p in ae.parameters()) == 6 * 3 + 3 + 6  # W, encoder b, decoder b
    x = torch.randn(4, 6, generator=make_generator(0), dtype=F64)
    w, b1 = ae.enc[0].weight, ae.enc[0].bias
    z = ae.encode(x)
    assert torch.allclose(z, x @ w.T + b1)
    assert torch.allclose(ae.decode(z), z @ w + ae.dec_bias[0])  # W^(2) = W^(1)T (9.21)
    untied = Autoencoder((6,), 3, hidden=(5,), tied=False)
    assert len(untied.dec) == 2 and untied.dec[0].weight.shape == (5, 3)


def test_loss_is_squared_error_plus_weight_decay() -> None:
    ae = Autoencoder((5,), 2, hidden=(4,), weight_decay=0.1).double()
    x = torch.rand(8, 5, generator=make_generator(1), dtype=F64)
    t = ae.loss_terms(x)
    recon = ((ae(x) - x) ** 2).sum(-1).mean()
    wd = 0.1 * sum((m.weight**2).sum() for m in [*ae.enc, *ae.dec])
    assert t["recon"].item() == pytest.approx(recon.item(), rel=1e-12)
    assert t["weight_decay"].item() == pytest.approx(wd.item(), rel=1e-12)
    assert t["loss"].item() == pytest.approx((recon + wd).item(), rel=1e-12)
    tied = Autoencoder((5,), 2, hidden=(4,), tied=True, weight_decay=0.1).double()
    wd_tied = 0.1 * sum((m.weight**2).sum() for m in tied.enc)  # tied matrices counted once
    assert tied.loss_terms(x)["weight_decay"].item() == pytest.approx(wd_tied.item())


def test_denoising_corruption_rates_and_no_mutation() -> None:
    """Masked share vs mu: binomial test, false-failure rate alpha = 1e-4."""
    dae = DenoisingAutoencoder((50,), 4, mask_ratio=0.3)
    x = torch.ones(400, 50)
    x0 = x.clone()
    xt = dae.corrupt(x, make_generator(seed_for(2)))
    assert torch.equal(x, x0)
    zeros = int((xt == 0).sum())
    p = stats.binomtest(zeros, x.numel(), 0.3).pvalue
    assert p > 1e-4
    noisy = DenoisingAutoencoder((50,), 4, mask_ratio=0.0, noise_std=0.5)
    d = noisy.corrupt(x, make_generator(seed_for(3))) - x
    # sample sd of 20,000 normals: relative sd ~ 1/sqrt(2n) = 0.5 %; 4 % bound is 8 sd
    assert float(d.std()) == pytest.approx(0.5, rel=0.04)
    with pytest.raises(ValidationError, match="mask_ratio"):
        DenoisingAutoencoder((4,), 2, mask_ratio=1.0)
    with pytest.raises(ValidationError, match="no corruption"):
        DenoisingAutoencoder((4,), 2, mask_ratio=0.0)
    # the loss compares the reconstruction of the corrupted input with the clean input
    xs = torch.rand(6, 50, generator=make_generator(4))
    t = dae.loss_terms(xs, make_generator(5))
    rec = dae.decode(dae.encode(dae.corrupt(xs, make_generator(5))))
    assert t["recon"].item() == pytest.approx(float(((rec - xs) ** 2).sum(-1).mean().detach()),
                                              rel=1e-6)


def test_sparse_penalty_is_the_bernoulli_kl_of_mean_activations() -> None:
    sae = SparseAutoencoder((6,), 5, hidden=(), target=0.05, sparsity_weight=2.0).double()
    x = torch.rand(30, 6, generator=make_generator(6), dtype=F64)
    rho_hat = sae.mean_activation(x)
    rho = 0.05
    kl = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    assert sae.loss_terms(x)["sparsity"].item() == pytest.approx(2.0 * kl.item(), rel=1e-10)
    # zero when every mean activation equals the target: constant code pre-activation logit(rho)
    with torch.no_grad():
        sae.enc[0].weight.zero_()
        sae.enc[0].bias.fill_(math.log(rho / (1 - rho)))
    assert sae.loss_terms(x)["sparsity"].item() == pytest.approx(0.0, abs=1e-12)
    # saturated codes: the penalty stays finite (log-mean-exp of log-sigmoids)
    with torch.no_grad():
        sae.enc[0].bias.fill_(-200.0)
    assert math.isfinite(sae.loss_terms(x.float().double())["sparsity"].item())
    with pytest.raises(ValidationError, match="sigmoid"):
        SparseAutoencoder((6,), 5, code_activation="relu")


def test_training_reduces_reconstruction_error_on_digits() -> None:
    from generative.data import load

    ds = load("digits", "train", n=512)
    for model in (Autoencoder((1, 8, 8), 16, hidden=(64,), weight_decay=1e-5),
                  DenoisingAutoencoder((1, 8, 8), 16, hidden=(64,), mask_ratio=0.25),
                  SparseAutoencoder((1, 8, 8), 32, hidden=(64,), sparsity_weight=0.1)):
        task = AETask(model, lr=3e-3)
        nets = task.networks()
        opts, _ = task.make_optimizers(nets)
        g = make_generator(7)
        first = task.evaluate(nets, (ds.x, None), g)["clean_mse"]
        for step in range(150):
            idx = torch.randint(0, 512, (64,), generator=g)
            task.training_step(nets, opts, (ds.x[idx], None), step, g)
        last = task.evaluate(nets, (ds.x, None), g)["clean_mse"]
        assert last < 0.6 * first, type(model).__name__
        s = task.sample(nets, 5, g)
        assert s.shape == (5, 1, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1


def test_shape_errors() -> None:
    ae = Autoencoder((4,), 2)
    with pytest.raises(ShapeError, match="Autoencoder input x"):
        ae.loss_terms(torch.zeros(3, 5))
