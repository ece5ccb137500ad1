"""Baum-Welch, gradient training, initialisation and model selection of pgm.hmm."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from pgm.hmm import (
    BernoulliEmission,
    CategoricalEmission,
    CategoricalPrior,
    GaussianEmission,
    GaussianMixturePrior,
    GaussianPrior,
    HiddenMarkovModel,
    HMMModule,
    LogLikelihoodEmission,
    NeuralEmission,
    PoissonEmission,
    aic,
    bic,
    e_step,
    fit,
    fit_gradient,
    init_hmm,
    log_likelihood,
    n_parameters,
    posterior,
)
from probforge.errors import ValidationError
from probforge.ops import make_generator
from tests.stats import seed_for

F64 = torch.float64


def _two_regimes(gen, T=300, n=4):
    hmm = HiddenMarkovModel.from_probs(
        torch.tensor([0.6, 0.4], dtype=F64),
        torch.tensor([[0.95, 0.05], [0.1, 0.9]], dtype=F64),
        GaussianEmission(torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=F64),
                         torch.tensor([[0.5, 1.0], [1.0, 0.3]], dtype=F64), "diag"),
    )
    return hmm, hmm.sample(T, n_sequences=n, generator=gen)


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_fit_recovers_gaussian_regimes_and_is_monotone(ct):
    gen = make_generator(seed_for(20))
    truth, draw = _two_regimes(gen)
    lengths = torch.tensor([300, 250, 200, 300])
    start = init_hmm("gaussian", draw.observations, 2, lengths=lengths,
                     generator=make_generator(seed_for(21)), covariance_type=ct)
    res = fit(start, draw.observations, lengths=lengths, n_iter=50, tol=1e-6)
    hist = res.monitor.history
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(hist))
    means = res.model.emission.means
    order = means[:, 0].argsort()
    torch.testing.assert_close(means[order], truth.emission.means, atol=0.25, rtol=0)
    trans = res.model.transition_probs[order][:, order]
    torch.testing.assert_close(trans, truth.transition_probs, atol=0.05, rtol=0)


def test_map_em_objective_never_decreases():
    gen = make_generator(seed_for(22))
    _, draw = _two_regimes(gen, T=100, n=2)
    start = init_hmm("gaussian", draw.observations, 3, generator=make_generator(seed_for(23)),
                     covariance_type="full")
    prior = GaussianPrior(means_prior=0.5, means_weight=2.0, covars_prior=0.5, covars_weight=6)
    res = fit(start, draw.observations, n_iter=30, tol=0.0, initial_prior=2.0,
              transition_prior=torch.full((3, 3), 1.5, dtype=F64), emission_prior=prior)
    hist = res.monitor.history
    assert len(hist) == 31
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(hist))
    # categorical with a Dirichlet prior
    cat = HiddenMarkovModel.from_probs(
        torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=F64),
        CategoricalEmission(torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]], dtype=F64).log()))
    x = cat.sample(200, n_sequences=3, generator=gen).observations
    res = fit(cat, x, n_iter=20, tol=0.0, emission_prior=CategoricalPrior(3.0),
              transition_prior=2.0)
    h = res.monitor.history
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(h))


@pytest.mark.parametrize(
    "family,kw",
    [("poisson", {}), ("bernoulli", {}), ("gmm", {"n_mix": 2}),
     ("categorical", {"n_symbols": 3})],
)
def test_other_families_fit_monotone_and_reproducible(family, kw):
    gen = make_generator(seed_for(24))
    if family == "poisson":
        truth = HiddenMarkovModel.from_probs(
            torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
            PoissonEmission(torch.tensor([[1.0, 5.0], [6.0, 0.5]], dtype=F64)))
    elif family == "bernoulli":
        truth = HiddenMarkovModel.from_probs(
            torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
            BernoulliEmission(torch.tensor([[0.9, 0.1, 0.5], [0.1, 0.8, 0.5]], dtype=F64)))
    elif family == "gmm":
        truth, _ = _two_regimes(gen)
    else:
        truth = HiddenMarkovModel.from_probs(
            torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
            CategoricalEmission(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], dtype=F64).log()))
    x = truth.sample(200, n_sequences=3, generator=gen).observations
    a = init_hmm(family, x, 2, generator=make_generator(seed_for(25)), **kw)
    b = init_hmm(family, x, 2, generator=make_generator(seed_for(25)), **kw)
    for name in ("log_initial", "log_transition"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    res = fit(a, x, n_iter=15, tol=0.0)
    h = res.monitor.history
    assert all(q >= p - 1e-9 * abs(p) for p, q in itertools.pairwise(h))
    assert h[-1] > h[0]


def test_clamped_states_semi_supervised():
    gen = make_generator(seed_for(26))
    truth, draw = _two_regimes(gen, T=200, n=2)
    x, y = draw.observations, draw.states
    start = init_hmm("gaussian", x, 2, generator=make_generator(seed_for(27)))
    # every state known: one EM step is the supervised maximum-likelihood estimate
    new = fit(start, x, clamp=y, n_iter=1, emission_prior=GaussianPrior(covars_prior=0.0)).model
    for k in range(2):
        torch.testing.assert_close(new.emission.means[k], x[y == k].mean(0))
        torch.testing.assert_close(new.emission.covars[k], x[y == k].var(0, unbiased=False))
    counts = torch.zeros(2, 2, dtype=F64)
    counts.index_put_((y[:, :-1].reshape(-1), y[:, 1:].reshape(-1)),
                      torch.ones(2 * 199, dtype=F64), accumulate=True)
    torch.testing.assert_close(new.transition_probs, counts / counts.sum(-1, keepdim=True))
    # some states known: the posterior honours them exactly
    clamp = torch.full((2, 200), -1)
    clamp[:, ::10] = y[:, ::10]
    res = fit(start, x, clamp=clamp, n_iter=40)
    p = posterior(res.model, x, clamp=clamp).state_probs
    assert torch.equal(p[:, ::10], torch.nn.functional.one_hot(y[:, ::10], 2).to(F64))
    torch.testing.assert_close(res.model.emission.means, truth.emission.means, atol=0.3, rtol=0)


def test_loglikelihood_emission_updates_only_the_chain():
    gen = make_generator(seed_for(28))
    truth, draw = _two_regimes(gen, T=100, n=2)
    ll = truth.emission.log_prob(draw.observations)
    user = truth.replace(emission=LogLikelihoodEmission(2))
    torch.testing.assert_close(log_likelihood(user, ll), log_likelihood(truth, draw.observations))
    res = fit(user, ll, n_iter=5)
    assert isinstance(res.model.emission, LogLikelihoodEmission)
    s1 = e_step(truth, draw.observations)
    s2 = e_step(user, ll)
    torch.testing.assert_close(s1.transitions, s2.transitions)


def test_gradient_training_and_module_equivalence():
    gen = make_generator(seed_for(29))
    truth, draw = _two_regimes(gen, T=150, n=3)
    x = draw.observations
    m = HMMModule.from_model(truth)
    torch.testing.assert_close(m(x), log_likelihood(truth, x))
    # gradient of log p(x) wrt transition logits: expected counts - A * row totals
    m.zero_grad()
    m(x).sum().backward()
    stats = e_step(truth, x)
    want = stats.transitions - truth.transition_probs * stats.transitions.sum(-1, keepdim=True)
    torch.testing.assert_close(m.transition_logits.grad, want, rtol=1e-8, atol=1e-8)
    torch.manual_seed(seed_for(30))
    start = init_hmm("gaussian", x, 2, generator=make_generator(seed_for(31)))
    mod = HMMModule.from_model(start)
    losses = fit_gradient(mod, x, n_steps=30, lr=0.05)
    assert losses[-1] < losses[0]
    learned = mod.to_model()
    with torch.no_grad():
        assert float(log_likelihood(learned, x).sum()) > float(log_likelihood(start, x).sum())


def test_neural_emission_by_gradient():
    gen = make_generator(seed_for(32))
    _truth, draw = _two_regimes(gen, T=100, n=2)
    torch.manual_seed(seed_for(33))

    class Net(nn.Module):
        event_dim = 1

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2).double()
            self.log_norm = nn.Parameter(torch.zeros(2, dtype=F64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # a Gaussian with learned mean map: -|x - mu_k|^2 / 2 - log(2 pi)
            mu = self.lin.weight
            return -0.5 * ((x[..., None, :] - mu) ** 2).sum(-1) - math.log(2 * math.pi)

    mod = HMMModule(2, Net()).double()
    losses = fit_gradient(mod, draw.observations, n_steps=30, lr=0.1)
    assert losses[-1] < losses[0]
    model = mod.to_model()
    assert isinstance(model.emission, NeuralEmission)
    with pytest.raises(ValidationError, match="gradient"):
        fit(model, draw.observations, n_iter=2)


def test_model_selection_prefers_the_true_number_of_states():
    gen = make_generator(seed_for(34))
    _, draw = _two_regimes(gen, T=200, n=3)
    x = draw.observations
    scores = {}
    for k in (1, 2, 3):
        start = init_hmm("gaussian", x, k, generator=make_generator(seed_for(35)))
        model = fit(start, x, n_iter=40).model
        ll = float(log_likelihood(model, x).sum())
        p = n_parameters(model)
        assert aic(model, x) == pytest.approx(-2 * ll + 2 * p)
        assert bic(model, x) == pytest.approx(-2 * ll + p * math.log(600))
        scores[k] = bic(model, x)
    assert min(scores, key=scores.get) == 2


def test_gmm_prior_and_errors():
    gen = make_generator(seed_for(36))
    _truth, draw = _two_regimes(gen, T=100, n=2)
    start = init_hmm("gmm", draw.observations, 2, generator=make_generator(seed_for(37)),
                     n_mix=2, covariance_type="full")
    res = fit(start, draw.observations, n_iter=10, tol=0.0,
              emission_prior=GaussianMixturePrior(weights_prior=2.0, min_covar=1e-3))
    h = res.monitor.history
    assert all(q >= p - 1e-9 * abs(p) for p, q in itertools.pairwise(h))
    with pytest.raises(ValidationError, match="emission"):
        init_hmm("nonsense", draw.observations, 2)
    with pytest.raises(ValidationError, match="update"):
        fit(start, draw.observations, update="sx")
