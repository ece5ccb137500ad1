"""Input checks of :mod:`probforge.ops.contract`: factors, scopes, outputs, plans and paths.

Every check runs once per call, before any work (see the conventions in
:mod:`probforge.ops.contract`), and raises a named error from :mod:`probforge.errors`.

Examples
--------
>>> import torch
>>> from probforge.ops.contract_checks import check_contraction
>>> c = check_contraction([torch.zeros(2, 3)], [("A", "B")], "B", True)
>>> c.cards, c.output
({'A': 2, 'B': 3}, ('B',))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import opt_einsum
import opt_einsum.paths
import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
)
from probforge.validate import check_int

__all__ = [
    "CheckedContraction",
    "Var",
    "check_contraction",
    "check_path",
    "check_plan",
    "check_strategy",
]

#: A variable: any hashable (strings, or the ints of a chain).
Var = Hashable


@functools.cache
def check_strategy(name: str) -> None:
    """Refuse an opt_einsum strategy name it does not know (checked once per name)."""
    try:
        opt_einsum.paths.get_path_fn(name)
    except KeyError:
        raise ValidationError(
            "optimize", "unknown opt_einsum path strategy", found=repr(name),
            fix="use 'auto', 'greedy', 'optimal', 'dp', ... or an explicit path",
        ) from None


def check_plan(
    scopes: Any, cards: Any, output: Any, subject: str
) -> tuple[list[tuple[Var, ...]], Mapping[Any, int], tuple[Var, ...]]:
    """Check the arguments of ``contraction_path`` / ``contraction_cost``."""
    scope_list = _as_scopes(scopes, subject)
    if not isinstance(cards, Mapping):
        raise ValidationError(subject, "cards must be a mapping variable -> number of states",
                              found=type(cards).__name__)
    for v, n in cards.items():
        check_int(n, f"{subject}: cards[{v!r}]", minimum=0)
    for i, s in enumerate(scope_list):
        for v in s:
            if v not in cards:
                raise UnknownVariableError(subject, f"variable {v!r} of scope {i} has no entry "
                                           "in cards", fix=f"add cards[{v!r}]")
    out = _as_vars(output, f"{subject} output")
    known = {v for s in scope_list for v in s}
    for v in out:
        if v not in known:
            raise UnknownVariableError(subject, f"output variable {v!r} is in no scope",
                                       fix=f"choose among {list(dict.fromkeys(known))}")
    return scope_list, {v: int(n) for v, n in cards.items()}, out


def check_path(path: Any, n: int) -> list[tuple[int, ...]]:
    if isinstance(path, str | bytes | Tensor) or not isinstance(path, Iterable):
        raise ValidationError("optimize", "must be a strategy name or a path (a list of tuples "
                              "of operand positions)", found=repr(path))
    out = []
    for k, step in enumerate(path):
        if isinstance(step, str | bytes | Tensor) or not isinstance(step, Iterable):
            raise ValidationError(f"contraction path step {k}", "must be a tuple of operand "
                                  "positions", found=repr(step))
        step = tuple(check_int(i, f"contraction path step {k}") for i in step)
        if not step or len(set(step)) != len(step) or not all(0 <= i < n for i in step):
            raise ValidationError(
                f"contraction path step {k}",
                f"must name distinct operand positions in [0, {n})",
                found=step,
            )
        n -= len(step) - 1
        out.append(step)
    return out


def _is_hashable(v: object) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _as_scope(scope: Any, i: int) -> tuple[Var, ...]:
    """One scope as a tuple of variables.

    A bare string of several characters is refused: it used to be read as its characters, and
    reading it as one variable instead would let the factor's leading dimensions turn silently
    into batch dimensions. A one-character string means the same either way.
    """
    if isinstance(scope, str):
        if len(scope) != 1:
            raise ValidationError(
                f"scope {i}", "is a bare string: one variable or one per character is ambiguous",
                found=repr(scope),
                fix=f"write ({scope!r},) for one variable or {tuple(scope)!r} for several",
            )
        return (scope,)
    if isinstance(scope, bytes | Tensor) or not isinstance(scope, Iterable):
        raise ValidationError(
            f"scope {i}", "must be a tuple of variables (a single string is one variable)",
            found=f"{scope!r} ({type(scope).__name__})",
            fix=f"write ({scope!r},) for one variable",
        )
    out = tuple(scope)
    for v in out:
        if not _is_hashable(v):
            raise ValidationError(f"scope {i}", "variables must be hashable (str, int, ...)",
                                  found=f"{v!r} ({type(v).__name__})")
    if len(set(out)) != len(out):
        raise ShapeError(f"factor {i}", "scope repeats a variable", found=out)
    return out


def _as_scopes(scopes: Any, subject: str) -> list[tuple[Var, ...]]:
    if isinstance(scopes, str | bytes | Tensor | Mapping) or not isinstance(scopes, Sequence):
        raise ValidationError(subject, "scopes must be a list of scopes, one per factor",
                              found=f"{scopes!r} ({type(scopes).__name__})",
                              fix="e.g. [('A',), ('A', 'B')]")
    return [_as_scope(s, i) for i, s in enumerate(scopes)]


def _as_vars(output: Any, subject: str) -> tuple[Var, ...]:
    """``output`` as a tuple of variables: a string is one variable, never its characters.

    (``probforge.validate.check_names`` does this for string names; variables here may be any
    hashable, such as the ints of a chain.)
    """
    if isinstance(output, str):
        return (output,)
    if isinstance(output, bytes | Tensor | Mapping) or not isinstance(output, Iterable):
        raise ValidationError(subject, "must be a sequence of variables (a single string is one "
                              "variable)", found=f"{output!r} ({type(output).__name__})",
                              fix="pass () to keep no variable")
    out = tuple(output)
    for v in out:
        if not _is_hashable(v):
            raise ValidationError(subject, "variables must be hashable (str, int, ...)",
                                  found=f"{v!r} ({type(v).__name__})")
    if len(set(out)) != len(out):
        raise ShapeError(subject, "repeats a variable", found=out, fix="name each once")
    return out


def _check_flag(value: Any, subject: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(subject, "must be True or False", found=repr(value))
    return value


class CheckedContraction(NamedTuple):
    factors: list[Tensor]
    scopes: list[tuple[Var, ...]]
    output: tuple[Var, ...]
    cards: dict[Var, int]
    batch: torch.Size


def check_contraction(
    factors: Any, scopes: Any, output: Any, check: Any, subject: str = "contract"
) -> CheckedContraction:
    if isinstance(factors, Tensor | str | bytes | Mapping) or not isinstance(factors, Sequence):
        raise ValidationError(subject, "factors must be a list of tensors",
                              found=type(factors).__name__, fix="wrap a single factor as [f]")
    factor_list = list(factors)
    scope_list = _as_scopes(scopes, subject)
    if len(factor_list) != len(scope_list):
        raise ShapeError(
            subject,
            "needs one scope per factor",
            found=f"{len(factor_list)} factors and {len(scope_list)} scopes",
        )
    check = _check_flag(check, f"{subject} validate")
    out = _as_vars(output, f"{subject} output")
    cards: dict[Var, int] = {}
    batch_shapes = []
    for i, f in enumerate(factor_list):
        if not isinstance(f, Tensor):
            raise ValidationError(f"factor {i}", "must be a torch.Tensor of log-values",
                                  found=type(f).__name__, fix="convert with torch.as_tensor(...)")
    if factor_list:
        dtype, device = factor_list[0].dtype, factor_list[0].device
        if not dtype.is_floating_point:
            raise DtypeMismatchError(
                "factor 0", "log-values must be floating point", found=dtype,
                fix="cast with .double()",
            )
    for i, (f, scope) in enumerate(zip(factor_list, scope_list, strict=True)):
        if f.dtype != dtype:
            raise DtypeMismatchError(
                f"factor {i}",
                f"dtype differs from factor 0 ({dtype})",
                found=f.dtype,
                fix="cast all factors to one dtype",
            )
        if f.device != device:
            raise DeviceMismatchError(
                f"factor {i}",
                f"device differs from factor 0 ({device})",
                found=f.device,
                fix="move all factors to one device",
            )
        if f.dim() < len(scope):
            raise ShapeError(
                f"factor {i}",
                f"has {f.dim()} dimensions but its scope names {len(scope)} variables",
                found=tuple(f.shape),
            )
        var_shape = f.shape[f.dim() - len(scope) :]
        for v, n in zip(scope, var_shape, strict=True):
            if cards.setdefault(v, n) != n:
                raise ShapeError(
                    f"factor {i}",
                    f"variable {v!r} has {n} states here but {cards[v]} in an earlier factor",
                    found=tuple(f.shape),
                    fix="give every factor the same cardinality for this variable",
                )
        batch_shapes.append(f.shape[: f.dim() - len(scope)])
    if check and factor_list:
        _check_log_values(factor_list, scope_list)
    for v in out:
        if v not in cards:
            raise UnknownVariableError(
                subject,
                f"output variable {v!r} is in no factor's scope",
                fix=f"choose among {list(cards)}",
            )
    batch = _broadcast(batch_shapes, subject)
    return CheckedContraction(factor_list, scope_list, out, cards, batch)


def _broadcast(shapes: list[torch.Size], subject: str) -> torch.Size:
    """The broadcast of ``shapes`` (``torch.broadcast_shapes`` imports sympy: 0.5 s once)."""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for k, n in enumerate(s, ndim - len(s)):
            if n != 1:
                if out[k] not in (1, n):
                    raise ShapeError(subject, "factor batch shapes do not broadcast",
                                     found=[tuple(b) for b in shapes])
                out[k] = n
    return torch.Size(out)


def _check_log_values(factors: list[Tensor], scopes: list[tuple[Var, ...]]) -> None:
    """Refuse NaN and +inf log-values with one host synchronisation for all factors."""
    inf = math.inf
    # ``f < inf`` is False exactly at NaN and +inf: one comparison per factor, one sync in all.
    ok = torch.stack([(f.detach() < inf).all() for f in factors])
    if bool(ok.all()):
        return
    for i, (f, scope) in enumerate(zip(factors, scopes, strict=True)):
        if bool(torch.isnan(f).any()):
            raise NonFiniteError(
                f"factor {i} over {scope}",
                "log-values contain NaN",
                fix="mark impossible entries with -inf, not NaN",
            )
        if bool(torch.isposinf(f).any()):
            raise NonFiniteError(
                f"factor {i} over {scope}",
                "log-values contain +inf (infinite probability)",
                fix="log-values must be < +inf; rescale the factor",
            )
