"""Discrete factors over named variables with named states, in log space.

A :class:`Factor` is immutable. Its ``log_values`` tensor has leading batch dimensions and one
trailing dimension per variable; zero probability (or potential) is ``-inf``. Products,
marginalisation and maximisation go through :func:`probforge.ops.contract`.

Examples
--------
>>> import torch
>>> from pgm.factor import Factor
>>> f = Factor.from_probs(["rain", "wet"], torch.tensor([[0.7, 0.1], [0.02, 0.18]]),
...                       states={"rain": ["no", "yes"], "wet": ["no", "yes"]})
>>> f.marginalize(["rain"]).probs()
tensor([0.7200, 0.2800])
>>> f.reduce({"wet": "yes"}).normalize().probs()
tensor([0.3571, 0.6429])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from probforge.errors import (
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import contract, logsumexp

__all__ = ["Factor", "default_states", "state_index"]


def default_states(card: int) -> tuple[str, ...]:
    """State names ``("0", "1", ...)`` for a variable given only by its cardinality."""
    return tuple(str(i) for i in range(card))


def state_index(variable: str, states: Sequence[str], state: Any) -> int:
    """Index of ``state`` among ``states``: a state name, or an int index.

    A string is looked up by name only (never reinterpreted as an index), so a typo fails loudly.
    """
    if isinstance(state, str):
        try:
            return list(states).index(state)
        except ValueError:
            raise UnknownStateError(
                f"variable {variable!r}",
                "has no such state",
                found=repr(state),
                fix=f"use one of {list(states)}",
            ) from None
    if isinstance(state, bool) or not isinstance(state, int):
        if isinstance(state, Tensor) and state.dim() == 0 and not state.is_floating_point():
            state = int(state)
        else:
            raise ValidationError(
                f"variable {variable!r}", "a state must be a state name or an int index",
                found=repr(state),
            )
    if not 0 <= state < len(states):
        raise UnknownStateError(
            f"variable {variable!r}",
            f"state index out of range [0, {len(states)})",
            found=state,
            fix=f"use a state name among {list(states)} or an index below {len(states)}",
        )
    return int(state)


class Factor:
    """A log-space table over named discrete variables.

    Parameters
    ----------
    variables : sequence of str
        Names of the trailing dimensions of ``log_values``, in order.
    log_values : Tensor, shape batch + (card(v) for v in variables)
        Log-potentials; ``-inf`` is zero. NaN and ``+inf`` are rejected.
    states : mapping str -> sequence of str, optional
        State names per variable (default ``"0"``, ``"1"``, ...).
    """

    __slots__ = ("_log_values", "_states", "_variables")

    def __init__(
        self,
        variables: Sequence[str],
        log_values: Tensor,
        states: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        variables = tuple(variables)
        if len(set(variables)) != len(variables):
            raise ShapeError("Factor", "variables repeat", found=variables)
        if not isinstance(log_values, Tensor) or not log_values.is_floating_point():
            raise ValidationError(
                f"Factor over {variables}", "log_values must be a floating-point tensor",
                found=type(log_values).__name__ if not isinstance(log_values, Tensor)
                else log_values.dtype,
            )
        if log_values.dim() < len(variables):
            raise ShapeError(
                f"Factor over {variables}",
                f"log_values has {log_values.dim()} dims for {len(variables)} variables",
                found=tuple(log_values.shape),
            )
        if bool(torch.isnan(log_values).any()) or bool(torch.isposinf(log_values).any()):
            raise NonFiniteError(
                f"Factor over {variables}", "log_values contain NaN or +inf",
                fix="use -inf for zero entries and finite values elsewhere",
            )
        cards = log_values.shape[log_values.dim() - len(variables):]
        st: dict[str, tuple[str, ...]] = {}
        for v, c in zip(variables, cards, strict=True):
            names = tuple(states[v]) if states is not None and v in states else default_states(c)
            if len(names) != c:
                raise ShapeError(
                    f"Factor variable {v!r}",
                    f"{len(names)} state names for a dimension of size {c}",
                    found=names,
                )
            if len(set(names)) != len(names):
                raise ValidationError(f"Factor variable {v!r}", "state names repeat", found=names)
            st[v] = names
        self._variables = variables
        self._log_values = log_values
        self._states = st

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_probs(
        cls,
        variables: Sequence[str],
        probs: Tensor,
        states: Mapping[str, Sequence[str]] | None = None,
    ) -> Factor:
        """Build from non-negative values (probabilities or potentials); 0 becomes ``-inf``."""
        if not isinstance(probs, Tensor):
            probs = torch.as_tensor(probs, dtype=torch.get_default_dtype())
        if bool((probs < 0).any()):
            raise ValidationError(
                f"Factor over {tuple(variables)}", "values must be non-negative",
                found=float(probs.min()),
            )
        return cls(variables, torch.log(probs), states)

    # properties ----------------------------------------------------------------------------
    @property
    def variables(self) -> tuple[str, ...]:
        """Variable names, in the order of the trailing dimensions."""
        return self._variables

    @property
    def log_values(self) -> Tensor:
        """The log-table, shape ``batch_shape + cards``."""
        return self._log_values

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        """State names per variable."""
        return dict(self._states)

    @property
    def cards(self) -> dict[str, int]:
        """Number of states per variable."""
        return {v: len(s) for v, s in self._states.items()}

    @property
    def batch_shape(self) -> torch.Size:
        """Leading (batch) dimensions of ``log_values``."""
        return self._log_values.shape[: self._log_values.dim() - len(self._variables)]

    def probs(self) -> Tensor:
        """``exp(log_values)``."""
        return self._log_values.exp()

    def __repr__(self) -> str:
        b = f", batch_shape={tuple(self.batch_shape)}" if self.batch_shape else ""
        return f"Factor({list(self._variables)}, cards={list(self.cards.values())}{b})"

    # algebra -------------------------------------------------------------------------------
    def _merge_states(self, other: Factor) -> dict[str, tuple[str, ...]]:
        merged = dict(self._states)
        for v, s in other._states.items():
            if v in merged and merged[v] != s:
                raise ShapeError(
                    f"variable {v!r}", "has different states in the two factors",
                    found=f"{list(merged[v])} vs {list(s)}",
                )
            merged[v] = s
        return merged

    def product(self, other: Factor) -> Factor:
        """Pointwise product (sum of log-values) over the union of variables."""
        states = self._merge_states(other)
        out = tuple(dict.fromkeys(self._variables + other._variables))
        vals = contract(
            [self._log_values, other._log_values], [self._variables, other._variables], out,
            validate=False,
        )
        return Factor(out, vals, states)

    def __mul__(self, other: Factor) -> Factor:
        return self.product(other)

    def _check_vars(self, variables: Sequence[str]) -> None:
        for v in variables:
            if v not in self._states:
                raise UnknownVariableError(
                    repr(self), f"has no variable {v!r}", fix=f"use one of {list(self._variables)}"
                )

    def marginalize(self, variables: Sequence[str]) -> Factor:
        """Sum out ``variables`` (log-sum-exp)."""
        self._check_vars(variables)
        keep = tuple(v for v in self._variables if v not in set(variables))
        vals = contract([self._log_values], [self._variables], keep, validate=False)
        return Factor(keep, vals, {v: self._states[v] for v in keep})

    def maximize(self, variables: Sequence[str]) -> Factor:
        """Max out ``variables``."""
        self._check_vars(variables)
        keep = tuple(v for v in self._variables if v not in set(variables))
        vals = contract([self._log_values], [self._variables], keep, semiring="max",
                        validate=False)
        return Factor(keep, vals, {v: self._states[v] for v in keep})

    def reduce(self, evidence: Mapping[str, Any]) -> Factor:
        """Condition on ``evidence`` (variable -> state name or index) by slicing.

        Variables of the evidence that are not in this factor are ignored.
        """
        vals, vars_ = self._log_values, list(self._variables)
        for v, s in evidence.items():
            if v not in self._states:
                continue
            i = state_index(v, self._states[v], s)
            d = vals.dim() - len(vars_) + vars_.index(v)
            vals = vals.select(d, i)
            vars_.remove(v)
        return Factor(vars_, vals, {v: self._states[v] for v in vars_})

    def normalize(self) -> Factor:
        """Divide by the sum over all variables (per batch entry).

        Raises
        ------
        ZeroProbabilityEvidence
            If the factor is zero everywhere (there is nothing to normalise).
        """
        dims = tuple(range(self._log_values.dim() - len(self._variables), self._log_values.dim()))
        if not dims:
            return Factor((), torch.zeros_like(self._log_values))
        log_z = logsumexp(self._log_values, dims, keepdim=True)
        if bool(torch.isneginf(log_z).any()):
            raise ZeroProbabilityEvidence(
                repr(self), "is zero everywhere, so it cannot be normalised"
            )
        return Factor(self._variables, self._log_values - log_z, self._states)

    def log_partition(self) -> Tensor:
        """``log`` of the sum over every configuration, shape ``batch_shape``."""
        return contract([self._log_values], [self._variables], (), validate=False)

    def permute(self, variables: Sequence[str]) -> Factor:
        """The same factor with its variables in the given order."""
        variables = tuple(variables)
        if sorted(variables) != sorted(self._variables):
            raise UnknownVariableError(
                repr(self), "permute needs exactly the factor's variables", found=variables
            )
        nb = len(self.batch_shape)
        perm = list(range(nb)) + [nb + self._variables.index(v) for v in variables]
        return Factor(variables, self._log_values.permute(perm), self._states)

    def to(self, *args: Any, **kwargs: Any) -> Factor:
        """Move or cast ``log_values`` like :meth:`torch.Tensor.to`."""
        return Factor(self._variables, self._log_values.to(*args, **kwargs), self._states)

    def allclose(self, other: Factor, atol: float = 1e-10) -> bool:
        """Same variables, states and values (after aligning variable order)."""
        if set(self._variables) != set(other._variables) or self._merge_states(other) is None:
            return False
        o = other.permute(self._variables)
        a, b = self._log_values, o._log_values
        if a.shape != b.shape or not torch.equal(torch.isneginf(a), torch.isneginf(b)):
            return False
        fin = torch.isfinite(a)
        return bool(torch.allclose(a[fin], b[fin].to(a.dtype), atol=atol, rtol=0))
