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

from pgm.factor import Factor, check_state_names, default_states
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.validate import check_names, check_real

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
        Probabilities, parents first and the child last: a floating-point tensor (an integer
        or bool tensor is refused, not cast) or nested sequences of numbers (converted with the
        default dtype). NaN, ``+inf`` and negative entries are refused; every axis needs at
        least one entry.
    parents : str or sequence of str
        Parent names in the order of the table's leading axes (one string is one parent).
    states : mapping, optional
        State names for the child and (optionally) the parents; default ``"0"``, ``"1"``, ...
    atol : float
        Tolerance (>= 0) for each row's sum; a row outside ``1 +- atol`` raises
        NormalisationError.
    log : bool
        ``probs`` holds log-probabilities (``-inf`` for zero).
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
        if not isinstance(variable, str):
            raise ValidationError("TabularCPD", "the variable must be a name (str)",
                                  found=repr(variable))
        where = f"CPD of {variable!r}"
        if not isinstance(parents, str | Tensor) and isinstance(parents, Sequence):
            parents = tuple(parents)
            if variable in parents or len(set(parents)) != len(parents):
                raise ValidationError(where, "parents repeat or include the child",
                                      found=parents)
        parents = tuple(check_names(parents, f"parents of {variable!r}"))
        if variable in parents:
            raise ValidationError(where, "parents repeat or include the child", found=parents)
        atol = check_real(atol, f"{where}: atol", minimum=0.0)
        if not isinstance(log, bool):
            raise ValidationError(where, "log must be a bool", found=repr(log))
        if states is not None and not isinstance(states, Mapping):
            raise ValidationError(where, "states must be a mapping variable -> state names",
                                  found=type(states).__name__)
        if isinstance(probs, Tensor):
            if not probs.is_floating_point():
                raise DtypeMismatchError(where, "the table must be a floating-point tensor",
                                         found=probs.dtype,
                                         fix="convert with .double() or .float()")
            t = probs
        else:
            try:
                t = torch.as_tensor(probs, dtype=torch.get_default_dtype())
            except (TypeError, ValueError, RuntimeError) as err:
                raise ValidationError(where, "the table must be a tensor or nested sequences "
                                      "of numbers of one rectangular shape",
                                      found=type(probs).__name__) from err
        if t.dim() != len(parents) + 1:
            raise ShapeError(
                where,
                f"table needs {len(parents) + 1} axes (parents {list(parents)} then the child)",
                found=tuple(t.shape),
            )
        if 0 in t.shape:
            raise ShapeError(where, "every variable needs at least one state",
                             found=tuple(t.shape))
        if bool(torch.isnan(t).any()):
            raise NonFiniteError(where, "table contains NaN")
        if not log and bool(torch.isinf(t).any()):
            raise NonFiniteError(where, "table contains inf", fix="use probabilities in [0, 1]")
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
            names = (check_state_names(states[v], f"{where}: states of {v!r}")
                     if states is not None and v in states else default_states(c))
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
        if not new._log_probs.is_floating_point():  # log-probabilities cannot be integers
            raise DtypeMismatchError(repr(self), "can only be cast to a floating-point dtype",
                                     found=new._log_probs.dtype)
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
    parents : str or sequence of str
        ``M`` binary parents (one string is one parent).
    weights : Tensor or sequence of float, shape (M,)
        A floating-point tensor (an integer tensor is refused) or numbers; finite.
    bias : float or 0-d floating Tensor
        Finite.

    Returns
    -------
    TabularCPD
        Table of shape ``(2,) * M + (2,)``.
    """
    where = f"sigmoid CPD of {variable!r}"
    parents = tuple(check_names(parents, f"parents of {variable!r}"))
    if isinstance(weights, Tensor):
        if not weights.is_floating_point():
            raise DtypeMismatchError(f"{where}: weights", "must be a floating-point tensor",
                                     found=weights.dtype, fix="convert with .double()")
        w = weights
    else:
        try:
            w = torch.as_tensor(weights, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError(f"{where}: weights", "must be a tensor or a sequence of "
                                  "numbers", found=type(weights).__name__) from err
    if isinstance(bias, Tensor):
        if bias.dim() != 0 or not bias.is_floating_point():
            raise ValidationError(f"{where}: bias", "must be a number or a 0-d floating tensor",
                                  found=f"{bias.dtype} of shape {tuple(bias.shape)}")
        if not bool(torch.isfinite(bias)):
            raise NonFiniteError(f"{where}: bias", "must be finite", found=float(bias))
    else:
        bias = check_real(bias, f"{where}: bias")
    if not bool(torch.isfinite(w).all()):
        raise NonFiniteError(f"{where}: weights", "must be finite", found=w.tolist())
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
