"""Input checks and edge cases of ``contract`` / ``contract_argmax`` / ``contract_sample``.

Property tests draw small factor sets that include the edge cases (scalar factors, variables
with 0 states, batch dimensions of size 0, ``-inf`` entries, factors that are ``-inf``
everywhere, no factors at all) and compare every answer with brute-force enumeration; other
properties mutate a valid call into a bad one and require the named error for that mistake.
Every call goes through ``tests.robustness.outcome``: a raw exception or a NaN fails the test.
"""

from __future__ import annotations

import math

import opt_einsum
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ProbforgeError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import (
    contract,
    contract_argmax,
    contract_sample,
    contraction_cost,
    contraction_path,
    make_generator,
)
from tests.reference.brute_force import joint_table
from tests.robustness import outcome

NEG_INF = -math.inf


# ------------------------------------------------------------------------------------------
# random factor sets with edge cases, and the brute-force oracle


@st.composite
def edge_factor_sets(draw: st.DrawFn) -> dict:
    """0-4 factors over 0-4 variables of 0-3 states; scalar factors, empty batches, -inf."""
    nvars = draw(st.integers(0, 4))
    names = [f"v{i}" for i in range(nvars)]
    cards = {v: draw(st.sampled_from([2, 3, 1, 2, 0])) for v in names}
    nfac = draw(st.integers(0 if nvars == 0 else 1, 4))
    scopes = []
    for _ in range(nfac):
        k = draw(st.integers(0, min(3, nvars)))  # k == 0: a scalar factor
        scopes.append(tuple(draw(st.permutations(names))[:k]))
    covered = list(dict.fromkeys(v for s in scopes for v in s))
    batch = tuple(draw(st.lists(st.sampled_from([1, 2, 0]), max_size=2)))
    output = tuple(draw(st.permutations(covered))[: draw(st.integers(0, len(covered)))])
    kinds = [draw(st.sampled_from(["randn", "randn", "some -inf", "all -inf"]))
             for _ in scopes]
    return {"cards": cards, "scopes": scopes, "batch": batch, "output": output,
            "kinds": kinds, "seed": draw(st.integers(0, 2**31 - 1))}


def build(spec: dict) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(spec["seed"])
    factors = []
    for i, (scope, kind) in enumerate(zip(spec["scopes"], spec["kinds"], strict=True)):
        b = spec["batch"] if i % 2 == 0 else spec["batch"][1:]  # broadcastable batch shapes
        shape = b + tuple(spec["cards"][v] for v in scope)
        f = torch.randn(shape, generator=g, dtype=torch.float64) * 2
        if kind == "some -inf":
            f = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.3,
                            torch.tensor(NEG_INF, dtype=torch.float64), f)
        elif kind == "all -inf":
            f = torch.full(shape, NEG_INF, dtype=torch.float64)
        factors.append(f)
    return factors


def full_joint(spec: dict, factors: list[torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """The joint log-table, shape batch + cards of every variable in some scope."""
    names = list(dict.fromkeys(v for s in spec["scopes"] for v in s))
    if not factors:
        return torch.zeros((), dtype=torch.float64), names
    full = joint_table(factors, spec["scopes"], names)
    batch = torch.broadcast_shapes(*(f.shape[: f.dim() - len(s)]
                                     for f, s in zip(factors, spec["scopes"], strict=True)))
    nb = full.dim() - len(names)
    full = full.reshape((1,) * (len(batch) - nb) + tuple(full.shape))
    return full.expand(tuple(batch) + tuple(spec["cards"][v] for v in names)), names


def brute(spec: dict, factors: list[torch.Tensor], reduce: str) -> torch.Tensor:
    full, names = full_joint(spec, factors)
    nb = full.dim() - len(names)
    out = spec["output"]
    elim = [nb + names.index(v) for v in names if v not in out]
    if elim:
        if reduce == "log":
            full = torch.logsumexp(full, elim)  # an empty sum gives -inf
        elif any(full.shape[d] == 0 for d in elim):  # an empty max is the semiring zero
            shape = [n for d, n in enumerate(full.shape) if d not in elim]
            full = torch.full(shape, NEG_INF, dtype=full.dtype)
        else:
            full = full.amax(elim)
    rest = [v for v in names if v in out]
    return full.permute(list(range(nb)) + [nb + rest.index(v) for v in out])


def assert_close_log(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-10) -> None:
    actual, expected = actual.double(), expected.double()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.equal(torch.isneginf(actual), torch.isneginf(expected)), (actual, expected)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(actual), finite)
    assert torch.allclose(actual[finite], expected[finite], rtol=tol, atol=tol)


def joint_at(spec: dict, factors: list[torch.Tensor], res, sample_dims: int) -> torch.Tensor:
    """Joint log-value at each returned assignment, shape sample + batch + output cards."""
    full, names = full_joint(spec, factors)
    nb = full.dim() - len(names)
    out = spec["output"]
    shape = res.value.shape
    lead = next(iter(res.assignment.values())).shape[:sample_dims] if res.assignment else ()
    dims = tuple(lead) + tuple(shape)
    grids = torch.meshgrid(*[torch.arange(n) for n in dims], indexing="ij") if dims else ()
    b_grid = grids[sample_dims: sample_dims + nb]
    o_grid = grids[sample_dims + nb:]
    idx = [o_grid[out.index(v)] if v in out else res.assignment[v] for v in names]
    return full[(*b_grid, *idx)]


# ------------------------------------------------------------------------------------------
# answers on edge cases


@settings(max_examples=60)
@given(spec=edge_factor_sets(), semiring=st.sampled_from(["log", "max", "sample"]))
def test_contract_edge_cases_match_brute_force(spec: dict, semiring: str) -> None:
    factors = build(spec)
    got = outcome(contract, factors, spec["scopes"], spec["output"], semiring=semiring,
                  allow_inf=True)
    assert got.kind == "value", got.error
    expected = brute(spec, factors, "max" if semiring == "max" else "log")
    assert_close_log(got.value.double(), expected)


@settings(max_examples=40)
@given(spec=edge_factor_sets())
def test_argmax_edge_cases_attain_the_max(spec: dict) -> None:
    factors = build(spec)
    got = outcome(contract_argmax, factors, spec["scopes"], spec["output"], allow_inf=True)
    expected = brute(spec, factors, "max")
    elim_zero = [v for s in spec["scopes"] for v in s
                 if spec["cards"][v] == 0 and v not in spec["output"]]
    if elim_zero and expected.numel() > 0:  # no configuration exists, so no assignment
        assert got.kind == "error" and isinstance(got.error, ShapeError), got
        return
    assert got.kind == "value", got.error
    res = got.value
    assert_close_log(res.value, expected)
    elim = {v for s in spec["scopes"] for v in s if v not in spec["output"]}
    assert set(res.assignment) == elim
    for v, a in res.assignment.items():
        assert a.dtype == torch.long and a.shape == expected.shape
        assert bool(((a >= 0) & (a < max(spec["cards"][v], 1))).all())
    if expected.numel() and res.assignment:
        assert_close_log(joint_at(spec, factors, res, 0), expected)


@settings(max_examples=40)
@given(spec=edge_factor_sets(), n=st.sampled_from([(), (2,), (0,), (2, 1)]))
def test_sample_edge_cases_draw_possible_configurations(spec: dict, n: tuple) -> None:
    factors = build(spec)
    got = outcome(contract_sample, factors, spec["scopes"], spec["output"], sample_shape=n,
                  generator=make_generator(spec["seed"]), allow_inf=True)
    expected = brute(spec, factors, "log")
    if bool(torch.isneginf(expected).any()):  # nothing to sample from somewhere
        assert got.kind == "error" and isinstance(got.error, ZeroProbabilityEvidence), got
        return
    assert got.kind == "value", got.error
    res = got.value
    assert_close_log(res.value, expected)
    for a in res.assignment.values():
        assert a.dtype == torch.long and a.shape == n + tuple(expected.shape)
    if res.assignment and math.prod(n) * expected.numel() > 0:
        # every draw has positive probability under the joint
        assert bool(torch.isfinite(joint_at(spec, factors, res, len(n))).all())


def test_no_factors_is_the_empty_product() -> None:
    # the empty product is 1: log Z = 0 (a documented answer; it used to raise)
    assert torch.equal(contract([], []), torch.zeros(()))
    best = contract_argmax([], [])
    assert torch.equal(best.value, torch.zeros(())) and best.assignment == {}
    draws = contract_sample((), (), sample_shape=(3,), generator=make_generator(0))
    assert torch.equal(draws.value, torch.zeros(())) and draws.assignment == {}
    with pytest.raises(UnknownVariableError, match="'A' is in no factor"):
        contract([], [], ["A"])


def test_zero_states_and_empty_batches() -> None:
    z = torch.zeros
    # a sum or max over a variable without states is the semiring zero (these used to raise
    # IndexError from torch's amax)
    for semiring in ("log", "max"):
        out = contract([z(2, 0), z(0, 3)], [("A", "B"), ("B", "C")], ["A"], semiring=semiring)
        assert out.shape == (2,) and bool(torch.isneginf(out).all())
    assert contract([z(0, 2)], [("A", "B")], ["A"]).shape == (0,)
    assert contract([z(0, 2)], [("A",)]).shape == (0,)  # a batch of 0 entries
    with pytest.raises(ShapeError, match="'B' has 0 states"):
        contract_argmax([z(2, 0)], [("A", "B")])
    with pytest.raises(ZeroProbabilityEvidence):
        contract_sample([z(2, 0)], [("A", "B")])
    # gradients still flow (zero) through a result that no entry reaches
    f = z(2, 0, requires_grad=True)
    contract([f], [("A", "B")]).backward()
    assert f.grad is not None and f.grad.shape == (2, 0)


# ------------------------------------------------------------------------------------------
# names: a string is one variable


def test_string_scope_and_output_are_one_variable() -> None:
    f = torch.randn(3, dtype=torch.float64)
    # a bare scope "AB" used to be read as ("A", "B"); as one variable the leading dimension of
    # a 2-D factor would silently become a batch dimension: it is refused as ambiguous
    with pytest.raises(ValidationError, match=r"scope 0: is a bare string"):
        contract([torch.randn(2, 3, dtype=torch.float64)], ["AB"])
    assert torch.allclose(contract([f], [("AB",)]), torch.logsumexp(f, 0))
    assert torch.equal(contract([f], [("AB",)], "AB"), contract([f], [("AB",)], ("AB",)))
    assert torch.equal(contract([f], ["A"]), contract([f], [("A",)]))
    # output "AB" on variables A and B used to return their joint silently
    f2 = torch.randn(2, 3, dtype=torch.float64)
    with pytest.raises(UnknownVariableError, match="output variable 'AB'"):
        contract([f2], [("A", "B")], "AB")
    with pytest.raises(UnknownVariableError):
        contract_argmax([f2], [("A", "B")], "AB")
    with pytest.raises(UnknownVariableError):
        contraction_path([("A", "B")], {"A": 2, "B": 3}, "AB")
    # with a single-character name both readings agree, as before
    assert torch.equal(contract([f2], [("A", "B")], "B"), contract([f2], [("A", "B")], ["B"]))
    # ints and other hashables are variables too
    assert contract([f2], [(0, 1)], [1]).shape == (3,)


# ------------------------------------------------------------------------------------------
# bad inputs: each mistake gets its named error

MISTAKES = {
    "nan entry": NonFiniteError,
    "+inf entry": NonFiniteError,
    "integer factor": DtypeMismatchError,
    "bool factor": DtypeMismatchError,
    "mixed dtypes": DtypeMismatchError,
    "one scope missing": ShapeError,
    "variable twice in a scope": ShapeError,
    "cardinality mismatch": ShapeError,
    "too few dimensions": ShapeError,
    "batch shapes clash": ShapeError,
    "unknown output": UnknownVariableError,
    "output twice": ShapeError,
    "output None": ValidationError,
    "factor not a tensor": ValidationError,
    "factors is a tensor": ValidationError,
    "scopes is a string": ValidationError,
    "int scope": ValidationError,
    "unhashable variable": ValidationError,
    "unknown semiring": ValidationError,
    "semiring not a name": ValidationError,
    "unknown strategy": ValidationError,
    "path with floats": ValidationError,
    "path out of range": ValidationError,
    "validate not a bool": ValidationError,
}
SAMPLE_MISTAKES = {
    "sample_shape an int": ValidationError,
    "sample_shape negative": ValidationError,
    "sample_shape float": ValidationError,
    "sample_shape bool": ValidationError,
    "generator not a generator": ValidationError,
}


def mutate(mistake: str, f: list[torch.Tensor], s: list[tuple], kw: dict) -> tuple:
    """Apply one mistake to a valid call (factors ``f`` over scopes ``s``)."""
    f, s, kw = list(f), list(s), dict(kw)
    first = f[0]
    if mistake == "nan entry":
        f[0] = first.clone().reshape(-1).index_fill(0, torch.tensor([0]), math.nan)
        f[0] = f[0].reshape(first.shape)
    elif mistake == "+inf entry":
        f[0] = first.clone().reshape(-1).index_fill(0, torch.tensor([0]), math.inf)
        f[0] = f[0].reshape(first.shape)
    elif mistake == "integer factor":
        f = [t.long() for t in f]
    elif mistake == "bool factor":
        f = [t > 0 for t in f]
    elif mistake == "mixed dtypes":
        f.append(torch.zeros(first.shape[-1:], dtype=torch.float32))
        s.append(s[0][-1:])
    elif mistake == "one scope missing":
        s = s[:-1]
    elif mistake == "variable twice in a scope":
        f.append(torch.zeros(first.shape[-1], first.shape[-1], dtype=first.dtype))
        s.append((s[0][-1], s[0][-1]))
    elif mistake == "cardinality mismatch":
        f.append(torch.zeros(first.shape[-1] + 1, dtype=first.dtype))
        s.append(s[0][-1:])
    elif mistake == "too few dimensions":
        s[0] = (*s[0], "extra", "more", "and more")
    elif mistake == "batch shapes clash":
        f = [torch.zeros(2, 3, dtype=first.dtype), torch.zeros(4, 3, dtype=first.dtype)]
        s = [("x",), ("x",)]
    elif mistake == "unknown output":
        kw["output"] = ("no such variable",)
    elif mistake == "output twice":
        kw["output"] = (s[0][-1], s[0][-1])
    elif mistake == "output None":
        kw["output"] = None
    elif mistake == "factor not a tensor":
        f[0] = first.tolist()
    elif mistake == "factors is a tensor":
        return first, s[:1], kw
    elif mistake == "scopes is a string":
        return f[:1], "".join(str(v) for v in s[0]), kw
    elif mistake == "int scope":
        s[0] = 7
    elif mistake == "unhashable variable":
        s[0] = (*s[0][:-1], ["a list"])
    elif mistake == "unknown semiring":
        kw["semiring"] = "sum-product"
    elif mistake == "semiring not a name":
        kw["semiring"] = ["log"]
    elif mistake == "unknown strategy":
        kw["optimize"] = "fastest"
    elif mistake == "path with floats":
        kw["optimize"] = [(0.0, 1.0)]
    elif mistake == "path out of range":
        kw["optimize"] = [(0, 99)]
    elif mistake == "validate not a bool":
        kw["validate"] = "no"
    elif mistake == "sample_shape an int":
        kw["sample_shape"] = 3
    elif mistake == "sample_shape negative":
        kw["sample_shape"] = (2, -1)
    elif mistake == "sample_shape float":
        kw["sample_shape"] = (2.0,)
    elif mistake == "sample_shape bool":
        kw["sample_shape"] = (True,)
    elif mistake == "generator not a generator":
        kw["generator"] = 1234
    return f, s, kw


@st.composite
def valid_calls(draw: st.DrawFn) -> tuple[list[torch.Tensor], list[tuple]]:
    """1-3 factors over 1-3 variables of 1-3 states, each factor with at least one variable."""
    nvars = draw(st.integers(1, 3))
    names = [f"x{i}" for i in range(nvars)]
    cards = [draw(st.integers(1, 3)) for _ in names]
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    factors, scopes = [], []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, nvars))
        scope = tuple(draw(st.permutations(names))[:k])
        shape = tuple(cards[names.index(v)] for v in scope)
        factors.append(torch.randn(shape, generator=g, dtype=torch.float64))
        scopes.append(scope)
    return factors, scopes


@settings(max_examples=60)
@given(call=valid_calls(), mistake=st.sampled_from(sorted(MISTAKES)),
       fn=st.sampled_from([contract, contract_argmax, contract_sample]))
def test_each_mistake_gets_its_named_error(call: tuple, mistake: str, fn) -> None:  # type: ignore[no-untyped-def]
    factors, scopes = call
    f, s, kw = mutate(mistake, factors, scopes, {})
    if fn is not contract and "semiring" in kw:
        return  # contract_argmax and contract_sample take no semiring argument
    got = outcome(fn, f, s, **kw)
    assert got.kind == "error", f"{mistake}: no error from {fn.__name__}"
    assert isinstance(got.error, MISTAKES[mistake]), (mistake, got.error)


@settings(max_examples=30)
@given(call=valid_calls(), mistake=st.sampled_from(sorted(SAMPLE_MISTAKES)))
def test_each_sampling_mistake_gets_its_named_error(call: tuple, mistake: str) -> None:
    factors, scopes = call
    f, s, kw = mutate(mistake, factors, scopes, {})
    got = outcome(contract_sample, f, s, **kw)
    assert got.kind == "error" and isinstance(got.error, SAMPLE_MISTAKES[mistake]), got


@settings(max_examples=30)
@given(call=valid_calls(), semiring=st.sampled_from(["log", "max", "sample"]))
def test_validate_false_skips_only_the_value_scan(call: tuple, semiring: str) -> None:
    # validate=False trusts the values but still checks everything else
    factors, scopes = call
    assert torch.equal(contract(factors, scopes, semiring=semiring, validate=False),
                       contract(factors, scopes, semiring=semiring))
    with pytest.raises(ShapeError):
        contract(factors, scopes[:-1] + [(*scopes[-1], "extra", "x", "y")], validate=False)


def test_error_messages_name_the_culprit() -> None:
    a = torch.zeros(2, 3)
    with pytest.raises(ValidationError, match=r"scope 0.*found 7 \(int\).*write \(7,\)"):
        contract([a], [7])
    with pytest.raises(ValidationError, match=r"unknown semiring.*'log', 'max', 'sample'"):
        contract([a], [("x", "y")], semiring=["log"])
    with pytest.raises(ValidationError, match=r"sample_shape.*single int.*\(3,\)"):
        contract_sample([a], [("x", "y")], sample_shape=3)
    with pytest.raises(ValidationError, match="wrap a single factor"):
        contract(a, [("x", "y")])
    with pytest.raises(ValidationError, match="unknown opt_einsum path strategy"):
        contract([a], [("x", "y")], optimize="fastest")
    with pytest.raises(NonFiniteError, match=r"factor 1 over \('y',\).*\+inf"):
        contract([a, torch.tensor([0.0, 0.0, math.inf])], [("x", "y"), ("y",)])


# ------------------------------------------------------------------------------------------
# the path cache, and the planning functions


def test_path_cache_still_avoids_replanning(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = opt_einsum.contract_path

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(opt_einsum, "contract_path", counting)
    fs = [torch.randn(2, 3), torch.randn(3, 4), torch.randn(4, 5)]
    # names not used by any other test, so the first call is a cache miss
    scopes = [("cache-a", "cache-b"), ("cache-b", "cache-c"), ("cache-c", "cache-d")]
    first = contract(fs, scopes, ["cache-d"])
    n = len(calls)
    assert n == 1
    for _ in range(3):
        assert torch.equal(contract(fs, scopes, ["cache-d"]), first)
        contract_argmax(fs, scopes, ["cache-d"])
    assert len(calls) == n  # served from the cache


@settings(max_examples=30)
@given(spec=edge_factor_sets())
def test_planning_agrees_with_contract(spec: dict) -> None:
    cards = {v: spec["cards"][v] for s in spec["scopes"] for v in s}
    path = outcome(contraction_path, spec["scopes"], cards, spec["output"])
    cost = outcome(contraction_cost, spec["scopes"], cards, spec["output"])
    assert path.kind == "value" and cost.kind == "value", (path.error, cost.error)
    if spec["scopes"]:
        assert cost.value.largest_table <= max(1, math.prod(cards.values()))
    # the explicit path gives contract's answer
    factors = build(spec)
    via_path = contract(factors, spec["scopes"], spec["output"], optimize=path.value)
    assert_close_log(via_path.double(), brute(spec, factors, "log"))


@settings(max_examples=30)
@given(cards=st.dictionaries(st.sampled_from("abc"),
                             st.one_of(st.integers(-2, 3), st.sampled_from([2.0, True, "2"])),
                             max_size=3),
       output=st.one_of(st.just(()), st.sampled_from(["a", "ab", ("a", "a"), None, 5])))
def test_planning_refuses_bad_cards_and_output(cards: dict, output) -> None:  # type: ignore[no-untyped-def]
    scopes = [("a", "b"), ("b", "c")]
    got = outcome(contraction_cost, scopes, cards, output)
    ok_cards = set(cards) == {"a", "b", "c"} and all(
        type(n) is int and n >= 0 for n in cards.values())
    if ok_cards and output in ((), "a"):
        assert got.kind == "value"
    else:
        assert got.kind == "error"
    bad = outcome(lambda: contraction_cost(scopes, {"a": 2, "b": 2, "c": 2}).bytes(-1))
    assert bad.kind == "error"


@pytest.mark.cuda
def test_generator_on_the_wrong_device() -> None:
    f = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(DeviceMismatchError, match="draws on cuda"):
        contract_sample([f], [("a", "b")], generator=make_generator(0, "cuda"))
    with pytest.raises(DeviceMismatchError, match="draws on cpu"):
        contract_sample([f.cuda()], [("a", "b")], generator=make_generator(0))
    res = contract_sample([f.cuda()], [("a", "b")], sample_shape=(5,),
                          generator=make_generator(0, "cuda"))
    assert res.assignment["a"].device.type == "cuda"


def test_all_errors_are_probforge_errors_and_builtins() -> None:
    # one representative per family: callers catching the builtin keep working
    for call, builtin in [
        (lambda: contract([torch.zeros(2)], [("a",)], ["b"]), KeyError),
        (lambda: contract([torch.zeros(2)], [7]), ValueError),
        (lambda: contract_sample([torch.zeros(2)], [("a",)], sample_shape=-1), ValueError),
    ]:
        with pytest.raises(ProbforgeError):
            call()
        with pytest.raises(builtin):
            call()
