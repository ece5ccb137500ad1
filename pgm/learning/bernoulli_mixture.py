"""Mixtures of multivariate Bernoulli distributions fitted by EM (textbook Exercise 11-6).

The model for binary vectors ``x in {0, 1}^D`` is
``p(x) = sum_k pi_k prod_d mu_kd^x_d (1 - mu_kd)^(1 - x_d)``.

Derivation of the updates (Exercise 11-6). With responsibilities ``gamma_nk = p(z_n = k | x_n)``
the ELBO (11.43) is, up to the entropy of ``gamma`` which does not involve the parameters,

``sum_n sum_k gamma_nk [log pi_k + sum_d (x_nd log mu_kd + (1 - x_nd) log(1 - mu_kd))]``.

* **E-step**: ``log gamma_nk = log pi_k + sum_d [x_nd log mu_kd + (1 - x_nd) log(1 - mu_kd)]
  - logsumexp_j(...)``, as for the GMM (11.58).
* **M-step**: the Lagrangian for ``sum_k pi_k = 1`` gives ``pi_k = N_k / N`` with
  ``N_k = sum_n gamma_nk``, exactly as (11.63). Setting the derivative in ``mu_kd`` to zero,
  ``sum_n gamma_nk (x_nd / mu_kd - (1 - x_nd) / (1 - mu_kd)) = 0``, gives
  ``mu_kd = sum_n gamma_nk x_nd / N_k``.
* **MAP with a Beta(a, b) prior** on every ``mu_kd`` adds ``(a - 1) log mu_kd + (b - 1)
  log(1 - mu_kd)`` to the objective, so ``mu_kd = (sum_n gamma_nk x_nd + a - 1) /
  (N_k + a + b - 2)``: ``a - 1`` and ``b - 1`` act as pseudo-counts of ones and zeros and keep
  ``mu`` strictly inside (0, 1) when ``a, b > 1``. EM then never decreases the log posterior
  (log-likelihood plus log prior), which is what the history records.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from pgm.learning.bernoulli_mixture import BernoulliMixture, fit_bernoulli_mixture
>>> g = make_generator(0)
>>> truth = BernoulliMixture(torch.tensor([0.5, 0.5], dtype=torch.float64),
...                          torch.tensor([[0.9] * 6 + [0.1] * 6, [0.1] * 6 + [0.9] * 6],
...                                       dtype=torch.float64))
>>> x, z = truth.sample(500, generator=g)
>>> res = fit_bernoulli_mixture(x, 2, beta_prior=(2.0, 2.0), generator=g)
>>> res.model.probs.shape
torch.Size([2, 12])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from pgm.learning._mixture_common import (
    _check_float_dtype,
    _check_int,
    _check_log_q,
    _check_n_components,
    _check_nonneg_float,
    _decrease_rtol,
    _elbo,
    _empty_threshold,
    _kmeans,
    _normalise_log_rows,
)
from pgm.learning.em_monitor import EMMonitor
from probforge.errors import (
    DeviceMismatchError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.device import common_device_dtype
from probforge.ops.random import check_generator, split, uniform
from probforge.ops.special import logsumexp, safe_log

__all__ = [
    "BernoulliMixture",
    "BernoulliMixtureFitResult",
    "bernoulli_mixture_elbo",
    "fit_bernoulli_mixture",
]

_WEIGHT_TOL = 1e-6


def _check_binary(x: object, subject: str = "x") -> Tensor:
    """``x`` as an (N, D) tensor of 0/1 values, shape (N, D) or (N,) (D = 1)."""
    if not isinstance(x, Tensor):
        raise ValidationError(subject, "must be a torch.Tensor", found=type(x).__name__)
    if x.dim() == 1:
        x = x.unsqueeze(-1)
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ShapeError(
            subject, "must have shape (N, D) with N, D >= 1, or (N,) for one dimension",
            found=tuple(x.shape),
        )
    if x.is_complex():
        raise ValidationError(subject, "must be real binary data", found=x.dtype)
    if x.dtype != torch.bool:
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            idx = tuple(int(i) for i in (~torch.isfinite(x)).nonzero()[0])
            raise NonFiniteError(
                subject, f"has a non-finite entry at index {idx}", found=float(x[idx])
            )
        bad = (x != 0) & (x != 1)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise ValidationError(
                subject,
                f"must be binary (every entry 0 or 1); entry {idx} is not",
                found=x[idx].item(),
                fix="threshold or binarise the data first",
            )
    return x


def _as_float(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)


def _bernoulli_log_lik(x: Tensor, probs: Tensor) -> Tensor:
    """``sum_d x_nd log mu_kd + (1 - x_nd) log(1 - mu_kd)``, shape (N, K), exact at mu in {0,1}.

    Two matmuls on finite logs, then ``-inf`` wherever a point has a 1 where ``mu = 0`` or a 0
    where ``mu = 1`` (``0 * log 0 = 0`` without any NaN).
    """
    zero, one = probs == 0, probs == 1
    log_mu = torch.where(zero, torch.zeros_like(probs), safe_log(probs))
    log_1m = torch.where(one, torch.zeros_like(probs), torch.log1p(-probs))
    x1m = 1.0 - x
    ll = x @ log_mu.T + x1m @ log_1m.T
    impossible = (x @ zero.to(x.dtype).T + x1m @ one.to(x.dtype).T) > 0
    return torch.where(impossible, torch.full_like(ll, -math.inf), ll)


class BernoulliMixture:
    """A mixture of independent-Bernoulli components for binary vectors.

    Immutable; validated at construction (no renormalisation, no clipping).

    Parameters
    ----------
    weights : Tensor, shape (K,)
        Mixing proportions ``pi_k``: non-negative, summing to 1 within 1e-6.
    probs : Tensor, shape (K, D)
        ``mu_kd = p(x_d = 1 | z = k)`` in [0, 1] (0 and 1 allowed: they give ``-inf``
        log-probability to points that contradict them).

    Examples
    --------
    >>> import torch
    >>> from pgm.learning.bernoulli_mixture import BernoulliMixture
    >>> m = BernoulliMixture(torch.tensor([0.4, 0.6]), torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    >>> m.log_prob(torch.tensor([[1, 0], [0, 1]])).exp()
    tensor([0.3480, 0.3880])
    """

    __slots__ = ("_probs", "_weights")

    def __init__(self, weights: Tensor, probs: Tensor) -> None:
        for name, t in (("weights", weights), ("probs", probs)):
            if not isinstance(t, Tensor):
                raise ValidationError(name, "must be a torch.Tensor", found=type(t).__name__)
        _, dtype = common_device_dtype([weights, probs], names=["weights", "probs"])
        _check_float_dtype(dtype, "weights")
        if weights.dim() != 1 or weights.shape[0] < 1:
            raise ShapeError("weights", "must have shape (K,) with K >= 1",
                             found=tuple(weights.shape))
        k = weights.shape[0]
        if probs.dim() != 2 or probs.shape[0] != k or probs.shape[1] < 1:
            raise ShapeError(
                "probs", f"must have shape (K, D) with K={k} like weights",
                found=tuple(probs.shape),
            )
        for name, t in (("weights", weights), ("probs", probs)):
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
        if bool(((probs < 0) | (probs > 1)).any()):
            bad = ((probs < 0) | (probs > 1)).nonzero()[0]
            raise ValidationError(
                "probs", f"must lie in [0, 1]; entry {tuple(int(i) for i in bad)} does not",
                found=float(probs[tuple(bad)]),
            )
        self._weights = weights
        self._probs = probs

    @property
    def weights(self) -> Tensor:
        """Mixing proportions, shape (K,)."""
        return self._weights

    @property
    def probs(self) -> Tensor:
        """Success probabilities ``mu_kd``, shape (K, D)."""
        return self._probs

    @property
    def n_components(self) -> int:
        """K."""
        return int(self._weights.shape[0])

    @property
    def n_features(self) -> int:
        """D."""
        return int(self._probs.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self._weights.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters."""
        return self._weights.dtype

    @property
    def n_parameters(self) -> int:
        """Free parameters: ``K - 1 + K D``."""
        return self.n_components - 1 + self.n_components * self.n_features

    def _input(self, x: Tensor) -> Tensor:
        x = _check_binary(x)
        if x.device != self.device:
            raise DeviceMismatchError(
                "x", f"is on {x.device} but the model is on {self.device}",
                fix="move x with x.to(device)",
            )
        if x.shape[1] != self.n_features:
            raise ShapeError("x", f"must have shape (N, {self.n_features})",
                             found=tuple(x.shape))
        return _as_float(x, self.dtype)

    def log_joint(self, x: Tensor) -> Tensor:
        """``log pi_k + log p(x_n | z = k)``.

        Parameters
        ----------
        x : Tensor, shape (N, D), or (N,) when D = 1
            Binary data of any dtype (bool, integer or floating 0/1; converted losslessly to
            the model's dtype) on the model's device.

        Returns
        -------
        Tensor, shape (N, K)
        """
        return safe_log(self._weights) + _bernoulli_log_lik(self._input(x), self._probs)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log marginal probability ``log p(x_n)``, shape (N,); ``-inf`` for impossible rows."""
        return logsumexp(self.log_joint(x), dim=-1)

    def log_responsibilities(self, x: Tensor) -> Tensor:
        """Log posteriors ``log p(z_n = k | x_n)``, shape (N, K).

        Raises
        ------
        ZeroProbabilityEvidence
            If some row has probability zero under the model (the posterior is undefined).
        """
        log_norm, log_resp = _normalise_log_rows(self.log_joint(x))
        _check_possible(log_norm)
        return log_resp

    def predict(self, x: Tensor) -> Tensor:
        """Most probable component of each point, shape (N,), dtype long."""
        return self.log_responsibilities(x).argmax(dim=-1)

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: ``z ~ Categorical(pi)``, then ``x_d ~ Bernoulli(mu_zd)``.

        Parameters
        ----------
        n : int
            Number of draws (>= 0).
        generator : torch.Generator, optional
            On the model's device; the global RNG if None.

        Returns
        -------
        x : Tensor, shape (n, D), the model's dtype, entries 0 or 1
        z : Tensor, shape (n,), dtype long
        """
        n = _check_int(n, "n", 0)
        check_generator(generator, self.device)
        d = self.n_features
        if n == 0:
            return (torch.empty(0, d, dtype=self.dtype, device=self.device),
                    torch.empty(0, dtype=torch.long, device=self.device))
        z = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        u = uniform((n, d), generator=generator, dtype=self.dtype, device=self.device)
        return (u < self._probs[z]).to(self.dtype), z

    def bic(self, x: Tensor) -> float:
        """Bayesian information criterion ``-2 sum_n log p(x_n) + n_parameters log N``."""
        ll = self.log_prob(x)
        return float(-2.0 * ll.sum()) + self.n_parameters * math.log(ll.shape[0])

    def aic(self, x: Tensor) -> float:
        """Akaike information criterion ``-2 sum_n log p(x_n) + 2 n_parameters``."""
        return float(-2.0 * self.log_prob(x).sum()) + 2.0 * self.n_parameters

    def __repr__(self) -> str:
        return (
            f"BernoulliMixture(n_components={self.n_components}, n_features={self.n_features}, "
            f"dtype={self.dtype}, device={self.device})"
        )


def _check_possible(log_norm: Tensor, subject: str = "x") -> None:
    impossible = log_norm == -math.inf
    if bool(impossible.any()):
        row = int(impossible.nonzero()[0])
        raise ZeroProbabilityEvidence(
            f"{subject} row {row}",
            "has probability zero under the model (a 1 where every component has mu = 0, or "
            "a 0 where mu = 1), so its posterior is undefined",
            fix="fit with beta_prior=(a, b), a, b > 1, to keep mu inside (0, 1)",
        )


def bernoulli_mixture_elbo(model: BernoulliMixture, x: Tensor, log_q: Tensor) -> Tensor:
    """Evidence lower bound per data point for an arbitrary ``q`` (11.43); shape (N,).

    ``ELBO_n(q) = sum_k q_nk (log p(x_n, z=k) - log q_nk)``; ``log p(x_n) = ELBO_n(q) +
    KL(q_n || p(z | x_n))`` (11.49).

    Parameters
    ----------
    model : BernoulliMixture
    x : Tensor, shape (N, D)
        Binary data.
    log_q : Tensor, shape (N, K)
        Rows are normalised log-distributions over components, model's dtype and device.

    Examples
    --------
    >>> import torch
    >>> from pgm.learning.bernoulli_mixture import BernoulliMixture, bernoulli_mixture_elbo
    >>> m = BernoulliMixture(torch.tensor([0.5, 0.5]), torch.tensor([[0.9], [0.2]]))
    >>> x = torch.tensor([[1.0], [0.0]])
    >>> bool(torch.allclose(bernoulli_mixture_elbo(m, x, m.log_responsibilities(x)),
    ...                     m.log_prob(x)))
    True
    """
    log_joint = model.log_joint(x)
    log_q = _check_log_q(log_q, log_joint, model.n_components)
    return _elbo(log_joint, log_q)


@dataclass(frozen=True)
class BernoulliMixtureFitResult:
    """Outcome of :func:`fit_bernoulli_mixture`.

    Attributes
    ----------
    model : BernoulliMixture
    history : list of float
        Per iteration (0 = initial parameters): the total log-likelihood, plus the unnormalised
        log prior ``sum_kd (a-1) log mu_kd + (b-1) log(1-mu_kd)`` when ``beta_prior`` is given
        (the objective MAP-EM never decreases).
    converged : bool
    n_iter : int
    """

    model: BernoulliMixture
    history: list[float] = field(repr=False)
    converged: bool
    n_iter: int

    @property
    def log_likelihood(self) -> float:
        """Final value of the objective (see :attr:`history`)."""
        return self.history[-1]


def _log_prior(probs: Tensor, prior: tuple[float, float] | None) -> Tensor:
    """Unnormalised log Beta(a, b) density summed over all ``mu_kd`` (0 without a prior)."""
    out = torch.zeros((), dtype=probs.dtype, device=probs.device)
    if prior is None:
        return out
    a, b = prior
    if a != 1.0:
        out = out + (a - 1.0) * safe_log(probs).sum()
    if b != 1.0:
        out = out + (b - 1.0) * torch.log1p(-probs).sum()
    return out


def _m_step(
    x: Tensor, log_resp: Tensor, prior: tuple[float, float] | None, prev_probs: Tensor
) -> tuple[Tensor, Tensor]:
    """``pi_k = N_k / N``; ``mu_kd = (sum_n gamma_nk x_nd + a - 1) / (N_k + a + b - 2)``."""
    a, b = prior if prior is not None else (1.0, 1.0)
    nk = torch.exp(logsumexp(log_resp, dim=0))
    weights = nk / nk.sum()
    counts = torch.exp(log_resp).T @ x  # (K, D)
    denom = nk + (a + b - 2.0)
    alive = denom > _empty_threshold(x.dtype)
    safe = torch.where(alive, denom, torch.ones_like(denom))
    probs = ((counts + (a - 1.0)) / safe.unsqueeze(-1)).clamp(0.0, 1.0)
    return weights, torch.where(alive.unsqueeze(-1), probs, prev_probs)


def _init_random(
    x: Tensor, k: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``pi ∝ U(0.5, 1.5)``, ``mu_kd ~ U(0.25, 0.75)``."""
    w = 0.5 + uniform((k,), generator=generator, dtype=x.dtype, device=x.device)
    probs = 0.25 + 0.5 * uniform(
        (k, x.shape[1]), generator=generator, dtype=x.dtype, device=x.device
    )
    return w / w.sum(), probs


def _init_kmeans(
    x: Tensor, k: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """k-means++ / Lloyd hard clusters; Laplace-smoothed frequencies ``(S + 1) / (N_k + 2)``."""
    labels = _kmeans(x, k, generator)
    onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
    counts = onehot.sum(dim=0)
    probs = (onehot.T @ x + 1.0) / (counts + 2.0).unsqueeze(-1)
    w = counts.clamp_min(1)
    return w / w.sum(), probs


def _check_prior(beta_prior: object) -> tuple[float, float] | None:
    if beta_prior is None:
        return None
    ok = (
        isinstance(beta_prior, tuple | list)
        and len(beta_prior) == 2
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            and v >= 1.0
            for v in beta_prior
        )
    )
    if not ok:
        raise ValidationError(
            "beta_prior", "must be None or a pair (a, b) of numbers >= 1 (Beta hyperparameters)",
            found=repr(beta_prior),
        )
    return float(beta_prior[0]), float(beta_prior[1])  # type: ignore[index]


def _run_em(
    x: Tensor,
    weights: Tensor,
    probs: Tensor,
    *,
    prior: tuple[float, float] | None,
    max_iter: int,
    tol: float,
) -> BernoulliMixtureFitResult:
    monitor = EMMonitor(
        tol=tol * x.shape[0], max_iter=max_iter, decrease_rtol=_decrease_rtol(x.dtype),
        name="fit_bernoulli_mixture",
    )
    log_norm, log_resp = _normalise_log_rows(safe_log(weights) + _bernoulli_log_lik(x, probs))
    _check_possible(log_norm)
    monitor.update(log_norm.sum() + _log_prior(probs, prior))
    while not monitor.done:
        weights, probs = _m_step(x, log_resp, prior, probs)
        log_norm, log_resp = _normalise_log_rows(
            safe_log(weights) + _bernoulli_log_lik(x, probs)
        )
        monitor.update(log_norm.sum() + _log_prior(probs, prior))
    return BernoulliMixtureFitResult(
        BernoulliMixture(weights, probs), list(monitor.history), monitor.converged,
        monitor.n_iter,
    )


def fit_bernoulli_mixture(
    x: Tensor,
    n_components: int,
    *,
    init: Literal["kmeans", "random"] | BernoulliMixture = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    beta_prior: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    n_init: int = 1,
) -> BernoulliMixtureFitResult:
    """Fit a Bernoulli mixture by EM (maximum likelihood, or MAP with a Beta prior).

    Parameters
    ----------
    x : Tensor, shape (N, D), or (N,) for D = 1
        Binary data (bool, integer, or float 0/1). A float32/float64 ``x`` sets the dtype of the
        result; bool or integer data is converted to float64. Not modified.
    n_components : int
        K, with ``1 <= K <= N``.
    init : "kmeans", "random" or BernoulliMixture, default "kmeans"
        ``"kmeans"``: k-means++/Lloyd clusters with Laplace-smoothed frequencies ``(S+1)/(N_k+2)``
        as ``mu``. ``"random"``: ``pi ∝ U(0.5, 1.5)``, ``mu ~ U(0.25, 0.75)``. A
        :class:`BernoulliMixture` (same K, D, device, dtype): start from it (``n_init`` must be 1).
    max_iter : int, default 100
    tol : float, default 1e-3
        Stop when the objective improves by less than ``tol * N``.
    beta_prior : (a, b), optional
        Beta(a, b) prior on every ``mu_kd`` (``a, b >= 1``): MAP updates
        ``mu_kd = (sum_n gamma_nk x_nd + a - 1) / (N_k + a + b - 2)``. With ``a, b > 1`` no
        ``mu`` reaches 0 or 1. None (default) is maximum likelihood.
    generator : torch.Generator, optional
        The only source of randomness; the global RNG only when None.
    n_init : int, default 1
        Number of initialisations; the best final objective wins.

    Returns
    -------
    BernoulliMixtureFitResult

    Raises
    ------
    ValidationError
        If ``x`` is not binary (message names the entry and its value) or an argument is bad.
    NonFiniteError
        If ``x`` has NaN or inf.
    ZeroProbabilityEvidence
        If a given ``init`` gives some row probability zero.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops.random import make_generator
    >>> from pgm.learning.bernoulli_mixture import fit_bernoulli_mixture
    >>> g = make_generator(3)
    >>> x = (torch.rand(200, 5, generator=g) < 0.3)
    >>> res = fit_bernoulli_mixture(x, 2, beta_prior=(2.0, 2.0), generator=g)
    >>> res.model.dtype, len(res.history) == res.n_iter + 1
    (torch.float64, True)
    """
    x = _check_binary(x)
    x = x if x.is_floating_point() else x.to(torch.float64)
    _check_float_dtype(x.dtype, "x")
    n, d = x.shape
    k = _check_n_components(n_components, n)
    max_iter = _check_int(max_iter, "max_iter", 0)
    tol = _check_nonneg_float(tol, "tol")
    n_init = _check_int(n_init, "n_init", 1)
    prior = _check_prior(beta_prior)
    check_generator(generator, x.device)

    if isinstance(init, BernoulliMixture):
        if n_init != 1:
            raise ValidationError(
                "n_init", "must be 1 when init is a BernoulliMixture (every run would be the "
                "same)", found=n_init,
            )
        if (init.n_components, init.n_features) != (k, d):
            raise ValidationError(
                "init", f"must have n_components={k}, n_features={d}",
                found=f"({init.n_components}, {init.n_features})",
            )
        common_device_dtype([x, init.weights], names=["x", "init"])
        starts = [(init.weights, init.probs)]
    elif init in ("kmeans", "random"):
        initialise = _init_kmeans if init == "kmeans" else _init_random
        starts = [initialise(x, k, g) for g in split(generator, n_init)]
    else:
        raise ValidationError(
            "init", "must be 'kmeans', 'random' or a BernoulliMixture", found=repr(init)
        )

    best: BernoulliMixtureFitResult | None = None
    for w0, p0 in starts:
        res = _run_em(x, w0, p0, prior=prior, max_iter=max_iter, tol=tol)
        if best is None or res.log_likelihood > best.log_likelihood:
            best = res
    assert best is not None
    return best
