"""CD-k / PCD / PT gradient estimators and the RBM trainer against exact oracles.

Oracles: autograd of free-energy / energy differences and of the exact log-likelihood
``-F(v) - log Z`` (``exact_log_partition`` enumerates a layer) at 1e-10 in float64; the exact
expectation of the CD-k estimate from the enumerated block-Gibbs transition matrix; the exact
model statistics from enumeration (or autograd of ``log Z``). Statistical tests state their
false-failure rate (``ALPHA`` over all their z-scores, Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from scipy import stats
from torch.func import functional_call, grad, vmap

from generative.energy.contrastive import (
    RBMGradient,
    check_betas,
    contrastive_divergence,
    default_betas,
    estimate_gradient,
    init_chains,
    likelihood_gradient,
    parallel_tempering,
    persistent_contrastive_divergence,
    rbm_optimizer,
    set_gradients,
    sparsity_gradient,
    train_rbm,
    trainable_names,
)
from generative.energy.rbm import (
    BernoulliRBM,
    CategoricalRBM,
    GaussianBernoulliRBM,
    binary_states,
)
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops import make_generator
from tests.stats import seed_for

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The tensors are tiny: one intra-op thread avoids oversubscribing a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
#: False-failure rate of each statistical test (over all its z-scores together).
ALPHA = 1e-4


# ---------------------------------------------------------------------------- helpers
def _randomise(rbm, seed, scale=1.0):
    g = make_generator(seed)
    with torch.no_grad():
        for _, p in rbm.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return rbm


def _model(kind, seed=0):
    if kind == "bernoulli":
        return _randomise(BernoulliRBM(5, 3, dtype=F64), seed)
    if kind == "gaussian":
        return _randomise(GaussianBernoulliRBM(4, 3, dtype=F64, sigma=0.7), seed, 0.5)
    if kind == "gaussian-learned":
        rbm = _randomise(GaussianBernoulliRBM(4, 3, learn_sigma=True, min_sigma=0.3, dtype=F64),
                         seed, 0.5)
        with torch.no_grad():  # one unit below the floor: its gradient must be 0, as autograd's
            rbm.log_sigma[0] = math.log(0.1)
        return rbm
    return _randomise(CategoricalRBM(3, 3, 2, dtype=F64), seed)


def _data(rbm, n, seed):
    g = make_generator(seed)
    if isinstance(rbm, GaussianBernoulliRBM):
        return torch.randn(n, rbm.num_visible, generator=g, dtype=F64)
    if isinstance(rbm, CategoricalRBM):
        idx = torch.randint(rbm.num_categories, (n, rbm.num_visible), generator=g)
        return CategoricalRBM.one_hot(idx, rbm.num_categories).to(F64)
    return (torch.rand(n, rbm.num_visible, generator=g, dtype=F64) < 0.4).to(F64)


def _neg_free_energy(rbm, v):
    """-F(v) from public building blocks (no value checks, so it works under vmap)."""
    return rbm.visible_term(v) + torch.nn.functional.softplus(
        rbm.hidden_input(v) + rbm.hidden_bias).sum(-1)


def _autograd(rbm, objective):
    rbm.zero_grad(set_to_none=True)
    objective().backward()
    return {n: p.grad.clone() for n, p in rbm.named_parameters()}


def _per_row_stats(rbm, v):
    """d(-F(v_n))/dtheta for every row, flattened: (N, P), by autograd (vmap)."""
    params = {n: p.detach() for n, p in rbm.named_parameters()}
    buffers = dict(rbm.named_buffers())

    class NegF(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return _neg_free_energy(self.m, x)

    wrapper = NegF(rbm)

    def f(p, x):
        return functional_call(wrapper, {**{"m." + k: t for k, t in p.items()},
                                         **{"m." + k: t for k, t in buffers.items()}},
                               (x[None],))[0]

    g = vmap(grad(f), in_dims=(None, 0))(params, v)
    return torch.cat([g[n].reshape(v.shape[0], -1) for n in params], 1)


def _flat(d, rbm):
    return torch.cat([d[n].reshape(-1) for n in trainable_names(rbm)])


def _z_limit(num):
    return float(stats.norm.isf(ALPHA / (2 * num)))


def _assert_z(estimate, truth, se, num=None):
    se = se.clamp_min(1e-12)
    z = ((estimate - truth) / se).abs()
    limit = _z_limit(num if num is not None else z.numel())
    assert float(z.max()) < limit, (float(z.max()), limit)


def _transition(rbm):
    """Block-Gibbs transition matrix over the visible states of a small Bernoulli RBM."""
    vs, hs = binary_states(rbm.num_visible), binary_states(rbm.num_hidden)
    with torch.no_grad():
        ph = torch.sigmoid(vs @ rbm.weight + rbm.hidden_bias)
        p_hv = (hs[None] * ph[:, None] + (1 - hs[None]) * (1 - ph[:, None])).prod(-1)
        pv = torch.sigmoid(hs @ rbm.weight.T + rbm.visible_bias)
        p_vh = (vs[None] * pv[:, None] + (1 - vs[None]) * (1 - pv[:, None])).prod(-1)
    return vs, p_hv @ p_vh


def _slow_rbm():
    """4 x 3 Bernoulli RBM with two modes (all on / all off): block Gibbs mixes slowly (second
    eigenvalue of the transition matrix about 0.9), so the CD-k bias is large for small k."""
    rbm = BernoulliRBM(4, 3, dtype=F64, weight_std=2.5, generator=make_generator(3))
    with torch.no_grad():
        w = rbm.weight.abs()
        rbm.weight.copy_(w)
        rbm.visible_bias.copy_(-w.sum(1) / 2)
        rbm.hidden_bias.copy_(-w.sum(0) / 2)
    return rbm


DATA4 = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1], [1, 0, 0, 0],
                      [1, 1, 0, 1]], dtype=F64)
KINDS = ("bernoulli", "gaussian", "gaussian-learned", "categorical")


# ---------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("kind", KINDS)
def test_closed_form_statistics_equal_autograd(kind):
    rbm = _model(kind)
    pos, neg = _data(rbm, 7, 1), _data(rbm, 5, 2)
    # probabilities: the gradient of mean(-F(pos)) - mean(-F(neg))
    got = likelihood_gradient(rbm, pos, neg)
    want = _autograd(rbm, lambda: rbm.free_energy(neg).mean() - rbm.free_energy(pos).mean())
    assert set(got) == set(want)
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-10, rtol=0), n
    if kind == "gaussian-learned":
        assert float(got["log_sigma"][0]) == 0.0  # below min_sigma: no gradient
    # sampled hidden units: the gradient of mean(-E(pos, h0)) - mean(-E(neg, hn))
    g = make_generator(3)
    h0 = (torch.rand(7, rbm.num_hidden, generator=g, dtype=F64) < 0.5).to(F64)
    hn = (torch.rand(5, rbm.num_hidden, generator=g, dtype=F64) < 0.5).to(F64)
    got = likelihood_gradient(rbm, pos, neg, positive_hidden=h0, negative_hidden=hn)
    want = _autograd(rbm, lambda: rbm.energy(neg, hn).mean() - rbm.energy(pos, h0).mean())
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-10, rtol=0), n
    # row weights
    w0 = torch.softmax(torch.randn(7, generator=g, dtype=F64), 0)
    wn = torch.softmax(torch.randn(5, generator=g, dtype=F64), 0)
    got = likelihood_gradient(rbm, pos, neg, positive_weights=w0, negative_weights=wn)
    want = _autograd(rbm, lambda: (wn * rbm.free_energy(neg)).sum()
                     - (w0 * rbm.free_energy(pos)).sum())
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-10, rtol=0), n


@pytest.mark.parametrize("kind", ("bernoulli", "categorical"))
def test_enumerated_negative_phase_is_the_exact_gradient(kind):
    rbm = _model(kind, seed=4)
    data = _data(rbm, 9, 5)
    total = rbm.num_visible_states ** rbm.num_visible
    states = rbm.visible_states(0, total)
    with torch.no_grad():
        p = torch.softmax(-rbm.free_energy(states), 0)
    got = likelihood_gradient(rbm, data, states, negative_weights=p)
    want = _autograd(rbm, lambda: -(rbm.log_prob(data).mean()))
    for n in want:
        assert torch.allclose(got[n], -want[n], atol=1e-10, rtol=0), n


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ("cd", "pcd", "pt"))
def test_estimators_use_the_closed_form_for_their_negative_samples(kind, method):
    rbm = _model(kind, seed=6)
    v = _data(rbm, 6, 7)
    est = estimate_gradient(rbm, v, method=method, k=2, num_replicas=3,
                            generator=make_generator(8))
    assert isinstance(est, RBMGradient)
    want = likelihood_gradient(rbm, v, est.negative)
    for n in want:
        assert torch.allclose(est.ascent[n], want[n], atol=1e-12, rtol=0), n
    with torch.no_grad():
        assert torch.allclose(est.positive_probs, rbm.hidden_probs(v), atol=1e-14)
        assert torch.allclose(est.negative_logits,
                              rbm.hidden_input(est.negative) + rbm.hidden_bias, atol=1e-12)
    if method == "cd":
        assert est.chains is None and est.swap_rate is None
    elif method == "pcd":
        assert est.chains is not None and torch.equal(est.chains, est.negative)
    else:
        assert est.chains is not None and est.chains.shape[:2] == (3, 6)
        assert torch.equal(est.chains[0], est.negative)
        assert est.swap_rate is not None and 0.0 <= float(est.swap_rate) <= 1.0
    # the model's own check of its negative samples: valid visible states
    rbm.check_visible(est.negative)


# ---------------------------------------------------------------------------- CD-k statistics
def _expected_cd(rbm, vs, t, data, k):
    """Exact expectation of the CD-k estimate (probability statistics or sampled ones)."""
    idx = (data * (2 ** torch.arange(data.shape[1], dtype=F64))).sum(1).long()
    q = torch.zeros(len(vs), dtype=F64).index_add_(0, idx, torch.full((len(idx),),
                                                                       1.0 / len(idx),
                                                                       dtype=F64))
    qk = q @ torch.linalg.matrix_power(t, k)
    return _flat(likelihood_gradient(rbm, data, vs, negative_weights=qk / qk.sum()), rbm)


def test_cd_k_matches_its_expectation_and_its_bias_shrinks_with_k():
    """The CD-k estimate (probability statistics, ``N`` replicated data rows) against its exact
    expectation ``q0 T^k`` (z-test per parameter), and that expectation's bias relative to the
    exact gradient strictly shrinking over k = 1, 3, 10, 50 (deterministic). False-failure rate
    ALPHA over the 4 x 19 z-scores; the Monte Carlo bias checks hold whenever the z-test does:
    ``|bias_mc - bias_exact| <= tol = ||z_limit * se||`` by the triangle inequality."""
    rbm = _slow_rbm()
    vs, t = _transition(rbm)
    exact = _flat(likelihood_gradient(rbm, DATA4, vs, negative_weights=torch.softmax(
        -rbm.free_energy(vs).detach(), 0)), rbm)
    reps = 4_000
    data = DATA4.repeat(reps, 1)
    ks = (1, 3, 10, 50)
    bias_exact, bias_mc, tol = [], [], []
    g = make_generator(seed_for(11))
    limit = _z_limit(len(ks) * exact.numel())
    for k in ks:
        est = contrastive_divergence(rbm, data, k=k, generator=g)
        mc = _flat(est.ascent, rbm)
        expected = _expected_cd(rbm, vs, t, DATA4, k)
        # the positive phase is exact; the noise is the negative rows' per-row statistics
        se = _per_row_stats(rbm, est.negative).std(0) / math.sqrt(data.shape[0])
        _assert_z(mc, expected, se, len(ks) * exact.numel())
        bias_exact.append(float((expected - exact).norm()))
        bias_mc.append(float((mc - exact).norm()))
        tol.append(float((limit * se).norm()))
    assert all(b > a for a, b in zip(bias_exact[1:], bias_exact, strict=False)), bias_exact
    assert bias_exact[-1] < 0.01 * bias_exact[0]
    # Monte Carlo: |bias_mc - bias_exact| <= tol (triangle inequality + the z-bound)
    assert bias_mc[0] - tol[0] > bias_mc[2] + tol[2]
    assert bias_mc[3] < bias_exact[3] + tol[3] < bias_mc[0] - tol[0]


def test_cd_with_sampled_statistics_has_the_same_expectation():
    """Sampled h in both phases (Algorithm 12.1): same expectation as the probabilities; the
    standard error comes from 40 independent groups (t with 39 degrees of freedom,
    Bonferroni over 2 x 19 statistics; false-failure rate ALPHA)."""
    rbm = _slow_rbm()
    vs, t = _transition(rbm)
    data = DATA4.repeat(150, 1)
    g = make_generator(seed_for(12))
    groups = 40
    limit = float(stats.t.isf(ALPHA / (2 * 2 * 19), groups - 1))
    for k in (1, 10):
        runs = torch.stack([_flat(contrastive_divergence(rbm, data, k=k, statistics="samples",
                                                         generator=g).ascent, rbm)
                            for _ in range(groups)])
        se = runs.std(0) / math.sqrt(groups)
        z = ((runs.mean(0) - _expected_cd(rbm, vs, t, DATA4, k)) / se).abs()
        assert float(z.max()) < limit


@pytest.mark.parametrize(("kind", "method"), [("bernoulli", "pcd"), ("bernoulli", "pt"),
                                              ("categorical", "pt"),
                                              ("gaussian-learned", "pcd")])
def test_long_persistent_chains_give_the_exact_model_statistics(kind, method):
    """PCD / PT (beta = 1 replica) negative statistics after many steps of many chains against
    the exact ones (autograd of log Z); chains are independent, so the per-chain statistics give
    the standard error. False-failure rate ALPHA over the parameters' z-scores."""
    rbm = _slow_rbm() if kind == "bernoulli" else _model(kind, seed=9)
    data = _data(rbm, 5, 10) if kind != "bernoulli" else DATA4
    g = make_generator(seed_for(13))
    chains = 4_000
    # the slow model's second eigenvalue is about 0.9: 0.9^100 ~ 3e-5 leaves no visible bias
    k = 100 if kind == "bernoulli" else 50
    if method == "pcd":
        est = persistent_contrastive_divergence(rbm, data, init_chains(rbm, chains, generator=g),
                                                k=k, generator=g)
    else:
        est = parallel_tempering(rbm, data, init_chains(rbm, chains, num_replicas=4,
                                                        generator=g), k=k, generator=g)
    exact = _autograd(rbm, lambda: -(rbm.log_prob(data).mean()))
    exact_flat = -_flat(exact, rbm)
    mc = _flat(est.ascent, rbm)
    se = _per_row_stats(rbm, est.negative).std(0) / math.sqrt(chains)
    _assert_z(mc, exact_flat, se)


def test_parallel_tempering_swaps_and_betas():
    rbm = _slow_rbm()
    g = make_generator(14)
    est = parallel_tempering(rbm, DATA4, betas=[1.0, 0.6, 0.3, 0.0], k=5, generator=g)
    assert est.chains.shape == (4, 6, 4)
    assert 0.0 < float(est.swap_rate) < 1.0
    # adjacent identical temperatures always swap (ratio 1)
    near = parallel_tempering(rbm, DATA4, betas=torch.tensor([1.0, 1.0 - 1e-12],
                                                               dtype=F64), k=3, generator=g)
    assert float(near.swap_rate) == 1.0
    assert torch.allclose(default_betas(4), torch.tensor([1.0, 2 / 3, 1 / 3, 0.0],
                                                         dtype=F64), atol=1e-15)


# ---------------------------------------------------------------------------- training
def _pattern_data(n=300, seed=0):
    """Two noisy 6-bit prototypes: a distribution an RBM with 4 hidden units fits well."""
    g = make_generator(seed)
    protos = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=F64)
    which = torch.randint(2, (n,), generator=g)
    flips = (torch.rand(n, 6, generator=g, dtype=F64) < 0.1).to(F64)
    return (protos[which] + flips) % 2


def _mean_ll(rbm, data):
    with torch.no_grad():
        return float(rbm.log_prob(data).mean())


@pytest.mark.parametrize("method", ("cd", "pcd", "pt"))
def test_training_increases_the_exact_log_likelihood(method):
    data = _pattern_data()
    rbm = BernoulliRBM(6, 4, dtype=F64, generator=make_generator(1))
    before = _mean_ll(rbm, data)
    res = train_rbm(rbm, data, method=method, k=1, epochs=40, batch_size=20, lr=0.1,
                    momentum=0.5, weight_decay=1e-4, num_replicas=4,
                    generator=make_generator(seed_for(2)))
    after = _mean_ll(rbm, data)
    # from ~ -6 log 2 = -4.16 (uniform) to near the data's entropy (about -3.3 nats)
    assert after > before + 0.5, (before, after)
    assert len(res.history) == 40 and res.history[-1] < res.history[0]
    assert res.epochs == 40 and res.method == method
    if method == "cd":
        assert res.chains is None and res.swap_rates == []
    elif method == "pcd":
        assert res.chains.shape == (20, 6)
    else:
        assert res.chains.shape == (4, 20, 6) and len(res.swap_rates) == 40
        assert all(0.0 <= r <= 1.0 for r in res.swap_rates)


def test_gaussian_rbm_with_learned_sigma_trains_on_standardised_data():
    from generative.energy.standardize import standardize

    g = make_generator(seed_for(3))
    centres = torch.tensor([[2.0, 0.0, -1.0], [-2.0, 1.0, 1.0]], dtype=F64)
    x = centres[torch.randint(2, (400,), generator=g)] + 0.3 * torch.randn(400, 3, generator=g,
                                                                             dtype=F64)
    z, _ = standardize(x)
    rbm = GaussianBernoulliRBM(3, 4, learn_sigma=True, min_sigma=0.05, dtype=F64,
                               generator=make_generator(4))
    before = _mean_ll(rbm, z)
    train_rbm(rbm, z, method="pcd", epochs=30, batch_size=20, lr=0.01, generator=g)
    assert all(bool(torch.isfinite(p).all()) for p in rbm.parameters())
    assert float(rbm.sigma.detach().min()) >= 0.05
    assert _mean_ll(rbm, z) > before + 0.3


def test_sparsity_pushes_the_mean_hidden_activation_to_the_target():
    data = _pattern_data(seed=5)
    means = {}
    for target in (None, 0.05):
        rbm = BernoulliRBM(6, 8, dtype=F64, generator=make_generator(6))
        train_rbm(rbm, data, epochs=30, batch_size=20, lr=0.1, sparsity_target=target,
                  sparsity_cost=0.5 if target else 0.0, generator=make_generator(seed_for(7)))
        with torch.no_grad():
            means[target] = float(rbm.hidden_probs(data).mean())
    assert abs(means[0.05] - 0.05) < 0.5 * abs(means[None] - 0.05), means
    assert means[0.05] < 0.15


def test_sparsity_gradient_formula():
    rbm = _model("bernoulli", seed=8)
    v = _data(rbm, 10, 9)
    got = sparsity_gradient(rbm, v, target=0.2, cost=0.7)
    with torch.no_grad():
        q = rbm.hidden_probs(v).mean(0)
    assert torch.allclose(got["hidden_bias"], 0.7 * (q - 0.2), atol=1e-14)
    assert torch.allclose(got["weight"], torch.outer(v.mean(0), 0.7 * (q - 0.2)), atol=1e-14)
    est = estimate_gradient(rbm, v, sparsity_target=0.2, sparsity_cost=0.7,
                            generator=make_generator(0))
    for n in got:
        assert torch.allclose(est.penalty[n], got[n], atol=1e-14)
    assert estimate_gradient(rbm, v, generator=make_generator(0)).penalty == {}


@pytest.mark.parametrize(("kind", "method", "statistics"), [
    ("bernoulli", "cd", "probabilities"), ("bernoulli", "cd", "samples"),
    ("bernoulli", "pcd", "probabilities"), ("bernoulli", "pcd", "samples"),
    ("bernoulli", "pt", "probabilities"), ("gaussian-learned", "pcd", "samples"),
    ("categorical", "cd", "probabilities")])
def test_train_rbm_is_sgd_on_the_estimates(kind, method, statistics):
    """train_rbm's fused update equals torch.optim.SGD (momentum, weight decay on the weights
    only) on set_gradients of estimate_gradient, with the same draws (the packed Bernoulli
    path for CD / PCD, the generic one otherwise)."""
    opts = {"k": 2, "lr": 0.07, "momentum": 0.6, "weight_decay": 0.01,
            "statistics": statistics}
    if kind == "bernoulli":
        data = _pattern_data(n=60, seed=10)
        a = BernoulliRBM(6, 3, dtype=F64, generator=make_generator(11))
        b = BernoulliRBM(6, 3, dtype=F64, generator=make_generator(11))
    else:
        a, b = _model(kind, seed=11), _model(kind, seed=11)
        data = _data(a, 60, 10)
    res = train_rbm(a, data, method=method, epochs=2, batch_size=20, sparsity_target=0.1,
                    sparsity_cost=0.3, num_replicas=3, generator=make_generator(12), **opts)
    g = make_generator(12)
    opt = rbm_optimizer(b, lr=opts["lr"], momentum=opts["momentum"],
                        weight_decay=opts["weight_decay"])
    chains = None if method == "cd" else init_chains(
        b, 20, num_replicas=3 if method == "pt" else None, generator=g)
    for _ in range(2):
        perm = torch.randperm(60, generator=g)
        x = data[perm]
        for lo in range(0, 60, 20):
            est = estimate_gradient(b, x[lo: lo + 20], method=method, k=opts["k"],
                                    statistics=statistics, chains=chains, sparsity_target=0.1,
                                    sparsity_cost=0.3, generator=g)
            opt.zero_grad()
            set_gradients(b, est.ascent, penalty=est.penalty)
            opt.step()
            chains = est.chains
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-12, rtol=0), n
    if chains is not None:
        assert torch.equal(res.chains, chains)
    with torch.no_grad():  # the history is the mean-field reconstruction error after the epoch
        assert math.isclose(res.history[-1], float(b.reconstruction_error(data).mean()),
                            rel_tol=1e-9)


def test_momentum_and_weight_decay_of_the_optimizer():
    rbm = BernoulliRBM(3, 2, dtype=F64, weight_std=1.0, generator=make_generator(0))
    w0 = rbm.weight.detach().clone()
    b0 = rbm.hidden_bias.detach().clone()
    opt = rbm_optimizer(rbm, lr=0.1, momentum=0.5, weight_decay=0.2)
    # zero likelihood gradient: weights decay geometrically, biases stay
    zero = {n: torch.zeros_like(p) for n, p in rbm.named_parameters()}
    opt.zero_grad()
    set_gradients(rbm, zero)
    opt.step()
    assert torch.allclose(rbm.weight, w0 * (1 - 0.1 * 0.2), atol=1e-15)
    assert torch.equal(rbm.hidden_bias, b0)
    # a constant ascent g on the biases: steps lr g, then lr (1 + momentum) g
    opt = rbm_optimizer(rbm, lr=0.1, momentum=0.5)
    ones = {n: torch.ones_like(p) for n, p in rbm.named_parameters()}
    for _ in range(2):
        opt.zero_grad()
        set_gradients(rbm, ones)
        opt.step()
    assert torch.allclose(rbm.hidden_bias, b0 + 0.1 * (1 + 1.5), atol=1e-15)


def test_weight_decay_shrinks_the_weights():
    data = _pattern_data(seed=13)
    norms = []
    for wd in (0.0, 0.05):
        rbm = BernoulliRBM(6, 4, dtype=F64, generator=make_generator(14))
        train_rbm(rbm, data, epochs=20, batch_size=20, lr=0.1, weight_decay=wd,
                  generator=make_generator(seed_for(15)))
        norms.append(float(rbm.weight.detach().norm()))
    assert norms[1] < 0.7 * norms[0], norms


def test_callback_stops_training_and_data_values():
    data = _pattern_data(n=40, seed=16)
    seen = []

    def stop(epoch, rbm, err):
        seen.append((epoch, err))
        return epoch == 2

    rbm = BernoulliRBM(6, 3, dtype=F64)
    res = train_rbm(rbm, data, epochs=10, batch_size=10, callback=stop,
                    generator=make_generator(0))
    assert res.epochs == 2 and len(res.history) == 2 and [e for e, _ in seen] == [1, 2]
    probs = data * 0.8 + 0.1
    with pytest.raises(ValidationError, match="binary"):
        train_rbm(rbm, probs, epochs=1)
    res = train_rbm(rbm, probs, epochs=1, data_values="probabilities",
                    generator=make_generator(0))
    assert math.isfinite(res.history[0])
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        train_rbm(rbm, probs + 0.5, epochs=1, data_values="probabilities")
    # continuing a PCD run from its chains
    res = train_rbm(rbm, data, method="pcd", epochs=1, batch_size=10, num_chains=7,
                    generator=make_generator(1))
    res2 = train_rbm(rbm, data, method="pcd", epochs=1, batch_size=10, chains=res.chains,
                     generator=make_generator(2))
    assert res2.chains.shape == (7, 6)


# ---------------------------------------------------------------------------- bad input
def _bernoulli64():
    return BernoulliRBM(4, 3, dtype=F64)


BAD = [
    ("non-binary data", ValidationError,
     lambda r: contrastive_divergence(r, torch.full((2, 4), 0.5, dtype=F64))),
    ("NaN data", NonFiniteError,
     lambda r: estimate_gradient(GaussianBernoulliRBM(4, 3, dtype=F64),
                                 torch.full((2, 4), float("nan"), dtype=F64))),
    ("wrong unit count", ShapeError,
     lambda r: contrastive_divergence(r, torch.zeros(2, 5, dtype=F64))),
    ("missing batch dimension", ShapeError,
     lambda r: contrastive_divergence(r, torch.zeros(4, dtype=F64))),
    ("empty batch", ShapeError, lambda r: contrastive_divergence(r, torch.zeros(0, 4, dtype=F64))),
    ("integer data", DtypeMismatchError,
     lambda r: contrastive_divergence(r, torch.zeros(2, 4, dtype=torch.long))),
    ("float32 data for a float64 model", DtypeMismatchError,
     lambda r: contrastive_divergence(r, torch.zeros(2, 4))),
    ("k = 0", ValidationError, lambda r: contrastive_divergence(r, torch.zeros(2, 4, dtype=F64),
                                                                 k=0)),
    ("k = 1.0", ValidationError,
     lambda r: contrastive_divergence(r, torch.zeros(2, 4, dtype=F64), k=1.0)),
    ("bad method", ValidationError,
     lambda r: estimate_gradient(r, torch.zeros(2, 4, dtype=F64), method="cd1")),
    ("bad statistics", ValidationError,
     lambda r: estimate_gradient(r, torch.zeros(2, 4, dtype=F64), statistics="mean")),
    ("chains for CD", ValidationError,
     lambda r: estimate_gradient(r, torch.zeros(2, 4, dtype=F64), chains=torch.zeros(
         2, 4, dtype=F64))),
    ("betas for PCD", ValidationError,
     lambda r: estimate_gradient(r, torch.zeros(2, 4, dtype=F64), method="pcd",
                                 betas=[1.0, 0.5])),
    ("chains of the wrong shape", ShapeError,
     lambda r: persistent_contrastive_divergence(r, torch.zeros(2, 4, dtype=F64),
                                                 torch.zeros(3, 5, dtype=F64))),
    ("non-binary chains", ValidationError,
     lambda r: persistent_contrastive_divergence(r, torch.zeros(2, 4, dtype=F64),
                                                 torch.full((3, 4), 0.5, dtype=F64))),
    ("PT chains without replicas", ShapeError,
     lambda r: parallel_tempering(r, torch.zeros(2, 4, dtype=F64), torch.zeros(3, 4,
                                                                              dtype=F64))),
    ("betas not starting at 1", ValidationError,
     lambda r: parallel_tempering(r, torch.zeros(2, 4, dtype=F64), betas=[0.9, 0.5])),
    ("increasing betas", ValidationError,
     lambda r: parallel_tempering(r, torch.zeros(2, 4, dtype=F64), betas=[1.0, 0.5, 0.7])),
    ("negative beta", ValidationError, lambda r: check_betas([1.0, -0.1], r)),
    ("one replica", ShapeError, lambda r: check_betas([1.0], r)),
    ("one replica by count", ValidationError,
     lambda r: parallel_tempering(r, torch.zeros(2, 4, dtype=F64), num_replicas=1)),
    ("negative lr", ValidationError, lambda r: rbm_optimizer(r, lr=-0.1)),
    ("zero lr", ValidationError, lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), lr=0.0)),
    ("momentum 1", ValidationError, lambda r: rbm_optimizer(r, lr=0.1, momentum=1.0)),
    ("negative weight decay", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), weight_decay=-1e-4)),
    ("negative sparsity cost", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), sparsity_target=0.1,
                         sparsity_cost=-1.0)),
    ("sparsity target 1", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), sparsity_target=1.0)),
    ("epochs 0", ValidationError, lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64),
                                                      epochs=0)),
    ("batch size 0", ValidationError, lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64),
                                                          batch_size=0)),
    ("num_chains with CD", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), num_chains=5)),
    ("chains and num_chains", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), method="pcd", num_chains=5,
                         chains=torch.zeros(5, 4, dtype=F64))),
    ("bad data_values", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), data_values="soft")),
    ("callback not callable", ValidationError,
     lambda r: train_rbm(r, torch.zeros(4, 4, dtype=F64), callback=3)),
    ("not an RBM", ValidationError, lambda r: train_rbm(torch.nn.Linear(2, 2),
                                                        torch.zeros(4, 4, dtype=F64))),
    ("generator not a Generator", ValidationError,
     lambda r: contrastive_divergence(r, torch.zeros(2, 4, dtype=F64), generator=0)),
    ("set_gradients with missing names", ValidationError,
     lambda r: set_gradients(r, {"weight": torch.zeros(4, 3, dtype=F64)})),
    ("set_gradients with a wrong shape", ShapeError,
     lambda r: set_gradients(r, {"weight": torch.zeros(3, 4, dtype=F64),
                                 "visible_bias": torch.zeros(4, dtype=F64),
                                 "hidden_bias": torch.zeros(3, dtype=F64)})),
    ("weights not summing to 1", ValidationError,
     lambda r: likelihood_gradient(r, torch.zeros(2, 4, dtype=F64), torch.zeros(2, 4,
                                                                               dtype=F64),
                                   negative_weights=torch.ones(2, dtype=F64))),
    ("hidden values outside [0, 1]", ValidationError,
     lambda r: likelihood_gradient(r, torch.zeros(2, 4, dtype=F64), torch.zeros(2, 4,
                                                                               dtype=F64),
                                   positive_hidden=torch.full((2, 3), 2.0, dtype=F64))),
    ("non-one-hot categorical data", ValidationError,
     lambda r: contrastive_divergence(CategoricalRBM(2, 3, 2, dtype=F64),
                                      torch.ones(1, 2, 3, dtype=F64))),
]


@pytest.mark.parametrize(("what", "error", "call"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_named_errors(what, error, call):
    with pytest.raises(error):
        call(_bernoulli64())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generator_on_another_device_is_refused():
    rbm = _bernoulli64()
    with pytest.raises(DeviceMismatchError):
        contrastive_divergence(rbm, torch.zeros(2, 4, dtype=F64),
                               generator=torch.Generator("cuda"))


def test_inputs_are_not_modified():
    rbm = _bernoulli64()
    v = _data(rbm, 4, 0)
    chains = init_chains(rbm, 3, generator=make_generator(0))
    v0, c0 = v.clone(), chains.clone()
    p0 = [p.detach().clone() for p in rbm.parameters()]
    persistent_contrastive_divergence(rbm, v, chains, k=3, generator=make_generator(1))
    assert torch.equal(v, v0) and torch.equal(chains, c0)
    assert all(torch.equal(p, q) for p, q in zip(rbm.parameters(), p0, strict=True))
