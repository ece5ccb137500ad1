"""Exact inference against brute-force enumeration on hundreds of random small models.

Per run: 200 random Bayesian networks (2-16 variables, deterministic zeros in the CPTs, 0-3
evidence variables, one or several evidence rows) and 100 random Markov networks with -inf
entries. Marginals, log p(e), pairwise joints and MAP agree to 1e-10 in float64 and 1e-5 in
float32, through both VariableElimination and JunctionTree.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgm.inference import JunctionTree, VariableElimination
from tests.reference.brute_force import joint_table
from tests.reference.random_models import random_bn, random_mrf

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def brute(model, evidence_rows: list[dict[str, int]]):  # type: ignore[no-untyped-def]
    """Posterior joint tables (one per evidence row) and log p(e) by enumeration."""
    names = list(model.variables)
    facs = model.factors()
    full = joint_table([f.log_values.double() for f in facs], [f.variables for f in facs], names)
    out = []
    for ev in evidence_rows:
        t = full.clone()
        for v, s in ev.items():
            d = names.index(v)
            mask = torch.full((t.shape[d],), -math.inf, dtype=t.dtype)
            mask[s] = 0.0
            shape = [1] * t.dim()
            shape[d] = -1
            t = t + mask.reshape(shape)
        log_e = torch.logsumexp(t.reshape(-1), 0)
        out.append((t, log_e))
    return out


def draw_evidence(model, seed: int, n_rows: int):  # type: ignore[no-untyped-def]
    """0-3 evidence variables; rows drawn by sampling the model so most have p(e) > 0."""
    g = torch.Generator().manual_seed(seed + 10_000)
    names = list(model.variables)
    k = int(torch.randint(0, min(3, len(names) - 1) + 1, (1,), generator=g))
    ev_vars = [names[i] for i in torch.randperm(len(names), generator=g)[:k].tolist()]
    if hasattr(model, "sample"):
        x = model.sample(n_rows, generator=g)
        rows = [{v: int(x[r, names.index(v)]) for v in ev_vars} for r in range(n_rows)]
    else:
        rows = [{v: int(torch.randint(model.cards[v], (1,), generator=g)) for v in ev_vars}
                for _ in range(n_rows)]
    return ev_vars, rows


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    return bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))


def check_model(model, seed: int, dtype: torch.dtype) -> int:  # type: ignore[no-untyped-def]
    tol = TOL[dtype]
    n_rows = 1 if seed % 2 == 0 else 3
    ev_vars, rows = draw_evidence(model, seed, n_rows)
    reference = brute(model, rows)
    if any(math.isinf(float(le)) for _, le in reference):
        rows = [r for r, (_, le) in zip(rows, reference, strict=True) if math.isfinite(float(le))]
        reference = [x for x in reference if math.isfinite(float(x[1]))]
        if not rows:
            return 0
    names = list(model.variables)
    ve = VariableElimination(model.to(dtype))
    batched = len(rows) > 1 and bool(ev_vars)
    if not batched:
        rows, reference = rows[:1], reference[:1]
    evidence = ({v: [r[v] for r in rows] for v in ev_vars} if batched
                else {v: rows[0][v] for v in ev_vars})
    log_e = ve.log_evidence(evidence)
    margs = ve.marginals(evidence)
    jt = JunctionTree(model.to(dtype), evidence_vars=ev_vars)
    cal = jt.calibrate(evidence)
    # the same tree calibrated by dense per-clique contractions (auto picks it for big cliques)
    cal_dense = JunctionTree(model.to(dtype), evidence_vars=ev_vars, method="dense").calibrate(
        evidence)
    hidden = [v for v in names if v not in ev_vars]
    mpe = ve.map_query(evidence=evidence)
    for r, (table, le) in enumerate(reference):

        def pick(t: torch.Tensor, r: int = r) -> torch.Tensor:
            return t[r] if batched else t

        assert close(pick(log_e), le, tol), (pick(log_e), le)
        assert close(pick(cal.log_evidence), le, tol)
        assert close(pick(cal_dense.log_evidence), le, tol)
        post = table - le
        for v in hidden:
            d = names.index(v)
            others = [i for i in range(len(names)) if i != d]
            expected = (torch.logsumexp(post, others) if others else post).exp()
            assert close(pick(margs[v]), expected, tol), (v, pick(margs[v]), expected)
            assert close(pick(cal.marginal(v)), expected, tol)
            assert close(pick(cal_dense.marginal(v)), expected, tol)
        if len(hidden) >= 2:
            a, b = hidden[0], hidden[-1]
            q = ve.query([a, b], evidence).probs()
            da, db = names.index(a), names.index(b)
            rest = [i for i in range(len(names)) if i not in (da, db)]
            exp_ab = torch.logsumexp(post, rest) if rest else post
            assert close(pick(q), exp_ab.exp(), tol)
        # MAP: the value equals the brute-force max, and the assignment attains it
        best = table.max()
        assert close(pick(mpe.log_joint), best, tol)
        assert close(pick(mpe.log_evidence), le, tol)
        idx = [pick(mpe.indices[v]) if v in hidden else torch.tensor(rows[r][v]) for v in names]
        assert close(table[tuple(int(i) for i in idx)], best, tol)
    return 1


@pytest.mark.parametrize("block", range(4))
def test_random_bayesian_networks_float64(block: int) -> None:
    checked = sum(check_model(random_bn(s), s, torch.float64) for s in range(block * 50,
                                                                          block * 50 + 50))
    assert checked >= 45  # rows with p(e) = 0 are skipped; nearly all models are checked


def test_random_bayesian_networks_float32() -> None:
    checked = sum(check_model(random_bn(s, n_max=10), s, torch.float32) for s in range(1000, 1040))
    assert checked >= 35


@pytest.mark.parametrize("block", range(2))
def test_random_markov_networks(block: int) -> None:
    checked = sum(check_model(random_mrf(s), s, torch.float64)
                  for s in range(2000 + block * 50, 2000 + block * 50 + 50))
    assert checked >= 40
