"""Probability-space queries against VariableElimination's log-space query (brute force checks
that one in test_exact_vs_brute_force.py)."""

from __future__ import annotations

import math

import pytest
import torch

from pgm.factor import Factor
from pgm.inference import PosteriorMarginals, VariableElimination
from pgm.inference._prob_queries import prob_query
from pgm.markov import MarkovNetwork
from probforge.errors import ZeroProbabilityEvidence
from tests.reference.random_models import random_bn, random_mrf


@pytest.mark.parametrize("seed", range(15))
def test_random_bayesian_networks_with_evidence_rows(seed: int) -> None:
    model = random_bn(seed, n_min=4, n_max=12)
    names = list(model.variables)
    x = model.sample(6, generator=torch.Generator().manual_seed(seed))
    ve = VariableElimination(model)
    for evidence in ({}, {names[-1]: x[:, -1]}, {names[0]: int(x[0, 0])}):
        for v in names:
            if v in evidence:
                continue
            got = prob_query(ve, v, evidence)
            assert got is not None
            torch.testing.assert_close(got, ve.query([v], evidence).probs(), atol=1e-12,
                                       rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_random_markov_networks(seed: int) -> None:
    model = random_mrf(seed, n_min=3, n_max=8)
    ve = VariableElimination(model)
    checked = 0
    for v in model.variables:
        got = prob_query(ve, v)
        if got is None:  # hard constraints leave no state (the log path raises)
            with pytest.raises(ZeroProbabilityEvidence):
                ve.query([v])
            continue
        torch.testing.assert_close(got, ve.query([v]).probs(), atol=1e-12, rtol=0)
        checked += 1
    assert checked > 0


def test_underflow_and_zero_probability_give_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # two tables over h that disagree: each has largest entry 1, their product 1e-300 at most
    tiny = math.log(1e-300)
    a = Factor(["h", "g"], torch.tensor([[0.0, 0.0], [tiny, tiny]], dtype=torch.float64))
    b = Factor(["h"], torch.tensor([tiny, 0.0], dtype=torch.float64))
    model = MarkovNetwork([a, b])
    ve = VariableElimination(model)
    assert prob_query(ve, "h") is None
    # the caller (torch queries: no compiled kernel) falls back to the log-space query
    monkeypatch.setenv("PROBFORGE_NATIVE", "0")
    pm = PosteriorMarginals(model, method="per_variable")
    assert pm._forest is None
    got = pm()["h"]
    torch.testing.assert_close(got, torch.tensor([0.5, 0.5], dtype=torch.float64))
    # probability-zero evidence: None too
    t = torch.tensor([[0.0, -math.inf], [0.0, -math.inf]], dtype=torch.float64)
    zero = MarkovNetwork([Factor(["h"], torch.zeros(2, dtype=torch.float64)),
                          Factor(["h", "o"], t)])
    assert prob_query(VariableElimination(zero), "h", {"o": 1}) is None
