"""Accuracy goals on UD English EWT (UPOS): feature CRF >= 93.5% (sklearn-crfsuite side by side)
and BiLSTM-CRF >= 94%. Minutes of CPU each: marked slow; skipped without the treebank."""

from __future__ import annotations

import pytest
import torch

from pgm.crf import CRFTagger, accuracy, read_conllu, sent2features, ud_ewt_paths
from probforge.errors import DataNotFoundError


def _ewt() -> dict[str, list]:  # type: ignore[type-arg]
    try:
        paths = ud_ewt_paths()
    except DataNotFoundError:
        pytest.skip("UD English EWT not installed")
    return {k: read_conllu(p) for k, p in paths.items()}


@pytest.mark.slow
def test_feature_crf_reaches_goal() -> None:
    data = _ewt()
    x = [sent2features(s.words) for s in data["train"]]
    y = [list(s.tags) for s in data["train"]]
    xt = [sent2features(s.words) for s in data["test"]]
    yt = [list(s.tags) for s in data["test"]]
    tagger = CRFTagger(c2=0.1, max_iterations=100, dtype=torch.float32).fit(x, y)
    ours = accuracy(yt, tagger.predict(xt))
    assert ours >= 0.935
    sklearn_crfsuite = pytest.importorskip("sklearn_crfsuite")
    ref = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.0, c2=0.1, max_iterations=100,
                               all_possible_transitions=True).fit(x, y)
    peer = accuracy(yt, ref.predict(xt))
    print(f"UD EWT UPOS test accuracy: probforge {ours:.4f}, sklearn-crfsuite {peer:.4f}")
    assert ours >= peer - 0.005  # on a par with the peer on the same features


@pytest.mark.slow
def test_bilstm_crf_reaches_goal() -> None:
    from pgm.crf.bilstm import BiLSTMCRF, TokenVocab, train_bilstm_crf
    from probforge.ops.random import make_generator

    data = _ewt()
    words = [list(s.words) for s in data["train"]]
    labels = sorted({t for s in data["train"] for t in s.tags})
    model = BiLSTMCRF(TokenVocab.build(words), labels, generator=make_generator(0))
    train_bilstm_crf(model, words, [list(s.tags) for s in data["train"]],
                     dev=([list(s.words) for s in data["dev"]],
                          [list(s.tags) for s in data["dev"]]),
                     epochs=6, generator=make_generator(1))
    acc = accuracy([list(s.tags) for s in data["test"]],
                   model.predict([list(s.words) for s in data["test"]]))
    print(f"UD EWT UPOS test accuracy: BiLSTM-CRF {acc:.4f}")
    assert acc >= 0.94
