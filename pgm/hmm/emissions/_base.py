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
    ShapeError,
    ValidationError,
)
from probforge.validate import check_int, check_real, check_tensor

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


def _first_value(x: Tensor, bad: Tensor, event_dim: int) -> str:
    """The first offending observation of ``x`` (..., *event) where ``bad`` (...) is True."""
    flat = int(bad.reshape(-1).nonzero()[0, 0])
    rows = x.reshape(-1, *x.shape[x.dim() - event_dim:]) if event_dim else x.reshape(-1)
    v = rows[flat]
    text = repr(v.tolist()) if v.dim() else repr(v.item())
    return text if len(text) <= 60 else text[:57] + "..."


def check_prior_field(value: Any, subject: str, *, minimum: float | None = None) -> None:
    """A prior's hyper-parameter: a finite number (``>= minimum``) or a finite float tensor
    (``>= minimum`` entrywise); anything else raises a named error."""
    if isinstance(value, Tensor):
        check_tensor(value, subject, floating=True, finite=True)
        if minimum is not None and bool((value < minimum).any()):
            raise ValidationError(subject, f"entries must be >= {minimum}",
                                  found=float(value.min()))
    else:
        check_real(value, subject, minimum=minimum)


def _check_rows(log_p: Tensor, subject: str) -> None:
    """Rows of ``exp(log_p)`` must sum to 1; NaN / +inf rejected."""
    check_tensor(log_p, subject, floating=True)
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
    check_tensor(p, subject, floating=True)
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
        """Raise a named error for an invalid observation at a step where ``valid`` (..., T).

        The dtype and event shape of ``x`` are checked everywhere; the values (symbols in range,
        finiteness, ...) only at the steps where ``valid`` is True (padding and missing steps
        may hold anything).
        """
        self._check_input(x)
        bad = self._invalid(x)
        if bad is None:
            return
        where = _first_bad(bad & valid, tuple(valid.shape[:-1]), valid.shape[-1])
        if where is not None:
            raise self._error(where)

    def _check_input(self, x: Tensor) -> None:
        """Raise a named error if ``x`` is not a tensor of observations ``(..., *event)`` of an
        accepted dtype and event shape (values are :meth:`_invalid`'s business)."""
        if not isinstance(x, Tensor):
            raise ValidationError(f"{type(self).__name__}: observations",
                                  "must be a torch.Tensor", found=type(x).__name__,
                                  fix="convert with torch.as_tensor(...)")
        if x.dim() < self.event_dim:
            raise ShapeError(f"{type(self).__name__}: observations",
                             f"must have {self.event_dim} event dim(s)", found=tuple(x.shape))

    def _validate_obs(self, x: Tensor) -> None:
        """Every check of :meth:`check`, at every position: what :meth:`log_prob` runs first, so
        that no invalid observation gives a NaN or a wrong number silently."""
        self._check_input(x)
        bad = self._invalid(x)
        if bad is None:
            return
        if bad.dim() == 0:
            bad = bad.reshape(1)
        where = _first_bad(bad, tuple(bad.shape[:-1]), bad.shape[-1])
        if where is not None:
            err = self._error(where)  # the family's message, with the value found added
            raise type(err)(err.subject, err.problem, found=_first_value(x, bad, self.event_dim),
                            fix=err.fix)

    @classmethod
    def _init_checks(cls, x: Any, n_states: Any, kwargs: dict[str, Any],
                     allowed: tuple[str, ...] = ()) -> int:
        """The checks every :meth:`init` runs: no unknown keyword (a typo must not be ignored
        silently), ``n_states`` an int >= 1, ``x`` a non-empty tensor ``(N, *event)``."""
        subject = f"{cls.__name__}.init"
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValidationError(subject, f"got unknown keyword argument(s) {unknown}",
                                  fix=f"this family takes {list(allowed) or 'no extra keywords'}")
        k = check_int(n_states, f"{subject}: n_states", minimum=1)
        event_dim = cls.event_dim if isinstance(cls.event_dim, int) else 1
        check_tensor(x, f"{subject}: x", ndim=1 + event_dim)
        if x.shape[0] == 0:
            raise ValidationError(f"{subject}: x", "holds no observations to initialise from",
                                  found=tuple(x.shape), fix="pass at least one observed step")
        return k

    @staticmethod
    def _check_dtype_arg(dtype: Any, subject: str) -> torch.dtype:
        """``dtype`` must be a floating torch dtype."""
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValidationError(subject, "must be a floating torch.dtype", found=repr(dtype),
                                  fix="use torch.float32 or torch.float64")
        return dtype

    def _check_states(self, states: Tensor, subject: str) -> None:
        """``states`` must be an integer tensor of states ``0..K-1``."""
        check_tensor(states, subject, integer=True)
        bad = (states < 0) | (states >= self.n_states)
        if bool(bad.any()):
            i = int(bad.reshape(-1).nonzero()[0, 0])
            raise ValidationError(subject, f"must hold states in 0..{self.n_states - 1}",
                                  found=int(states.reshape(-1)[i]))

    def _check_m_step(self, x: Tensor, weights: Tensor, prior: Any, prior_type: type | None,
                      subject: str) -> None:
        """Shapes and values of an M-step's inputs, and the prior's type."""
        self._validate_obs(x)
        check_tensor(weights, f"{subject}: weights", shape=(None, self.n_states),
                     floating=True, finite=True)
        if x.dim() < 1 + self.event_dim or x.shape[0] != weights.shape[0]:
            raise ShapeError(f"{subject}: x", f"must hold one observation per row of the "
                             f"weights ({weights.shape[0]})", found=tuple(x.shape))
        if bool((weights < 0).any()):
            raise ValidationError(f"{subject}: weights", "must be >= 0 (posterior "
                                  "probabilities)")
        if prior is not None and prior_type is not None and not isinstance(prior, prior_type):
            raise ValidationError(f"{subject}: prior", f"must be a {prior_type.__name__}",
                                  found=type(prior).__name__)

    def _invalid(self, x: Tensor) -> Tensor | None:
        """(..., T) True where an observation breaks the family's rule (None: never)."""
        if not x.is_floating_point():
            return None
        bad = ~torch.isfinite(x)
        # flatten, not reshape(..., -1): an empty batch has no size to infer
        return bad.flatten(bad.dim() - self.event_dim).any(-1) if self.event_dim else bad

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
