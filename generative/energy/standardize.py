"""Per-feature standardisation for Gaussian-Bernoulli RBMs: ``z = (x - mean) / std``.

A Gaussian-Bernoulli RBM with ``sigma = 1`` (fixed or as its starting value) expects every
visible unit to have zero mean and unit variance (Hinton's practical guide, section 13.2); its
training diverges easily otherwise. :func:`standardize` computes the per-feature mean and
(population, ``ddof = 0``) standard deviation of a training set and returns the standardised
data with a :class:`Standardizer` that applies the same map to new data and inverts it (to show
samples in data units).

Constant features (every value equal, e.g. the always-blank corner pixels of the digits) have no
scale. Rule: by default (``constant="unit"``) such a feature keeps ``std = 1``, so it maps to
exactly 0 and back; ``constant="error"`` refuses the data instead. Nothing is ever divided by
zero, and no value becomes infinite.

Densities change with the map: ``log p_x(x) = log p_z(z) - sum(log std)``
(:attr:`Standardizer.log_abs_det`), which turns a log-likelihood of ``z`` into one of ``x``.

Examples
--------
>>> import torch
>>> from generative.energy.standardize import standardize
>>> x = torch.tensor([[1.0, 5.0], [3.0, 5.0]], dtype=torch.float64)
>>> z, st = standardize(x)
>>> z.tolist(), st.std.tolist()
([[-1.0, 0.0], [1.0, 0.0]], [1.0, 1.0])
>>> torch.equal(st.inverse(z), x)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_choice, check_finite, check_tensor

__all__ = ["CONSTANT_RULES", "Standardizer", "standardize"]

#: What :func:`standardize` does with a constant feature: give it ``std = 1`` or refuse.
CONSTANT_RULES = ("unit", "error")


def _check_like(x: Tensor, ref: Tensor, subject: str) -> None:
    if x.device != ref.device:
        raise DeviceMismatchError(subject, f"must be on the standardiser's device {ref.device}",
                                  found=x.device, fix=f"move it with .to('{ref.device}')")
    if x.dtype != ref.dtype:
        raise DtypeMismatchError(subject, f"must have the standardiser's dtype {ref.dtype}",
                                 found=x.dtype, fix=f"convert with .to({ref.dtype})")


@dataclass(frozen=True)
class Standardizer:
    """The affine map ``z = (x - mean) / std``, per feature.

    Attributes
    ----------
    mean : Tensor (*event_shape)
        Finite.
    std : Tensor (*event_shape)
        Finite and ``> 0``.

    Examples
    --------
    >>> import torch
    >>> st = Standardizer(torch.tensor([1.0]), torch.tensor([2.0]))
    >>> st.transform(torch.tensor([[5.0]])).tolist(), st.inverse(torch.tensor([[2.0]])).tolist()
    ([[2.0]], [[5.0]])
    """

    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        mean = check_tensor(self.mean, "Standardizer mean", floating=True, min_ndim=1,
                            finite=True)
        std = check_tensor(self.std, "Standardizer std", floating=True, finite=True)
        if std.shape != mean.shape:
            raise ShapeError("Standardizer std", f"must have the mean's shape {tuple(mean.shape)}",
                             found=tuple(std.shape))
        _check_like(std, mean, "Standardizer std")
        if bool((std <= 0).any()):
            raise ValidationError("Standardizer std", "must be > 0 for every feature",
                                  found=std[std <= 0][:5].tolist(),
                                  fix="build it with standardize(x), which gives constant "
                                  "features std 1")

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.mean.shape)

    @property
    def log_abs_det(self) -> Tensor:
        """``sum(log std)``: subtract it from ``log p_z(z)`` to get ``log p_x(x)``; ``()``."""
        return self.std.log().sum()

    def _check(self, value: Any, subject: str) -> Tensor:
        x = check_tensor(value, subject, floating=True)
        shape = self.event_shape
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ShapeError(subject, f"must have shape (B, {', '.join(map(str, shape))})",
                             found=tuple(x.shape),
                             fix="add a batch dimension with x[None]"
                             if tuple(x.shape) == shape else None)
        _check_like(x, self.mean, subject)
        check_finite(x, subject)
        return x

    def transform(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` for a batch ``x`` of shape ``(B, *event_shape)``."""
        x = self._check(x, "Standardizer.transform x")
        return (x - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        """``z * std + mean`` for a batch ``z`` of shape ``(B, *event_shape)``."""
        z = self._check(z, "Standardizer.inverse z")
        return z * self.std + self.mean

    def to(self, *args: Any, **kwargs: Any) -> Standardizer:
        """A copy on another device / dtype (``Tensor.to`` arguments)."""
        return Standardizer(self.mean.to(*args, **kwargs), self.std.to(*args, **kwargs))


def standardize(x: Tensor, *, constant: str = "unit") -> tuple[Tensor, Standardizer]:
    """Standardise every feature of ``x`` to zero mean and unit (population) variance.

    Parameters
    ----------
    x : Tensor (N, *event_shape)
        Floating, finite, ``N >= 2`` rows.
    constant : {"unit", "error"}
        A feature whose values are all equal gets ``std = 1`` (it maps to exactly 0), or is
        refused with a ValidationError naming it.

    Returns
    -------
    (z, Standardizer)
        ``z = (x - mean) / std`` of ``x``'s shape, dtype and device, and the map.

    Raises
    ------
    DtypeMismatchError, ShapeError, NonFiniteError, ValidationError
        An integer tensor, fewer than two rows, NaN / inf values, or (``constant="error"``) a
        constant feature.

    Examples
    --------
    >>> import torch
    >>> z, st = standardize(torch.tensor([[0.0], [2.0], [4.0]]))
    >>> [round(v, 4) for v in z[:, 0].tolist()], round(float(st.std), 4)
    ([-1.2247, 0.0, 1.2247], 1.633)
    """
    x = check_tensor(x, "standardize x", floating=True, min_ndim=2)
    check_choice(constant, "standardize constant", CONSTANT_RULES)
    if x.shape[0] < 2:
        raise ShapeError("standardize x", "needs at least 2 rows to estimate a spread",
                         found=tuple(x.shape))
    check_finite(x, "standardize x")
    # statistics in float64 so a float32 data set's mean does not absorb rounding error
    x64 = x.double()
    mean = x64.mean(0)
    std = x64.std(0, correction=0)
    is_constant = (x == x[:1]).all(0)
    if bool(is_constant.any()):
        if constant == "error":
            idx = is_constant.nonzero()[:5].tolist()
            raise ValidationError("standardize x", "has constant features (every value equal), "
                                  "which have no spread to divide by",
                                  found=f"{int(is_constant.sum())} feature(s), e.g. at {idx}",
                                  fix="drop them, or pass constant='unit' to give them std 1")
        std = torch.where(is_constant, torch.ones_like(std), std)
    # values that differ have a positive population variance in float64 unless they differ by
    # less than ~1e-154; such a feature is refused rather than blown up to inf
    if bool((std <= 0).any()) or not bool(torch.isfinite(1 / std).all()):
        raise ValidationError("standardize x", "has a feature whose spread underflows to 0",
                              found=std[(std <= 0) | ~torch.isfinite(1 / std)][:5].tolist(),
                              fix="rescale the data first")
    st = Standardizer(mean.to(x.dtype), std.to(x.dtype))
    return st.transform(x), st
