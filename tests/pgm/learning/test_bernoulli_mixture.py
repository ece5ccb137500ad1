"""Tests for Bernoulli-mixture EM (Exercise 11-6): the derived updates against a loop
reference, monotonicity, recovery, MAP smoothing, the ELBO identity and error handling."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from pgm.learning import (
    BernoulliMixture,
    BernoulliMixtureFitResult,
    bernoulli_mixture_elbo,
    fit_bernoulli_mixture,
)
from probforge.errors import (
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.random import make_generator

F64 = torch.float64


def _truth() -> BernoulliMixture:
    """K=3, D=12 in three blocks of four: each component is "on" (0.8) in its own block and
    "off" (0.15) elsewhere, except one coin-flip coordinate, so every pair of components
    differs by 0.65 in at least 7 coordinates."""
    hi, lo = 0.8, 0.15
    rows = [
        [hi] * 4 + [lo] * 4 + [0.5] + [lo] * 3,
        [lo] * 4 + [hi] * 4 + [lo] * 4,
        [lo] * 4 + [lo] * 4 + [hi] * 4,
    ]
    return BernoulliMixture(torch.tensor([0.25, 0.35, 0.4], dtype=F64),
                            torch.tensor(rows, dtype=F64))


@pytest.fixture(scope="module")
def data() -> Tensor:
    x, _ = _truth().sample(1500, generator=make_generator(0))
    return x


def _assert_monotone(history: list[float], rtol: float = 1e-9) -> None:
    for t, (a, b) in enumerate(itertools.pairwise(history)):
        slack = rtol * max(abs(a), abs(b), 1.0)
        assert b >= a - slack, f"decrease at iteration {t + 1}: {a} -> {b}"


def _reference_em_step(
    x: Tensor, w: Tensor, mu: Tensor, prior: tuple[float, float] = (1.0, 1.0)
) -> tuple[Tensor, Tensor]:
    """One EM step written with explicit loops, straight from the derivation in the module."""
    xs, ws, mus = x.tolist(), w.tolist(), mu.tolist()
    n, d, k = len(xs), len(xs[0]), len(ws)
    gamma = []
    for i in range(n):
        p = [ws[j] * math.prod(mus[j][c] if xs[i][c] == 1 else 1.0 - mus[j][c] for c in range(d))
             for j in range(k)]
        gamma.append([pj / sum(p) for pj in p])
    a, b = prior
    new_w, new_mu = [], []
    for j in range(k):
        nk = sum(gamma[i][j] for i in range(n))
        new_w.append(nk / n)
        new_mu.append([
            (sum(gamma[i][j] * xs[i][c] for i in range(n)) + a - 1) / (nk + a + b - 2)
            for c in range(d)
        ])
    return torch.tensor(new_w, dtype=F64), torch.tensor(new_mu, dtype=F64)


@pytest.mark.parametrize("prior", [None, (2.0, 3.0)])
def test_one_step_matches_loop_reference(prior: tuple[float, float] | None) -> None:
    g = make_generator(3)
    x = (torch.rand(30, 4, generator=g, dtype=F64) < 0.4).to(F64)
    start = BernoulliMixture(torch.tensor([0.3, 0.7], dtype=F64),
                             torch.tensor([[0.2, 0.6, 0.5, 0.3], [0.7, 0.4, 0.1, 0.8]], dtype=F64))
    res = fit_bernoulli_mixture(x, 2, init=start, max_iter=1, tol=0.0, beta_prior=prior)
    ref_w, ref_mu = _reference_em_step(x, start.weights, start.probs, prior or (1.0, 1.0))
    torch.testing.assert_close(res.model.weights, ref_w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res.model.probs, ref_mu, rtol=1e-12, atol=1e-14)
    assert res.n_iter == 1 and len(res.history) == 2


@pytest.mark.parametrize("prior", [None, (1.5, 1.5)])
@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_history_non_decreasing(data: Tensor, init: str, prior: tuple[float, float] | None) -> None:
    res = fit_bernoulli_mixture(data, 3, init=init, beta_prior=prior, tol=1e-10, max_iter=300,  # type: ignore[arg-type]
                                generator=make_generator(4))
    assert isinstance(res, BernoulliMixtureFitResult)
    _assert_monotone(res.history)
    if prior is None:
        assert res.log_likelihood == pytest.approx(float(res.model.log_prob(data).sum()),
                                                   rel=1e-12)


def test_recovers_parameters() -> None:
    """K=3, D=12, N=3000; tolerance 6 oracle SE: sqrt(mu(1-mu)/N_k) for mu and
    sqrt(pi(1-pi)/N) for pi (the SE with known labels). Over 100 development seeds the z-scores
    in these units had standard deviation <= 1.22 (EM's extra variance from uncertain
    assignments), so 6 oracle SE is >= 4.9 real SE: ~1e-6 false-failure per parameter, ~4e-5
    for all 39. About 1% of single k-means starts stop at a local optimum that merges two
    components; n_init=3 makes that ~1e-6."""
    truth = _truth()
    n = 3000
    x, _ = truth.sample(n, generator=make_generator(31))
    res = fit_bernoulli_mixture(x, 3, tol=1e-8, max_iter=500, n_init=3,
                                generator=make_generator(32))
    m = res.model
    # Match components by their most similar true component (distinct patterns make this safe).
    order = torch.cdist(truth.probs, m.probs).argmin(-1)
    assert sorted(order.tolist()) == [0, 1, 2]
    w_hat, mu_hat = m.weights[order], m.probs[order]
    w, mu = truth.weights, truth.probs
    se_w = (w * (1 - w) / n).sqrt()
    se_mu = (mu * (1 - mu) / (w * n).unsqueeze(-1)).sqrt()
    assert ((w_hat - w).abs() <= 6 * se_w).all()
    assert ((mu_hat - mu).abs() <= 6 * se_mu).all()


def test_map_prior_keeps_probs_inside_unit_interval() -> None:
    g = make_generator(5)
    x = (torch.rand(200, 6, generator=g, dtype=F64) < 0.5).to(F64)
    x[:, 0] = 0.0  # a column that is never on
    x[:, 1] = 1.0  # and one that is always on
    ml = fit_bernoulli_mixture(x, 2, generator=make_generator(6))
    assert (ml.model.probs[:, 0] == 0).all() and (ml.model.probs[:, 1] == 1).all()
    a, b = 2.0, 2.0
    mapped = fit_bernoulli_mixture(x, 2, beta_prior=(a, b), generator=make_generator(6))
    p = mapped.model.probs
    assert ((p > 0) & (p < 1)).all()
    # With N_k points all 0 in column 0: mu = (0 + a - 1) / (N_k + a + b - 2).
    nk = mapped.model.weights * 200
    torch.testing.assert_close(p[:, 0], (a - 1) / (nk + a + b - 2), rtol=1e-6, atol=0.0)


def test_log_p_equals_elbo_plus_kl(data: Tensor) -> None:
    m = fit_bernoulli_mixture(data, 3, max_iter=2, generator=make_generator(7)).model
    log_q = torch.log_softmax(2 * torch.randn(len(data), 3, generator=make_generator(8),
                                              dtype=F64), -1)
    log_post = m.log_responsibilities(data)
    kl = (log_q.exp() * (log_q - log_post)).sum(-1)
    elbo = bernoulli_mixture_elbo(m, data, log_q)
    torch.testing.assert_close(elbo + kl, m.log_prob(data), rtol=1e-12, atol=1e-10)
    assert (kl > 0).all()
    torch.testing.assert_close(bernoulli_mixture_elbo(m, data, log_post), m.log_prob(data))


def test_log_prob_brute_force_and_boundaries() -> None:
    m = BernoulliMixture(torch.tensor([0.4, 0.6], dtype=F64),
                         torch.tensor([[0.9, 0.0], [0.2, 1.0]], dtype=F64))
    x = torch.tensor([[1, 0], [0, 1], [1, 1]])
    expected = torch.tensor([0.4 * 0.9 * 1.0, 0.6 * 0.8 * 1.0, 0.6 * 0.2 * 1.0], dtype=F64)
    torch.testing.assert_close(m.log_prob(x), expected.log())
    lr = m.log_responsibilities(x)
    assert lr[0, 1] == -math.inf and lr[1, 0] == -math.inf  # mu in {0,1}: exact zeros, no NaN
    assert not torch.isnan(lr).any()
    with pytest.raises(ZeroProbabilityEvidence, match="row 0"):
        BernoulliMixture(torch.tensor([1.0], dtype=F64),
                         torch.tensor([[0.0, 0.5]], dtype=F64)).log_responsibilities(x)


def test_float32_close_to_float64(data: Tensor) -> None:
    """Same start in both dtypes (probabilities and weights lie in [0, 1], so absolute
    tolerances).

    * 10 EM steps (far from convergence, so both run all 10): within 1e-5; float32 rounding is
      ~1e-7 per operation and EM contracts towards its fixed point (measured ~1e-6).
    * Converged (tol=1e-10 per point; float32 stops once rounding swamps the improvement): the
      objective is flat at the optimum, so float32 pins the parameters only to about
      sqrt(eps_32) ~ 3.5e-4; within 2e-3 (measured 1.5e-4), log-likelihood within 1e-5 relative.
    """
    start = fit_bernoulli_mixture(data, 3, init="random", max_iter=0,
                                  generator=make_generator(9)).model
    start32 = BernoulliMixture(start.weights.float(), start.probs.float())
    x32 = data.float()
    r64 = fit_bernoulli_mixture(data, 3, init=start, max_iter=10, tol=0.0)
    r32 = fit_bernoulli_mixture(x32, 3, init=start32, max_iter=10, tol=0.0)
    assert r32.model.dtype == torch.float32
    assert r32.n_iter == r64.n_iter == 10
    for a, b in ((r32.model.probs, r64.model.probs), (r32.model.weights, r64.model.weights)):
        torch.testing.assert_close(a.double(), b, rtol=0.0, atol=1e-5)
    c64 = fit_bernoulli_mixture(data, 3, init=start, max_iter=500, tol=1e-10)
    c32 = fit_bernoulli_mixture(x32, 3, init=start32, max_iter=500, tol=1e-10)
    assert c64.converged and c32.converged
    for a, b in ((c32.model.probs, c64.model.probs), (c32.model.weights, c64.model.weights)):
        torch.testing.assert_close(a.double(), b, rtol=0.0, atol=2e-3)
    assert float(c32.model.log_prob(x32).mean()) == pytest.approx(
        float(c64.model.log_prob(data).mean()), rel=1e-5
    )
    _assert_monotone(c32.history, rtol=1e3 * torch.finfo(torch.float32).eps)


def test_reproducible_and_global_rng_untouched(data: Tensor) -> None:
    state = torch.get_rng_state()
    a = fit_bernoulli_mixture(data, 3, n_init=2, generator=make_generator(10))
    b = fit_bernoulli_mixture(data, 3, n_init=2, generator=make_generator(10))
    c = fit_bernoulli_mixture(data, 3, init="random", generator=make_generator(10))
    a.model.sample(5, generator=make_generator(1))
    assert torch.equal(state, torch.get_rng_state())
    assert a.history == b.history and torch.equal(a.model.probs, b.model.probs)
    assert c.n_iter >= 1


def test_bool_and_integer_input(data: Tensor) -> None:
    before = data.clone()
    start = fit_bernoulli_mixture(data, 3, init="random", max_iter=0,
                                  generator=make_generator(2)).model
    r_f = fit_bernoulli_mixture(data, 3, init=start, max_iter=5)
    r_b = fit_bernoulli_mixture(data.bool(), 3, init=start, max_iter=5)
    r_i = fit_bernoulli_mixture(data.long(), 3, init=start, max_iter=5)
    assert torch.equal(data, before)
    assert r_f.history == r_b.history == r_i.history
    assert r_b.model.dtype == F64
    torch.testing.assert_close(r_f.model.log_prob(data.bool()), r_f.model.log_prob(data))


def test_sample_and_information_criteria() -> None:
    """Column means of 20000 draws within 5 SE (SE <= 0.5 / sqrt(n)); ~6e-7 per column."""
    m = _truth()
    n = 20000
    x, z = m.sample(n, generator=make_generator(12))
    assert x.shape == (n, 12) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert z.dtype == torch.long
    marginal = (m.weights.unsqueeze(-1) * m.probs).sum(0)
    se = (marginal * (1 - marginal) / n).sqrt()
    assert ((x.mean(0) - marginal).abs() <= 5 * se).all()
    ll = float(m.log_prob(x).sum())
    assert m.n_parameters == 2 + 36
    assert m.bic(x) == pytest.approx(-2 * ll + 38 * math.log(n))
    assert m.aic(x) == pytest.approx(-2 * ll + 76)


def test_errors_name_parameter_and_value(data: Tensor) -> None:
    x = data.clone()
    x[3, 2] = 2.0
    with pytest.raises(ValidationError, match=r"x: must be binary.*\(3, 2\).*found 2\.0"):
        fit_bernoulli_mixture(x, 2)
    x[3, 2] = math.nan
    with pytest.raises(NonFiniteError, match=r"x: .*\(3, 2\)"):
        fit_bernoulli_mixture(x, 2)
    with pytest.raises(ValidationError, match=r"n_components.*found 11"):
        fit_bernoulli_mixture(data[:10], 11)
    with pytest.raises(ValidationError, match=r"beta_prior.*0\.5"):
        fit_bernoulli_mixture(data, 2, beta_prior=(0.5, 2.0))
    with pytest.raises(ValidationError, match=r"init.*'em'"):
        fit_bernoulli_mixture(data, 2, init="em")  # type: ignore[arg-type]
    w = torch.tensor([0.5, 0.5], dtype=F64)
    with pytest.raises(NormalisationError, match=r"weights.*sum 1\.1"):
        BernoulliMixture(torch.tensor([0.5, 0.6], dtype=F64), torch.full((2, 3), 0.5, dtype=F64))
    with pytest.raises(ValidationError, match=r"probs.*\[0, 1\].*\(1, 2\).*1\.5"):
        BernoulliMixture(w, torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 1.5]], dtype=F64))
    with pytest.raises(ShapeError, match="probs"):
        BernoulliMixture(w, torch.full((3, 3), 0.5, dtype=F64))
    m = BernoulliMixture(w, torch.full((2, 3), 0.5, dtype=F64))
    with pytest.raises(ShapeError, match=r"x.*\(N, 3\)"):
        m.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValidationError, match="binary"):
        m.log_prob(torch.full((4, 3), 0.5))
