"""Input checks shared by every package: one house style for the errors of public entry points.

Each function checks one argument and either returns it (as the type the caller works with) or
raises a named error from :mod:`probforge.errors` that names the argument, the value found, the
rule and a fix. The rules are the project's (``DESIGN.md`` section 5): nothing is coerced
silently; a bool is not an int; an integer tensor is not a float tensor; a string where names are
expected means one name; NaN is refused where a value is needed.

Examples
--------
>>> from probforge.validate import check_int, check_names
>>> check_int(3, "num_draws", minimum=1)
3
>>> check_names("lung", "query variables")
['lung']
>>> try:
...     check_int(2.0, "num_draws", minimum=1)
... except ValueError as err:
...     print(err)
num_draws: must be an int >= 1 (found 2.0 (float)). Fix: pass a whole number such as 2.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    MissingFileError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)

__all__ = [
    "check_choice",
    "check_device",
    "check_existing_file",
    "check_finite",
    "check_int",
    "check_log_values",
    "check_names",
    "check_output_path",
    "check_real",
    "check_shape",
    "check_tensor",
]


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_int(
    value: Any, subject: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int``; refuse bools, floats (even ``2.0``), strings, out-of-range values.

    Integer-like objects (numpy integers, 0-d integer tensors) are accepted.

    Parameters
    ----------
    value : object
        The argument to check.
    subject : str
        Its name in the error message.
    minimum, maximum : int, optional
        Inclusive bounds.
    """
    rule = "must be an int"
    if minimum is not None and maximum is not None:
        rule += f" in [{minimum}, {maximum}]"
    elif minimum is not None:
        rule += f" >= {minimum}"
    elif maximum is not None:
        rule += f" <= {maximum}"
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(value, Tensor):
        integral = value.dim() == 0 and not value.is_floating_point() and not value.is_complex() \
            and value.dtype != torch.bool
    if not integral:
        fix = None
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            fix = f"pass a whole number such as {int(value)}"
        raise ValidationError(subject, rule, found=_shown(value), fix=fix)
    out = int(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise ValidationError(subject, rule, found=out)
    return out


def check_real(
    value: Any,
    subject: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    strict_maximum: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a finite ``float`` (an ``int`` is a number too); refuse bools, NaN, strings.

    Parameters
    ----------
    value : object
        The argument to check (a Python number, numpy scalar or 0-d tensor).
    subject : str
        Its name in the error message.
    minimum, maximum : float, optional
        Bounds, inclusive unless ``strict_minimum`` / ``strict_maximum``.
    allow_inf : bool
        Accept ``+-inf`` (still subject to the bounds).
    """
    lo = "(" if strict_minimum else "["
    hi = ")" if strict_maximum else "]"
    if minimum is not None and maximum is not None:
        rule = f"must be a number in {lo}{minimum:g}, {maximum:g}{hi}"
    elif minimum is not None:
        rule = f"must be a number {'>' if strict_minimum else '>='} {minimum:g}"
    elif maximum is not None:
        rule = f"must be a number {'<' if strict_maximum else '<='} {maximum:g}"
    else:
        rule = "must be a finite number" if not allow_inf else "must be a number, not NaN"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(value, Tensor):
        ok = value.dim() == 0 and value.dtype != torch.bool and not value.is_complex()
    if not ok:
        raise ValidationError(subject, rule, found=_shown(value))
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise NonFiniteError(subject, rule, found=out)
    bad = (
        (minimum is not None and (out < minimum or (strict_minimum and out == minimum)))
        or (maximum is not None and (out > maximum or (strict_maximum and out == maximum)))
    )
    if bad:
        raise ValidationError(subject, rule, found=out)
    return out


def check_choice(value: Any, subject: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with ``==``, types must match)."""
    options = list(choices)
    for c in options:
        if type(value) is type(c) and value == c:
            return value
    raise ValidationError(subject, f"must be one of {options}", found=repr(value))


def check_names(names: Any, subject: str, *, allow_empty: bool = True) -> list[str]:
    """A list of names from one name (a ``str``) or an iterable of names; duplicates refused.

    A string is one name, never its characters: ``"RW"`` is the variable ``RW``.
    """
    if isinstance(names, str):
        return [names]
    if isinstance(names, Mapping):  # a dict here is usually evidence given in the wrong place
        raise ValidationError(
            subject, "must be a name or a list of names, not a mapping", found=_shown(names),
            fix="pass the names as a list; observations go in the evidence argument",
        )
    if isinstance(names, bytes | Tensor) or not isinstance(names, Iterable):
        raise ValidationError(
            subject, "must be a name (str) or a list of names", found=_shown(names),
            fix="pass e.g. 'lung' or ['lung', 'bronc']",
        )
    out = list(names)
    for item in out:
        if not isinstance(item, str):
            raise ValidationError(subject, "names must be strings", found=_shown(item))
    seen: set[str] = set()
    for item in out:
        if item in seen:
            raise ValidationError(subject, f"name {item!r} is given twice", found=out,
                                  fix="give each name once")
        seen.add(item)
    if not allow_empty and not out:
        raise ValidationError(subject, "needs at least one name", found=out)
    return out


def check_tensor(
    x: Any,
    subject: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    floating: bool = False,
    integer: bool = False,
    finite: bool = False,
    nonempty: bool = False,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Check a tensor argument and return it unchanged.

    Parameters
    ----------
    x : object
        Must be a ``torch.Tensor`` (nothing is converted).
    subject : str
        Its name in the error message.
    ndim : int or sequence of int, optional
        Allowed numbers of dimensions.
    min_ndim : int, optional
        Fewest dimensions.
    shape : sequence of int or None, optional
        Expected shape; ``None`` entries match any size.
    floating : bool
        Require a floating dtype (an integer tensor is refused, not cast).
    integer : bool
        Require an integer dtype (bool is not an integer here).
    finite : bool
        Refuse NaN and +-inf (floating tensors only).
    nonempty : bool
        Refuse tensors with zero elements.
    device, dtype : optional
        Required device and dtype.
    """
    if not isinstance(x, Tensor):
        raise ValidationError(subject, "must be a torch.Tensor", found=_shown(x),
                              fix="convert with torch.as_tensor(...)")
    dims = (ndim,) if isinstance(ndim, int) else tuple(ndim) if ndim is not None else None
    if dims is not None and x.dim() not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ShapeError(subject, f"must have {want} dimension(s)", found=tuple(x.shape))
    if min_ndim is not None and x.dim() < min_ndim:
        raise ShapeError(subject, f"must have at least {min_ndim} dimension(s)",
                         found=tuple(x.shape))
    if shape is not None:
        want_shape = tuple(shape)
        if len(want_shape) != x.dim() or any(
            w is not None and w != s for w, s in zip(want_shape, x.shape, strict=False)
        ):
            text = "(" + ", ".join("*" if w is None else str(w) for w in want_shape) + ")"
            raise ShapeError(subject, f"must have shape {text}", found=tuple(x.shape))
    if floating and not x.is_floating_point():
        raise DtypeMismatchError(subject, "must be a floating-point tensor", found=x.dtype,
                                 fix="convert with .double() or .float()")
    if integer and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise DtypeMismatchError(subject, "must be an integer tensor", found=x.dtype,
                                 fix="convert with .long() after checking the values are whole")
    if dtype is not None and x.dtype != dtype:
        raise DtypeMismatchError(subject, f"must have dtype {dtype}", found=x.dtype,
                                 fix=f"convert with .to({dtype})")
    if device is not None and x.device != torch.device(device):
        raise DeviceMismatchError(subject, f"must be on {device}", found=x.device,
                                  fix=f"move it with .to({str(device)!r})")
    if nonempty and x.numel() == 0:
        raise ShapeError(subject, "must not be empty", found=tuple(x.shape))
    if finite:
        check_finite(x, subject)
    return x


def check_finite(x: Tensor, subject: str, *, fix: str | None = None) -> Tensor:
    """Raise :class:`NonFiniteError` naming the first NaN / inf entry of ``x``; return ``x``."""
    if not (x.is_floating_point() or x.is_complex()):
        return x
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        n = int(bad.sum())
        raise NonFiniteError(
            subject,
            f"has {n} non-finite entr{'y' if n == 1 else 'ies'}, the first at index {idx}",
            found=float(x[idx]) if x.dim() else float(x),
            fix=fix or "remove or impute the NaN / inf values",
        )
    return x


def check_device(device: Any, subject: str = "device") -> torch.device:
    """A ``torch.device`` that exists on this machine (``"cuda"`` without CUDA is refused)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValidationError(subject, "is not a torch device", found=repr(device),
                              fix="use 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValidationError(subject, "CUDA is not available on this machine",
                                  found=str(dev), fix="use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValidationError(subject, f"there are {torch.cuda.device_count()} CUDA "
                                  "device(s)", found=str(dev))
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValidationError(subject, "MPS is not available on this machine",
                                  found=str(dev), fix="use cpu")
    elif dev.type not in ("cpu", "meta"):
        raise ValidationError(subject, "unsupported device type", found=str(dev),
                              fix="use 'cpu' or 'cuda'")
    return dev


def check_existing_file(path: Any, subject: str) -> Path:
    """``path`` as a ``Path`` to an existing regular file, else :class:`MissingFileError`."""
    if not isinstance(path, str | os.PathLike):
        raise ValidationError(subject, "must be a path (str or os.PathLike)", found=_shown(path))
    p = Path(path)
    try:
        exists, regular = p.exists(), p.is_file()
    except (OSError, ValueError) as err:  # a name too long, a NUL byte: no such file either
        raise MissingFileError(subject, "is not a usable path", found=str(p)[:200],
                               fix=str(err)) from err
    if not exists:
        raise MissingFileError(subject, "file not found", found=str(p),
                               fix="check the path and the working directory")
    if not regular:
        raise MissingFileError(subject, "is not a regular file", found=str(p))
    return p


def check_shape(shape: Any, subject: str) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints; refuse anything else with a named error.

    A shape is a sequence of sizes (a tuple, list or ``torch.Size``); a size of 0 is allowed
    and gives an empty result. A bare int is refused rather than read as ``(n,)``, as torch's
    ``sample_shape`` does, and so are bools, floats (even ``2.0``) and negative sizes.

    Parameters
    ----------
    shape : object
        The argument to check.
    subject : str
        Its name in error messages.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValidationError
        If ``shape`` is not a sequence of non-negative ints.

    Examples
    --------
    >>> check_shape(torch.Size([2, 3]), "shape")
    (2, 3)
    """
    # Fast path for the common case, a tuple of plain ints: this runs inside sampler loops.
    if type(shape) is tuple and all(type(s) is int and s >= 0 for s in shape):
        return shape
    if isinstance(shape, torch.Size):
        return tuple(shape)
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        raise ValidationError(subject, "must be a shape (a tuple of ints), not a single int",
                              found=repr(shape), fix=f"pass ({int(shape)},)")
    if not isinstance(shape, Sequence) or isinstance(shape, str | bytes):
        raise ValidationError(subject, "must be a shape (a tuple of non-negative ints)",
                              found=f"{shape!r} ({type(shape).__name__})", fix="pass e.g. (3,)")
    if all(type(s) is int and s >= 0 for s in shape):
        return tuple(shape)
    return tuple(check_int(s, f"{subject}[{i}]", minimum=0) for i, s in enumerate(shape))


def check_output_path(path: Any, subject: str, *, suffixes: Sequence[str] | None = None) -> Path:
    """``path`` as a ``Path`` a file can be written to, checked before anything is written.

    Its folder must exist (:class:`MissingFileError` otherwise: nothing creates folders behind
    the caller's back); it must not be a folder, empty, hold a NUL byte or, with ``suffixes``,
    end in another suffix (a format is never written under another format's name).

    Parameters
    ----------
    path : str or os.PathLike
        The destination.
    subject : str
        What is written, for the message.
    suffixes : sequence of str, optional
        Allowed suffixes, lower case with the dot (compared case-insensitively).
    """
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise ValidationError(subject, "must be a path (str or os.PathLike)", found=_shown(path))
    try:
        target = Path(path)
    except TypeError as err:  # an os.PathLike of bytes
        raise ValidationError(subject, "must be a text path", found=repr(path),
                              fix="decode it to str") from err
    text = os.fspath(target)
    if str(path) == "":
        raise ValidationError(subject, "must not be empty", found="''")
    if "\x00" in text:
        raise ValidationError(subject, "a path cannot hold a NUL character", found=repr(text))
    if suffixes is not None and target.suffix.lower() not in suffixes:
        raise ValidationError(subject, f"must end in {' or '.join(suffixes)} (the format written)",
                              found=text, fix=f"name the file e.g. {target.stem or 'out'}"
                              f"{suffixes[0]}")
    directory = target.parent
    try:
        folder_exists, folder_is_dir, is_dir = (directory.exists(), directory.is_dir(),
                                                target.is_dir())
    except OSError as err:  # a name too long for the file system, ...
        raise MissingFileError(subject, f"cannot be accessed ({err.strerror or err})",
                               found=text[:200], fix="check the path") from err
    if not folder_exists:
        raise MissingFileError(subject, "its folder does not exist", found=str(directory),
                               fix=f"create it first (mkdir -p {directory})")
    if not folder_is_dir:
        raise MissingFileError(subject, "its parent is not a folder", found=str(directory))
    if is_dir:
        raise ValidationError(subject, "is a folder, not a file", found=text,
                              fix="name a file inside it")
    return target


def check_log_values(
    x: Tensor, subject: str, *, allow_all_neg_inf: bool = True, fix: str | None = None
) -> Tensor:
    """``x`` if it holds log-probabilities (or log-weights, log-potentials): no NaN, no ``+inf``.

    ``-inf`` is a probability of zero and is allowed; with ``allow_all_neg_inf=False`` at least
    one entry must be finite (a distribution, or a set of weights, that is zero everywhere has
    no normalisation). ``x`` must be a floating tensor. One host synchronisation per check.

    Examples
    --------
    >>> check_log_values(torch.tensor([0.0, float("-inf")]), "log_p").tolist()
    [0.0, -inf]
    """
    check_tensor(x, subject, floating=True)
    bad = torch.isnan(x) | torch.isposinf(x)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise NonFiniteError(subject, "has NaN or +inf entries (a probability of zero is -inf)",
                             found=f"{float(x[idx]) if x.dim() else float(x)} at index {idx}",
                             fix=fix or "use -inf for zero probabilities and finite values "
                             "elsewhere")
    if not allow_all_neg_inf and x.numel() and not bool(torch.isfinite(x).any()):
        raise NonFiniteError(subject, "every entry is -inf (probability zero everywhere)",
                             fix=fix)
    return x
