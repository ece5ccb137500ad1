"""Variational autoencoders (NNDL 13.2, DL7 7.8.1; Kingma & Welling 2014): VAE, beta-VAE, IWAE.

The model is ``p(z) = N(0, I)``, ``p(x | z)`` a decoder network, and the inference network
``q(z | x) = N(mu(x), diag exp(logvar(x)))`` (13.6)-(13.7; the encoder outputs ``log sigma^2``).
Draws are reparameterised, ``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (13.26), so the Monte Carlo
ELBO is differentiable in the encoder. Available pieces:

- likelihoods: ``"bernoulli"`` (13.17; decoder logits, for x in {0, 1}: a normalised density only
  for binary data), ``"gaussian"`` (13.18; fixed ``std`` gives the textbook's lambda-weighted form
  (13.28) up to constants, or ``"learned"``: one learned scale per dimension) and
  ``"categorical"`` (x integer-valued in ``{0, ..., K-1}``, K logits per dimension);
- the ELBO ``E_q[log p(x|z)] - KL(q || p)`` with the analytic Gaussian KL (13.24) and an
  M-sample Monte Carlo reconstruction term (13.22), or with the Monte Carlo KL
  (``kl="mc"``: ``mean_m log p(x, z_m) - log q(z_m | x)``, exact for every draw when ``q`` is the
  true posterior);
- beta-VAE (``beta`` weighs the KL in :meth:`VAE.loss`; ``beta = 1`` is the ELBO);
- the IWAE bound ``E log (1/k) sum_i p(x, z_i) / q(z_i | x)`` (Burda et al. 2016), which is the
  ELBO for ``k = 1`` and increases to ``log p(x)`` with ``k``;
- a conditional VAE (``num_classes``: the one-hot label enters encoder and decoder; the prior stays
  ``N(0, I)``);
- prior samples, reconstructions, latent interpolation and 2-D latent maps (decoded grids of the
  first two latent coordinates at Gaussian quantiles, NNDL Fig. 13.6b) as image tensors;
- the test log-likelihood by importance sampling with the encoder as proposal
  (:meth:`VAE.log_marginal`, ``k >= 1000``, chunked).

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.vae import VAE
>>> vae = VAE((1, 8, 8), latent_dim=2, hidden=(32,))
>>> x = (torch.rand(5, 1, 8, 8, generator=make_generator(0)) > 0.5).float()
>>> vae.elbo(x, generator=make_generator(1)).shape
torch.Size([5])
>>> vae.sample(3, generator=make_generator(2)).shape
torch.Size([3, 1, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import normal, uniform

from .metrics.divergences import kl_normal_diag
from .metrics.likelihood import (
    DiagonalNormalProposal,
    LogLikelihoodEstimate,
    importance_log_likelihood,
)
from .networks import ConvDecoder, ConvEncoder, mlp, one_hot, seeded

__all__ = ["LIKELIHOODS", "VAE", "ELBOTerms", "tile_images"]

LIKELIHOODS = ("bernoulli", "gaussian", "categorical")
_LOG_2PI = math.log(2 * math.pi)


class ELBOTerms(NamedTuple):
    """Per-data-point ELBO pieces (each (B,)): ``elbo = recon - kl``."""

    recon: Tensor
    kl: Tensor

    @property
    def elbo(self) -> Tensor:
        """``recon - kl`` (B,)."""
        return self.recon - self.kl


def tile_images(images: Tensor, nrow: int, padding: int = 1, value: float = 1.0) -> Tensor:
    """Tile ``(N, C, H, W)`` images into one ``(C, rows*(H+p)+p, nrow*(W+p)+p)`` grid image."""
    if images.dim() != 4:
        raise ShapeError("tile_images", "images must be (N, C, H, W)", found=tuple(images.shape))
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    out = images.new_full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding),
                          value)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        out[:, top:top + h, left:left + w] = images[i]
    return out


class VAE(nn.Module):
    """Variational autoencoder with a diagonal-Gaussian encoder and a choice of decoders.

    Parameters
    ----------
    event_shape : sequence of int
        Shape of one data point, e.g. ``(1, 28, 28)`` or ``(2,)``.
    latent_dim : int
    likelihood : {"bernoulli", "gaussian", "categorical"}
    arch : {"mlp", "conv"}
        "conv" needs a square image event shape (C, H, W).
    hidden : sequence of int
        MLP hidden sizes of the encoder (the decoder mirrors them); ``()`` gives linear maps.
    channels : sequence of int
        Conv stages of the encoder (the decoder mirrors them).
    num_classes : int, optional
        Conditional VAE on labels ``0 .. num_classes - 1``.
    beta : float
        KL weight of :meth:`loss` (beta-VAE; 1 is the ELBO).
    gaussian_std : float or "learned"
        Decoder standard deviation of the Gaussian likelihood.
    num_categories : int, optional
        ``K`` of the categorical likelihood (required for it).
    seed : int
        Seed of the initial weights (the global RNG is left untouched).
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        latent_dim: int = 16,
        *,
        likelihood: str = "bernoulli",
        arch: str = "mlp",
        hidden: Sequence[int] = (512, 256),
        channels: Sequence[int] = (32, 64),
        num_classes: int | None = None,
        beta: float = 1.0,
        gaussian_std: float | str = "learned",
        num_categories: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.event_shape = tuple(int(v) for v in event_shape)
        if likelihood not in LIKELIHOODS:
            raise ValidationError("VAE", f"likelihood must be one of {LIKELIHOODS}",
                                  found=repr(likelihood))
        if arch not in ("mlp", "conv"):
            raise ValidationError("VAE", "arch must be 'mlp' or 'conv'", found=repr(arch))
        if latent_dim < 1 or not self.event_shape:
            raise ValidationError("VAE", "latent_dim must be >= 1 and event_shape non-empty",
                                  found=(latent_dim, self.event_shape))
        if beta < 0:
            raise ValidationError("VAE", "beta must be >= 0", found=beta)
        if likelihood == "categorical" and (num_categories is None or num_categories < 2):
            raise ValidationError("VAE", "the categorical likelihood needs num_categories >= 2",
                                  found=num_categories)
        if isinstance(gaussian_std, str):
            if gaussian_std != "learned":
                raise ValidationError("VAE", "gaussian_std must be a positive float or 'learned'",
                                      found=repr(gaussian_std))
        elif not gaussian_std > 0:
            raise ValidationError("VAE", "gaussian_std must be positive", found=gaussian_std)
        self.latent_dim, self.likelihood, self.arch = int(latent_dim), likelihood, arch
        self.num_classes, self.beta, self.num_categories = num_classes, float(beta), num_categories
        self.gaussian_std = gaussian_std
        self._hidden = [int(h) for h in hidden]
        self._channels = [int(c) for c in channels]
        self._seed = int(seed)
        size = math.prod(self.event_shape)
        per = num_categories if likelihood == "categorical" else 1
        assert per is not None
        self._per = per
        ncls = num_classes or 0
        with seeded(seed):
            if arch == "conv":
                self.encoder: nn.Module = ConvEncoder(self.event_shape, 2 * latent_dim, channels,
                                                      num_classes)
                self.decoder: nn.Module = ConvDecoder(latent_dim, self.event_shape, per,
                                                      tuple(reversed(channels)), num_classes)
            else:
                self.encoder = mlp([size + ncls, *hidden, 2 * latent_dim])
                self.decoder = mlp([latent_dim + ncls, *reversed(tuple(hidden)), size * per])
        self.log_std: nn.Parameter | None = None
        if likelihood == "gaussian" and gaussian_std == "learned":
            self.log_std = nn.Parameter(torch.zeros(self.event_shape))

    # ----------------------------------------------------------------------------- networks
    def _check_x(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ShapeError("VAE input x", f"must be (B, {', '.join(map(str, self.event_shape))})",
                             found=tuple(x.shape))
        if self.likelihood == "bernoulli" and bool(((x < 0) | (x > 1)).any()):
            raise ValidationError("VAE input x", "the Bernoulli likelihood needs x in [0, 1]",
                                  found=(float(x.min()), float(x.max())))
        if self.likelihood == "categorical":
            k = self.num_categories
            assert k is not None
            if bool(((x < 0) | (x > k - 1) | (x != torch.round(x))).any()):
                raise ValidationError("VAE input x",
                                      f"the categorical likelihood needs integers in [0, {k - 1}]",
                                      fix="quantise the data or choose another likelihood")

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior parameters ``(mu, logvar)``, each (B, latent_dim), of ``q(z | x[, y])``."""
        self._check_x(x)
        xin = x.to(self._dtype())
        if self.likelihood == "categorical":
            assert self.num_categories is not None
            xin = xin / (self.num_categories - 1)
        if self.arch == "conv":
            h = self.encoder(xin, y)
        else:
            f = xin.reshape(x.shape[0], -1)
            if self.num_classes is not None:
                if y is None:
                    raise ValidationError("VAE.encode", "the VAE is conditional: pass labels y")
                f = torch.cat([f, one_hot(y, self.num_classes, f)], -1)
            elif y is not None:
                raise ValidationError("VAE.encode", "labels given to an unconditional VAE")
            h = self.encoder(f)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder outputs for ``z (*S, B, latent_dim)``.

        Returns
        -------
        Tensor
            Bernoulli logits or Gaussian means ``(*S, B, *event)``, or categorical logits
            ``(*S, B, *event, K)``.
        """
        lead = z.shape[:-1]
        zf = z.reshape(-1, self.latent_dim)
        yf = None
        if y is not None:
            yf = y.expand(*lead) if len(lead) > 1 else y
            yf = yf.reshape(-1)
        if self.arch == "conv":
            out = self.decoder(zf, yf)  # (N, C * per, H, W)
            if self._per > 1:
                c, h, w = self.event_shape
                out = out.reshape(-1, c, self._per, h, w).permute(0, 1, 3, 4, 2)
        else:
            if self.num_classes is not None:
                if yf is None:
                    raise ValidationError("VAE.decode", "the VAE is conditional: pass labels y")
                zf = torch.cat([zf, one_hot(yf, self.num_classes, zf)], -1)
            elif yf is not None:
                raise ValidationError("VAE.decode", "labels given to an unconditional VAE")
            out = self.decoder(zf)
        assert isinstance(out, Tensor)
        tail = (*self.event_shape, self._per) if self._per > 1 else self.event_shape
        return out.reshape(*lead, *tail)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def decoder_std(self) -> Tensor | None:
        """Standard deviation of the Gaussian likelihood (event shape), or None for others."""
        if self.likelihood != "gaussian":
            return None
        if self.log_std is not None:
            return torch.exp(self.log_std)
        p = next(self.parameters())
        return torch.full(self.event_shape, float(self.gaussian_std), dtype=p.dtype,
                          device=p.device)

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        """``log p(x | z)`` summed over the event: x (B, *event), params from :meth:`decode`.

        Returns
        -------
        Tensor (*S, B)
        """
        ev = len(self.event_shape)
        x = x.to(params.dtype)
        if self.likelihood == "bernoulli":
            lp = x * params - F.softplus(params)  # = -BCE with logits, stable at any logit
        elif self.likelihood == "gaussian":
            std = self.decoder_std()
            assert std is not None
            lp = -0.5 * ((x - params) / std) ** 2 - torch.log(std) - 0.5 * _LOG_2PI
        else:
            logp = torch.log_softmax(params, -1)
            idx = x.long().unsqueeze(-1).expand(*params.shape[:-1], 1)
            lp = logp.gather(-1, idx).squeeze(-1)
        return lp.sum(tuple(range(lp.dim() - ev, lp.dim())))

    @staticmethod
    def log_prior(z: Tensor) -> Tensor:
        """``log N(z; 0, I)`` (*S, B) for z (*S, B, d)."""
        return (-0.5 * z**2 - 0.5 * _LOG_2PI).sum(-1)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> DiagonalNormalProposal:
        """``q(z | x)`` as a batched proposal (sample ``(S, B, d)``, log_prob ``(S, B)``)."""
        mu, logvar = self.encode(x, y)
        return DiagonalNormalProposal(mu, logvar)

    # ----------------------------------------------------------------------------- objectives
    def elbo_terms(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1,
                   kl: str = "analytic", generator: torch.Generator | None = None) -> ELBOTerms:
        """Monte Carlo ELBO pieces with ``num_samples`` reparameterised draws per point.

        Parameters
        ----------
        x : Tensor (B, *event)
        y : Tensor (B,), optional
            Labels (conditional VAE).
        num_samples : int
            ``M`` of (13.22).
        kl : {"analytic", "mc"}
            Analytic Gaussian KL (13.24) with a Monte Carlo reconstruction term, or the Monte
            Carlo estimate of both (``recon`` then holds ``log p(x|z)`` and ``kl`` holds
            ``log q(z|x) - log p(z)``, averaged over the same draws).
        generator : torch.Generator, optional

        Returns
        -------
        ELBOTerms
            ``recon`` (B,) and ``kl`` (B,); ``.elbo`` is their difference.
        """
        if num_samples < 1:
            raise ValidationError("VAE.elbo", "num_samples must be >= 1", found=num_samples)
        if kl not in ("analytic", "mc"):
            raise ValidationError("VAE.elbo", "kl must be 'analytic' or 'mc'", found=repr(kl))
        q = self.posterior(x, y)
        z = q.sample(num_samples, generator)
        recon = self.log_likelihood(x, self.decode(z, y)).mean(0)
        if kl == "analytic":
            kl_term = kl_normal_diag(q.mu, q.logvar)
        else:
            kl_term = (q.log_prob(z) - self.log_prior(z)).mean(0)
        return ELBOTerms(recon, kl_term)

    def elbo(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1,
             kl: str = "analytic", generator: torch.Generator | None = None) -> Tensor:
        """Monte Carlo ELBO per data point (B,) (13.20)-(13.22); see :meth:`elbo_terms`."""
        return self.elbo_terms(x, y, num_samples=num_samples, kl=kl, generator=generator).elbo

    def iwae_bound(self, x: Tensor, y: Tensor | None = None, *, k: int = 5,
                   generator: torch.Generator | None = None) -> Tensor:
        """Importance-weighted bound ``log (1/k) sum_i p(x, z_i) / q(z_i | x)`` (B,).

        Differentiable (reparameterised draws); equal to the ``kl="mc"`` ELBO for ``k = 1``,
        non-decreasing in ``k`` in expectation, tending to ``log p(x)``.
        """
        if k < 1:
            raise ValidationError("VAE.iwae_bound", "k must be >= 1", found=k)
        q = self.posterior(x, y)
        z = q.sample(k, generator)
        lw = self.log_likelihood(x, self.decode(z, y)) + self.log_prior(z) - q.log_prob(z)
        return torch.logsumexp(lw, 0) - math.log(k)

    def loss(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1,
             generator: torch.Generator | None = None) -> tuple[Tensor, ELBOTerms]:
        """Training loss ``mean_b(-recon + beta * kl)`` and the ELBO terms (beta-VAE form)."""
        t = self.elbo_terms(x, y, num_samples=num_samples, generator=generator)
        return (-t.recon + self.beta * t.kl).mean(), t

    def log_marginal(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1000,
                     chunk_size: int = 100,
                     generator: torch.Generator | None = None) -> LogLikelihoodEstimate:
        """Importance-sampled ``log p(x)`` per point with ``q(z | x)`` as proposal (test NLL).

        See :func:`generative.metrics.likelihood.importance_log_likelihood`; ``-mean`` of
        ``.log_likelihood`` is the test NLL in nats.
        """
        with torch.no_grad():
            q = self.posterior(x, y)

            def log_joint(z: Tensor) -> Tensor:
                return self.log_likelihood(x, self.decode(z, y)) + self.log_prior(z)

            return importance_log_likelihood(log_joint, q, num_samples, chunk_size=chunk_size,
                                             generator=generator)

    # ----------------------------------------------------------------------------- generation
    def mean_of(self, params: Tensor) -> Tensor:
        """The decoder's mean ``E[x | z]`` from its outputs (categorical: expected category)."""
        if self.likelihood == "bernoulli":
            return torch.sigmoid(params)
        if self.likelihood == "gaussian":
            return params
        probs = torch.softmax(params, -1)
        values = torch.arange(self._per, dtype=probs.dtype, device=probs.device)
        return (probs * values).sum(-1)

    def draw_from(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``x ~ p(x | z)`` from the decoder's outputs."""
        if self.likelihood == "bernoulli":
            u = uniform(params.shape, generator=generator, dtype=params.dtype,
                        device=params.device)
            return (u < torch.sigmoid(params)).to(params.dtype)
        if self.likelihood == "gaussian":
            std = self.decoder_std()
            assert std is not None
            eps = normal(params.shape, generator=generator, dtype=params.dtype,
                         device=params.device)
            return params + std * eps
        g = -torch.log(-torch.log(uniform(params.shape, generator=generator, dtype=params.dtype,
                                          device=params.device).clamp_min(1e-30)))
        return torch.argmax(params + g, -1).to(params.dtype)  # Gumbel-max

    def sample(self, n: int, y: Tensor | None = None, *, generator: torch.Generator | None = None,
               mean: bool = True) -> Tensor:
        """``n`` samples ``(n, *event)``: ``z ~ N(0, I)``, then the decoder mean or a draw."""
        p = next(self.parameters())
        z = normal((n, self.latent_dim), generator=generator, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            params = self.decode(z, y)
            return self.mean_of(params) if mean else self.draw_from(params, generator)

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder mean at the posterior mean, ``E[x | z = mu(x)]`` (B, *event)."""
        with torch.no_grad():
            mu, _ = self.encode(x, y)
            return self.mean_of(self.decode(mu, y))

    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 11,
                    y: Tensor | None = None) -> Tensor:
        """Decoded means along ``z = (1 - a) mu(x_a) + a mu(x_b)``, ``a = 0, ..., 1``.

        Parameters
        ----------
        x_a, x_b : Tensor (*event)
            Two data points.
        steps : int
        y : Tensor (), optional
            One label for both (conditional VAE).

        Returns
        -------
        Tensor (steps, *event)
        """
        pair = torch.stack([x_a, x_b])
        yy = None if y is None else y.reshape(1).expand(2)
        with torch.no_grad():
            mu, _ = self.encode(pair, yy)
            a = torch.linspace(0, 1, steps, dtype=mu.dtype, device=mu.device)[:, None]
            z = (1 - a) * mu[0] + a * mu[1]
            ys = None if y is None else y.reshape(1).expand(steps)
            return self.mean_of(self.decode(z, ys))

    def latent_map(self, n: int = 15, y: Tensor | None = None, *, as_grid: bool = True) -> Tensor:
        """Decoded means on an ``n x n`` grid of the first two latent coordinates (others 0).

        The grid points are the standard-normal quantiles ``Phi^-1(linspace(0.05, 0.95, n))``
        (NNDL Fig. 13.6b). Needs ``latent_dim >= 2`` and an image or 1-D event.

        Returns
        -------
        Tensor
            ``(C, n*(H+1)+1, n*(W+1)+1)`` tiled image when ``as_grid`` and the event is an image,
            else ``(n * n, *event)``.
        """
        if self.latent_dim < 2:
            raise ValidationError("VAE.latent_map", "needs latent_dim >= 2",
                                  found=self.latent_dim)
        p = next(self.parameters())
        q = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
        vals = (math.sqrt(2) * torch.erfinv(2 * q - 1)).to(dtype=p.dtype, device=p.device)
        z = torch.zeros(n * n, self.latent_dim, dtype=p.dtype, device=p.device)
        z[:, 0] = vals.repeat(n)
        z[:, 1] = vals.flip(0).repeat_interleave(n)
        ys = None if y is None else y.reshape(1).expand(n * n)
        with torch.no_grad():
            imgs = self.mean_of(self.decode(z, ys))
        if as_grid and len(self.event_shape) == 3:
            return tile_images(imgs, n)
        return imgs
