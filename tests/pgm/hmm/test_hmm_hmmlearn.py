"""pgm.hmm against hmmlearn on the same parameters and data (float64, 1e-6 relative).

Several sequences go to hmmlearn concatenated with ``lengths`` and to pgm.hmm as a padded batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgm.hmm import (
    CategoricalEmission,
    CategoricalPrior,
    GaussianEmission,
    GaussianMixtureEmission,
    GaussianPrior,
    HiddenMarkovModel,
    PoissonEmission,
    baum_welch_step,
    log_likelihood,
    n_parameters,
    posterior,
    viterbi,
)

hl = pytest.importorskip("hmmlearn.hmm")

RTOL = 1e-6
LENGTHS = [7, 12, 5]


def _close(a, b, rtol=RTOL, atol=1e-9):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=rtol, atol=atol)


def _pad(X: np.ndarray, lengths: list[int]) -> torch.Tensor:
    T = max(lengths)
    out = torch.zeros(len(lengths), T, *X.shape[1:], dtype=torch.as_tensor(X).dtype)
    s = 0
    for i, n in enumerate(lengths):
        out[i, :n] = torch.as_tensor(X[s : s + n])
        s += n
    return out


def _unpad(x: torch.Tensor, lengths: list[int]) -> np.ndarray:
    return np.concatenate([x[i, :n].numpy() for i, n in enumerate(lengths)])


def _chain(rng: np.random.Generator, K: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K)


def _compare_inference(ref, ours: HiddenMarkovModel, X: np.ndarray, x: torch.Tensor) -> None:
    L = torch.tensor(LENGTHS)
    # hmmlearn's score() is the total over sequences
    _close(ref.score(X, LENGTHS), float(log_likelihood(ours, x, lengths=L).sum()))
    for i, n in enumerate(LENGTHS):
        s = sum(LENGTHS[:i])
        _close(ref.score(X[s : s + n]), float(log_likelihood(ours, x[i, :n])))
    _, post = ref.score_samples(X, LENGTHS)
    p = posterior(ours, x, lengths=L)
    _close(post, _unpad(p.state_probs, LENGTHS), atol=1e-10)
    logprob, path = ref.decode(X, LENGTHS, algorithm="viterbi")
    v = viterbi(ours, x, lengths=L)
    assert np.array_equal(path, _unpad(v.states, LENGTHS))
    _close(logprob, float(v.log_prob.sum()))
    for method in ("sequential", "parallel"):
        _close(ref.score(X, LENGTHS),
               float(log_likelihood(ours, x, lengths=L, method=method).sum()))


def test_categorical_matches_hmmlearn():
    rng = np.random.default_rng(0)
    K, M = 3, 4
    start, trans = _chain(rng, K)
    emis = rng.dirichlet(np.ones(M), size=K)
    X = rng.integers(0, M, size=(sum(LENGTHS), 1))
    ref = hl.CategoricalHMM(K, init_params="", params="ste", n_iter=1, implementation="log",
                            startprob_prior=1.5 + rng.random(K),
                            transmat_prior=1.2 + rng.random((K, K)),
                            emissionprob_prior=1.3)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = start, trans, emis
    ref.n_features = M
    ours = HiddenMarkovModel.from_probs(torch.tensor(start), torch.tensor(trans),
                                        CategoricalEmission(torch.tensor(emis).log()))
    x = _pad(X[:, 0], LENGTHS).long()
    _compare_inference(ref, ours, X, x)
    new, _ = baum_welch_step(ours, x, lengths=torch.tensor(LENGTHS),
                             initial_prior=torch.tensor(ref.startprob_prior),
                             transition_prior=torch.tensor(ref.transmat_prior),
                             emission_prior=CategoricalPrior(1.3))
    ref.fit(X, LENGTHS)
    _close(ref.startprob_, new.initial_probs)
    _close(ref.transmat_, new.transition_probs)
    _close(ref.emissionprob_, new.emission.log_probs.exp())
    assert n_parameters(ours) == sum(ref._get_n_fit_scalars_per_param().values())


def _gauss_params(rng, K, D, ct):
    means = rng.normal(size=(K, D)) * 2
    if ct == "diag":
        cov = rng.uniform(0.5, 2.0, size=(K, D))
    elif ct == "spherical":
        cov = rng.uniform(0.5, 2.0, size=K)
    else:
        A = rng.normal(size=(K, D, D))
        cov = A @ A.transpose(0, 2, 1) + np.eye(D)
        if ct == "tied":
            cov = cov[0]
    return means, cov


@pytest.mark.parametrize("ct", ["diag", "spherical", "full", "tied"])
@pytest.mark.parametrize("with_prior", [False, True])
def test_gaussian_matches_hmmlearn(ct, with_prior):
    rng = np.random.default_rng(1)
    K, D = 3, 2
    start, trans = _chain(rng, K)
    means, cov = _gauss_params(rng, K, D, ct)
    X = rng.normal(size=(sum(LENGTHS), D)) * 2
    kw = {}
    prior = GaussianPrior()  # hmmlearn's defaults: covars_prior 0.01, covars_weight 1
    if ct in ("full", "tied"):
        kw["covars_prior"] = 1e-2 * np.eye(D)  # ours: scalar means scalar * I
    if with_prior:
        mp, mw = rng.normal(size=(K, D)), rng.uniform(0.5, 2.0, size=K)
        if ct in ("full", "tied"):  # hmmlearn supports only a scalar means_weight there
            mw = np.full(K, 1.3)
        cw = 4.0 + D
        cp = 0.3 if ct in ("diag", "spherical") else 0.3 * np.eye(D)
        hw = mw[:, None] if ct in ("diag", "spherical") else 1.3
        kw.update(means_prior=mp, means_weight=hw, covars_prior=cp, covars_weight=cw)
        prior = GaussianPrior(means_prior=torch.tensor(mp), means_weight=torch.tensor(mw),
                              covars_prior=0.3, covars_weight=cw)
    ref = hl.GaussianHMM(K, covariance_type=ct, init_params="", params="stmc", n_iter=1,
                         implementation="log", **kw)
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = start, trans, means, cov
    ours = HiddenMarkovModel.from_probs(
        torch.tensor(start), torch.tensor(trans),
        GaussianEmission(torch.tensor(means), torch.tensor(cov), ct))
    x = _pad(X, LENGTHS)
    _compare_inference(ref, ours, X, x)
    new, _ = baum_welch_step(ours, x, lengths=torch.tensor(LENGTHS), emission_prior=prior)
    ref.fit(X, LENGTHS)
    _close(ref.startprob_, new.initial_probs)
    _close(ref.transmat_, new.transition_probs)
    _close(ref.means_, new.emission.means)
    want = ref._covars_[:, 0] if ct == "spherical" else ref._covars_
    _close(want, new.emission.covars)
    assert n_parameters(ours) == sum(ref._get_n_fit_scalars_per_param().values())


@pytest.mark.parametrize("ct", ["diag", "full", "tied", "spherical"])
def test_gmm_matches_hmmlearn(ct):
    rng = np.random.default_rng(2)
    K, M, D = 2, 2, 2
    start, trans = _chain(rng, K)
    weights = rng.dirichlet(np.ones(M), size=K)
    means = rng.normal(size=(K, M, D)) * 2
    if ct == "diag":
        cov = rng.uniform(0.5, 2.0, size=(K, M, D))
    elif ct == "spherical":
        cov = rng.uniform(0.5, 2.0, size=(K, M))
    else:
        A = rng.normal(size=(K, M, D, D))
        cov = A @ np.swapaxes(A, -1, -2) + np.eye(D)
        if ct == "tied":
            cov = cov[:, 0]
    X = rng.normal(size=(sum(LENGTHS), D)) * 2
    kw = {}
    if ct == "spherical":  # hmmlearn's default spherical prior is not maximum likelihood
        kw["covars_prior"] = -(D + 2) / 2
    ref = hl.GMMHMM(K, n_mix=M, covariance_type=ct, init_params="", params="stmcw", n_iter=1,
                    implementation="log", **kw)
    ref.startprob_, ref.transmat_ = start, trans
    ref.weights_, ref.means_, ref.covars_ = weights, means, cov
    ours = HiddenMarkovModel.from_probs(
        torch.tensor(start), torch.tensor(trans),
        GaussianMixtureEmission(torch.tensor(weights).log(), torch.tensor(means),
                                torch.tensor(cov), ct))
    x = _pad(X, LENGTHS)
    _compare_inference(ref, ours, X, x)
    new, _ = baum_welch_step(ours, x, lengths=torch.tensor(LENGTHS))
    post = posterior(ours, x, lengths=torch.tensor(LENGTHS))
    ref.fit(X, LENGTHS)
    _close(ref.startprob_, new.initial_probs)
    _close(ref.transmat_, new.transition_probs)
    _close(ref.weights_, new.emission.log_weights.exp())
    _close(ref.means_, new.emission.means)
    # hmmlearn centres the covariance statistics at the previous means; exact EM at the new
    # ones: the two differ by the outer product of the mean shift (per component).
    gamma = torch.as_tensor(_unpad(post.state_probs, LENGTHS))
    comp = ours.emission._component_log_prob(torch.as_tensor(X))
    resp = (torch.softmax(comp, -1) * gamma[..., None]).sum(0).numpy()  # (K, M)
    delta = ref.means_ - means
    if ct == "full":
        want = ref.covars_ - delta[..., :, None] * delta[..., None, :]
    elif ct == "diag":
        want = ref.covars_ - delta**2
    elif ct == "spherical":
        want = ref.covars_ - (delta**2).mean(-1)
    else:
        outer = delta[..., :, None] * delta[..., None, :]
        want = ref.covars_ - (resp[..., None, None] * outer).sum(1) / resp.sum(1)[:, None, None]
    _close(want, new.emission.covars)
    counts = ref._get_n_fit_scalars_per_param()
    # hmmlearn counts n_mix - 1 free mixture weights in all; there are n_components * (n_mix - 1)
    counts["w"] = K * (M - 1)
    assert n_parameters(ours) == sum(counts.values())


def test_poisson_matches_hmmlearn():
    rng = np.random.default_rng(3)
    K, D = 3, 2
    start, trans = _chain(rng, K)
    rates = rng.uniform(0.5, 6.0, size=(K, D))
    X = rng.poisson(3.0, size=(sum(LENGTHS), D))
    ref = hl.PoissonHMM(K, init_params="", params="stl", n_iter=1, implementation="log")
    ref.startprob_, ref.transmat_, ref.lambdas_ = start, trans, rates
    ours = HiddenMarkovModel.from_probs(torch.tensor(start), torch.tensor(trans),
                                        PoissonEmission(torch.tensor(rates)))
    x = _pad(X, LENGTHS).double()
    _compare_inference(ref, ours, X, x)
    new, _ = baum_welch_step(ours, x, lengths=torch.tensor(LENGTHS))
    ref.fit(X, LENGTHS)
    _close(ref.startprob_, new.initial_probs)
    _close(ref.transmat_, new.transition_probs)
    _close(ref.lambdas_, new.emission.rates)
    assert n_parameters(ours) == sum(ref._get_n_fit_scalars_per_param().values())
