"""Bad and edge inputs for the deep generative models: VAE, autoencoders, GAN, their losses and
training tasks (issue 21).

Every call must give a typed :mod:`probforge.errors` error or a NaN-free answer that is right
(closed forms where they are cheap): ``tests.robustness.outcome`` fails the test on a raw
exception or a NaN.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from generative.gan import (
    GAN,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    mode_collapse_diagnostics,
    optimal_discriminator_logit,
    train_step,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from generative.metrics import ring_centers
from generative.tasks import AETask, GANTask, VAETask
from generative.vae import VAE, tile_images
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import make_generator
from tests.robustness import outcome

F64 = torch.float64


# ------------------------------------------------------------------ issue examples
def test_vae_elbo_of_nan_images_is_refused() -> None:
    """Issue 21: ``vae.elbo(x)`` of images containing NaN returned NaN."""
    vae = VAE((1, 4, 4), 2, hidden=(8,))
    x = torch.rand(3, 1, 4, 4, generator=make_generator(0))
    x[1, 0, 2, 2] = float("nan")
    for method in (vae.elbo, vae.iwae_bound, vae.log_marginal, vae.reconstruct, vae.encode,
                   vae.loss, vae.elbo_terms):
        with pytest.raises(NonFiniteError, match="VAE input x"):
            method(x)
    with pytest.raises(NonFiniteError):
        vae.decode(torch.full((2, 2), float("nan")))


def test_vae_refuses_integer_images_and_other_devices() -> None:
    vae = VAE((4,), 2, hidden=(8,))
    with pytest.raises(DtypeMismatchError, match="integer"):
        vae.elbo(torch.ones(2, 4, dtype=torch.uint8))  # refused, not cast
    with pytest.raises(DeviceMismatchError):
        vae.elbo(torch.ones(2, 4, device="meta"))
    with pytest.raises(ValidationError, match=r"x in \[0, 1\]"):
        vae.elbo(torch.full((2, 4), 1.5))  # outside the Bernoulli likelihood's support
    with pytest.raises(ShapeError, match="at least one"):
        vae.loss(torch.zeros(0, 4))  # the mean of no data point is undefined
    cat = VAE((4,), 2, likelihood="categorical", num_categories=3, hidden=(8,))
    x = torch.tensor([[0, 1, 2, 1]])
    assert torch.equal(cat.elbo(x, generator=make_generator(1)),
                       cat.elbo(x.double().float(), generator=make_generator(1)))
    with pytest.raises(ValidationError, match="integers in"):
        cat.elbo(torch.tensor([[0, 1, 3, 1]]))


def test_mode_collapse_diagnostics_of_a_total_collapse_is_log_k() -> None:
    """Issue 21: no sample near any mode gave ``mode_kl`` NaN; the docstring says log K."""
    centres = ring_centers(8)
    far = torch.full((200, 2), 50.0) + torch.randn(200, 2, generator=make_generator(0))
    diag = mode_collapse_diagnostics(far, centres, 0.02)
    assert diag["mode_kl"] == pytest.approx(math.log(8))
    assert diag["modes_covered"] == 0.0 and diag["high_quality_fraction"] == 0.0
    assert diag["collapsed"] == 1.0


def test_model_constructors_refuse_bad_hyperparameters() -> None:
    bad_vae: list[dict[str, Any]] = [
        {"latent_dim": True}, {"latent_dim": 2.0}, {"latent_dim": 0}, {"hidden": "64"},
        {"hidden": (8, 0)}, {"hidden": (8, True)}, {"beta": float("nan")}, {"beta": -1.0},
        {"beta": True}, {"likelihood": "poisson"}, {"arch": "conv"},
        {"gaussian_std": 0.0, "likelihood": "gaussian"}, {"gaussian_std": 0.5},
        {"num_categories": 3}, {"likelihood": "categorical", "num_categories": 2.0},
        {"num_classes": 0}, {"num_classes": True}, {"seed": 1.5},
    ]
    for kwargs in bad_vae:
        with pytest.raises(ValidationError):
            VAE((4,), **{"latent_dim": 2, **kwargs})
    for shape in ((), (0,), "4", (4.0,), (True,)):
        with pytest.raises(ValidationError):
            VAE(shape, 2)  # type: ignore[arg-type]
    for kwargs in ({"latent_dim": 0}, {"tied": 1}, {"weight_decay": float("nan")},
                   {"hidden": (-1,)}, {"activation": "gelu"}):
        with pytest.raises(ValidationError):
            Autoencoder((4,), **{"latent_dim": 2, **kwargs})
    for kwargs in ({"mask_ratio": 1.0}, {"mask_ratio": float("nan")}, {"noise_std": -0.1}):
        with pytest.raises(ValidationError):
            DenoisingAutoencoder((4,), 2, **kwargs)
    for kwargs in ({"target": 0.0}, {"target": 1.0}, {"sparsity_weight": -1.0}):
        with pytest.raises(ValidationError):
            SparseAutoencoder((4,), 2, **kwargs)
    for kwargs in ({"latent_dim": 0}, {"hidden": (0,)}, {"base_channels": True},
                   {"norm": "group"}, {"prior": "cauchy"}, {"num_classes": 1.0}):
        with pytest.raises(ValidationError):
            GAN.build((2,), **{"latent_dim": 2, **kwargs})


def test_sampling_needs_a_positive_int_count_and_a_generator() -> None:
    vae, gan = VAE((4,), 2, hidden=(8,)), GAN.build((2,), 2, hidden=(8,))
    ae = Autoencoder((4,), 2, hidden=())
    for sampler in (vae.sample, gan.sample, gan.sample_latent, ae.sample):
        for n in (0, -1, 2.0, True, "3"):
            with pytest.raises(ValidationError):
                sampler(n)
        with pytest.raises(ValidationError):
            sampler(2, generator=0)  # type: ignore[call-arg]
    assert vae.sample(3).shape == (3, 4) and gan.sample(3).shape == (3, 2)


# ------------------------------------------------------------- property tests: data
_DTYPES = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool])
_SPECIAL = st.sampled_from([0.0, 1.0, 0.5, -0.5, 1.5, float("nan"), float("inf"), -float("inf")])


@st.composite
def _batches(draw: st.DrawFn, event: tuple[int, ...]) -> torch.Tensor:
    """Tensors near a valid batch of ``event``: mostly the right shape and values in [0, 1];
    sometimes an empty batch, a missing batch dimension, another event shape or an integer
    dtype. :func:`_variants` adds NaN, infinite and out-of-range entries."""
    b = draw(st.sampled_from([2, 1, 3, 0]))
    shape = {"ok": (b, *event), "no_batch": event, "event": (b, 5), "extra": (b, *event, 1)}[
        draw(st.sampled_from(["ok", "ok", "ok", "no_batch", "event", "extra"]))]
    dtype = draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.int64,
                                  torch.uint8]))
    x = torch.rand(shape, generator=make_generator(draw(st.integers(0, 9))), dtype=F64)
    if dtype in (torch.int64, torch.uint8):
        return x.round().to(dtype)
    return x.to(dtype)


def _variants(x: torch.Tensor) -> list[torch.Tensor]:
    """``x`` and, for floating ``x``, copies with one NaN, +inf, -inf, 1.5 or -0.5 entry."""
    out = [x]
    if x.is_floating_point() and x.numel():
        for value in (float("nan"), float("inf"), -float("inf"), 1.5, -0.5):
            y = x.clone()
            y.view(-1)[y.numel() // 2] = value
            out.append(y)
    return out


def _bernoulli_elbo_reference(vae: VAE, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The ELBO from the textbook formulas with the same reparameterised draw."""
    mu, logvar = vae.encode(x)
    eps = torch.randn(1, *mu.shape, generator=make_generator(seed), dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = vae.decode(z)
    bern = torch.distributions.Bernoulli(logits=logits, validate_args=False)
    recon = bern.log_prob(x.to(logits.dtype)).sum(-1).mean(0)
    kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(-1)
    return recon - kl


@given(batch=_batches((4,)), seed=st.integers(0, 5))
@settings(max_examples=20)
def test_vae_objectives_on_generated_batches(batch: torch.Tensor, seed: int) -> None:
    vae = VAE((4,), 2, hidden=(6,)).double()
    for x in _variants(batch):
        res = outcome(vae.elbo, x, generator=make_generator(seed))
        valid = (x.is_floating_point() and x.dim() == 2 and x.shape[1] == 4 and x.shape[0] >= 1
                 and bool(((x >= 0) & (x <= 1)).all()))  # NaN fails the range test too
        assert (res.kind == "value") == valid, res
        if valid:
            assert res.value.shape == (x.shape[0],) and bool((res.value <= 0).all())
            if x.dtype == F64:
                want = _bernoulli_elbo_reference(vae, x, seed)
                assert torch.allclose(res.value, want, atol=1e-10)
        for fn, kwargs in ((vae.iwae_bound, {"k": 3}), (vae.loss, {}), (vae.reconstruct, {}),
                           (vae.log_marginal, {"num_samples": 4, "chunk_size": 3})):
            other = outcome(fn, x, **kwargs)
            assert other.kind == res.kind, (fn.__name__, other, res)


@given(x=_batches((4,)), labels=st.sampled_from([None, "good", "float", "range", "short"]))
@settings(max_examples=15)
def test_conditional_vae_and_its_labels(x: torch.Tensor, labels: str | None) -> None:
    vae = VAE((4,), 2, hidden=(6,), num_classes=3, likelihood="gaussian")
    b = x.shape[0] if x.dim() else 0
    y = {None: None, "good": torch.arange(b) % 3, "float": torch.zeros(b),
         "range": torch.full((b,), 3), "short": torch.zeros(max(b - 1, 0), dtype=torch.long)
         }[labels]
    res = outcome(vae.elbo, x, y, generator=make_generator(0))
    if res.kind == "value":
        assert labels == "good" and res.value.shape == (b,)
    res = outcome(vae.sample, 4, torch.arange(4) % 3 if labels == "good" else y)
    assert (res.kind == "value") == (labels == "good" or (labels == "short" and b == 5))


@given(n=st.one_of(st.integers(-2, 4), st.sampled_from([2.0, True, None, "2"])),
       steps=st.one_of(st.integers(-1, 4), st.sampled_from([3.0, False])),
       mean=st.sampled_from([True, False, 1]))
@settings(max_examples=25)
def test_vae_generation_arguments(n: Any, steps: Any, mean: Any) -> None:
    vae = VAE((1, 4, 4), 2, hidden=(6,))
    res = outcome(vae.sample, n, generator=make_generator(0), mean=mean)
    ok_n = isinstance(n, int) and not isinstance(n, bool) and n >= 1
    assert (res.kind == "value") == (ok_n and isinstance(mean, bool))
    if res.kind == "value":
        assert res.value.shape == (n, 1, 4, 4) and bool(((res.value >= 0) & (res.value <= 1))
                                                       .all())
    xa, xb = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    res = outcome(vae.interpolate, xa, xb, steps)
    ok_steps = isinstance(steps, int) and not isinstance(steps, bool) and steps >= 2
    assert (res.kind == "value") == ok_steps
    res = outcome(vae.latent_map, n, as_grid=False)
    assert (res.kind == "value") == ok_n
    if res.kind == "value":
        assert res.value.shape == (n * n, 1, 4, 4)


@given(batch=_batches((4,)), cls=st.sampled_from([Autoencoder, DenoisingAutoencoder,
                                                  SparseAutoencoder]))
@settings(max_examples=15)
def test_autoencoders_on_generated_batches(batch: torch.Tensor, cls: type[Autoencoder]) -> None:
    ae = cls((4,), 3, hidden=(5,))
    for x in _variants(batch):
        _check_autoencoder(ae, x, cls)


def _check_autoencoder(ae: Autoencoder, x: torch.Tensor, cls: type[Autoencoder]) -> None:
    res = outcome(ae.loss_terms, x, make_generator(0))
    valid = (x.is_floating_point() and x.dim() == 2 and x.shape[1] == 4 and x.shape[0] >= 1
             and bool(torch.isfinite(x).all()))  # any finite value is data for an autoencoder
    assert (res.kind == "value") == valid, res
    if valid:
        terms = {k: v.detach() for k, v in res.value.items()}
        assert float(terms["loss"]) == pytest.approx(
            float(sum(v for k, v in terms.items() if k != "loss")), rel=1e-6)
        if cls is Autoencoder:  # no corruption: the mean squared-error sum of g(f(x))
            rec = ae(x.float()).detach()
            want = ((rec - x.float()) ** 2).sum(-1).mean()
            assert float(terms["recon"]) == pytest.approx(float(want), rel=1e-5)
    for fn in (ae.encode, ae.forward):
        assert outcome(fn, x).kind == res.kind
    z = torch.randn(2, 3)
    assert outcome(ae.decode, z).kind == "value"
    assert outcome(ae.decode, z[:, :2]).kind == "error"
    assert outcome(ae.update_code_stats, z, 1.5).kind == "error"


# ---------------------------------------------------------------- property tests: GAN
_SCORES = st.builds(
    lambda n, dtype, special, seed: _scores(n, dtype, special, seed),
    st.integers(0, 4), st.sampled_from([torch.float32, F64, torch.int64]),
    st.sampled_from([None, float("nan"), float("inf"), 1e4, -1e4]), st.integers(0, 3))


def _scores(n: int, dtype: torch.dtype, special: float | None, seed: int) -> torch.Tensor:
    x = 3 * torch.randn(n, generator=make_generator(seed), dtype=F64)
    if n and special is not None:
        x[0] = special
    return x.round().to(dtype) if dtype == torch.int64 else x.to(dtype)


@given(r=_SCORES, f=_SCORES)
def test_gan_losses_are_the_closed_forms_or_typed_errors(r: torch.Tensor,
                                                         f: torch.Tensor) -> None:
    def ok(t: torch.Tensor) -> bool:
        return t.is_floating_point() and t.numel() > 0 and bool(torch.isfinite(t).all())

    both = ok(r) and ok(f)
    rd, fd = r.double(), f.double()
    cases = [
        (discriminator_loss, (r, f), both,
         lambda: -(F.logsigmoid(rd).mean() + F.logsigmoid(-fd).mean())),
        (wasserstein_critic_loss, (r, f), both, lambda: fd.mean() - rd.mean()),
        (least_squares_discriminator_loss, (r, f), both,
         lambda: 0.5 * ((rd - 1) ** 2).mean() + 0.5 * (fd**2).mean()),
        (generator_loss, (f,), ok(f), lambda: -F.logsigmoid(fd).mean()),
        (wasserstein_generator_loss, (f,), ok(f), lambda: -fd.mean()),
        (least_squares_generator_loss, (f,), ok(f), lambda: 0.5 * ((fd - 1) ** 2).mean()),
    ]
    for fn, args, valid, closed in cases:
        res = outcome(fn, *args)
        assert (res.kind == "value") == valid, (fn.__name__, args)
        if valid:
            tol = 1e-4 * (1 + abs(float(closed())))
            assert float(res.value) == pytest.approx(float(closed()), abs=tol)
    for kind in ("minimax", "label-swap", "wgan"):
        res = outcome(generator_loss, f, kind)
        assert (res.kind == "value") == (ok(f) and kind != "wgan")


@given(a=st.lists(st.sampled_from([0.0, -1.0, -3.5, -math.inf, math.inf, math.nan]),
                  min_size=1, max_size=4),
       b=st.lists(st.sampled_from([0.0, -2.0, -math.inf]), min_size=1, max_size=4))
@settings(max_examples=25)
def test_optimal_discriminator_logit(a: list[float], b: list[float]) -> None:
    ta, tb = torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)
    res = outcome(optimal_discriminator_logit, ta, tb, allow_inf=True)
    valid = not any(math.isnan(v) or v == math.inf for v in a) and (
        len(a) == len(b) or 1 in (len(a), len(b)))
    assert (res.kind == "value") == valid
    if valid:
        pa, pb = torch.broadcast_tensors(ta, tb)
        both_zero = torch.isneginf(pa) & torch.isneginf(pb)
        want = torch.where(both_zero, torch.zeros_like(pa), pa - pb)
        assert torch.equal(res.value, want)


@given(n=st.integers(-1, 5), loss=st.sampled_from(["non-saturating", "wgan", "wgan-gp",
                                                    "lsgan", "hinge"]),
       special=st.sampled_from([None, float("nan"), 2.0]), step=st.sampled_from([0, 1, -1, 1.0]))
@settings(max_examples=25)
def test_gan_train_step_on_generated_batches(n: int, loss: str, special: float | None,
                                             step: Any) -> None:
    gan = GAN.build((2,), 2, hidden=(6,))
    opts = {"d": torch.optim.SGD(gan.discriminator.parameters(), lr=1e-3),
            "g": torch.optim.SGD(gan.generator.parameters(), lr=1e-3)}
    real = torch.randn(max(n, 0), 2, generator=make_generator(0))
    if n > 0 and special is not None:
        real[0, 0] = special
    res = outcome(train_step, gan, opts, real, None, step, loss=loss, n_critic=2,
                  generator=make_generator(1))
    valid = (n >= 1 and special is None and loss != "hinge" and isinstance(step, int)
             and step >= 0)
    assert (res.kind == "value") == valid
    if valid:
        assert "d_loss" in res.value and "g_loss" in res.value


def test_gradient_penalty_and_clip_arguments() -> None:
    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * torch.tensor([3.0, 4.0], dtype=x.dtype)).sum(-1)

    real, fake = torch.randn(5, 2, dtype=F64), torch.randn(5, 2, dtype=F64)
    # the gradient of a linear critic has norm 5 everywhere: (5 - 1)^2
    assert float(gradient_penalty(critic, real, fake)) == pytest.approx(16.0)
    for r, f in ((real, fake[:3]), (real.float(), fake), (real[:0], fake[:0]),
                 (torch.full_like(real, math.nan), fake), (real.long(), fake.long())):
        assert outcome(gradient_penalty, critic, r, f).kind == "error"
    from generative.gan import clip_weights_

    for c in (0.0, -1.0, math.nan, True):
        assert outcome(clip_weights_, torch.nn.Linear(2, 2), c).kind == "error"


# ------------------------------------------------------------------- tasks and helpers
def test_tasks_check_their_batches_and_counts() -> None:
    tasks = [AETask(Autoencoder((2,), 1, hidden=(4,), output="linear")),
             VAETask(VAE((2,), 1, hidden=(4,), likelihood="gaussian"),
                     eval_importance_samples=0),
             GANTask(GAN.build((2,), 1, hidden=(4,)))]
    good = (torch.randn(8, 2, generator=make_generator(0)), None)
    bad_batches = [(torch.full((8, 2), math.nan), None), (torch.zeros(8, 3), None),
                   (torch.zeros(8, 2, dtype=torch.long), None), torch.zeros(8, 2),
                   (torch.zeros(0, 2), None), ([[0.0, 0.0]], None)]
    for task in tasks:
        nets = task.networks()
        opts, _ = task.make_optimizers(nets)
        terms = task.training_step(nets, opts, good, 0, make_generator(1))
        assert all(bool(torch.isfinite(v)) for v in terms.values())
        for batch in bad_batches:
            assert outcome(task.training_step, nets, opts, batch, 1, make_generator(1)).kind \
                == "error"
            assert outcome(task.evaluate, nets, batch, make_generator(2)).kind == "error"
        for n in (0, -3, 1.5, True):
            assert outcome(task.sample, nets, n, make_generator(3)).kind == "error"
        assert outcome(task.training_step, {}, opts, good, 0, None).kind == "error"
        assert outcome(task.training_step, nets, {}, good, 0, None).kind == "error"
    image_gan = GANTask(GAN.build((1, 4, 4), 2, hidden=(4,)))
    nets = image_gan.networks()
    opts, _ = image_gan.make_optimizers(nets)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):  # images outside [0, 1]
        image_gan.training_step(nets, opts, (torch.full((4, 1, 4, 4), 2.0), None), 0, None)
    for kwargs in ({"lr": 0.0}, {"lr": -1e-3}, {"n_critic": 0}, {"betas": (0.5,)},
                   {"betas": "ab"}, {"optimizer": "sgd"}, {"clip": 0.0}, {"gp_weight": -1.0},
                   {"loss": "hinge"}):
        with pytest.raises(ValidationError):
            GANTask(GAN.build((2,), 1, hidden=(4,)), **kwargs)
    for kwargs in ({"lr": math.nan}, {"num_samples": 0}, {"k": 1.0}, {"objective": "elbo2"},
                   {"eval_importance_samples": -1}):
        with pytest.raises(ValidationError):
            VAETask(VAE((2,), 1, hidden=(4,)), **kwargs)
    with pytest.raises(ValidationError):
        AETask(VAE((2,), 1, hidden=(4,)))  # type: ignore[arg-type]


def test_tile_images_arguments() -> None:
    imgs = torch.rand(5, 1, 3, 3)
    assert tile_images(imgs, 2).shape == (1, 3 * 4 + 1, 2 * 4 + 1)
    for args in ((imgs, 0), (imgs, 2, -1), (imgs[:0], 2), (imgs[0], 2), (imgs, 2.0),
                 (imgs, 2, 1, math.nan)):
        assert outcome(tile_images, *args).kind == "error"
