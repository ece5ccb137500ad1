"""Emission families of hidden Markov models: ``log p(x_t | y_t = k)`` for every state ``k``.

Every emission is an immutable object holding its parameters as tensors. It provides

- :meth:`Emission.log_prob`: observations ``(..., T, *event)`` -> log-likelihoods ``(..., T, K)``;
- :meth:`Emission.check`: named errors for invalid observations (symbols out of range, NaN ...);
- :meth:`Emission.m_step`: a new emission from posterior weights (maximum likelihood, or MAP with
  the family's conjugate prior);
- :meth:`Emission.sample`: draws given states, with an explicit generator;
- :meth:`Emission.init`: k-means or random initialisation from data, with a generator;
- :meth:`Emission.n_parameters` and :meth:`Emission.log_prior` (for model selection and MAP-EM).

Families: :class:`CategoricalEmission`, :class:`GaussianEmission` (full, diag, spherical, tied),
:class:`GaussianMixtureEmission`, :class:`PoissonEmission`, :class:`BernoulliEmission`, plus
:class:`LogLikelihoodEmission` (the user gives the log-likelihood tensor itself) and
:class:`NeuralEmission` (any ``nn.Module`` mapping observations to log-likelihoods).

Prior conventions follow hmmlearn where it has them, so the same settings give the same M-step
(see each class), with two deliberate differences: a scalar ``covars_prior`` of a full or tied
covariance means ``covars_prior * I`` (hmmlearn adds the scalar to every entry), and the Poisson
Gamma prior is per state (hmmlearn divides by the posterior mass of all states together).

Examples
--------
>>> import torch
>>> from pgm.hmm.emissions import CategoricalEmission
>>> em = CategoricalEmission(torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log())
>>> em.log_prob(torch.tensor([0, 1, 1])).exp()
tensor([[0.9000, 0.2000],
        [0.1000, 0.8000],
        [0.1000, 0.8000]])
"""

from __future__ import annotations

import abc
import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from probforge.errors import (
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import check_generator

__all__ = [
    "BernoulliEmission",
    "BernoulliPrior",
    "CategoricalEmission",
    "CategoricalPrior",
    "CovarianceType",
    "Emission",
    "GaussianEmission",
    "GaussianMixtureEmission",
    "GaussianMixturePrior",
    "GaussianPrior",
    "LogLikelihoodEmission",
    "NeuralEmission",
    "PoissonEmission",
    "PoissonPrior",
]

CovarianceType = Literal["full", "diag", "spherical", "tied"]
_COV_TYPES = ("full", "diag", "spherical", "tied")
_LOG_2PI = math.log(2 * math.pi)
_NORM_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _position(flat_index: int, batch: tuple[int, ...], T: int) -> str:
    """'sequence (i, j), step t' for a flat index into (*batch, T)."""
    t = flat_index % T
    rest = flat_index // T
    idx = []
    for s in reversed(batch):
        idx.append(rest % s)
        rest //= s
    seq = ", ".join(str(i) for i in reversed(idx))
    return f"sequence [{seq}], step {t}" if batch else f"step {t}"


def _first_bad(bad: Tensor, batch: tuple[int, ...], T: int) -> str | None:
    """Location of the first True of ``bad`` (*batch, T) or None."""
    if not bool(bad.any()):
        return None
    flat = int(bad.reshape(-1).nonzero()[0, 0])
    return _position(flat, batch, T)


def _check_rows(log_p: Tensor, subject: str) -> None:
    """Rows of ``exp(log_p)`` must sum to 1; NaN / +inf rejected."""
    if torch.isnan(log_p).any() or (log_p == math.inf).any():
        raise NonFiniteError(subject, "log-probabilities must not be NaN or +inf")
    tol = _NORM_TOL.get(log_p.dtype, 1e-5)
    sums = torch.logsumexp(log_p, dim=-1).exp()
    bad = (sums - 1).abs() > tol * max(log_p.shape[-1], 1)
    if bool(bad.any()):
        i = int(bad.reshape(-1).nonzero()[0, 0])
        raise NormalisationError(
            f"{subject} row {i}",
            "probabilities must sum to 1",
            found=float(sums.reshape(-1)[i]),
            fix="normalise the row (probforge never renormalises silently)",
        )


def _check_prob_range(p: Tensor, subject: str) -> None:
    if torch.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValidationError(subject, "probabilities must lie in [0, 1]")


def _as_float(x: Tensor, like: Tensor) -> Tensor:
    return x.to(dtype=like.dtype, device=like.device)


class Emission(abc.ABC):
    """Base class of HMM emission families.

    Attributes
    ----------
    event_dim : int
        Number of trailing dimensions of one observation (0 for a symbol, 1 for a vector).
    """

    event_dim: ClassVar[int] = 1

    @property
    @abc.abstractmethod
    def n_states(self) -> int:
        """Number of hidden states ``K``."""

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device of the parameters."""

    @abc.abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """Log-likelihood of each observation under each state.

        Parameters
        ----------
        x : Tensor, shape (..., T, *event)

        Returns
        -------
        Tensor, shape (..., T, K)
        """

    def check(self, x: Tensor, valid: Tensor) -> None:
        """Raise a named error for an invalid observation at a step where ``valid`` (..., T)."""
        bad = self._invalid(x)
        if bad is None:
            return
        where = _first_bad(bad & valid, tuple(valid.shape[:-1]), valid.shape[-1])
        if where is not None:
            raise self._error(where)

    def _invalid(self, x: Tensor) -> Tensor | None:
        """(..., T) True where an observation breaks the family's rule (None: never)."""
        if not x.is_floating_point():
            return None
        bad = ~torch.isfinite(x)
        return bad.reshape(*bad.shape[: bad.dim() - self.event_dim], -1).any(-1) if (
            self.event_dim
        ) else bad

    def _error(self, where: str) -> ValidationError:
        return NonFiniteError(
            f"observations at {where}",
            "must be finite",
            fix="mark missing observations with the `missing` mask",
        )

    def fill(self, x: Tensor, keep: Tensor) -> Tensor:
        """``x`` with observations where ``keep`` (..., T) is False replaced by a harmless value."""
        k = keep.reshape(keep.shape + (1,) * self.event_dim)
        return torch.where(k, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> Emission:
        """A new emission maximising ``sum_n sum_k weights[n, k] log p(x[n] | k)`` (+ log prior).

        Parameters
        ----------
        x : Tensor, shape (N, *event)
            Observations (only real, observed steps).
        weights : Tensor, shape (N, K)
            Posterior state probabilities of each observation.
        prior : family-specific prior, optional
        """
        raise ValidationError(
            type(self).__name__,
            "has no closed-form M-step",
            fix="train it by gradient (pgm.hmm.module.HMMModule) instead of Baum-Welch",
        )

    def log_prior(self, prior: Any = None) -> Tensor:
        """Log prior density of the parameters (up to a constant) matching :meth:`m_step`."""
        return torch.zeros((), dtype=self.dtype, device=self.device)

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one observation for each state in ``states`` (...) -> (..., *event)."""
        raise ValidationError(
            type(self).__name__, "cannot be sampled", fix="use a parametric emission family"
        )

    @abc.abstractmethod
    def n_parameters(self) -> int:
        """Number of free parameters (for AIC/BIC)."""

    @abc.abstractmethod
    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> Emission:
        """A copy with parameters converted."""

    @classmethod
    def init(
        cls,
        x: Tensor,
        n_states: int,
        *,
        generator: torch.Generator | None = None,
        method: str = "kmeans",
        **kwargs: Any,
    ) -> Emission:
        """Initial parameters from observations ``x`` (N, *event) (only real, observed steps)."""
        raise ValidationError(cls.__name__, "has no data-driven initialisation")


def _check_init_method(method: str, subject: str) -> None:
    if method not in ("kmeans", "random"):
        raise ValidationError(
            f"{subject}: method", "must be 'kmeans' or 'random'", found=repr(method)
        )


def _kmeans_labels(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    from pgm.learning._mixture_common import _kmeans

    return _kmeans(x, k, generator)


def _random_labels(n: int, k: int, generator: torch.Generator | None, device: torch.device
                   ) -> Tensor:
    return torch.randint(0, k, (n,), generator=generator, device=device)


# ----------------------------------------------------------------------------------------------
# categorical


@dataclass(frozen=True)
class CategoricalPrior:
    """Dirichlet prior on each state's symbol distribution (hmmlearn ``emissionprob_prior``).

    MAP: ``p[k] ∝ max(alpha - 1 + counts[k], 0)``. ``alpha = 1`` is maximum likelihood.
    """

    alpha: float | Tensor = 1.0


class CategoricalEmission(Emission):
    """Categorical (discrete symbol) emissions.

    Parameters
    ----------
    log_probs : Tensor, shape (K, M)
        ``log p(x = m | y = k)``; rows must sum to one.

    Observations are integer tensors ``(..., T)`` with symbols in ``0..M-1``.
    """

    event_dim = 0

    def __init__(self, log_probs: Tensor, *, validate: bool = True) -> None:
        if log_probs.dim() != 2:
            raise ShapeError(
                "CategoricalEmission: log_probs", "must have shape (K, M)",
                found=tuple(log_probs.shape),
            )
        if validate:
            _check_rows(log_probs, "CategoricalEmission: log_probs")
        self.log_probs = log_probs

    @property
    def n_states(self) -> int:
        return int(self.log_probs.shape[0])

    @property
    def n_symbols(self) -> int:
        """Number of symbols ``M``."""
        return int(self.log_probs.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.log_probs.dtype

    @property
    def device(self) -> torch.device:
        return self.log_probs.device

    def log_prob(self, x: Tensor) -> Tensor:
        return self.log_probs.t()[x]

    def _invalid(self, x: Tensor) -> Tensor | None:
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValidationError(
                "CategoricalEmission: observations",
                "must be an integer tensor of symbols",
                found=x.dtype,
                fix="convert with x.long()",
            )
        return (x < 0) | (x >= self.n_symbols)

    def _error(self, where: str) -> ValidationError:
        return ValidationError(
            f"observations at {where}",
            f"symbol out of range 0..{self.n_symbols - 1}",
            fix="recode the symbols or enlarge the emission's alphabet",
        )

    def fill(self, x: Tensor, keep: Tensor) -> Tensor:
        return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> CategoricalEmission:
        prior = prior if prior is not None else CategoricalPrior()
        if not isinstance(prior, CategoricalPrior):
            raise ValidationError("CategoricalEmission.m_step: prior",
                                  "must be a CategoricalPrior", found=type(prior).__name__)
        K, M = self.log_probs.shape
        counts = torch.zeros(M, K, dtype=weights.dtype, device=weights.device)
        counts.index_add_(0, x.reshape(-1), weights)
        counts = counts.t()
        num = (_as_float(torch.as_tensor(prior.alpha), counts) - 1 + counts).clamp_min(0)
        num = torch.where(self.log_probs == -math.inf, torch.zeros_like(num), num)
        total = num.sum(-1, keepdim=True)
        new = torch.where(total > 0, (num / total.clamp_min(1e-300)).log(), self.log_probs)
        return CategoricalEmission(new, validate=False)

    def log_prior(self, prior: Any = None) -> Tensor:
        prior = prior if prior is not None else CategoricalPrior()
        a = _as_float(torch.as_tensor(prior.alpha), self.log_probs) - 1
        term = torch.where(a != 0, a * self.log_probs, torch.zeros_like(self.log_probs))
        return term.sum()

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_generator(generator, self.device)
        logits = self.log_probs[states]
        flat = logits.reshape(-1, self.n_symbols).exp()
        if flat.shape[0] == 0:
            return torch.zeros(states.shape, dtype=torch.long, device=self.device)
        draw = torch.multinomial(flat, 1, generator=generator)
        return draw.reshape(states.shape)

    def n_parameters(self) -> int:
        return self.n_states * (self.n_symbols - 1)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> CategoricalEmission:
        return CategoricalEmission(self.log_probs.to(dtype=dtype, device=device), validate=False)

    @classmethod
    def init(
        cls,
        x: Tensor,
        n_states: int,
        *,
        generator: torch.Generator | None = None,
        method: str = "random",
        n_symbols: int | None = None,
        dtype: torch.dtype = torch.float64,
        **kwargs: Any,
    ) -> CategoricalEmission:
        """Rows drawn around the empirical symbol frequencies (``method`` is ignored)."""
        M = int(x.max()) + 1 if n_symbols is None else n_symbols
        freq = torch.bincount(x.reshape(-1), minlength=M).to(dtype) + 1.0
        freq = freq / freq.sum()
        noise = torch.rand(n_states, M, generator=generator, dtype=dtype, device=x.device)
        p = freq[None, :] * (0.5 + noise)
        return cls((p / p.sum(-1, keepdim=True)).log())


# ----------------------------------------------------------------------------------------------
# Gaussian


@dataclass(frozen=True)
class GaussianPrior:
    """Conjugate prior of Gaussian emissions, in hmmlearn's parametrisation.

    MAP M-step (per state ``k``, ``N = sum_t w_tk``, ``S`` the weighted scatter about the new mean):

    - ``mean = (means_weight * means_prior + sum_t w_tk x_t) / (means_weight + N)``
    - diag / spherical: ``var = (covars_prior + means_weight (mean - means_prior)^2 + S)
      / (max(covars_weight - 1, 0) + N)`` (spherical: averaged over dimensions)
    - full: ``cov = (Psi + means_weight d d^T + S) / (max(covars_weight - D, 0) + N)``;
      tied: numerators summed over states, denominator ``max(covars_weight - D, 0) + sum N``.

    ``Psi = covars_prior * I`` for a scalar (a tensor is used as given). The defaults are
    hmmlearn's (``covars_prior = 0.01``, ``covars_weight = 1``); ``min_covar`` is added to the
    variances after the update (hmmlearn only adds it at initialisation; default 0).
    """

    means_prior: float | Tensor = 0.0
    means_weight: float | Tensor = 0.0
    covars_prior: float | Tensor = 1e-2
    covars_weight: float | Tensor = 1.0
    min_covar: float = 0.0


class GaussianEmission(Emission):
    """Multivariate Gaussian emissions with full, diagonal, spherical or tied covariances.

    Parameters
    ----------
    means : Tensor, shape (K, D)
    covars : Tensor
        ``full``: (K, D, D); ``diag``: (K, D) variances; ``spherical``: (K,) variances;
        ``tied``: (D, D) shared by all states.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "diag"

    Observations are float tensors ``(..., T, D)``.
    """

    def __init__(
        self,
        means: Tensor,
        covars: Tensor,
        covariance_type: str = "diag",
        *,
        validate: bool = True,
    ) -> None:
        if covariance_type not in _COV_TYPES:
            raise ValidationError(
                "GaussianEmission: covariance_type", f"must be one of {_COV_TYPES}",
                found=repr(covariance_type),
            )
        if means.dim() != 2 or not means.is_floating_point():
            raise ShapeError("GaussianEmission: means", "must be a float tensor (K, D)",
                             found=tuple(means.shape))
        K, D = means.shape
        want = {"full": (K, D, D), "diag": (K, D), "spherical": (K,), "tied": (D, D)}[
            covariance_type
        ]
        if tuple(covars.shape) != want:
            raise ShapeError(
                "GaussianEmission: covars",
                f"'{covariance_type}' covariances must have shape {want}",
                found=tuple(covars.shape),
            )
        self.means = means
        self.covars = covars.to(means.dtype)
        self.covariance_type = covariance_type
        if validate:
            if not torch.isfinite(means).all():
                raise NonFiniteError("GaussianEmission: means", "must be finite")
            if covariance_type in ("diag", "spherical"):
                if not (self.covars > 0).all() or not torch.isfinite(self.covars).all():
                    i = int((~(self.covars > 0)).reshape(K, -1).any(-1).nonzero()[0, 0])
                    raise ValidationError(
                        f"GaussianEmission: covars of state {i}",
                        "variances must be finite and > 0",
                    )
        self._chol: Tensor | None = None
        if covariance_type in ("full", "tied"):
            mats = self.covars if covariance_type == "full" else self.covars[None]
            if validate and not torch.allclose(mats, mats.transpose(-1, -2)):
                raise ValidationError("GaussianEmission: covars", "must be symmetric")
            chol, info = torch.linalg.cholesky_ex(mats)
            if bool((info != 0).any()):
                i = int((info != 0).nonzero()[0, 0])
                raise ValidationError(
                    f"GaussianEmission: covars of state {i}" if covariance_type == "full"
                    else "GaussianEmission: tied covars",
                    "must be positive definite",
                    fix="add a small multiple of the identity (min_covar)",
                )
            self._chol = chol

    @property
    def n_states(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        """Dimension ``D`` of one observation."""
        return int(self.means.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    def variances(self) -> Tensor:
        """Per-state variances (K, D) for diag / spherical."""
        if self.covariance_type == "spherical":
            return self.covars[:, None].expand(self.n_states, self.n_features)
        return self.covars

    def full_covars(self) -> Tensor:
        """Covariance matrices (K, D, D) whatever the type."""
        K, D = self.means.shape
        if self.covariance_type == "full":
            return self.covars
        if self.covariance_type == "tied":
            return self.covars.expand(K, D, D)
        return torch.diag_embed(self.variances())

    def log_prob(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n_features:
            raise ShapeError("GaussianEmission: observations",
                             f"last dim must be D = {self.n_features}", found=tuple(x.shape))
        x = x.to(self.dtype)
        D = self.n_features
        if self.covariance_type in ("diag", "spherical"):
            var = self.variances()
            diff = x[..., None, :] - self.means  # (..., T, K, D)
            return -0.5 * (D * _LOG_2PI + var.log().sum(-1) + (diff * diff / var).sum(-1))
        assert self._chol is not None
        chol = self._chol  # (K or 1, D, D)
        lead = x.shape[:-1]
        flat = x.reshape(-1, D)  # (N, D)
        diff = flat[None, :, :] - self.means[:, None, :]  # (K, N, D)
        sol = torch.linalg.solve_triangular(
            chol, diff.transpose(-1, -2), upper=False
        )  # (K, D, N)
        maha = (sol * sol).sum(-2)  # (K, N)
        logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,) or (1,)
        out = -0.5 * (D * _LOG_2PI + logdet[:, None] + maha)
        res: Tensor = out.t().reshape(*lead, self.n_states)
        return res

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> GaussianEmission:
        prior = prior if prior is not None else GaussianPrior()
        if not isinstance(prior, GaussianPrior):
            raise ValidationError("GaussianEmission.m_step: prior",
                                  "must be a GaussianPrior", found=type(prior).__name__)
        x = x.to(self.dtype)
        K, D = self.means.shape
        w = weights.to(self.dtype)
        n = w.sum(0)  # (K,)
        sx = w.t() @ x  # (K, D)
        lam = _bcast(prior.means_weight, self.means, (K,))
        mu0 = _bcast(prior.means_prior, self.means, (K, D))
        denom = lam + n
        means = torch.where(
            (denom > 0)[:, None], (lam[:, None] * mu0 + sx) / denom.clamp_min(1e-300)[:, None],
            self.means,
        )
        md = means - mu0
        ct = self.covariance_type
        if ct in ("diag", "spherical"):
            sxx = w.t() @ (x * x)
            scatter = sxx - 2 * means * sx + means * means * n[:, None]
            cp = _bcast(prior.covars_prior, self.means, (K, D))
            cw = _bcast(prior.covars_weight, self.means, (K, D))
            num = cp + lam[:, None] * md * md + scatter
            var = num / ((cw - 1).clamp_min(0) + n[:, None]).clamp_min(1e-5)
            if ct == "spherical":
                var = var.mean(-1)
            var = var + prior.min_covar
            return GaussianEmission(means, var, ct, validate=False)
        sxxt = torch.einsum("nk,ni,nj->kij", w, x, x)
        outer_sm = sx[:, :, None] * means[:, None, :]
        scatter = sxxt - outer_sm - outer_sm.transpose(-1, -2) + (
            means[:, :, None] * means[:, None, :] * n[:, None, None]
        )
        psi = _psi(prior.covars_prior, self.means, K, D)
        cw = torch.as_tensor(prior.covars_weight, dtype=self.dtype, device=self.device)
        num = lam[:, None, None] * md[:, :, None] * md[:, None, :] + scatter
        eye = torch.eye(D, dtype=self.dtype, device=self.device)
        if ct == "full":
            cov = (psi + num) / ((cw - D).clamp_min(0) + n).reshape(-1, 1, 1)
        else:
            cov = (psi[0] + num.sum(0)) / ((cw - D).clamp_min(0) + n.sum())
        cov = cov + prior.min_covar * eye
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        return GaussianEmission(means, cov, ct, validate=False)

    def log_prior(self, prior: Any = None) -> Tensor:
        prior = prior if prior is not None else GaussianPrior()
        K, D = self.means.shape
        lam = _bcast(prior.means_weight, self.means, (K,))
        mu0 = _bcast(prior.means_prior, self.means, (K, D))
        md = self.means - mu0
        ct = self.covariance_type
        if ct in ("diag", "spherical"):
            var = self.variances()
            cp = _bcast(prior.covars_prior, self.means, (K, D))
            cw = (_bcast(prior.covars_weight, self.means, (K, D)) - 1).clamp_min(0)
            # spherical: one variance per state, its prior counted once per dimension (the MAP
            # averages the per-dimension estimates)
            return (-(cw / 2) * var.log() - (cp + lam[:, None] * md * md) / (2 * var)).sum()
        psi = _psi(prior.covars_prior, self.means, K, D)
        cw = (torch.as_tensor(prior.covars_weight, dtype=self.dtype) - D).clamp_min(0)
        cov = self.full_covars()
        inv = torch.linalg.inv(cov)
        logdet = torch.linalg.slogdet(cov)[1]
        quad = lam[:, None, None] * md[:, :, None] * md[:, None, :]
        if ct == "full":
            val: Tensor = (-(cw / 2) * logdet - 0.5 * ((psi + quad) * inv).sum((-2, -1))).sum()
        else:
            val = -(cw / 2) * logdet[0] - 0.5 * ((psi[0] + quad.sum(0)) * inv[0]).sum()
        return val

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_generator(generator, self.device)
        z = torch.randn(*states.shape, self.n_features, generator=generator, dtype=self.dtype,
                        device=self.device)
        mu = self.means[states]
        if self.covariance_type in ("diag", "spherical"):
            return mu + z * self.variances()[states].sqrt()
        assert self._chol is not None
        chol = self._chol[states] if self.covariance_type == "full" else self._chol[0]
        return mu + (chol @ z[..., None])[..., 0]

    def n_parameters(self) -> int:
        K, D = self.means.shape
        cov = {"spherical": K, "diag": K * D, "full": K * D * (D + 1) // 2,
               "tied": D * (D + 1) // 2}[self.covariance_type]
        return K * D + cov

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> GaussianEmission:
        return GaussianEmission(self.means.to(dtype=dtype, device=device),
                                self.covars.to(dtype=dtype, device=device),
                                self.covariance_type, validate=False)

    @classmethod
    def init(
        cls,
        x: Tensor,
        n_states: int,
        *,
        generator: torch.Generator | None = None,
        method: str = "kmeans",
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        **kwargs: Any,
    ) -> GaussianEmission:
        """Means from k-means (or random data points), covariances from the data's covariance
        plus ``min_covar * I`` for every state (as hmmlearn)."""
        _check_init_method(method, "GaussianEmission.init")
        x = x.reshape(x.shape[0], -1)
        N, D = x.shape
        if method == "kmeans":
            labels = _kmeans_labels(x, n_states, generator)
            onehot = torch.nn.functional.one_hot(labels, n_states).to(x.dtype)
            cnt = onehot.sum(0)
            means = (onehot.t() @ x) / cnt.clamp_min(1)[:, None]
        else:
            idx = torch.randperm(N, generator=generator, device=x.device)[:n_states]
            means = x[idx]
            if means.shape[0] < n_states:
                raise ValidationError("GaussianEmission.init", "fewer observations than states",
                                      found=N)
        xc = x - x.mean(0)
        cv = (xc.t() @ xc) / max(N - 1, 1) + min_covar * torch.eye(D, dtype=x.dtype,
                                                                   device=x.device)
        covars = {
            "full": cv.expand(n_states, D, D).clone(),
            "tied": cv,
            "diag": cv.diagonal().expand(n_states, D).clone(),
            "spherical": cv.diagonal().mean().expand(n_states).clone(),
        }[covariance_type]
        return cls(means, covars, covariance_type)


def _bcast(v: float | Tensor, like: Tensor, shape: tuple[int, ...]) -> Tensor:
    t = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if t.dim() == 1 and len(shape) == 2 and t.shape[0] == shape[0] and shape[1] != shape[0]:
        t = t[:, None]  # per-state value
    return t.expand(shape)


def _psi(v: float | Tensor, like: Tensor, K: int, D: int) -> Tensor:
    t = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        return t * torch.eye(D, dtype=like.dtype, device=like.device).expand(K, D, D)
    return t.expand(K, D, D)


# ----------------------------------------------------------------------------------------------
# Gaussian mixture


@dataclass(frozen=True)
class GaussianMixturePrior:
    """Prior of Gaussian-mixture emissions.

    ``weights_prior``: Dirichlet concentration of each state's mixture weights (1 = ML);
    ``means_prior`` / ``means_weight``: Gaussian prior on the component means (weight 0 = ML);
    ``min_covar``: added to the variances after each update (default 0).
    """

    weights_prior: float | Tensor = 1.0
    means_prior: float | Tensor = 0.0
    means_weight: float | Tensor = 0.0
    min_covar: float = 0.0


class GaussianMixtureEmission(Emission):
    """Each state emits from its own mixture of ``M`` Gaussians.

    Parameters
    ----------
    log_weights : Tensor, shape (K, M)
        Log mixture weights; rows sum to one.
    means : Tensor, shape (K, M, D)
    covars : Tensor
        ``full``: (K, M, D, D); ``diag``: (K, M, D); ``spherical``: (K, M); ``tied``: (K, D, D)
        (one matrix per state, shared by its components, as in hmmlearn's GMMHMM).
    covariance_type : {"full", "diag", "spherical", "tied"}

    The M-step is exact EM: covariances are centred at the *new* means (hmmlearn's GMMHMM
    centres them at the previous means).
    """

    def __init__(
        self,
        log_weights: Tensor,
        means: Tensor,
        covars: Tensor,
        covariance_type: str = "diag",
        *,
        validate: bool = True,
    ) -> None:
        if means.dim() != 3:
            raise ShapeError("GaussianMixtureEmission: means", "must have shape (K, M, D)",
                             found=tuple(means.shape))
        K, M, D = means.shape
        if tuple(log_weights.shape) != (K, M):
            raise ShapeError("GaussianMixtureEmission: log_weights",
                             f"must have shape (K, M) = ({K}, {M})",
                             found=tuple(log_weights.shape))
        if validate:
            _check_rows(log_weights, "GaussianMixtureEmission: log_weights")
        self.log_weights = log_weights
        self.covariance_type = covariance_type
        if covariance_type == "tied":
            if tuple(covars.shape) != (K, D, D):
                raise ShapeError("GaussianMixtureEmission: covars",
                                 f"'tied' covariances must have shape {(K, D, D)}",
                                 found=tuple(covars.shape))
            comp_cov = covars[:, None].expand(K, M, D, D).reshape(K * M, D, D)
            ctype = "full"
        else:
            want = {"full": (K, M, D, D), "diag": (K, M, D), "spherical": (K, M)}.get(
                covariance_type
            )
            if want is None:
                raise ValidationError("GaussianMixtureEmission: covariance_type",
                                      f"must be one of {_COV_TYPES}", found=repr(covariance_type))
            if tuple(covars.shape) != want:
                raise ShapeError("GaussianMixtureEmission: covars",
                                 f"'{covariance_type}' covariances must have shape {want}",
                                 found=tuple(covars.shape))
            comp_cov = covars.reshape(K * M, *covars.shape[2:])
            ctype = covariance_type
        self.means = means
        self.covars = covars
        self._components = GaussianEmission(means.reshape(K * M, D), comp_cov, ctype,
                                            validate=validate)

    @property
    def n_states(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_mix(self) -> int:
        """Components per state ``M``."""
        return int(self.means.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    def _component_log_prob(self, x: Tensor) -> Tensor:
        """log w_km + log N(x | mu_km, Sigma_km): (..., K, M)."""
        K, M, _ = self.means.shape
        lp = self._components.log_prob(x)  # (..., K*M)
        return lp.reshape(*lp.shape[:-1], K, M) + self.log_weights

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self._component_log_prob(x), dim=-1)

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None
               ) -> GaussianMixtureEmission:
        prior = prior if prior is not None else GaussianMixturePrior()
        if not isinstance(prior, GaussianMixturePrior):
            raise ValidationError("GaussianMixtureEmission.m_step: prior",
                                  "must be a GaussianMixturePrior", found=type(prior).__name__)
        x = x.to(self.dtype)
        K, M, D = self.means.shape
        comp = self._component_log_prob(x)  # (N, K, M)
        resp = torch.softmax(comp, dim=-1) * weights.to(self.dtype)[..., None]  # (N, K, M)
        nkm = resp.sum(0)  # (K, M)
        alpha = torch.as_tensor(prior.weights_prior, dtype=self.dtype, device=self.device)
        wn = (alpha - 1 + nkm).clamp_min(0)
        wtot = wn.sum(-1, keepdim=True)
        log_w = torch.where(wtot > 0, (wn / wtot.clamp_min(1e-300)).log(), self.log_weights)
        lam = torch.as_tensor(prior.means_weight, dtype=self.dtype, device=self.device)
        lam = lam.expand(K, M)
        mu0 = torch.as_tensor(prior.means_prior, dtype=self.dtype, device=self.device)
        sx = torch.einsum("nkm,nd->kmd", resp, x)
        denom = lam + nkm
        means = torch.where(
            (denom > 0)[..., None],
            (lam[..., None] * mu0 + sx) / denom.clamp_min(1e-300)[..., None],
            self.means,
        )
        diff = x[:, None, None, :] - means  # (N, K, M, D)
        md = means - mu0
        ct = self.covariance_type
        if ct in ("diag", "spherical"):
            sq = torch.einsum("nkm,nkmd->kmd", resp, diff * diff) + lam[..., None] * md * md
            var = sq / nkm.clamp_min(1e-300)[..., None]
            if ct == "spherical":
                var = var.mean(-1)
            keep = (nkm > 0) if ct == "spherical" else (nkm > 0)[..., None]
            old = self.covars
            var = torch.where(keep, var + prior.min_covar, old)
            return GaussianMixtureEmission(log_w, means, var, ct, validate=False)
        sc = torch.einsum("nkm,nkmi,nkmj->kmij", resp, diff, diff)
        sc = sc + lam[..., None, None] * md[..., :, None] * md[..., None, :]
        eye = torch.eye(D, dtype=self.dtype, device=self.device)
        if ct == "full":
            cov = sc / nkm.clamp_min(1e-300)[..., None, None]
            cov = torch.where((nkm > 0)[..., None, None], cov + prior.min_covar * eye,
                              self.covars)
        else:
            nk = nkm.sum(-1)
            cov = sc.sum(1) / nk.clamp_min(1e-300)[:, None, None]
            cov = torch.where((nk > 0)[:, None, None], cov + prior.min_covar * eye, self.covars)
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        return GaussianMixtureEmission(log_w, means, cov, ct, validate=False)

    def log_prior(self, prior: Any = None) -> Tensor:
        prior = prior if prior is not None else GaussianMixturePrior()
        a = torch.as_tensor(prior.weights_prior, dtype=self.dtype, device=self.device) - 1
        a = a.expand_as(self.log_weights)
        lw = torch.where(a != 0, a * self.log_weights, torch.zeros_like(self.log_weights))
        lam = torch.as_tensor(prior.means_weight, dtype=self.dtype, device=self.device)
        if bool((lam != 0).any()):
            # Gaussian prior on the means with covariance Sigma_km / lambda
            K, M, D = self.means.shape
            mu0 = torch.as_tensor(prior.means_prior, dtype=self.dtype, device=self.device)
            md = (self.means - mu0).reshape(K * M, D)
            cov = self._components.full_covars()
            quad = (md[:, None, :] @ torch.linalg.solve(cov, md[:, :, None]))[:, 0, 0]
            val: Tensor = lw.sum() - 0.5 * (lam.expand(K, M).reshape(-1) * quad).sum()
            return val
        return lw.sum()

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_generator(generator, self.device)
        M = self.n_mix
        w = self.log_weights[states].reshape(-1, M).exp()
        comp = torch.multinomial(w, 1, generator=generator).reshape(states.shape) if (
            w.shape[0] > 0
        ) else torch.zeros(states.shape, dtype=torch.long, device=self.device)
        return self._components.sample(states * M + comp, generator)

    def n_parameters(self) -> int:
        K, M, D = self.means.shape
        cov = {"spherical": K * M, "diag": K * M * D, "full": K * M * D * (D + 1) // 2,
               "tied": K * D * (D + 1) // 2}[self.covariance_type]
        return K * (M - 1) + K * M * D + cov

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> GaussianMixtureEmission:
        return GaussianMixtureEmission(
            self.log_weights.to(dtype=dtype, device=device),
            self.means.to(dtype=dtype, device=device),
            self.covars.to(dtype=dtype, device=device),
            self.covariance_type, validate=False,
        )

    @classmethod
    def init(
        cls,
        x: Tensor,
        n_states: int,
        *,
        generator: torch.Generator | None = None,
        method: str = "kmeans",
        n_mix: int = 2,
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        **kwargs: Any,
    ) -> GaussianMixtureEmission:
        """k-means (or random) with ``n_states * n_mix`` clusters; each state gets ``n_mix`` of
        them, equal weights, and the data's covariance plus ``min_covar * I``."""
        _check_init_method(method, "GaussianMixtureEmission.init")
        x = x.reshape(x.shape[0], -1)
        D = x.shape[1]
        base = GaussianEmission.init(x, n_states * n_mix, generator=generator, method=method,
                                     covariance_type="full", min_covar=min_covar)
        perm = torch.randperm(n_states * n_mix, generator=generator, device=x.device)
        means = base.means[perm].reshape(n_states, n_mix, D)
        cv = base.covars[0]
        covars = {
            "full": cv.expand(n_states, n_mix, D, D).clone(),
            "tied": cv.expand(n_states, D, D).clone(),
            "diag": cv.diagonal().expand(n_states, n_mix, D).clone(),
            "spherical": cv.diagonal().mean().expand(n_states, n_mix).clone(),
        }[covariance_type]
        log_w = torch.full((n_states, n_mix), -math.log(n_mix), dtype=x.dtype, device=x.device)
        return cls(log_w, means, covars, covariance_type)


# ----------------------------------------------------------------------------------------------
# Poisson and Bernoulli


@dataclass(frozen=True)
class PoissonPrior:
    """Gamma(alpha, beta) prior on each rate: MAP ``(alpha - 1 + sum w x) / (beta + sum w)``.

    ``alpha = 1, beta = 0`` (the default) is maximum likelihood. (hmmlearn's ``lambdas_prior``
    / ``lambdas_weight`` divide by the posterior mass of all states together; this is per state.)
    """

    alpha: float | Tensor = 1.0
    beta: float | Tensor = 0.0


class PoissonEmission(Emission):
    """Independent Poisson counts per feature.

    Parameters
    ----------
    rates : Tensor, shape (K, D)
        Positive rates.

    Observations: non-negative integer counts ``(..., T, D)`` (integer or float dtype).
    """

    def __init__(self, rates: Tensor, *, validate: bool = True) -> None:
        if rates.dim() != 2:
            raise ShapeError("PoissonEmission: rates", "must have shape (K, D)",
                             found=tuple(rates.shape))
        if validate and (not (rates > 0).all() or not torch.isfinite(rates).all()):
            raise ValidationError("PoissonEmission: rates", "must be finite and > 0")
        self.rates = rates

    @property
    def n_states(self) -> int:
        return int(self.rates.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.rates.dtype

    @property
    def device(self) -> torch.device:
        return self.rates.device

    def log_prob(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype)
        return (x @ self.rates.log().t()) - self.rates.sum(-1) - torch.lgamma(x + 1).sum(-1,
                                                                                       keepdim=True)

    def _invalid(self, x: Tensor) -> Tensor | None:
        xf = x.to(self.dtype) if not x.is_floating_point() else x
        bad = ~torch.isfinite(xf) | (xf < 0) | (xf != xf.round())
        return bad.any(-1)

    def _error(self, where: str) -> ValidationError:
        return ValidationError(f"observations at {where}",
                               "Poisson counts must be finite non-negative integers",
                               fix="mark missing observations with the `missing` mask")

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> PoissonEmission:
        prior = prior if prior is not None else PoissonPrior()
        x = x.to(self.dtype)
        w = weights.to(self.dtype)
        a = torch.as_tensor(prior.alpha, dtype=self.dtype, device=self.device)
        b = torch.as_tensor(prior.beta, dtype=self.dtype, device=self.device)
        num = (a - 1 + w.t() @ x).clamp_min(0)
        den = b + w.sum(0)[:, None]
        rates = torch.where((den > 0) & (num > 0), num / den.clamp_min(1e-300), self.rates)
        return PoissonEmission(rates, validate=False)

    def log_prior(self, prior: Any = None) -> Tensor:
        prior = prior if prior is not None else PoissonPrior()
        a = torch.as_tensor(prior.alpha, dtype=self.dtype, device=self.device)
        b = torch.as_tensor(prior.beta, dtype=self.dtype, device=self.device)
        return ((a - 1) * self.rates.log() - b * self.rates).sum()

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_generator(generator, self.device)
        return torch.poisson(self.rates[states], generator=generator)

    def n_parameters(self) -> int:
        return int(self.rates.numel())

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> PoissonEmission:
        return PoissonEmission(self.rates.to(dtype=dtype, device=device), validate=False)

    @classmethod
    def init(
        cls,
        x: Tensor,
        n_states: int,
        *,
        generator: torch.Generator | None = None,
        method: str = "kmeans",
        **kwargs: Any,
    ) -> PoissonEmission:
        """Rates from k-means cluster means (or random data points), floored at 1e-3."""
        _check_init_method(method, "PoissonEmission.init")
        xf = x.reshape(x.shape[0], -1).to(torch.float64 if not x.is_floating_point()
                                          else x.dtype)
        g = GaussianEmission.init(xf, n_states, generator=generator, method=method)
        return cls(g.means.clamp_min(1e-3))


@dataclass(frozen=True)
class BernoulliPrior:
    """Beta(a, b) prior on each probability: MAP ``(a - 1 + sum w x) / (a + b - 2 + sum w)``."""

    a: float | Tensor = 1.0
    b: float | Tensor = 1.0


class BernoulliEmission(Emission):
    """Independent binary features.

    Parameters
    ----------
    probs : Tensor, shape (K, D)
        ``p(x_d = 1 | y = k)`` in [0, 1].

    Observations: 0/1 tensors ``(..., T, D)`` (bool, integer or float).
    """

    def __init__(self, probs: Tensor, *, validate: bool = True) -> None:
        if probs.dim() != 2:
            raise ShapeError("BernoulliEmission: probs", "must have shape (K, D)",
                             found=tuple(probs.shape))
        if validate:
            _check_prob_range(probs, "BernoulliEmission: probs")
        self.probs = probs

    @property
    def n_states(self) -> int:
        return int(self.probs.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.probs.dtype

    @property
    def device(self) -> torch.device:
        return self.probs.device

    def log_prob(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype)
        lp = torch.log(self.probs)
        lq = torch.log1p(-self.probs)
        # 0 * -inf would be NaN: mask the terms of the features that are off / on
        on = x[..., None, :]
        t1 = torch.where(on > 0, lp, torch.zeros_like(lp))
        t0 = torch.where(on > 0, torch.zeros_like(lq), lq)
        return (t1 + t0).sum(-1)

    def _invalid(self, x: Tensor) -> Tensor | None:
        xf = x.to(self.dtype)
        return ((xf != 0) & (xf != 1)).any(-1)

    def _error(self, where: str) -> ValidationError:
        return ValidationError(f"observations at {where}", "Bernoulli features must be 0 or 1",
                               fix="mark missing observations with the `missing` mask")

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> BernoulliEmission:
        prior = prior if prior is not None else BernoulliPrior()
        x = x.to(self.dtype)
        w = weights.to(self.dtype)
        a = torch.as_tensor(prior.a, dtype=self.dtype, device=self.device)
        b = torch.as_tensor(prior.b, dtype=self.dtype, device=self.device)
        num = (a - 1 + w.t() @ x).clamp_min(0)
        den = (a + b - 2 + w.sum(0)[:, None]).clamp_min(0)
        probs = torch.where(den > 0, (num / den.clamp_min(1e-300)).clamp(0, 1), self.probs)
        return BernoulliEmission(probs, validate=False)

    def log_prior(self, prior: Any = None) -> Tensor:
        prior = prior if prior is not None else BernoulliPrior()
        a = torch.as_tensor(prior.a, dtype=self.dtype, device=self.device) - 1
        b = torch.as_tensor(prior.b, dtype=self.dtype, device=self.device) - 1
        lp, lq = torch.log(self.probs), torch.log1p(-self.probs)
        t = torch.where(a != 0, a * lp, torch.zeros_like(lp)) + torch.where(
            b != 0, b * lq, torch.zeros_like(lq))
        return t.sum()

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_generator(generator, self.device)
        return torch.bernoulli(self.probs[states], generator=generator)

    def n_parameters(self) -> int:
        return int(self.probs.numel())

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> BernoulliEmission:
        return BernoulliEmission(self.probs.to(dtype=dtype, device=device), validate=False)

    @classmethod
    def init(
        cls,
        x: Tensor,
        n_states: int,
        *,
        generator: torch.Generator | None = None,
        method: str = "kmeans",
        **kwargs: Any,
    ) -> BernoulliEmission:
        """Cluster means (k-means or random points) shrunk towards 1/2: ``0.1 + 0.8 * mean``."""
        _check_init_method(method, "BernoulliEmission.init")
        xf = x.reshape(x.shape[0], -1).to(torch.float64 if not x.is_floating_point()
                                          else x.dtype)
        g = GaussianEmission.init(xf, n_states, generator=generator, method=method)
        return cls(0.1 + 0.8 * g.means.clamp(0, 1))


# ----------------------------------------------------------------------------------------------
# user-given log-likelihoods


class LogLikelihoodEmission(Emission):
    """The observations *are* the emission log-likelihoods ``(..., T, K)``.

    Use it for emissions computed elsewhere (a classifier's scores turned into scaled
    likelihoods, a pre-computed acoustic model ...). It has no parameters and no M-step (Baum-Welch
    then only updates the initial and transition probabilities).

    Parameters
    ----------
    n_states : int
    dtype : torch.dtype, default float64
    device : torch.device or str, default "cpu"
    """

    def __init__(self, n_states: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> None:
        self._k = int(n_states)
        self._dtype = dtype
        self._device = torch.device(device)

    @property
    def n_states(self) -> int:
        return self._k

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def log_prob(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self._k:
            raise ShapeError("LogLikelihoodEmission: observations",
                             f"last dim must be K = {self._k}", found=tuple(x.shape))
        return x

    def _invalid(self, x: Tensor) -> Tensor | None:
        return (torch.isnan(x) | (x == math.inf)).any(-1)

    def _error(self, where: str) -> ValidationError:
        return NonFiniteError(f"log-likelihoods at {where}", "must not be NaN or +inf",
                              fix="mark missing observations with the `missing` mask")

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> LogLikelihoodEmission:
        return self

    def n_parameters(self) -> int:
        return 0

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> LogLikelihoodEmission:
        return LogLikelihoodEmission(self._k, dtype or self._dtype, device or self._device)


class NeuralEmission(Emission):
    """Emissions given by a neural network: ``module(x)`` returns ``(..., T, K)`` log-likelihoods.

    The module must map observations ``(..., T, *event)`` to (normalised, for a proper HMM)
    log-densities of each state. There is no closed-form M-step: train the HMM by gradient
    (:class:`pgm.hmm.module.HMMModule`).

    Parameters
    ----------
    module : torch.nn.Module
    n_states : int
    event_dim : int, default 1
        Number of trailing dims of one observation.
    n_params : int, optional
        Free parameters counted for AIC/BIC (default: the module's parameter count).
    """

    def __init__(self, module: nn.Module, n_states: int, *, event_dim: int = 1,
                 n_params: int | None = None) -> None:
        self.module = module
        self._k = int(n_states)
        self._event_dim = int(event_dim)
        self._n_params = n_params
        p = next(iter(module.parameters()), None)
        self._dtype = p.dtype if p is not None else torch.get_default_dtype()
        self._device = p.device if p is not None else torch.device("cpu")

    @property
    def event_dim(self) -> int:  # type: ignore[override]
        return self._event_dim

    @property
    def n_states(self) -> int:
        return self._k

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def log_prob(self, x: Tensor) -> Tensor:
        out: Tensor = self.module(x)
        want = (*x.shape[: x.dim() - self._event_dim], self._k)
        if tuple(out.shape) != want:
            raise ShapeError("NeuralEmission: module output",
                             f"must have shape (..., T, K) = {want}", found=tuple(out.shape))
        return out

    def n_parameters(self) -> int:
        if self._n_params is not None:
            return self._n_params
        return sum(int(p.numel()) for p in self.module.parameters() if p.requires_grad)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> NeuralEmission:
        module = copy.deepcopy(self.module).to(dtype=dtype, device=device)
        return NeuralEmission(module, self._k, event_dim=self._event_dim,
                              n_params=self._n_params)
