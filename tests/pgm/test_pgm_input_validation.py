"""Input checks of the pgm core (issue 21): the issue's examples and property tests of the model
classes (factors, CPDs, Bayesian and Markov networks, grids, naive Bayes, log-linear models).

Every call must give a typed :class:`probforge.errors.ProbforgeError` or a NaN-free answer, and
where an answer comes back it is checked against a brute-force or closed-form value.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pgm import (
    BayesianNetwork,
    CategoricalNaiveBayes,
    Factor,
    GaussianNaiveBayes,
    LogLinearModel,
    MarkovNetwork,
    MaxEntClassifier,
    TabularCPD,
    fit_loglinear,
    ising_grid,
    potts_grid,
    sigmoid_cpd,
)
from pgm.inference import JunctionTree, PosteriorMarginals, VariableElimination
from pgm.io import bundled_network
from probforge.errors import (
    DtypeMismatchError,
    MemoryBudgetExceeded,
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)
from tests.robustness import outcome

F64 = torch.float64


def rain_wet() -> BayesianNetwork:
    """Two variables named R and W: a string "RW" must never mean both of them."""
    return BayesianNetwork([
        TabularCPD("R", torch.tensor([0.8, 0.2], dtype=F64), states={"R": ["no", "yes"]}),
        TabularCPD("W", torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64), parents=["R"],
                   states={"W": ["no", "yes"], "R": ["no", "yes"]}),
    ], name="rw")


@pytest.fixture(scope="module")
def asia() -> BayesianNetwork:
    net: BayesianNetwork = bundled_network("asia")
    return net


# the examples -------------------------------------------------------------------------
def test_a_string_is_one_query_variable(asia: BayesianNetwork) -> None:
    ve = VariableElimination(asia)
    ev = {"smoke": "yes", "dysp": "yes"}
    one = ve.query("lung", ev)
    assert one.variables == ("lung",)
    torch.testing.assert_close(one.probs(), ve.query(["lung"], ev).probs())
    assert abs(float(one.probs()[0]) - 0.148334) < 1e-6
    # everywhere a list of variables is taken
    assert list(ve.marginals(variables="lung")) == ["lung"]
    assert list(ve.map_query("lung").indices) == ["lung"]
    assert JunctionTree(asia, evidence_vars="xray").evidence_vars == frozenset({"xray"})
    assert PosteriorMarginals(asia, evidence_vars="xray").evidence_vars == ("xray",)
    assert asia.factors()[0].marginalize("asia").variables == ()
    assert asia.is_dseparated("asia", "smoke")


def test_rw_is_not_r_and_w() -> None:
    ve = VariableElimination(rain_wet())
    with pytest.raises(UnknownVariableError, match="'RW'"):
        ve.query("RW")
    with pytest.raises(UnknownVariableError, match="'RW'"):
        ve.marginals(variables="RW")
    with pytest.raises(UnknownVariableError, match="'RW'"):
        JunctionTree(rain_wet(), evidence_vars="RW")


def test_sample_count_is_checked(asia: BayesianNetwork) -> None:
    with pytest.raises(ValidationError, match=r"int >= 0.*-1"):
        asia.sample(-1)
    for bad in (2.0, True, "3", None):
        with pytest.raises(ValidationError):
            asia.sample(bad)  # type: ignore[arg-type]
    empty = asia.sample(0)  # documented: zero draws is an empty (0, V) tensor
    assert empty.shape == (0, len(asia.variables)) and empty.dtype == torch.long


def test_evidence_conflicts_are_typed(asia: BayesianNetwork) -> None:
    ve = VariableElimination(asia)
    with pytest.raises(ValidationError, match="also observed"):
        ve.query("lung", {"lung": "yes"})
    with pytest.raises(ValidationError, match="twice"):
        ve.query(["lung", "lung"])
    with pytest.raises(ValidationError, match="both hard and soft"):
        ve.query("lung", {"smoke": "yes"}, {"smoke": [0.5, 0.5]})


    class Frame:  # what evidence reads of a pandas DataFrame (pandas costs 1.5 s to import)
        columns = ("smoke", "smoke")

        def to_dict(self) -> None: ...

        def __getitem__(self, column: str) -> list[str]:
            return ["yes"]

    with pytest.raises(ValidationError, match="repeated"):
        ve.query("lung", Frame())


def test_zero_evidence_rows_give_empty_answers(asia: BayesianNetwork) -> None:
    from pgm.inference import loopy_belief_propagation, mean_field

    ev = {"smoke": torch.zeros(0, dtype=torch.long)}
    assert VariableElimination(asia).query("lung", ev).batch_shape == (0,)
    lbp = loopy_belief_propagation(asia, ev)
    assert lbp.marginals["lung"].shape == (0, 2) and lbp.bethe_log_z is not None
    assert lbp.bethe_log_z.shape == (0,) and lbp.converged and lbp.n_iter == 0
    mf = mean_field(asia, ev)
    assert mf.marginals["lung"].shape == (0, 2) and mf.elbo_history.shape == (1, 0)


# factors ----------------------------------------------------------------------------------------
_SPECIAL = st.sampled_from([0.0, -1.5, 2.0, -math.inf, math.inf, math.nan, 1e308, -1e308])


@st.composite
def log_tables(draw: st.DrawFn) -> tuple[Any, tuple[int, ...]]:
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=3)))
    n = math.prod(shape)
    cell = draw(st.sampled_from([st.floats(-5, 5), st.floats(-5, 5) | st.just(-math.inf),
                                 _SPECIAL]))
    values = draw(st.lists(cell, min_size=n, max_size=n))
    dtype = draw(st.sampled_from([F64, F64, torch.float32, torch.long, None]))
    if dtype is None:
        return values, shape  # not a tensor
    t = torch.tensor(values, dtype=F64).reshape(shape)
    if not dtype.is_floating_point:
        t = torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=-1.0).clamp(-9, 9)
    return t.to(dtype), shape


@given(table=log_tables(), variables=st.one_of(
    st.just("ab"), st.lists(st.sampled_from(["a", "b", "c", "ab"]), max_size=3),
    st.integers(), st.just(["a", 1])))
@settings(max_examples=20)
def test_factor_construction(table: tuple[Any, tuple[int, ...]], variables: Any) -> None:
    values, shape = table
    res = outcome(Factor, variables, values, allow_inf=True)
    event(f"factor: {res.kind}")
    if res.kind == "error":
        return
    f = res.value
    t = values
    names = [variables] if isinstance(variables, str) else list(variables)
    assert f.variables == tuple(names)  # a string is one variable
    assert isinstance(t, torch.Tensor) and t.is_floating_point()
    assert not bool(torch.isnan(t).any()) and not bool(torch.isposinf(t).any())
    assert all(c >= 1 for c in f.cards.values())
    assert tuple(f.batch_shape) + tuple(f.cards.values()) == shape


@given(probs=st.lists(st.sampled_from([0.0, 0.25, 1.0, -0.5, math.nan, math.inf]),
                      min_size=1, max_size=4),
       as_int=st.booleans())
def test_factor_from_probs(probs: list[float], as_int: bool) -> None:
    t = torch.tensor(probs, dtype=F64)
    if as_int:
        t = torch.nan_to_num(t, nan=0.0, posinf=2.0).long()
    res = outcome(Factor.from_probs, ["a"], t, allow_inf=True)
    if res.kind == "value":
        assert t.is_floating_point() and bool(torch.isfinite(t).all()) and bool((t >= 0).all())
        torch.testing.assert_close(res.value.probs(), t)
    elif as_int:
        assert isinstance(res.error, DtypeMismatchError)


@given(arg=st.one_of(st.just("a"), st.just("ab"), st.lists(st.sampled_from(["a", "b", "z"]),
                                                             max_size=3), st.integers()))
def test_factor_marginalize_names(arg: Any) -> None:
    f = Factor(["a", "b"], torch.log(torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=F64)))
    res = outcome(f.marginalize, arg, allow_inf=True)
    if res.kind == "value":
        names = [arg] if isinstance(arg, str) else list(arg)
        keep = [v for v in ("a", "b") if v not in names]
        dims = tuple(i for i, v in enumerate("ab") if v in names)
        brute = f.probs().sum(dim=dims) if dims else f.probs()
        assert list(res.value.variables) == keep
        torch.testing.assert_close(res.value.probs(), brute)


def test_factor_rejects_other_operands() -> None:
    f = Factor(["a"], torch.zeros(2, dtype=F64))
    for bad in (2, "a", torch.zeros(2)):
        with pytest.raises(ValidationError):
            f * bad  # type: ignore[operator]
    with pytest.raises(ValidationError):
        f.reduce(["a"])  # type: ignore[arg-type]
    with pytest.raises(DtypeMismatchError):
        f * Factor(["a"], torch.zeros(2, dtype=torch.float32))


# CPDs and Bayesian networks -----------------------------------------------------------------
@st.composite
def cpd_tables(draw: st.DrawFn) -> Any:
    rows = draw(st.sampled_from([1, 2, 3, 0]))
    card = draw(st.sampled_from([1, 2, 3, 0]))
    cells = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 0.25, -0.25, math.nan, math.inf]),
                          min_size=rows * card, max_size=rows * card))
    t = torch.tensor(cells, dtype=F64).reshape(rows, card)
    kind = draw(st.sampled_from(["normalised", "normalised", "float", "int", "list"]))
    if kind == "int":
        return torch.nan_to_num(t, nan=0.0, posinf=1.0).long()
    if kind == "list":
        return torch.softmax(torch.nan_to_num(t, nan=0.0, posinf=1.0), -1).tolist()
    if kind == "normalised" and card:
        return torch.softmax(torch.nan_to_num(t, nan=0.0, posinf=1.0), -1)
    return t


@given(table=cpd_tables(), atol=st.one_of(st.just(1e-6), st.just(1e-6), st.floats(
    allow_nan=True), st.just("x"), st.booleans()))
def test_cpd_construction(table: Any, atol: Any) -> None:
    res = outcome(TabularCPD, "c", table, ["p"], atol=atol, allow_inf=True)
    event(f"cpd: {res.kind}")
    if res.kind == "error":
        return
    cpd = res.value
    t = torch.as_tensor(table, dtype=F64)
    assert not isinstance(table, torch.Tensor) or table.is_floating_point()  # ints refused
    assert isinstance(atol, float) and atol >= 0
    assert bool(torch.isfinite(t).all()) and bool((t >= 0).all()) and min(t.shape) >= 1
    assert bool(((t.sum(-1) - 1).abs() <= atol).all())
    torch.testing.assert_close(cpd.probs.to(F64), t, atol=1e-6, rtol=0)  # never renormalised


def test_cpd_and_network_arguments() -> None:
    with pytest.raises(ValidationError):
        TabularCPD(3, [0.5, 0.5])  # type: ignore[arg-type]
    cpd = TabularCPD("a", [[0.5, 0.5], [0.1, 0.9]], parents="bc")  # one parent named "bc"
    assert cpd.parents == ("bc",)
    with pytest.raises(ValidationError, match="repeat"):
        TabularCPD("a", [0.5, 0.5], states={"a": ["x", "x"]})
    with pytest.raises(NonFiniteError):
        sigmoid_cpd("a", ["b"], [math.nan], 0.0)
    with pytest.raises(DtypeMismatchError):
        sigmoid_cpd("a", ["b"], torch.tensor([1]), 0.0)
    with pytest.raises(ValidationError):
        BayesianNetwork(TabularCPD("a", [0.5, 0.5]))  # type: ignore[arg-type]
    with pytest.raises(DtypeMismatchError):
        rain_wet().to(torch.long)  # log-probabilities are never cast to integers
    empty = BayesianNetwork([])  # documented: the empty network, log p = 0
    assert empty.sample(3).shape == (3, 0) and float(empty.log_prob({})) == 0.0


@given(rows=st.one_of(
    st.lists(st.lists(st.integers(-1, 2), min_size=2, max_size=2), max_size=3).map(
        lambda r: torch.tensor(r, dtype=torch.long).reshape(-1, 2)),
    st.just(torch.zeros(2, 2)), st.just(torch.zeros(2, 2, dtype=torch.bool)),
    st.fixed_dictionaries({"R": st.sampled_from(["no", "yes", "maybe", 0, 1, 5, True]),
                           "W": st.sampled_from(["no", ["yes", "no"], [], 1, 2.5])}),
    st.just([0, 1])))
def test_bn_log_prob(rows: Any) -> None:
    bn = rain_wet()
    res = outcome(bn.log_prob, rows, allow_inf=True)
    event(f"log_prob: {res.kind}")
    if res.kind == "error":
        return
    lp = res.value.reshape(-1)
    if isinstance(rows, torch.Tensor):
        assert not rows.is_floating_point() and rows.dtype != torch.bool
        x = rows
    else:
        r = rows["R"] if not isinstance(rows["R"], str) else ["no", "yes"].index(rows["R"])
        w = rows["W"]
        ws = w if isinstance(w, list) else [w]
        ws = [["no", "yes"].index(v) if isinstance(v, str) else v for v in ws]
        x = torch.tensor([[r, v] for v in ws], dtype=torch.long).reshape(-1, 2)
    joint = torch.tensor([[0.72, 0.08], [0.04, 0.16]], dtype=F64)
    torch.testing.assert_close(lp.exp(), joint[x[:, 0], x[:, 1]])


@given(n=st.one_of(st.integers(-3, 4), st.floats(0, 3), st.booleans(), st.just("2")))
@settings(max_examples=15)
def test_bn_sample_count(n: Any) -> None:
    res = outcome(rain_wet().sample, n, generator=torch.Generator().manual_seed(0))
    if res.kind == "value":
        assert isinstance(n, int) and not isinstance(n, bool) and n >= 0
        assert res.value.shape == (n, 2)
        assert bool(((res.value >= 0) & (res.value < 2)).all())


@given(x=st.one_of(st.just("R"), st.just("RW"), st.lists(st.sampled_from(["R", "W", "Q"]),
                                                         max_size=2), st.integers()),
       given_=st.one_of(st.just(()), st.just("W"), st.just(["R"])))
def test_bn_dseparation_names(x: Any, given_: Any) -> None:
    res = outcome(rain_wet().is_dseparated, x, "W", given_)
    if res.kind == "value":
        xs = {x} if isinstance(x, str) else set(x)
        gs = {given_} if isinstance(given_, str) else set(given_)
        assert xs <= {"R", "W"}
        # brute force: R and W are dependent unless one of them is given (or x is empty)
        assert res.value == (not xs or "W" in gs or xs <= gs)


# Markov networks and grids ------------------------------------------------------------------
_BAD_INT = st.sampled_from([0, -1, 2.0, True, "2", None])
_BAD_REAL = st.sampled_from([math.nan, math.inf, "x", True, torch.zeros(3), None])


@st.composite
def one_bad(draw: st.DrawFn, valid: dict[str, st.SearchStrategy[Any]],
            bad: dict[str, st.SearchStrategy[Any]]) -> tuple[dict[str, Any], str | None]:
    """Valid arguments with at most one of them replaced by a bad value (which one is drawn)."""
    args = {k: draw(v) for k, v in valid.items()}
    which = draw(st.sampled_from([None, None, *bad]))
    if which is not None:
        args[which] = draw(bad[which])
    return args, which


@given(case=one_bad(
    {"rows": st.integers(1, 3), "cols": st.integers(1, 3), "coupling": st.one_of(
        st.floats(-2, 2), st.just(torch.tensor(0.5, dtype=F64))),
     "field": st.one_of(st.floats(-1, 1), st.just(torch.tensor([0.5], dtype=F64)))},
    {"rows": _BAD_INT, "cols": _BAD_INT, "coupling": _BAD_REAL,
     "field": st.sampled_from([math.nan, torch.zeros(4, 4), torch.zeros(2, dtype=torch.long),
                               "x"])}))
@settings(max_examples=25)
def test_ising_grid(case: tuple[dict[str, Any], str | None]) -> None:
    args, bad = case
    res = outcome(ising_grid, **args)
    event(f"ising: {res.kind}")
    assert (res.kind == "error") == (bad is not None), (args, res.error)
    if res.kind == "error":
        return
    mn, rows, cols = res.value, args["rows"], args["cols"]
    # brute force log Z over all spin configurations
    j = float(args["coupling"])
    h = torch.as_tensor(args["field"], dtype=F64).expand(rows, cols).reshape(-1)
    names = [f"x{i}_{k}" for i in range(rows) for k in range(cols)]
    edges = [(a, b) for a in range(len(names)) for b in range(a + 1, len(names))
             if abs(a // cols - b // cols) + abs(a % cols - b % cols) == 1]
    terms = []
    for s in itertools.product([-1.0, 1.0], repeat=len(names)):
        terms.append(sum(j * s[a] * s[b] for a, b in edges) + float((h * torch.tensor(s)).sum()))
    assert abs(float(mn.log_partition()) - math.log(sum(math.exp(t) for t in terms))) < 1e-9


@given(case=one_bad(
    {"rows": st.integers(1, 2), "cols": st.integers(1, 3), "q": st.integers(2, 3),
     "coupling": st.floats(-2, 2)},
    {"rows": _BAD_INT, "cols": _BAD_INT, "q": st.sampled_from([1, 0, 3.0, True, "3"]),
     "coupling": _BAD_REAL}))
@settings(max_examples=20)
def test_potts_grid(case: tuple[dict[str, Any], str | None]) -> None:
    args, bad = case
    res = outcome(potts_grid, **args)
    assert (res.kind == "error") == (bad is not None), (args, res.error)
    if res.kind == "value":  # brute force: Z = sum over colourings of exp(J * #equal edges)
        rows, cols, q, j = args["rows"], args["cols"], args["q"], args["coupling"]
        n = rows * cols
        edges = [(a, b) for a in range(n) for b in range(a + 1, n)
                 if abs(a // cols - b // cols) + abs(a % cols - b % cols) == 1]
        z = sum(math.exp(j * sum(x[a] == x[b] for a, b in edges))
                for x in itertools.product(range(q), repeat=n))
        assert abs(float(res.value.log_partition()) - math.log(z)) < 1e-9


def test_markov_network_arguments() -> None:
    e = torch.zeros(2, dtype=F64)
    with pytest.raises(ShapeError):
        MarkovNetwork.from_energies([["a"], ["b"]], [e])
    for t in (0.0, -1.0, math.nan, "x"):
        with pytest.raises(ValidationError):
            MarkovNetwork.from_energies([["a"]], [e], temperature=t)  # type: ignore[arg-type]
    with pytest.raises(NonFiniteError):
        MarkovNetwork.from_energies([["a"]], [torch.tensor([-math.inf, 0.0], dtype=F64)])
    mn = MarkovNetwork.from_energies([["a"]], [torch.tensor([math.inf, 0.0], dtype=F64)])
    assert float(mn.log_prob({"a": "1"})) == 0.0  # +inf energy: a forbidden state
    with pytest.raises(ValidationError):
        mn.cliques(0)
    with pytest.raises(ValidationError):
        mn.neighbours(["a"])  # type: ignore[arg-type]


# naive Bayes ----------------------------------------------------------------------------------
_CAT_ROWS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.sampled_from([0, 1, 7])),
                     min_size=1, max_size=6)


@given(case=one_bad(
    {"rows": _CAT_ROWS, "alpha": st.sampled_from([1.0, 0.5, 2])},
    {"rows": st.sampled_from(["neg", "half", "nan", "empty", "no_features", "y_float"]),
     "alpha": st.sampled_from([-1.0, math.nan, True, "1"])}))
@settings(max_examples=25)
def test_categorical_naive_bayes(case: tuple[dict[str, Any], str | None]) -> None:
    args, bad = case
    rows, alpha = args["rows"], args["alpha"]
    if isinstance(rows, str):  # a corrupted data set
        kind = rows
        rows = [(0, 1, 0), (1, 0, 1)]
    else:
        kind = ""
    x = torch.tensor([r[:2] for r in rows])
    y = torch.tensor([r[2] for r in rows])
    if kind == "neg":
        x[0, 0] = -1
    elif kind in ("half", "nan"):
        x = x.to(F64)
        x[0, 1] = 0.5 if kind == "half" else math.nan
    elif kind == "empty":
        x, y = x[:0], y[:0]
    elif kind == "no_features":
        x = x[:, :0]
    elif kind == "y_float":
        y = y.to(F64)
    res = outcome(lambda: CategoricalNaiveBayes(alpha=alpha).fit(x, y))
    event(f"categorical nb: {res.kind}")
    assert (res.kind == "error") == (bad is not None), (args, res.error)
    if res.kind == "error":
        return
    p = res.value.predict_proba(x)
    torch.testing.assert_close(p.sum(-1), torch.ones(len(rows), dtype=F64))
    # brute force (11.13): prior times per-feature smoothed frequencies
    classes = sorted(set(y.tolist()))
    a = float(alpha)
    for n in range(len(rows)):
        score = []
        for c in classes:
            members = [i for i in range(len(rows)) if int(y[i]) == c]
            sc = len(members) / len(rows)
            for m in range(2):
                k = int(x[:, m].max()) + 1
                cnt = sum(1 for i in members if int(x[i, m]) == int(x[n, m]))
                sc *= (cnt + a) / (len(members) + a * k)
            score.append(sc)
        torch.testing.assert_close(p[n], torch.tensor(score, dtype=F64) / sum(score),
                                   atol=1e-9, rtol=0)


def test_categorical_naive_bayes_huge_category_is_refused() -> None:
    with pytest.raises(MemoryBudgetExceeded):
        CategoricalNaiveBayes().fit(torch.tensor([[10**9]]), torch.tensor([0]))


@given(case=one_bad(
    {"x": st.lists(st.floats(-5, 5), min_size=4, max_size=6),
     "var_smoothing": st.sampled_from([1e-9, 1e-2])},
    {"x": st.sampled_from(["nan", "inf", "huge", "int", "empty"]),
     "var_smoothing": st.sampled_from([-1.0, math.nan, True, "0"])}))
@settings(max_examples=25)
def test_gaussian_naive_bayes(case: tuple[dict[str, Any], str | None]) -> None:
    args, bad = case
    values = args["x"]
    if isinstance(values, str):
        kind, values = values, [0.0, 1.0, 2.0, 4.0]
    else:
        kind = ""
    xt = torch.tensor(values, dtype=F64).reshape(-1, 1)
    xt = {"nan": xt.index_fill(0, torch.tensor([1]), math.nan),
          "inf": xt.index_fill(0, torch.tensor([1]), math.inf), "huge": xt * 1e200,
          "int": xt.long(), "empty": xt[:0]}.get(kind, xt)
    y = torch.tensor([i % 2 for i in range(xt.shape[0])])
    res = outcome(lambda: GaussianNaiveBayes(var_smoothing=args["var_smoothing"]).fit(xt, y))
    event(f"gaussian nb: {res.kind}")
    if bad is not None:
        assert res.kind == "error"
        return
    if res.kind == "error":  # only a feature constant within a class may stop a valid fit
        assert "constant" in str(res.error)
        return
    nb = res.value
    for c in range(len(nb.classes_)):
        sel = xt[y == int(nb.classes_[c]), 0]
        assert abs(float(nb.theta_[c, 0]) - float(sel.mean())) <= 1e-9 * (1 + float(
            sel.abs().max()))
    p = outcome(nb.predict_proba, xt)
    assert p.kind == "value"
    torch.testing.assert_close(p.value.sum(-1), torch.ones(xt.shape[0], dtype=F64))


# log-linear models and maxent --------------------------------------------------------------------
@given(data=st.one_of(
    st.lists(st.lists(st.integers(-1, 2), min_size=2, max_size=2), max_size=4).map(
        lambda r: torch.tensor(r, dtype=torch.long).reshape(-1, 2)),
    st.just(torch.zeros(3, 2)), st.just({"a": [], "b": []})),
       l2=st.sampled_from([0.5, 0.0, -1.0, math.nan, "x"]))
@settings(max_examples=10)
def test_loglinear_fit(data: Any, l2: Any) -> None:
    model = LogLinearModel({"a": 2, "b": 2}, [(("a", "b"), torch.eye(2, dtype=F64)),
                                              ("a", torch.tensor([0.0, 1.0], dtype=F64))])
    res = outcome(fit_loglinear, model, data, l2=l2, max_iter=30)
    event(f"loglinear: {res.kind}")
    if res.kind == "value":
        assert isinstance(data, torch.Tensor) and data.shape[0] >= 1 and l2 in (0.5, 0.0)
        fit = res.value
        if l2 == 0.5:  # stationarity (11.37): empirical - model expectations = l2 * theta
            resid = (model.empirical_features(data) - fit.model.expected_features()
                     - 0.5 * fit.model.weights)
            assert float(resid.abs().max()) < 1e-5


@given(X=st.sampled_from([torch.zeros(4, 2, dtype=F64), torch.zeros(4, 2, dtype=torch.long),
                          torch.full((4, 2), math.nan, dtype=F64), torch.zeros(0, 2, dtype=F64)]),
       y=st.sampled_from([[0, 1, 0, 1], [1, 1, 1, 1], [0.0, 1.0, 0.0, 1.0], "ab", []]))
@settings(max_examples=20)
def test_maxent_fit(X: torch.Tensor, y: Any) -> None:
    res = outcome(lambda: MaxEntClassifier(l2=0.1).fit(X, y))
    if res.kind == "value":
        p = res.value.predict_proba(X)
        torch.testing.assert_close(p.sum(-1), torch.ones(X.shape[0], dtype=F64))
        # unseen labels are refused, not mapped silently onto a neighbour
        with pytest.raises(UnknownStateError):
            res.value.joint_features(X, torch.full((X.shape[0],), 5))
