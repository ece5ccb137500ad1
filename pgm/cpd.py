"""Conditional probability distributions of discrete Bayesian networks.

A :class:`TabularCPD` stores ``p(variable | parents)`` as a table of shape
``(*parent_cards, card)``: parents first, the child last, each row over the last axis a
distribution. Rows are checked to sum to one within ``atol`` at construction and are never
renormalised.

Examples
--------
>>> from pgm.cpd import TabularCPD
>>> cpd = TabularCPD("wet", [[0.9, 0.1], [0.2, 0.8]], parents=["rain"],
...                  states={"wet": ["no", "yes"], "rain": ["no", "yes"]})
>>> cpd.num_free_parameters
2
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from pgm.factor import Factor, default_states
from probforge.errors import NonFiniteError, NormalisationError, ShapeError, ValidationError

__all__ = ["DEFAULT_ATOL", "TabularCPD", "sigmoid_cpd"]

#: Rows of a CPD must sum to one within this absolute tolerance. The bnlearn networks that pgmpy
#: ships round their tables; their worst row is off by 3e-7 (barley, pathfinder), so 1e-6 admits
#: all 24 of them while catching real mistakes. Pass ``atol`` to change it.
DEFAULT_ATOL = 1e-6


class TabularCPD:
    """``p(variable | parents)`` as a table.

    Parameters
    ----------
    variable : str
        The child variable.
    probs : Tensor or nested sequence, shape (*parent_cards, card)
        Probabilities, parents first and the child last.
    parents : sequence of str
        Parent names in the order of the table's leading axes.
    states : mapping, optional
        State names for the child and (optionally) the parents; default ``"0"``, ``"1"``, ...
    atol : float
        Tolerance for each row's sum; a row outside ``1 +- atol`` raises NormalisationError.
    """

    __slots__ = ("_log_probs", "_parents", "_states", "_variable")

    def __init__(
        self,
        variable: str,
        probs: Tensor | Sequence[Any],
        parents: Sequence[str] = (),
        states: Mapping[str, Sequence[str]] | None = None,
        *,
        atol: float = DEFAULT_ATOL,
        log: bool = False,
    ) -> None:
        parents = tuple(parents)
        t = probs if isinstance(probs, Tensor) else torch.as_tensor(
            probs, dtype=torch.get_default_dtype())
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        where = f"CPD of {variable!r}"
        if variable in parents or len(set(parents)) != len(parents):
            raise ValidationError(where, "parents repeat or include the child", found=parents)
        if t.dim() != len(parents) + 1:
            raise ShapeError(
                where,
                f"table needs {len(parents) + 1} axes (parents {list(parents)} then the child)",
                found=tuple(t.shape),
            )
        if bool(torch.isnan(t).any()):
            raise NonFiniteError(where, "table contains NaN")
        log_p = t if log else torch.log(t)
        if not log and bool((t < 0).any()):
            raise ValidationError(where, "probabilities must be >= 0", found=float(t.min()))
        if log and bool(torch.isposinf(t).any()):
            raise NonFiniteError(where, "log table contains +inf")
        sums = torch.exp(log_p).sum(-1)
        bad = (sums - 1).abs() > atol
        if bool(bad.any()):
            idx = tuple(torch.nonzero(bad)[0].tolist())
            raise NormalisationError(
                where,
                f"row for parent configuration {dict(zip(parents, idx, strict=True))} sums to "
                f"{float(sums[idx]):.6g}, not 1 within {atol}",
                fix="fix the table (probforge never renormalises silently)",
            )
        st: dict[str, tuple[str, ...]] = {}
        for v, c in zip((*parents, variable), t.shape, strict=True):
            names = tuple(states[v]) if states is not None and v in states else default_states(c)
            if len(names) != c:
                raise ShapeError(
                    where, f"{len(names)} state names for {v!r} but the table axis has {c}",
                    found=names,
                )
            st[v] = names
        self._variable = variable
        self._parents = parents
        self._log_probs = log_p
        self._states = st

    @property
    def variable(self) -> str:
        """The child variable."""
        return self._variable

    @property
    def parents(self) -> tuple[str, ...]:
        """Parents, in the order of the table's leading axes."""
        return self._parents

    @property
    def scope(self) -> tuple[str, ...]:
        """``parents + (variable,)``: the factor's variables."""
        return (*self._parents, self._variable)

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        """State names of the child and its parents."""
        return dict(self._states)

    @property
    def cardinality(self) -> int:
        """Number of states of the child."""
        return len(self._states[self._variable])

    @property
    def log_probs(self) -> Tensor:
        """Log-table, shape ``(*parent_cards, card)``."""
        return self._log_probs

    @property
    def probs(self) -> Tensor:
        """Probability table, shape ``(*parent_cards, card)``."""
        return self._log_probs.exp()

    @property
    def num_free_parameters(self) -> int:
        """``(card - 1) * prod(parent cards)`` (2^M for M binary parents of a binary child)."""
        return (self.cardinality - 1) * math.prod(self._log_probs.shape[:-1])

    def to_factor(self) -> Factor:
        """The CPD as a factor over ``parents + (variable,)``."""
        return Factor(self.scope, self._log_probs, self._states)

    def to(self, *args: Any, **kwargs: Any) -> TabularCPD:
        """Move or cast the table like :meth:`torch.Tensor.to` (no re-validation of values)."""
        new = object.__new__(TabularCPD)
        new._variable, new._parents, new._states = self._variable, self._parents, self._states
        new._log_probs = self._log_probs.to(*args, **kwargs)
        return new

    def __repr__(self) -> str:
        given = f" | {', '.join(self._parents)}" if self._parents else ""
        return f"TabularCPD(p({self._variable}{given}), shape={tuple(self._log_probs.shape)})"


def sigmoid_cpd(
    variable: str,
    parents: Sequence[str],
    weights: Tensor | Sequence[float],
    bias: float | Tensor,
) -> TabularCPD:
    """Sigmoid belief network CPD (textbook 11.10) over binary variables, as a table.

    ``p(variable = 1 | x) = sigmoid(bias + sum_i weights[i] * x_i)`` for binary parents ``x``.
    It has ``M + 1`` parameters where a full table has ``2^M``.

    Parameters
    ----------
    variable : str
    parents : sequence of str
        ``M`` binary parents.
    weights : Tensor, shape (M,)
    bias : float

    Returns
    -------
    TabularCPD
        Table of shape ``(2,) * M + (2,)``.
    """
    w = weights if isinstance(weights, Tensor) and weights.is_floating_point() else \
        torch.as_tensor(weights, dtype=torch.get_default_dtype())
    parents = tuple(parents)
    if w.shape != (len(parents),):
        raise ShapeError(f"sigmoid CPD of {variable!r}", "needs one weight per parent",
                         found=tuple(w.shape))
    grids = torch.meshgrid(*[torch.arange(2, dtype=w.dtype, device=w.device)] * len(parents),
                           indexing="ij") \
        if parents else ()
    logit = torch.as_tensor(bias, dtype=w.dtype) + sum(
        (wi * g for wi, g in zip(w, grids, strict=True)),
        torch.zeros((2,) * len(parents), dtype=w.dtype, device=w.device))
    log_p = torch.stack([torch.nn.functional.logsigmoid(-logit),
                         torch.nn.functional.logsigmoid(logit)], dim=-1)
    return TabularCPD(variable, log_p, parents, log=True)
