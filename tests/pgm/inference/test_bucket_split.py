"""Buckets split into two products and a matrix product: the roles of the variables, and the
same posteriors as variable elimination with every split the chooser would consider taken."""

from __future__ import annotations

import pytest
import torch

import pgm.inference._bucket_split as split_module
from pgm.inference import VariableElimination
from pgm.inference._bucket_split import best_split
from pgm.inference._query_forest import QueryForest
from probforge.ops.chain import native
from tests.reference.random_models import random_bn


def test_roles_partition_the_clique() -> None:
    cards = {"a": 3, "b": 4, "c": 5, "d": 6, "x": 7, "y": 8, "z": 9}
    scopes = [("a", "x", "y", "z"), ("b", "x", "y"), ("c", "d", "y", "z")]
    summed = ("x", "y", "z")
    s = best_split(scopes, summed, cards)
    assert s is not None
    left = {v for i in s.left for v in scopes[i]}
    right = {v for i in s.right for v in scopes[i]}
    assert sorted(s.left + s.right) == [0, 1, 2]
    roles = [s.batch, s.free_left, s.free_right, s.contracted, s.sum_left, s.sum_right]
    assert sorted(v for r in roles for v in r) == sorted(cards)
    assert set(s.contracted) | set(s.sum_left) | set(s.sum_right) == set(summed)
    assert set(s.batch) | set(s.contracted) == left & right
    assert set(s.free_left) | set(s.sum_left) == left - right
    assert set(s.free_right) | set(s.sum_right) == right - left


def test_small_or_single_input_buckets_are_walked() -> None:
    cards = dict.fromkeys("abxy", 4)
    assert best_split([("a", "b", "x", "y")], ("x",), cards) is None
    assert best_split([("a", "x"), ("b", "x")], ("x",), cards) is None  # 64 entries
    big = dict.fromkeys("abxy", 20)  # 1.6e5 entries, but every input holds all of them
    assert best_split([("a", "b", "x", "y"), ("a", "b", "x", "y")], ("x",), big) is None


@pytest.mark.skipif(not native.available(), reason="numba is not installed")
@pytest.mark.parametrize("seed", range(16))
def test_forced_splits_match_elimination(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # every bucket of two or more inputs split, whatever the estimate: sides that sum out
    # nothing, empty batch or free sets (5-49 splits per model here)
    monkeypatch.setattr(split_module, "SPLIT_MIN_ENTRIES", 0)
    monkeypatch.setattr(split_module, "SPLIT_GAIN", float("inf"))
    model = random_bn(seed, n_min=5, n_max=12, p_zero=0.0)
    names = list(model.variables)
    ev_vars = names[-2:] if seed % 2 else []
    x = model.sample(3, generator=torch.Generator().manual_seed(seed))
    rows = {v: x[:, names.index(v)] for v in ev_vars}
    hidden = [v for v in names if v not in ev_vars]
    forest = QueryForest(model, ev_vars, hidden)
    got = forest.run(rows)
    assert got is not None
    assert any(d is not None for t in forest._trees for d in t.split)
    ve = VariableElimination(model)
    for v, m in got.items():
        torch.testing.assert_close(m, ve.query([v], rows).probs(), atol=1e-12, rtol=0)


@pytest.mark.skipif(not native.available(), reason="numba is not installed")
@pytest.mark.parametrize("seed", range(12))
def test_forced_sparse_splits_match_elimination(seed: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # models with zeros: every bucket of 2-4 inputs split into sparse products, whatever the
    # estimate, on one evidence row (their rows in two halves where two threads run) and on
    # several
    import pgm.inference._bucket_plan as plan_module
    import pgm.inference._bucket_program as program_module

    monkeypatch.setattr(split_module, "SPLIT_MIN_ENTRIES", 0)
    monkeypatch.setattr(split_module, "SPARSE_SPLIT_GAIN", float("inf"))
    monkeypatch.setattr(program_module, "SPLIT_ENTRIES", 4)
    monkeypatch.setattr(plan_module, "THREAD_SPEED", 1e-9)  # one group: the halves path
    model = random_bn(300 + seed, n_min=6, n_max=14, p_zero=0.5)
    names = list(model.variables)
    ev_vars = [names[0]] if seed % 2 else []
    x = model.sample(3, generator=torch.Generator().manual_seed(seed))
    hidden = [v for v in names if v not in ev_vars]
    forest = QueryForest(model, ev_vars, hidden)
    sparse = [d for t in forest._trees for d in t.split if d is not None and d.sparse]
    assert sparse
    program = forest._program
    # (halves need two output rows: 8 of these 12 models have some)
    for b in map(int, ((program.prod_spec[:, 4] == 1) & (program.sp_mid > 0)).nonzero()[0]):
        at = program.prod_spec[b, 5] + program.sp_mid[b]
        assert program.prod_out[at] != program.prod_out[at - 1]  # the halves write apart
    ve = VariableElimination(model)
    for rows in ({v: x[:1, names.index(v)] for v in ev_vars},
                 {v: x[:, names.index(v)] for v in ev_vars}):
        got = forest.run(rows)
        assert got is not None
        for v, m in got.items():
            torch.testing.assert_close(m, ve.query([v], rows).probs(), atol=1e-12, rtol=0)
