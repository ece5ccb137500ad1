"""RBM models against brute-force enumeration (float64, 1e-10), and their input checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.energy.rbm import (
    BernoulliRBM,
    CategoricalRBM,
    GaussianBernoulliRBM,
    binary_states,
)
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    MemoryBudgetExceeded,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops import make_generator
from samplers.run import sample
from tests.robustness import outcome

F64 = torch.float64


def _randomise(rbm, seed: int, scale: float = 1.0):
    g = make_generator(seed)
    with torch.no_grad():
        for p in rbm.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return rbm


def _bernoulli(d=5, m=3, seed=0):
    return _randomise(BernoulliRBM(d, m, dtype=F64), seed)


def _categorical(d=3, k=3, m=3, seed=0):
    return _randomise(CategoricalRBM(d, k, m, dtype=F64), seed)


def _all_visible(rbm):
    total = rbm.num_visible_states ** rbm.num_visible
    return rbm.visible_states(0, total)


def _joint_log_f(rbm):
    """(V, H) matrix of -E(v, h) over every joint state, from the energy method."""
    vs = _all_visible(rbm)
    hs = binary_states(rbm.num_hidden)
    cols = [-rbm.energy(vs, h.expand(len(vs), -1).contiguous()) for h in hs]
    return vs, hs, torch.stack(cols, 1)


# ---------------------------------------------------------------- closed forms vs brute force
@pytest.mark.parametrize("make", [_bernoulli, _categorical])
def test_energy_matches_definition(make):
    rbm = make()
    vs, hs, log_f = _joint_log_f(rbm)
    flat = vs.reshape(len(vs), -1)
    w = rbm.weight.reshape(-1, rbm.num_hidden)
    expect = flat @ rbm.visible_bias.reshape(-1)
    expect = expect[:, None] + (hs @ rbm.hidden_bias)[None, :] + flat @ w @ hs.T
    torch.testing.assert_close(log_f, expect, rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", [_bernoulli, _categorical])
def test_free_energy_log_partition_and_conditionals_match_enumeration(make):
    rbm = make()
    vs, hs, log_f = _joint_log_f(rbm)
    torch.testing.assert_close(-rbm.free_energy(vs), torch.logsumexp(log_f, 1),
                               rtol=0, atol=1e-10)
    log_z = torch.logsumexp(log_f.flatten(), 0)
    torch.testing.assert_close(rbm.exact_log_partition(), log_z, rtol=0, atol=1e-10)
    # p(h_j = 1 | v) as a ratio of enumerated joint probabilities (12.33)
    post = torch.softmax(log_f, 1)
    torch.testing.assert_close(rbm.hidden_probs(vs), post @ hs, rtol=0, atol=1e-10)
    # E[v | h] from the enumerated joint
    prior_v = torch.softmax(log_f, 0)                                 # p(v | h), (V, H)
    mean_v = torch.einsum("vh,v...->h...", prior_v, vs)
    torch.testing.assert_close(rbm.visible_mean(hs), mean_v, rtol=0, atol=1e-10)


def test_log_partition_by_visible_enumeration_agrees():
    rbm = _bernoulli(d=4, m=9, seed=3)           # fewer visible states: enumerates v
    _, _, log_f = _joint_log_f(rbm)
    torch.testing.assert_close(rbm.exact_log_partition(), torch.logsumexp(log_f.flatten(), 0),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(rbm.exact_log_partition(chunk_states=3),
                               rbm.exact_log_partition(), rtol=0, atol=1e-12)


def test_gaussian_free_energy_and_log_partition_by_quadrature():
    rbm = _randomise(GaussianBernoulliRBM(1, 3, sigma=0.7, dtype=F64), 4)
    with torch.no_grad():
        rbm.log_sigma.fill_(math.log(0.7))
    x = torch.linspace(-40, 40, 400001, dtype=F64)[:, None]
    hs = binary_states(3)
    # free energy from the energy definition (sum over h), at a few points
    pts = torch.tensor([[-1.3], [0.0], [2.5]], dtype=F64)
    log_f = torch.stack([-rbm.energy(pts, h.expand(3, -1).contiguous()) for h in hs], 1)
    torch.testing.assert_close(-rbm.free_energy(pts), torch.logsumexp(log_f, 1),
                               rtol=0, atol=1e-10)
    # log Z by quadrature over v (trapezoid on a fine grid) against the closed form
    dx = float(x[1, 0] - x[0, 0])
    log_z = torch.logsumexp(-rbm.free_energy(x), 0) + math.log(dx)
    torch.testing.assert_close(rbm.exact_log_partition(), log_z, rtol=0, atol=1e-9)
    # p(v | h) = N(a + sigma W h, sigma^2): the mean against the model
    mean = rbm.visible_mean(hs)
    expect = rbm.visible_bias + rbm.sigma * (hs @ rbm.weight.T)
    torch.testing.assert_close(mean, expect, rtol=0, atol=1e-12)


def test_gaussian_hidden_conditional_uses_scaled_visible():
    rbm = _randomise(GaussianBernoulliRBM(3, 2, sigma=torch.tensor([0.5, 1.0, 2.0],
                                                                   dtype=F64), dtype=F64), 2)
    with torch.no_grad():
        rbm.log_sigma.copy_(torch.tensor([0.5, 1.0, 2.0], dtype=F64).log())
    v = torch.randn(4, 3, generator=make_generator(1), dtype=F64)
    expect = torch.sigmoid(rbm.hidden_bias + (v / rbm.sigma) @ rbm.weight)   # DL7 (7.18)
    torch.testing.assert_close(rbm.hidden_probs(v), expect, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", [_bernoulli, _categorical])
def test_exact_log_likelihood_gradient_matches_enumerated_statistics(make):
    """(12.51)-(12.53): d mean log p(v) / dW = <v h>_data - <v h>_model, by enumeration."""
    rbm = make(seed=5)
    vs, hs, log_f = _joint_log_f(rbm)
    data = vs[torch.tensor([0, 3, 3, 5, 7])]
    ll = rbm.log_prob(data).mean()
    grads = torch.autograd.grad(ll, [rbm.weight, rbm.visible_bias, rbm.hidden_bias])
    with torch.no_grad():
        flat = data.reshape(len(data), -1)
        ph = rbm.hidden_probs(data)
        joint = torch.softmax(log_f.flatten(), 0).reshape(log_f.shape)    # p(v, h)
        allv = vs.reshape(len(vs), -1)
        model_vh = torch.einsum("vh,vi,hj->ij", joint, allv, hs)
        expect_w = (flat.T @ ph / len(data) - model_vh).reshape(rbm.weight.shape)
        expect_a = (flat.mean(0) - joint.sum(1) @ allv).reshape(rbm.visible_bias.shape)
        expect_b = ph.mean(0) - joint.sum(0) @ hs
    for got, want in zip(grads, (expect_w, expect_a, expect_b), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", [_bernoulli, _categorical])
def test_pseudo_log_likelihood_matches_enumerated_conditionals(make):
    rbm = make(seed=7)
    vs = _all_visible(rbm)
    log_p = -rbm.free_energy(vs)
    expect = torch.zeros(len(vs), dtype=F64)
    k = rbm.num_visible_states
    for i in range(rbm.num_visible):
        alts = []
        for s in range(k):
            alt = vs.clone()
            if isinstance(rbm, CategoricalRBM):
                alt[:, i] = 0
                alt[:, i, s] = 1
            else:
                alt[:, i] = s
            alts.append(-rbm.free_energy(alt))
        expect += log_p - torch.logsumexp(torch.stack(alts, 1), 1)
    torch.testing.assert_close(rbm.pseudo_log_likelihood(vs), expect, rtol=0, atol=1e-10)
    # the single-feature estimator is unbiased for the same sum: average its expectation
    draws = torch.stack([rbm.pseudo_log_likelihood(vs, features="random",
                                                   generator=make_generator(s))
                         for s in range(400)])
    se = draws.std(0) / math.sqrt(len(draws))
    # 5-sigma per row: false failure about 6e-7 per row
    assert bool(((draws.mean(0) - expect).abs() <= 5 * se + 1e-12).all())


def test_markov_network_view_has_the_same_partition_function():
    rbm = _bernoulli(d=4, m=3, seed=9)
    mn = rbm.to_markov_network()
    torch.testing.assert_close(mn.log_partition(), rbm.exact_log_partition().detach(),
                               rtol=0, atol=1e-10)


# ---------------------------------------------------------------- block Gibbs
def test_block_gibbs_kernel_has_the_enumerated_joint_as_stationary_law():
    rbm = _bernoulli(d=3, m=2, seed=11).requires_grad_(False)
    vs, hs, log_f = _joint_log_f(rbm)
    joint = torch.softmax(log_f.flatten(), 0).reshape(len(vs), len(hs))
    chains = 4000
    start = torch.zeros(chains, 5, dtype=F64)
    with torch.no_grad():
        s = sample(rbm.gibbs_kernel(), None, start, num_draws=1, num_warmup=30,
                   generator=make_generator(12))
    x = s["x"][:, -1]
    v_idx = (x[:, :3] * torch.tensor([1, 2, 4], dtype=F64)).sum(-1).long()
    h_idx = (x[:, 3:] * torch.tensor([1, 2], dtype=F64)).sum(-1).long()
    counts = torch.bincount(v_idx * 4 + h_idx, minlength=32).to(F64).reshape(8, 4)
    tv = 0.5 * (counts / chains - joint).abs().sum()
    # 32 cells, 4000 independent chains: E[TV] ~ 0.04; 0.08 is > 6 sd above (false failure
    # well below 1e-6); a wrong conditional (e.g. a transposed W) gives TV > 0.15 here
    assert float(tv) < 0.08


def test_sample_chains_are_one_tensor_and_follow_the_generator():
    rbm = _categorical(seed=2)
    v1, h1 = rbm.sample(6, 5, generator=make_generator(3))
    v2, h2 = rbm.sample(6, 5, generator=make_generator(3))
    assert v1.shape == (6, 3, 3) and h1.shape == (6, 3)
    assert torch.equal(v1, v2) and torch.equal(h1, h2)
    assert bool((v1.sum(-1) == 1).all())
    state = torch.random.get_rng_state()
    rbm.sample(6, 5, generator=make_generator(4))
    assert torch.equal(state, torch.random.get_rng_state())


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_named_errors():
    rbm = BernoulliRBM(4, 2, dtype=F64)
    with pytest.raises(ValidationError, match="binary"):
        rbm.free_energy(torch.full((2, 4), 0.5, dtype=F64))
    with pytest.raises(ShapeError, match="visible units"):
        rbm.free_energy(torch.zeros(2, 5, dtype=F64))
    with pytest.raises(DtypeMismatchError):
        rbm.free_energy(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(DtypeMismatchError):
        rbm.free_energy(torch.zeros(2, 4, dtype=torch.float32))
    with pytest.raises(ValidationError):
        rbm.hidden_probs(torch.tensor([[0.0, 1.0, float("nan"), 0.0]], dtype=F64))
    with pytest.raises(ValidationError, match="0 or 1"):
        rbm.visible_mean(torch.full((1, 2), 0.3, dtype=F64))
    with pytest.raises(ValidationError):
        rbm.sample(0, 5)
    with pytest.raises(ValidationError):
        rbm.sample(2, 0)
    with pytest.raises(ValidationError):
        BernoulliRBM(0, 3)
    with pytest.raises(ValidationError):
        BernoulliRBM(True, 3)
    with pytest.raises(ValidationError, match="> 0"):
        GaussianBernoulliRBM(2, 2, sigma=torch.tensor([1.0, -1.0]))
    with pytest.raises(NonFiniteError):
        GaussianBernoulliRBM(2, 2, dtype=F64).free_energy(
            torch.tensor([[0.0, float("inf")]], dtype=F64))
    with pytest.raises(ValidationError, match="one-hot"):
        CategoricalRBM(2, 3, 2, dtype=F64).free_energy(torch.ones(1, 2, 3, dtype=F64))
    with pytest.raises(ValidationError, match="continuous"):
        GaussianBernoulliRBM(2, 2).pseudo_log_likelihood(torch.zeros(1, 2))
    with pytest.raises(MemoryBudgetExceeded, match="ais_log_partition"):
        BernoulliRBM(40, 40).exact_log_partition()
    if not torch.cuda.is_available():
        with pytest.raises((DeviceMismatchError, ValidationError)):
            BernoulliRBM(3, 2, generator=make_generator(0), device="meta")


def test_sigma_floor_keeps_learned_sigma_positive():
    rbm = GaussianBernoulliRBM(2, 2, learn_sigma=True, min_sigma=0.05, dtype=F64)
    with torch.no_grad():
        rbm.log_sigma.fill_(-50.0)
    assert bool((rbm.sigma >= 0.05).all())
    assert isinstance(rbm.log_sigma, torch.nn.Parameter)
    fixed = GaussianBernoulliRBM(2, 2, learn_sigma=False)
    assert "log_sigma" not in dict(fixed.named_parameters())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 0.5, -1.0, 2.0, float("nan"), float("inf")]),
                min_size=1, max_size=8),
       st.integers(1, 3))
def test_property_free_energy_and_pll_give_typed_error_or_exact_value(values, rows):
    rbm = _bernoulli(d=len(values), m=2, seed=1)
    v = torch.tensor([values] * rows, dtype=F64)
    got = outcome(rbm.free_energy, v)
    binary = all(x in (0.0, 1.0) for x in values)
    assert got.kind == ("value" if binary else "error")
    if binary:
        expect = -(v @ rbm.visible_bias) - F.softplus(v @ rbm.weight + rbm.hidden_bias).sum(-1)
        torch.testing.assert_close(got.value, expect, rtol=0, atol=1e-12)
        assert outcome(rbm.pseudo_log_likelihood, v).kind == "value"
