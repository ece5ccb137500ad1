"""Property tests of the inference entry points (issue 21): bad and edge inputs give a typed
error, valid ones a NaN-free answer equal to brute-force enumeration.

The network is a chain ``A -> B -> C`` with strictly positive CPDs (no evidence has probability
zero, and its factor graph is a tree, so loopy BP is exact), small enough to enumerate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pgm import BayesianNetwork, TabularCPD
from pgm.inference import (
    JunctionTree,
    PosteriorMarginals,
    VariableElimination,
    chain_belief_propagation,
    elimination_order,
    loopy_belief_propagation,
    mean_field,
    resolve_evidence,
)
from pgm.inference.gibbs_sampling import GibbsSampler
from probforge.errors import ProbforgeError
from tests.robustness import outcome

F64 = torch.float64
STATES = {"A": ("a0", "a1"), "B": ("b0", "b1", "b2"), "C": ("c0", "c1")}
NAMES = ("A", "B", "C")


def chain() -> BayesianNetwork:
    return BayesianNetwork([
        TabularCPD("A", torch.tensor([0.3, 0.7], dtype=F64), states=STATES),
        TabularCPD("B", torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=F64), ["A"],
                   STATES),
        TabularCPD("C", torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.25, 0.75]], dtype=F64), ["B"],
                   STATES),
    ], name="chain")


NET = chain()
VE = VariableElimination(NET)
JOINT = torch.stack([NET.log_prob(torch.tensor(x)) for x in
                     itertools.product(range(2), range(3), range(2))]).exp().reshape(2, 3, 2)


class Invalid(Exception):
    """The reference parser's verdict: this evidence must be refused."""


def _index(v: str, s: Any) -> int:
    if isinstance(s, str):
        if s not in STATES[v]:
            raise Invalid
        return STATES[v].index(s)
    if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < len(STATES[v]):
        raise Invalid
    return s


def reference_rows(ev: Any) -> tuple[list[dict[str, int]], bool, set[str]]:
    """Evidence rows as ``{variable: state index}`` (unobserved left out), whether batched, and
    the variables that carry hard evidence (what a query may not ask for)."""
    if ev is None:
        return [{}], False, set()
    if not isinstance(ev, Mapping):
        raise Invalid
    cols: dict[str, tuple[str, Any]] = {}
    lengths: set[int] = set()
    for v, val in ev.items():
        if v not in STATES:
            raise Invalid
        if isinstance(val, torch.Tensor):
            if val.is_floating_point() or val.dtype == torch.bool or val.dim() > 1:
                raise Invalid
            xs = val.reshape(-1).tolist()
            if any(x < -1 or x >= len(STATES[v]) for x in xs):
                raise Invalid
            if val.dim() == 0:
                cols[v] = ("one", None if xs[0] == -1 else xs[0])
            else:
                cols[v] = ("rows", [None if x == -1 else x for x in xs])
                lengths.add(len(xs))
        elif isinstance(val, list | tuple):
            cols[v] = ("rows", [None if s is None else _index(v, s) for s in val])
            lengths.add(len(val))
        else:
            cols[v] = ("one", _index(v, val))
    if len(lengths) > 1:
        raise Invalid
    if not lengths:  # one row; a -1 tensor there means "not observed at all"
        row = {v: i for v, (_, i) in cols.items() if i is not None}
        return [row], False, set(row)
    n = lengths.pop()
    rows = [{v: (c[i] if kind == "rows" else c) for v, (kind, c) in cols.items()}
            for i in range(n)]
    return [{v: i for v, i in r.items() if i is not None} for r in rows], True, set(cols)


def brute(query: list[str], row: Mapping[str, int], soft: Mapping[str, Any] | None = None
          ) -> torch.Tensor:
    """p(query | row) by enumeration, query axes in the given order."""
    t = JOINT.clone()
    for v, i in row.items():
        mask = torch.zeros(len(STATES[v]), dtype=F64)
        mask[i] = 1
        t = t * mask.reshape([-1 if u == v else 1 for u in NAMES])
    for v, lik in (soft or {}).items():
        t = t * torch.as_tensor(lik, dtype=F64).reshape([-1 if u == v else 1 for u in NAMES])
    out = t.sum(dim=tuple(i for i, u in enumerate(NAMES) if u not in query)) if len(
        query) < 3 else t
    kept = [u for u in NAMES if u in query]
    out = out.permute([kept.index(u) for u in query]) if query else out
    return out / out.sum()


_STATE = st.one_of(st.sampled_from(["a0", "a1", "b0", "b2", "c1", "zz", None]),
                   st.integers(-1, 3))
_VALUE = st.one_of(
    st.sampled_from(["a0", "a1", "b1", "c0", "zz"]),
    st.integers(-2, 3),
    st.sampled_from([1.0, True, math.nan]),
    st.lists(_STATE, max_size=3),
    st.lists(st.integers(-2, 2), max_size=3).map(lambda x: torch.tensor(x, dtype=torch.long)),
    st.integers(-1, 1).map(lambda i: torch.tensor(i)),
    st.sampled_from([torch.tensor([0.0, 1.0]), torch.tensor([True]),
                     torch.zeros(1, 2, dtype=torch.long)]),
)
EVIDENCE = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["A", "B", "C", "Z"]), _VALUE, max_size=2),
    st.sampled_from([["A"], "A", 3]),
)
QUERY = st.one_of(
    st.sampled_from(["A", "B", "C", "AB", "BC", "Z", ""]),
    st.lists(st.sampled_from(["A", "B", "C", "Z"]), max_size=3),
    st.sampled_from([None, 3, b"A", ("C", "A")]),
)


def _query_names(q: Any) -> list[str]:
    if isinstance(q, str):
        if q not in STATES:
            raise Invalid
        return [q]
    if not isinstance(q, list | tuple) or any(v not in STATES for v in q) or len(set(q)) < len(q):
        raise Invalid
    return list(q)


@given(query=QUERY, evidence=EVIDENCE)
@settings(max_examples=60)
def test_ve_query_against_brute_force(query: Any, evidence: Any) -> None:
    res = outcome(VE.query, query, evidence)
    event(f"query: {res.kind}")
    try:
        rows, batched, hard = reference_rows(evidence)
        names = _query_names(query)
        if set(names) & hard:
            raise Invalid
    except Invalid:
        assert res.kind == "error", f"accepted {query!r} given {evidence!r}"
        return
    assert res.kind == "value", res.error
    f = res.value
    assert f.variables == tuple(names)  # "AB" is never A and B
    assert tuple(f.batch_shape) == ((len(rows),) if batched else ())
    probs = f.probs() if batched else f.probs().unsqueeze(0)
    for i, row in enumerate(rows):
        torch.testing.assert_close(probs[i], brute(names, row), atol=1e-10, rtol=0)


@given(evidence=EVIDENCE)
@settings(max_examples=40)
def test_marginals_log_evidence_and_map(evidence: Any) -> None:
    m = outcome(VE.marginals, evidence)
    le = outcome(VE.log_evidence, evidence, allow_inf=True)
    mp = outcome(VE.map_query, None, evidence)
    event(f"marginals: {m.kind}")
    try:
        rows, batched, hard = reference_rows(evidence)
    except Invalid:
        assert m.kind == le.kind == mp.kind == "error"
        return
    assert m.kind == le.kind == mp.kind == "value"
    for i, row in enumerate(rows):
        for v in (u for u in NAMES if u not in hard):
            got = m.value[v][i] if batched else m.value[v]
            torch.testing.assert_close(got, brute([v], row), atol=1e-10, rtol=0)
        t = JOINT
        for v, k in row.items():
            t = t.index_select(NAMES.index(v), torch.tensor([k]))
        lz = le.value[i] if batched else le.value
        assert abs(float(lz) - math.log(float(t.sum()))) < 1e-10
        # MAP: the max of the joint restricted to the row, attained at the reported states
        lj = mp.value.log_joint[i] if batched else mp.value.log_joint
        assert abs(float(lj) - math.log(float(t.max()))) < 1e-10
        best = {v: int(mp.value.indices[v][i] if batched else mp.value.indices[v])
                for v in mp.value.indices}
        full = {**best, **row}
        if len(full) == 3:
            assert abs(float(JOINT[full["A"], full["B"], full["C"]]) - float(t.max())) < 1e-12


@given(evidence=EVIDENCE, method=st.sampled_from(["junction_tree", "per_variable"]))
@settings(max_examples=20)
def test_junction_tree_and_posterior_marginals(evidence: Any, method: str) -> None:
    try:
        rows, batched, hard = reference_rows(evidence)
    except Invalid:
        rows, batched, hard = [], False, set()
        ok = False
    else:
        ok = all(set(r) == hard for r in rows)  # every declared variable observed in each row
    jt = outcome(JunctionTree, NET, evidence_vars=sorted(hard))
    assert jt.kind == "value"
    cal = outcome(jt.value.calibrate, evidence)
    pm = outcome(lambda: PosteriorMarginals(NET, sorted(hard), method=method)(evidence))
    event(f"calibrate: {cal.kind}")
    if not ok:
        assert cal.kind == "error" and pm.kind == "error"
        return
    assert cal.kind == "value" and pm.kind == "value", (cal.error, pm.error)
    for i, row in enumerate(rows):
        for v in (u for u in NAMES if u not in hard):
            ref = brute([v], row)
            got = cal.value.marginal(v)
            torch.testing.assert_close(got[i] if batched else got, ref, atol=1e-10, rtol=0)
            got = pm.value[v]
            torch.testing.assert_close(got[i] if batched else got, ref, atol=1e-10, rtol=0)


_LIK = st.one_of(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, math.nan, math.inf]), min_size=1,
             max_size=4),
    st.sampled_from([torch.tensor([1, 2]), torch.ones(0, 2, dtype=F64),
                     torch.tensor([[1.0, 2.0], [0.5, 0.0]], dtype=F64),
                     torch.ones(3, 2, dtype=F64), torch.ones(1, 1, 2, dtype=F64), "a0"]),
)


@given(soft=st.dictionaries(st.sampled_from(["A", "C", "Z"]), _LIK, max_size=2))
@settings(max_examples=40)
def test_soft_evidence(soft: dict[str, Any]) -> None:
    res = outcome(VE.query, "B", None, soft)
    event(f"soft: {res.kind}")
    valid, rows = True, set()
    for v, lik in soft.items():
        if v not in STATES or isinstance(lik, str):
            valid = False
            continue
        t = torch.as_tensor(lik, dtype=F64)
        if isinstance(lik, torch.Tensor) and not lik.is_floating_point():
            valid = False
        elif t.dim() not in (1, 2) or t.shape[-1] != len(STATES[v]):
            valid = False
        elif not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool(
                (t.sum(-1) == 0).any()):
            valid = False
        elif t.dim() == 2:
            rows.add(t.shape[0])
    if not valid or len(rows) > 1:
        assert res.kind == "error"
        return
    assert res.kind == "value", res.error
    if not rows:
        torch.testing.assert_close(res.value.probs(), brute(["B"], {}, soft), atol=1e-10,
                                   rtol=0)
        return
    n = rows.pop()
    assert res.value.probs().shape == (n, 3)
    for i in range(n):
        row_soft = {v: torch.as_tensor(lik, dtype=F64) for v, lik in soft.items()}
        row_soft = {v: t[i] if t.dim() == 2 else t for v, t in row_soft.items()}
        torch.testing.assert_close(res.value.probs()[i], brute(["B"], {}, row_soft),
                                   atol=1e-10, rtol=0)


def test_empty_batches_are_empty_everywhere() -> None:
    for ev, soft in (({"A": []}, None), ({"A": torch.zeros(0, dtype=torch.long)}, None),
                     (None, {"C": torch.ones(0, 2, dtype=F64)})):
        assert VE.query("B", ev, soft).probs().shape == (0, 3)
        assert VE.log_evidence(ev, soft).shape == (0,)
        assert VE.marginals(ev, soft)["B"].shape == (0, 3)
        assert VE.map_query(None, ev, soft).log_joint.shape == (0,)
        hard = [] if ev is None else ["A"]
        jt = JunctionTree(NET, hard, [] if soft is None else ["C"])
        assert jt.calibrate(ev, soft).marginal("B").shape == (0, 3)
        for res in (loopy_belief_propagation(NET, ev, soft), mean_field(NET, ev, soft)):
            assert res.marginals["B"].shape == (0, 3)
        assert resolve_evidence(NET.states, ev, soft).batch_shape == (0,)


@given(damping=st.one_of(st.floats(-1, 2), st.sampled_from([math.nan, "x", True, 0.0])),
       max_iter=st.one_of(st.integers(-1, 300), st.sampled_from([2.0, True, None])),
       tol=st.one_of(st.floats(-1, 1), st.sampled_from([math.nan, math.inf, "x", 1e-10])),
       semiring=st.sampled_from(["sum", "max", "min"]))
@settings(max_examples=40)
def test_loopy_bp_options(damping: Any, max_iter: Any, tol: Any, semiring: str) -> None:
    res = outcome(loopy_belief_propagation, NET, {"C": "c1"}, semiring=semiring,
                  damping=damping, max_iter=max_iter, tol=tol)
    valid = (isinstance(damping, float) and 0 <= damping < 1
             and isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter >= 1
             and isinstance(tol, float) and 0 < tol < math.inf and semiring != "min")
    assert (res.kind == "value") == valid, res.error
    if valid and semiring == "sum" and res.value.converged and tol <= 1e-6 and damping <= 0.5:
        for v in ("A", "B"):  # a tree: BP is exact
            torch.testing.assert_close(res.value.marginals[v], brute([v], {"C": 1}),
                                       atol=1e-5, rtol=0)


@given(max_iter=st.one_of(st.integers(-1, 50), st.sampled_from([1.5, False, "3"])),
       tol=st.one_of(st.floats(-1, 1), st.sampled_from([math.nan, math.inf, "x"])))
@settings(max_examples=25)
def test_mean_field_options(max_iter: Any, tol: Any) -> None:
    res = outcome(mean_field, NET, {"A": ["a0", "a1"]}, max_iter=max_iter, tol=tol)
    valid = (isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter >= 1
             and isinstance(tol, float) and 0 < tol < math.inf)
    assert (res.kind == "value") == valid, res.error
    if valid:
        for q in res.value.marginals.values():
            torch.testing.assert_close(q.sum(-1), torch.ones(2, dtype=F64))
        log_z = torch.tensor([math.log(0.3), math.log(0.7)], dtype=F64)
        assert bool((res.value.elbo <= log_z + 1e-9).all())  # a lower bound on log p(e)


@given(budget=st.one_of(st.integers(-5, 2**40), st.sampled_from([1e9, True, "1GB", None])),
       order=st.one_of(st.sampled_from(["min_fill", "best", "bogus", 3]),
                       st.permutations(["A", "B", "C"]).map(list),
                       st.lists(st.sampled_from(["A", "B", "Z"]), max_size=3)))
@settings(max_examples=30)
def test_engine_construction(budget: Any, order: Any) -> None:
    ve = outcome(VariableElimination, NET, order=order, memory_budget=budget)
    jt = outcome(JunctionTree, NET, order=order, memory_budget=budget)
    ok_budget = isinstance(budget, int) and not isinstance(budget, bool) and budget >= 1
    ok_order = order in ("min_fill", "best") or (isinstance(order, list) and len(set(order))
                                                 == len(order) and set(order) <= set(NAMES))
    if not (ok_budget and ok_order):
        assert ve.kind == "error" and jt.kind == "error"
        return
    assert ve.kind == "value"
    res = outcome(ve.value.query, "B", {"C": "c0"})
    if res.kind == "value":  # an explicit order must list every variable to eliminate
        torch.testing.assert_close(res.value.probs(), brute(["B"], {"C": 0}), atol=1e-10,
                                   rtol=0)
    else:  # a budget below the largest table, or an order that misses the query's variables
        assert budget < 1024 or isinstance(order, list)


@given(adj_spec=st.sampled_from(["min_fill", "weighted_min_fill", 5, None, ["a", "b"], "ab"]),
       keep=st.one_of(st.just("ab"), st.just(["b"]), st.just(()), st.just(7)))
def test_elimination_order(adj_spec: Any, keep: Any) -> None:
    adj = {"ab": {"b"}, "b": {"ab", "c"}, "c": {"b"}}
    res = outcome(elimination_order, adj, {"ab": 2, "b": 2, "c": 2}, adj_spec, keep)
    if res.kind == "value":
        kept = {keep} if isinstance(keep, str) else set(keep)
        assert sorted(res.value) == sorted(set(adj) - kept)


@st.composite
def chains(draw: st.DrawFn) -> tuple[torch.Tensor, Any]:
    t = draw(st.integers(1, 3))
    k = draw(st.integers(0, 2))
    cells = draw(st.lists(st.sampled_from([0.0, -1.0, 1.5, -math.inf, math.inf, math.nan]),
                          min_size=t * k * k, max_size=t * k * k))
    lp = torch.tensor(cells, dtype=F64).reshape(t, k, k)
    unary = draw(st.sampled_from([None, "zeros", "f32", "bad_shape", "nan"]))
    u: Any = None
    if unary == "zeros":
        u = torch.zeros(t + 1, k, dtype=F64)
    elif unary == "f32":
        u = torch.zeros(t + 1, k)
    elif unary == "bad_shape":
        u = torch.zeros(t, k, dtype=F64)
    elif unary == "nan":
        u = torch.full((t + 1, k), math.nan, dtype=F64)
    return lp, u


@given(args=chains())
@settings(max_examples=40)
def test_chain_belief_propagation(args: tuple[torch.Tensor, Any]) -> None:
    lp, u = args
    res = outcome(chain_belief_propagation, lp, u, allow_inf=True)
    event(f"chain: {res.kind}")
    valid = (lp.shape[-1] >= 1 and not bool(torch.isnan(lp).any())
             and not bool(torch.isposinf(lp).any())
             and (u is None or (u.dtype == F64 and u.shape == (lp.shape[0] + 1, lp.shape[-1])
                                and not bool(torch.isnan(u).any()))))
    if not valid:
        assert res.kind == "error"
        return
    t_len, k = lp.shape[0] + 1, lp.shape[-1]
    total = 0.0
    for x in itertools.product(range(k), repeat=t_len):
        total += math.exp(sum(float(lp[i, x[i], x[i + 1]]) for i in range(t_len - 1)))
    if total == 0.0:
        assert res.kind == "error"  # Z = 0: ZeroProbabilityEvidence, never NaN
        return
    assert res.kind == "value", res.error
    torch.testing.assert_close(res.value.log_z, torch.tensor(math.log(total), dtype=F64))
    assert not bool(torch.isnan(res.value.marginals).any())


@given(num_chains=st.one_of(st.integers(-2, 3), st.sampled_from([2.0, True, "2"])),
       evidence=st.sampled_from([None, {"C": "c1"}, {"C": ["c0", "c1"]}, {"Z": 0}, ["C"]]),
       blocks=st.sampled_from(["auto", "single", [["A", "B"], ["C"]], ["AB", "C"], "pairs"]))
@settings(max_examples=15)
def test_gibbs_sampler_arguments(num_chains: Any, evidence: Any, blocks: Any) -> None:
    sampler = outcome(GibbsSampler, NET, evidence, blocks=blocks)
    ok = evidence in (None, {"C": "c1"}) and (blocks in ("auto", "single") or (
        blocks == [["A", "B"], ["C"]] and evidence is None))
    assert (sampler.kind == "value") == ok, sampler.error
    if not ok:
        return
    res = outcome(sampler.value.run, num_chains, 2, num_warmup=0, seed=0)
    valid = isinstance(num_chains, int) and not isinstance(num_chains, bool) and num_chains >= 1
    assert (res.kind == "value") == valid, res.error
    if valid:
        for v in NAMES:
            assert tuple(res.value[v].shape) == (num_chains, 2)
            assert bool(((res.value[v] >= 0) & (res.value[v] < len(STATES[v]))).all())


def test_errors_are_probforge_errors() -> None:
    # the engines refuse what is not a model before anything else
    for engine in (VariableElimination, JunctionTree, PosteriorMarginals,
                   loopy_belief_propagation, mean_field):
        res = outcome(engine, "asia")
        assert res.kind == "error" and isinstance(res.error, ProbforgeError)
