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
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import ValidationError
from probforge.ops.random import normal, uniform

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


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-(mean log D(x) + mean log(1 - D(G(z))))`` from logits (13.32); a scalar.

    ``softplus(-l_real) + softplus(l_fake)``, finite and exact at any logit.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str = "non-saturating") -> Tensor:
    """Generator loss (to minimise) from the logits of ``D(G(z))``; a scalar.

    Parameters
    ----------
    fake_logits : Tensor (B,)
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
    if kind == "non-saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    if kind == "label-swap":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    raise ValidationError("generator_loss", f"kind must be one of {GENERATOR_LOSSES}",
                          found=repr(kind))


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean f(G(z)) - mean f(x)``: minimising it maximises the critic's W1 estimate (13.55)."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-mean f(G(z))`` (13.56)."""
    return -fake_scores.mean()


def least_squares_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """LSGAN discriminator loss ``(1/2) mean (D(x) - 1)^2 + (1/2) mean D(G(z))^2``."""
    return 0.5 * ((real_scores - 1) ** 2).mean() + 0.5 * (fake_scores**2).mean()


def least_squares_generator_loss(fake_scores: Tensor) -> Tensor:
    """LSGAN generator loss ``(1/2) mean (D(G(z)) - 1)^2``."""
    return 0.5 * ((fake_scores - 1) ** 2).mean()


def optimal_discriminator_logit(log_p_data: Tensor, log_p_model: Tensor) -> Tensor:
    """Logit of ``D*(x) = p_data(x) / (p_data(x) + p_model(x))`` (13.37), from log-densities.

    ``+inf`` where only the data has mass, ``-inf`` where only the model has; NaN where neither
    has (``D*`` is undefined there).
    """
    return log_p_data - log_p_model


def clip_weights_(module: nn.Module, c: float) -> None:
    """Clip every parameter of ``module`` to ``[-c, c]`` in place (WGAN, Algorithm 13.2)."""
    if not c > 0:
        raise ValidationError("clip_weights_", "the clip value c must be positive", found=c)
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)


def gradient_penalty(critic: Callable[..., Tensor], real: Tensor, fake: Tensor,
                     y: Tensor | None = None, *,
                     generator: torch.Generator | None = None) -> Tensor:
    """``mean_b (||grad_x D(x_hat_b)||_2 - 1)^2`` at ``x_hat = e x + (1 - e) x~``, ``e ~ U(0, 1)``.

    Differentiable in the critic's parameters (``create_graph=True``); multiply by ``lambda``.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    e = uniform(shape, generator=generator, dtype=real.dtype, device=real.device)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if y is None else critic(x_hat, y)
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
        if prior not in ("normal", "uniform"):
            raise ValidationError("GAN", "prior must be 'normal' or 'uniform'", found=repr(prior))
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.prior, self.num_classes = int(latent_dim), prior, num_classes
        self.image = bool(image)
        self.spec = dict(spec) if spec is not None else None

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
        shape = tuple(int(v) for v in event_shape)
        if arch not in ("mlp", "dcgan"):
            raise ValidationError("GAN.build", "arch must be 'mlp' or 'dcgan'", found=repr(arch))
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
        """``n`` draws of the prior (n, latent_dim) in the networks' dtype and device."""
        p = next(self.generator.parameters())
        if self.prior == "normal":
            return normal((n, self.latent_dim), generator=generator, dtype=p.dtype,
                          device=p.device)
        u = uniform((n, self.latent_dim), generator=generator, dtype=p.dtype, device=p.device)
        return 2 * u - 1

    def default_labels(self, n: int) -> Tensor | None:
        """``0, 1, ..., K-1, 0, 1, ...`` (n,) for a conditional GAN, None otherwise."""
        if self.num_classes is None:
            return None
        dev = next(self.generator.parameters()).device
        return torch.arange(n, device=dev) % self.num_classes

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data to the networks' scale: ``2x - 1`` for images, unchanged otherwise."""
        return 2 * x - 1 if self.image else x

    def to_data_space(self, x: Tensor) -> Tensor:
        """Generator outputs to data scale: ``(x + 1) / 2`` for images, unchanged otherwise."""
        return (x + 1) / 2 if self.image else x

    def sample(self, n: int, y: Tensor | None = None, *,
               generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples in data space (n, *event); labels default to :meth:`default_labels`."""
        if y is None:
            y = self.default_labels(n)
        z = self.sample_latent(n, generator)
        with torch.no_grad():
            out = self.generator(z) if y is None else self.generator(z, y)
        return self.to_data_space(out)


def _call(net: Callable[..., Tensor], x: Tensor, y: Tensor | None) -> Tensor:
    return net(x) if y is None else net(x, y)


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
    """
    z = gan.sample_latent(real.shape[0], generator)
    with torch.no_grad():
        fake = _call(generator_net, z, y)
    r = _call(discriminator_net, real, y)
    f = _call(discriminator_net, fake, y)
    out: dict[str, Tensor] = {}
    if loss in GENERATOR_LOSSES:
        d_loss = discriminator_loss(r, f)
        out["g_loss"] = generator_loss(f.detach(), loss)
    elif loss in ("wgan", "wgan-gp"):
        d_loss = wasserstein_critic_loss(r, f)
        out["w_estimate"] = -d_loss.detach()
        out["g_loss"] = wasserstein_generator_loss(f.detach())
        if loss == "wgan-gp":
            gp = gradient_penalty(discriminator_net, real, fake, y, generator=generator)
            out["gp"] = gp.detach()
            d_loss = d_loss + gp_weight * gp
    elif loss == "lsgan":
        d_loss = least_squares_discriminator_loss(r, f)
        out["g_loss"] = least_squares_generator_loss(f.detach())
    else:
        raise ValidationError("discriminator_step", f"loss must be one of {GAN_LOSSES}",
                              found=repr(loss))
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(d_loss)
    optimizer.step()
    if loss == "wgan":
        clip_weights_(gan.discriminator, 0.01 if clip is None else clip)
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
    """
    z = gan.sample_latent(batch_size, generator)
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
        g_loss = generator_loss(f, loss)
    elif loss in ("wgan", "wgan-gp"):
        g_loss = wasserstein_generator_loss(f)
    elif loss == "lsgan":
        g_loss = least_squares_generator_loss(f)
    else:
        raise ValidationError("generator_step", f"loss must be one of {GAN_LOSSES}",
                              found=repr(loss))
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
    if n_critic < 1:
        raise ValidationError("train_step", "n_critic must be >= 1", found=n_critic)
    g_net = nets["generator"] if nets else gan.generator
    d_net = nets["discriminator"] if nets else gan.discriminator
    out = discriminator_step(gan, g_net, d_net, optimizers["d"], real, y, loss=loss, clip=clip,
                             gp_weight=gp_weight, generator=generator)
    if step % n_critic == n_critic - 1:
        # The generator step needs D's gradient with respect to its input only: call the plain
        # discriminator (not a DDP wrapper, which would wait for D parameter gradients).
        d_plain = getattr(d_net, "module", d_net)
        out["g_loss"] = generator_step(gan, g_net, d_plain, optimizers["g"], real.shape[0], y,
                                       loss=loss, generator=generator)
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
