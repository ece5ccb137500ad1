"""Gaussian emissions (full, diagonal, spherical and tied covariances) with hmmlearn's priors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops.native import enabled as native_enabled
from probforge.ops.native import n_threads
from probforge.ops.random import check_generator
from probforge.validate import check_real, check_tensor

from ._base import (
    _COV_TYPES,
    _LOG_2PI,
    Emission,
    _check_init_method,
    _kmeans_labels,
    check_prior_field,
)


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

    def __post_init__(self) -> None:
        check_prior_field(self.means_prior, "GaussianPrior: means_prior")
        check_prior_field(self.means_weight, "GaussianPrior: means_weight", minimum=0.0)
        # a tensor covars_prior may be a full matrix Psi (negative off-diagonal entries)
        check_prior_field(self.covars_prior, "GaussianPrior: covars_prior",
                          minimum=None if isinstance(self.covars_prior, Tensor) else 0.0)
        check_prior_field(self.covars_weight, "GaussianPrior: covars_weight")
        check_prior_field(self.min_covar, "GaussianPrior: min_covar", minimum=0.0)


def _diag_log_density_native(em: GaussianEmission, x: Tensor) -> Tensor:
    """:meth:`GaussianEmission.log_prob` (diag / spherical) by the compiled kernel."""
    from pgm.hmm.emissions import _gaussian_kernel

    kernel: Any = _gaussian_kernel.diag_log_density  # a numba dispatcher

    K, D = em.means.shape
    # the kernel's parameter layout, rebuilt if a parameter was replaced or changed in place
    # (the key holds the tensors themselves, so their ids cannot be reused meanwhile)
    key = (em.means, em.means._version, em.covars, em.covars._version)
    old = em._native_key
    if old is None or not (old[0] is key[0] and old[2] is key[2] and old[1] == key[1]
                           and old[3] == key[3]):
        var = em.variances()
        em._native_params = (em.means.t().contiguous().numpy(),
                             (0.5 / var).t().contiguous().numpy(),
                             (-0.5 * (D * _LOG_2PI + var.log().sum(-1))).numpy())
        em._native_key = key
    flat = x.reshape(-1, D).contiguous()
    out = torch.empty(flat.shape[0], K, dtype=em.means.dtype)
    n_blocks = max(1, min(n_threads(), flat.shape[0] // 512))
    kernel(flat.numpy(), *em._native_params, out.numpy(), n_blocks)
    return out.reshape(*x.shape[:-1], K)


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

    fresh_log_prob: ClassVar[bool] = True

    def __init__(
        self,
        means: Tensor,
        covars: Tensor,
        covariance_type: str = "diag",
        *,
        validate: bool = True,
    ) -> None:
        if not isinstance(covariance_type, str) or covariance_type not in _COV_TYPES:
            raise ValidationError(
                "GaussianEmission: covariance_type", f"must be one of {_COV_TYPES}",
                found=repr(covariance_type),
            )
        check_tensor(means, "GaussianEmission: means")
        check_tensor(covars, "GaussianEmission: covars", floating=True)
        if means.dim() != 2 or not means.is_floating_point() or 0 in means.shape:
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
        self._native_key: tuple[Tensor, int, Tensor, int] | None = None
        self._native_params: tuple[Any, ...] = ()
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

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        D = self.n_features
        if x.dim() < 1 or x.shape[-1] != D:
            fix = None
            if D == 1:
                fix = "a series of scalars of shape (T,) needs a feature axis: pass " \
                    "x.unsqueeze(-1), shape (T, 1)"
            raise ShapeError("GaussianEmission: observations",
                             f"must have shape (..., D) with D = {D} features",
                             found=tuple(x.shape), fix=fix)
        if not x.is_floating_point():
            raise DtypeMismatchError("GaussianEmission: observations",
                                     "must be a floating-point tensor (integers are not cast)",
                                     found=x.dtype, fix="convert with x.double()")

    def log_prob(self, x: Tensor) -> Tensor:
        """``log N(x_t | mean_k, cov_k)`` of observations ``(..., D)`` -> ``(..., K)``.

        Raises
        ------
        ShapeError, DtypeMismatchError, NonFiniteError
            For a last dimension other than ``D``, an integer tensor, NaN or inf.
        """
        self._validate_obs(x)
        x = x.to(self.dtype)
        D = self.n_features
        if self.covariance_type in ("diag", "spherical"):
            var = self.variances()  # (K, D)
            if native_enabled(x, self.means, var):
                return _diag_log_density_native(self, x)
            # sum_d (x_d - mu_kd)^2 / var_kd expanded into two (N, D) @ (D, K) products, as
            # scikit-learn and hmmlearn do, instead of an (N, K, D) difference tensor; both
            # sides are centred first so that data far from the origin loses no precision.
            centre = self.means.mean(0)
            xc = (x - centre).reshape(-1, D)
            mc = self.means - centre
            prec = 1.0 / var
            const = -0.5 * (D * _LOG_2PI + var.log().sum(-1) + (mc * mc * prec).sum(-1))  # (K,)
            out = torch.addmm(const, xc * xc, prec.t(), alpha=-0.5)  # fused (N, K) passes
            out.addmm_(xc, (mc * prec).t())
            res_d: Tensor = out.reshape(*x.shape[:-1], self.n_states)
            return res_d
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
        self._check_m_step(x, weights, prior, GaussianPrior, "GaussianEmission.m_step")
        prior = prior if prior is not None else GaussianPrior()
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
        self._check_states(states, "GaussianEmission.sample: states")
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
        plus ``min_covar * I`` for every state (as hmmlearn).

        ``x`` is (N, D): at least one finite observation (float; integers are refused). Unknown
        keyword arguments are refused.
        """
        subject = "GaussianEmission.init"
        n_states = cls._init_checks(x, n_states, kwargs)
        _check_init_method(method, subject)
        if not isinstance(covariance_type, str) or covariance_type not in _COV_TYPES:
            raise ValidationError(f"{subject}: covariance_type", f"must be one of {_COV_TYPES}",
                                  found=repr(covariance_type))
        min_covar = check_real(min_covar, f"{subject}: min_covar", minimum=0.0)
        check_tensor(x, f"{subject}: x", floating=True, finite=True)
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
