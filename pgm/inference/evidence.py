"""Evidence for discrete models: hard (state names / indices, batched) and soft (likelihoods).

Hard evidence ``{var: state}`` conditions by slicing factors; ``N`` rows of evidence are given as
lists, LongTensors of shape (N,), or a pandas DataFrame of state names, and every result gains a
leading dimension N. Within a batch a row may leave a variable unobserved (``None`` / NaN in a
DataFrame, -1 in a tensor). Soft (virtual) evidence ``{var: likelihood}`` multiplies in a
non-negative likelihood vector of shape (card,) or (N, card).

Zero rows (empty lists, tensors of shape (0,) or (0, card), an empty DataFrame with columns) are
a batch of N = 0: every exact and approximate method then answers with tensors whose leading
dimension is 0 (there is nothing to compute, and nothing is NaN).

A variable can carry evidence only once: a mapping has one entry per key, a DataFrame with a
repeated column and a variable with both hard and soft evidence are refused.

Examples
--------
>>> from pgm.inference.evidence import resolve_evidence
>>> ev = resolve_evidence({"rain": ("no", "yes")}, {"rain": ["yes", "no", None]})
>>> ev.hard["rain"].tolist(), ev.batch_shape
([1, 0, -1], (3,))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pgm.factor import Factor, state_index
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)

__all__ = ["Evidence", "apply_evidence", "reduce_tables", "resolve_evidence"]


class Evidence(NamedTuple):
    """Resolved evidence.

    Attributes
    ----------
    hard : dict str -> LongTensor of shape batch_shape
        Observed state index per row; -1 where the row leaves the variable unobserved.
    soft : dict str -> Tensor of shape batch_shape + (card,) or (card,)
        Log-likelihood vectors.
    batch_shape : tuple
        ``()`` for a single evidence row, ``(N,)`` for N rows.
    """

    hard: dict[str, Tensor]
    soft: dict[str, Tensor]
    batch_shape: tuple[int, ...]

    @property
    def pattern(self) -> tuple[frozenset[str], frozenset[str]]:
        """Which variables carry hard and soft evidence (what structures depend on)."""
        return frozenset(self.hard), frozenset(self.soft)


def _is_missing(s: Any) -> bool:
    return s is None or (isinstance(s, float) and math.isnan(s))


def _column(var: str, states: Sequence[str], value: Any) -> Tensor:
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise DtypeMismatchError(f"evidence on {var!r}", "state indices must be integers",
                                     found=value.dtype, fix="use a LongTensor (-1: unobserved)")
        if value.dim() > 1:
            raise ShapeError(f"evidence on {var!r}", "a tensor of state indices must have shape "
                             "() or (N,)", found=tuple(value.shape))
        t = value.long()
        bad = (t < -1) | (t >= len(states))
        if bool(bad.any()):
            raise UnknownStateError(f"evidence on {var!r}",
                                    f"state index out of range [0, {len(states)})",
                                    found=int(t[bad][0]), fix="-1 marks an unobserved row")
        return t
    if isinstance(value, list | tuple):
        return torch.tensor([-1 if _is_missing(s) else state_index(var, states, s)
                             for s in value], dtype=torch.long)
    return torch.tensor(state_index(var, states, value), dtype=torch.long)


def resolve_evidence(
    states: Mapping[str, Sequence[str]],
    evidence: Any = None,
    soft_evidence: Mapping[str, Any] | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> Evidence:
    """Check and convert user evidence against a model's variables and states.

    Parameters
    ----------
    states : mapping
        The model's ``variable -> state names``.
    evidence : mapping or pandas.DataFrame, optional
        Hard evidence, see the module docstring.
    soft_evidence : mapping, optional
        ``variable -> likelihood`` (non-negative, finite, not all zero), shape (card,) or
        (N, card): a floating-point tensor (an integer tensor is refused, not cast) or a
        sequence of numbers.
    dtype : torch.dtype
        Floating dtype of the soft-evidence log-likelihoods.

    Returns
    -------
    Evidence
        ``batch_shape`` is ``(N,)`` for N rows, N = 0 included (an empty batch).
    """
    if not isinstance(states, Mapping):
        raise ValidationError("resolve_evidence", "states must be a mapping variable -> names",
                              found=type(states).__name__)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError("resolve_evidence", "dtype must be a floating-point torch.dtype",
                              found=repr(dtype))
    hard: dict[str, Tensor] = {}
    if evidence is not None:
        if hasattr(evidence, "to_dict") and hasattr(evidence, "columns"):  # pandas DataFrame
            cols = list(evidence.columns)
            dup = sorted({str(c) for c in cols if cols.count(c) > 1})
            if dup:
                raise ValidationError("evidence", "a DataFrame column is repeated, so a "
                                      "variable would be observed twice", found=dup,
                                      fix="keep one column per variable")
            evidence = {c: list(evidence[c]) for c in evidence.columns}
        if not isinstance(evidence, Mapping):
            raise ValidationError("evidence", "must be a mapping or a pandas DataFrame",
                                  found=type(evidence).__name__)
        for v, val in evidence.items():
            if v not in states:
                raise UnknownVariableError("evidence", f"names unknown variable {v!r}",
                                           fix="check the spelling against model.variables")
            hard[v] = _column(v, states[v], val).to(device)
    soft: dict[str, Tensor] = {}
    if soft_evidence is not None and not isinstance(soft_evidence, Mapping):
        raise ValidationError("soft evidence", "must be a mapping variable -> likelihoods",
                              found=type(soft_evidence).__name__,
                              fix="pass e.g. {'xray': [0.9, 0.2]}")
    for v, lik in (soft_evidence or {}).items():
        if v not in states:
            raise UnknownVariableError("soft evidence", f"names unknown variable {v!r}")
        if isinstance(lik, Tensor) and not lik.is_floating_point():
            raise DtypeMismatchError(f"soft evidence on {v!r}",
                                     "likelihoods must be a floating-point tensor",
                                     found=lik.dtype, fix="convert with .double()")
        try:
            t = torch.as_tensor(lik, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError(f"soft evidence on {v!r}", "likelihoods must be a tensor or "
                                  "a sequence of numbers", found=type(lik).__name__) from err
        if t.shape[-1:] != (len(states[v]),) or t.dim() > 2:
            raise ShapeError(f"soft evidence on {v!r}",
                             f"needs shape ({len(states[v])},) or (N, {len(states[v])})",
                             found=tuple(t.shape))
        if not bool(torch.isfinite(t).all()):
            raise NonFiniteError(f"soft evidence on {v!r}",
                                 "likelihoods must be finite", found=t.tolist())
        if bool((t < 0).any()):
            raise ValidationError(f"soft evidence on {v!r}",
                                  "likelihoods must be non-negative", found=t.tolist())
        if bool((t.sum(-1) == 0).any()):
            raise ValidationError(f"soft evidence on {v!r}",
                                  "a likelihood vector is zero for every state")
        soft[v] = torch.log(t)
    both = sorted(set(hard) & set(soft))
    if both:
        raise ValidationError("evidence", "a variable has both hard and soft evidence",
                              found=both, fix="give one kind per variable")
    sizes = {tuple(t.shape) for t in hard.values() if t.dim() == 1}
    sizes |= {tuple(t.shape[:1]) for t in soft.values() if t.dim() == 2}
    if len(sizes) > 1:
        raise ShapeError("evidence", "batched evidence rows must all have the same length",
                         found=sorted(sizes))
    batch = next(iter(sizes)) if sizes else ()
    if batch:
        hard = {v: t.expand(batch) for v, t in hard.items()}
    elif any(int(t) == -1 for t in hard.values()):
        hard = {v: t for v, t in hard.items() if int(t) != -1}
    return Evidence(hard, soft, batch)


def apply_evidence(
    factors: Sequence[Factor], ev: Evidence
) -> tuple[list[Tensor], list[tuple[str, ...]]]:
    """Condition factors on evidence: log-tables (with leading batch dims) and their scopes.

    Fully observed hard evidence slices the factors (smaller tables); a variable unobserved in some
    rows instead gets an indicator factor (0 where allowed, -inf elsewhere). Soft evidence adds its
    log-likelihood as a unary factor.
    """
    return reduce_tables([f.log_values for f in factors], [f.variables for f in factors],
                         {v: c for f in factors for v, c in f.cards.items()}, ev, log=True)


def reduce_tables(
    tables: Sequence[Tensor],
    scopes: Sequence[tuple[str, ...]],
    cards: Mapping[str, int],
    ev: Evidence,
    *,
    log: bool,
) -> tuple[list[Tensor], list[tuple[str, ...]]]:
    """:func:`apply_evidence` on raw tables, in log space (``log=True``) or probability space."""
    sliced = {v: t for v, t in ev.hard.items() if not bool((t < 0).any())}
    partial = {v: t for v, t in ev.hard.items() if v not in sliced}
    out: list[Tensor] = []
    out_scopes: list[tuple[str, ...]] = []
    dtype, device = tables[0].dtype, tables[0].device
    for lv, scope in zip(tables, scopes, strict=True):
        vars_ = list(scope)
        for v in [u for u in scope if u in sliced]:
            idx = sliced[v]
            d = vars_.index(v)
            nb = lv.dim() - len(vars_)
            if idx.dim() == 0:
                lv = lv.select(nb + d, int(idx))
            elif nb == 0:  # first batched slice: the row dimension appears in front
                lv = lv.movedim(d, 0)[idx]
            else:
                lv = lv.movedim(nb + d, 1)[torch.arange(idx.shape[0], device=idx.device), idx]
            vars_.pop(d)
        out.append(lv)
        out_scopes.append(tuple(vars_))
    one = torch.tensor(0.0 if log else 1.0, dtype=dtype, device=device)
    zero = torch.tensor(-math.inf if log else 0.0, dtype=dtype, device=device)
    for v, idx in partial.items():
        allowed = (idx[:, None] == torch.arange(cards[v], device=idx.device)) | (idx[:, None] < 0)
        out.append(torch.where(allowed, one, zero))
        out_scopes.append((v,))
    for v, ll in ev.soft.items():
        ll = ll.to(dtype)
        out.append(ll if log else ll.exp())
        out_scopes.append((v,))
    return out, out_scopes
