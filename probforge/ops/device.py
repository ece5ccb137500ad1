"""Device, dtype and shape helpers: results follow their inputs, with no global configuration.

Examples
--------
>>> import torch
>>> from probforge.ops.device import common_device_dtype
>>> common_device_dtype([torch.zeros(2, dtype=torch.float64)])
(device(type='cpu'), torch.float64)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ValidationError,
)
from probforge.validate import check_int, check_tensor

__all__ = [
    "available_devices",
    "check_dims",
    "check_floating",
    "common_device_dtype",
    "to_like",
]


def check_floating(x: Any, subject: str) -> Tensor:
    """``x`` if it is a floating-point tensor, else the error of ``check_tensor(floating=True)``.

    The passing case costs two attribute checks and no host synchronisation, so the log-space
    primitives that run inside recursions can afford it on every call.

    Raises
    ------
    ValidationError
        ``x`` is not a tensor.
    DtypeMismatchError
        ``x`` is an integer, bool or complex tensor (refused, never cast).
    """
    if isinstance(x, Tensor) and x.is_floating_point():
        return x
    return check_tensor(x, subject, floating=True)


def check_dims(x: Tensor, dims: Any, subject: str) -> tuple[int, ...]:
    """``dims`` (an int or a sequence of ints) as distinct non-negative dimensions of ``x``.

    Negative dimensions count from the end, as in torch. A 0-d tensor accepts dimension ``0``
    or ``-1`` (torch's convention: a scalar reduces like a vector of one entry), returned as
    ``(0,)``.

    Parameters
    ----------
    x : Tensor
        The tensor the dimensions index.
    dims : int or sequence of int
        The argument to check.
    subject : str
        Its name in error messages.

    Returns
    -------
    tuple of int
        In the order given, each in ``[0, max(x.dim(), 1))``.

    Raises
    ------
    ValidationError
        Not ints (bools refused), out of range, or repeated.
    """
    if type(dims) is int:
        items: Sequence[Any] = (dims,)
    elif isinstance(dims, numbers.Integral) and not isinstance(dims, bool):
        items = (int(dims),)
    elif isinstance(dims, Sequence) and not isinstance(dims, str | bytes):
        items = dims
    else:
        raise ValidationError(subject, "must be an int or a sequence of ints",
                              found=f"{dims!r} ({type(dims).__name__})")
    n = max(x.dim(), 1)
    out = []
    for d in items:
        if type(d) is not int:
            d = check_int(d, subject)
        if not -n <= d < n:
            raise ValidationError(subject, f"dimension out of range for a tensor with {x.dim()} "
                                  "dimension(s)", found=d, fix=f"use a value in [{-n}, {n})")
        out.append(d % n)
    if len(set(out)) != len(out):
        raise ValidationError(subject, "repeats a dimension", found=tuple(items))
    return tuple(out)


def common_device_dtype(
    tensors: Sequence[Tensor], names: Sequence[str] | None = None
) -> tuple[torch.device, torch.dtype]:
    """The one device and dtype shared by ``tensors``; raise naming the odd one out.

    Parameters
    ----------
    tensors : sequence of Tensor
        At least one tensor (a list or tuple; a single tensor is not a sequence of tensors here).
    names : sequence of str, optional
        Names used in error messages, one per tensor (default ``"tensor 0"``, ``"tensor 1"``,
        ...).

    Returns
    -------
    (torch.device, torch.dtype)

    Raises
    ------
    ValidationError
        ``tensors`` empty or not a list of tensors, or ``names`` of the wrong length.
    DeviceMismatchError, DtypeMismatchError
        Naming the first tensor that differs from the first one.
    """
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence):
        raise ValidationError("common_device_dtype", "needs a list or tuple of tensors",
                              found=type(tensors).__name__, fix="wrap a single tensor as [x]")
    if not tensors:
        raise ValidationError("common_device_dtype", "needs at least one tensor", found="none")
    if names is None:
        labels = [f"tensor {i}" for i in range(len(tensors))]
    else:
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ValidationError("common_device_dtype", "names must be a list of str, one per "
                                  "tensor", found=repr(names))
        labels = list(names)
        if len(labels) != len(tensors) or not all(isinstance(n, str) for n in labels):
            raise ValidationError(
                "common_device_dtype", f"names must be {len(tensors)} str, one per tensor",
                found=repr(labels),
            )
    for label, t in zip(labels, tensors, strict=True):
        if not isinstance(t, Tensor):
            raise ValidationError(label, "must be a torch.Tensor", found=type(t).__name__,
                                  fix="convert with torch.as_tensor(...)")
    device, dtype = tensors[0].device, tensors[0].dtype
    for label, t in zip(labels, tensors, strict=True):
        if t.device != device:
            raise DeviceMismatchError(
                label, f"is on {t.device}, expected {device} like {labels[0]}",
                fix="move all inputs to one device with .to(device)",
            )
        if t.dtype != dtype:
            raise DtypeMismatchError(
                label, f"has dtype {t.dtype}, expected {dtype} like {labels[0]}",
                fix="cast all inputs to one dtype",
            )
    return device, dtype


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "floating"
    return "integer"


# Which kinds of value may be converted to a tensor of each kind without losing meaning:
# an integer is a number, so it may become a float; a float never silently becomes an int.
_CONVERTIBLE = {
    "bool": ("bool",),
    "integer": ("integer",),
    "floating": ("integer", "floating"),
    "complex": ("integer", "floating", "complex"),
}


def to_like(x: Tensor | float | Sequence[float], like: Tensor) -> Tensor:
    """``x`` as a tensor on ``like``'s device with ``like``'s dtype.

    Parameters
    ----------
    x : Tensor, number or (nested) sequence of numbers
        The value. Python ints may become floats; a float never becomes an int (refused rather
        than truncated), a bool only a bool, and an integer *tensor* is not turned into a
        floating one (the project's rule: integer tensors are refused where floats are needed).
        Infinities are kept (``-inf`` is a log-probability of zero); NaN is refused.
    like : Tensor
        Supplies the device and dtype.

    Returns
    -------
    Tensor

    Raises
    ------
    ValidationError, DtypeMismatchError, NonFiniteError

    Examples
    --------
    >>> to_like([0.5, float("-inf")], torch.zeros(1, dtype=torch.float64))
    tensor([0.5000,   -inf], dtype=torch.float64)
    """
    if not isinstance(like, Tensor):
        raise ValidationError("to_like", "like must be a torch.Tensor", found=type(like).__name__)
    if isinstance(x, str | bytes):
        raise ValidationError("to_like", "x must be a number, a sequence of numbers or a tensor",
                              found=repr(x))
    try:
        src = x if isinstance(x, Tensor) else torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValidationError("to_like", "x must be a number, a sequence of numbers or a tensor",
                              found=f"{type(x).__name__}: {err}") from None
    have, want = _kind(src.dtype), _kind(like.dtype)
    allowed = _CONVERTIBLE[want]
    if isinstance(x, Tensor) and have == "integer" and want in ("floating", "complex"):
        allowed = ()  # an integer tensor is refused where floats are needed, never cast
    if have not in allowed:
        raise DtypeMismatchError("to_like", f"cannot turn {have} values into {like.dtype} "
                                 "without changing their meaning", found=src.dtype,
                                 fix="convert explicitly first")
    out = src.to(device=like.device, dtype=like.dtype)
    if have in ("floating", "complex") and bool(torch.isnan(src).any()):
        raise NonFiniteError("to_like", "x contains NaN", found=math.nan,
                             fix="mark impossible log-values with -inf, not NaN")
    return out


def available_devices() -> list[torch.device]:
    """CPU plus every visible CUDA device.

    Returns
    -------
    list of torch.device
        ``cpu`` first, then ``cuda:0``, ``cuda:1``, ...
    """
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return devices
