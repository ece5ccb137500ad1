"""The compiled junction-tree kernel against the torch calibration paths (flat and dense).

The torch paths are themselves checked against brute-force enumeration in
test_exact_vs_brute_force.py (which now runs the compiled kernel by default); here both paths run
on the same trees and evidence, so every kernel feature is compared entry by entry: batched and
repeated evidence rows, soft evidence of both shapes, joints, float32, hard-evidence slicing of
factors whose scope order differs from the clique's, overflow-prone potentials, the underflow
fall-back and zero-probability evidence.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgm.factor import Factor
from pgm.inference import JunctionTree
from pgm.inference.junction_tree import CalibratedTree
from pgm.markov import MarkovNetwork
from probforge.errors import ZeroProbabilityEvidence
from probforge.ops.chain import native
from tests.reference.random_models import random_bn, random_mrf

pytestmark = pytest.mark.skipif(not native.available(), reason="numba is not installed")


def _torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBFORGE_NATIVE", "0")


def _both(monkeypatch: pytest.MonkeyPatch, build, evidence=None, soft=None,  # type: ignore[no-untyped-def]
          method: str = "flat") -> tuple[CalibratedTree, CalibratedTree]:
    """(native, torch) calibrations of two trees built alike."""
    monkeypatch.delenv("PROBFORGE_NATIVE", raising=False)
    fast = build("auto").calibrate(evidence, soft)
    assert fast._native
    with monkeypatch.context() as m:
        _torch_path(m)
        ref = build(method).calibrate(evidence, soft)
        assert not ref._native
    return fast, ref


def _assert_same(fast: CalibratedTree, ref: CalibratedTree, tol: float) -> None:
    torch.testing.assert_close(fast.log_evidence, ref.log_evidence, atol=tol, rtol=tol)
    got, want = fast.marginals(), ref.marginals()
    assert list(got) == list(want)
    for v in want:
        torch.testing.assert_close(got[v], want[v], atol=tol, rtol=0)


def _rows(model, seed: int, n: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Evidence on the last two variables from ancestral samples (p(e) > 0), with repeats."""
    x = model.sample(n, generator=torch.Generator().manual_seed(seed))
    names = list(model.variables)
    return {v: x[:, names.index(v)] for v in names[-2:]}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("method", ["flat", "dense"])
def test_bayesian_networks_batched_evidence(monkeypatch: pytest.MonkeyPatch, seed: int,
                                            method: str) -> None:
    model = random_bn(seed, n_min=4, n_max=12)
    ev = _rows(model, seed, 7)

    def build(m: str) -> JunctionTree:
        return JunctionTree(model, evidence_vars=list(ev), method=m)

    fast, ref = _both(monkeypatch, build, ev, method=method)
    _assert_same(fast, ref, 1e-12)
    # the per-variable path (used with repeated rows) agrees with the one-split path
    for v, m in fast.marginals().items():
        torch.testing.assert_close(fast.marginal(v), m, atol=0, rtol=0)
    # a joint inside one clique
    clique = max(build("auto").cliques, key=len)
    torch.testing.assert_close(fast.joint(list(clique[:2])), ref.joint(list(clique[:2])),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", range(12))
def test_markov_networks_single_row(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    model = random_mrf(seed, n_min=3)
    v = model.variables[0]

    def build(m: str) -> JunctionTree:
        return JunctionTree(model, evidence_vars=[v], method=m)

    for state in range(model.cards[v]):
        try:
            fast, ref = _both(monkeypatch, build, {v: state})
        except ZeroProbabilityEvidence:  # hard constraints may forbid a state: both agree
            with monkeypatch.context() as m:
                _torch_path(m)
                with pytest.raises(ZeroProbabilityEvidence):
                    build("flat").calibrate({v: state})
            continue
        _assert_same(fast, ref, 1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_soft_evidence_both_shapes(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    model = random_bn(seed, n_min=4, n_max=10)
    a, b = model.variables[0], model.variables[-1]
    g = torch.Generator().manual_seed(seed)
    soft = {a: torch.rand(model.cards[a], generator=g, dtype=torch.float64) + 0.1,
            b: torch.rand(5, model.cards[b], generator=g, dtype=torch.float64) + 0.1}

    def build(m: str) -> JunctionTree:
        return JunctionTree(model, soft_evidence_vars=[a, b], method=m)

    fast, ref = _both(monkeypatch, build, None, soft)
    assert fast.log_evidence.shape == (5,)
    _assert_same(fast, ref, 1e-12)


def test_float32_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_bn(3, n_min=8, n_max=12)
    ev = _rows(model, 3, 4)

    def build(m: str) -> JunctionTree:
        return JunctionTree(model.to(torch.float32), evidence_vars=list(ev), method=m)

    fast, ref = _both(monkeypatch, build, ev)
    assert fast.log_evidence.dtype == torch.float32
    assert all(m.dtype == torch.float32 for m in fast.marginals().values())
    _assert_same(fast, ref, 1e-5)


def _pair_model(log_a: torch.Tensor, log_b: torch.Tensor) -> MarkovNetwork:
    # two factors on one pair, in opposite variable orders (the kernel walks both layouts)
    return MarkovNetwork([Factor(["x", "y", "z"], log_a), Factor(["z", "y"], log_b)])


def test_overflowing_potentials(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    big = 900.0 + torch.randn(2, 3, 4, generator=g, dtype=torch.float64)  # exp overflows
    model = _pair_model(big, 800.0 + torch.randn(4, 3, generator=g, dtype=torch.float64))

    def build(m: str) -> JunctionTree:
        return JunctionTree(model, method=m)

    fast, ref = _both(monkeypatch, build)
    assert math.isfinite(float(fast.log_evidence)) and float(fast.log_evidence) > 1700
    _assert_same(fast, ref, 1e-12)


def test_underflow_falls_back_to_log_space(monkeypatch: pytest.MonkeyPatch) -> None:
    # each factor is 1 at one entry and e^-800 elsewhere, at disagreeing entries: every product
    # of the two underflows to 0 in probability space, the log-space path gets it right
    a = torch.full((2, 3, 4), -800.0, dtype=torch.float64)
    a[0, 0, 0] = 0.0
    b = torch.full((4, 3), -800.0, dtype=torch.float64)
    b[3, 2] = 0.0
    model = _pair_model(a, b)
    monkeypatch.delenv("PROBFORGE_NATIVE", raising=False)
    jt = JunctionTree(model)
    cal = jt.calibrate()
    assert jt.native and not cal._native  # the kernel gave up, the torch path answered
    # brute force: 2*3*4 entries, log-sum-exp of the summed log-tables
    joint = a + b.T[None]
    torch.testing.assert_close(cal.log_evidence, torch.logsumexp(joint.reshape(-1), 0),
                               atol=1e-9, rtol=0)


def test_zero_probability_evidence_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    log_a = torch.zeros(2, 3, 4, dtype=torch.float64)
    log_a[:, :, 1] = -math.inf  # z = 1 impossible
    model = _pair_model(log_a, torch.zeros(4, 3, dtype=torch.float64))
    monkeypatch.delenv("PROBFORGE_NATIVE", raising=False)
    jt = JunctionTree(model, evidence_vars=["z"])
    assert float(jt.calibrate({"z": 0}).marginal("x").sum()) == pytest.approx(1.0)
    with pytest.raises(ZeroProbabilityEvidence, match=r"rows \[1\]"):
        jt.calibrate({"z": [0, 1, 2]})


def test_switch_and_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_bn(1, n_min=4, n_max=6)
    monkeypatch.setenv("PROBFORGE_NATIVE", "0")
    assert not JunctionTree(model).native
    monkeypatch.delenv("PROBFORGE_NATIVE")
    assert JunctionTree(model).native
    # tables that need a gradient take the differentiable torch path
    factors = [Factor(f.variables, f.log_values.clone().requires_grad_(), f.states)
               for f in model.factors()]
    mrf = MarkovNetwork(factors)
    cal = JunctionTree(mrf).calibrate()
    assert not cal._native
    cal.log_evidence.backward()
    assert factors[0].log_values.grad is not None
