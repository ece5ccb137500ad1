"""Factors, CPDs, Bayesian and Markov networks: structure, validation, textbook examples."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD, sigmoid_cpd
from pgm.factor import Factor
from pgm.io import bundled_network
from pgm.markov import MarkovNetwork, ising_grid, potts_grid
from probforge.errors import (
    CycleError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)

D = torch.float64


def binary_cpd(v: str, parents: list[str], seed: int) -> TabularCPD:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand((2,) * len(parents), generator=g, dtype=D)
    return TabularCPD(v, torch.stack([p, 1 - p], -1), parents)


def fig_11_1() -> BayesianNetwork:
    """Textbook Fig. 11.1 / T2: X1 -> X2, X1 -> X3, X2 -> X4, X3 -> X4, all binary."""
    return BayesianNetwork([binary_cpd("X1", [], 1), binary_cpd("X2", ["X1"], 2),
                            binary_cpd("X3", ["X1"], 3), binary_cpd("X4", ["X2", "X3"], 4)])


def test_t1_t2_t5_parameter_counts() -> None:
    bn = fig_11_1()
    assert bn.num_free_parameters == 1 + 2 + 2 + 4  # T2: 9 vs 15 for the full table
    assert 2**4 - 1 == 15
    assert float(2**100 - 1) == pytest.approx(1.27e30, rel=1e-2)  # T1
    m = 6
    full = TabularCPD("y", torch.full((2,) * m + (2,), 0.5, dtype=D), [f"x{i}" for i in range(m)])
    assert full.num_free_parameters == 2**m  # T5: 2^M for a table, M + 1 for a sigmoid CPD
    sbn = sigmoid_cpd("y", [f"x{i}" for i in range(m)], torch.randn(m, dtype=D), 0.3)
    assert sbn.log_probs.shape == (2,) * m + (2,)


def test_t6_sigmoid_cpd_posterior_is_logistic() -> None:
    w, b = torch.tensor([0.5, -1.2, 2.0], dtype=D), -0.3
    cpd = sigmoid_cpd("y", ["a", "b", "c"], w, b)
    for x in itertools.product([0, 1], repeat=3):
        expected = torch.sigmoid(b + (w * torch.tensor(x, dtype=D)).sum())
        assert torch.allclose(cpd.probs[x][1], expected, atol=1e-15)


def test_joint_factorisation_and_sampling() -> None:
    bn = fig_11_1()
    x = torch.tensor(list(itertools.product([0, 1], repeat=4)))
    lp = bn.log_prob(x)
    assert torch.allclose(lp.exp().sum(), torch.tensor(1.0, dtype=D), atol=1e-14)
    c = {v: bn.cpd(v).probs for v in bn.variables}
    for row, val in zip(x.tolist(), lp.exp().tolist(), strict=True):
        a, b_, cc, d = row
        expected = c["X1"][a] * c["X2"][a, b_] * c["X3"][a, cc] * c["X4"][b_, cc, d]
        assert val == pytest.approx(float(expected), rel=1e-13)
    # ancestral sampling: chi-square against the exact joint (alpha = 1e-4)
    from tests.stats import chi_square_gof

    draws = bn.sample(40000, generator=torch.Generator().manual_seed(0))
    lin = ((draws[:, 0] * 2 + draws[:, 1]) * 2 + draws[:, 2]) * 2 + draws[:, 3]
    chi_square_gof(torch.bincount(lin, minlength=16), lp.exp(), alpha=1e-4)
    state = torch.get_rng_state()
    a = bn.sample(5, generator=torch.Generator().manual_seed(3))
    b = bn.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)


def test_t4_three_node_independences() -> None:
    chain = BayesianNetwork([binary_cpd("a", [], 1), binary_cpd("b", ["a"], 2),
                             binary_cpd("c", ["b"], 3)])
    fork = BayesianNetwork([binary_cpd("b", [], 1), binary_cpd("a", ["b"], 2),
                            binary_cpd("c", ["b"], 3)])
    collider = BayesianNetwork([binary_cpd("a", [], 1), binary_cpd("c", [], 2),
                                binary_cpd("b", ["a", "c"], 3)])
    for bn in (chain, fork):
        assert not bn.is_dseparated("a", "c") and bn.is_dseparated("a", "c", "b")
    assert collider.is_dseparated("a", "c") and not collider.is_dseparated("a", "c", "b")
    # numerically: explaining away in the collider
    from pgm.inference import VariableElimination

    ve = VariableElimination(collider)
    p_a_given_b = ve.query(["a"], {"b": 1}).probs()
    p_a_given_bc = ve.query(["a"], {"b": 1, "c": 1}).probs()
    assert not torch.allclose(p_a_given_b, p_a_given_bc)
    assert torch.allclose(ve.query(["a"], {"c": 1}).probs(), ve.query(["a"]).probs())


def test_t3_t8_cliques_and_markov_blankets() -> None:
    edges = [("X1", "X2"), ("X1", "X3"), ("X2", "X3"), ("X2", "X4"), ("X3", "X4")]
    mn = MarkovNetwork([Factor(list(e), torch.randn(2, 2, dtype=D)) for e in edges])
    cliques = {frozenset(c) for c in mn.cliques(min_size=2)}
    expected = [{"X1", "X2"}, {"X1", "X3"}, {"X2", "X3"}, {"X3", "X4"}, {"X2", "X4"},
                {"X1", "X2", "X3"}, {"X2", "X3", "X4"}]
    assert cliques == {frozenset(c) for c in expected}  # exactly the seven of Fig. 11.7
    assert {frozenset(c) for c in mn.maximal_cliques()} == {frozenset(expected[5]),
                                                          frozenset(expected[6])}
    assert mn.neighbours("X1") == {"X2", "X3"}
    # T3 (4-cycle): X1 _||_ X4 | X2, X3 numerically
    cyc = MarkovNetwork([Factor(list(e), torch.rand(2, 2, dtype=D).log() + 0.1)
                         for e in [("X1", "X2"), ("X2", "X4"), ("X4", "X3"), ("X3", "X1")]])
    from pgm.inference import VariableElimination

    ve = VariableElimination(cyc)
    for x2, x3 in itertools.product([0, 1], repeat=2):
        joint = ve.query(["X1", "X4"], {"X2": x2, "X3": x3}).probs()
        assert torch.allclose(joint, joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True),
                              atol=1e-14)


def test_t9_moralisation() -> None:
    bn = BayesianNetwork([binary_cpd("X1", [], 1), binary_cpd("X2", [], 2),
                          binary_cpd("X3", [], 3), binary_cpd("X4", ["X1", "X2", "X3"], 4)])
    moral = bn.moralize()
    assert all(moral[v] == {"X1", "X2", "X3", "X4"} - {v} for v in moral)  # K4
    mn = bn.to_markov_network()
    from pgm.inference import VariableElimination

    assert torch.allclose(VariableElimination(mn).log_evidence(), torch.tensor(0.0, dtype=D),
                          atol=1e-14)


def test_bn_validation_errors() -> None:
    a = binary_cpd("a", ["c"], 1)
    b = binary_cpd("b", ["a"], 2)
    c = binary_cpd("c", ["b"], 3)
    with pytest.raises(CycleError, match=r"a -> b, b -> c, c -> a|b -> c, c -> a, a -> b|"
                                         r"c -> a, a -> b, b -> c"):
        BayesianNetwork([a, b, c])
    with pytest.raises(UnknownVariableError, match=r"parent 'c'.*not a node"):
        BayesianNetwork([a, b])
    with pytest.raises(NormalisationError, match=r"sums to 1.3"):
        TabularCPD("x", [[0.5, 0.8], [0.5, 0.5]], ["p"])
    with pytest.raises(ShapeError, match="table needs 2 axes"):
        TabularCPD("x", [0.5, 0.5], ["p"])
    with pytest.raises(NonFiniteError, match="NaN"):
        TabularCPD("x", [float("nan"), 1.0])
    with pytest.raises(ValidationError, match=">= 0"):
        TabularCPD("x", [-0.5, 1.5])
    with pytest.raises(ShapeError, match="parent 'p'"):
        BayesianNetwork([TabularCPD("p", [0.2, 0.3, 0.5]), binary_cpd("x", ["p"], 1)])
    with pytest.raises(ValidationError, match="two CPDs"):
        BayesianNetwork([binary_cpd("x", [], 1), binary_cpd("x", [], 2)])


def test_factor_algebra_and_states() -> None:
    f = Factor.from_probs(["a", "b"], torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=D),
                          {"a": ["lo", "hi"], "b": ["x", "y"]})
    g = Factor.from_probs(["b", "c"], torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=D),
                          {"b": ["x", "y"]})
    h = f * g
    assert h.variables == ("a", "b", "c")
    assert torch.allclose(h.probs()[1, 0, 1], torch.tensor(0.3 * 0.5, dtype=D))
    assert h.log_values[0, 1, 1] == -math.inf
    assert torch.allclose(f.marginalize(["b"]).probs(), torch.tensor([0.3, 0.7], dtype=D))
    assert torch.allclose(f.maximize(["a"]).probs(), torch.tensor([0.3, 0.4], dtype=D))
    assert torch.allclose(f.reduce({"a": "hi"}).probs(), torch.tensor([0.3, 0.4], dtype=D))
    with pytest.raises(UnknownStateError, match=r"has no such state.*'mid'"):
        f.reduce({"a": "mid"})
    with pytest.raises(UnknownStateError, match="out of range"):
        f.reduce({"a": 2})
    with pytest.raises(ZeroProbabilityEvidence):
        Factor(["a"], torch.full((2,), -math.inf)).normalize()
    with pytest.raises(NonFiniteError):
        Factor(["a"], torch.tensor([0.0, float("nan")]))
    with pytest.raises(ShapeError, match="different states"):
        f * Factor(["a"], torch.zeros(2, dtype=D), {"a": ["hi", "lo"]})
    assert f.permute(["b", "a"]).allclose(f)


def test_ising_and_potts_partition_functions_match_enumeration() -> None:
    mn = ising_grid(2, 3, coupling=0.4, field=0.1)
    spins = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6)), dtype=D)
    grid = spins.reshape(-1, 2, 3)
    energy = 0.4 * ((grid[:, :, 1:] * grid[:, :, :-1]).sum((1, 2))
                    + (grid[:, 1:, :] * grid[:, :-1, :]).sum((1, 2))) + 0.1 * grid.sum((1, 2))
    assert torch.allclose(mn.log_partition(), torch.logsumexp(energy, 0), atol=1e-12)
    p = potts_grid(2, 2, q=3, coupling=0.7)
    x = torch.tensor(list(itertools.product(range(3), repeat=4)))
    g = x.reshape(-1, 2, 2)
    same = (g[:, :, 1:] == g[:, :, :-1]).sum((1, 2)) + (g[:, 1:, :] == g[:, :-1, :]).sum((1, 2))
    e = 0.7 * same
    assert torch.allclose(p.log_partition(), torch.logsumexp(e.double(), 0), atol=1e-12)
    assert torch.allclose(p.log_prob(x).exp().sum(), torch.tensor(1.0, dtype=D), atol=1e-12)
    with pytest.raises(ValidationError):
        potts_grid(2, 2, q=1)


def test_energy_form_and_temperature() -> None:
    e = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=D)
    hot = MarkovNetwork.from_energies([("a", "b")], [e], temperature=100.0)
    cold = MarkovNetwork.from_energies([("a", "b")], [e], temperature=0.01)
    x = torch.tensor([[0, 0], [0, 1]])
    assert abs(float(hot.log_prob(x).exp()[0]) - 0.25) < 0.01
    assert float(cold.log_prob(x).exp()[0]) == pytest.approx(0.5, abs=1e-10)


def test_bundled_networks_load() -> None:
    for name in ("asia", "alarm", "sprinkler"):
        bn = bundled_network(name)
        assert len(bn.variables) == {"asia": 8, "alarm": 37, "sprinkler": 4}[name]
