"""Sum-product (and max-product, sampling) contraction of named log-space factors.

A *factor* here is a tensor of log-values whose trailing dimensions are indexed by named
variables (its *scope*) and whose leading dimensions are batch dimensions, broadcast across
factors. :func:`contract` multiplies all factors and eliminates every variable not in ``output``
in the given semiring, pairwise along a contraction path found by ``opt_einsum`` and cached per
(scopes, cardinalities, output). :func:`contract_argmax` and :func:`contract_sample` also recover
the eliminated variables: the MAP assignment, or exact joint posterior draws (Gumbel-max on the
tables recorded during the forward pass).

Conventions checked at every entry point (once per call, before any work):

- A scope is a tuple (or list) of hashable variables. A bare string scope of several characters
  is refused as ambiguous (it used to mean its characters; write ``("AB",)`` or ``("A", "B")``);
  ``output`` given as one string is *one* variable. A bare int or other non-sequence scope is
  refused. The checks live in :mod:`probforge.ops.contract_checks`.
- Factors are floating-point tensors of log-values (an integer tensor is refused, not cast);
  ``-inf`` is probability zero, NaN and ``+inf`` are refused (unless ``validate=False``).
- No factors: the empty product is 1, so the result is ``log 1 = 0`` (a 0-d tensor of torch's
  default dtype on the CPU, there being no factor to take them from) and nothing is eliminated.
- A variable with 0 states: a sum (or max) over no configuration is the semiring's zero, so
  eliminating it gives ``-inf``; keeping it in ``output`` gives an empty dimension. Batch
  dimensions of size 0 give empty results.

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
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import opt_einsum
import opt_einsum.paths
import torch
from torch import Tensor

from probforge.errors import (
    ShapeError,
    ZeroProbabilityEvidence,
)
from probforge.ops.contract_checks import (
    Var,
    check_contraction,
    check_path,
    check_plan,
    check_strategy,
)
from probforge.ops.random import check_generator
from probforge.ops.semiring import LOG, MAX, SAMPLE, Semiring, get_semiring
from probforge.ops.special import finite_shift, logsumexp, safe_log
from probforge.validate import check_int, check_shape

__all__ = [
    "ContractionCost",
    "Traceback",
    "contract",
    "contract_argmax",
    "contract_sample",
    "contraction_cost",
    "contraction_path",
]

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
        """Memory of the largest table for ``batch`` entries of ``itemsize`` bytes.

        Parameters
        ----------
        itemsize : int, >= 1
            Bytes per entry (8 for float64).
        batch : int, >= 0
            Number of batch entries.
        """
        size = check_int(itemsize, "ContractionCost.bytes itemsize", minimum=1)
        count = check_int(batch, "ContractionCost.bytes batch", minimum=0)
        return self.largest_table * size * count


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

    Returns
    -------
    ContractionCost
        With no scopes nothing is formed: ``ContractionCost(1, 0)``.

    Raises
    ------
    ValidationError, ShapeError, UnknownVariableError
        As :func:`contraction_path`.

    Examples
    --------
    >>> contraction_cost([("a", "b"), ("b", "c")], {"a": 2, "b": 3, "c": 4})
    ContractionCost(largest_table=24, total_entries=24)
    """
    scope_list, card_map, out = check_plan(scopes, cards, output, "contraction_cost")
    return _cost(scope_list, card_map, out, _path(scope_list, card_map, out, optimize))


def _cost(
    scopes: list[tuple[Var, ...]],
    cards: Mapping[Any, int],
    output: tuple[Var, ...],
    path: list[tuple[int, ...]],
) -> ContractionCost:
    ops = list(scopes)
    largest = max((math.prod(cards[v] for v in s) for s in ops), default=1)
    total = 0
    out_set = set(output)
    for idx in [*path, None]:
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
        As in :func:`contract` (a bare string scope of several characters is refused).
    cards : dict
        Variable -> number of states (an int >= 0), for every variable of every scope.
    output : sequence of variable names
        Variables of the scopes to keep (a string is one variable).
    optimize : str or sequence of sequences of int
        An opt_einsum strategy (``"auto"``, ``"greedy"``, ``"optimal"``, ``"dp"``, ...), or an
        explicit path, returned as given after checking it is well formed.

    Returns
    -------
    list of tuples of int
        Each step names the positions (in the current operand list) of the operands it combines;
        they are removed and the result is appended (opt_einsum's convention). With no scopes
        the path is empty.

    Raises
    ------
    ValidationError
        Malformed scopes, cards, output or path, or an unknown strategy name.
    UnknownVariableError
        A scope variable without a cardinality, or an output variable in no scope.
    """
    scope_list, card_map, out = check_plan(scopes, cards, output, "contraction_path")
    return _path(scope_list, card_map, out, optimize)


def _path(
    scopes: list[tuple[Var, ...]],
    cards: Mapping[Any, int],
    output: tuple[Var, ...],
    optimize: Path,
) -> list[tuple[int, ...]]:
    """``contraction_path`` on checked arguments (also the hot path of :func:`contract`)."""
    if not isinstance(optimize, str):
        return check_path(optimize, len(scopes))
    check_strategy(optimize)
    if not scopes:
        return []
    index = {v: i for i, v in enumerate(cards)}
    key_scopes = tuple(tuple(index[v] for v in s) for s in scopes)
    key_cards = tuple(cards[v] for v in cards)
    return list(_cached_path(key_scopes, tuple(index[v] for v in output), key_cards, optimize))


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
    return safe_log(prod, validate=False) + a_shift + b_shift  # prod >= 0 by construction


class _Result(NamedTuple):
    value: Tensor
    steps: list[_Step]
    cards: dict[Var, int]
    batch: torch.Size
    output: tuple[Var, ...]


def _run(
    factors: Any,
    scopes: Any,
    output: Any,
    semiring: Semiring,
    optimize: Path,
    record: bool,
    check: Any,
    subject: str,
) -> _Result:
    checked = check_contraction(factors, scopes, output, check, subject)
    cards, batch, output = checked.cards, checked.batch, checked.output
    if not checked.factors:  # the empty product is 1: log 1 = 0
        return _Result(torch.zeros(()), [], cards, batch, output)
    f0 = checked.factors[0]
    out_shape = tuple(batch) + tuple(cards[v] for v in output)
    path = _path(checked.scopes, cards, output, optimize)  # checks an explicit path, too
    if 0 in cards.values():
        # A variable without states: eliminating it sums (or maximises) over nothing, the
        # semiring's zero; keeping it gives an empty result. The empty slices' sums are exactly
        # 0 and keep the result in the autograd graph without any NaN.
        anchor = sum((f.reshape(-1)[:0].sum() for f in checked.factors), f0.new_zeros(()))
        value = f0.new_full(out_shape, -math.inf) + anchor
        return _Result(value, [], cards, batch, output)
    nbatch = len(batch)
    ops: list[tuple[Tensor, tuple[Var, ...]]] = []
    for f, s in zip(checked.factors, checked.scopes, strict=True):
        extra = nbatch - (f.dim() - len(s))
        ops.append((f.reshape((1,) * extra + tuple(f.shape)), s))
    steps: list[_Step] = []
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
    table = table.expand(out_shape)
    return _Result(table, steps, cards, batch, output)


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
        broadcast against each other. Floating point only (an integer tensor is refused, not
        cast); zero probability is ``-inf``. An empty list is the empty product, 1: the result
        is ``log 1 = 0`` (0-d, torch's default dtype, CPU).
    scopes : sequence of sequences of hashable
        The variable of each trailing dimension of each factor, without repeats, as a tuple or
        list. A bare string scope of several characters is refused as ambiguous (write
        ``("AB",)`` or ``("A", "B")``); a one-character string is that one variable.
    output : sequence of hashable
        Variables to keep, in the order of the result's trailing dimensions, each in some
        scope, without repeats. One string is one variable.
    semiring : Semiring or {"log", "max", "sample"}
        ``"log"``: log-sum-exp elimination (marginals, log Z); ``"max"``: max-marginals.
        ``"sample"`` gives the same values as ``"log"``. Other names are refused.
    optimize : str or explicit path
        opt_einsum path strategy, or a path as returned by :func:`contraction_path` (e.g. one
        derived from an elimination order).
    validate : bool
        Refuse NaN / +inf log-values (one device sync for all factors). Shapes, dtypes, devices
        and names are always checked.

    Returns
    -------
    Tensor, shape ``batch + (card(v) for v in output)``
        A variable with 0 states gives ``-inf`` when eliminated (a sum or max over nothing)
        and an empty dimension when kept.

    Raises
    ------
    ValidationError
        Malformed arguments: factors not a list of tensors, a scope that is not a sequence of
        hashable variables, an unknown semiring or path strategy, a bad path, ``validate`` not
        a bool.
    ShapeError, UnknownVariableError, NonFiniteError, DtypeMismatchError, DeviceMismatchError

    Examples
    --------
    >>> import torch
    >>> f = torch.zeros(2, 3)                       # uniform over A (2) x B (3)
    >>> contract([f], [("A", "B")], ["A"]).exp()    # 3 configurations of B for each A
    tensor([3., 3.])
    >>> contract([], [])                            # the empty product
    tensor(0.)
    """
    sr = get_semiring(semiring)
    return _run(factors, scopes, output, sr, optimize, False, validate, "contract").value


def _traceback(
    res: _Result,
    semiring: Semiring,
    sample_shape: tuple[int, ...],
    generator: torch.Generator | None,
    subject: str,
) -> dict[Var, Tensor]:
    steps, output, cards, batch = res.steps, res.output, res.cards, res.batch
    device = res.value.device
    out_cards = tuple(cards[v] for v in output)
    shape = tuple(sample_shape) + tuple(batch) + out_cards
    elim_vars = [v for v in cards if v not in output]
    if 0 in cards.values():  # _run took the short cut: no tables were recorded
        if math.prod(shape) == 0:  # nothing to assign: empty assignments
            return {v: torch.zeros(shape, dtype=torch.long, device=device) for v in elim_vars}
        empty = next(v for v in elim_vars if cards[v] == 0)
        raise ShapeError(subject, f"variable {empty!r} has 0 states, so there is no "
                         "assignment to return", fix="give every eliminated variable at least "
                         "one state")
    n = math.prod(sample_shape)
    nb = math.prod(batch)
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
        As in :func:`contract` (the same checks and conventions).

    Returns
    -------
    Traceback
        ``value``: max over eliminated variables, shape ``batch + output cards``;
        ``assignment[v]``: maximising state of each eliminated ``v``, same shape (ties go to the
        lowest index, so where every configuration has probability zero the value is ``-inf``
        and each state is 0). No factors: ``value`` 0 (the empty product) and no assignment.

    Raises
    ------
    ShapeError
        An eliminated variable has 0 states (there is no assignment), besides the errors of
        :func:`contract`.
    """
    res = _run(factors, scopes, output, MAX, optimize, True, validate, "contract_argmax")
    assignment = _traceback(res, MAX, (1,), None, "contract_argmax")
    return Traceback(res.value, {v: a.squeeze(0) for v, a in assignment.items()})


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
        As in :func:`contract` (the same checks and conventions).
    sample_shape : sequence of int
        Number of independent draws, as a shape (a tuple of ints >= 0; a bare int is refused).
    generator : torch.Generator, optional
        Source of randomness, on the factors' device type; the global RNG is used only when this
        is None.

    Returns
    -------
    Traceback
        ``value``: log-sum over the eliminated variables (the log normaliser), shape
        ``batch + output cards``; ``assignment[v]``: draws of shape
        ``sample_shape + batch + output cards`` from ``p(eliminated | output)``. No factors:
        ``value`` 0 and no assignment.

    Raises
    ------
    ZeroProbabilityEvidence
        If some batch entry has total probability zero (including an eliminated variable with 0
        states), so there is nothing to sample from.
    ValidationError, DeviceMismatchError
        A bad ``sample_shape`` or ``generator``, besides the errors of :func:`contract`.
    """
    shape = check_shape(sample_shape, "contract_sample sample_shape")
    res = _run(factors, scopes, output, SAMPLE, optimize, True, validate, "contract_sample")
    check_generator(generator, res.value.device)
    value = res.value
    if bool(torch.isneginf(value).any()):
        bad = torch.nonzero(torch.isneginf(value))[0].tolist()
        raise ZeroProbabilityEvidence(
            "contract_sample",
            "the product of the factors is zero everywhere at index "
            f"{bad}, so there is no distribution to sample from",
            fix="check evidence and deterministic (-inf) entries",
        )
    assignment = _traceback(res, SAMPLE, shape, generator, "contract_sample")
    return Traceback(value, assignment)
