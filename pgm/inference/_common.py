"""What the exact engines share: model access, evidence reduction, cost checks, results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from pgm.factor import Factor
from pgm.inference.evidence import Evidence
from pgm.inference.ordering import BEST, HEURISTICS, OrderSpec
from probforge.errors import (
    MemoryBudgetExceeded,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import ContractionCost
from probforge.validate import check_int, check_names

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DiscreteModel",
    "MAPResult",
    "check_budget",
    "check_evidence_variables",
    "check_memory_budget",
    "check_model",
    "check_model_variables",
    "check_order",
    "check_query",
    "raise_if_zero",
]

#: Default ceiling on the largest table an exact method may form (bytes).
DEFAULT_MEMORY_BUDGET = 4 * 2**30


class DiscreteModel(Protocol):
    """What exact inference needs of a model (BayesianNetwork and MarkovNetwork provide it)."""

    name: str

    @property
    def variables(self) -> tuple[str, ...]: ...

    @property
    def states(self) -> dict[str, tuple[str, ...]]: ...

    @property
    def cards(self) -> dict[str, int]: ...

    def factors(self) -> list[Factor]: ...


class MAPResult(NamedTuple):
    """Most probable assignment.

    Attributes
    ----------
    indices : dict str -> LongTensor of shape batch_shape
        State index of each query variable.
    log_joint : Tensor, shape batch_shape
        ``log p(x*, e)`` (for a Markov network: the unnormalised log-potential plus nothing;
        subtract ``log_evidence`` for the posterior).
    log_evidence : Tensor, shape batch_shape
        ``log p(e)`` (log Z of the reduced model).
    states : dict str -> tuple of str
        State names, for :meth:`assignment`.
    """

    indices: dict[str, Tensor]
    log_joint: Tensor
    log_evidence: Tensor
    states: dict[str, tuple[str, ...]]

    @property
    def log_posterior(self) -> Tensor:
        """``log p(x* | e)``."""
        return self.log_joint - self.log_evidence

    def assignment(self) -> dict[str, Any]:
        """State names: a str per variable, or a list of str per variable for batched evidence."""
        out: dict[str, Any] = {}
        for v, t in self.indices.items():
            names = self.states[v]
            out[v] = names[int(t)] if t.dim() == 0 else [names[i] for i in t.tolist()]
        return out


def check_model(model: Any, who: str) -> None:
    """An inference engine's model: a Bayesian or Markov network with at least one variable.

    Checked once at construction (attribute look-ups only), so every later error names the
    model instead of failing inside the engine.
    """
    for attr in ("variables", "states", "cards", "factors"):
        if not hasattr(model, attr):
            raise ValidationError(
                who, "needs a BayesianNetwork or MarkovNetwork (an object with variables, "
                "states, cards and factors())", found=type(model).__name__,
                fix="build the model with pgm.BayesianNetwork or pgm.MarkovNetwork")
    if not model.variables:
        raise ValidationError(who, "the model has no variables, so there is nothing to infer",
                              found=repr(model))


def check_memory_budget(budget: Any, who: str) -> int:
    """``memory_budget``: an int number of bytes >= 1 (a bool or a float is refused)."""
    return check_int(budget, f"{who} memory_budget", minimum=1)


def check_order(order: Any, who: str, model: DiscreteModel | None = None) -> OrderSpec:
    """An elimination order spec: a heuristic name, a sequence of variable names or a callable.

    Checked at construction so that a typo fails before the first query (an explicit order's
    names against ``model``); that it lists exactly the variables to eliminate is checked when
    it is used.
    """
    if isinstance(order, str):
        if order not in (*HEURISTICS, BEST):
            raise ValidationError(
                f"{who} order", "unknown heuristic", found=repr(order),
                fix=f"use one of {[*HEURISTICS, BEST]}, a list of variables or a callable")
        return order
    if callable(order):
        fn: OrderSpec = order
        return fn
    if isinstance(order, Sequence) and not isinstance(order, bytes):
        if model is not None:
            return check_model_variables(model, order, f"{who} order")
        return check_names(order, f"{who} order")
    raise ValidationError(f"{who} order", "must be a heuristic name, a list of variables or a "
                          "callable (adjacency, cards, keep) -> order", found=type(order).__name__)


def check_model_variables(model: DiscreteModel, names: Any, subject: str) -> list[str]:
    """Variable names (one str is one name) that the model has; duplicates refused."""
    out = check_names(names, subject)
    for v in out:
        if v not in model.states:
            raise UnknownVariableError(
                f"model {model.name!r}", f"has no variable {v!r} ({subject})",
                fix="check the spelling against model.variables")
    return out


def check_evidence_variables(model: DiscreteModel, hard: Any, soft: Any,
                             who: str) -> tuple[list[str], list[str]]:
    """The variables an engine is built to observe: known, distinct, none both hard and soft."""
    hard_vars = check_model_variables(model, hard, f"{who} evidence_vars")
    soft_vars = check_model_variables(model, soft, f"{who} soft_evidence_vars")
    both = sorted(set(hard_vars) & set(soft_vars))
    if both:
        raise ValidationError(who, "a variable cannot carry both hard and soft evidence",
                              found=both, fix="give each variable one kind")
    return hard_vars, soft_vars


def check_query(model: DiscreteModel, variables: Any, ev: Evidence) -> list[str]:
    """Query variables (one str is one variable) must exist, be distinct and carry no hard
    evidence; returns them as a list."""
    names = check_names(variables, "query variables")
    for v in names:
        if v not in model.states:
            raise UnknownVariableError(
                f"model {model.name!r}", f"has no variable {v!r}",
                fix="check the spelling against model.variables",
            )
        if v in ev.hard:
            raise ValidationError(
                f"query variable {v!r}", "is also observed as evidence",
                fix="drop it from the query or from the evidence",
            )
    return names


def check_budget(cost: ContractionCost, dtype: torch.dtype, batch: tuple[int, ...],
                 budget: int, what: str) -> None:
    """Raise MemoryBudgetExceeded, with the estimate, before allocating too much."""
    itemsize = dtype.itemsize
    n = 1
    for b in batch:
        n *= b
    need = cost.bytes(itemsize, n)
    if need > budget:
        raise MemoryBudgetExceeded(
            what,
            f"exact inference would form a table of {cost.largest_table:,} entries "
            f"x {n:,} evidence rows = {need / 2**30:.2f} GiB, over the budget of "
            f"{budget / 2**30:.2f} GiB",
            fix="pass a larger memory_budget, try another elimination order, fewer evidence "
            "rows per call, or approximate inference",
        )


def raise_if_zero(log_z: Tensor, ev: Evidence, where: str) -> None:
    """ZeroProbabilityEvidence naming the offending rows, never NaN."""
    bad = torch.isneginf(log_z)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(-1)).reshape(-1)[:5].tolist()
        desc = {v: t.reshape(-1)[rows[0]].item() if t.dim() else t.item()
                for v, t in ev.hard.items()}
        raise ZeroProbabilityEvidence(
            where,
            f"the evidence has probability zero (rows {rows}{'...' if int(bad.sum()) > 5 else ''}"
            f" of {int(bad.numel())}; first offending row, as state indices: {desc})",
            fix="check the evidence against the model's deterministic (zero) entries",
        )
