"""Sum-product (and max-product, sampling) contraction of named log-space factors.

A *factor* here is a tensor of log-values whose trailing dimensions are indexed by named
variables (its *scope*) and whose leading dimensions are batch dimensions, broadcast across
factors. :func:`contract` multiplies all factors and eliminates every variable not in ``output``
in the given semiring, pairwise along a contraction path found by ``opt_einsum`` and cached per
(scopes, cardinalities, output). :func:`contract_argmax` and :func:`contract_sample` also recover
the eliminated variables: the MAP assignment, or exact joint posterior draws (Gumbel-max on the
tables recorded during the forward pass).

Examples
--------
>>> import torch
>>> from probforge.ops import contract, contract_argmax
>>> a = torch.log(torch.tensor([0.6, 0.4]))                  # p(A)
>>> ab = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8]]))   # p(B | A)
>>> contract([a, ab], [("A",), ("A", "B")], ["B"]).exp()    # p(B)
tensor([0.6200, 0.3800])
>>> best = contract_argmax([a, ab], [("A",), ("A", "B")])
>>> best.value.exp(), int(best.assignment["A"]), int(best.assignment["B"])
(tensor(0.5400), 0, 0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import opt_einsum
import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.semiring import LOG, MAX, SAMPLE, Semiring, get_semiring
from probforge.ops.special import finite_shift, logsumexp, safe_log

__all__ = [
    "ContractionCost",
    "Traceback",
    "contract",
    "contract_argmax",
    "contract_sample",
    "contraction_cost",
    "contraction_path",
]

Var = Hashable
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Traceback(NamedTuple):
    """Result of a contraction that recovers eliminated variables.

    Attributes
    ----------
    value : Tensor, shape batch + output cards
        Max-marginal (max semiring) or log-sum (sample semiring) over the eliminated variables.
    assignment : dict
        Eliminated variable -> LongTensor of shape ``sample_shape + batch + output cards``: the
        maximising (or sampled) state for each batch entry and each output configuration.
    """

    value: Tensor
    assignment: dict[Var, Tensor]


class _Step(NamedTuple):
    table: Tensor  # log-table, batch + keep + elim dims
    keep: tuple[Var, ...]
    elim: tuple[Var, ...]


@functools.lru_cache(maxsize=4096)
def _cached_path(
    scopes: tuple[tuple[int, ...], ...],
    output: tuple[int, ...],
    cards: tuple[int, ...],
    optimize: str,
) -> tuple[tuple[int, ...], ...]:
    symbols = [opt_einsum.get_symbol(i) for i in range(len(cards))]
    eq = ",".join("".join(symbols[v] for v in s) for s in scopes)
    eq += "->" + "".join(symbols[v] for v in output)
    shapes = [tuple(cards[v] for v in s) for s in scopes]
    path, _ = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=optimize)
    return tuple(tuple(p) for p in path)


Path = str | Sequence[Sequence[int]]


class ContractionCost(NamedTuple):
    """Size of a contraction, estimated before running it.

    Attributes
    ----------
    largest_table : int
        Entries of the largest table formed (per batch entry), eliminated variables included.
    total_entries : int
        Entries of all tables formed, summed (a proxy for time).
    """

    largest_table: int
    total_entries: int

    def bytes(self, itemsize: int = 8, batch: int = 1) -> int:
        """Memory of the largest table for ``batch`` entries of ``itemsize`` bytes."""
        return self.largest_table * itemsize * batch


def contraction_cost(
    scopes: Sequence[Sequence[Var]],
    cards: Mapping[Any, int],
    output: Sequence[Var] = (),
    optimize: Path = "auto",
) -> ContractionCost:
    """Estimate the tables a contraction would form, without allocating any.

    Parameters
    ----------
    scopes, cards, output, optimize
        As in :func:`contraction_path`.

    Examples
    --------
    >>> contraction_cost([("a", "b"), ("b", "c")], {"a": 2, "b": 3, "c": 4})
    ContractionCost(largest_table=24, total_entries=24)
    """
    ops = [tuple(s) for s in scopes]
    largest = max((math.prod(cards[v] for v in s) for s in ops), default=1)
    total = 0
    out_set = set(output)
    for idx in [*contraction_path(scopes, cards, output, optimize), None]:
        if idx is None:  # the finishing step of an explicit path that stops early
            if len(ops) <= 1 and set(ops[0] if ops else ()) <= out_set:
                break
            idx = tuple(range(len(ops)))
        group = [ops[i] for i in idx]
        for i in sorted(idx, reverse=True):
            del ops[i]
        needed = set(output).union(*(set(s) for s in ops))
        union = tuple(dict.fromkeys(v for s in group for v in s))
        size = math.prod(cards[v] for v in union)
        largest, total = max(largest, size), total + size
        ops.append(tuple(v for v in union if v in needed))
    return ContractionCost(largest, total)


def contraction_path(
    scopes: Sequence[Sequence[Var]],
    cards: Mapping[Any, int],
    output: Sequence[Var] = (),
    optimize: Path = "auto",
) -> list[tuple[int, ...]]:
    """The pairwise contraction order ``contract`` would use (opt_einsum path format).

    Parameters
    ----------
    scopes : sequence of sequences of variable names
    cards : dict
        Variable -> number of states.
    output : sequence of variable names
    optimize : str or sequence of sequences of int
        An opt_einsum strategy (``"auto"``, ``"greedy"``, ``"optimal"``, ``"dp"``, ...), or an
        explicit path, returned as given after checking it is well formed.

    Returns
    -------
    list of tuples of int
        Each step names the positions (in the current operand list) of the operands it combines;
        they are removed and the result is appended (opt_einsum's convention).
    """
    if not isinstance(optimize, str):
        return _check_path(optimize, len(scopes))
    index = {v: i for i, v in enumerate(cards)}
    key_scopes = tuple(tuple(index[v] for v in s) for s in scopes)
    key_cards = tuple(cards[v] for v in cards)
    return list(_cached_path(key_scopes, tuple(index[v] for v in output), key_cards, optimize))


def _check_path(path: Sequence[Sequence[int]], n: int) -> list[tuple[int, ...]]:
    out = []
    for k, step in enumerate(path):
        step = tuple(int(i) for i in step)
        if not step or len(set(step)) != len(step) or not all(0 <= i < n for i in step):
            raise ValidationError(
                f"contraction path step {k}",
                f"must name distinct operand positions in [0, {n})",
                found=step,
            )
        n -= len(step) - 1
        out.append(step)
    return out


def _validate(
    factors: Sequence[Tensor], scopes: Sequence[Sequence[Var]], output: Sequence[Var], check: bool
) -> tuple[dict[Var, int], torch.Size]:
    if len(factors) != len(scopes):
        raise ShapeError(
            "contract",
            "needs one scope per factor",
            found=f"{len(factors)} factors and {len(scopes)} scopes",
        )
    if len(factors) == 0:
        raise ValidationError("contract", "needs at least one factor", found="none")
    cards: dict[Var, int] = {}
    batch_shapes = []
    dtype, device = factors[0].dtype, factors[0].device
    if not dtype.is_floating_point:
        raise DtypeMismatchError(
            "factor 0", "log-values must be floating point", found=dtype, fix="cast with .double()"
        )
    for i, (f, scope) in enumerate(zip(factors, scopes, strict=True)):
        scope = tuple(scope)
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
        if len(set(scope)) != len(scope):
            raise ShapeError(f"factor {i}", "scope repeats a variable", found=scope)
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
        if check:
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
                )
    if len(set(output)) != len(tuple(output)):
        raise ShapeError("contract", "output repeats a variable", found=tuple(output))
    for v in output:
        if v not in cards:
            raise UnknownVariableError(
                "contract",
                f"output variable {v!r} is in no factor's scope",
                fix=f"choose among {list(cards)}",
            )
    try:
        batch: torch.Size = torch.broadcast_shapes(*batch_shapes)  # type: ignore[no-untyped-call]
    except RuntimeError:
        raise ShapeError(
            "contract",
            "factor batch shapes do not broadcast",
            found=[tuple(b) for b in batch_shapes],
        ) from None
    return cards, batch


def _align(x: Tensor, scope: tuple[Var, ...], target: tuple[Var, ...]) -> Tensor:
    """View ``x`` (batch + scope) as batch + target, inserting size-1 dims for missing vars."""
    nb = x.dim() - len(scope)
    perm = list(range(nb)) + [nb + scope.index(v) for v in target if v in scope]
    x = x.permute(perm)
    shape = list(x.shape[:nb])
    it = iter(x.shape[nb:])
    for v in target:
        shape.append(next(it) if v in scope else 1)
    return x.reshape(shape)


def _eq(*scopes: tuple[Var, ...]) -> tuple[list[str], dict[Var, str]]:
    letters: dict[Var, str] = {}
    for s in scopes:
        for v in s:
            if v not in letters:
                if len(letters) == len(_LETTERS):
                    raise ShapeError(
                        "contract", "a pairwise step spans more than 52 variables", found=len(s)
                    )
                letters[v] = _LETTERS[len(letters)]
    return ["..." + "".join(letters[v] for v in s) for s in scopes], letters


def _pair_log(
    a: Tensor, av: tuple[Var, ...], b: Tensor, bv: tuple[Var, ...], keep: tuple[Var, ...]
) -> Tensor:
    """Log-sum-product of two factors via one einsum on shifted exponentials."""
    elim = [v for v in dict.fromkeys(av + bv) if v not in keep]
    if not elim:
        return _align(a, av, keep) + _align(b, bv, keep)
    nba, nbb = a.dim() - len(av), b.dim() - len(bv)
    a_dims = tuple(nba + av.index(v) for v in elim if v in av)
    b_dims = tuple(nbb + bv.index(v) for v in elim if v in bv)
    if not a_dims or not b_dims:
        # One factor involves no eliminated variable: it factors out of the sum exactly.
        if not a_dims:
            (x, xv, dims), (y, yv) = (b, bv, b_dims), (a, av)
        else:
            (x, xv, dims), (y, yv) = (a, av, a_dims), (b, bv)
        rest = tuple(v for v in xv if v not in elim)
        return _align(y, yv, keep) + _align(logsumexp(x, dim=dims), rest, keep)
    a_max = finite_shift(a.amax(dim=a_dims, keepdim=True))
    b_max = finite_shift(b.amax(dim=b_dims, keepdim=True))
    (ea, eb, eo), _ = _eq(av, bv, keep)
    prod = torch.einsum(f"{ea},{eb}->{eo}", torch.exp(a - a_max), torch.exp(b - b_max))
    a_rest = tuple(v for v in av if v not in elim)
    b_rest = tuple(v for v in bv if v not in elim)
    a_shift = _align(a_max.squeeze(a_dims), a_rest, keep)
    b_shift = _align(b_max.squeeze(b_dims), b_rest, keep)
    return safe_log(prod) + a_shift + b_shift


def _run(
    factors: Sequence[Tensor],
    scopes: Sequence[Sequence[Var]],
    output: Sequence[Var],
    semiring: Semiring,
    optimize: Path,
    record: bool,
    check: bool,
) -> tuple[Tensor, list[_Step], dict[Var, int], torch.Size]:
    output = tuple(output)
    cards, batch = _validate(factors, scopes, output, check)
    nbatch = len(batch)
    ops: list[tuple[Tensor, tuple[Var, ...]]] = []
    for f, s in zip(factors, scopes, strict=True):
        s = tuple(s)
        extra = nbatch - (f.dim() - len(s))
        ops.append((f.reshape((1,) * extra + tuple(f.shape)), s))
    steps: list[_Step] = []
    path = contraction_path([s for _, s in ops], cards, output, optimize)
    out_set = set(output)
    # An explicit path may stop early: finish with one step over everything that is left.
    for idx in [*path, None]:
        if idx is None:
            if len(ops) == 1 and set(ops[0][1]) <= out_set:
                break
            idx = tuple(range(len(ops)))
        group = [ops[i] for i in idx]
        for i in sorted(idx, reverse=True):
            del ops[i]
        needed = out_set.union(*(set(s) for _, s in ops))
        union = tuple(dict.fromkeys(v for _, s in group for v in s))
        keep = tuple(v for v in union if v in needed)
        elim = tuple(v for v in union if v not in needed)
        if semiring is LOG and len(group) == 2 and not record:
            (a, av), (b, bv) = group
            result = _pair_log(a, av, b, bv, keep)
        else:
            table = _align(group[0][0], group[0][1], keep + elim)
            for t, s in group[1:]:
                table = semiring.product(table, _align(t, s, keep + elim))
            nb = table.dim() - len(keep) - len(elim)
            result = semiring.reduce(table, tuple(range(nb + len(keep), table.dim())))
            if record and elim:
                steps.append(_Step(table, keep, elim))
        ops.append((result, keep))
    # Put the output variables in the order asked for.
    table = _align(ops[0][0], ops[0][1], output)
    table = table.expand(tuple(batch) + tuple(cards[v] for v in output))
    return table, steps, cards, batch


def contract(
    factors: Sequence[Tensor],
    scopes: Sequence[Sequence[Var]],
    output: Sequence[Var] = (),
    *,
    semiring: Semiring | str = "log",
    optimize: Path = "auto",
    validate: bool = True,
) -> Tensor:
    """Multiply log-space factors and eliminate every variable not in ``output``.

    Parameters
    ----------
    factors : sequence of Tensor
        Factor ``i`` has shape ``batch_i + (card(v) for v in scopes[i])``; the ``batch_i``
        broadcast against each other. Zero probability is ``-inf``.
    scopes : sequence of sequences of hashable
        The variable of each trailing dimension of each factor.
    output : sequence of hashable
        Variables to keep, in the order of the result's trailing dimensions.
    semiring : Semiring or {"log", "max", "sample"}
        ``"log"``: log-sum-exp elimination (marginals, log Z); ``"max"``: max-marginals.
        ``"sample"`` gives the same values as ``"log"``.
    optimize : str or explicit path
        opt_einsum path strategy, or a path as returned by :func:`contraction_path` (e.g. one
        derived from an elimination order).
    validate : bool
        Check for NaN / +inf log-values (one device sync per factor). Shapes are always checked.

    Returns
    -------
    Tensor, shape ``batch + (card(v) for v in output)``

    Raises
    ------
    ShapeError, UnknownVariableError, NonFiniteError, DtypeMismatchError, DeviceMismatchError

    Examples
    --------
    >>> import torch
    >>> f = torch.zeros(2, 3)                       # uniform over A (2) x B (3)
    >>> contract([f], [("A", "B")], ["A"]).exp()    # 3 configurations of B for each A
    tensor([3., 3.])
    """
    sr = get_semiring(semiring)
    value, _, _, _ = _run(factors, scopes, output, sr, optimize, record=False, check=validate)
    return value


def _traceback(
    steps: list[_Step],
    output: tuple[Var, ...],
    cards: dict[Var, int],
    batch: torch.Size,
    semiring: Semiring,
    sample_shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
) -> dict[Var, Tensor]:
    n = math.prod(sample_shape)
    nb = math.prod(batch)
    out_cards = tuple(cards[v] for v in output)
    o = math.prod(out_cards)
    values: dict[Var, Tensor] = {}
    grid = torch.arange(o, device=device)
    for v, c in zip(reversed(output), reversed(out_cards), strict=True):
        values[v] = (grid % c).expand(n, nb, o)
        grid = grid // c
    b_idx = torch.arange(nb, device=device).view(1, nb, 1)
    for step in reversed(steps):
        keep_cards = [cards[v] for v in step.keep]
        elim_cards = [cards[v] for v in step.elim]
        kc, ec = math.prod(keep_cards), math.prod(elim_cards)
        table = step.table.expand(tuple(batch) + tuple(keep_cards) + tuple(elim_cards))
        table = table.reshape(nb, kc, ec)
        lin = torch.zeros((n, nb, o), dtype=torch.long, device=device)
        for v, c in zip(step.keep, keep_cards, strict=True):
            lin = lin * c + values[v]
        chosen = semiring.select(table[b_idx, lin], generator)  # (n, nb, o)
        for v, c in zip(reversed(step.elim), reversed(elim_cards), strict=True):
            values[v] = chosen % c
            chosen = chosen // c
    shape = tuple(sample_shape) + tuple(batch) + out_cards
    return {v: t.reshape(shape) for v, t in values.items() if v not in output}


def contract_argmax(
    factors: Sequence[Tensor],
    scopes: Sequence[Sequence[Var]],
    output: Sequence[Var] = (),
    *,
    optimize: Path = "auto",
    validate: bool = True,
) -> Traceback:
    """Max-product contraction with traceback: the MAP assignment and its log-value.

    Parameters
    ----------
    factors, scopes, output, optimize, validate
        As in :func:`contract`.

    Returns
    -------
    Traceback
        ``value``: max over eliminated variables, shape ``batch + output cards``;
        ``assignment[v]``: maximising state of each eliminated ``v``, same shape (ties go to the
        lowest index).
    """
    value, steps, cards, batch = _run(
        factors, scopes, output, MAX, optimize, record=True, check=validate
    )
    assignment = _traceback(
        steps, tuple(output), cards, batch, MAX, (1,), None, factors[0].device
    )
    return Traceback(value, {v: a.squeeze(0) for v, a in assignment.items()})


def contract_sample(
    factors: Sequence[Tensor],
    scopes: Sequence[Sequence[Var]],
    output: Sequence[Var] = (),
    *,
    sample_shape: Sequence[int] = (),
    generator: torch.Generator | None = None,
    optimize: Path = "auto",
    validate: bool = True,
) -> Traceback:
    """Exact joint posterior draws of the eliminated variables (forward-filter, backward-sample).

    Parameters
    ----------
    factors, scopes, output, optimize, validate
        As in :func:`contract`.
    sample_shape : sequence of int
        Number of independent draws, as a shape.
    generator : torch.Generator, optional
        Source of randomness; the global RNG is used only when this is None.

    Returns
    -------
    Traceback
        ``value``: log-sum over the eliminated variables (the log normaliser), shape
        ``batch + output cards``; ``assignment[v]``: draws of shape
        ``sample_shape + batch + output cards`` from ``p(eliminated | output)``.

    Raises
    ------
    ZeroProbabilityEvidence
        If some batch entry has total probability zero, so there is nothing to sample from.
    """
    value, steps, cards, batch = _run(
        factors, scopes, output, SAMPLE, optimize, record=True, check=validate
    )
    if bool(torch.isneginf(value).any()):
        bad = torch.nonzero(torch.isneginf(value))[0].tolist()
        raise ZeroProbabilityEvidence(
            "contract_sample",
            "the product of the factors is zero everywhere at index "
            f"{bad}, so there is no distribution to sample from",
            fix="check evidence and deterministic (-inf) entries",
        )
    assignment = _traceback(
        steps, tuple(output), cards, batch, SAMPLE, tuple(sample_shape), generator,
        factors[0].device,
    )
    return Traceback(value, assignment)
