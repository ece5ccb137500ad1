"""The compiled per-variable queries (one bucket tree per variable, chained) against
VariableElimination's torch contractions, which brute force checks in
test_exact_vs_brute_force.py."""

from __future__ import annotations

import math

import pytest
import torch

import pgm.inference._bucket_program as bp_module
import pgm.inference._query_forest as qf_module
from pgm.factor import Factor
from pgm.inference import PosteriorMarginals, VariableElimination
from pgm.inference._query_forest import QueryForest
from pgm.io import bundled_network
from pgm.markov import MarkovNetwork
from probforge.errors import ZeroProbabilityEvidence
from probforge.ops.chain import native
from tests.reference.random_models import random_bn, random_mrf

pytestmark = pytest.mark.skipif(not native.available(), reason="numba is not installed")


def _assert_matches(model, ev_vars, evidence, tol: float = 1e-12) -> QueryForest:  # type: ignore[no-untyped-def]
    hidden = [v for v in model.variables if v not in ev_vars]
    forest = QueryForest(model, ev_vars, hidden)
    got = forest.run(evidence)
    assert got is not None and set(got) == set(hidden) - set(forest.left)
    ve = VariableElimination(model)
    for v, m in got.items():  # the same pruned query (the bundled CPDs sum to 1 +- 1e-7)
        torch.testing.assert_close(m, ve.query([v], evidence).probs(), atol=tol, rtol=0)
    return forest


@pytest.mark.parametrize("seed", range(20))
def test_random_bayesian_networks(seed: int) -> None:
    model = random_bn(seed, n_min=4, n_max=14)
    names = list(model.variables)
    x = model.sample(5, generator=torch.Generator().manual_seed(seed))
    _assert_matches(model, [], {})
    ev_vars = names[-2:] if seed % 2 else names[:1] + names[-1:]
    rows = {v: x[:, names.index(v)] for v in ev_vars}
    _assert_matches(model, ev_vars, rows)  # (5, card) per variable
    scalar = {v: int(x[0, names.index(v)]) for v in ev_vars}
    got = QueryForest(model, ev_vars, [names[1] if names[1] not in ev_vars else names[2]]).run(
        scalar)
    assert got is not None and all(m.dim() == 1 for m in got.values())


@pytest.mark.parametrize("seed", range(8))
def test_random_markov_networks(seed: int) -> None:
    model = random_mrf(seed, n_min=3, n_max=9)
    try:
        VariableElimination(model).log_evidence()
    except ZeroProbabilityEvidence:  # pragma: no cover - depends on the draw
        pytest.skip("hard constraints forbid every state")
    _assert_matches(model, [], {})


def test_float32() -> None:
    model = random_bn(5, n_min=8, n_max=12, dtype=torch.float32)
    forest = _assert_matches(model, [], {}, tol=1e-5)
    got = forest.run({})
    assert got is not None and all(m.dtype == torch.float32 for m in got.values())


@pytest.mark.parametrize("min_block", [1, 5, 256, 10**9])
@pytest.mark.parametrize("rows", [1, 5])
def test_blocks_and_groups(monkeypatch: pytest.MonkeyPatch, min_block: int, rows: int) -> None:
    """Blocks of one entry (every variable counted), of a few, and whole cliques (a root whose
    sum spans several blocks, and one inside a block); one row (groups of trees in parallel) and
    several (rows in parallel)."""
    monkeypatch.setattr(bp_module, "MIN_BLOCK", min_block)
    model = bundled_network("alarm")
    ev_vars = ["HR", "BP", "VENTLUNG"]
    x = model.sample(rows, generator=torch.Generator().manual_seed(min_block))
    names = list(model.variables)
    forest = _assert_matches(model, ev_vars, {v: x[:, names.index(v)] for v in ev_vars})
    program = forest._program
    assert not forest.left and len(program.marginal_vars) == len(names) - len(ev_vars)
    if min_block == 1:
        assert (program.n_blocks > 1).sum() > len(program.block) // 2
    if min_block == 10**9:
        assert (program.n_blocks == 1).all()
    assert len(program.plan.groups(2)[0]) == 3  # two groups of trees


@pytest.mark.parametrize("seed", range(12))
def test_sparse_buckets(seed: int) -> None:
    """Mostly-zero tables: buckets walk only their nonzero entries, messages between two such
    buckets hold only theirs; the posteriors are those of variable elimination, for rows of
    evidence (also scalar evidence), and a row of impossible evidence is reported."""
    model = random_bn(100 + seed, n_min=10, n_max=16, p_zero=0.6)
    names = list(model.variables)
    x = model.sample(6, generator=torch.Generator().manual_seed(seed))
    ev_vars = names[-2:] if seed % 2 else [names[0], names[len(names) // 2]]
    forest = _assert_matches(model, ev_vars, {v: x[:, names.index(v)] for v in ev_vars})
    program = forest._program
    sparse = program.sp_first >= 0
    assert sparse.any() and program.sparse_entries < program.block[sparse].sum()
    dense_sizes = sum(sum(t.sizes) for t in forest._trees)
    assert forest.entries < dense_sizes
    _assert_matches(model, [], {})
    _assert_matches(model, ev_vars, {v: int(x[0, names.index(v)]) for v in ev_vars})


@pytest.mark.parametrize("seed", [0, 2, 3, 4, 5, 7, 9])  # (seed 1's buckets are too small)
def test_split_buckets(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """One row on two threads with no split of the trees: sparse buckets run in two halves
    that add into different slots (here every bucket over 8 entries)."""
    from numba import get_num_threads

    import pgm.inference._bucket_plan as plan_module

    monkeypatch.setattr(bp_module, "SPLIT_ENTRIES", 8)
    monkeypatch.setattr(plan_module, "THREAD_SPEED", 1e-9)  # never split the trees
    model = random_bn(200 + seed, n_min=10, n_max=16, p_zero=0.6)
    names = list(model.variables)
    x = model.sample(1, generator=torch.Generator().manual_seed(seed))
    ev_vars = [names[0]] if seed % 2 else []
    forest = _assert_matches(model, ev_vars, {v: int(x[0, names.index(v)]) for v in ev_vars})
    program = forest._program
    assert program.sp_mid.any()
    for b in map(int, (program.sp_mid > 0).nonzero()[0]):
        slots = program.sp_out16 if program.sp_small[b] else program.sp_out
        at = program.sp_first[b] + program.sp_mid[b]
        assert slots[at] != slots[at - 1]
    if get_num_threads() < 2:  # pragma: no cover - the halves then run one after the other
        pytest.skip("one thread: the split path is not taken")


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_wide_offsets(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Sparse buckets with int32 offsets (here every one), whole and in split halves."""
    import pgm.inference._bucket_plan as plan_module

    monkeypatch.setattr(bp_module, "SMALL_OFFSETS", 0)
    monkeypatch.setattr(bp_module, "SPLIT_ENTRIES", 8)
    model = random_bn(200 + seed, n_min=10, n_max=16, p_zero=0.6)
    program = _assert_matches(model, [], {})._program
    assert not program.sp_small.any() and (program.sp_first >= 0).any()
    monkeypatch.setattr(plan_module, "THREAD_SPEED", 1e-9)
    program = _assert_matches(model, [], {})._program
    assert not program.sp_small.any() and program.sp_mid.any()


def test_compact_messages() -> None:
    """A chain of mostly-zero tables: every bucket is sparse, so every message is compact (its
    nonzero entries only), and the chain's end matches variable elimination."""
    model = random_bn(7, n_min=12, n_max=12, p_zero=0.8)
    forest = _assert_matches(model, [], {})
    program = forest._program
    inner = (program.sp_first >= 0) & ~program.to_marg
    dense_out = program.block // program.red  # a dense message's size
    assert (program.out_size_b[inner] < dense_out[inner]).any()


def test_sparse_zero_probability_rows() -> None:
    """Rows of evidence on a variable and its parent, some of them impossible (a CPT zero):
    the possible ones are answered, a batch with an impossible one is reported (None)."""
    model = random_bn(104, n_min=10, n_max=16, p_zero=0.6)
    ve = VariableElimination(model)
    w = next(u for u in model.variables if model.parents[u])
    v = model.parents[w][0]
    rows = torch.cartesian_prod(torch.arange(model.cards[v]), torch.arange(model.cards[w]))
    joint = ve.query([v, w]).probs()  # (card v, card w)
    possible = joint[rows[:, 0], rows[:, 1]] > 0
    assert not possible.all(), "the draw needs an impossible pair of states"
    hidden = [u for u in model.variables if u not in (v, w)]
    forest = QueryForest(model, [v, w], hidden)
    assert forest.run({v: rows[possible, 0], w: rows[possible, 1]}) is not None
    assert forest.run({v: rows[:, 0], w: rows[:, 1]}) is None


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_shared_buckets(threads: int) -> None:
    """Query trees' common lower buckets are planned once; every group of a split runs whole
    trees (children before parents), and the groups together run every tree."""
    model = bundled_network("alarm")
    forest = _assert_matches(model, ["HR"], {"HR": torch.tensor([0, 2])})
    plan = forest._plan
    assert len(plan.work) < sum(len(t.cliques) for t in forest._trees) / 2
    assert forest.entries == round(sum(plan.work))
    start, flat = plan.groups(threads)
    runs = [flat[start[g]:start[g + 1]].tolist() for g in range(len(start) - 1)]
    assert len(runs) == threads and all(r == sorted(set(r)) for r in runs)
    for tree_buckets in plan.tree_buckets:
        assert any(set(tree_buckets) <= set(r) for r in runs)


def test_large_trees_left_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    model = bundled_network("alarm")
    monkeypatch.setattr(qf_module, "LEFT_NS_PER_QUERY", 170.0)  # trees over 100 entries left
    forest = _assert_matches(model, [], {})
    assert forest.left and len(forest.left) < len(model.variables)


@pytest.mark.parametrize("order", ["min_fill", "weighted_min_fill", "best"])
def test_orders(monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    """Every order gives the same posteriors; under "best" a large query tree (here: above 50
    entries) takes the cheapest heuristic's order, never a dearer one than min-fill's."""
    monkeypatch.setattr(qf_module, "CHOOSE_ENTRIES", 50)
    model = random_bn(3, n_min=14, n_max=14)
    hidden = list(model.variables)
    forest = QueryForest(model, [], hidden, order=order)
    got = forest.run({})
    assert got is not None
    ve = VariableElimination(model)
    for v, m in got.items():
        torch.testing.assert_close(m, ve.query([v]).probs(), atol=1e-12, rtol=0)
    if order == "best":
        plain = QueryForest(model, [], hidden, order="min_fill")
        assert forest.entries <= plain.entries


def test_zero_probability_rows() -> None:
    log_a = torch.zeros(2, 3, dtype=torch.float64)
    log_a[1, :] = -math.inf  # x = 1 impossible
    model = MarkovNetwork([Factor(["x", "y"], log_a),
                           Factor(["y"], torch.zeros(3, dtype=torch.float64))])
    forest = QueryForest(model, ["x"], ["y"])
    got = forest.run({"x": torch.tensor([0, 0])})
    assert got is not None
    torch.testing.assert_close(got["y"], torch.full((2, 3), 1 / 3, dtype=torch.float64))
    assert forest.run({"x": torch.tensor([0, 1])}) is None  # the caller's path tells why
    pm = PosteriorMarginals(model, ["x"], method="per_variable")
    assert pm._forest is not None
    with pytest.raises(ZeroProbabilityEvidence):
        pm({"x": [0, 1]})


def test_posterior_marginals_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model = bundled_network("alarm")
    ev = {"HR": "HIGH", "BP": "LOW"}
    pm = PosteriorMarginals(model, list(ev), method="per_variable")
    assert pm._forest is not None
    monkeypatch.setattr(qf_module, "LEFT_NS_PER_QUERY", 68.0)  # mixed: trees over 40 entries
    mixed = PosteriorMarginals(model, list(ev), method="per_variable")
    assert mixed._forest is not None and mixed._forest.left
    ref = PosteriorMarginals(model, list(ev), method="junction_tree")(ev)
    for got in (pm(ev), mixed(ev)):
        assert list(got) == list(ref)
        for v in ref:
            torch.testing.assert_close(got[v], ref[v], atol=1e-12, rtol=0)
    # soft evidence keeps the torch queries
    assert PosteriorMarginals(model, [], ["HR"], method="per_variable")._forest is None
