"""Importance-sampled log-likelihood of latent-variable models, batched over data and chunked.

For a model ``p(x, z)`` and a proposal ``q(z | x)`` (a VAE's encoder),
``log p(x) ~= log (1/k) sum_i p(x, z_i) / q(z_i | x)``, ``z_i ~ q(z | x)`` (textbook 11.5.3,
importance sampling of the evidence; Burda et al. 2016 use it with ``k = 5000`` for test NLL).
It is a stochastic *lower* bound in expectation (Jensen) that tightens as ``k`` grows; with the
exact posterior as proposal every weight equals ``p(x)`` and the estimate is exact.

This is :func:`samplers.importance.importance_sample` run for every data point at once: the
log-weights are the same ``log p_hat - log q``, checked the same way (NaN or ``+inf`` raise), and
the effective sample size is :func:`samplers.importance.kish_ess`. The ``k`` proposal draws are
made ``chunk_size`` at a time so that the decoder's memory stays ``O(chunk_size * batch)``
whatever ``k``; only the ``(batch, k)`` log-weights are kept.

Examples
--------
>>> import math, torch
>>> from probforge.ops import make_generator
>>> from generative.metrics.likelihood import DiagonalNormalProposal, importance_log_likelihood
>>> x = torch.zeros(3, 1, dtype=torch.float64)
>>> # p(z) = N(0, 1), p(x | z) = N(z, 1): p(x) = N(0, 2); proposal = the exact posterior N(x/2, 1/2)
>>> def log_joint(z):
...     return (-0.5 * z**2 - 0.5 * (x - z) ** 2 - math.log(2 * math.pi)).sum(-1)
>>> q = DiagonalNormalProposal(x / 2, torch.full_like(x, math.log(0.5)))
>>> est = importance_log_likelihood(log_joint, q, 100, generator=make_generator(0))
>>> bool(torch.allclose(est.log_likelihood, torch.full((3,), -0.5 * math.log(4 * math.pi),
...                                                   dtype=torch.float64)))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import normal
from probforge.validate import check_finite, check_int, check_tensor
from samplers.importance import kish_ess

__all__ = [
    "BatchedProposal",
    "DiagonalNormalProposal",
    "LogLikelihoodEstimate",
    "importance_log_likelihood",
]

_LOG_2PI = math.log(2 * math.pi)


class BatchedProposal(Protocol):
    """One proposal per data point: draws ``(c, B, *latent)`` and log-densities ``(c, B)``."""

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor: ...

    def log_prob(self, z: Tensor) -> Tensor: ...


class DiagonalNormalProposal:
    """``q(z | x_b) = N(mu_b, diag exp(logvar_b))`` for each of ``B`` data points.

    Parameters
    ----------
    mu, logvar : Tensor (B, d)
        Floating point, on one device.
    check : bool
        Refuse non-finite ``mu`` / ``logvar`` (one host synchronisation each).
    """

    def __init__(self, mu: Tensor, logvar: Tensor, *, check: bool = True) -> None:
        mu = check_tensor(mu, "DiagonalNormalProposal mu", floating=True)
        logvar = check_tensor(logvar, "DiagonalNormalProposal logvar", floating=True)
        if mu.shape != logvar.shape or mu.dim() != 2:
            raise ShapeError("DiagonalNormalProposal", "mu and logvar must both be (B, d)",
                             found=(tuple(mu.shape), tuple(logvar.shape)))
        if mu.device != logvar.device:
            raise DeviceMismatchError("DiagonalNormalProposal", "mu and logvar must be on one "
                                      "device", found=(str(mu.device), str(logvar.device)))
        if check:  # a model's own outputs skip this: the training loop handles their NaN
            check_finite(mu, "DiagonalNormalProposal mu")
            check_finite(logvar, "DiagonalNormalProposal logvar")
        self.mu, self.logvar = mu, logvar
        self.std = torch.exp(0.5 * logvar)

    def sample(self, num: int, generator: torch.Generator | None) -> Tensor:
        """Reparameterised draws ``mu + std * eps`` (num, B, d) (13.26)."""
        eps = normal((num, *self.mu.shape), generator=generator, dtype=self.mu.dtype,
                     device=self.mu.device)
        return self.mu + self.std * eps

    def log_prob(self, z: Tensor) -> Tensor:
        """``log q(z | x_b)`` (num, B) for draws (num, B, d)."""
        e = (z - self.mu) / self.std
        return (-0.5 * e**2 - 0.5 * self.logvar - 0.5 * _LOG_2PI).sum(-1)


class LogLikelihoodEstimate(NamedTuple):
    """Result of :func:`importance_log_likelihood`.

    Attributes
    ----------
    log_likelihood : Tensor (B,)
        ``log mean_i w_i`` per data point.
    std_error : Tensor (B,)
        Delta-method standard error ``sd(w) / (sqrt(k) mean(w))`` of each estimate.
    ess : Tensor (B,)
        Kish's effective sample size of each point's weights.
    log_weights : Tensor (B, k)
    """

    log_likelihood: Tensor
    std_error: Tensor
    ess: Tensor
    log_weights: Tensor


def importance_log_likelihood(
    log_joint: Callable[[Tensor], Tensor],
    proposal: BatchedProposal,
    num_samples: int,
    *,
    chunk_size: int = 100,
    generator: torch.Generator | None = None,
) -> LogLikelihoodEstimate:
    """Estimate ``log p(x_b)`` for a batch by importance sampling with ``k = num_samples``.

    Parameters
    ----------
    log_joint : callable
        ``z (c, B, *latent) -> log p(x_b, z) (c, B)`` for the batch's data points.
    proposal : BatchedProposal
        ``q(z | x_b)``; must be positive wherever the posterior is.
    num_samples : int
        ``k >= 1`` draws per data point (use ``k >= 1000`` for a test NLL).
    chunk_size : int
        Draws evaluated at a time (memory ``O(chunk_size * B)`` in the model's outputs).
    generator : torch.Generator, optional

    Returns
    -------
    LogLikelihoodEstimate
        Detached (computed under ``torch.no_grad``).
    """
    if not callable(log_joint):
        raise ValidationError("importance_log_likelihood", "log_joint must be callable",
                              found=type(log_joint).__name__)
    if not (callable(getattr(proposal, "sample", None))
            and callable(getattr(proposal, "log_prob", None))):
        raise ValidationError("importance_log_likelihood", "proposal must have sample(num, "
                              "generator) and log_prob(z) methods", found=type(proposal).__name__,
                              fix="use DiagonalNormalProposal(mu, logvar)")
    num_samples = check_int(num_samples, "importance_log_likelihood num_samples", minimum=1)
    chunk_size = check_int(chunk_size, "importance_log_likelihood chunk_size", minimum=1)
    chunks: list[Tensor] = []
    with torch.no_grad():
        done = 0
        while done < num_samples:
            c = min(chunk_size, num_samples - done)
            z = proposal.sample(c, generator)
            lj, lq = log_joint(z), proposal.log_prob(z)
            for name, v in (("log_joint", lj), ("proposal.log_prob", lq)):
                if not isinstance(v, Tensor) or not v.is_floating_point():
                    raise ValidationError("importance_log_likelihood", f"{name} must return a "
                                          "floating-point tensor (c, B)",
                                          found=getattr(v, "dtype", type(v).__name__))
            lw = lj - lq
            if lw.dim() != 2 or lw.shape[0] != c:
                raise ShapeError("importance_log_likelihood",
                                 f"log_joint and proposal.log_prob must return ({c}, B)",
                                 found=tuple(lw.shape))
            if lw.shape[1] == 0:
                raise ShapeError("importance_log_likelihood", "needs at least one data point "
                                 "(B >= 1)", found=tuple(lw.shape))
            if bool(torch.isnan(lw).any()) or bool(torch.isposinf(lw).any()):
                raise NonFiniteError("importance_log_likelihood",
                                     "log p(x, z) - log q(z | x) is NaN or +inf for some draws",
                                     fix="check the model's outputs are finite")
            chunks.append(lw)
            done += c
    lw_all = torch.cat(chunks, 0).T  # (B, k)
    k = num_samples
    log_s1 = torch.logsumexp(lw_all, -1)
    if not bool(torch.isfinite(log_s1).all()):
        raise NonFiniteError("importance_log_likelihood",
                             "every weight of some data point is zero (log p(x, z) = -inf)",
                             fix="use a proposal that covers the posterior's support")
    log_ll = log_s1 - math.log(k)
    ess = kish_ess(lw_all)
    if k > 1:
        ratio = torch.exp(torch.logsumexp(2 * lw_all, -1) - 2 * log_s1)  # S2 / S1^2 = 1 / ess
        se = torch.sqrt(((k * ratio - 1) / (k - 1)).clamp_min(0))
    else:
        se = torch.full_like(log_ll, math.inf)
    return LogLikelihoodEstimate(log_ll, se, ess, lw_all)
