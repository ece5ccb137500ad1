"""A variable-elimination query contracted in probability space, for queries with large tables.

:func:`probforge.ops.contract` works in log space: every pairwise step shifts both operands by
their maxima, exponentiates, multiplies and takes the log again, about three passes over each
table. A query's tables can instead be exponentiated once, each divided by its largest entry
(the logs of those scales are added back), and contracted by plain products and sums along the
same elimination path (BLAS einsum): on barley's large queries this is about twice as fast. The
scaled tables hold entries at most 1, so nothing overflows; a result whose largest entry is below
:data:`TINY` of its scale may have lost entries to underflow, and then the caller's log-space
contraction answers instead.

Examples
--------
>>> from pgm.io import bundled_network
>>> from pgm.inference import VariableElimination
>>> from pgm.inference._prob_queries import prob_query
>>> ve = VariableElimination(bundled_network("asia"))
>>> p = prob_query(ve, "lung", {"smoke": "yes"})
>>> round(float(p[0]), 4)
0.1
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import opt_einsum
import torch
from torch import Tensor

from pgm.inference.elimination import VariableElimination

__all__ = ["TINY", "prob_query"]

#: Results whose largest (scaled) entry is below this may have underflowed.
TINY = 1e-250


def prob_query(ve: VariableElimination, variable: str, evidence: Any = None) -> Tensor | None:
    """Posterior of one variable, shape batch + (card,), contracted in probability space along
    ``ve``'s elimination path; None when underflow may have touched it (or the evidence has
    probability zero): use ``ve.query`` then."""
    ev = ve._evidence(evidence, None)
    tables, scopes, path = ve._plan(ev, [variable])
    symbols = {v: opt_einsum.get_symbol(i) for i, v in
               enumerate(dict.fromkeys(v for s in scopes for v in s))}
    ops: list[Tensor] = []
    for t, scope in zip(tables, scopes, strict=True):
        dims = tuple(range(t.dim() - len(scope), t.dim()))  # the table's own (not batch) dims
        m = t.amax(dim=dims, keepdim=True) if dims else t
        if not bool(torch.isfinite(m).all()):
            return None  # an all-zero table (row): the log-space path raises or answers
        ops.append(torch.exp(t - m))
    eq = ",".join("..." + "".join(symbols[v] for v in s) for s in scopes)
    eq += "->..." + symbols[variable]
    steps = tuple(tuple(step) for step in _complete(path, len(ops)))
    out: Tensor = _expression(eq, tuple(tuple(t.shape) for t in ops), steps)(
        *ops, backend="torch")
    top = out.amax(dim=-1, keepdim=True)
    if not bool((top > TINY).all()) or not math.isfinite(float(top.max())):
        return None
    return out / out.sum(dim=-1, keepdim=True)


@lru_cache(maxsize=1024)
def _expression(eq: str, shapes: tuple[tuple[int, ...], ...],
                path: tuple[tuple[int, ...], ...]) -> Any:
    """The compiled contraction (opt_einsum re-plans a path it is given on every call: on
    munin1's 75-table queries about half of each query's time)."""
    # a single operand has an empty path, which opt_einsum reads as "not optimised"
    return opt_einsum.contract_expression(eq, *shapes, optimize=list(path) or "auto")


def _complete(path: list[tuple[int, ...]], n: int) -> list[tuple[int, ...]]:
    """``path`` with a last step joining whatever operands it leaves (opt_einsum needs one)."""
    for step in path:
        n -= len(step) - 1
    return [*path, tuple(range(n))] if n > 1 else list(path)
