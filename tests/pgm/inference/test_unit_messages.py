"""Barren subtrees: the compiled junction tree skips upward messages that are exactly one.

The kernel with skipped (kind 1) and unnormalised (kind 2) messages is compared entry by entry
with the torch calibration, which computes every message; brute force checks the torch path in
test_exact_vs_brute_force.py (which also runs the kernel). Each test asserts that the skipping it
is about actually happens on its models, so it cannot pass by not exercising it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.inference import JunctionTree, _native_tree
from pgm.inference._unit_messages import normalised_head, plan_rooting
from pgm.markov import MarkovNetwork
from probforge.ops.chain import native
from tests.reference.random_models import random_bn

pytestmark = pytest.mark.skipif(not native.available(), reason="numba is not installed")


def _compare(monkeypatch: pytest.MonkeyPatch, model, ev_vars=(), evidence=None,  # type: ignore[no-untyped-def]
             soft_vars=(), soft=None, tol: float = 1e-12) -> np.ndarray:
    """Kernel vs torch path on the same model; returns the kernel's message kinds."""
    monkeypatch.delenv("PROBFORGE_NATIVE", raising=False)
    jt = JunctionTree(model, evidence_vars=list(ev_vars), soft_evidence_vars=list(soft_vars))
    fast = jt.calibrate(evidence, soft)
    assert fast._native
    with monkeypatch.context() as m:
        m.setenv("PROBFORGE_NATIVE", "0")
        ref = JunctionTree(model, evidence_vars=list(ev_vars),
                           soft_evidence_vars=list(soft_vars), method="flat").calibrate(
            evidence, soft)
        assert not ref._native
    torch.testing.assert_close(fast.log_evidence, ref.log_evidence, atol=tol, rtol=tol)
    got, want = fast.marginals(), ref.marginals()
    for v in want:
        torch.testing.assert_close(got[v], want[v], atol=tol, rtol=0)
    clique = max(jt.cliques, key=len)
    torch.testing.assert_close(fast.joint(list(clique[:2])), ref.joint(list(clique[:2])),
                               atol=tol, rtol=0)
    assert jt._native is not None
    return jt._native.kind


def _evidence_rows(model, seed: int, names: list[str], n: int):  # type: ignore[no-untyped-def]
    x = model.sample(n, generator=torch.Generator().manual_seed(seed))
    order = list(model.variables)
    return {v: x[:, order.index(v)] for v in names}


@pytest.mark.parametrize("fixed", [True, False])
def test_random_networks_without_evidence(monkeypatch: pytest.MonkeyPatch, fixed: bool) -> None:
    # fixed: barren cliques' tables computed once at build (else every call computes them)
    if not fixed:
        monkeypatch.setattr(_native_tree, "_FIXED_ENTRIES", 0)
    kinds, n_fixed = [], 0
    for s in range(30):
        kinds.append(_compare(monkeypatch, random_bn(s, n_min=6, n_max=14)))
        plan = JunctionTree(random_bn(s, n_min=6, n_max=14))._native_plan()
        n_fixed += int((plan.b_off >= 0).sum())
    assert sum(int((k == 1).sum()) for k in kinds) > 30  # messages skipped ...
    assert sum(int((k == 2).sum()) for k in kinds) >= 3  # ... and passed unnormalised
    assert (n_fixed > 30) if fixed else n_fixed == 0


@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_random_networks_with_evidence_rows(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    skipped = 0
    for s in range(20):
        model = random_bn(100 + s, n_min=6, n_max=14)
        names = list(model.variables)
        ev_vars = {"first": names[:2], "last": names[-2:],
                   "middle": names[len(names) // 2:len(names) // 2 + 2]}[where]
        ev = _evidence_rows(model, s, ev_vars, 4)
        skipped += int((_compare(monkeypatch, model, ev_vars, ev) == 1).sum())
    assert skipped > 10


def test_soft_evidence_blocks_its_subtree(monkeypatch: pytest.MonkeyPatch) -> None:
    skipped = 0
    for s in range(12):
        model = random_bn(200 + s, n_min=6, n_max=12)
        v = model.variables[-1]
        g = torch.Generator().manual_seed(s)
        soft = {v: torch.rand(3, model.cards[v], generator=g, dtype=torch.float64) + 0.05}
        skipped += int((_compare(monkeypatch, model, soft_vars=[v], soft=soft) == 1).sum())
    assert skipped > 5


def test_float32_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    skipped = 0
    for s in range(8):
        model = random_bn(300 + s, n_min=6, n_max=10, dtype=torch.float32)
        skipped += int((_compare(monkeypatch, model, tol=1e-5) == 1).sum())
    assert skipped > 5  # float32 CPDs count as normalised at float32 rounding


def _chain(off: float) -> BayesianNetwork:
    """a -> b -> c -> d; c's CPD rows sum to 1 + off."""
    s2 = ["s0", "s1"]
    pc = torch.tensor([[0.3, 0.7], [0.6, 0.4]], dtype=torch.float64)
    pc[:, 0] += off
    return BayesianNetwork([
        TabularCPD("a", torch.tensor([0.2, 0.8], dtype=torch.float64), states={"a": s2}),
        TabularCPD("b", torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64), ["a"],
                   {"b": s2, "a": s2}),
        TabularCPD("c", pc, ["b"], {"c": s2, "b": s2}),
        TabularCPD("d", torch.tensor([[0.1, 0.9], [0.7, 0.3]], dtype=torch.float64), ["c"],
                   {"d": s2, "c": s2}),
    ])


def test_tables_off_by_more_than_rounding_keep_their_messages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # normalised: every message is skipped; c's rows off by 1e-7 (within the CPD's tolerance):
    # no subtree holding c's table counts as barren, and the answer is the exact product's
    assert (_compare(monkeypatch, _chain(0.0))[1:] == 1).all()
    _compare(monkeypatch, _chain(1e-7))
    jt = JunctionTree(_chain(1e-7))
    jt.calibrate()
    plan = jt._native
    assert plan is not None
    home = int(plan.f_walk[2])  # c's table (factors in CPD order: a, b, c, d)
    home_clique = int(plan.w_clique[home])
    x = home_clique
    while x != plan.root:  # every clique on the way up from c's clique computes its message
        assert plan.kind[x] != 1
        x = int(plan.parent[x])
    assert (plan.kind == 1).any()  # d's clique still is barren


def test_markov_networks_skip_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    model = MarkovNetwork(random_bn(7, n_min=6, n_max=8).factors())  # same tables, no heads
    assert not (_compare(monkeypatch, model) != 0).any()


def test_normalised_head() -> None:
    p = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])  # rows over "x" given "y"
    eps = float(np.finfo(np.float64).eps)
    assert normalised_head(p, ("y", "x"), "x", eps) == "x"
    assert normalised_head(p, ("y", "x"), "y", eps) is None  # columns do not sum to one
    assert normalised_head(p, ("y", "x"), None, eps) is None
    assert normalised_head(p, ("y", "x"), "z", eps) is None
    off = p.copy()
    off[0, 0] += 1e-9
    assert normalised_head(off, ("y", "x"), "x", eps) is None
    assert normalised_head(off.astype(np.float32), ("y", "x"), "x",
                           float(np.finfo(np.float32).eps)) == "x"


def test_plan_rooting_prefers_the_root_that_skips_most() -> None:
    # a star: hub (h) with leaf cliques (h, x_i) holding p(x_i | h); p(h) at clique 0
    cliques = [("h",), ("h", "x1"), ("h", "x2"), ("h", "x3")]
    edges = [(0, 1), (0, 2), (0, 3)]
    scopes = [("h",), ("h", "x1"), ("h", "x2"), ("h", "x3")]
    plan = plan_rooting(cliques, edges, [3, 6, 6, 6], scopes, [0, 1, 2, 3],
                        [None, "x1", "x2", "x3"], set())
    assert plan.unit == [False, True, True, True] and plan.root == 0
    assert plan.message_kinds() == [0, 1, 1, 1]
    # soft evidence on x2 keeps clique 2's message
    plan = plan_rooting(cliques, edges, [3, 6, 6, 6], scopes, [0, 1, 2, 3],
                        [None, "x1", "x2", "x3"], {2})
    assert not plan.unit[2] and plan.unit[1] and plan.unit[3]
    # no heads: clique 0, the given assignment, nothing skipped
    plan = plan_rooting(cliques, edges, [3, 6, 6, 6], scopes, [0, 1, 2, 3], [None] * 4, set())
    assert plan.root == 0 and plan.assignment == [0, 1, 2, 3] and not any(plan.unit)
