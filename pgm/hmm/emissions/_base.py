"""The emission interface every family implements, and the checks and initialisation helpers
they share."""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from probforge.errors import (
    NonFiniteError,
    NormalisationError,
    ValidationError,
)

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
    fresh_log_prob : bool
        Whether :meth:`log_prob` always returns a new tensor (never a view of its input or of
        a parameter), which inference may then modify in place instead of copying.
    """

    event_dim: ClassVar[int] = 1
    fresh_log_prob: ClassVar[bool] = False

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
