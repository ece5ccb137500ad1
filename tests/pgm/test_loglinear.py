"""Log-linear (maxent) models: exact log Z and expectations, moment matching, softmax regression.

Oracles: brute-force enumeration of the joint, central finite differences, and scikit-learn's
multinomial LogisticRegression for the conditional maxent classifier (11.23).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pgm.loglinear import LogLinearModel, MaxEntClassifier, fit_loglinear
from probforge.errors import NonFiniteError, ShapeError, UnknownVariableError, ValidationError

CARDS = {"a": 2, "b": 3, "c": 2}


def small_model(seed: int = 0, random_tables: bool = True) -> LogLinearModel:
    """Unary and pairwise features on a loop a - b - c - a (tables of random values)."""
    g = torch.Generator().manual_seed(seed)
    feats = []
    for scope in [("a",), ("b",), ("a", "b"), ("b", "c"), ("a", "c")]:
        shape = tuple(CARDS[v] for v in scope)
        table = torch.randn(shape, generator=g, dtype=torch.float64) if random_tables else \
            torch.ones(shape, dtype=torch.float64)
        feats.append((scope, table))
    return LogLinearModel(CARDS, feats, torch.randn(len(feats), generator=g,
                                                    dtype=torch.float64))


def all_configs() -> torch.Tensor:
    return torch.tensor(list(itertools.product(*(range(c) for c in CARDS.values()))))


def brute(model: LogLinearModel, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log Z and E_p[f] by enumerating every configuration."""
    f = model.feature_values(all_configs())  # (12, K)
    scores = f @ weights
    log_z = torch.logsumexp(scores, 0)
    return log_z, (scores - log_z).exp() @ f


def sample(model: LogLinearModel, n: int, seed: int) -> torch.Tensor:
    x = all_configs()
    p = model.log_prob(x).exp()
    idx = torch.multinomial(p, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    return x[idx]


def test_log_partition_and_expectations_equal_enumeration() -> None:
    model = small_model()
    log_z, expected = brute(model, model.weights)
    assert abs(float(model.log_partition() - log_z)) < 1e-12
    torch.testing.assert_close(model.expected_features(), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(model.log_prob(all_configs()).exp().sum(),
                               torch.tensor(1.0, dtype=torch.float64), atol=1e-12, rtol=0)


def test_gradient_equals_finite_differences() -> None:
    model = small_model(1)
    data = sample(model, 200, seed=0)
    w = torch.randn(model.num_features, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    for l2 in (0.0, 0.3):
        grad = model.gradient(data, w, l2)
        eps = 1e-6
        fd = torch.stack([
            (model.log_likelihood(data, w + eps * e, l2) - model.log_likelihood(data, w - eps * e,
                                                                                l2)) / (2 * eps)
            for e in torch.eye(model.num_features, dtype=torch.float64)])
        torch.testing.assert_close(grad, fd, atol=1e-8, rtol=0)


@pytest.mark.parametrize("method", ["lbfgs", "gradient"])
def test_mle_matches_moments(method: str) -> None:
    truth = small_model(2)
    data = sample(truth, 400, seed=1)
    start = truth.with_weights(torch.zeros(truth.num_features, dtype=torch.float64))
    fit = fit_loglinear(start, data, method=method, max_iter=3000, lr=2.0, tol=1e-7)
    assert fit.converged and fit.grad_norm < 1e-7
    # moment matching (11.37): empirical == model feature expectations at the MLE
    torch.testing.assert_close(fit.model.expected_features(), start.empirical_features(data),
                               atol=1e-6, rtol=0)
    assert torch.equal(start.weights, torch.zeros(truth.num_features, dtype=torch.float64))
    # the fitted model is at least as likely as the truth on its own data
    assert float(fit.model.log_likelihood(data)) >= float(truth.log_likelihood(data)) - 1e-9


def test_indicator_features_give_empirical_frequencies() -> None:
    m = LogLinearModel({"a": 2, "b": 2}, [(("a", "b"), torch.eye(4, dtype=torch.float64)[i]
                                           .reshape(2, 2)) for i in range(4)])
    data = torch.tensor([[0, 0], [0, 1], [0, 1], [1, 0], [1, 1], [1, 1], [1, 1], [1, 1]])
    fit = fit_loglinear(m, data)
    p = fit.model.log_prob(torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])).exp()
    torch.testing.assert_close(p, torch.tensor([1, 2, 1, 4], dtype=torch.float64) / 8,
                               atol=1e-7, rtol=0)


def test_l2_fit_is_stationary() -> None:
    truth = small_model(4)
    data = sample(truth, 100, seed=2)
    fit = fit_loglinear(truth, data, l2=0.5)
    w = fit.model.weights
    resid = truth.empirical_features(data) - fit.model.expected_features() - 0.5 * w
    assert fit.converged and float(resid.abs().max()) < 1e-7


def test_model_errors() -> None:
    t = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(UnknownVariableError):
        LogLinearModel(CARDS, [(("a", "z"), t)])
    with pytest.raises(ShapeError):
        LogLinearModel(CARDS, [(("b", "a"), t)])
    with pytest.raises(NonFiniteError):
        LogLinearModel(CARDS, [(("a", "b"), torch.full((2, 3), float("nan")))])
    with pytest.raises(ShapeError):
        LogLinearModel(CARDS, [(("a", "b"), t)], weights=torch.zeros(3))
    with pytest.raises(ValidationError):
        fit_loglinear(small_model(), all_configs(), method="newton")
    with pytest.raises(ValidationError):
        fit_loglinear(small_model(), all_configs(), l2=-1.0)


# --- conditional maxent = softmax regression (11.23) ----------------------------------------------
def classification_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice([1, 4, 7], size=300)
    x = rng.normal(size=(300, 4)) + np.eye(3, 4)[(y - 1) // 3] * 1.2
    return x, y


@pytest.mark.parametrize("c", [1.0, 1e4])
def test_maxent_matches_sklearn_logistic_regression(c: float) -> None:
    lm = pytest.importorskip("sklearn.linear_model")
    x, y = classification_data(0)
    xt = np.random.default_rng(9).normal(size=(80, 4)) * 1.5
    sk = lm.LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
    me = MaxEntClassifier(l2=1.0 / (c * len(y))).fit(torch.as_tensor(x), torch.as_tensor(y))
    xt_t = torch.as_tensor(xt)
    np.testing.assert_allclose(me.predict_proba(xt_t).numpy(), sk.predict_proba(xt), atol=1e-6,
                               rtol=0)
    np.testing.assert_array_equal(me.predict(xt_t).numpy(), sk.predict(xt))
    np.testing.assert_array_equal(me.classes_.numpy(), sk.classes_)


def test_maxent_scores_are_theta_dot_joint_features() -> None:
    x, y = classification_data(1)
    xt = torch.as_tensor(x)
    clf = MaxEntClassifier(l2=1e-3).fit(xt, torch.as_tensor(y))
    assert clf.converged_
    theta = torch.cat([clf.coef_, clf.intercept_[:, None]], 1).reshape(-1)
    # Z(x) sums exp(theta^T f(x, y')) over y' with the same f (erratum 3)
    scores = torch.stack([clf.joint_features(xt[:10], torch.full((10,), int(c))) @ theta
                          for c in clf.classes_], 1)
    torch.testing.assert_close(scores, clf.decision_function(xt[:10]))
    torch.testing.assert_close(clf.predict_log_proba(xt[:10]),
                               scores - torch.logsumexp(scores, 1, keepdim=True))


def test_maxent_errors() -> None:
    with pytest.raises(ValidationError):
        MaxEntClassifier(l2=-1.0)
    with pytest.raises(ValidationError):
        MaxEntClassifier().fit(torch.zeros(3, 2), torch.tensor([1, 1, 1]))
    with pytest.raises(ValidationError):
        MaxEntClassifier().predict(torch.zeros(3, 2))
