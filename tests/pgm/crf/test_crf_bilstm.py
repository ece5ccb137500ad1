"""BiLSTM-CRF: vocabulary, masking, training on a toy language, persistence, reproducibility."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pgm.crf.bilstm import BiLSTMCRF, TokenVocab, train_bilstm_crf
from probforge.errors import CheckpointError, ShapeError, ValidationError
from probforge.ops.random import make_generator

WORDS = [["the", "dog", "runs"], ["a", "cat", "sleeps", "well"], ["the", "big", "cat", "runs"],
         ["dogs", "sleep"], ["a", "small", "dog", "runs", "fast"]]
TAGS = [["DET", "NOUN", "VERB"], ["DET", "NOUN", "VERB", "ADV"], ["DET", "ADJ", "NOUN", "VERB"],
        ["NOUN", "VERB"], ["DET", "ADJ", "NOUN", "VERB", "ADV"]]
LABELS = ["ADJ", "ADV", "DET", "NOUN", "VERB"]


def small_model(seed: int = 0) -> BiLSTMCRF:
    return BiLSTMCRF(TokenVocab.build(WORDS, min_freq=1, affix_min_freq=1), LABELS,
                     word_dim=12, affix_dim=4, shape_dim=3, hidden=12, dropout=0.1,
                     generator=make_generator(seed))


def test_vocab_and_encoding() -> None:
    vocab = TokenVocab.build(WORDS, min_freq=2)
    assert set(vocab.words) == {"the", "a", "dog", "cat", "runs"}
    b = vocab.encode([["The", "zebra"], ["a"]])
    assert b.words.shape == (2, 2) and b.affixes.shape == (2, 2, 6)
    assert b.words[0, 1] == 1  # unknown word
    assert b.mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValidationError, match="empty"):
        vocab.encode([[]])


def test_padding_does_not_change_emissions() -> None:
    model = small_model().eval()
    alone = model.emissions(model.vocab.encode([WORDS[0]]))
    padded = model.emissions(model.vocab.encode([WORDS[0], WORDS[4]]))
    assert torch.allclose(alone[0], padded[0, :3], atol=1e-6)


def test_learns_toy_language_reproducibly() -> None:
    state = torch.get_rng_state()
    model = small_model()
    hist = train_bilstm_crf(model, WORDS, TAGS, epochs=25, lr=0.05, batch_size=2,
                            generator=make_generator(1), dev=(WORDS, TAGS))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left as it was
    assert hist[-1]["loss"] < hist[0]["loss"] / 5
    assert model.predict(WORDS) == TAGS
    assert max(h["dev_accuracy"] for h in hist) == 1.0
    again = small_model()
    train_bilstm_crf(again, WORDS, TAGS, epochs=25, lr=0.05, batch_size=2,
                     generator=make_generator(1), dev=(WORDS, TAGS))
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items(),
                              strict=True):
        assert torch.equal(v, w), k


def test_save_load(tmp_path: Path) -> None:
    model = small_model()
    train_bilstm_crf(model, WORDS, TAGS, epochs=3, lr=0.03, generator=make_generator(2))
    model.save(tmp_path / "m.pt")
    assert os.listdir(tmp_path) == ["m.pt"]
    back = BiLSTMCRF.load(tmp_path / "m.pt")
    assert back.predict(WORDS) == model.predict(WORDS)
    (tmp_path / "bad.pt").write_bytes(b"xx")
    with pytest.raises(CheckpointError):
        BiLSTMCRF.load(tmp_path / "bad.pt")


def test_errors() -> None:
    model = small_model()
    with pytest.raises(ShapeError, match="one tag per word"):
        train_bilstm_crf(model, WORDS[:1], [["DET"]], epochs=1)
    with pytest.raises(ValidationError, match="not one of the model's labels"):
        train_bilstm_crf(model, WORDS[:1], [["DET", "NOUN", "X"]], epochs=1)
    with pytest.raises(ValidationError, match="distinct"):
        BiLSTMCRF(TokenVocab.build(WORDS), ["A", "A"])
    assert model.predict([[], WORDS[0]])[0] == []


def test_a_changed_weight_fails_the_checksum(tmp_path: Path) -> None:
    model = small_model()
    model.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    key = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][key] = state["state_dict"][key] + 1e-3  # finite, plausible, wrong
    torch.save(state, tmp_path / "changed.pt")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        BiLSTMCRF.load(tmp_path / "changed.pt")
    del state["checksum"]  # files written before checksums existed still load
    torch.save(state, tmp_path / "old.pt")
    assert isinstance(BiLSTMCRF.load(tmp_path / "old.pt"), BiLSTMCRF)
