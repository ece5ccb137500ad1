"""Helpers for the property and fuzz tests: a call must give a typed error or a sound answer.

``outcome(fn, *args, **kwargs)`` calls ``fn`` and classifies what happened:

- ``"error"``: it raised a :class:`probforge.errors.ProbforgeError` (the message is kept);
- ``"value"``: it returned, and every floating tensor or float in the result is free of NaN
  (and of infinities, unless ``allow_inf``).

Anything else fails the test with the offending exception or value shown: a raw exception
from torch, numpy or Python, a NaN, or an infinity where none is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from probforge.errors import ProbforgeError

__all__ = ["Outcome", "assert_no_nan", "outcome"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a call did: ``kind`` is ``"error"`` or ``"value"``."""

    kind: str
    value: Any = None
    error: ProbforgeError | None = None


def _walk(obj: Any, path: str, allow_inf: bool, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            x = obj.detach()
            if bool(torch.isnan(x).any()):
                raise AssertionError(f"NaN in the result at {path}: {x.flatten()[:8]}")
            if not allow_inf and bool(torch.isinf(x).any()):
                raise AssertionError(f"inf in the result at {path}: {x.flatten()[:8]}")
        return
    if isinstance(obj, float):
        if math.isnan(obj):
            raise AssertionError(f"NaN in the result at {path}")
        if not allow_inf and math.isinf(obj):
            raise AssertionError(f"inf in the result at {path}")
        return
    if isinstance(obj, str | bytes | int | bool | type(None)):
        return
    seen.add(id(obj))
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _walk(v, f"{path}[{k!r}]", allow_inf, seen)
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for k in obj._fields:
            _walk(getattr(obj, k), f"{path}.{k}", allow_inf, seen)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _walk(v, f"{path}[{i}]", allow_inf, seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _walk(getattr(obj, f.name), f"{path}.{f.name}", allow_inf, seen)


def assert_no_nan(result: Any, *, allow_inf: bool = False) -> None:
    """Fail if a tensor or float anywhere in ``result`` is NaN (or infinite, unless allowed).

    Walks mappings, lists, tuples, named tuples and dataclasses.
    """
    _walk(result, "result", allow_inf, set())


def outcome(fn: Callable[..., Any], *args: Any, allow_inf: bool = False, **kwargs: Any) -> Outcome:
    """Call ``fn(*args, **kwargs)``: a typed error or a NaN-free value, else fail the test.

    ``allow_inf`` accepts infinities in the result (a log-probability of an impossible event
    is ``-inf`` by design).
    """
    try:
        value = fn(*args, **kwargs)
    except ProbforgeError as err:
        assert str(err).strip(), f"{type(err).__name__} with an empty message"
        return Outcome("error", error=err)
    except Exception as err:  # what slipped through
        raise AssertionError(
            f"raw {type(err).__name__} (not a probforge error) from "
            f"{getattr(fn, '__qualname__', fn)}: {err}"
        ) from err
    assert_no_nan(value, allow_inf=allow_inf)
    return Outcome("value", value=value)
