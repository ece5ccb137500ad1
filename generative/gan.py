"""Generative adversarial networks (NNDL 13.3, DL7 7.8.2): losses, WGAN, LSGAN, conditional GAN.

Losses take the discriminator's *logits* ``l`` (``D = sigmoid(l)``) and are written with softplus,
``log D = -softplus(-l)`` and ``log(1 - D) = -softplus(l)``, so they stay finite and have correct
gradients at any logit (|l| = 1e4 included, float32 or float64):

- :func:`discriminator_loss` ``-(E log D(x) + E log(1 - D(G(z))))`` (13.32), the binary
  cross-entropy of real-vs-fake;
- :func:`generator_loss` with ``kind="minimax"`` (``E log(1 - D(G(z)))`` minimised, the
  saturating loss of the minimax game (13.34)-(13.35)), ``"non-saturating"``
  (``-E log D(G(z))``, (13.33), used in practice) or ``"label-swap"`` (the textbook's alternative:
  train G on fakes labelled *real*; the same objective as the non-saturating loss, computed as a
  BCE with target 1);
- :func:`wasserstein_critic_loss` / :func:`wasserstein_generator_loss` for WGAN (13.55)-(13.56)
  with :func:`clip_weights_` (Algorithm 13.2: weights clipped to ``[-c, c]``, ``c = 0.01``, after
  each critic step; the seed's "gradient clipping" is weight clipping, seed errata 8) or
  :func:`gradient_penalty` (WGAN-GP, Gulrajani et al. 2017: ``lambda E(||grad D(x_hat)|| - 1)^2`` on
  random interpolates, ``lambda = 10``; not in the seeds);
- :func:`least_squares_discriminator_loss` / :func:`least_squares_generator_loss` (LSGAN, Mao et
  al. 2017, with the 0-1 coding ``a = 0, b = c = 1``);
- :func:`optimal_discriminator_logit` ``log p_data - log p_model``, the logit of
  ``D* = p_data / (p_data + p_model)`` (13.37).

:class:`GAN` holds a generator, a discriminator and the prior of ``z``; :func:`discriminator_step`
and :func:`generator_step` are one optimisation step each, and :func:`train_step` is one iteration
of Algorithm 13.1 / 13.2 (the training loop calls it with ``K`` discriminator steps per generator
step). :func:`mode_collapse_diagnostics` counts the modes of a mixture toy a generator covers.

Examples
--------
>>> import torch
>>> from generative.gan import discriminator_loss, generator_loss
>>> l = torch.tensor([1e4, -1e4])
>>> bool(torch.isfinite(discriminator_loss(l, l)) and torch.isfinite(generator_loss(l)))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import DeviceMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import normal, uniform
from probforge.validate import (
    check_choice,
    check_finite,
    check_int,
    check_log_values,
    check_real,
    check_tensor,
)

from .checks import (
    broadcastable,
    check_batch,
    check_bool,
    check_event_shape,
    check_labels,
    check_num_classes,
    check_optional_generator,
    check_positive_real,
    check_sizes,
    check_vector_batch,
    first_parameter,
)
from .metrics.modes import ModeCoverage, mode_coverage
from .networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    seeded,
)

__all__ = [
    "GAN",
    "GAN_LOSSES",
    "GENERATOR_LOSSES",
    "clip_weights_",
    "discriminator_loss",
    "discriminator_step",
    "generator_loss",
    "generator_step",
    "gradient_penalty",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "mode_collapse_diagnostics",
    "optimal_discriminator_logit",
    "train_step",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]

#: Generator losses of the original (cross-entropy) GAN.
GENERATOR_LOSSES = ("non-saturating", "minimax", "label-swap")
#: Every adversarial objective a :class:`GAN` can be trained with.
GAN_LOSSES = (*GENERATOR_LOSSES, "wgan", "wgan-gp", "lsgan")


def _check_scores(x: Any, subject: str) -> Tensor:
    """Discriminator logits / critic scores: a non-empty, finite, floating tensor."""
    x = check_tensor(x, subject, floating=True, min_ndim=1)
    if x.numel() == 0:
        raise ShapeError(subject, "needs at least one score (the mean of none is undefined)",
                         found=tuple(x.shape))
    return check_finite(x, subject)


def _check_pair(real: Any, fake: Any, where: str, what: str = "logits") -> tuple[Tensor, Tensor]:
    r = _check_scores(real, f"{where} real_{what}")
    f = _check_scores(fake, f"{where} fake_{what}")
    if r.device != f.device:
        raise DeviceMismatchError(where, f"real and fake {what} must be on one device",
                                  found=(str(r.device), str(f.device)))
    return r, f


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-(mean log D(x) + mean log(1 - D(G(z))))`` from logits (13.32); a scalar.

    ``softplus(-l_real) + softplus(l_fake)``, finite and exact at any finite logit. Both inputs
    must be non-empty, finite floating tensors (NaN or an empty batch raises).
    """
    r, f = _check_pair(real_logits, fake_logits, "discriminator_loss")
    return _bce_discriminator(r, f)


def _bce_discriminator(r: Tensor, f: Tensor) -> Tensor:
    return F.softplus(-r).mean() + F.softplus(f).mean()


def generator_loss(fake_logits: Tensor, kind: str = "non-saturating") -> Tensor:
    """Generator loss (to minimise) from the logits of ``D(G(z))``; a scalar.

    Parameters
    ----------
    fake_logits : Tensor (B,)
        Non-empty and finite.
    kind : {"non-saturating", "minimax", "label-swap"}
        ``-mean log D(G(z)) = mean softplus(-l)``; ``mean log(1 - D(G(z))) = -mean softplus(l)``
        (saturates: vanishing gradient when D rejects the fakes); BCE with target 1 (equal to
        the non-saturating loss).

    Examples
    --------
    >>> import torch
    >>> l = torch.tensor([0.0])
    >>> round(float(generator_loss(l)), 4), round(float(generator_loss(l, "minimax")), 4)
    (0.6931, -0.6931)
    """
    check_choice(kind, "generator_loss kind", GENERATOR_LOSSES)
    return _bce_generator(_check_scores(fake_logits, "generator_loss fake_logits"), kind)


def _bce_generator(f: Tensor, kind: str) -> Tensor:
    if kind == "non-saturating":
        return F.softplus(-f).mean()
    if kind == "minimax":
        return -F.softplus(f).mean()
    return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean f(G(z)) - mean f(x)``: minimising it maximises the critic's W1 estimate (13.55).

    Both inputs non-empty, finite floating tensors.
    """
    r, f = _check_pair(real_scores, fake_scores, "wasserstein_critic_loss", "scores")
    return f.mean() - r.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-mean f(G(z))`` (13.56); ``fake_scores`` non-empty and finite."""
    return -_check_scores(fake_scores, "wasserstein_generator_loss fake_scores").mean()


def least_squares_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """LSGAN discriminator loss ``(1/2) mean (D(x) - 1)^2 + (1/2) mean D(G(z))^2``.

    Both inputs non-empty, finite floating tensors.
    """
    r, f = _check_pair(real_scores, fake_scores, "least_squares_discriminator_loss", "scores")
    return _ls_discriminator(r, f)


def _ls_discriminator(r: Tensor, f: Tensor) -> Tensor:
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()


def least_squares_generator_loss(fake_scores: Tensor) -> Tensor:
    """LSGAN generator loss ``(1/2) mean (D(G(z)) - 1)^2``; ``fake_scores`` non-empty, finite."""
    return _ls_generator(_check_scores(fake_scores, "least_squares_generator_loss fake_scores"))


def _ls_generator(f: Tensor) -> Tensor:
    return 0.5 * ((f - 1) ** 2).mean()


def optimal_discriminator_logit(log_p_data: Tensor, log_p_model: Tensor) -> Tensor:
    """Logit of ``D*(x) = p_data(x) / (p_data(x) + p_model(x))`` (13.37), from log-densities.

    ``+inf`` where only the data has mass, ``-inf`` where only the model has. Where neither has
    mass ``D*`` is undefined; the logit returned there is ``0`` (``D* = 1/2``) by convention, so
    that the result is never NaN on a grid shared by both (such points carry no weight in any
    expectation under either distribution).

    Parameters
    ----------
    log_p_data, log_p_model : Tensor
        Floating log-densities, broadcastable, on one device: NaN and ``+inf`` are refused,
        ``-inf`` (zero density) is allowed.
    """
    a = check_tensor(log_p_data, "optimal_discriminator_logit log_p_data", floating=True)
    b = check_tensor(log_p_model, "optimal_discriminator_logit log_p_model", floating=True)
    if a.device != b.device:
        raise DeviceMismatchError("optimal_discriminator_logit", "the log-densities must be on "
                                  "one device", found=(str(a.device), str(b.device)))
    if not broadcastable(a.shape, b.shape):
        raise ShapeError("optimal_discriminator_logit", "the log-densities must broadcast",
                         found=(tuple(a.shape), tuple(b.shape)))
    for name, t in (("log_p_data", a), ("log_p_model", b)):
        check_log_values(t, f"optimal_discriminator_logit {name}")
    both_zero = torch.isneginf(a) & torch.isneginf(b)
    return torch.where(both_zero, torch.zeros((), dtype=(a - b).dtype, device=a.device), a - b)


def clip_weights_(module: nn.Module, c: float) -> None:
    """Clip every parameter of ``module`` to ``[-c, c]`` in place (WGAN, Algorithm 13.2)."""
    if not isinstance(module, nn.Module):
        raise ValidationError("clip_weights_", "module must be a torch.nn.Module",
                              found=type(module).__name__)
    c = check_real(c, "clip_weights_ c (the clip value)", minimum=0.0, strict_minimum=True)
    _clip(module, c)


def _clip(module: nn.Module, c: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)


def gradient_penalty(critic: Callable[..., Tensor], real: Tensor, fake: Tensor,
                     y: Tensor | None = None, *,
                     generator: torch.Generator | None = None) -> Tensor:
    """``mean_b (||grad_x D(x_hat_b)||_2 - 1)^2`` at ``x_hat = e x + (1 - e) x~``, ``e ~ U(0, 1)``.

    Differentiable in the critic's parameters (``create_graph=True``); multiply by ``lambda``.
    ``real`` and ``fake`` must be non-empty, finite floating tensors of one shape, dtype and
    device; the critic must return one finite score per row.
    """
    if not callable(critic):
        raise ValidationError("gradient_penalty", "critic must be callable",
                              found=type(critic).__name__)
    real = check_vector_batch(real, "gradient_penalty real")
    fake = check_vector_batch(fake, "gradient_penalty fake", like=real)
    if real.shape != fake.shape or real.dtype != fake.dtype:
        raise ShapeError("gradient_penalty", "real and fake must have one shape and dtype",
                         found=((tuple(real.shape), real.dtype), (tuple(fake.shape), fake.dtype)))
    check_optional_generator(generator, "gradient_penalty generator", real.device)
    out = _gradient_penalty(critic, real, fake, y, generator)
    if not bool(torch.isfinite(out)):
        raise NonFiniteError("gradient_penalty", "the critic's scores or gradients are not "
                             "finite", found=float(out))
    return out


def _gradient_penalty(critic: Callable[..., Tensor], real: Tensor, fake: Tensor,
                      y: Tensor | None, generator: torch.Generator | None) -> Tensor:
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    e = uniform(shape, generator=generator, dtype=real.dtype, device=real.device)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if y is None else critic(x_hat, y)
    if not isinstance(scores, Tensor) or scores.shape != (real.shape[0],):
        raise ShapeError("gradient_penalty", f"the critic must return ({real.shape[0]},) scores",
                         found=tuple(scores.shape) if isinstance(scores, Tensor)
                         else type(scores).__name__)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.reshape(grad.shape[0], -1).norm(dim=1)
    out: Tensor = ((norm - 1) ** 2).mean()
    return out


class GAN(nn.Module):
    """A generator ``G(z[, y])``, a discriminator/critic ``D(x[, y]) -> (B,)`` and the prior of z.

    Parameters
    ----------
    generator, discriminator : nn.Module
    latent_dim : int
    prior : {"normal", "uniform"}
        ``z ~ N(0, I)`` (DL7) or ``U(-1, 1)^d`` (NNDL's DCGAN; seed errata 16: configurable).
    num_classes : int, optional
        Conditional GAN: both networks take labels.
    image : bool
        The data are images in ``[0, 1]`` and the generator outputs ``[-1, 1]`` (Tanh):
        :meth:`to_model_space` / :meth:`to_data_space` convert.
    spec : dict, optional
        How the networks were built (set by :meth:`build`; needed for configs and checkpoints).

    Examples
    --------
    >>> from probforge.ops import make_generator
    >>> gan = GAN.build((2,), latent_dim=2, hidden=(16,))
    >>> gan.sample(4, generator=make_generator(0)).shape
    torch.Size([4, 2])
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int, *,
                 prior: str = "normal", num_classes: int | None = None, image: bool = False,
                 spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, nn.Module):
                raise ValidationError(f"GAN {name}", "must be a torch.nn.Module",
                                      found=type(net).__name__)
        check_choice(prior, "GAN prior", ("normal", "uniform"))
        latent_dim = check_int(latent_dim, "GAN latent_dim", minimum=1)
        num_classes = check_num_classes(num_classes, "GAN num_classes")
        image = check_bool(image, "GAN image")
        if spec is not None and not isinstance(spec, dict):
            raise ValidationError("GAN spec", "must be a dict or None", found=type(spec).__name__)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.prior, self.num_classes = latent_dim, prior, num_classes
        self.image = image
        self.spec = dict(spec) if spec is not None else None
        #: Shape of one data point when built by :meth:`build` (None for custom networks).
        self.event_shape: tuple[int, ...] | None = (
            tuple(int(v) for v in self.spec["event_shape"])
            if self.spec is not None and "event_shape" in self.spec else None)

    @classmethod
    def build(cls, event_shape: Sequence[int], latent_dim: int = 64, *, arch: str = "mlp",
              hidden: Sequence[int] = (128, 128), base_channels: int = 64,
              num_classes: int | None = None, norm: str = "batch", prior: str = "normal",
              seed: int = 0) -> GAN:
        """Build a GAN with MLP or DCGAN networks for ``event_shape``.

        Parameters
        ----------
        event_shape : sequence of int
            ``(C, H, W)`` images (taken to lie in ``[0, 1]``) or vectors such as ``(2,)``.
        latent_dim : int
        arch : {"mlp", "dcgan"}
        hidden : sequence of int
            MLP hidden sizes (both networks).
        base_channels : int
            DCGAN width.
        num_classes : int, optional
        norm : {"batch", "layer", "none"}
            DCGAN discriminator normalisation (use "layer" or "none" with WGAN-GP).
        prior : {"normal", "uniform"}
        seed : int
            Seed of the initial weights (the global RNG is left untouched).
        """
        shape = check_event_shape(event_shape, "GAN.build event_shape")
        check_choice(arch, "GAN.build arch", ("mlp", "dcgan"))
        latent_dim = check_int(latent_dim, "GAN.build latent_dim", minimum=1)
        hidden = check_sizes(hidden, "GAN.build hidden")
        base_channels = check_int(base_channels, "GAN.build base_channels", minimum=1)
        num_classes = check_num_classes(num_classes, "GAN.build num_classes")
        check_choice(norm, "GAN.build norm", ("batch", "layer", "none"))
        check_choice(prior, "GAN.build prior", ("normal", "uniform"))
        seed = check_int(seed, "GAN.build seed")
        image = len(shape) == 3
        if arch == "dcgan" and not image:
            raise ValidationError("GAN.build", "the DCGAN architecture needs (C, H, W) images",
                                  found=shape, fix="use arch='mlp'")
        with seeded(seed):
            if arch == "dcgan":
                g: nn.Module = DCGANGenerator(latent_dim, shape, base_channels, num_classes)
                d: nn.Module = DCGANDiscriminator(shape, base_channels, num_classes, norm)
            else:
                g = MLPGenerator(latent_dim, shape, hidden, num_classes,
                                 output="tanh" if image else "linear")
                d = MLPDiscriminator(shape, hidden, num_classes)
        spec = {"event_shape": list(shape), "latent_dim": int(latent_dim), "arch": arch,
                "hidden": [int(h) for h in hidden], "base_channels": int(base_channels),
                "num_classes": num_classes, "norm": norm, "prior": prior, "seed": int(seed)}
        return cls(g, d, latent_dim, prior=prior, num_classes=num_classes, image=image, spec=spec)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n >= 1`` draws of the prior (n, latent_dim) in the networks' dtype and device."""
        n = check_int(n, "GAN.sample_latent n", minimum=1)
        p = self._param()
        check_optional_generator(generator, "GAN generator", p.device)
        return self._latent(n, generator)

    def _param(self) -> Tensor:
        p = first_parameter(self.generator)
        if p is None:
            raise ValidationError("GAN generator", "has no parameters, so its dtype and device "
                                  "are unknown", fix="give the generator at least one parameter")
        return p

    def _latent(self, n: int, generator: torch.Generator | None) -> Tensor:
        p = self._param()
        if self.prior == "normal":
            return normal((n, self.latent_dim), generator=generator, dtype=p.dtype,
                          device=p.device)
        u = uniform((n, self.latent_dim), generator=generator, dtype=p.dtype, device=p.device)
        return 2 * u - 1

    def default_labels(self, n: int) -> Tensor | None:
        """``0, 1, ..., K-1, 0, 1, ...`` (n,) for a conditional GAN, None otherwise (n >= 1)."""
        n = check_int(n, "GAN.default_labels n", minimum=1)
        if self.num_classes is None:
            return None
        dev = self._param().device
        return torch.arange(n, device=dev) % self.num_classes

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data to the networks' scale: ``2x - 1`` for images, unchanged otherwise."""
        check_tensor(x, "GAN.to_model_space x", floating=True)
        return 2 * x - 1 if self.image else x

    def to_data_space(self, x: Tensor) -> Tensor:
        """Generator outputs to data scale: ``(x + 1) / 2`` for images, unchanged otherwise."""
        check_tensor(x, "GAN.to_data_space x", floating=True)
        return (x + 1) / 2 if self.image else x

    def sample(self, n: int, y: Tensor | None = None, *,
               generator: torch.Generator | None = None) -> Tensor:
        """``n >= 1`` samples in data space (n, *event); labels default to
        :meth:`default_labels` (a conditional GAN given ``y`` needs ``(n,)`` labels)."""
        n = check_int(n, "GAN.sample n", minimum=1)
        p = self._param()
        check_optional_generator(generator, "GAN.sample generator", p.device)
        if y is None:
            y = self.default_labels(n)
        y = check_labels(y, "GAN.sample", n, self.num_classes, like=p)
        z = self._latent(n, generator)
        with torch.no_grad():
            out = self.generator(z) if y is None else self.generator(z, y)
        return self.to_data_space(out)


def _call(net: Callable[..., Tensor], x: Tensor, y: Tensor | None) -> Tensor:
    return net(x) if y is None else net(x, y)


def _check_gan(gan: Any, where: str) -> GAN:
    if not isinstance(gan, GAN):
        raise ValidationError(f"{where} gan", "must be a generative.gan.GAN",
                              found=type(gan).__name__)
    return gan


def _check_real(gan: GAN, real: Any, y: Any, where: str) -> Tensor | None:
    """Check a real batch (model space) and its labels; return the labels."""
    p = gan._param()
    if gan.event_shape is not None:
        check_batch(real, f"{where} real", gan.event_shape, like=p)
    else:
        check_vector_batch(real, f"{where} real", like=p)
    return check_labels(y, where, real.shape[0], gan.num_classes, like=p)


def _check_optimizer(opt: Any, subject: str) -> torch.optim.Optimizer:
    if not isinstance(opt, torch.optim.Optimizer):
        raise ValidationError(subject, "must be a torch.optim.Optimizer",
                              found=type(opt).__name__)
    return opt


def discriminator_step(
    gan: GAN,
    generator_net: Callable[..., Tensor],
    discriminator_net: Callable[..., Tensor],
    optimizer: torch.optim.Optimizer,
    real: Tensor,
    y: Tensor | None,
    *,
    loss: str = "non-saturating",
    clip: float | None = None,
    gp_weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """One discriminator (critic) step on a real batch in model space; returns detached terms.

    ``d_loss`` (the minimised objective), ``g_loss`` (the generator's loss on these fakes, an
    estimate at no extra cost), and ``w_estimate`` (WGAN: ``mean f(x) - mean f(G(z))``) or
    ``gp`` (WGAN-GP). WGAN clips the critic's weights after the step.

    ``real`` (B, *event), ``B >= 1``, must be finite floating data on the networks' device;
    ``y`` labels exactly when the GAN is conditional. Non-finite network outputs are not
    refused here: they show as non-finite loss terms, which the training loop reports.
    """
    gan = _check_gan(gan, "discriminator_step")
    check_choice(loss, "discriminator_step loss", GAN_LOSSES)
    _check_optimizer(optimizer, "discriminator_step optimizer")
    y = _check_real(gan, real, y, "discriminator_step")
    clip = None if clip is None else check_positive_real(clip, "discriminator_step clip")
    gp_weight = check_real(gp_weight, "discriminator_step gp_weight", minimum=0.0)
    check_optional_generator(generator, "discriminator_step generator", real.device)
    return _discriminator_step(gan, generator_net, discriminator_net, optimizer, real, y, loss,
                               clip, gp_weight, generator)


def _discriminator_step(gan: GAN, generator_net: Callable[..., Tensor],
                        discriminator_net: Callable[..., Tensor],
                        optimizer: torch.optim.Optimizer, real: Tensor, y: Tensor | None,
                        loss: str, clip: float | None, gp_weight: float,
                        generator: torch.Generator | None) -> dict[str, Tensor]:
    z = gan._latent(real.shape[0], generator)
    with torch.no_grad():
        fake = _call(generator_net, z, y)
    r = _call(discriminator_net, real, y)
    f = _call(discriminator_net, fake, y)
    out: dict[str, Tensor] = {}
    if loss in GENERATOR_LOSSES:
        d_loss = _bce_discriminator(r, f)
        out["g_loss"] = _bce_generator(f.detach(), loss)
    elif loss in ("wgan", "wgan-gp"):
        d_loss = f.mean() - r.mean()
        out["w_estimate"] = -d_loss.detach()
        out["g_loss"] = -f.detach().mean()
        if loss == "wgan-gp":
            gp = _gradient_penalty(discriminator_net, real, fake, y, generator)
            out["gp"] = gp.detach()
            d_loss = d_loss + gp_weight * gp
    else:
        d_loss = _ls_discriminator(r, f)
        out["g_loss"] = _ls_generator(f.detach())
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(d_loss)
    optimizer.step()
    if loss == "wgan":
        _clip(gan.discriminator, 0.01 if clip is None else clip)
    out["d_loss"] = d_loss.detach()
    return out


def generator_step(
    gan: GAN,
    generator_net: Callable[..., Tensor],
    discriminator_net: Callable[..., Tensor],
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    y: Tensor | None,
    *,
    loss: str = "non-saturating",
    generator: torch.Generator | None = None,
) -> Tensor:
    """One generator step on ``batch_size`` fresh prior draws; returns the detached loss.

    Only the generator's optimiser steps; the discriminator's gradients are not accumulated.
    ``batch_size >= 1``; ``y`` (batch_size,) labels exactly when the GAN is conditional.
    """
    gan = _check_gan(gan, "generator_step")
    check_choice(loss, "generator_step loss", GAN_LOSSES)
    _check_optimizer(optimizer, "generator_step optimizer")
    batch_size = check_int(batch_size, "generator_step batch_size", minimum=1)
    p = gan._param()
    y = check_labels(y, "generator_step", batch_size, gan.num_classes, like=p)
    check_optional_generator(generator, "generator_step generator", p.device)
    return _generator_step(gan, generator_net, discriminator_net, optimizer, batch_size, y,
                           loss, generator)


def _generator_step(gan: GAN, generator_net: Callable[..., Tensor],
                    discriminator_net: Callable[..., Tensor], optimizer: torch.optim.Optimizer,
                    batch_size: int, y: Tensor | None, loss: str,
                    generator: torch.Generator | None) -> Tensor:
    z = gan._latent(batch_size, generator)
    fake = _call(generator_net, z, y)
    d_params = [p for p in gan.discriminator.parameters() if p.requires_grad]
    for p in d_params:
        p.requires_grad_(False)
    try:
        f = _call(discriminator_net, fake, y)
    finally:
        for p in d_params:
            p.requires_grad_(True)
    if loss in GENERATOR_LOSSES:
        g_loss = _bce_generator(f, loss)
    elif loss in ("wgan", "wgan-gp"):
        g_loss = -f.mean()
    else:
        g_loss = _ls_generator(f)
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(g_loss)
    optimizer.step()
    return g_loss.detach()


def train_step(
    gan: GAN,
    optimizers: dict[str, torch.optim.Optimizer],
    real: Tensor,
    y: Tensor | None,
    step: int,
    *,
    loss: str = "non-saturating",
    n_critic: int = 1,
    clip: float | None = None,
    gp_weight: float = 10.0,
    generator: torch.Generator | None = None,
    nets: dict[str, Callable[..., Tensor]] | None = None,
) -> dict[str, Tensor]:
    """Step ``step`` (0-based) of Algorithm 13.1 / 13.2 on one real batch (model space).

    Every step is a discriminator step on the batch; every ``n_critic``-th step (``step % n_critic
    == n_critic - 1``) is followed by a generator step on fresh noise, so ``K = n_critic``
    discriminator steps, each on its own minibatch, precede each generator step.

    Parameters
    ----------
    gan : GAN
    optimizers : dict
        ``{"d": ..., "g": ...}``.
    real : Tensor (B, *event)
        Real data in model space (:meth:`GAN.to_model_space`).
    y : Tensor (B,), optional
        Labels (conditional GAN; the fakes use the same labels).
    step : int
    loss : str
        One of :data:`GAN_LOSSES`.
    n_critic : int
    clip : float, optional
        WGAN weight-clipping value (default 0.01).
    gp_weight : float
        WGAN-GP ``lambda``.
    generator : torch.Generator, optional
    nets : dict, optional
        ``{"generator": ..., "discriminator": ...}`` callables to use instead of the GAN's own
        modules (e.g. DDP wrappers of them).

    Returns
    -------
    dict of str to Tensor ()
        ``d_loss``, ``g_loss`` (after the generator step when there was one) and extras.
    """
    gan = _check_gan(gan, "train_step")
    check_choice(loss, "train_step loss", GAN_LOSSES)
    n_critic = check_int(n_critic, "train_step n_critic", minimum=1)
    step = check_int(step, "train_step step", minimum=0)
    if not isinstance(optimizers, Mapping) or not {"d", "g"} <= set(optimizers):
        raise ValidationError("train_step optimizers", "must be a dict with keys 'd' and 'g'",
                              found=sorted(optimizers) if isinstance(optimizers, Mapping)
                              else type(optimizers).__name__)
    _check_optimizer(optimizers["d"], "train_step optimizers['d']")
    _check_optimizer(optimizers["g"], "train_step optimizers['g']")
    if nets is not None and (not isinstance(nets, Mapping)
                             or not {"generator", "discriminator"} <= set(nets)):
        raise ValidationError("train_step nets", "must be None or a dict with keys 'generator' "
                              "and 'discriminator'", found=type(nets).__name__)
    y = _check_real(gan, real, y, "train_step")
    clip = None if clip is None else check_positive_real(clip, "train_step clip")
    gp_weight = check_real(gp_weight, "train_step gp_weight", minimum=0.0)
    check_optional_generator(generator, "train_step generator", real.device)
    g_net = nets["generator"] if nets else gan.generator
    d_net = nets["discriminator"] if nets else gan.discriminator
    out = _discriminator_step(gan, g_net, d_net, optimizers["d"], real, y, loss, clip,
                              gp_weight, generator)
    if step % n_critic == n_critic - 1:
        # The generator step needs D's gradient with respect to its input only: call the plain
        # discriminator (not a DDP wrapper, which would wait for D parameter gradients).
        d_plain = getattr(d_net, "module", d_net)
        out["g_loss"] = _generator_step(gan, g_net, d_plain, optimizers["g"], real.shape[0], y,
                                        loss, generator)
    return out


def mode_collapse_diagnostics(samples: Tensor, centers: Tensor, std: float, *,
                              num_std: float = 3.0) -> dict[str, float]:
    """Mode-collapse figures of samples from a mixture toy (see :mod:`generative.metrics.modes`).

    Returns
    -------
    dict
        ``modes_covered``, ``num_modes``, ``high_quality_fraction``, ``mode_kl`` (KL of the mode
        histogram to uniform; ``log K`` is total collapse) and ``collapsed`` (1.0 when fewer than
        all modes are covered).
    """
    r: ModeCoverage = mode_coverage(samples, centers, std, num_std=num_std)
    return {"modes_covered": float(r.modes_covered), "num_modes": float(r.num_modes),
            "high_quality_fraction": r.high_quality_fraction, "mode_kl": r.mode_kl,
            "collapsed": float(r.modes_covered < r.num_modes),
            "max_mode_kl": math.log(r.num_modes)}
