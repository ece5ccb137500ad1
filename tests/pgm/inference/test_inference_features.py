"""Soft, partial and batched evidence; MAP; cost and memory budget; junction-tree queries."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from pgm.inference import HEURISTICS, JunctionTree, VariableElimination, elimination_order
from pgm.io import bundled_network
from probforge.errors import (
    MemoryBudgetExceeded,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)

ASIA_EXPECTED = {  # seed-pgm.md section 2: brute-force values for the standard Asia CPTs
    ("lung", (("smoke", "yes"), ("dysp", "yes"))): 0.148334,
    ("tub", (("asia", "yes"), ("xray", "yes"))): 0.337716,
    ("bronc", (("dysp", "yes"),)): 0.833967,
    ("lung", (("xray", "yes"), ("dysp", "yes"))): 0.621253,
    ("dysp", (("asia", "yes"), ("smoke", "no"))): 0.336775,
}
ASIA_PRIOR = {"tub": 0.0104, "lung": 0.055, "bronc": 0.45, "either": 0.064828,
              "xray": 0.11029, "dysp": 0.435971}


def test_asia_numbers_of_the_seed_notes() -> None:
    asia = bundled_network("asia")
    ve = VariableElimination(asia)
    for (var, ev), p in ASIA_EXPECTED.items():
        assert float(ve.query([var], dict(ev)).probs()[0]) == pytest.approx(p, abs=5e-7)
    m = JunctionTree(asia).calibrate().marginals()
    for var, p in ASIA_PRIOR.items():
        assert float(m[var][0]) == pytest.approx(p, abs=5e-7)


def test_batched_evidence_equals_row_by_row_and_dataframe() -> None:
    alarm = bundled_network("alarm")
    x = alarm.sample(64, generator=torch.Generator().manual_seed(1))
    cols = {v: i for i, v in enumerate(alarm.variables)}
    ev_vars = ["HR", "BP", "SAO2", "CO", "PRESS"]
    ev = {v: x[:, cols[v]] for v in ev_vars}
    ve = VariableElimination(alarm)
    batch = ve.marginals(ev)
    jt = JunctionTree(alarm, evidence_vars=ev_vars).calibrate(ev)
    df = pd.DataFrame({v: [alarm.states[v][i] for i in x[:, cols[v]].tolist()] for v in ev_vars})
    from_df = ve.marginals(df)
    for r in (0, 17, 63):
        single = ve.marginals({v: int(x[r, cols[v]]) for v in ev_vars})
        for v, m in single.items():
            assert torch.allclose(batch[v][r], m, atol=1e-12)
            assert torch.allclose(jt.marginal(v)[r], m, atol=1e-12)
            assert torch.allclose(from_df[v][r], m, atol=1e-12)
    log_e = ve.log_evidence(ev)
    assert log_e.shape == (64,) and torch.allclose(log_e, jt.log_evidence, atol=1e-12)


def test_partially_observed_rows_and_soft_evidence() -> None:
    asia = bundled_network("asia")
    ve = VariableElimination(asia)
    rows = ve.marginals({"xray": ["yes", None, "no"], "dysp": ["yes", "no", None]})
    assert torch.allclose(rows["lung"][0], ve.marginals({"xray": "yes", "dysp": "yes"})["lung"])
    assert torch.allclose(rows["lung"][1], ve.marginals({"dysp": "no"})["lung"])
    assert torch.allclose(rows["lung"][2], ve.marginals({"xray": "no"})["lung"])
    # soft evidence with a one-hot likelihood equals hard evidence; a flat one changes nothing
    hard = ve.marginals({"xray": "yes"})["lung"]
    assert torch.allclose(ve.marginals(soft_evidence={"xray": [1.0, 0.0]})["lung"], hard)
    assert torch.allclose(ve.marginals(soft_evidence={"xray": [0.3, 0.3]})["lung"],
                          ve.marginals()["lung"])
    # virtual evidence by Bayes' rule on the node itself: p(x | lik) ∝ p(x) lik(x)
    lik = torch.tensor([0.8, 0.2], dtype=torch.float64)
    prior = ve.marginals()["xray"]
    post = ve.marginals(soft_evidence={"xray": lik})["xray"]
    assert torch.allclose(post, prior * lik / (prior * lik).sum(), atol=1e-14)
    jt = JunctionTree(asia, soft_evidence_vars=["xray"]).calibrate(soft_evidence={"xray": lik})
    assert torch.allclose(jt.marginal("lung"), ve.marginals(soft_evidence={"xray": lik})["lung"])


def test_zero_probability_evidence_raises_not_nan() -> None:
    asia = bundled_network("asia")
    ev = {"tub": "yes", "either": "no"}  # either = tub OR lung: impossible
    ve = VariableElimination(asia)
    assert ve.log_evidence(ev) == -math.inf
    for call in (lambda: ve.marginals(ev), lambda: ve.query(["lung"], ev),
                 lambda: ve.map_query(evidence=ev),
                 lambda: JunctionTree(asia, ["tub", "either"]).calibrate(ev)):
        with pytest.raises(ZeroProbabilityEvidence, match="probability zero"):
            call()
    with pytest.raises(ZeroProbabilityEvidence, match=r"rows \[1\]"):
        ve.marginals({"tub": ["no", "yes"], "either": ["no", "no"]})


def test_map_and_marginal_map() -> None:
    asia = bundled_network("asia")
    ve = VariableElimination(asia)
    res = ve.map_query(evidence={"dysp": "yes"})
    x = {**res.assignment(), "dysp": "yes"}
    assert float(asia.log_prob(x)) == pytest.approx(float(res.log_joint), abs=1e-12)
    mm = ve.map_query(["lung", "bronc"], evidence={"dysp": "yes"})
    joint = ve.query(["lung", "bronc"], {"dysp": "yes"}).probs()
    i, j = divmod(int(joint.argmax()), 2)
    assert mm.assignment() == {"lung": asia.states["lung"][i], "bronc": asia.states["bronc"][j]}
    assert float(mm.log_posterior.exp()) == pytest.approx(float(joint.max()), abs=1e-12)
    mx = JunctionTree(asia, ["dysp"]).calibrate({"dysp": "yes"}, semiring="max")
    assert float(mx.log_evidence) == pytest.approx(float(res.log_joint), abs=1e-12)


def test_orders_are_pluggable_and_results_order_invariant() -> None:
    alarm = bundled_network("alarm")
    ref = VariableElimination(alarm).marginals({"HR": "HIGH"})
    for spec in ("min_neighbours", "min_weight", "weighted_min_fill", "best",
                 lambda adj, cards, keep: [v for v in adj if v not in keep]):
        m = VariableElimination(alarm, order=spec).marginals({"HR": "HIGH"})
        assert all(torch.allclose(m[v], ref[v], atol=1e-12) for v in ref)
    with pytest.raises(ValidationError, match="unknown heuristic"):
        VariableElimination(alarm, order="min_everything").marginals()
    with pytest.raises(ValidationError, match="exactly once"):
        elimination_order({"a": {"b"}, "b": {"a"}}, {"a": 2, "b": 2}, ["a"])


def _elimination_entries(adj: dict[str, set[str]], cards: dict[str, int],
                         order: list[str]) -> int:
    """Table entries created by eliminating in ``order`` (counted here, independently)."""
    adj = {v: set(n) for v, n in adj.items()}
    total = 0
    for v in order:
        nbrs = adj.pop(v)
        total += cards[v] * math.prod(cards[u] for u in nbrs)
        for u in nbrs:
            adj[u] |= nbrs - {u}
            adj[u].discard(v)
    return total


@pytest.mark.parametrize("seed", range(6))
def test_best_order_is_the_cheapest_heuristic(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    names = [f"v{i}" for i in range(14)]
    adj: dict[str, set[str]] = {v: set() for v in names}
    for _ in range(24):
        a, b = torch.randperm(14, generator=gen)[:2].tolist()
        adj[names[a]].add(names[b])
        adj[names[b]].add(names[a])
    cards = {v: int(torch.randint(2, 7, (), generator=gen)) for v in names}
    costs = {h: _elimination_entries(adj, cards, elimination_order(adj, cards, h))
             for h in HEURISTICS}
    best = elimination_order(adj, cards, "best")
    assert _elimination_entries(adj, cards, best) == min(costs.values())
    assert best in [elimination_order(adj, cards, h) for h in HEURISTICS]
    # under best_above, min-fill's order stands when it creates at most that many entries
    min_fill = elimination_order(adj, cards, "min_fill")
    assert elimination_order(adj, cards, "best", best_above=costs["min_fill"]) == min_fill
    assert elimination_order(adj, cards, "best", best_above=costs["min_fill"] - 1) == best


def test_cost_estimate_and_memory_budget() -> None:
    munin = bundled_network("alarm")
    ve = VariableElimination(munin, memory_budget=1_000)
    cost = ve.cost()
    assert cost.largest_table * 8 > 1_000
    with pytest.raises(MemoryBudgetExceeded, match=r"table of [\d,]+ entries.*GiB"):
        ve.marginals()
    with pytest.raises(MemoryBudgetExceeded):
        JunctionTree(munin, memory_budget=1_000).calibrate()
    rows = {"HR": torch.zeros(10**6, dtype=torch.long)}
    with pytest.raises(MemoryBudgetExceeded, match="1,000,000 evidence rows"):
        VariableElimination(munin, memory_budget=2**28).marginals(rows)


def test_query_errors() -> None:
    ve = VariableElimination(bundled_network("asia"))
    with pytest.raises(UnknownVariableError, match="no variable 'lungs'"):
        ve.query(["lungs"])
    with pytest.raises(UnknownVariableError, match="unknown variable 'smok'"):
        ve.query(["lung"], {"smok": "yes"})
    with pytest.raises(ValidationError, match="also observed"):
        ve.query(["lung"], {"lung": "yes"})
    with pytest.raises(ValidationError, match="same length"):
        ve.marginals({"xray": ["yes", "no"], "dysp": ["yes"]})
    with pytest.raises(ValidationError, match="both hard and soft"):
        ve.marginals({"xray": "yes"}, {"xray": [1.0, 0.5]})
    jt = JunctionTree(bundled_network("asia"), ["xray"])
    with pytest.raises(ValidationError, match="built for hard evidence"):
        jt.calibrate({"dysp": "yes"})
    with pytest.raises(ValidationError, match="no clique contains"):
        jt.calibrate({"xray": "yes"}).joint(["asia", "dysp"])


def test_soft_evidence_order_does_not_matter() -> None:
    # regression: tables used to be matched to scopes in the caller's dict order
    asia = bundled_network("asia")
    lik = {"xray": [0.9, 0.2], "smoke": [0.3, 0.6], "dysp": [0.5, 0.7], "asia": [0.1, 0.9]}
    jt = JunctionTree(asia, soft_evidence_vars=list(lik))
    ref = VariableElimination(asia).log_evidence(soft_evidence=lik)
    for order in (list(lik), sorted(lik), sorted(lik, reverse=True)):
        cal = jt.calibrate(soft_evidence={v: lik[v] for v in order})
        assert float(cal.log_evidence) == pytest.approx(float(ref), abs=1e-12)


def test_barren_nodes_are_pruned_without_changing_answers() -> None:
    """Queries on a Bayesian network contract only the ancestral set of query and evidence."""
    alarm = bundled_network("alarm")
    ve = VariableElimination(alarm)
    # A root queried without evidence needs its own CPD and nothing else.
    root = next(v for v in alarm.variables if not alarm.parents[v])
    assert ve.cost([root]).largest_table == alarm.cards[root]
    assert ve.cost([root]).largest_table < ve.cost([root], {"BP": "LOW"}).largest_table
    # Same numbers as the junction tree, which always uses the whole network. Pruning assumes
    # CPT rows sum to one; alarm.bif's rows are off by up to 1e-7, which moves posteriors by less
    # than 1e-6 (exactness on exactly normalised networks: the brute-force tests, 1e-10).
    evidence = {"HRBP": "HIGH", "CO": "LOW"}
    jt = JunctionTree(alarm, evidence_vars=list(evidence)).calibrate(evidence).marginals()
    for v in jt:
        got = ve.query([v], evidence).probs()
        assert torch.allclose(got, jt[v], atol=1e-6, rtol=0), v
    # MPE maximises over every variable, so it never prunes: its value is the full joint's.
    mpe = ve.map_query(evidence=evidence)
    full = {**mpe.assignment(), **evidence}
    assert torch.allclose(mpe.log_joint, alarm.log_prob(full), atol=1e-12, rtol=0)


def test_dense_and_flat_calibrations_agree() -> None:
    """Both sum-product engines of the junction tree, on batched (deduplicated) rows, soft
    evidence and clique joints."""
    alarm = bundled_network("alarm")
    x = alarm.sample(40, generator=torch.Generator().manual_seed(3))
    cols = {v: i for i, v in enumerate(alarm.variables)}
    ev = {v: x[:, cols[v]] for v in ("HR", "BP", "SAO2")}
    lik = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    cal = {m: JunctionTree(alarm, evidence_vars=list(ev), soft_evidence_vars=["CO"], method=m)
           .calibrate(ev, soft_evidence={"CO": lik}) for m in ("flat", "dense")}
    assert torch.allclose(cal["flat"].log_evidence, cal["dense"].log_evidence, atol=1e-12)
    flat, dense = cal["flat"].marginals(), cal["dense"].marginals()
    assert flat.keys() == dense.keys()
    for v in flat:
        assert flat[v].shape == dense[v].shape == (40, alarm.cards[v])
        assert torch.allclose(flat[v], dense[v], atol=1e-12), v
    pair = list(max(cal["flat"].tree.cliques, key=len)[:2])
    assert torch.allclose(cal["flat"].joint(pair), cal["dense"].joint(pair), atol=1e-12)
    with pytest.raises(ValidationError, match="method"):
        JunctionTree(alarm, method="sparse")
