"""Dropping parents a CPD does not depend on: exactly those, and the same posteriors."""

from __future__ import annotations

import pytest
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.factor import Factor
from pgm.inference import VariableElimination
from pgm.inference._query_forest import QueryForest
from pgm.inference._vacuous_parents import drop_vacuous_parents
from probforge.ops.chain import native
from tests.reference.random_models import random_bn


def _with_vacuous_parents(seed: int) -> tuple[BayesianNetwork, dict[str, set[str]]]:
    """A random network where some CPDs are made constant along some of their parents."""
    model = random_bn(seed, n_min=6, n_max=14)
    g = torch.Generator().manual_seed(1000 + seed)
    cpds, planted = [], {}
    for c in model.cpds:
        probs = c.probs
        drop = {p for p in c.parents if bool(torch.rand((), generator=g) < 0.5)}
        for p in drop:
            axis = c.parents.index(p)
            probs = probs.narrow(axis, 0, 1).expand_as(probs)
        planted[c.variable] = drop
        cpds.append(TabularCPD(c.variable, probs.contiguous(), c.parents, c.states))
    return BayesianNetwork(cpds), planted


@pytest.mark.parametrize("seed", range(6))
def test_drops_exactly_the_constant_parents(seed: int) -> None:
    model, planted = _with_vacuous_parents(seed)
    factors, parents = drop_vacuous_parents(model.factors(), model.parents)
    for f, c in zip(factors, model.cpds, strict=True):
        dropped = set(c.parents) - set(parents[c.variable])
        assert planted[c.variable] <= dropped
        for i, p in enumerate(c.parents):  # (deterministic rows can be alike by chance)
            t = c.probs
            alike = all(torch.equal(t.select(i, 0), t.select(i, k)) for k in range(1, t.shape[i]))
            assert alike == (p in dropped), (c.variable, p)
        assert f.variables == (*parents[c.variable], c.variable)
        index = tuple(0 if p in dropped else slice(None) for p in c.parents)
        full = c.to_factor().log_values[index]
        torch.testing.assert_close(f.log_values, full, atol=0, rtol=0)


def test_keeps_a_parent_the_table_nearly_ignores() -> None:
    near = torch.tensor([[0.25, 0.75], [0.25 - 1e-12, 0.75 + 1e-12]], dtype=torch.float64)
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    model = BayesianNetwork([TabularCPD("a", half), TabularCPD("x", near, ["a"])])
    _, parents = drop_vacuous_parents(model.factors(), model.parents)
    assert parents["x"] == ("a",)


def test_batched_tables_drop_only_what_every_batch_member_ignores() -> None:
    base = torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(0)).log()
    same = base[:, :1].expand(3, 2, 2)  # (batch, a, x): constant along a in every member
    f = Factor(["a", "x"], same.contiguous())
    out, parents = drop_vacuous_parents([f], {"x": ("a",)})
    assert parents["x"] == () and out[0].log_values.shape == (3, 2)
    g = Factor(["a", "x"], torch.cat([same[:2], base[2:]]).contiguous())
    out, parents = drop_vacuous_parents([g], {"x": ("a",)})
    assert parents["x"] == ("a",) and out[0] is g


@pytest.mark.skipif(not native.available(), reason="numba is not installed")
@pytest.mark.parametrize("seed", range(12))
def test_forest_on_pruned_parents_matches_elimination(seed: int) -> None:
    model, _ = _with_vacuous_parents(seed)
    names = list(model.variables)
    ev_vars = [names[0], names[-1]] if seed % 2 else []  # evidence on dropped parents too
    x = model.sample(4, generator=torch.Generator().manual_seed(seed))
    rows = {v: x[:, names.index(v)] for v in ev_vars}
    hidden = [v for v in names if v not in ev_vars]
    got = QueryForest(model, ev_vars, hidden).run(rows)
    assert got is not None
    ve = VariableElimination(model)
    for v, m in got.items():
        torch.testing.assert_close(m, ve.query([v], rows).probs(), atol=1e-12, rtol=0)
