"""PosteriorMarginals: the junction tree or per-variable pruned elimination, same numbers."""

from __future__ import annotations

import pytest
import torch

import pgm.inference._query_forest as qf_module
import pgm.inference.all_marginals as am
from pgm.inference import PosteriorMarginals, VariableElimination
from pgm.io import bundled_network
from probforge.errors import ValidationError
from probforge.ops.chain import native
from tests.reference.random_models import random_bn, random_mrf


@pytest.mark.parametrize("seed", range(8))
def test_both_methods_equal_variable_elimination(seed: int) -> None:
    model = random_bn(seed, n_min=5, n_max=10)  # exactly normalised CPTs
    ev_var = model.variables[-1]
    sample = model.sample(4, generator=torch.Generator().manual_seed(seed))
    evidence = {ev_var: sample[:, -1]}
    reference = VariableElimination(model).marginals(evidence)
    for method in ("junction_tree", "per_variable"):
        got = PosteriorMarginals(model, [ev_var], method=method)(evidence)
        assert got.keys() == reference.keys()
        for v, m in got.items():
            assert torch.allclose(m, reference[v], atol=1e-10, rtol=0), (method, v)


def test_auto_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    asia = bundled_network("asia")
    assert PosteriorMarginals(asia).method == "junction_tree"  # small cliques
    monkeypatch.setattr(am, "DENSE_CLIQUE_ENTRIES", 0)  # as if every clique were large
    monkeypatch.setattr(am, "NATIVE_TREE_ENTRIES", 0)
    assert PosteriorMarginals(asia).method == "per_variable"
    # a Markov network has no barren nodes to prune: always the tree
    assert PosteriorMarginals(random_mrf(0)).method == "junction_tree"


@pytest.mark.skipif(not native.available(), reason="numba is not installed")
def test_auto_weighs_the_compiled_queries_against_the_tree(
        monkeypatch: pytest.MonkeyPatch) -> None:
    alarm = bundled_network("alarm")
    monkeypatch.setattr(am, "FOREST_TRIAL_ENTRIES", 0)  # weigh them on every tree
    monkeypatch.setattr(am, "TREE_NS_PER_ENTRY", 1e9)  # as if the tree were slow
    pm = PosteriorMarginals(alarm, ["HR"])
    assert pm.method == "per_variable" and pm._forest is not None and not pm._forest.left
    monkeypatch.setattr(qf_module, "LEFT_NS_PER_QUERY", 1400.0)  # torch cheaper for trees
    monkeypatch.setattr(qf_module, "LEFT_NS_PER_ENTRY", 0.0)  # over 700 entries: some left
    mixed = PosteriorMarginals(alarm, ["HR"])
    assert mixed.method == "per_variable" and mixed._forest is not None and mixed._forest.left
    assert len(mixed._forest.left) < len(alarm.variables) - 1
    monkeypatch.setattr(am, "TREE_NS_PER_ENTRY", 1e-3)  # as if the tree were fast
    assert PosteriorMarginals(alarm, ["HR"]).method == "junction_tree"
    ref = PosteriorMarginals(alarm, ["HR"], method="junction_tree")({"HR": "LOW"})
    got = mixed({"HR": "LOW"})
    for v in ref:
        torch.testing.assert_close(got[v], ref[v], atol=1e-12, rtol=0)


def test_errors() -> None:
    asia = bundled_network("asia")
    with pytest.raises(ValidationError, match="method"):
        PosteriorMarginals(asia, method="bp")
    pm = PosteriorMarginals(asia, ["smoke"], method="per_variable")
    with pytest.raises(ValidationError, match="evidence"):
        pm({"dysp": "yes"})
    # no evidence declared: None and {} are fine, anything but a mapping is still refused
    bare = PosteriorMarginals(asia, method="per_variable")
    torch.testing.assert_close(bare(None)["lung"], bare({})["lung"])
    for bad in ([1, 2], "smoke", 3):
        with pytest.raises(ValidationError, match="mapping"):
            bare(bad)
