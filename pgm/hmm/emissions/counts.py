"""Poisson (counts) and Bernoulli (binary vectors) emissions with their conjugate priors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from probforge.errors import (
    DtypeMismatchError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import check_generator
from probforge.validate import check_tensor

from ._base import (
    Emission,
    _check_init_method,
    _check_prob_range,
    check_prior_field,
)
from .gaussian import GaussianEmission


def _check_features(x: Tensor, D: int, family: str, what: str, allow_bool: bool = False
                    ) -> None:
    """``x`` (..., D) of a real (integer or float; bool only if allowed) dtype."""
    if x.dim() < 1 or x.shape[-1] != D:
        fix = "a series of scalars of shape (T,) needs a feature axis: pass x.unsqueeze(-1)" \
            if D == 1 else None
        raise ShapeError(f"{family}: observations", f"must have shape (..., D) with D = {D} "
                         f"{what}", found=tuple(x.shape), fix=fix)
    if x.is_complex() or (x.dtype == torch.bool and not allow_bool):
        raise DtypeMismatchError(f"{family}: observations", f"{what} must be a real tensor "
                                 "(integer or float)", found=x.dtype)


@dataclass(frozen=True)
class PoissonPrior:
    """Gamma(alpha, beta) prior on each rate: MAP ``(alpha - 1 + sum w x) / (beta + sum w)``.

    ``alpha = 1, beta = 0`` (the default) is maximum likelihood. (hmmlearn's ``lambdas_prior``
    / ``lambdas_weight`` divide by the posterior mass of all states together; this is per state.)
    """

    alpha: float | Tensor = 1.0
    beta: float | Tensor = 0.0

    def __post_init__(self) -> None:
        check_prior_field(self.alpha, "PoissonPrior: alpha", minimum=0.0)
        check_prior_field(self.beta, "PoissonPrior: beta", minimum=0.0)


class PoissonEmission(Emission):
    """Independent Poisson counts per feature.

    Parameters
    ----------
    rates : Tensor, shape (K, D)
        Positive rates.

    Observations: non-negative integer counts ``(..., T, D)`` (integer or float dtype).
    """

    fresh_log_prob: ClassVar[bool] = True

    def __init__(self, rates: Tensor, *, validate: bool = True) -> None:
        check_tensor(rates, "PoissonEmission: rates", floating=True)
        if rates.dim() != 2 or 0 in rates.shape:
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

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        _check_features(x, int(self.rates.shape[1]), "PoissonEmission", "counts")

    def log_prob(self, x: Tensor) -> Tensor:
        """Poisson log-likelihood of count vectors ``(..., D)`` -> ``(..., K)``.

        Raises
        ------
        ShapeError, DtypeMismatchError, ValidationError
            For a last dimension other than ``D``, a bool or complex tensor, or a count that is
            negative, fractional, NaN or inf.
        """
        self._validate_obs(x)
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
        self._check_m_step(x, weights, prior, PoissonPrior, "PoissonEmission.m_step")
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
        self._check_states(states, "PoissonEmission.sample: states")
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
        """Rates from k-means cluster means (or random data points), floored at 1e-3.

        ``x`` is (N, D) counts (at least one row); unknown keyword arguments are refused.
        """
        n_states = cls._init_checks(x, n_states, kwargs)
        _check_init_method(method, "PoissonEmission.init")
        _check_features(x, x.shape[-1], "PoissonEmission.init", "counts")
        PoissonEmission(torch.ones(1, x.shape[-1], dtype=torch.float64))._validate_obs(x)
        xf = x.to(torch.float64 if not x.is_floating_point() else x.dtype)
        g = GaussianEmission.init(xf, n_states, generator=generator, method=method)
        return cls(g.means.clamp_min(1e-3))


@dataclass(frozen=True)
class BernoulliPrior:
    """Beta(a, b) prior on each probability: MAP ``(a - 1 + sum w x) / (a + b - 2 + sum w)``."""

    a: float | Tensor = 1.0
    b: float | Tensor = 1.0

    def __post_init__(self) -> None:
        check_prior_field(self.a, "BernoulliPrior: a", minimum=0.0)
        check_prior_field(self.b, "BernoulliPrior: b", minimum=0.0)


class BernoulliEmission(Emission):
    """Independent binary features.

    Parameters
    ----------
    probs : Tensor, shape (K, D)
        ``p(x_d = 1 | y = k)`` in [0, 1].

    Observations: 0/1 tensors ``(..., T, D)`` (bool, integer or float).
    """

    fresh_log_prob: ClassVar[bool] = True

    def __init__(self, probs: Tensor, *, validate: bool = True) -> None:
        check_tensor(probs, "BernoulliEmission: probs", floating=True)
        if probs.dim() != 2 or 0 in probs.shape:
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

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        _check_features(x, int(self.probs.shape[1]), "BernoulliEmission", "features", True)

    def log_prob(self, x: Tensor) -> Tensor:
        """Bernoulli log-likelihood of 0/1 vectors ``(..., D)`` -> ``(..., K)``.

        Raises
        ------
        ShapeError, DtypeMismatchError, ValidationError
            For a last dimension other than ``D``, a complex tensor, or a value other than 0
            and 1.
        """
        self._validate_obs(x)
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
        self._check_m_step(x, weights, prior, BernoulliPrior, "BernoulliEmission.m_step")
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
        self._check_states(states, "BernoulliEmission.sample: states")
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
        """Cluster means (k-means or random points) shrunk towards 1/2: ``0.1 + 0.8 * mean``.

        ``x`` is (N, D) 0/1 values (at least one row); unknown keyword arguments are refused.
        """
        n_states = cls._init_checks(x, n_states, kwargs)
        _check_init_method(method, "BernoulliEmission.init")
        _check_features(x, x.shape[-1], "BernoulliEmission.init", "features", True)
        BernoulliEmission(torch.full((1, x.shape[-1]), 0.5, dtype=torch.float64)
                          )._validate_obs(x)
        xf = x.to(torch.float64 if not x.is_floating_point() else x.dtype)
        g = GaussianEmission.init(xf, n_states, generator=generator, method=method)
        return cls(0.1 + 0.8 * g.means.clamp(0, 1))
