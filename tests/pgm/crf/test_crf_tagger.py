"""The feature-based CRFTagger: optimality conditions, accuracy on synthetic data, persistence,
L1 sparsity, Adam, constraints, and sklearn-crfsuite as a peer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pgm.crf import CRFTagger, bio_constraints
from probforge.errors import CheckpointError, ShapeError, ValidationError
from probforge.ops.random import make_generator

TAGS = ["DET", "NOUN", "VERB", "ADJ", "ADV"]


def synthetic(n: int, seed: int) -> tuple[list[list[dict[str, object]]], list[list[str]],
                                           list[list[str]]]:
    """Sentences from a small HMM with ambiguous words; features = word and neighbours."""
    g = make_generator(seed)
    trans = torch.tensor([[0.0, 0.7, 0.0, 0.3, 0.0],
                          [0.1, 0.1, 0.6, 0.0, 0.2],
                          [0.5, 0.1, 0.0, 0.2, 0.2],
                          [0.0, 0.9, 0.0, 0.1, 0.0],
                          [0.4, 0.0, 0.3, 0.3, 0.0]])
    vocab = {0: ["the", "a", "this"], 1: ["dog", "run", "cat", "fast"],
             2: ["run", "runs", "eats", "cat"], 3: ["big", "fast", "red"],
             4: ["fast", "quickly", "well"]}
    X, y, words = [], [], []
    for _ in range(n):
        length = int(torch.randint(3, 9, (1,), generator=g))
        t = 0
        tags, ws = [], []
        for _ in range(length):
            tags.append(TAGS[t])
            ws.append(vocab[t][int(torch.randint(len(vocab[t]), (1,), generator=g))])
            t = int(torch.multinomial(trans[t], 1, generator=g))
        feats = [{"bias": 1.0, "w": w, "prev": ws[i - 1] if i else "<s>",
                  "next": ws[i + 1] if i + 1 < len(ws) else "</s>"} for i, w in enumerate(ws)]
        X.append(feats)
        y.append(tags)
        words.append(ws)
    return X, y, words


@pytest.fixture(scope="module")
def data() -> tuple[list[list[dict[str, object]]], list[list[str]],
                    list[list[dict[str, object]]], list[list[str]]]:
    X, y, _ = synthetic(300, 0)
    Xt, yt, _ = synthetic(100, 1)
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def fitted(data: tuple) -> CRFTagger:  # type: ignore[type-arg]
    X, y, _, _ = data
    return CRFTagger(c2=0.5, max_iterations=300, tol=1e-9).fit(X, y)


def test_fits_synthetic_data(fitted: CRFTagger, data: tuple) -> None:  # type: ignore[type-arg]
    _, _, Xt, yt = data
    assert fitted.classes_ == sorted(TAGS)
    assert fitted.score(Xt, yt) > 0.9
    info = fitted.fit_info_
    assert info is not None and info.algorithm == "lbfgs" and info.converged
    assert all(b <= a + 1e-9 for a, b in zip(info.history, info.history[1:], strict=False))


def test_optimum_matches_moments(fitted: CRFTagger, data: tuple) -> None:  # type: ignore[type-arg]
    # At the optimum of sum -log p + c2 ||W||^2: empirical - expected feature counts = 2 c2 W
    # for every (feature, tag) (the gradient (11.37) plus the L2 term is zero).
    X, y, _, _ = data
    enc = fitted.encoder_
    assert enc is not None and fitted.weights_ is not None
    col = {t: i for i, t in enumerate(fitted.classes_)}
    marg = fitted.predict_marginals(X)
    emp = torch.zeros_like(fitted.weights_, dtype=torch.float64)
    exp = torch.zeros_like(emp)
    for sent, tags, m in zip(X, y, marg, strict=True):
        for tok, tag, dist in zip(sent, tags, m, strict=True):
            p = torch.tensor([dist[t] for t in fitted.classes_], dtype=torch.float64)
            for name, w in [(f"{k}:{v}" if isinstance(v, str) else k, 1.0 if isinstance(v, str)
                             else float(v)) for k, v in tok.items()]:
                f = enc.vocabulary[name]
                emp[f, col[tag]] += w
                exp[f] += w * p
    grad = emp - exp - 2 * fitted.c2 * fitted.weights_.double()
    assert float(grad.abs().max()) < 1e-3 * float(emp.abs().max())


def test_marginals_are_distributions(fitted: CRFTagger, data: tuple) -> None:  # type: ignore[type-arg]
    _, _, Xt, _ = data
    marg = fitted.predict_marginals(Xt[:20])
    pred = fitted.predict(Xt[:20])
    agree = total = 0
    for m, p, x in zip(marg, pred, Xt[:20], strict=True):
        assert len(m) == len(p) == len(x)
        for dist, tag in zip(m, p, strict=True):
            assert sum(dist.values()) == pytest.approx(1.0, abs=1e-9)
            agree += max(dist, key=dist.__getitem__) == tag
            total += 1
    assert agree / total > 0.9  # max-marginal and Viterbi tags mostly agree


def test_save_load_round_trip(fitted: CRFTagger, data: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, _, Xt, _ = data
    path = tmp_path / "tagger.pt"
    fitted.save(path)
    assert os.listdir(tmp_path) == ["tagger.pt"]  # no temp file left behind
    back = CRFTagger.load(path)
    assert back.predict(Xt) == fitted.predict(Xt)
    assert back.classes_ == fitted.classes_
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        CRFTagger.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a CRFTagger"):
        CRFTagger.load(tmp_path / "other.pt")


def test_hashing_and_unseen_features(data: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    X, y, Xt, yt = data
    tagger = CRFTagger(hash_buckets=512, c2=0.5, max_iterations=100).fit(X, y)
    assert tagger.num_features == 512
    assert tagger.score(Xt, yt) > 0.85
    tagger.save(tmp_path / "h.pt")
    assert CRFTagger.load(tmp_path / "h.pt").predict(Xt[:5]) == tagger.predict(Xt[:5])
    # features never seen in training are ignored by the vocabulary tagger
    fitted = CRFTagger(max_iterations=20).fit(X[:50], y[:50])
    assert len(fitted.predict([[{"w": "zebra", "other": "x"}]])[0]) == 1


def test_l1_gives_sparse_weights(data: tuple) -> None:  # type: ignore[type-arg]
    X, y, Xt, yt = data
    dense = CRFTagger(c1=0.0, c2=0.5, max_iterations=100).fit(X, y)
    sparse = CRFTagger(c1=2.0, c2=0.0, max_iterations=200).fit(X, y)
    assert sparse.sparsity() > 0.5 > dense.sparsity()
    assert sparse.score(Xt, yt) > 0.85
    info = sparse.fit_info_
    assert info is not None
    assert all(b <= a + 1e-9 for a, b in zip(info.history, info.history[1:], strict=False))


def test_adam_minibatches(data: tuple) -> None:  # type: ignore[type-arg]
    X, y, Xt, yt = data
    state = torch.get_rng_state()
    tagger = CRFTagger(algorithm="adam", epochs=8, lr=0.1, batch_size=16, c2=0.5,
                       dtype=torch.float32, seed=3).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert tagger.score(Xt, yt) > 0.88
    again = CRFTagger(algorithm="adam", epochs=8, lr=0.1, batch_size=16, c2=0.5,
                      dtype=torch.float32, seed=3).fit(X, y)
    assert again.weights_ is not None and tagger.weights_ is not None
    assert torch.equal(again.weights_, tagger.weights_)  # same seed, same result
    info = tagger.fit_info_
    assert info is not None and info.history[-1] < info.history[0]


def test_constraints_callable() -> None:
    X = [[{"w": "john"}, {"w": "smith"}, {"w": "ran"}], [{"w": "mary"}, {"w": "ran"}]]
    y = [["B-PER", "I-PER", "O"], ["B-PER", "O"]]
    tagger = CRFTagger(constraints=bio_constraints, max_iterations=50).fit(X, y)
    assert tagger.crf_ is not None and tagger.crf_.allowed_transitions is not None
    pred = tagger.predict([[{"w": "smith"}], [{"w": "ran"}, {"w": "smith"}]])
    assert pred[0] != ["I-PER"] and pred[1][1] != "I-PER"


def test_empty_sentences_and_errors(data: tuple) -> None:  # type: ignore[type-arg]
    X, y, _, _ = data
    tagger = CRFTagger(max_iterations=5).fit([*X[:20], []], [*y[:20], []])
    assert tagger.predict([[], X[0]])[0] == []
    with pytest.raises(ShapeError, match="one tag sequence per sentence"):
        CRFTagger().fit(X[:3], y[:2])
    with pytest.raises(ShapeError, match=r"y\[0\]"):
        CRFTagger().fit(X[:1], [y[0][:-1]])
    with pytest.raises(ValidationError, match="not fitted"):
        CRFTagger().predict(X[:1])
    with pytest.raises(ValidationError, match="algorithm"):
        CRFTagger(algorithm="sgd")


def test_against_sklearn_crfsuite(data: tuple) -> None:  # type: ignore[type-arg]
    sklearn_crfsuite = pytest.importorskip("sklearn_crfsuite")
    X, y, Xt, yt = data
    ref = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.0, c2=0.5, max_iterations=300,
                               all_possible_transitions=True)
    ref.fit(X, y)
    ours = CRFTagger(c2=0.5, max_iterations=300).fit(X, y)
    pred_ref = ref.predict(Xt)
    pred = ours.predict(Xt)
    flat = [(a, b) for s, r in zip(pred, pred_ref, strict=True) for a, b in zip(s, r, strict=True)]
    assert sum(a == b for a, b in flat) / len(flat) > 0.97  # nearly the same model
    acc_ref = sum(a == b for s, r in zip(pred_ref, yt, strict=True)
                  for a, b in zip(s, r, strict=True)) / len(flat)
    assert ours.score(Xt, yt) > acc_ref - 0.02
