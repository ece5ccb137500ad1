"""Gaussian mixture models fitted by expectation-maximisation (textbook 11.2.2.2, Algorithm 11.1).

The model is ``p(x) = sum_k pi_k N(x; mu_k, Sigma_k)`` (11.53) with a latent component
``z in {0..K-1}``. EM alternates

* **E-step** (11.58): log responsibilities ``log gamma_nk = log pi_k + log N(x_n; mu_k, Sigma_k)
  - logsumexp_j(...)``, computed with :func:`probforge.ops.logsumexp`;
* **M-step** (11.63-11.66): ``N_k = sum_n gamma_nk``, ``pi_k = N_k / N``,
  ``mu_k = sum_n gamma_nk x_n / N_k``, ``Sigma_k = sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T / N_k
  + reg_covar * I``,

until the total log marginal likelihood ``sum_n log p(x_n)`` stops improving (monitored, and
asserted non-decreasing, by :class:`~pgm.learning.em_monitor.EMMonitor`). In one dimension with
``init="random"`` this is Algorithm 11.1 exactly; note the seed's erratum: the textbook's
``sigma_k`` is a standard deviation and the M-step (11.65) computes the *variance*
``sigma_k^2``, which is what ``covariances`` holds here (take a square root for ``sigma_k``).

Covariance types follow scikit-learn's shapes: ``"full"`` (K, D, D), ``"diag"`` (K, D),
``"spherical"`` (K,) and ``"tied"`` (D, D). Everything is vectorised over data points and
components, and tensors stay on the device and dtype of the data.

Degenerate and empty components
-------------------------------
``reg_covar`` (default 1e-6) is added to the diagonal of every covariance in every M-step, which
keeps a component that collapses onto a single point (or onto fewer than ``D + 1`` affinely
independent points) positive definite. With ``reg_covar=0`` such a collapse raises
:class:`~probforge.errors.ConvergenceError` naming the component. A component whose total
responsibility ``N_k`` falls to ``10 * eps`` or below is *empty*: its weight becomes ``N_k / N``
(essentially zero) and its mean and covariance keep their previous values instead of the
undefined ``0 / 0``.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from pgm.learning.gmm_fit import fit_gmm
>>> g = make_generator(0)
>>> x = torch.cat([torch.randn(200, generator=g, dtype=torch.float64) - 3,
...                torch.randn(300, generator=g, dtype=torch.float64) + 3])
>>> res = fit_gmm(x, 2, generator=g)
>>> res.model.means.squeeze(-1).sort().values.round(decimals=1)
tensor([-3.,  3.], dtype=torch.float64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from pgm.learning._mixture_common import (
    _check_data,
    _check_float_dtype,
    _check_int,
    _check_n_components,
    _check_nonneg_float,
    _decrease_rtol,
    _kmeans,
    _normalise_log_rows,
)
from pgm.learning.em_monitor import EMMonitor
from pgm.learning.gmm import (
    CovarianceType,
    GaussianMixture,
    _check_cov_type,
    _cov_shape,
    _data_covariance,
    _log_gaussian,
    _m_step,
    _scale,
)
from probforge.errors import NonFiniteError, ValidationError
from probforge.ops.device import common_device_dtype
from probforge.ops.random import check_generator, split, uniform
from probforge.ops.special import safe_log

__all__ = ["GMMFitResult", "fit_gmm"]



@dataclass(frozen=True)
class GMMFitResult:
    """Outcome of :func:`fit_gmm`.

    Attributes
    ----------
    model : GaussianMixture
        The fitted model (the parameters whose log-likelihood is ``history[-1]``).
    history : list of float
        Total log marginal likelihood ``sum_n log p(x_n)`` of the initial parameters and after
        each EM iteration; non-decreasing.
    converged : bool
        Whether the last improvement per data point fell below ``tol``.
    n_iter : int
        Number of EM iterations performed (``len(history) - 1``).
    """

    model: GaussianMixture
    history: list[float] = field(repr=False)
    converged: bool
    n_iter: int

    @property
    def log_likelihood(self) -> float:
        """Total log marginal likelihood of :attr:`model` on the training data."""
        return self.history[-1]


def _init_random(
    x: Tensor, k: int, ct: str, reg_covar: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Algorithm 11.1 step 1, "initialise pi, mu, sigma at random", generalised to D dims.

    ``pi ∝ U(0.5, 1.5)``; ``mu_k`` = ``K`` distinct data points drawn uniformly; each covariance
    is the data covariance (projected on the type) times ``U(0.5, 1.5)``, plus ``reg_covar``.
    """
    n, d = x.shape
    dt, dev = x.dtype, x.device
    w = 0.5 + uniform((k,), generator=generator, dtype=dt, device=dev)
    weights = w / w.sum()
    idx = torch.randperm(n, generator=generator, device=dev)[:k]
    means = x[idx]
    base = _data_covariance(x, ct)
    eye = torch.eye(d, dtype=dt, device=dev)
    if ct == "tied":
        s = 0.5 + uniform((), generator=generator, dtype=dt, device=dev)
        return weights, means, s * base + reg_covar * eye
    s = 0.5 + uniform((k,), generator=generator, dtype=dt, device=dev)
    if ct == "full":
        covs = s.reshape(k, 1, 1) * base + reg_covar * eye
    elif ct == "diag":
        covs = s.unsqueeze(-1) * base + reg_covar
    else:
        covs = s * base + reg_covar
    return weights, means, covs


def _init_kmeans(
    x: Tensor, k: int, ct: str, reg_covar: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """k-means++ / Lloyd hard assignment, then one M-step on the one-hot responsibilities.

    A cluster left empty by Lloyd keeps its centre and the data covariance, with weight as if it
    held one point (so that EM can still revive it).
    """
    labels = _kmeans(x, k, generator)
    onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
    counts = onehot.sum(dim=0)
    prev_means = (onehot.T @ x) / counts.clamp_min(1).unsqueeze(-1)
    base = _data_covariance(x, ct)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    if ct in ("full", "tied"):
        base = base + reg_covar * eye
        prev_covs = base if ct == "tied" else base.expand(k, -1, -1)
    else:
        prev_covs = (base + reg_covar).expand(_cov_shape(ct, k, x.shape[1]))
    _, means, covs = _m_step(x, safe_log(onehot), ct, reg_covar, prev_means, prev_covs)
    w = counts.clamp_min(1)
    return w / w.sum(), means, covs


def _run_em(
    x: Tensor,
    weights: Tensor,
    means: Tensor,
    covs: Tensor,
    ct: str,
    *,
    reg_covar: float,
    max_iter: int,
    tol: float,
) -> GMMFitResult:
    n = x.shape[0]
    monitor = EMMonitor(
        tol=tol * n, max_iter=max_iter, decrease_rtol=_decrease_rtol(x.dtype), name="fit_gmm"
    )
    scale = _scale(covs, ct, in_fit=True, reg_covar=reg_covar)
    log_norm, log_resp = _normalise_log_rows(
        safe_log(weights) + _log_gaussian(x, means, scale, ct)
    )
    monitor.update(log_norm.sum())
    while not monitor.done:
        weights, means, covs = _m_step(x, log_resp, ct, reg_covar, means, covs)
        scale = _scale(covs, ct, in_fit=True, reg_covar=reg_covar)
        log_norm, log_resp = _normalise_log_rows(
            safe_log(weights) + _log_gaussian(x, means, scale, ct)
        )
        monitor.update(log_norm.sum())
    model = GaussianMixture(weights, means, covs, ct)  # type: ignore[arg-type]
    return GMMFitResult(model, list(monitor.history), monitor.converged, monitor.n_iter)


def fit_gmm(
    x: Tensor,
    n_components: int,
    *,
    covariance_type: CovarianceType = "full",
    init: Literal["kmeans", "random"] | GaussianMixture = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    generator: torch.Generator | None = None,
    n_init: int = 1,
) -> GMMFitResult:
    """Fit a Gaussian mixture by EM (Algorithm 11.1, generalised to D dimensions).

    Parameters
    ----------
    x : Tensor, shape (N, D), or (N,) for one-dimensional data
        float32 or float64; results live on ``x``'s device with ``x``'s dtype. Not modified.
    n_components : int
        K, with ``1 <= K <= N``.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
    init : "kmeans", "random" or GaussianMixture, default "kmeans"
        ``"kmeans"``: k-means++ seeding and Lloyd iterations, then an M-step on the hard
        assignments. ``"random"``: Algorithm 11.1's random initialisation (random weights, K
        distinct data points as means, randomly scaled data covariance). A
        :class:`GaussianMixture` with the same K, D, covariance type, device and dtype: start
        from its parameters (then ``n_init`` must be 1 and no randomness is used).
    max_iter : int, default 100
        Maximum number of EM iterations (0 returns the initial model).
    tol : float, default 1e-3
        Stop when the total log-likelihood improves by less than ``tol * N`` (i.e. ``tol`` per
        data point, scikit-learn's convention).
    reg_covar : float, default 1e-6
        Added to the covariance diagonals in every M-step (see the module notes on degenerate
        components).
    generator : torch.Generator, optional
        The only source of randomness (initialisation); on ``x``'s device. The global RNG is
        used only when it is None.
    n_init : int, default 1
        Number of initialisations (child generators from :func:`probforge.ops.random.split`);
        the fit with the highest final log-likelihood is returned.

    Returns
    -------
    GMMFitResult
        ``model``, ``history`` (total log-likelihood per iteration), ``converged``, ``n_iter``.

    Raises
    ------
    NonFiniteError
        If ``x`` has NaN or inf, or values so large that sums of squares overflow its dtype.
    ValidationError
        For a bad argument (``n_components > N``, unknown ``covariance_type``, ...).
    ConvergenceError
        If a covariance loses positive definiteness (``reg_covar`` too small) or the
        log-likelihood decreases (a bug).

    Examples
    --------
    >>> import torch
    >>> from probforge.ops.random import make_generator
    >>> from pgm.learning.gmm_fit import fit_gmm
    >>> g = make_generator(1)
    >>> x = torch.randn(300, 2, generator=g, dtype=torch.float64)
    >>> res = fit_gmm(x, 2, covariance_type="diag", generator=g)
    >>> res.model.means.shape, res.history[-1] >= res.history[0]
    (torch.Size([2, 2]), True)
    """
    x = _check_data(x)
    _check_float_dtype(x.dtype, "x")
    n, d = x.shape
    # Every step sums N squared deviations over D dimensions: data whose scale makes that
    # overflow the dtype would turn the fit into inf / NaN (one host read, at entry only).
    top = float(x.abs().max())
    if top > 0 and 2.0 * math.log(top) + math.log(n * d) >= math.log(torch.finfo(x.dtype).max):
        raise NonFiniteError(
            "x", f"values up to {top:.3g} are too large for {x.dtype}: sums of squared "
            "deviations would overflow", found=top,
            fix="standardise the data (subtract the mean, divide by the scale)"
            + (" or use float64" if x.dtype != torch.float64 else ""))
    k = _check_n_components(n_components, n)
    ct = _check_cov_type(covariance_type)
    max_iter = _check_int(max_iter, "max_iter", 0)
    tol = _check_nonneg_float(tol, "tol")
    reg_covar = _check_nonneg_float(reg_covar, "reg_covar")
    n_init = _check_int(n_init, "n_init", 1)
    check_generator(generator, x.device)

    if isinstance(init, GaussianMixture):
        if n_init != 1:
            raise ValidationError(
                "n_init", "must be 1 when init is a GaussianMixture (every run would be the same)",
                found=n_init,
            )
        if (init.n_components, init.n_features, init.covariance_type) != (k, d, ct):
            raise ValidationError(
                "init",
                f"must have n_components={k}, n_features={d}, covariance_type={ct!r}",
                found=f"({init.n_components}, {init.n_features}, {init.covariance_type!r})",
            )
        common_device_dtype([x, init.weights], names=["x", "init"])
        starts = [(init.weights, init.means, init.covariances)]
    elif init in ("kmeans", "random"):
        initialise = _init_kmeans if init == "kmeans" else _init_random
        starts = [initialise(x, k, ct, reg_covar, g) for g in split(generator, n_init)]
    else:
        raise ValidationError(
            "init", "must be 'kmeans', 'random' or a GaussianMixture", found=repr(init)
        )

    best: GMMFitResult | None = None
    for w0, m0, c0 in starts:
        res = _run_em(x, w0, m0, c0, ct, reg_covar=reg_covar, max_iter=max_iter, tol=tol)
        if best is None or res.log_likelihood > best.log_likelihood:
            best = res
    assert best is not None
    return best
