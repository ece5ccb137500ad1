"""Autoencoders as in NNDL 9.1.3-9.1.6: plain (tied weights, weight decay), denoising, sparse.

An encoder ``z = f(x)`` and a decoder ``x' = g(z)`` (the reconstruction is ``g(f(x))``; the seed's
(9.19) prints ``f o g``, seed errata 9) trained on the squared error (9.18)/(9.22):

``loss = mean_n ||x_n - x'_n||^2 + lambda ||W||_F^2 [+ eta sum_j KL(rho* || rho_hat_j)]``

- :class:`Autoencoder`: MLP encoder/decoder; ``tied=True`` makes every decoder layer use the
  transpose of the matching encoder weight (``W^(2) = W^(1)T``, 9.21) with its own bias;
  ``weight_decay`` is ``lambda`` of (9.22), applied to weight matrices only, per example (the
  textbook sums the squared errors over the data set; dividing by ``N`` makes our ``lambda`` the
  textbook's ``lambda / N``).
- :class:`DenoisingAutoencoder` (Vincent et al. 2008): the encoder sees a corrupted ``x~``, each
  coordinate zeroed with probability ``mask_ratio`` (the textbook's mu, "usually <= 0.5") and/or
  Gaussian noise of standard deviation ``noise_std`` added; the loss compares with the clean ``x``.
- :class:`SparseAutoencoder` (9.23)-(9.26): sigmoid codes, mean activation
  ``rho_hat_j = mean_n z_j^(n)`` over the batch, penalty ``eta sum_j KL(rho* || rho_hat_j)``
  with the Bernoulli KL ``rho* log(rho*/rho_hat) + (1 - rho*) log((1 - rho*)/(1 - rho_hat))``,
  target ``rho* = 0.05`` by default; ``log rho_hat`` is computed as a log-mean-exp of
  log-sigmoids, so it stays finite when codes saturate.

Autoencoders are not generative models; for sample grids, :meth:`Autoencoder.sample` decodes
codes drawn from a diagonal Gaussian fitted to the training codes (running moments kept as
buffers; USTC's "sample coordinates in the occupied region of the code space").

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.autoencoder import Autoencoder
>>> ae = Autoencoder((4,), latent_dim=2, hidden=(), tied=True, weight_decay=1e-3)
>>> terms = ae.loss_terms(torch.rand(8, 4, generator=make_generator(0)))
>>> sorted(terms)
['loss', 'recon', 'weight_decay']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import normal, uniform
from probforge.validate import check_choice, check_int, check_real, check_tensor

from .checks import (
    check_batch,
    check_bool,
    check_event_shape,
    check_optional_generator,
    check_sizes,
    first_parameter,
)
from .networks import seeded

__all__ = ["Autoencoder", "DenoisingAutoencoder", "SparseAutoencoder", "bernoulli_kl"]

def _identity(t: Tensor) -> Tensor:
    return t


_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": _identity}


def bernoulli_kl(rho: float, log_rho_hat: Tensor, log1m_rho_hat: Tensor) -> Tensor:
    """``KL(Bern(rho) || Bern(rho_hat))`` (9.25) from ``log rho_hat`` and ``log(1 - rho_hat)``.

    ``rho`` in ``(0, 1)``; the log tensors floating point and broadcastable.
    """
    rho = check_real(rho, "bernoulli_kl rho", minimum=0.0, maximum=1.0, strict_minimum=True,
                     strict_maximum=True)
    check_tensor(log_rho_hat, "bernoulli_kl log_rho_hat", floating=True)
    check_tensor(log1m_rho_hat, "bernoulli_kl log1m_rho_hat", floating=True)
    return (rho * (math.log(rho) - log_rho_hat)
            + (1 - rho) * (math.log(1 - rho) - log1m_rho_hat))


class Autoencoder(nn.Module):
    """MLP autoencoder with optional tied weights and weight decay (NNDL 9.1.3-9.1.4).

    Parameters
    ----------
    event_shape : sequence of int
        Shape of one data point (flattened inside).
    latent_dim : int
        Code size ``M``.
    hidden : sequence of int
        Hidden sizes of the encoder; the decoder mirrors them. ``()`` is the two-layer AE of (9.20).
    tied : bool
        Decoder weights are the encoder's transposed (9.21).
    activation : {"relu", "sigmoid", "tanh"}
        Hidden-layer activation.
    code_activation : {"linear", "sigmoid", "relu", "tanh"}
        Activation of the code ``z``.
    output : {"sigmoid", "linear"}
        Output activation ("sigmoid" for data in [0, 1], as in (9.22)).
    weight_decay : float
        ``lambda`` of (9.22) (per example), on weight matrices only.
    seed : int
        Seed of the initial weights (the global RNG is left untouched).
    """

    code_mean: Tensor
    code_var: Tensor

    def __init__(self, event_shape: Sequence[int], latent_dim: int = 32, *,
                 hidden: Sequence[int] = (256,), tied: bool = False, activation: str = "relu",
                 code_activation: str = "linear", output: str = "sigmoid",
                 weight_decay: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        me = type(self).__name__
        self.event_shape = check_event_shape(event_shape, f"{me} event_shape")
        for name, val, allowed in (("activation", activation, ("relu", "sigmoid", "tanh")),
                                   ("code_activation", code_activation, tuple(_ACTS)),
                                   ("output", output, ("sigmoid", "linear"))):
            check_choice(val, f"{me} {name}", allowed)
        latent_dim = check_int(latent_dim, f"{me} latent_dim", minimum=1)
        hidden = check_sizes(hidden, f"{me} hidden")
        tied = check_bool(tied, f"{me} tied")
        weight_decay = check_real(weight_decay, f"{me} weight_decay", minimum=0.0)
        seed = check_int(seed, f"{me} seed")
        self.latent_dim, self.tied = int(latent_dim), bool(tied)
        self.activation, self.code_activation, self.output = activation, code_activation, output
        self.weight_decay = float(weight_decay)
        self._seed = int(seed)
        size = math.prod(self.event_shape)
        sizes = [size, *(int(h) for h in hidden), self.latent_dim]
        with seeded(seed):
            self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
            rev = sizes[::-1]
            if tied:
                self.dec_bias = nn.ParameterList(nn.Parameter(torch.zeros(b)) for b in rev[1:])
                self.dec = nn.ModuleList()
            else:
                self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(rev))
        self.register_buffer("code_mean", torch.zeros(self.latent_dim))
        self.register_buffer("code_var", torch.ones(self.latent_dim))

    def _check_x(self, x: Tensor) -> None:
        """``x`` (B, *event), B >= 1, floating, finite, on the model's device (one sync)."""
        check_batch(x, f"{type(self).__name__} input x", self.event_shape,
                    like=first_parameter(self))

    def code_preactivation(self, x: Tensor) -> Tensor:
        """Encoder output before the code activation (B, latent_dim).

        ``x`` (B, *event) must be a finite floating-point batch with ``B >= 1`` on the model's
        device (integer tensors are refused, not cast).
        """
        self._check_x(x)
        return self._code_preactivation(x)

    def _code_preactivation(self, x: Tensor) -> Tensor:
        h = x.reshape(x.shape[0], -1).to(self.encoder_layers()[0].weight.dtype)
        act = _ACTS[self.activation]
        layers = self.encoder_layers()
        for i, layer in enumerate(layers):
            h = layer(h)
            if i < len(layers) - 1:
                h = act(h)
        return h

    def encoder_layers(self) -> list[nn.Linear]:
        """The encoder's linear layers, input first."""
        return [m for m in self.enc if isinstance(m, nn.Linear)]

    def decoder_layers(self) -> list[nn.Linear]:
        """The decoder's own linear layers (empty when tied)."""
        return [m for m in self.dec if isinstance(m, nn.Linear)]

    def encode(self, x: Tensor) -> Tensor:
        """Code ``z = f(x)`` (B, latent_dim); ``x`` checked as in :meth:`code_preactivation`."""
        return _ACTS[self.code_activation](self.code_preactivation(x))

    def _check_z(self, z: Tensor, subject: str) -> Tensor:
        return check_batch(z, subject, (self.latent_dim,), like=first_parameter(self))

    def decode(self, z: Tensor) -> Tensor:
        """Reconstruction ``g(z)`` (B, *event) of finite codes ``z`` (B, latent_dim), B >= 1."""
        return self._decode(self._check_z(z, f"{type(self).__name__}.decode z"))

    def _decode(self, z: Tensor) -> Tensor:
        act = _ACTS[self.activation]
        h = z
        enc = self.encoder_layers()
        dec = self.decoder_layers()
        n = len(enc)
        for i in range(n):
            if self.tied:
                w = enc[n - 1 - i].weight  # (out, in) of the encoder: use its transpose
                h = F.linear(h, w.t(), self.dec_bias[i])
            else:
                h = dec[i](h)
            if i < n - 1:
                h = act(h)
        if self.output == "sigmoid":
            h = torch.sigmoid(h)
        return h.reshape(z.shape[0], *self.event_shape)

    def forward(self, x: Tensor) -> Tensor:
        """``g(f(x))`` (B, *event); ``x`` checked as in :meth:`code_preactivation`."""
        return self._decode(self.encode(x))

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The encoder's input; the plain autoencoder returns ``x`` itself."""
        self._check_x(x)
        check_optional_generator(generator, f"{type(self).__name__} generator", x.device)
        return self._corrupt(x, generator)

    def _corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return x

    def weight_penalty(self) -> Tensor:
        """``lambda ||W||_F^2`` over every weight matrix (tied matrices counted once)."""
        mats = [layer.weight for layer in self.encoder_layers() + self.decoder_layers()]
        total = torch.stack([(w**2).sum() for w in mats]).sum()
        return self.weight_decay * total

    def extra_penalty(self, pre: Tensor) -> dict[str, Tensor]:
        """Additional loss terms from the code pre-activations (none for the plain AE)."""
        return {}

    def loss_terms(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Loss terms on a batch: ``recon`` (mean squared-error sum), ``weight_decay``, extras.

        Returns
        -------
        dict of str to Tensor ()
            Includes ``loss``, their sum (the training objective).
        """
        self._check_x(x)
        check_optional_generator(generator, f"{type(self).__name__} generator", x.device)
        x = x.to(self.encoder_layers()[0].weight.dtype)
        pre = self._code_preactivation(self._corrupt(x, generator))
        x_rec = self._decode(_ACTS[self.code_activation](pre))
        recon = ((x_rec - x) ** 2).reshape(x.shape[0], -1).sum(-1).mean()
        terms = {"recon": recon}
        if self.weight_decay > 0:
            terms["weight_decay"] = self.weight_penalty()
        terms.update(self.extra_penalty(pre))
        terms["loss"] = sum(terms.values())  # type: ignore[assignment]
        return terms

    @torch.no_grad()
    def update_code_stats(self, z: Tensor, momentum: float = 0.1) -> None:
        """Move the running code mean/variance (used by :meth:`sample`) towards a batch's.

        ``z`` (B, latent_dim) finite codes, ``B >= 1``; ``momentum`` in ``[0, 1]``.
        """
        self._check_z(z, f"{type(self).__name__}.update_code_stats z")
        momentum = check_real(momentum, f"{type(self).__name__}.update_code_stats momentum",
                              minimum=0.0, maximum=1.0)
        self._lerp_code_stats(z, momentum, None)

    @torch.no_grad()
    def track_codes(self, z: Tensor, momentum: float = 0.1) -> None:
        """:meth:`update_code_stats` for the training loop: a batch of codes with a non-finite
        entry (a diverged network) leaves the moments unchanged instead of raising, without a
        host synchronisation (the loop reports the non-finite loss itself)."""
        z = check_tensor(z, f"{type(self).__name__}.track_codes z", floating=True,
                         shape=(None, self.latent_dim))
        if z.shape[0] == 0:
            raise ShapeError(f"{type(self).__name__}.track_codes z", "needs at least one code",
                             found=(0, self.latent_dim))
        momentum = check_real(momentum, f"{type(self).__name__}.track_codes momentum",
                              minimum=0.0, maximum=1.0)
        self._lerp_code_stats(z, momentum, torch.isfinite(z).all())

    def _lerp_code_stats(self, z: Tensor, momentum: float, ok: Tensor | None) -> None:
        mean = torch.lerp(self.code_mean, z.mean(0).to(self.code_mean), momentum)
        var = z.var(0, unbiased=False) if z.shape[0] > 1 else torch.zeros_like(z[0])
        var = torch.lerp(self.code_var, var.to(self.code_var), momentum)
        if ok is not None:
            mean = torch.where(ok, mean, self.code_mean)
            var = torch.where(ok, var, self.code_var)
        self.code_mean.copy_(mean)
        self.code_var.copy_(var)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n >= 1`` codes drawn from ``N(code_mean, diag code_var)`` (n, *event)."""
        n = check_int(n, f"{type(self).__name__}.sample n", minimum=1)
        check_optional_generator(generator, f"{type(self).__name__}.sample generator",
                                 self.code_mean.device)
        eps = normal((n, self.latent_dim), generator=generator, dtype=self.code_mean.dtype,
                     device=self.code_mean.device)
        with torch.no_grad():
            return self._decode(self.code_mean + eps * self.code_var.clamp_min(0).sqrt())


class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder: reconstruct ``x`` from a corrupted ``x~`` (NNDL 9.1.6).

    Parameters
    ----------
    event_shape, latent_dim, hidden, tied, activation, code_activation, output, weight_decay, seed
        As for :class:`Autoencoder`.
    mask_ratio : float
        Probability ``mu`` in ``[0, 1)`` of zeroing each input coordinate.
    noise_std : float
        Standard deviation of additive Gaussian noise (0: none).
    """

    def __init__(self, event_shape: Sequence[int], latent_dim: int = 32, *,
                 mask_ratio: float = 0.25, noise_std: float = 0.0, **kwargs: object) -> None:
        super().__init__(event_shape, latent_dim, **kwargs)  # type: ignore[arg-type]
        mask_ratio = check_real(mask_ratio, "DenoisingAutoencoder mask_ratio", minimum=0.0,
                                maximum=1.0, strict_maximum=True)
        noise_std = check_real(noise_std, "DenoisingAutoencoder noise_std", minimum=0.0)
        if mask_ratio == 0 and noise_std == 0:
            raise ValidationError("DenoisingAutoencoder", "no corruption configured",
                                  fix="set mask_ratio > 0 or noise_std > 0, or use Autoencoder")
        self.mask_ratio, self.noise_std = float(mask_ratio), float(noise_std)

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``x~``: each coordinate zeroed w.p. ``mask_ratio``, plus ``N(0, noise_std^2)`` noise."""
        return super().corrupt(x, generator)

    def _corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        out = x
        if self.mask_ratio > 0:
            keep = uniform(x.shape, generator=generator, dtype=x.dtype,
                           device=x.device) >= self.mask_ratio
            out = out * keep
        if self.noise_std > 0:
            out = out + self.noise_std * normal(x.shape, generator=generator, dtype=x.dtype,
                                                device=x.device)
        return out


class SparseAutoencoder(Autoencoder):
    """Sparse autoencoder with the KL penalty to a target mean activation (9.23)-(9.26).

    Parameters
    ----------
    event_shape, latent_dim, hidden, tied, activation, output, weight_decay, seed
        As for :class:`Autoencoder` (the code activation is the sigmoid).
    target : float
        ``rho*`` in (0, 1) (textbook: 0.05).
    sparsity_weight : float
        ``eta``.
    """

    def __init__(self, event_shape: Sequence[int], latent_dim: int = 64, *,
                 target: float = 0.05, sparsity_weight: float = 1.0, **kwargs: object) -> None:
        if kwargs.get("code_activation", "sigmoid") != "sigmoid":
            raise ValidationError("SparseAutoencoder", "the code activation must be 'sigmoid'",
                                  found=repr(kwargs["code_activation"]))
        kwargs["code_activation"] = "sigmoid"
        super().__init__(event_shape, latent_dim, **kwargs)  # type: ignore[arg-type]
        target = check_real(target, "SparseAutoencoder target", minimum=0.0, maximum=1.0,
                            strict_minimum=True, strict_maximum=True)
        sparsity_weight = check_real(sparsity_weight, "SparseAutoencoder sparsity_weight",
                                     minimum=0.0)
        self.target, self.sparsity_weight = float(target), float(sparsity_weight)

    def mean_activation(self, x: Tensor) -> Tensor:
        """``rho_hat_j`` (latent_dim,) over the batch ``x`` (B >= 1)."""
        return torch.sigmoid(self.code_preactivation(x)).mean(0)

    def extra_penalty(self, pre: Tensor) -> dict[str, Tensor]:
        """``{"sparsity": eta sum_j KL(rho* || rho_hat_j)}`` from code pre-activations (B, M).

        ``pre`` is a model output (``B >= 1``); its non-finite values are left to the training
        loop's non-finite-loss handling.
        """
        pre = check_tensor(pre, "SparseAutoencoder.extra_penalty pre", floating=True,
                           shape=(None, self.latent_dim))
        if pre.shape[0] == 0:
            raise ShapeError("SparseAutoencoder.extra_penalty pre", "needs at least one row "
                             "(the mean activation of no codes is undefined)", found=(0,))
        log_n = math.log(pre.shape[0])
        log_rho = torch.logsumexp(F.logsigmoid(pre), 0) - log_n
        log1m_rho = torch.logsumexp(F.logsigmoid(-pre), 0) - log_n
        kl = bernoulli_kl(self.target, log_rho, log1m_rho).sum()
        return {"sparsity": self.sparsity_weight * kl}
