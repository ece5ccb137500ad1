"""Mean-field coordinate ascent: exact where q can be exact, a monotone lower bound everywhere.

Oracles: VariableElimination (exact marginals and log Z) and a brute-force CAVI that forms the
whole joint table and takes the expectations of (11.94) over it directly.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.factor import Factor
from pgm.inference.elimination import VariableElimination
from pgm.inference.meanfield import MeanField, mean_field
from pgm.io import bundled_network
from pgm.markov import MarkovNetwork, ising_grid
from probforge.errors import ValidationError, ZeroProbabilityEvidence
from tests.reference.brute_force import joint_table
from tests.reference.random_models import random_bn, random_mrf


def max_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[v] - b[v].to(a[v].dtype)).abs().max()) for v in a)


def assert_monotone_lower_bound(history: torch.Tensor, log_z: torch.Tensor) -> None:
    """Finite part of the ELBO history non-decreasing (to rounding) and below log Z."""
    h = history.reshape(history.shape[0], -1)
    lz = log_z.reshape(-1)
    for col in range(h.shape[1]):
        vals = h[:, col]
        finite = vals[torch.isfinite(vals)]
        assert finite.numel() >= 1 and bool(torch.isfinite(vals[-1]))
        # once finite it stays finite
        first = int(torch.nonzero(torch.isfinite(vals))[0])
        assert bool(torch.isfinite(vals[first:]).all())
        scale = 1e-12 * max(1.0, float(finite.abs().max()))
        if finite.numel() > 1:
            assert float(finite.diff().min()) >= -scale
        assert float(finite.max()) <= float(lz[col]) + scale


def naive_cavi(model: MarkovNetwork, sweeps: int) -> tuple[list[torch.Tensor], list[float]]:
    """Brute-force CAVI on the full joint table (positive potentials only)."""
    names = list(model.variables)
    facs = model.factors()
    joint = joint_table([f.log_values for f in facs], [f.variables for f in facs], names)
    cards = [model.cards[v] for v in names]
    q = [torch.full((c,), 1.0 / c, dtype=torch.float64) for c in cards]

    def expect(skip: int | None) -> torch.Tensor:
        t = joint
        for m in reversed(range(len(names))):
            if m != skip:
                t = torch.tensordot(t, q[m], dims=([m], [0])) if t.dim() > m else t
        return t

    def elbo() -> float:
        ent = sum(float(-(p * p.log()).sum()) for p in q)
        return float(expect(None)) + ent

    history = [elbo()]
    for _ in range(sweeps):
        for j in range(len(names)):
            e = expect(j)  # E_{q_-j}[log p~] as a function of x_j  (11.94)
            q[j] = torch.softmax(e, 0)
        history.append(elbo())
    return q, history


def test_fully_factorised_model_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    facs = [Factor([f"a{i}"], torch.randn(3, generator=g, dtype=torch.float64)) for i in range(5)]
    facs.append(Factor(["a0"], torch.tensor([0.0, -math.inf, 1.0], dtype=torch.float64)))
    mn = MarkovNetwork(facs)
    ve = VariableElimination(mn)
    res = mean_field(mn)
    assert res.converged and res.n_iter <= 2
    assert max_error(res.marginals, ve.marginals()) < 1e-12
    assert float(res.marginals["a0"][1]) == 0.0
    assert abs(float(res.elbo - ve.log_evidence())) < 1e-12  # KL(q || p) = 0


@pytest.mark.parametrize("seed", range(3))
def test_updates_equal_brute_force_cavi(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    cards = [2, 3, 2, 3, 2]
    names = [f"v{i}" for i in range(5)]
    facs = [Factor([names[i]], torch.randn(c, generator=g, dtype=torch.float64))
            for i, c in enumerate(cards)]
    for _ in range(6):
        idx = torch.randperm(5, generator=g)[: int(torch.randint(2, 4, (1,), generator=g))]
        idx_l = idx.tolist()
        facs.append(Factor([names[i] for i in idx_l],
                           torch.randn(tuple(cards[i] for i in idx_l), generator=g,
                                       dtype=torch.float64)))
    mn = MarkovNetwork(facs)
    res = MeanField(mn, max_iter=3, tol=1e-300).run()
    q_ref, hist_ref = naive_cavi(mn, 3)
    assert res.n_iter == 3
    for v, q in zip(mn.variables, q_ref, strict=True):
        torch.testing.assert_close(res.marginals[v], q, atol=1e-12, rtol=0)
    torch.testing.assert_close(res.elbo_history, torch.tensor(hist_ref, dtype=torch.float64),
                               atol=1e-10, rtol=0)


def test_weakly_coupled_ising_is_close_and_a_monotone_lower_bound() -> None:
    g = torch.Generator().manual_seed(0)
    field = 0.3 * torch.randn(4, 4, generator=g, dtype=torch.float64)
    for coupling, tol in [(0.05, 5e-3), (0.1, 2e-2)]:
        mn = ising_grid(4, 4, coupling=coupling, field=field)
        ve = VariableElimination(mn)
        res = mean_field(mn)
        assert res.converged
        assert max_error(res.marginals, ve.marginals()) < tol
        assert_monotone_lower_bound(res.elbo_history, ve.log_evidence())


@pytest.mark.parametrize("seed", range(6))
def test_elbo_is_monotone_and_below_log_z_on_random_models_with_zeros(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for model in (random_mrf(seed, n_max=8), random_bn(seed, n_max=8)):
        res = mean_field(model, generator=gen)
        assert_monotone_lower_bound(res.elbo_history, VariableElimination(model).log_evidence())
        for v, q in res.marginals.items():
            torch.testing.assert_close(q.sum(-1), torch.ones((), dtype=q.dtype))
            assert q.shape == (model.cards[v],)


def test_bayesian_network_with_batched_evidence_equals_row_by_row() -> None:
    asia = bundled_network("asia")
    ev = {"dysp": ["yes", "no", "yes"], "smoke": ["yes", "yes", "no"]}
    res = mean_field(asia, ev)
    ve = VariableElimination(asia)
    assert res.elbo_history.shape[1:] == (3,)
    assert_monotone_lower_bound(res.elbo_history, ve.log_evidence(ev))
    for r in range(3):
        row = mean_field(asia, {k: v[r] for k, v in ev.items()})
        for v in row.marginals:
            torch.testing.assert_close(res.marginals[v][r], row.marginals[v], atol=1e-12,
                                       rtol=0)


def test_partial_and_soft_evidence() -> None:
    mn = ising_grid(3, 3, coupling=0.05, field=0.1)
    ev = {"x0_0": torch.tensor([0, -1, 1])}
    soft = {"x2_2": torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)}
    res = mean_field(mn, ev, soft)
    ve = VariableElimination(mn)
    assert "x0_0" not in res.marginals
    assert max_error(res.marginals, ve.marginals(ev, soft)) < 5e-3
    assert_monotone_lower_bound(res.elbo_history, ve.log_evidence(ev, soft))


def test_generator_initialisation_is_reproducible_and_leaves_global_rng_alone() -> None:
    mn = ising_grid(3, 3, coupling=0.5, field=0.0)  # symmetric: the start picks the mode
    state = torch.random.get_rng_state()
    a = mean_field(mn, generator=torch.Generator().manual_seed(1))
    b = mean_field(mn, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.elbo_history, b.elbo_history)
    uniform = mean_field(mn)
    assert float(uniform.marginals["x1_1"][0]) == pytest.approx(0.5, abs=1e-12)  # saddle
    assert float(a.elbo) > float(uniform.elbo)  # symmetry broken: a better bound


def test_float32_and_inputs_untouched() -> None:
    mn = ising_grid(3, 3, coupling=0.05, field=0.2, dtype=torch.float32)
    before = [f.log_values.clone() for f in mn.factors()]
    res = mean_field(mn, tol=1e-6)
    assert res.marginals["x0_0"].dtype == torch.float32 and res.converged
    assert all(torch.equal(x, f.log_values) for x, f in zip(before, mn.factors(), strict=True))


def test_errors() -> None:
    mn = ising_grid(2, 2)
    with pytest.raises(ValidationError):
        MeanField(mn, max_iter=0)
    with pytest.raises(ValidationError):
        MeanField(mn, tol=-1.0)
    bn = BayesianNetwork([TabularCPD("a", [1.0, 0.0]),
                          TabularCPD("b", [[0.5, 0.5], [0.5, 0.5]], parents=["a"])])
    with pytest.raises(ZeroProbabilityEvidence):
        mean_field(bn, {"a": 1})
