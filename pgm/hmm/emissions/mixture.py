"""Gaussian-mixture emissions (one mixture per state, four covariance types)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from probforge.errors import (
    ShapeError,
    ValidationError,
)
from probforge.ops.random import check_generator
from probforge.validate import check_int, check_tensor

from ._base import (
    _COV_TYPES,
    Emission,
    _check_init_method,
    _check_rows,
    check_prior_field,
)
from .gaussian import GaussianEmission


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

    def __post_init__(self) -> None:
        check_prior_field(self.weights_prior, "GaussianMixturePrior: weights_prior",
                          minimum=0.0)
        check_prior_field(self.means_prior, "GaussianMixturePrior: means_prior")
        check_prior_field(self.means_weight, "GaussianMixturePrior: means_weight", minimum=0.0)
        check_prior_field(self.min_covar, "GaussianMixturePrior: min_covar", minimum=0.0)


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

    fresh_log_prob: ClassVar[bool] = True

    def __init__(
        self,
        log_weights: Tensor,
        means: Tensor,
        covars: Tensor,
        covariance_type: str = "diag",
        *,
        validate: bool = True,
    ) -> None:
        check_tensor(means, "GaussianMixtureEmission: means", floating=True)
        check_tensor(log_weights, "GaussianMixtureEmission: log_weights", floating=True)
        check_tensor(covars, "GaussianMixtureEmission: covars", floating=True)
        if means.dim() != 3 or 0 in means.shape:
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

    def _check_input(self, x: Tensor) -> None:
        self._components._check_input(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Mixture log-likelihood of observations ``(..., D)`` -> ``(..., K)``.

        Raises
        ------
        ShapeError, DtypeMismatchError, NonFiniteError
            As :meth:`GaussianEmission.log_prob`.
        """
        return torch.logsumexp(self._component_log_prob(x), dim=-1)

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None
               ) -> GaussianMixtureEmission:
        self._check_m_step(x, weights, prior, GaussianMixturePrior,
                           "GaussianMixtureEmission.m_step")
        prior = prior if prior is not None else GaussianMixturePrior()
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
        self._check_states(states, "GaussianMixtureEmission.sample: states")
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
        subject = "GaussianMixtureEmission.init"
        n_states = cls._init_checks(x, n_states, kwargs)
        _check_init_method(method, subject)
        n_mix = check_int(n_mix, f"{subject}: n_mix", minimum=1)
        if not isinstance(covariance_type, str) or covariance_type not in _COV_TYPES:
            raise ValidationError(f"{subject}: covariance_type", f"must be one of {_COV_TYPES}",
                                  found=repr(covariance_type))
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
