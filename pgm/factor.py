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

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import contract, logsumexp
from probforge.validate import check_names, check_real

__all__ = ["Factor", "check_state_names", "default_states", "state_index"]


def check_state_names(names: Any, subject: str) -> tuple[str, ...]:
    """State names as a tuple of distinct strings (one string is refused: it is not a list).

    Parameters
    ----------
    names : sequence of str
        The state names of one variable.
    subject : str
        The variable, for the error message.
    """
    if isinstance(names, str | bytes) or not isinstance(names, Sequence):
        raise ValidationError(subject, "state names must be a sequence of strings, not "
                              f"{type(names).__name__}", found=repr(names),
                              fix="pass e.g. ['no', 'yes']")
    out = tuple(names)
    for n in out:
        if not isinstance(n, str):
            raise ValidationError(subject, "state names must be strings", found=repr(n),
                                  fix="name the states, e.g. [str(i) for i in range(card)]")
    if len(set(out)) != len(out):
        raise ValidationError(subject, "state names repeat", found=out)
    return out


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
    if isinstance(state, bool) or not isinstance(state, numbers.Integral):
        if isinstance(state, Tensor) and state.dim() == 0 and not state.is_floating_point() \
                and not state.is_complex() and state.dtype != torch.bool:
            state = int(state)
        else:
            raise ValidationError(
                f"variable {variable!r}", "a state must be a state name or an int index",
                found=repr(state),
            )
    state = int(state)
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
    variables : str or sequence of str
        Names of the trailing dimensions of ``log_values``, in order (one string is one
        variable, never a list of one-letter names).
    log_values : Tensor, shape batch + (card(v) for v in variables)
        Log-potentials, a floating-point tensor (an integer tensor is refused, not cast);
        ``-inf`` is zero. NaN and ``+inf`` are rejected; every variable needs at least one state.
    states : mapping str -> sequence of str, optional
        State names per variable (default ``"0"``, ``"1"``, ...); entries for other variables
        are ignored, so one mapping can serve several factors.
    """

    __slots__ = ("_log_values", "_states", "_variables")

    def __init__(
        self,
        variables: Sequence[str],
        log_values: Tensor,
        states: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not isinstance(variables, str):
            variables = tuple(variables) if isinstance(variables, Sequence) else variables
            if isinstance(variables, tuple) and len(set(variables)) != len(variables):
                raise ShapeError("Factor", "variables repeat", found=variables)
        variables = tuple(check_names(variables, "Factor variables"))
        if not isinstance(log_values, Tensor):
            raise ValidationError(
                f"Factor over {variables}", "log_values must be a torch.Tensor",
                found=type(log_values).__name__, fix="convert with torch.as_tensor(...)")
        if not log_values.is_floating_point():
            raise DtypeMismatchError(
                f"Factor over {variables}", "log_values must be a floating-point tensor",
                found=log_values.dtype, fix="pass torch.log(probs) as a float tensor")
        if states is not None and not isinstance(states, Mapping):
            raise ValidationError(f"Factor over {variables}", "states must be a mapping "
                                  "variable -> state names", found=type(states).__name__)
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
            if c == 0:  # a variable without states has no distribution (every sum is 0)
                raise ShapeError(f"Factor variable {v!r}", "needs at least one state",
                                 found=tuple(log_values.shape))
            names = (check_state_names(states[v], f"Factor variable {v!r}")
                     if states is not None and v in states else default_states(c))
            if len(names) != c:
                raise ShapeError(
                    f"Factor variable {v!r}",
                    f"{len(names)} state names for a dimension of size {c}",
                    found=names,
                )
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
        """Build from non-negative values (probabilities or potentials); 0 becomes ``-inf``.

        ``probs`` is a floating-point tensor (an integer tensor is refused, not cast) or a
        nested sequence of numbers (converted with the default dtype); NaN and ``inf`` are
        refused.
        """
        where = f"Factor over {variables if isinstance(variables, str) else tuple(variables)}"
        if not isinstance(probs, Tensor):
            try:
                probs = torch.as_tensor(probs, dtype=torch.get_default_dtype())
            except (TypeError, ValueError, RuntimeError) as err:
                raise ValidationError(where, "probs must be a tensor or a nested sequence of "
                                      "numbers", found=type(probs).__name__) from err
        elif not probs.is_floating_point():
            raise DtypeMismatchError(where, "probs must be a floating-point tensor",
                                     found=probs.dtype, fix="convert with .double() or .float()")
        if not bool(torch.isfinite(probs).all()):
            raise NonFiniteError(where, "probs contain NaN or inf",
                                 fix="use finite non-negative values (0 for impossible)")
        if bool((probs < 0).any()):
            raise ValidationError(where, "values must be non-negative", found=float(probs.min()))
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
        if not isinstance(other, Factor):
            raise ValidationError(repr(self), "can only be combined with another Factor",
                                  found=type(other).__name__)
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
        """Pointwise product (sum of log-values) over the union of variables.

        Both factors must share dtype and device (nothing is cast) and agree on the states of
        shared variables; their batch shapes broadcast.
        """
        states = self._merge_states(other)
        a, b = self._log_values, other._log_values
        if a.dtype != b.dtype or a.device != b.device:
            raise DtypeMismatchError(repr(self), "the factors of a product must share dtype and "
                                     "device", found=f"{a.dtype} on {a.device} vs {b.dtype} on "
                                     f"{b.device}", fix="cast one with .to(...)")
        out = tuple(dict.fromkeys(self._variables + other._variables))
        vals = contract(
            [self._log_values, other._log_values], [self._variables, other._variables], out,
            validate=False,
        )
        return Factor(out, vals, states)

    def __mul__(self, other: Factor) -> Factor:
        return self.product(other)

    def _check_vars(self, variables: str | Sequence[str]) -> list[str]:
        names = check_names(variables, f"variables of {self!r}")
        for v in names:
            if v not in self._states:
                raise UnknownVariableError(
                    repr(self), f"has no variable {v!r}", fix=f"use one of {list(self._variables)}"
                )
        return names

    def marginalize(self, variables: str | Sequence[str]) -> Factor:
        """Sum out ``variables`` (log-sum-exp); one string is one variable."""
        variables = self._check_vars(variables)
        keep = tuple(v for v in self._variables if v not in set(variables))
        vals = contract([self._log_values], [self._variables], keep, validate=False)
        return Factor(keep, vals, {v: self._states[v] for v in keep})

    def maximize(self, variables: str | Sequence[str]) -> Factor:
        """Max out ``variables``; one string is one variable."""
        variables = self._check_vars(variables)
        keep = tuple(v for v in self._variables if v not in set(variables))
        vals = contract([self._log_values], [self._variables], keep, semiring="max",
                        validate=False)
        return Factor(keep, vals, {v: self._states[v] for v in keep})

    def reduce(self, evidence: Mapping[str, Any]) -> Factor:
        """Condition on ``evidence`` (variable -> state name or index) by slicing.

        Variables of the evidence that are not in this factor are ignored (so one evidence
        mapping can reduce every factor of a model).
        """
        if not isinstance(evidence, Mapping):
            raise ValidationError(f"evidence for {self!r}", "must be a mapping variable -> state",
                                  found=type(evidence).__name__, fix="pass e.g. {'rain': 'yes'}")
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

    def permute(self, variables: str | Sequence[str]) -> Factor:
        """The same factor with its variables in the given order."""
        variables = tuple(check_names(variables, f"variables of {self!r}"))
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
        if not isinstance(other, Factor):
            raise ValidationError(repr(self), "allclose compares with another Factor",
                                  found=type(other).__name__)
        atol = check_real(atol, "allclose atol", minimum=0.0)
        if set(self._variables) != set(other._variables) or self._merge_states(other) is None:
            return False
        o = other.permute(self._variables)
        a, b = self._log_values, o._log_values
        if a.shape != b.shape or not torch.equal(torch.isneginf(a), torch.isneginf(b)):
            return False
        fin = torch.isfinite(a)
        return bool(torch.allclose(a[fin], b[fin].to(a.dtype), atol=atol, rtol=0))
