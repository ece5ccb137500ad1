"""pgmpy as an oracle on its bundled bnlearn networks: same marginals, log p(e) and MAP value.

Both libraries get identical tables (pgmpy's own model, CPD columns renormalised as in
``tests/reference/pgmpy_oracle.load_example``; converted with ``pgm.io.from_pgmpy``), and agree
to 1e-9 in float64 with and without 5 evidence variables drawn from the network itself.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("pgmpy")

from pgm.inference import JunctionTree, VariableElimination
from pgm.io import from_pgmpy
from tests.reference import pgmpy_oracle as oracle

NETWORKS = ["asia", "child", "insurance", "alarm"]


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    oracle.quiet_pgmpy()


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("n_evidence", [0, 5])
def test_marginals_log_evidence_and_map_match_pgmpy(name: str, n_evidence: int) -> None:
    ref_model = oracle.load_example(name)
    bn = from_pgmpy(ref_model)
    evidence = oracle.random_evidence(ref_model, n_evidence, seed=0) if n_evidence else {}
    expected = oracle.pgmpy_bp_marginals(ref_model, evidence)
    ve = VariableElimination(bn)
    ours_ve = ve.marginals(evidence)
    ours_jt = JunctionTree(bn, evidence_vars=list(evidence)).calibrate(evidence).marginals()
    worst = 0.0
    for var, dist in expected.items():
        if var in evidence:
            continue
        ref = torch.tensor([dist[s] for s in bn.states[var]], dtype=torch.float64)
        worst = max(worst, float((ours_ve[var] - ref).abs().max()),
                    float((ours_jt[var] - ref).abs().max()))
    assert worst < 1e-9, worst
    if name in ("asia", "child"):  # pgmpy's per-variable VE agrees too (slow on the others)
        ve_ref = oracle.pgmpy_marginals(ref_model, evidence)
        for var, dist in ve_ref.items():
            if var not in evidence:
                ref = torch.tensor([dist[s] for s in bn.states[var]], dtype=torch.float64)
                assert torch.allclose(ours_ve[var], ref, atol=1e-9, rtol=0)
    if evidence:
        assert float(ve.log_evidence(evidence)) == pytest.approx(
            oracle.pgmpy_log_evidence(ref_model, evidence), abs=1e-9)
    # MAP: compare values (ties make assignments ambiguous)
    ours = ve.map_query(evidence=evidence)
    theirs = oracle.pgmpy_map(ref_model, evidence)
    full_theirs = {**theirs, **evidence}
    full_ours = {**ours.assignment(), **evidence}
    ref_value = oracle.pgmpy_log_joint(ref_model, full_theirs)
    assert float(ours.log_joint) >= ref_value - 1e-9
    assert float(ours.log_joint) == pytest.approx(ref_value, abs=1e-9)
    assert oracle.pgmpy_log_joint(ref_model, full_ours) == pytest.approx(ref_value, abs=1e-9)
    assert math.isfinite(ref_value)
