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

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.random import normal, uniform
from probforge.validate import check_choice, check_finite, check_int, check_real, check_tensor

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
    first_parameter,
)
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
    """Tile ``(N, C, H, W)`` images into one ``(C, rows*(H+p)+p, nrow*(W+p)+p)`` grid image.

    ``N >= 1``, ``nrow >= 1``, ``padding >= 0``; ``value`` is the padding's value.
    """
    images = check_tensor(images, "tile_images images", ndim=4)
    if images.shape[0] == 0:
        raise ShapeError("tile_images images", "needs at least one image", found=(0,))
    nrow = check_int(nrow, "tile_images nrow", minimum=1)
    padding = check_int(padding, "tile_images padding", minimum=0)
    value = check_real(value, "tile_images value")
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
        self.event_shape = check_event_shape(event_shape, "VAE event_shape")
        check_choice(likelihood, "VAE likelihood", LIKELIHOODS)
        check_choice(arch, "VAE arch", ("mlp", "conv"))
        latent_dim = check_int(latent_dim, "VAE latent_dim", minimum=1)
        hidden = check_sizes(hidden, "VAE hidden")
        channels = check_sizes(channels, "VAE channels", allow_empty=arch != "conv")
        num_classes = check_num_classes(num_classes, "VAE num_classes")
        beta = check_real(beta, "VAE beta", minimum=0.0)
        seed = check_int(seed, "VAE seed")
        if likelihood == "categorical":
            if num_categories is None:
                raise ValidationError("VAE", "the categorical likelihood needs num_categories "
                                      ">= 2", found=None, fix="pass num_categories=K")
            num_categories = check_int(num_categories, "VAE num_categories", minimum=2)
        elif num_categories is not None:
            raise ValidationError("VAE num_categories", "is only used by the categorical "
                                  f"likelihood, not {likelihood!r}", found=num_categories,
                                  fix="drop it or use likelihood='categorical'")
        if isinstance(gaussian_std, str):
            if gaussian_std != "learned":
                raise ValidationError("VAE", "gaussian_std must be a positive float or 'learned'",
                                      found=repr(gaussian_std))
        else:
            gaussian_std = check_positive_real(gaussian_std, "VAE gaussian_std")
            if likelihood != "gaussian":
                raise ValidationError("VAE gaussian_std", "a fixed decoder std is only used by "
                                      f"the Gaussian likelihood, not {likelihood!r}",
                                      found=gaussian_std, fix="leave it at 'learned'")
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
    def _check_x(self, x: Tensor, y: Tensor | None = None) -> Tensor | None:
        """Check a data batch and its labels; return the labels."""
        self._check_data(x)
        return check_labels(y, "VAE", x.shape[0], self.num_classes, like=first_parameter(self))

    def _check_data(self, x: Tensor, subject: str = "VAE input x") -> None:
        """Check a data batch against the likelihood (one host synchronisation)."""
        p = first_parameter(self)
        if self.likelihood == "bernoulli":
            check_batch(x, subject, self.event_shape, like=p, value_range=(0.0, 1.0),
                        range_rule="the Bernoulli likelihood needs x in [0, 1]")
        elif self.likelihood == "gaussian":
            check_batch(x, subject, self.event_shape, like=p)
        else:
            k = self.num_categories
            assert k is not None
            rule = f"the categorical likelihood needs integers in [0, {k - 1}]"
            check_batch(x, subject, self.event_shape, like=p, allow_integer=True,
                        value_range=(0, k - 1), range_rule=rule)
            if x.is_floating_point() and bool((x != torch.round(x)).any()):
                raise ValidationError(subject, rule, found="non-integer values",
                                      fix="quantise the data or choose another likelihood")

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior parameters ``(mu, logvar)``, each (B, latent_dim), of ``q(z | x[, y])``.

        ``x`` (B, *event), ``B >= 1``, must be finite, floating point (integer tensors are
        refused, except for the categorical likelihood) and inside the likelihood's support
        (``[0, 1]`` for Bernoulli, ``{0, ..., K-1}`` for categorical); ``y`` (B,) integer labels
        exactly when the VAE is conditional.
        """
        y = self._check_x(x, y)
        return self._encode(x, y)

    def _encode(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        xin = x.to(self._dtype())
        if self.likelihood == "categorical":
            assert self.num_categories is not None
            xin = xin / (self.num_categories - 1)
        if self.arch == "conv":
            h = self.encoder(xin, y)
        else:
            f = xin.reshape(x.shape[0], -1)
            if self.num_classes is not None:
                assert y is not None
                f = torch.cat([f, one_hot(y, self.num_classes, f)], -1)
            h = self.encoder(f)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder outputs for ``z (*S, B, latent_dim)`` (finite, floating, ``B >= 1``).

        Returns
        -------
        Tensor
            Bernoulli logits or Gaussian means ``(*S, B, *event)``, or categorical logits
            ``(*S, B, *event, K)``.
        """
        p = first_parameter(self)
        z = check_tensor(z, "VAE.decode z", floating=True, min_ndim=2)
        if z.shape[-1] != self.latent_dim or z.shape[-2] == 0:
            raise ShapeError("VAE.decode z", f"must be (*S, B, {self.latent_dim}) with B >= 1",
                             found=tuple(z.shape))
        if p is not None and z.device != p.device:
            raise DeviceMismatchError("VAE.decode z", f"must be on the model's device "
                                      f"{p.device}", found=str(z.device))
        check_finite(z, "VAE.decode z")
        y = check_labels(y, "VAE", z.shape[-2], self.num_classes, like=p)
        return self._decode(z.to(self._dtype()), y)

    def _decode(self, z: Tensor, y: Tensor | None) -> Tensor:
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
                assert yf is not None
                zf = torch.cat([zf, one_hot(yf, self.num_classes, zf)], -1)
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

        ``x`` is checked as in :meth:`encode`; ``params`` must be finite with shape
        ``(*S, B', *event)`` (categorical: ``(*S, B', *event, K)``), ``B'`` broadcasting with
        ``B``.

        Returns
        -------
        Tensor (*S, B)
        """
        self._check_data(x)
        params = check_tensor(params, "VAE.log_likelihood params", floating=True)
        tail = (*self.event_shape, self._per) if self._per > 1 else self.event_shape
        values = params.shape[:-1] if self._per > 1 else params.shape
        ok = (params.dim() >= len(tail) + 1 and tuple(params.shape[-len(tail):]) == tail
              and len(values) >= x.dim() and broadcastable(x.shape, values))
        if not ok:
            raise ShapeError("VAE.log_likelihood params",
                             f"must be (*S, B, {', '.join(map(str, tail))}) with B broadcasting "
                             f"against x's {x.shape[0]}", found=tuple(params.shape),
                             fix="pass the output of decode(z)")
        if params.device != x.device:
            raise DeviceMismatchError("VAE.log_likelihood params", f"must be on {x.device}",
                                      found=str(params.device))
        check_finite(params, "VAE.log_likelihood params")
        return self._log_lik(x, params)

    def _log_lik(self, x: Tensor, params: Tensor) -> Tensor:
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
        """``log N(z; 0, I)`` (*S, B) for finite z (*S, B, d)."""
        z = check_tensor(z, "VAE.log_prior z", floating=True, min_ndim=1, finite=True)
        return _log_std_normal(z)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> DiagonalNormalProposal:
        """``q(z | x)`` as a batched proposal (sample ``(S, B, d)``, log_prob ``(S, B)``)."""
        mu, logvar = self.encode(x, y)
        return DiagonalNormalProposal(mu, logvar)

    def _posterior(self, x: Tensor, y: Tensor | None) -> DiagonalNormalProposal:
        # x and y already checked; the encoder's outputs are not (a diverged network's NaN
        # must reach the training loop's non-finite-loss handling, not raise here)
        mu, logvar = self._encode(x, y)
        return DiagonalNormalProposal(mu, logvar, check=False)

    # ----------------------------------------------------------------------------- objectives
    def elbo_terms(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1,
                   kl: str = "analytic", generator: torch.Generator | None = None) -> ELBOTerms:
        """Monte Carlo ELBO pieces with ``num_samples`` reparameterised draws per point.

        Parameters
        ----------
        x : Tensor (B, *event)
            ``B >= 1`` finite data points in the likelihood's support (see :meth:`encode`);
            NaN, integer tensors (except categorical), wrong shapes or devices are refused.
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
        num_samples = check_int(num_samples, "VAE.elbo num_samples", minimum=1)
        check_choice(kl, "VAE.elbo kl", ("analytic", "mc"))
        y = self._check_x(x, y)
        check_optional_generator(generator, "VAE.elbo generator", x.device)
        q = self._posterior(x, y)
        z = q.sample(num_samples, generator)
        recon = self._log_lik(x, self._decode(z, y)).mean(0)
        if kl == "analytic":
            kl_term = 0.5 * (torch.exp(q.logvar) + q.mu**2 - 1.0 - q.logvar).sum(-1)  # (13.24)
        else:
            kl_term = (q.log_prob(z) - _log_std_normal(z)).mean(0)
        return ELBOTerms(recon, kl_term)

    def elbo(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1,
             kl: str = "analytic", generator: torch.Generator | None = None) -> Tensor:
        """Monte Carlo ELBO per data point (B,) (13.20)-(13.22); see :meth:`elbo_terms`."""
        return self.elbo_terms(x, y, num_samples=num_samples, kl=kl, generator=generator).elbo

    def iwae_bound(self, x: Tensor, y: Tensor | None = None, *, k: int = 5,
                   generator: torch.Generator | None = None) -> Tensor:
        """Importance-weighted bound ``log (1/k) sum_i p(x, z_i) / q(z_i | x)`` (B,).

        Differentiable (reparameterised draws); equal to the ``kl="mc"`` ELBO for ``k = 1``,
        non-decreasing in ``k`` in expectation, tending to ``log p(x)``. ``x`` is checked as in
        :meth:`elbo_terms`.
        """
        k = check_int(k, "VAE.iwae_bound k", minimum=1)
        y = self._check_x(x, y)
        check_optional_generator(generator, "VAE.iwae_bound generator", x.device)
        q = self._posterior(x, y)
        z = q.sample(k, generator)
        lw = self._log_lik(x, self._decode(z, y)) + _log_std_normal(z) - q.log_prob(z)
        return torch.logsumexp(lw, 0) - math.log(k)

    def loss(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1,
             generator: torch.Generator | None = None) -> tuple[Tensor, ELBOTerms]:
        """Training loss ``mean_b(-recon + beta * kl)`` and the ELBO terms (beta-VAE form).

        ``x`` is checked as in :meth:`elbo_terms` (an empty batch is refused: its mean is
        undefined).
        """
        t = self.elbo_terms(x, y, num_samples=num_samples, generator=generator)
        return (-t.recon + self.beta * t.kl).mean(), t

    def log_marginal(self, x: Tensor, y: Tensor | None = None, *, num_samples: int = 1000,
                     chunk_size: int = 100,
                     generator: torch.Generator | None = None) -> LogLikelihoodEstimate:
        """Importance-sampled ``log p(x)`` per point with ``q(z | x)`` as proposal (test NLL).

        See :func:`generative.metrics.likelihood.importance_log_likelihood`; ``-mean`` of
        ``.log_likelihood`` is the test NLL in nats. ``x`` is checked as in :meth:`elbo_terms`.
        """
        num_samples = check_int(num_samples, "VAE.log_marginal num_samples", minimum=1)
        chunk_size = check_int(chunk_size, "VAE.log_marginal chunk_size", minimum=1)
        y = self._check_x(x, y)
        check_optional_generator(generator, "VAE.log_marginal generator", x.device)
        with torch.no_grad():
            q = self._posterior(x, y)

            def log_joint(z: Tensor) -> Tensor:
                return self._log_lik(x, self._decode(z, y)) + _log_std_normal(z)

            return importance_log_likelihood(log_joint, q, num_samples, chunk_size=chunk_size,
                                             generator=generator)

    # ----------------------------------------------------------------------------- generation
    def _check_params(self, params: Tensor, subject: str) -> Tensor:
        params = check_tensor(params, subject, floating=True)
        tail = (*self.event_shape, self._per) if self._per > 1 else self.event_shape
        if params.dim() < len(tail) or tuple(params.shape[params.dim() - len(tail):]) != tail:
            raise ShapeError(subject, f"must be (..., {', '.join(map(str, tail))})",
                             found=tuple(params.shape), fix="pass the output of decode(z)")
        return check_finite(params, subject)

    def mean_of(self, params: Tensor) -> Tensor:
        """The decoder's mean ``E[x | z]`` from its (finite) outputs (categorical: expected
        category)."""
        return self._mean_of(self._check_params(params, "VAE.mean_of params"))

    def _mean_of(self, params: Tensor) -> Tensor:
        if self.likelihood == "bernoulli":
            return torch.sigmoid(params)
        if self.likelihood == "gaussian":
            return params
        probs = torch.softmax(params, -1)
        values = torch.arange(self._per, dtype=probs.dtype, device=probs.device)
        return (probs * values).sum(-1)

    def draw_from(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``x ~ p(x | z)`` from the decoder's (finite) outputs."""
        params = self._check_params(params, "VAE.draw_from params")
        check_optional_generator(generator, "VAE.draw_from generator", params.device)
        return self._draw_from(params, generator)

    def _draw_from(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
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
        """``n >= 1`` samples ``(n, *event)``: ``z ~ N(0, I)``, then the decoder mean or a draw.

        A conditional VAE needs labels ``y`` (n,).
        """
        n = check_int(n, "VAE.sample n", minimum=1)
        mean = check_bool(mean, "VAE.sample mean")
        p = next(self.parameters())
        check_optional_generator(generator, "VAE.sample generator", p.device)
        y = check_labels(y, "VAE.sample", n, self.num_classes, like=p)
        z = normal((n, self.latent_dim), generator=generator, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            params = self._decode(z, y)
            return self._mean_of(params) if mean else self._draw_from(params, generator)

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder mean at the posterior mean, ``E[x | z = mu(x)]`` (B, *event).

        ``x`` is checked as in :meth:`encode`.
        """
        y = self._check_x(x, y)
        with torch.no_grad():
            mu, _ = self._encode(x, y)
            return self._mean_of(self._decode(mu, y))

    def _one_label(self, y: Tensor | None, subject: str) -> Tensor | None:
        """A single label (0-d or (1,)) as a (1,) tensor, checked; None if unconditional."""
        if y is not None:
            y = check_tensor(y, f"{subject} y", integer=True)
            if y.numel() != 1:
                raise ShapeError(f"{subject} y", "must be one label (a 0-d or (1,) tensor)",
                                 found=tuple(y.shape))
            y = y.reshape(1)
        return check_labels(y, subject, 1, self.num_classes, like=first_parameter(self))

    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 11,
                    y: Tensor | None = None) -> Tensor:
        """Decoded means along ``z = (1 - a) mu(x_a) + a mu(x_b)``, ``a = 0, ..., 1``.

        Parameters
        ----------
        x_a, x_b : Tensor (*event)
            Two data points (checked as in :meth:`encode`).
        steps : int
            ``>= 2`` points, both ends included.
        y : Tensor (), optional
            One label for both (conditional VAE).

        Returns
        -------
        Tensor (steps, *event)
        """
        steps = check_int(steps, "VAE.interpolate steps", minimum=2)
        for name, xi in (("x_a", x_a), ("x_b", x_b)):
            check_tensor(xi, f"VAE.interpolate {name}", shape=self.event_shape)
        yy = self._one_label(y, "VAE.interpolate")
        if x_a.device != x_b.device:
            raise DeviceMismatchError("VAE.interpolate", "x_a and x_b must be on one device",
                                      found=(str(x_a.device), str(x_b.device)))
        if x_a.dtype != x_b.dtype:
            raise DtypeMismatchError("VAE.interpolate", "x_a and x_b must share a dtype",
                                     found=(x_a.dtype, x_b.dtype))
        pair = torch.stack([x_a, x_b])
        self._check_data(pair, "VAE.interpolate x_a, x_b")
        with torch.no_grad():
            mu, _ = self._encode(pair, None if yy is None else yy.expand(2))
            a = torch.linspace(0, 1, steps, dtype=mu.dtype, device=mu.device)[:, None]
            z = (1 - a) * mu[0] + a * mu[1]
            ys = None if yy is None else yy.expand(steps)
            return self._mean_of(self._decode(z, ys))

    def latent_map(self, n: int = 15, y: Tensor | None = None, *, as_grid: bool = True) -> Tensor:
        """Decoded means on an ``n x n`` grid of the first two latent coordinates (others 0).

        The grid points are the standard-normal quantiles ``Phi^-1(linspace(0.05, 0.95, n))``
        (NNDL Fig. 13.6b). Needs ``latent_dim >= 2``, ``n >= 1`` and an image or 1-D event.

        Returns
        -------
        Tensor
            ``(C, n*(H+1)+1, n*(W+1)+1)`` tiled image when ``as_grid`` and the event is an image,
            else ``(n * n, *event)``.
        """
        n = check_int(n, "VAE.latent_map n", minimum=1)
        as_grid = check_bool(as_grid, "VAE.latent_map as_grid")
        if self.latent_dim < 2:
            raise ValidationError("VAE.latent_map", "needs latent_dim >= 2",
                                  found=self.latent_dim)
        yy = self._one_label(y, "VAE.latent_map")
        p = next(self.parameters())
        q = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
        vals = (math.sqrt(2) * torch.erfinv(2 * q - 1)).to(dtype=p.dtype, device=p.device)
        z = torch.zeros(n * n, self.latent_dim, dtype=p.dtype, device=p.device)
        z[:, 0] = vals.repeat(n)
        z[:, 1] = vals.flip(0).repeat_interleave(n)
        ys = None if yy is None else yy.expand(n * n)
        with torch.no_grad():
            imgs = self._mean_of(self._decode(z, ys))
        if as_grid and len(self.event_shape) == 3:
            return tile_images(imgs, n)
        return imgs


def _log_std_normal(z: Tensor) -> Tensor:
    return (-0.5 * z**2 - 0.5 * _LOG_2PI).sum(-1)
