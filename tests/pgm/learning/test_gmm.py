"""Tests for Gaussian-mixture EM: monotonicity, recovery, scikit-learn agreement, the ELBO
identity, dtypes, reproducibility and error handling."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from torch import Tensor

from pgm.learning import GaussianMixture, GMMFitResult, fit_gmm, gmm_elbo
from probforge.errors import (
    ConvergenceError,
    DtypeMismatchError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import make_generator

F64 = torch.float64
COV_TYPES = ["full", "diag", "spherical", "tied"]


def _mixture_2d() -> GaussianMixture:
    """2-D, K=3, axis-aligned components (so every covariance type is a sensible model)."""
    return GaussianMixture(
        torch.tensor([0.3, 0.3, 0.4], dtype=F64),
        torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 5.0]], dtype=F64),
        torch.tensor([[1.0, 0.36], [0.49, 1.44], [0.81, 0.81]], dtype=F64),
        "diag",
    )


@pytest.fixture(scope="module")
def data_2d() -> Tensor:
    x, _ = _mixture_2d().sample(600, generator=make_generator(0))
    return x


def _random_start(x: Tensor, k: int, ct: str, seed: int = 1) -> GaussianMixture:
    return fit_gmm(
        x, k, covariance_type=ct, init="random", max_iter=0, generator=make_generator(seed)  # type: ignore[arg-type]
    ).model


def _assert_monotone(history: list[float], rtol: float = 1e-9) -> None:
    for t, (a, b) in enumerate(itertools.pairwise(history)):
        slack = rtol * max(abs(a), abs(b), 1.0)
        assert b >= a - slack, f"decrease at iteration {t + 1}: {a} -> {b}"


def _rel(a: Tensor, b: np.ndarray) -> float:
    """Max absolute difference relative to the largest reference entry."""
    return float(np.abs(a.detach().cpu().numpy() - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------
# Monotonicity (11.45)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_history_non_decreasing(data_2d: Tensor, ct: str, init: str) -> None:
    res = fit_gmm(data_2d, 3, covariance_type=ct, init=init, max_iter=200, tol=1e-10,  # type: ignore[arg-type]
                  generator=make_generator(5))
    assert isinstance(res, GMMFitResult)
    assert len(res.history) == res.n_iter + 1
    _assert_monotone(res.history)
    assert res.log_likelihood == pytest.approx(float(res.model.log_prob(data_2d).sum()), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Parameter recovery
# ---------------------------------------------------------------------------------------------


def test_recovers_1d_two_component_mixture_algorithm_11_1() -> None:
    """Fig. 11.13's setting (1-D, K=2) with Algorithm 11.1's random initialisation.

    Tolerance: 6 "oracle" standard errors (those of the estimators with known labels:
    sqrt(pi(1-pi)/N), sigma/sqrt(N pi), sigma/sqrt(2 N pi)). Over 200 development seeds the EM
    estimates had z-scores with standard deviation <= 1.25 in these units, so 6 oracle SE is
    >= 4.8 real SE: about 1.6e-6 false-failure probability per parameter, 1e-5 for all six.
    About 4.5% of single random starts stop at the symmetric saddle (both components on the
    pooled data); n_init=4 makes that (0.045)^4 ~ 4e-6.
    """
    w = torch.tensor([0.4, 0.6], dtype=F64)
    mu = torch.tensor([-2.0, 1.5], dtype=F64)
    sd = torch.tensor([0.6, 1.0], dtype=F64)
    truth = GaussianMixture(w, mu.unsqueeze(-1), sd**2, "spherical")
    n = 4000
    x, _ = truth.sample(n, generator=make_generator(11))
    x = x.squeeze(-1)  # (N,): the textbook's one-dimensional data
    res = fit_gmm(x, 2, init="random", tol=1e-8, max_iter=500, n_init=4,
                  generator=make_generator(12))
    m = res.model
    assert m.covariances.shape == (2, 1, 1)  # sigma_k^2 (variances), per the seed's erratum
    order = m.means[:, 0].argsort()
    pi_hat, mu_hat = m.weights[order], m.means[order, 0]
    sd_hat = m.variances[order, 0].sqrt()
    se_pi = (w * (1 - w) / n).sqrt()
    se_mu = sd / (w * n).sqrt()
    se_sd = sd / (2 * w * n).sqrt()
    assert ((pi_hat - w).abs() <= 6 * se_pi).all(), (pi_hat, w)
    assert ((mu_hat - mu).abs() <= 6 * se_mu).all(), (mu_hat, mu)
    assert ((sd_hat - sd).abs() <= 6 * se_sd).all(), (sd_hat, sd)
    assert res.converged


def test_recovers_2d_three_component_mixture() -> None:
    """2-D, K=3, full covariances, k-means init, N=6000.

    Tolerance: 6 oracle SE per entry (means: sqrt(Sigma_dd / N_k); covariance entries:
    sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / N_k); weights: sqrt(pi(1-pi)/N)). The components are
    separated by >= 4 standard deviations, so responsibilities are nearly hard and the oracle SE
    is close to the real one (inflation < 1.25 as in the 1-D test): false-failure probability
    < 1e-6 per entry, ~2e-5 for all 21.
    """
    w = torch.tensor([0.25, 0.35, 0.4], dtype=F64)
    mu = torch.tensor([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]], dtype=F64)
    cov = torch.tensor(
        [[[1.0, 0.5], [0.5, 1.0]], [[0.7, -0.2], [-0.2, 0.5]], [[1.2, 0.0], [0.0, 0.6]]],
        dtype=F64,
    )
    truth = GaussianMixture(w, mu, cov, "full")
    n = 6000
    x, _ = truth.sample(n, generator=make_generator(21))
    res = fit_gmm(x, 3, tol=1e-8, max_iter=500, generator=make_generator(22))
    m = res.model
    order = m.means[:, 0].argsort()  # true x-means 0 < 1 < 5 → components 0, 2, 1
    perm = torch.tensor([0, 2, 1])
    w_t, mu_t, cov_t = w[perm], mu[perm], cov[perm]
    nk = w_t * n
    se_w = (w_t * (1 - w_t) / n).sqrt()
    var = torch.diagonal(cov_t, dim1=-2, dim2=-1)
    se_mu = (var / nk.unsqueeze(-1)).sqrt()
    se_cov = ((var.unsqueeze(-1) * var.unsqueeze(-2) + cov_t**2) / nk.reshape(-1, 1, 1)).sqrt()
    assert ((m.weights[order] - w_t).abs() <= 6 * se_w).all()
    assert ((m.means[order] - mu_t).abs() <= 6 * se_mu).all()
    assert ((m.covariances[order] - cov_t).abs() <= 6 * se_cov).all()


# ---------------------------------------------------------------------------------------------
# scikit-learn as an oracle
# ---------------------------------------------------------------------------------------------


def _sklearn_fit(x: Tensor, start: GaussianMixture, max_iter: int, reg_covar: float):  # type: ignore[no-untyped-def]
    sk_mixture = pytest.importorskip("sklearn.mixture")
    cov = start.covariances.numpy()
    ct = start.covariance_type
    precisions = np.linalg.inv(cov) if ct in ("full", "tied") else 1.0 / cov
    sk = sk_mixture.GaussianMixture(
        start.n_components, covariance_type=ct, weights_init=start.weights.numpy(),
        means_init=start.means.numpy(), precisions_init=precisions, max_iter=max_iter, tol=0.0,
        reg_covar=reg_covar, init_params="random_from_data", random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 runs exactly max_iter steps
        sk.fit(x.numpy())
    return sk


@pytest.mark.parametrize("ct", COV_TYPES)
def test_matches_sklearn_one_step_and_converged(data_2d: Tensor, ct: str) -> None:
    """Same start, same reg_covar, same number of EM steps: parameters agree to 1e-6 relative
    (measured: ~1e-14) after one step and at convergence; score and BIC/AIC agree too."""
    reg = 1e-4
    start = _random_start(data_2d, 3, ct)
    one = fit_gmm(data_2d, 3, covariance_type=ct, init=start, max_iter=1, tol=0.0,  # type: ignore[arg-type]
                  reg_covar=reg)
    conv = fit_gmm(data_2d, 3, covariance_type=ct, init=start, max_iter=1000, tol=1e-12,  # type: ignore[arg-type]
                   reg_covar=reg)
    assert one.n_iter == 1 and conv.converged
    for res, steps in ((one, 1), (conv, conv.n_iter)):
        sk = _sklearn_fit(data_2d, start, steps, reg)
        m = res.model
        assert _rel(m.weights, sk.weights_) < 1e-6
        assert _rel(m.means, sk.means_) < 1e-6
        assert _rel(m.covariances, sk.covariances_) < 1e-6
        score = float(m.log_prob(data_2d).mean())
        assert score == pytest.approx(sk.score(data_2d.numpy()), rel=1e-9)
        assert m.n_parameters == sk._n_parameters()
        assert m.bic(data_2d) == pytest.approx(sk.bic(data_2d.numpy()), rel=1e-9)
        assert m.aic(data_2d) == pytest.approx(sk.aic(data_2d.numpy()), rel=1e-9)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_log_prob_matches_torch_distributions(data_2d: Tensor, ct: str) -> None:
    m = fit_gmm(data_2d, 3, covariance_type=ct, max_iter=3, generator=make_generator(3)).model  # type: ignore[arg-type]
    comps = torch.distributions.MultivariateNormal(m.means, covariance_matrix=m.covariance_matrices)
    log_joint = comps.log_prob(data_2d.unsqueeze(1)) + m.weights.log()
    torch.testing.assert_close(m.log_joint(data_2d), log_joint, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.log_prob(data_2d), torch.logsumexp(log_joint, -1))
    lr = m.log_responsibilities(data_2d)
    torch.testing.assert_close(torch.logsumexp(lr, -1), torch.zeros(len(data_2d), dtype=F64))
    assert torch.equal(m.predict(data_2d), lr.argmax(-1))


# ---------------------------------------------------------------------------------------------
# ELBO identity (11.49)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ct", COV_TYPES)
def test_log_p_equals_elbo_plus_kl_for_arbitrary_q(data_2d: Tensor, ct: str) -> None:
    m = _random_start(data_2d, 3, ct, seed=7)
    g = make_generator(8)
    log_q = torch.log_softmax(3 * torch.randn(len(data_2d), 3, generator=g, dtype=F64), -1)
    elbo = gmm_elbo(m, data_2d, log_q)
    log_post = m.log_responsibilities(data_2d)
    kl = (log_q.exp() * (log_q - log_post)).sum(-1)
    torch.testing.assert_close(elbo + kl, m.log_prob(data_2d), rtol=1e-12, atol=1e-10)
    assert (kl > 0).all()
    # Equality at the posterior (Exercise 11-4) and 0 log 0 = 0 for a one-hot q.
    torch.testing.assert_close(gmm_elbo(m, data_2d, log_post), m.log_prob(data_2d))
    hard = torch.full((len(data_2d), 3), -math.inf, dtype=F64)
    hard[:, 0] = 0.0
    torch.testing.assert_close(gmm_elbo(m, data_2d, hard), m.log_joint(data_2d)[:, 0])


def test_elbo_rejects_unnormalised_q(data_2d: Tensor) -> None:
    m = _random_start(data_2d, 3, "full")
    with pytest.raises(NormalisationError, match="log_q"):
        gmm_elbo(m, data_2d, torch.zeros(len(data_2d), 3, dtype=F64))
    with pytest.raises(ShapeError, match="log_q"):
        gmm_elbo(m, data_2d, torch.zeros(len(data_2d), 2, dtype=F64))


# ---------------------------------------------------------------------------------------------
# dtypes, devices, reproducibility, purity
# ---------------------------------------------------------------------------------------------


def _max_rel(m32: GaussianMixture, m64: GaussianMixture) -> float:
    pairs = ((m32.weights, m64.weights), (m32.means, m64.means),
             (m32.covariances, m64.covariances))
    return max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in pairs)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_float32_close_to_float64(data_2d: Tensor, ct: str) -> None:
    """Same start in both dtypes.

    * 10 EM steps (far from convergence, so both run exactly 10): parameters within 1e-4
      relative. float32 rounding is ~1e-7 per operation; measured differences are <= 2e-5.
    * Converged (tol=1e-10 per point, so float32 stops once rounding swamps the improvement):
      the log-likelihood is flat at the optimum, so a float32 objective known to ~eps * |ll|
      pins the parameters only to ~sqrt(eps_32) ~ 3.5e-4; tolerance 2e-3 (measured <= 7e-4).
      The mean log-likelihood per point agrees to 1e-5 relative.
    """
    start = _random_start(data_2d, 3, ct)
    x32 = data_2d.float()
    start32 = GaussianMixture(start.weights.float(), start.means.float(),
                              start.covariances.float(), start.covariance_type)  # type: ignore[arg-type]
    kw = {"covariance_type": ct, "tol": 0.0, "max_iter": 10}
    r64 = fit_gmm(data_2d, 3, init=start, **kw)  # type: ignore[arg-type]
    r32 = fit_gmm(x32, 3, init=start32, **kw)  # type: ignore[arg-type]
    assert r64.n_iter == r32.n_iter == 10
    assert r32.model.dtype == torch.float32 and r32.model.covariances.dtype == torch.float32
    assert _max_rel(r32.model, r64.model) < 1e-4
    kw = {"covariance_type": ct, "tol": 1e-10, "max_iter": 500}
    c64 = fit_gmm(data_2d, 3, init=start, **kw)  # type: ignore[arg-type]
    c32 = fit_gmm(x32, 3, init=start32, **kw)  # type: ignore[arg-type]
    assert c64.converged and c32.converged
    assert _max_rel(c32.model, c64.model) < 2e-3
    ll32 = float(c32.model.log_prob(x32).mean())
    assert ll32 == pytest.approx(float(c64.model.log_prob(data_2d).mean()), rel=1e-5)
    _assert_monotone(c32.history, rtol=1e3 * torch.finfo(torch.float32).eps)


@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_same_seed_same_fit(data_2d: Tensor, init: str) -> None:
    a = fit_gmm(data_2d, 3, init=init, n_init=2, generator=make_generator(42))  # type: ignore[arg-type]
    b = fit_gmm(data_2d, 3, init=init, n_init=2, generator=make_generator(42))  # type: ignore[arg-type]
    assert a.history == b.history
    assert torch.equal(a.model.means, b.model.means)
    assert torch.equal(a.model.covariances, b.model.covariances)
    assert torch.equal(a.model.weights, b.model.weights)


@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_generator_leaves_global_rng_untouched(data_2d: Tensor, init: str) -> None:
    state = torch.get_rng_state()
    res = fit_gmm(data_2d, 3, init=init, n_init=2, max_iter=5, generator=make_generator(1))  # type: ignore[arg-type]
    res.model.sample(10, generator=make_generator(2))
    assert torch.equal(state, torch.get_rng_state())


def test_inputs_not_mutated_and_1d_input(data_2d: Tensor) -> None:
    x = data_2d[:, 0].clone()
    before = x.clone()
    start = _random_start(x.unsqueeze(-1), 2, "full")
    w0, m0, c0 = start.weights.clone(), start.means.clone(), start.covariances.clone()
    r1 = fit_gmm(x, 2, init=start, max_iter=10)
    r2 = fit_gmm(x.unsqueeze(-1), 2, init=start, max_iter=10)
    assert torch.equal(x, before)
    assert torch.equal(start.weights, w0) and torch.equal(start.means, m0)
    assert torch.equal(start.covariances, c0)
    assert r1.history == r2.history
    torch.testing.assert_close(r1.model.log_prob(x), r2.model.log_prob(x.unsqueeze(-1)))


@pytest.mark.parametrize("ct", COV_TYPES)
def test_sample_moments(ct: str) -> None:
    """Sample mean of 20000 draws within 5 SE (per coordinate SE = sqrt(Var_total / n));
    false-failure ~6e-7 per coordinate."""
    base = _mixture_2d()
    cov = {"full": base.covariance_matrices, "diag": base.covariances,
           "spherical": base.covariances.mean(-1), "tied": base.covariance_matrices[0]}[ct]
    m = GaussianMixture(base.weights, base.means, cov, ct)  # type: ignore[arg-type]
    n = 20000
    x, z = m.sample(n, generator=make_generator(9))
    assert x.shape == (n, 2) and z.shape == (n,) and z.dtype == torch.long
    mean = (m.weights.unsqueeze(-1) * m.means).sum(0)
    second = (m.weights.reshape(-1, 1) * (m.variances + m.means**2)).sum(0)
    se = ((second - mean**2) / n).sqrt()
    assert ((x.mean(0) - mean).abs() <= 5 * se).all()
    assert m.sample(0)[0].shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# Degenerate components
# ---------------------------------------------------------------------------------------------


def test_collapsed_component_needs_reg_covar() -> None:
    # Two tight clusters of repeated points: a component sitting on one point has zero scatter.
    x = torch.tensor([[0.0, 0.0]] * 5 + [[3.0, 1.0]] * 5, dtype=F64)
    res = fit_gmm(x, 2, reg_covar=1e-6, generator=make_generator(0))
    eye = torch.eye(2, dtype=F64)
    torch.testing.assert_close(res.model.covariances, 1e-6 * eye.expand(2, 2, 2))
    with pytest.raises(ConvergenceError, match="reg_covar"):
        fit_gmm(x, 2, reg_covar=0.0, generator=make_generator(0))


def test_empty_component_keeps_its_parameters(data_2d: Tensor) -> None:
    far = GaussianMixture(
        torch.tensor([0.5, 0.5 - 1e-300, 1e-300], dtype=F64),
        torch.tensor([[0.0, 0.0], [3.0, 3.0], [1e4, 1e4]], dtype=F64),
        torch.eye(2, dtype=F64).expand(3, 2, 2).clone(), "full",
    )
    res = fit_gmm(data_2d, 3, init=far, max_iter=20, tol=0.0)
    m = res.model
    assert torch.isfinite(m.means).all() and torch.isfinite(m.covariances).all()
    assert float(m.weights[2]) < 1e-200
    torch.testing.assert_close(m.means[2], far.means[2])
    torch.testing.assert_close(m.covariances[2], far.covariances[2])
    _assert_monotone(res.history)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_nan_in_x_raises_non_finite(data_2d: Tensor) -> None:
    x = data_2d.clone()
    x[7, 1] = math.nan
    with pytest.raises(NonFiniteError, match=r"x: .*index \(7, 1\).*nan"):
        fit_gmm(x, 2)


def test_too_many_components_raises(data_2d: Tensor) -> None:
    with pytest.raises(ValidationError, match=r"n_components.*N=5.*found 6"):
        fit_gmm(data_2d[:5], 6)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"covariance_type": "banana"}, r"covariance_type.*'banana'"),
        ({"init": "kmeans++"}, r"init.*'kmeans\+\+'"),
        ({"reg_covar": -1.0}, r"reg_covar.*-1\.0"),
        ({"tol": -0.1}, r"tol.*-0\.1"),
        ({"max_iter": -3}, r"max_iter.*-3"),
        ({"n_init": 0}, r"n_init.*0"),
    ],
)
def test_bad_arguments_name_parameter_and_value(
    data_2d: Tensor, kwargs: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ValidationError, match=pattern):
        fit_gmm(data_2d, 2, **kwargs)  # type: ignore[arg-type]


def test_integer_data_and_bad_init_model(data_2d: Tensor) -> None:
    with pytest.raises(ValidationError, match=r"x.*float32 or float64.*int64"):
        fit_gmm(torch.zeros(10, 2, dtype=torch.long), 2)
    start = _random_start(data_2d, 3, "diag")
    with pytest.raises(ValidationError, match=r"init.*covariance_type='full'"):
        fit_gmm(data_2d, 3, init=start)
    with pytest.raises(ValidationError, match=r"n_init.*found 2"):
        fit_gmm(data_2d, 3, covariance_type="diag", init=start, n_init=2)
    with pytest.raises(DtypeMismatchError):
        fit_gmm(data_2d.float(), 3, covariance_type="diag", init=start)


def test_model_validation_errors() -> None:
    w = torch.tensor([0.5, 0.5], dtype=F64)
    mu = torch.zeros(2, 2, dtype=F64)
    eye = torch.eye(2, dtype=F64).expand(2, 2, 2)
    with pytest.raises(NormalisationError, match=r"weights.*sum 0\.9"):
        GaussianMixture(torch.tensor([0.5, 0.4], dtype=F64), mu, eye)
    with pytest.raises(ValidationError, match=r"weights.*non-negative.*-0\.5"):
        GaussianMixture(torch.tensor([1.5, -0.5], dtype=F64), mu, eye)
    bad = eye.clone()
    bad[1] = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)
    with pytest.raises(ValidationError, match=r"component 1 must be positive definite.*-1"):
        GaussianMixture(w, mu, bad)
    asym = eye.clone()
    asym[0, 0, 1] = 0.5
    with pytest.raises(ValidationError, match="symmetric"):
        GaussianMixture(w, mu, asym)
    with pytest.raises(ValidationError, match=r"component 0.*-1"):
        GaussianMixture(w, mu, torch.tensor([-1.0, 1.0], dtype=F64), "spherical")
    with pytest.raises(ShapeError, match=r"covariances.*\(2, 2\).*'diag'"):
        GaussianMixture(w, mu, eye, "diag")
    with pytest.raises(ShapeError, match="means"):
        GaussianMixture(w, torch.zeros(3, 2, dtype=F64), eye)
    with pytest.raises(ValidationError, match="covariance_type"):
        GaussianMixture(w, mu, eye, "wrong")  # type: ignore[arg-type]
    with pytest.raises(NonFiniteError, match="means"):
        GaussianMixture(w, torch.full((2, 2), math.nan, dtype=F64), eye)
    with pytest.raises(DtypeMismatchError, match="means"):
        GaussianMixture(w, mu.float(), eye)
    m = GaussianMixture(w, mu, eye)
    with pytest.raises(DtypeMismatchError, match="x"):
        m.log_prob(torch.zeros(3, 2))
    with pytest.raises(ShapeError, match=r"x.*\(N, 2\)"):
        m.log_prob(torch.zeros(3, 3, dtype=F64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data_2d: Tensor) -> None:
    start = _random_start(data_2d, 3, "full")
    cpu = fit_gmm(data_2d, 3, init=start, max_iter=20, tol=0.0)
    dev = torch.device("cuda")
    start_d = GaussianMixture(start.weights.to(dev), start.means.to(dev),
                              start.covariances.to(dev))
    gpu = fit_gmm(data_2d.to(dev), 3, init=start_d, max_iter=20, tol=0.0)
    assert gpu.model.device.type == "cuda"
    torch.testing.assert_close(gpu.model.means.cpu(), cpu.model.means, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gpu.model.covariances.cpu(), cpu.model.covariances,
                               rtol=1e-9, atol=1e-9)
    res = fit_gmm(data_2d.to(dev), 3, generator=make_generator(0, dev), max_iter=5)
    assert res.model.device.type == "cuda"
