"""Argument checks shared by the deep generative models, built on :mod:`probforge.validate`.

The models, losses, metrics and the training loop check their inputs at the entry point with
these helpers, in the house style of :mod:`probforge.validate`: a named error from
:mod:`probforge.errors` that names the argument, the value found, the rule and a fix. Nothing is
coerced: an integer tensor is refused where floating-point data are needed, a bool is not an int,
a string is not a list of sizes.

A data check costs at most one host synchronisation (finiteness and, where asked, the value range
are reduced to one flag first; the details are worked out only when that flag is set).

Examples
--------
>>> import torch
>>> from generative.checks import check_batch, check_sizes
>>> check_sizes([64, 32], "hidden")
[64, 32]
>>> try:
...     check_batch(torch.full((2, 3), float("nan")), "VAE input x", (3,))
... except ValueError as err:
...     print(type(err).__name__)
NonFiniteError
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_finite, check_int, check_real, check_tensor

__all__ = [
    "FLOAT_DTYPES",
    "broadcastable",
    "check_batch",
    "check_bool",
    "check_event_shape",
    "check_float_dtype",
    "check_labels",
    "check_num_classes",
    "check_optional_generator",
    "check_output_path",
    "check_positive_real",
    "check_sizes",
    "check_vector_batch",
    "first_parameter",
]

#: Floating dtypes the models and the training loop accept.
FLOAT_DTYPES = (torch.float32, torch.float64)


def check_bool(value: Any, subject: str) -> bool:
    """``value`` if it is a ``bool``; anything else (``0``, ``"False"``, None) is refused."""
    if not isinstance(value, bool):
        raise ValidationError(subject, "must be True or False", found=f"{value!r} "
                              f"({type(value).__name__})")
    return value


def check_positive_real(value: Any, subject: str) -> float:
    """A finite number ``> 0`` (an int is fine, a bool is not)."""
    return check_real(value, subject, minimum=0.0, strict_minimum=True)


def check_sizes(values: Any, subject: str, *, allow_empty: bool = True,
                minimum: int = 1, what: str = "layer sizes",
                example: str = "[256, 128], or [] for none") -> list[int]:
    """A list of sizes (``what``): each an int ``>= minimum``; a string or a bare int is refused."""
    if isinstance(values, str | bytes | Tensor) or not isinstance(values, Sequence):
        raise ValidationError(subject, f"must be a sequence of ints ({what})",
                              found=f"{values!r} ({type(values).__name__})",
                              fix=f"pass e.g. {example}")
    out = [check_int(v, f"{subject}[{i}]", minimum=minimum) for i, v in enumerate(values)]
    if not allow_empty and not out:
        raise ValidationError(subject, "needs at least one size", found=list(values))
    return out


def check_event_shape(shape: Any, subject: str) -> tuple[int, ...]:
    """The shape of one data point: a non-empty sequence of ints ``>= 1``."""
    return tuple(check_sizes(shape, subject, allow_empty=False, what="the shape of one data point",
                             example="(1, 28, 28) for images or (2,) for points"))


def check_num_classes(value: Any, subject: str) -> int | None:
    """None (unconditional) or an int ``>= 1``."""
    if value is None:
        return None
    return check_int(value, subject, minimum=1)


def check_float_dtype(dtype: Any, subject: str) -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` (half precision and integer types are refused)."""
    if not isinstance(dtype, torch.dtype) or dtype not in FLOAT_DTYPES:
        raise ValidationError(subject, "must be torch.float32 or torch.float64",
                              found=repr(dtype), fix="pass torch.float32 (default) or "
                              "torch.float64")
    return dtype


def check_optional_generator(generator: Any, subject: str,
                             device: torch.device | None = None) -> torch.Generator | None:
    """None or a ``torch.Generator`` (on ``device``'s type when ``device`` is given)."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise ValidationError(subject, "must be a torch.Generator or None",
                              found=type(generator).__name__,
                              fix="use probforge.ops.random.make_generator(seed)")
    if device is not None and generator.device.type != torch.device(device).type:
        raise DeviceMismatchError(subject, f"draws on {generator.device} but the model lives "
                                  f"on {device}", found=str(generator.device),
                                  fix=f"create it with make_generator(seed, device='{device}')")
    return generator


def broadcastable(*shapes: Sequence[int]) -> bool:
    """Whether the shapes broadcast together (torch's rules)."""
    try:
        torch.broadcast_shapes(*(tuple(s) for s in shapes))  # type: ignore[no-untyped-call]
    except RuntimeError:
        return False
    return True


def first_parameter(module: torch.nn.Module) -> Tensor | None:
    """The first parameter (or buffer) of ``module``, or None if it has neither."""
    for p in module.parameters():
        return p
    for b in module.buffers():
        return b
    return None


def check_batch(x: Tensor, subject: str, event_shape: Sequence[int], *,
                like: Tensor | None = None, allow_integer: bool = False,
                value_range: tuple[float, float] | None = None,
                range_rule: str | None = None) -> Tensor:
    """Check a batch of data points ``x`` of shape ``(B, *event_shape)``, ``B >= 1``.

    Parameters
    ----------
    x : object
        Must be a tensor; floating point unless ``allow_integer``; finite.
    subject : str
        Its name in error messages.
    event_shape : sequence of int
        The shape of one data point.
    like : Tensor, optional
        A parameter of the model: ``x`` must be on its device.
    allow_integer : bool
        Accept integer tensors (a categorical likelihood's data).
    value_range : (float, float), optional
        Inclusive bounds of the values (a likelihood's support).
    range_rule : str, optional
        The rule named when a value is out of range.

    Returns
    -------
    Tensor
        ``x`` itself (never converted).
    """
    event = tuple(event_shape)
    x = check_tensor(x, subject)
    if x.dim() != len(event) + 1 or tuple(x.shape[1:]) != event:
        raise ShapeError(subject, f"must be (B, {', '.join(map(str, event))})" if event
                         else "must be (B,)", found=tuple(x.shape),
                         fix="add a leading batch dimension with x[None]"
                         if tuple(x.shape) == event else None)
    if x.shape[0] == 0:
        raise ShapeError(subject, "must hold at least one data point (B >= 1)",
                         found=tuple(x.shape))
    if x.is_complex() or x.dtype == torch.bool or (not allow_integer and not x.is_floating_point()):
        rule = "must be a floating-point or integer tensor" if allow_integer else \
            "must be a floating-point tensor (integer data are refused, not cast)"
        raise DtypeMismatchError(subject, rule, found=x.dtype,
                                 fix="convert with .float() (and scale images to [0, 1])")
    if like is not None and x.device != like.device:
        raise DeviceMismatchError(subject, f"must be on the model's device {like.device}",
                                  found=str(x.device), fix=f"move it with .to('{like.device}')")
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        if value_range is not None:
            bad = bad | (x < value_range[0]) | (x > value_range[1])
        if bool(bad.any()):  # the one host synchronisation of the check
            check_finite(x, subject)
            assert value_range is not None
            raise ValidationError(subject, range_rule or
                                  f"values must lie in [{value_range[0]}, {value_range[1]}]",
                                  found=(float(x.min()), float(x.max())))
    elif value_range is not None:
        lo, hi = value_range
        if bool(((x < lo) | (x > hi)).any()):
            raise ValidationError(subject, range_rule or f"values must lie in [{lo}, {hi}]",
                                  found=(int(x.min()), int(x.max())))
    return x


def check_vector_batch(x: Tensor, subject: str, *, min_rows: int = 1, like: Tensor | None = None,
                       ndim: int | None = None) -> Tensor:
    """A floating, finite tensor with at least ``min_rows`` rows (``ndim`` dims if given)."""
    x = check_tensor(x, subject, floating=True, min_ndim=1)
    if ndim is not None and x.dim() != ndim:
        raise ShapeError(subject, f"must have {ndim} dimension(s)", found=tuple(x.shape))
    if x.shape[0] < min_rows:
        raise ShapeError(subject, f"must have at least {min_rows} row(s)", found=tuple(x.shape))
    if like is not None and x.device != like.device:
        raise DeviceMismatchError(subject, f"must be on {like.device}", found=str(x.device),
                                  fix=f"move it with .to('{like.device}')")
    check_finite(x, subject)
    return x


def check_labels(y: Tensor | None, subject: str, batch: int, num_classes: int | None, *,
                 like: Tensor | None = None) -> Tensor | None:
    """Labels ``y`` (B,) of a conditional model: integers in ``[0, num_classes - 1]``.

    ``y`` must be None exactly when the model is unconditional (``num_classes`` None).
    """
    if num_classes is None:
        if y is not None:
            raise ValidationError(subject, "labels given to an unconditional model",
                                  found=type(y).__name__,
                                  fix="pass y=None, or build the model with num_classes=...")
        return None
    if y is None:
        raise ValidationError(subject, "the model is conditional: pass labels y (B,)",
                              fix="pass integer labels, one per data point")
    y = check_tensor(y, f"{subject} labels", integer=True, ndim=1)
    if y.shape[0] != batch:
        raise ShapeError(f"{subject} labels", f"must be ({batch},), one per data point",
                         found=tuple(y.shape))
    if like is not None and y.device != like.device:
        raise DeviceMismatchError(f"{subject} labels", f"must be on {like.device}",
                                  found=str(y.device), fix=f"move them with .to('{like.device}')")
    if y.numel() and bool(((y < 0) | (y >= num_classes)).any()):
        raise ValidationError(f"{subject} labels", f"must lie in [0, {num_classes - 1}]",
                              found=(int(y.min()), int(y.max())))
    return y


def check_output_path(path: Any, subject: str, *, suffixes: Sequence[str] | None = None) -> Path:
    """A path a file can be written to: not a folder, with one of ``suffixes`` if given."""
    if not isinstance(path, str | os.PathLike):
        raise ValidationError(subject, "must be a path (str or os.PathLike)",
                              found=type(path).__name__)
    p = Path(path)
    if p.is_dir():
        raise ValidationError(subject, "is a folder, not a file", found=str(p),
                              fix="give a file name inside it")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ValidationError(subject, f"must end in {' or '.join(suffixes)} (that is the "
                              "format written)", found=str(p),
                              fix=f"name the file e.g. {p.stem or 'out'}{suffixes[0]}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValidationError(subject, f"its folder {parent} is a file", found=str(p))
            break
    return p
