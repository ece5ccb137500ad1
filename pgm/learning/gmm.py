"""The Gaussian mixture model ``p(x) = sum_k pi_k N(x; mu_k, Sigma_k)`` (textbook 11.53), with a
latent component ``z in {0..K-1}``: densities, responsibilities, sampling and the ELBO, plus the
Gaussian helpers (log densities, the M-step) that its EM fit in :mod:`pgm.learning.gmm_fit`
uses. ``covariances`` hold variances (the seed's ``sigma_k`` is a standard deviation; see
:mod:`pgm.learning.gmm_fit` for the erratum).

Covariance types follow scikit-learn's shapes: ``"full"`` (K, D, D), ``"diag"`` (K, D),
``"spherical"`` (K,) and ``"tied"`` (D, D). Everything is vectorised over data points and
components, and tensors stay on the device and dtype of the data.

Examples
--------
>>> import torch
>>> from pgm.learning.gmm import GaussianMixture
>>> m = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-3.0], [3.0]]),
...                     torch.tensor([[1.0], [1.0]]), covariance_type="diag")
>>> m.n_components
2
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from pgm.learning._mixture_common import (
    _check_float_dtype,
    _check_int,
    _check_log_q,
    _check_model_input,
    _elbo,
    _empty_threshold,
    _normalise_log_rows,
)
from probforge.errors import (
    ConvergenceError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.ops.device import common_device_dtype
from probforge.ops.random import check_generator, normal
from probforge.ops.special import logsumexp, safe_log

__all__ = ["CovarianceType", "GaussianMixture", "gmm_elbo"]

CovarianceType = Literal["full", "diag", "spherical", "tied"]
_COV_TYPES: tuple[str, ...] = ("full", "diag", "spherical", "tied")
_LOG_2PI = math.log(2.0 * math.pi)
_WEIGHT_TOL = 1e-6


# --------------------------------------------------------------------------------------------
# Shared input checks (also used by the Bernoulli mixture)
# --------------------------------------------------------------------------------------------


def _check_cov_type(covariance_type: object) -> str:
    if covariance_type not in _COV_TYPES:
        raise ValidationError(
            "covariance_type", f"must be one of {', '.join(map(repr, _COV_TYPES))}",
            found=repr(covariance_type),
        )
    return str(covariance_type)


def _cov_shape(ct: str, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "diag": (k, d), "spherical": (k,), "tied": (d, d)}[ct]


def _scale(covariances: Tensor, ct: str, *, in_fit: bool, reg_covar: float = 0.0) -> Tensor:
    """Cholesky factor (full, tied) or standard deviations (diag, spherical) of the covariances.

    Raises ValidationError (model construction) or ConvergenceError (during a fit) naming the
    first component that is not positive definite.
    """
    chol: Tensor
    if ct in ("full", "tied"):
        chol, info = torch.linalg.cholesky_ex(covariances)
        bad = (info != 0).reshape(-1)
    else:
        chol = torch.sqrt(covariances)
        bad = (covariances <= 0).reshape(-1) if ct == "spherical" else (covariances <= 0).any(-1)
    if bool(bad.any()):
        idx = int(bad.nonzero()[0])
        what = "the tied covariance" if ct == "tied" else f"the covariance of component {idx}"
        if ct in ("full", "tied"):
            mat = covariances if ct == "tied" else covariances[idx]
            found = f"smallest eigenvalue {float(torch.linalg.eigvalsh(mat).min()):.3g}"
        else:
            smallest = float(covariances.reshape(bad.shape[0], -1)[idx].min())
            found = f"smallest variance {smallest:.3g}"
        if in_fit:
            raise ConvergenceError(
                "fit_gmm",
                f"{what} is not positive definite (the component collapsed onto too few "
                f"distinct points; reg_covar={reg_covar:g})",
                found=found,
                fix="increase reg_covar or use fewer components",
            )
        raise ValidationError(
            "covariances", f"{what} must be positive definite", found=found,
        )
    return chol


def _log_gaussian(x: Tensor, means: Tensor, scale: Tensor, ct: str) -> Tensor:
    """``log N(x_n; mu_k, Sigma_k)`` for all n, k; shape (N, K)."""
    d = x.shape[1]
    diff = x.unsqueeze(0) - means.unsqueeze(1)  # (K, N, D)
    if ct in ("full", "tied"):
        # Broadcasting solves each component's system, or the one tied system for all components.
        z = torch.linalg.solve_triangular(scale, diff.transpose(1, 2), upper=False)  # (K, D, N)
        maha = (z**2).sum(dim=1)  # (K, N)
        logdet = 2.0 * torch.log(torch.diagonal(scale, dim1=-2, dim2=-1)).sum(dim=-1)
        logdet = logdet.expand(means.shape[0])
    elif ct == "diag":
        maha = ((diff / scale.unsqueeze(1)) ** 2).sum(dim=-1)
        logdet = 2.0 * torch.log(scale).sum(dim=-1)
    else:  # spherical
        maha = (diff**2).sum(dim=-1) / (scale**2).unsqueeze(-1)
        logdet = 2.0 * d * torch.log(scale)
    out: Tensor = (-0.5 * (d * _LOG_2PI + logdet.unsqueeze(-1) + maha)).T
    return out


def _m_step(
    x: Tensor,
    log_resp: Tensor,
    ct: str,
    reg_covar: float,
    prev_means: Tensor,
    prev_covs: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Closed-form M-step (11.63-11.66) generalised to D dimensions; returns new parameters.

    Empty components (``N_k <= 10 eps``) keep ``prev_means`` / ``prev_covs``.
    """
    d = x.shape[1]
    nk = torch.exp(logsumexp(log_resp, dim=0))  # (K,)
    alive = nk > _empty_threshold(x.dtype)
    safe_nk = torch.where(alive, nk, torch.ones_like(nk))
    weights = nk / nk.sum()
    resp = torch.exp(log_resp)
    means = (resp.T @ x) / safe_nk.unsqueeze(-1)
    means = torch.where(alive.unsqueeze(-1), means, prev_means)
    # sqrt(gamma) * (x - mu): its Gram matrix is the weighted scatter, symmetric and PSD.
    wdiff = torch.exp(0.5 * log_resp).T.unsqueeze(-1) * (x.unsqueeze(0) - means.unsqueeze(1))
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    if ct == "full":
        covs = wdiff.transpose(1, 2) @ wdiff / safe_nk.reshape(-1, 1, 1) + reg_covar * eye
        covs = torch.where(alive.reshape(-1, 1, 1), covs, prev_covs)
    elif ct == "tied":
        scatter = torch.einsum("knd,kne->de", wdiff, wdiff)
        covs = scatter / nk.sum() + reg_covar * eye
    else:
        var = (wdiff**2).sum(dim=1) / safe_nk.unsqueeze(-1)  # (K, D)
        if ct == "diag":
            covs = torch.where(alive.unsqueeze(-1), var + reg_covar, prev_covs)
        else:
            covs = torch.where(alive, var.mean(dim=-1) + reg_covar, prev_covs)
    return weights, means, covs


def _data_covariance(x: Tensor, ct: str) -> Tensor:
    """Population covariance of ``x`` projected on the covariance type, without a K axis:
    (D, D) for full/tied, (D,) for diag, () for spherical."""
    xc = x - x.mean(dim=0)
    cov = xc.T @ xc / x.shape[0]
    if ct in ("full", "tied"):
        return cov
    var = torch.diagonal(cov)
    return var if ct == "diag" else var.mean()


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class GaussianMixture:
    """A finite mixture of multivariate Gaussians, ``p(x) = sum_k pi_k N(x; mu_k, Sigma_k)``.

    Immutable: the parameters are validated once at construction (no renormalisation, no
    symmetrisation) and the Cholesky factors cached.

    Parameters
    ----------
    weights : Tensor, shape (K,)
        Mixing proportions ``pi_k``: non-negative, summing to 1 within 1e-6.
    means : Tensor, shape (K, D)
        Component means ``mu_k``.
    covariances : Tensor
        Shape (K, D, D) for ``"full"``, (K, D) variances for ``"diag"``, (K,) variances for
        ``"spherical"``, (D, D) shared by all components for ``"tied"``; positive definite.
        In the 1-D textbook notation these are ``sigma_k^2`` (variances, not ``sigma_k``).
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"

    Raises
    ------
    ShapeError, NonFiniteError, NormalisationError, ValidationError
        For inconsistent shapes, non-finite values, weights that do not sum to one, negative
        weights, or covariances that are not symmetric positive definite.

    Examples
    --------
    >>> import torch
    >>> from pgm.learning.gmm import GaussianMixture
    >>> m = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0], [2.0]]),
    ...                     torch.tensor([0.25, 1.0]), "spherical")
    >>> m.log_prob(torch.tensor([0.0, 2.0])).shape
    torch.Size([2])
    """

    __slots__ = ("_covariance_type", "_covariances", "_means", "_scale", "_weights")

    def __init__(
        self,
        weights: Tensor,
        means: Tensor,
        covariances: Tensor,
        covariance_type: CovarianceType = "full",
    ) -> None:
        ct = _check_cov_type(covariance_type)
        for name, t in (("weights", weights), ("means", means), ("covariances", covariances)):
            if not isinstance(t, Tensor):
                raise ValidationError(name, "must be a torch.Tensor", found=type(t).__name__)
        _, dtype = common_device_dtype(
            [weights, means, covariances], names=["weights", "means", "covariances"]
        )
        _check_float_dtype(dtype, "weights")
        if weights.dim() != 1 or weights.shape[0] < 1:
            raise ShapeError("weights", "must have shape (K,) with K >= 1",
                             found=tuple(weights.shape))
        k = weights.shape[0]
        if means.dim() != 2 or means.shape[0] != k or means.shape[1] < 1:
            raise ShapeError(
                "means", f"must have shape (K, D) with K={k} like weights",
                found=tuple(means.shape),
            )
        d = means.shape[1]
        expected = _cov_shape(ct, k, d)
        if tuple(covariances.shape) != expected:
            raise ShapeError(
                "covariances", f"must have shape {expected} for covariance_type={ct!r} "
                f"with K={k}, D={d}", found=tuple(covariances.shape),
            )
        for name, t in (("weights", weights), ("means", means), ("covariances", covariances)):
            if not bool(torch.isfinite(t).all()):
                raise NonFiniteError(name, "must be finite", found=t)
        if bool((weights < 0).any()):
            raise ValidationError(
                "weights", "must be non-negative", found=f"min {float(weights.min())!r}"
            )
        total = float(weights.sum())
        if abs(total - 1.0) > _WEIGHT_TOL:
            raise NormalisationError(
                "weights", f"must sum to 1 within {_WEIGHT_TOL:g}", found=f"sum {total!r}",
                fix="divide by their sum before constructing the model",
            )
        if ct in ("full", "tied"):
            asym = float((covariances - covariances.transpose(-1, -2)).abs().max())
            tol = max(1e-8, 1e3 * torch.finfo(dtype).eps) * float(covariances.abs().max())
            if asym > tol:
                raise ValidationError(
                    "covariances", "must be symmetric", found=f"max |C - C^T| = {asym:.3g}"
                )
        self._scale = _scale(covariances, ct, in_fit=False)
        self._weights = weights
        self._means = means
        self._covariances = covariances
        self._covariance_type = ct

    # -- parameters -------------------------------------------------------------------------

    @property
    def weights(self) -> Tensor:
        """Mixing proportions, shape (K,)."""
        return self._weights

    @property
    def means(self) -> Tensor:
        """Component means, shape (K, D)."""
        return self._means

    @property
    def covariances(self) -> Tensor:
        """Covariances in the storage shape of :attr:`covariance_type`."""
        return self._covariances

    @property
    def covariance_type(self) -> str:
        """One of ``"full"``, ``"diag"``, ``"spherical"``, ``"tied"``."""
        return self._covariance_type

    @property
    def n_components(self) -> int:
        """K."""
        return int(self._weights.shape[0])

    @property
    def n_features(self) -> int:
        """D."""
        return int(self._means.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self._weights.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters."""
        return self._weights.dtype

    @property
    def covariance_matrices(self) -> Tensor:
        """Every component's full covariance matrix, shape (K, D, D), whatever the type."""
        k, d = self.n_components, self.n_features
        c, ct = self._covariances, self._covariance_type
        if ct == "full":
            return c
        if ct == "tied":
            return c.expand(k, d, d)
        eye = torch.eye(d, dtype=c.dtype, device=c.device)
        return torch.diag_embed(c) if ct == "diag" else c.reshape(k, 1, 1) * eye

    @property
    def variances(self) -> Tensor:
        """Per-component, per-dimension variances (diagonal of each covariance), shape (K, D).

        In one dimension ``variances.sqrt().squeeze(-1)`` is the textbook's ``sigma_k``.
        """
        return torch.diagonal(self.covariance_matrices, dim1=-2, dim2=-1)

    @property
    def n_parameters(self) -> int:
        """Free parameters: ``K - 1`` weights, ``K D`` means and the covariance entries."""
        k, d, ct = self.n_components, self.n_features, self._covariance_type
        cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
               "tied": d * (d + 1) // 2}[ct]
        return (k - 1) + k * d + cov

    # -- densities --------------------------------------------------------------------------

    def log_joint(self, x: Tensor) -> Tensor:
        """``log pi_k + log N(x_n; mu_k, Sigma_k)``.

        Parameters
        ----------
        x : Tensor, shape (N, D), or (N,) when D = 1
            Same device and dtype as the model.

        Returns
        -------
        Tensor, shape (N, K)
        """
        x = _check_model_input(x, self.device, self.dtype, self.n_features)
        return self._log_joint(x)

    def _log_joint(self, x: Tensor) -> Tensor:
        log_gauss = _log_gaussian(x, self._means, self._scale, self._covariance_type)
        return safe_log(self._weights) + log_gauss

    def log_prob(self, x: Tensor) -> Tensor:
        """Log marginal density ``log p(x_n) = logsumexp_k log_joint`` (11.55), shape (N,).

        Parameters
        ----------
        x : Tensor, shape (N, D), or (N,) when D = 1
        """
        return logsumexp(self.log_joint(x), dim=-1)

    def log_responsibilities(self, x: Tensor) -> Tensor:
        """Log posteriors ``log p(z_n = k | x_n)`` (11.58), shape (N, K); rows logsumexp to 0.

        Parameters
        ----------
        x : Tensor, shape (N, D), or (N,) when D = 1
        """
        return _normalise_log_rows(self.log_joint(x))[1]

    def predict(self, x: Tensor) -> Tensor:
        """Most probable component of each point, shape (N,), dtype long."""
        return self.log_joint(x).argmax(dim=-1)

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: ``z ~ Categorical(pi)``, then ``x ~ N(mu_z, Sigma_z)``.

        Parameters
        ----------
        n : int
            Number of draws (>= 0).
        generator : torch.Generator, optional
            Source of randomness, on the model's device; the global RNG if None. The components
            are drawn first, then the standard normals.

        Returns
        -------
        x : Tensor, shape (n, D)
        z : Tensor, shape (n,), dtype long
        """
        n = _check_int(n, "n", 0)
        check_generator(generator, self.device)
        d = self.n_features
        if n == 0:
            return (torch.empty(0, d, dtype=self.dtype, device=self.device),
                    torch.empty(0, dtype=torch.long, device=self.device))
        z = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        eps = normal((n, d), generator=generator, dtype=self.dtype, device=self.device)
        ct, s = self._covariance_type, self._scale
        if ct == "full":
            noise = (s[z] @ eps.unsqueeze(-1)).squeeze(-1)
        elif ct == "tied":
            noise = eps @ s.T
        elif ct == "diag":
            noise = s[z] * eps
        else:
            noise = s[z].unsqueeze(-1) * eps
        return self._means[z] + noise, z

    def bic(self, x: Tensor) -> float:
        """Bayesian information criterion ``-2 sum_n log p(x_n) + n_parameters log N``."""
        ll = self.log_prob(x)
        return float(-2.0 * ll.sum()) + self.n_parameters * math.log(ll.shape[0])

    def aic(self, x: Tensor) -> float:
        """Akaike information criterion ``-2 sum_n log p(x_n) + 2 n_parameters``."""
        return float(-2.0 * self.log_prob(x).sum()) + 2.0 * self.n_parameters

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(n_components={self.n_components}, n_features={self.n_features}, "
            f"covariance_type={self._covariance_type!r}, dtype={self.dtype}, "
            f"device={self.device})"
        )


def gmm_elbo(model: GaussianMixture, x: Tensor, log_q: Tensor) -> Tensor:
    """Evidence lower bound per data point for an arbitrary posterior guess ``q`` (11.43).

    ``ELBO_n(q) = sum_k q_nk (log p(x_n, z=k) - log q_nk)``, so that
    ``log p(x_n) = ELBO_n(q) + KL(q_n || p(z | x_n))`` (11.49) with equality of the bound iff
    ``q_n`` is the posterior (Exercise 11-4).

    Parameters
    ----------
    model : GaussianMixture
    x : Tensor, shape (N, D), or (N,) when D = 1
    log_q : Tensor, shape (N, K)
        Log of a distribution over components for each point (rows logsumexp to 0; ``-inf``
        allowed, with ``0 log 0 = 0``).

    Returns
    -------
    Tensor, shape (N,)

    Examples
    --------
    >>> import torch
    >>> from pgm.learning.gmm import GaussianMixture, gmm_elbo
    >>> m = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[0.0], [1.0]]),
    ...                     torch.tensor([1.0, 1.0]), "spherical")
    >>> x = torch.tensor([0.2, 0.9])
    >>> bool(torch.allclose(gmm_elbo(m, x, m.log_responsibilities(x)), m.log_prob(x)))
    True
    """
    log_joint = model.log_joint(x)
    log_q = _check_log_q(log_q, log_joint, model.n_components)
    return _elbo(log_joint, log_q)
