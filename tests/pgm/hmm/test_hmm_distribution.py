"""HMMDistribution (Pyro-compatible) and the emission families' densities and samplers."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, MultivariateNormal, Normal, Poisson

from pgm.hmm import (
    BernoulliEmission,
    CategoricalEmission,
    GaussianEmission,
    GaussianMixtureEmission,
    HiddenMarkovModel,
    HMMDistribution,
    PoissonEmission,
    log_likelihood,
)
from probforge.ops import make_generator
from tests.stats import seed_for, z_test_mean

F64 = torch.float64


def test_distribution_log_prob_equals_hmm_log_likelihood():
    gen = make_generator(seed_for(40))
    init = torch.randn(3, generator=gen, dtype=F64)
    trans = torch.randn(3, 3, generator=gen, dtype=F64)
    mu = torch.randn(3, generator=gen, dtype=F64)
    d = HMMDistribution(init, trans, Normal(mu, 1.0), duration=6)
    hmm = HiddenMarkovModel(torch.log_softmax(init, -1), torch.log_softmax(trans, -1),
                            GaussianEmission(mu[:, None], torch.ones(3, 1, dtype=F64)))
    x = torch.randn(4, 6, generator=gen, dtype=F64)
    torch.testing.assert_close(d.log_prob(x), log_likelihood(hmm, x[..., None]))
    assert d.event_shape == (6,) and d.batch_shape == ()
    # batched parameters (e.g. sampler chains) broadcast against the data
    mus = torch.randn(5, 1, 3, generator=gen, dtype=F64)
    db = HMMDistribution(init, trans, Normal(mus, 1.0))
    assert db.batch_shape == (5, 1)
    assert db.log_prob(x).shape == (5, 4)
    hmm0 = HiddenMarkovModel(torch.log_softmax(init, -1), torch.log_softmax(trans, -1),
                             GaussianEmission(mus[2, 0, :, None], torch.ones(3, 1, dtype=F64)))
    torch.testing.assert_close(db.log_prob(x)[2], log_likelihood(hmm0, x[..., None]))
    s = d.sample((7,), generator=gen)
    assert s.shape == (7, 6)
    e = db.expand((5, 2))
    assert e.batch_shape == (5, 2)
    # categorical observations
    dc = HMMDistribution(init, trans, Categorical(logits=torch.randn(3, 4, dtype=F64)),
                         duration=5)
    assert dc.sample((2,)).shape == (2, 5)
    assert dc.log_prob(torch.tensor([0, 1, 2, 3, 0])).shape == ()


def test_distribution_in_pyro_model_with_samplers():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as dist

    from samplers import from_pyro_model

    y = torch.tensor([0.1, -0.3, 3.2, 2.9, 3.1, 0.2], dtype=F64)
    trans = torch.log(torch.tensor([[0.8, 0.2], [0.2, 0.8]], dtype=F64))

    def model(data):
        mu = pyro.sample("mu", dist.Normal(torch.zeros(2, dtype=F64), 5.0).to_event(1))
        obs = Normal(mu[..., None, :], 1.0)  # batch (..., 1, K): one component per state
        pyro.sample("y", HMMDistribution(torch.zeros(2, dtype=F64), trans, obs,
                                         duration=len(data)), obs=data)

    logp, _space = from_pyro_model(model, y)
    pos = torch.tensor([[0.0, 3.0], [1.0, -1.0]], dtype=F64)
    got = logp(pos)
    for i in range(2):
        mu = pos[i]
        hmm = HiddenMarkovModel(torch.log(torch.full((2,), 0.5, dtype=F64)), trans,
                                GaussianEmission(mu[:, None], torch.ones(2, 1, dtype=F64)))
        want = log_likelihood(hmm, y[:, None]) + Normal(0.0, 5.0).log_prob(mu).sum()
        torch.testing.assert_close(got[i], want.to(got.dtype))


def test_emission_densities_match_torch_distributions():
    gen = make_generator(seed_for(41))
    K, D = 3, 2
    x = torch.randn(5, 4, D, generator=gen, dtype=F64)
    means = torch.randn(K, D, generator=gen, dtype=F64)
    A = torch.randn(K, D, D, generator=gen, dtype=F64)
    cov = A @ A.mT + torch.eye(D, dtype=F64)
    got = GaussianEmission(means, cov, "full").log_prob(x)
    want = MultivariateNormal(means, cov).log_prob(x[..., None, :])
    torch.testing.assert_close(got, want)
    got = GaussianEmission(means, cov[0], "tied").log_prob(x)
    torch.testing.assert_close(got, MultivariateNormal(means, cov[0]).log_prob(x[..., None, :]))
    var = torch.rand(K, generator=gen, dtype=F64) + 0.5
    got = GaussianEmission(means, var, "spherical").log_prob(x)
    want = Normal(means, var.sqrt()[:, None]).log_prob(x[..., None, :]).sum(-1)
    torch.testing.assert_close(got, want)
    rates = torch.rand(K, D, generator=gen, dtype=F64) * 4 + 0.1
    counts = torch.poisson(torch.full((5, 4, D), 2.0, dtype=F64), generator=gen)
    torch.testing.assert_close(PoissonEmission(rates).log_prob(counts),
                               Poisson(rates).log_prob(counts[..., None, :]).sum(-1))
    p = torch.tensor([[0.2, 1.0], [0.0, 0.5], [0.7, 0.3]], dtype=F64)
    bits = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=F64)
    lp = BernoulliEmission(p).log_prob(bits)
    assert lp[0, 0] == pytest.approx(math.log(0.2)) and lp[2, 0] == -math.inf
    assert lp[1, 1] == pytest.approx(math.log(0.5))  # log(1 - 0) + log(0.5)
    w = torch.softmax(torch.randn(K, 2, generator=gen, dtype=F64), -1)
    mm = torch.randn(K, 2, D, generator=gen, dtype=F64)
    vv = torch.rand(K, 2, D, generator=gen, dtype=F64) + 0.5
    got = GaussianMixtureEmission(w.log(), mm, vv, "diag").log_prob(x)
    comp = Normal(mm, vv.sqrt()).log_prob(x[..., None, None, :]).sum(-1) + w.log()
    torch.testing.assert_close(got, torch.logsumexp(comp, -1))


def test_emission_samples_have_the_right_moments():
    gen = make_generator(seed_for(42))
    means = torch.tensor([[0.0, 5.0], [-3.0, 1.0]], dtype=F64)
    cov = torch.tensor([[[1.0, 0.5], [0.5, 2.0]], [[0.3, 0.0], [0.0, 0.3]]], dtype=F64)
    em = GaussianEmission(means, cov, "full")
    states = torch.ones(20_000, dtype=torch.long)
    s = em.sample(states, generator=gen)
    c = PoissonEmission(torch.tensor([[2.0, 7.0]], dtype=F64)).sample(
        torch.zeros(20_000, dtype=torch.long), generator=gen)
    # four z-tests of means; false-failure rate 1e-4 in all (2.5e-5 each)
    for d in range(2):
        z_test_mean(float(s[:, d].mean()), float(means[1, d]),
                    math.sqrt(float(cov[1, d, d]) / 20_000), alpha=2.5e-5)
        rate = (2.0, 7.0)[d]
        z_test_mean(float(c[:, d].mean()), rate, math.sqrt(rate / 20_000), alpha=2.5e-5)
    a = em.sample(states[:5], generator=make_generator(1))
    b = em.sample(states[:5], generator=make_generator(1))
    assert torch.equal(a, b)
    cat = CategoricalEmission(torch.tensor([[0.2, 0.8]], dtype=F64).log())
    assert cat.sample(torch.zeros(3, dtype=torch.long), generator=gen).dtype == torch.long


def test_distribution_sample_follows_the_generator_and_leaves_global_rng():
    init = torch.zeros(2, dtype=F64)
    trans = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=F64)
    d = HMMDistribution(init, trans, Normal(torch.tensor([-3.0, 3.0], dtype=F64), 1.0),
                        duration=8)
    before = torch.get_rng_state()
    a = d.sample((4,), generator=make_generator(5))
    assert torch.equal(torch.get_rng_state(), before)
    b = d.sample((4,), generator=make_generator(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, d.sample((4,), generator=make_generator(6)))
