"""Naive Bayes (textbook 11.13) against scikit-learn and against exact inference on its network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgm.inference.elimination import VariableElimination
from pgm.naive_bayes import CategoricalNaiveBayes, GaussianNaiveBayes
from probforge.errors import (
    NormalisationError,
    ShapeError,
    UnknownStateError,
    ValidationError,
    ZeroProbabilityEvidence,
)

sk_nb = pytest.importorskip("sklearn.naive_bayes")


def categorical_data(seed: int, n: int = 300, m: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice([2, 5, 9], size=n)  # non-contiguous labels
    cols = [(rng.integers(0, 4, n) + (y // 3) * (j % 2)) % (3 + j % 3) for j in range(m)]
    return np.stack(cols, 1), y


def gaussian_data(seed: int, n: int = 300, m: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(size=(n, m)) * (1 + y[:, None]) + 0.8 * y[:, None], y


@pytest.mark.parametrize(("alpha", "fit_prior", "prior"), [
    (1.0, True, None), (0.5, True, None), (0.01, False, None), (2.0, True, [0.2, 0.3, 0.5]),
])
def test_categorical_matches_sklearn(alpha: float, fit_prior: bool,
                                     prior: list[float] | None) -> None:
    x, y = categorical_data(0)
    xt = np.random.default_rng(1).integers(0, 3, (60, x.shape[1]))
    sk = sk_nb.CategoricalNB(alpha=alpha, fit_prior=fit_prior, class_prior=prior).fit(x, y)
    me = CategoricalNaiveBayes(alpha, fit_prior=fit_prior, class_prior=prior).fit(
        torch.as_tensor(x), torch.as_tensor(y))
    xt_t = torch.as_tensor(xt)
    np.testing.assert_allclose(me.predict_proba(xt_t).numpy(), sk.predict_proba(xt), atol=1e-8,
                               rtol=0)
    np.testing.assert_allclose(me.predict_log_proba(xt_t).numpy(), sk.predict_log_proba(xt),
                               atol=1e-8, rtol=0)
    np.testing.assert_array_equal(me.predict(xt_t).numpy(), sk.predict(xt))
    np.testing.assert_array_equal(me.classes_.numpy(), sk.classes_)
    for mine, theirs in zip(me.feature_log_prob_, sk.feature_log_prob_, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs, atol=1e-12, rtol=0)


def test_categorical_min_categories_matches_sklearn() -> None:
    x, y = categorical_data(2)
    mins = [6, 3, 7, 3, 5]
    sk = sk_nb.CategoricalNB(min_categories=mins).fit(x, y)
    me = CategoricalNaiveBayes(n_categories=mins).fit(torch.as_tensor(x), torch.as_tensor(y))
    xt = np.array([[5, 0, 6, 1, 4], [0, 2, 1, 0, 0]])
    np.testing.assert_allclose(me.predict_proba(torch.as_tensor(xt)).numpy(),
                               sk.predict_proba(xt), atol=1e-8, rtol=0)
    assert me.n_categories_.tolist() == list(sk.n_categories_)


@pytest.mark.parametrize(("var_smoothing", "prior"), [(1e-9, None), (1e-2, None),
                                                      (1e-9, [0.5, 0.25, 0.25])])
def test_gaussian_matches_sklearn(var_smoothing: float, prior: list[float] | None) -> None:
    x, y = gaussian_data(0)
    xt = np.random.default_rng(3).normal(size=(80, x.shape[1])) * 2 + 1
    sk = sk_nb.GaussianNB(var_smoothing=var_smoothing, priors=prior).fit(x, y)
    me = GaussianNaiveBayes(var_smoothing=var_smoothing, class_prior=prior).fit(
        torch.as_tensor(x), torch.as_tensor(y))
    xt_t = torch.as_tensor(xt)
    np.testing.assert_allclose(me.predict_proba(xt_t).numpy(), sk.predict_proba(xt), atol=1e-8,
                               rtol=0)
    np.testing.assert_allclose(me.predict_log_proba(xt_t).numpy(), sk.predict_log_proba(xt),
                               atol=1e-8, rtol=0)
    np.testing.assert_array_equal(me.predict(xt_t).numpy(), sk.predict(xt))
    np.testing.assert_allclose(me.theta_.numpy(), sk.theta_, atol=1e-12, rtol=0)
    np.testing.assert_allclose(me.var_.numpy(), sk.var_, atol=1e-12, rtol=0)


def test_bayesian_network_posterior_equals_predict_proba() -> None:
    x, y = categorical_data(4, n=200, m=4)
    nb = CategoricalNaiveBayes(alpha=0.7).fit(torch.as_tensor(x), torch.as_tensor(y))
    bn = nb.to_bayesian_network(class_name="label", feature_names=["f0", "f1", "f2", "f3"])
    assert bn.parents == {"label": (), "f0": ("label",), "f1": ("label",), "f2": ("label",),
                          "f3": ("label",)}
    assert bn.states["label"] == ("2", "5", "9")
    xt = torch.as_tensor(np.random.default_rng(5).integers(0, 3, (25, 4)))
    evidence = {f"f{j}": xt[:, j] for j in range(4)}
    post = VariableElimination(bn).query(["label"], evidence)
    torch.testing.assert_close(post.probs(), nb.predict_proba(xt), atol=1e-10, rtol=0)
    # the joint log-probability of (y, x) is the classifier's joint log-likelihood
    full = torch.cat([torch.full((25, 1), 1), xt], 1)  # class index 1 = label 5
    torch.testing.assert_close(bn.log_prob(full), nb.joint_log_likelihood(xt)[:, 1],
                               atol=1e-10, rtol=0)


def test_inputs_are_not_mutated_and_dtype_follows() -> None:
    x, y = categorical_data(6, n=50)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    xc, yc = xt.clone(), yt.clone()
    nb = CategoricalNaiveBayes(dtype=torch.float32).fit(xt, yt)
    nb.predict_proba(xt)
    assert torch.equal(xt, xc) and torch.equal(yt, yc)
    assert nb.predict_proba(xt).dtype == torch.float32
    xg, yg = gaussian_data(7, n=50)
    g32 = GaussianNaiveBayes().fit(torch.as_tensor(xg, dtype=torch.float32), torch.as_tensor(yg))
    assert g32.predict_proba(torch.as_tensor(xg, dtype=torch.float32)).dtype == torch.float32


def test_errors() -> None:
    x = torch.tensor([[0, 1], [1, 0], [1, 1]])
    y = torch.tensor([0, 1, 1])
    with pytest.raises(ValidationError):
        CategoricalNaiveBayes(alpha=-1.0)
    with pytest.raises(ValidationError):
        CategoricalNaiveBayes().predict(x)  # not fitted
    with pytest.raises(ValidationError):
        CategoricalNaiveBayes().fit(x, torch.tensor([0.0, 1.0, 1.0]))  # float labels
    with pytest.raises(ShapeError):
        CategoricalNaiveBayes().fit(x, torch.tensor([0, 1]))
    nb = CategoricalNaiveBayes().fit(x, y)
    with pytest.raises(UnknownStateError):
        nb.predict(torch.tensor([[0, 2]]))  # category 2 of feature 1 never seen
    with pytest.raises(ShapeError):
        nb.predict(torch.tensor([[0, 1, 0]]))
    with pytest.raises(NormalisationError):
        CategoricalNaiveBayes(class_prior=[0.5, 0.6]).fit(x, y)
    mle = CategoricalNaiveBayes(alpha=0.0).fit(x, y)
    with pytest.raises(ZeroProbabilityEvidence):  # (0, 0) impossible under both classes
        mle.predict_proba(torch.tensor([[0, 0]]))
    xg = torch.tensor([[1.0], [1.0], [2.0], [2.0]], dtype=torch.float64)
    with pytest.raises(ValidationError):  # constant within each class, no smoothing
        GaussianNaiveBayes(var_smoothing=0.0).fit(xg, torch.tensor([0, 0, 1, 1]))
    assert GaussianNaiveBayes().fit(xg, torch.tensor([0, 0, 1, 1])).predict(xg).tolist() == \
        [0, 0, 1, 1]
