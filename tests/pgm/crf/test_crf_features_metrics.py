"""Word features, sparse encoding, tagging metrics (against scikit-learn) and the OWL-QN solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgm.crf.encoding import FeatureEncoder, iter_token_features
from pgm.crf.features import sent2features, word2features, word_shape
from pgm.crf.metrics import accuracy, classification_report, per_tag_scores
from pgm.crf.owlqn import minimize_owlqn
from probforge.errors import ShapeError, ValidationError

# ----------------------------------------------------------------------------------------------
# features


def test_word_features() -> None:
    sent = ["The", "U.S.", "sold", "1990s-era", "jets"]
    f = word2features(sent, 1)
    assert f["word.lower()"] == "u.s." and f["word.isupper()"] is True
    assert f["-1:word.lower()"] == "the" and f["+1:word.lower()"] == "sold"
    assert f["+2:word.lower()"] == "1990s-era" and "-2:word.lower()" not in f
    assert f["word[-3:]"] == ".s." and f["word[:2]"] == "u."
    first, last = word2features(sent, 0), word2features(sent, 4)
    assert first["BOS"] is True and "EOS" not in first and last["EOS"] is True
    assert word2features(sent, 3)["word.hashyphen"] and word2features(sent, 3)["word.hasdigit"]
    assert word_shape("1990s-era") == "0a-a"
    assert len(sent2features(sent)) == 5
    assert "+2:word.lower()" not in sent2features(sent, window=1)[0]


def test_token_feature_formats() -> None:
    tok = {"w": "a", "bias": 1.0, "up": False, "n": 0, "x": 2, "sub": {"k": "v"},
           "many": ["p", "q"]}
    assert list(iter_token_features(tok)) == [
        ("w:a", 1.0), ("bias", 1.0), ("x", 2.0), ("sub:k:v", 1.0), ("many:p", 1.0),
        ("many:q", 1.0)]
    assert list(iter_token_features(["f1", "f2"])) == [("f1", 1.0), ("f2", 1.0)]
    with pytest.raises(ValidationError, match="values must be"):
        list(iter_token_features({"w": None}))
    with pytest.raises(ValidationError, match="dict of features"):
        list(iter_token_features(3))  # type: ignore[arg-type]


def test_encoder_vocabulary_and_hashing() -> None:
    X = [[{"w": "a", "s": "x"}, {"w": "b"}], [{"w": "a"}]]
    enc = FeatureEncoder().fit(X)
    assert enc.features == ["w:a", "s:x", "w:b"]
    c = enc.encode(X)
    assert c.indices.tolist() == [0, 1, 2, 0]
    assert c.offsets.tolist() == [0, 2, 3] and c.lengths.tolist() == [2, 1]
    rare = FeatureEncoder(min_freq=2).fit(X)
    assert rare.features == ["w:a"]
    h = FeatureEncoder(hash_buckets=16).fit(X)
    c1, c2 = h.encode(X), FeatureEncoder(hash_buckets=16).encode(X)
    assert torch.equal(c1.indices, c2.indices) and int(c1.indices.max()) < 16
    assert h.num_features == 16
    with pytest.raises(ValidationError, match="list of sentences"):
        enc.encode(["not a sentence"])


# ----------------------------------------------------------------------------------------------
# metrics


def test_metrics_against_confusion_matrix() -> None:
    # an independent oracle: the confusion matrix (sklearn's definitions, zero_division=0)
    rng = np.random.default_rng(0)
    labels = ["A", "B", "C", "D"]
    y_true = [list(rng.choice(labels, size=int(n))) for n in rng.integers(1, 9, 30)]
    y_pred = [[t if rng.random() < 0.7 else str(rng.choice(labels[:3])) for t in s]
              for s in y_true]
    cm = np.zeros((4, 4))
    for st, sp in zip(y_true, y_pred, strict=True):
        for t, p in zip(st, sp, strict=True):
            cm[labels.index(t), labels.index(p)] += 1
    ours = per_tag_scores(y_true, y_pred, labels)
    for i, lab in enumerate(labels):
        prec = cm[i, i] / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = cm[i, i] / cm[i].sum()
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        assert ours[lab].precision == pytest.approx(prec)
        assert ours[lab].recall == pytest.approx(rec)
        assert ours[lab].f1 == pytest.approx(f1)
        assert ours[lab].support == cm[i].sum()
    assert per_tag_scores([["A"]], [["B"]])["A"] == (0.0, 0.0, 0.0, 1)  # never predicted
    assert accuracy(y_true, y_pred) == pytest.approx(np.trace(cm) / cm.sum())
    report = classification_report(y_true, y_pred)
    assert report.splitlines()[0].split() == ["tag", "precision", "recall", "f1", "support"]
    assert "accuracy" in report and "macro" in report


def test_metrics_errors() -> None:
    with pytest.raises(ShapeError, match="one tag sequence"):
        accuracy([["A"]], [])
    with pytest.raises(ShapeError, match=r"y_pred\[0\]"):
        accuracy([["A", "B"]], [["A"]])
    with pytest.raises(ValidationError, match="at least one token"):
        accuracy([[]], [[]])


# ----------------------------------------------------------------------------------------------
# OWL-QN


def test_owlqn_lasso_closed_form() -> None:
    # f(w) = ||w - a||^2 with L1 c1: w* = soft-threshold(a, c1 / 2), exactly sparse
    a = torch.tensor([3.0, -0.05, 1.0, -2.0, 0.09], dtype=torch.float64)

    def fg(w: torch.Tensor) -> tuple[float, torch.Tensor]:
        return float(((w - a) ** 2).sum()), 2 * (w - a)

    res = minimize_owlqn(fg, torch.zeros(5, dtype=torch.float64), c1=0.2, gtol=1e-12)
    want = torch.sign(a) * torch.clamp(a.abs() - 0.1, min=0)
    assert torch.allclose(res.x, want, atol=1e-8)
    assert res.x[1] == 0 and res.x[4] == 0
    assert res.converged


def test_lbfgs_matches_scipy_on_logistic_regression() -> None:
    so = pytest.importorskip("scipy.optimize")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5], dtype=torch.float64)
         + 0.5 * torch.randn(200, generator=g, dtype=torch.float64) > 0).double()

    def fg(w: torch.Tensor) -> tuple[float, torch.Tensor]:
        z = x @ w
        f = torch.nn.functional.softplus(z).sum() - (y * z).sum() + 0.1 * (w * w).sum()
        grad = x.T @ (torch.sigmoid(z) - y) + 0.2 * w
        return float(f), grad

    res = minimize_owlqn(fg, torch.zeros(5, dtype=torch.float64), max_iter=200, gtol=1e-10,
                         delta=0.0)
    ref = so.minimize(lambda w: fg(torch.from_numpy(w))[0], np.zeros(5),
                      jac=lambda w: fg(torch.from_numpy(w))[1].numpy(), method="L-BFGS-B",
                      options={"gtol": 1e-10, "ftol": 1e-15})
    assert np.allclose(res.x.numpy(), ref.x, atol=1e-6)
    assert all(b <= a + 1e-9 for a, b in zip(res.history, res.history[1:], strict=False))


def test_owlqn_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="c1"):
        minimize_owlqn(lambda w: (0.0, w), torch.zeros(2), c1=-1.0)
    with pytest.raises(ValidationError, match="flat"):
        minimize_owlqn(lambda w: (0.0, w), torch.zeros(2, 2))
