"""Hopfield networks (NNDL 8.6.1) and modern Hopfield retrieval (Ramsauer et al. 2020).

Oracles: the printed formulas (8.32), (8.36), (8.37) evaluated entry by entry in float64; the
Lyapunov property of asynchronous updates; retrieval below capacity and its collapse above
0.14 M; Ramsauer et al.'s update and energy written out per query, and their theorem that the
energy never increases.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from generative.energy.hopfield import HopfieldNetwork, capacity_experiment, corrupt
from generative.energy.modern_hopfield import ModernHopfield
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops import make_generator
from tests.robustness import outcome
from tests.stats import seed_for

D = torch.float64


def _random_net(m: int, seed: int, bias_scale: float = 0.5) -> HopfieldNetwork:
    g = make_generator(seed)
    a = torch.randn(m, m, generator=g, dtype=D)
    w = a + a.T
    w.fill_diagonal_(0)
    return HopfieldNetwork(w, bias_scale * torch.randn(m, generator=g, dtype=D))


def _random_states(b: int, m: int, seed: int) -> torch.Tensor:
    g = make_generator(seed)
    return (torch.rand(b, m, generator=g) < 0.5).to(D) * 2 - 1


def _patterns(n: int, m: int, seed: int) -> torch.Tensor:
    return _random_states(n, m, seed)


# -- formulas --------------------------------------------------------------------------------------
def test_hebbian_rule_matches_8_37_with_zero_diagonal() -> None:
    x = _patterns(4, 7, 0)
    net = HopfieldNetwork.hebbian(x)
    for i in range(7):
        for j in range(7):
            want = 0.0 if i == j else sum(float(x[n, i] * x[n, j]) for n in range(4)) / 4
            assert float(net.weight[i, j]) == pytest.approx(want, abs=1e-12)
    assert torch.equal(net.bias, torch.zeros(7, dtype=D))


def test_energy_matches_8_36_entry_by_entry() -> None:
    net = _random_net(5, 1)
    s = _random_states(6, 5, 2)
    e = net.energy(s)
    for r in range(6):
        want = -0.5 * sum(float(net.weight[i, j] * s[r, i] * s[r, j])
                          for i in range(5) for j in range(5))
        want -= sum(float(net.bias[i] * s[r, i]) for i in range(5))
        assert float(e[r]) == pytest.approx(want, abs=1e-10)


def test_async_fixed_order_is_the_sign_rule_one_unit_at_a_time() -> None:
    net = _random_net(6, 3)
    s = _random_states(4, 6, 4)
    got = net.update(s, mode="async", order="fixed")
    want = s.clone()
    for r in range(4):
        for i in range(6):
            field = sum(float(net.weight[i, j] * want[r, j]) for j in range(6)) + float(net.bias[i])
            want[r, i] = 1.0 if field >= 0 else -1.0
    assert torch.equal(got, want)


def test_sync_update_is_8_34_and_ties_go_to_plus_one() -> None:
    net = _random_net(6, 5)
    s = _random_states(4, 6, 6)
    want = torch.where(s @ net.weight + net.bias >= 0, 1.0, -1.0).to(D)
    assert torch.equal(net.update(s, mode="sync"), want)
    zero = HopfieldNetwork(torch.zeros(3, 3, dtype=D))  # every field is exactly 0
    minus = -torch.ones(2, 3, dtype=D)
    assert torch.equal(zero.update(minus, order="fixed"), torch.ones(2, 3, dtype=D))
    assert torch.equal(zero.update(minus, mode="sync"), torch.ones(2, 3, dtype=D))


def test_update_does_not_modify_its_input_and_follows_the_generator() -> None:
    net = _random_net(8, 7)
    s = _random_states(5, 8, 8)
    before = s.clone()
    a = net.update(s, generator=make_generator(3))
    b = net.update(s, generator=make_generator(3))
    assert torch.equal(s, before) and torch.equal(a, b)


# -- Lyapunov property -----------------------------------------------------------------------------
@given(m=st.integers(2, 12), seed=st.integers(0, 10_000),
       bias_scale=st.sampled_from([0.0, 0.3, 3.0]), order=st.sampled_from(["random", "fixed"]))
def test_energy_never_increases_under_asynchronous_updates(m: int, seed: int, bias_scale: float,
                                                           order: str) -> None:
    net = _random_net(m, seed, bias_scale)
    s = _random_states(16, m, seed + 1)
    g = make_generator(seed + 2)
    e = net.energy(s)
    for _ in range(4):
        # one unit at a time: each single flip must not raise the energy either
        for i in torch.randperm(m, generator=g).tolist():
            field = s @ net.weight[:, i] + net.bias[i]
            s = s.clone()
            s[:, i] = torch.where(field >= 0, 1.0, -1.0).to(D)
            e_new = net.energy(s)
            assert bool((e_new <= e + 1e-10).all())
            e = e_new
    out = net.retrieve(s, order=order, generator=g)
    assert bool((out.energies[1:] <= out.energies[:-1] + 1e-10).all())
    assert bool(out.converged.all()) and not bool(out.oscillating.any())


def test_retrieved_states_are_fixed_points() -> None:
    net = _random_net(10, 11)
    out = net.retrieve(_random_states(32, 10, 12), generator=make_generator(13))
    assert bool(out.converged.all())
    assert torch.equal(net.update(out.states, order="fixed"), out.states)
    assert torch.equal(net.update(out.states, mode="sync"), out.states)
    assert out.energies.shape == (int(out.num_sweeps.max()) + 2, 32)


def test_synchronous_two_cycle_is_detected_and_stops() -> None:
    w = torch.tensor([[0.0, -1.0], [-1.0, 0.0]], dtype=D)
    net = HopfieldNetwork(w)
    s = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=D)
    out = net.retrieve(s, mode="sync", max_sweeps=1000)
    assert out.oscillating.tolist() == [True, False]
    assert out.converged.tolist() == [False, True]
    assert out.energies.shape[0] <= 4  # stopped at once, not after 1000 sweeps
    # asynchronous updates of the same network converge
    assert bool(net.retrieve(s, order="fixed").converged.all())


# -- retrieval and capacity ------------------------------------------------------------------------
@pytest.mark.parametrize("flip", [0.1, 0.2])
def test_patterns_are_retrieved_below_capacity(flip: float) -> None:
    # 5 patterns in 200 units (0.025 M, well below 0.14 M): retrieval from 20 % flipped bits
    # failed for 1 pattern in 40000 (measured), so this test fails with probability ~1e-4.
    m, n = 200, 5
    x = _patterns(n, m, seed_for(20))
    net = HopfieldNetwork.hebbian(x)
    g = make_generator(seed_for(21))
    noisy = corrupt(x, flip, generator=g)
    out = net.retrieve(noisy, generator=g)
    assert torch.equal(out.states, x)
    assert bool(out.converged.all())
    assert bool((out.energies[-1] < out.energies[0]).all())


def test_capacity_experiment_shows_the_drop_past_0_14_m() -> None:
    # 8 networks per load. Measured with seed offsets 0..9: success 1.0 at load 0.05, 0.62-0.78
    # at 0.14, 0.004-0.017 at 0.3; mean overlap about 0.5 at 0.3. The bounds 0.95, 0.1 and 0.8
    # leave margins of many standard errors.
    r = capacity_experiment(100, [5, 14, 30], flip_fraction=0.1, trials=8,
                            generator=make_generator(seed_for(30)))
    assert r.load.tolist() == [0.05, 0.14, 0.3]
    assert float(r.success_rate[0]) >= 0.95
    assert float(r.success_rate[2]) <= 0.1
    assert bool((r.success_rate[1:] <= r.success_rate[:-1]).all())
    assert bool((r.mean_overlap[1:] < r.mean_overlap[:-1]).all())
    assert float(r.mean_overlap[2]) < 0.8


def test_corrupt_flips_exactly_the_fraction_per_row() -> None:
    x = _patterns(50, 40, 40)
    before = x.clone()
    y = corrupt(x, 0.25, generator=make_generator(41))
    assert torch.equal(x, before)
    assert ((y != x).sum(-1) == 10).all()
    assert torch.equal(y, corrupt(x, 0.25, generator=make_generator(41)))
    assert torch.equal(corrupt(x, 0.0), x)


# -- bad input -------------------------------------------------------------------------------------
def test_bad_weights_and_patterns_are_refused() -> None:
    w = torch.tensor([[0.0, 1.0], [2.0, 0.0]], dtype=D)
    with pytest.raises(ValidationError, match="symmetric"):
        HopfieldNetwork(w)
    with pytest.raises(ValidationError, match="zero diagonal"):
        HopfieldNetwork(torch.eye(2, dtype=D))
    with pytest.raises(NonFiniteError):
        HopfieldNetwork(torch.tensor([[0.0, math.nan], [math.nan, 0.0]], dtype=D))
    with pytest.raises(ShapeError):
        HopfieldNetwork(torch.zeros(2, 3, dtype=D))
    with pytest.raises(DtypeMismatchError):
        HopfieldNetwork(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ShapeError):
        HopfieldNetwork(torch.zeros(2, 2, dtype=D), torch.zeros(3, dtype=D))
    with pytest.raises(ValidationError, match=r"2 \* x - 1"):
        HopfieldNetwork.hebbian(torch.tensor([[0.0, 1.0, 1.0]]))
    with pytest.raises(NonFiniteError):
        HopfieldNetwork.hebbian(torch.tensor([[math.nan, 1.0, 1.0]]))


def test_bad_states_and_arguments_are_refused() -> None:
    net = _random_net(4, 50)
    s = _random_states(2, 4, 51)
    with pytest.raises(ShapeError):
        net.energy(s[:, :3])
    with pytest.raises(ShapeError):
        net.energy(s[0])
    with pytest.raises(DtypeMismatchError):
        net.energy(s.float())
    with pytest.raises(DtypeMismatchError):
        net.energy(s.long())
    with pytest.raises(ValidationError, match="-1 or \\+1"):
        net.update(s * 0.5)
    with pytest.raises(ValidationError):
        net.update(s, mode="parallel")
    with pytest.raises(ValidationError):
        net.update(s, order="sorted")
    with pytest.raises(ValidationError):
        net.retrieve(s, max_sweeps=0)
    with pytest.raises(ValidationError):
        net.retrieve(s, max_sweeps=True)
    with pytest.raises(ValidationError):
        net.update(s, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        corrupt(s, 1.5)
    with pytest.raises(ValidationError):
        capacity_experiment(10, [])
    with pytest.raises(ValidationError):
        capacity_experiment(10, [0])
    with pytest.raises(ValidationError):
        capacity_experiment(10, 3)  # type: ignore[arg-type]


@given(rows=st.integers(1, 3), cols=st.integers(1, 4),
       fill=st.sampled_from([0.0, 1.0, -1.0, 0.5, math.nan, math.inf]),
       sym=st.booleans(), seed=st.integers(0, 100))
def test_public_entry_points_give_typed_errors_or_values(rows: int, cols: int, fill: float,
                                                         sym: bool, seed: int) -> None:
    g = make_generator(seed)
    w = torch.randn(cols, cols, generator=g, dtype=D)
    if sym:
        w = w + w.T
        w.fill_diagonal_(0)
    w[0, -1] = fill if not sym else w[0, -1]
    res = outcome(HopfieldNetwork, w)
    s = torch.full((rows, cols), fill, dtype=D)
    net = res.value if res.kind == "value" else _random_net(cols, seed) if cols > 1 else \
        HopfieldNetwork(torch.zeros(1, 1, dtype=D))
    for fn in (net.energy, net.update, net.retrieve, HopfieldNetwork.hebbian):
        outcome(fn, s)
    outcome(corrupt, s, 0.5, generator=g)


# -- modern Hopfield -------------------------------------------------------------------------------
def _modern(n: int, d: int, seed: int, beta: float) -> tuple[ModernHopfield, torch.Tensor]:
    g = make_generator(seed)
    x = torch.randn(n, d, generator=g, dtype=D)
    return ModernHopfield(x, beta), torch.randn(7, d, generator=g, dtype=D)


def test_modern_update_and_energy_match_ramsauer_per_query() -> None:
    net, xi = _modern(6, 4, 60, 1.7)
    x, beta = net.patterns, net.beta
    new, energy = net.update(xi), net.energy(xi)
    big_m = max(float(x[i].norm()) for i in range(6))
    for r in range(7):
        scores = [beta * float(x[i] @ xi[r]) for i in range(6)]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total = sum(weights)
        want = torch.stack([weights[i] / total * x[i] for i in range(6)]).sum(0)
        assert torch.allclose(new[r], want, atol=1e-12, rtol=0)
        lse = (top + math.log(total)) / beta
        want_e = -lse + 0.5 * float(xi[r] @ xi[r]) + math.log(6) / beta + 0.5 * big_m ** 2
        assert float(energy[r]) == pytest.approx(want_e, abs=1e-10)


@given(n=st.integers(1, 8), d=st.integers(1, 6), seed=st.integers(0, 10_000),
       beta=st.sampled_from([0.1, 1.0, 4.0, 30.0]))
def test_modern_energy_never_increases_and_stays_in_its_bounds(n: int, d: int, seed: int,
                                                               beta: float) -> None:
    net, xi = _modern(n, d, seed, beta)
    xi = 3 * xi
    out = net.retrieve(xi, max_iter=30)
    assert float(out.max_energy_increase.max()) <= 1e-10
    assert bool((out.energies[1:] <= out.energies[:-1] + 1e-10).all())
    big_m2 = float(net.patterns.norm(dim=-1).max()) ** 2
    # 0 <= E <= 2 M^2 holds for states in the patterns' convex hull: every iterate after the start
    assert bool((out.energies[1:] >= -1e-10).all())
    assert bool((out.energies[1:] <= 2 * big_m2 + 1e-10).all())


def test_modern_retrieval_finds_the_stored_pattern_and_stops_at_a_stationary_point() -> None:
    net, _ = _modern(10, 32, 70, 4.0)
    x = net.patterns
    g = make_generator(71)
    noisy = x + 0.3 * torch.randn(x.shape, generator=g, dtype=D)
    out = net.retrieve(noisy, max_iter=50, tol=1e-12)
    assert bool(out.converged.all())
    assert torch.allclose(out.states, x, atol=1e-8)
    assert bool((out.num_iterations <= 5).all())
    # the fixed point is a stationary point of E
    xi = out.states.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net.energy(xi).sum(), xi)
    assert float(grad.abs().max()) < 1e-10


def test_modern_small_beta_gives_a_metastable_average() -> None:
    net, xi = _modern(5, 3, 80, 1e-6)
    out = net.retrieve(xi, max_iter=10)
    mean = net.patterns.mean(0).expand_as(out.states)
    assert torch.allclose(out.states, mean, atol=1e-4)


def test_modern_bad_input_is_refused() -> None:
    net, xi = _modern(3, 2, 90, 1.0)
    with pytest.raises(ValidationError):
        ModernHopfield(net.patterns, beta=0.0)
    with pytest.raises(NonFiniteError):
        ModernHopfield(torch.tensor([[math.nan, 1.0]]), beta=1.0)
    with pytest.raises(DtypeMismatchError):
        ModernHopfield(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ShapeError):
        ModernHopfield(torch.ones(0, 2, dtype=D))
    with pytest.raises(ShapeError):
        net.update(xi[:, :1])
    with pytest.raises(DtypeMismatchError):
        net.update(xi.float())
    with pytest.raises(NonFiniteError):
        net.energy(torch.full((1, 2), math.nan, dtype=D))
    with pytest.raises(ValidationError):
        net.retrieve(xi, max_iter=0)
    with pytest.raises(ValidationError):
        net.retrieve(xi, tol=-1.0)


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    x = _patterns(4, 64, 100)
    net = HopfieldNetwork.hebbian(x)
    gpu = HopfieldNetwork.hebbian(x.cuda())
    s = _random_states(8, 64, 101)
    assert torch.allclose(gpu.energy(s.cuda()).cpu(), net.energy(s), atol=1e-10, rtol=0)
    assert torch.equal(gpu.update(s.cuda(), order="fixed").cpu(), net.update(s, order="fixed"))
    g = make_generator(0, "cuda")
    out = gpu.retrieve(corrupt(x.cuda(), 0.1, generator=g), generator=g)
    assert torch.equal(out.states.cpu(), x)
    r = capacity_experiment(64, [3], trials=2, generator=g)
    assert float(r.success_rate[0]) > 0.5
    modern, xi = _modern(5, 8, 102, 2.0)
    mgpu = ModernHopfield(modern.patterns.cuda(), 2.0)
    assert torch.allclose(mgpu.retrieve(xi.cuda()).states.cpu(), modern.retrieve(xi).states,
                          atol=1e-10, rtol=0)
