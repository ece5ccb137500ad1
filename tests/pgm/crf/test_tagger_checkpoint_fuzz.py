"""Fuzzing CRFTagger checkpoints (issue 21): a damaged file is a typed error, never a raw
exception and never a silently different model.

A tiny tagger is fitted and saved once; its file is then truncated, bit-flipped and overwritten
byte by byte, and its content (read back with ``weights_only=True``) has keys deleted, tensors
replaced by others of the wrong shape or dtype, NaN weights, labels and features of the wrong
type, configurations with unknown, missing or invalid entries. Loading must raise
:class:`CheckpointError` (or :class:`ParseError`) or give back a model equal to the saved one.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgm.crf import CRFTagger, bio_constraints
from probforge.errors import CheckpointError, MissingFileError, ParseError
from tests.robustness import outcome

X = [[{"w": "the"}, {"w": "dog"}], [{"w": "a"}, {"w": "cat"}, {"w": "runs"}]]
Y = [["O", "B-X"], ["O", "B-X", "I-X"]]


@functools.cache
def _saved() -> tuple[CRFTagger, bytes]:
    tagger = CRFTagger(max_iterations=5, constraints=lambda labels: bio_constraints(labels))
    tagger.fit(X, Y)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tagger.pt"
        tagger.save(path)
        return tagger, path.read_bytes()


def _load(payload: bytes) -> CRFTagger:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tagger.pt"
        path.write_bytes(payload)
        return CRFTagger.load(path)


def _assert_equal(a: CRFTagger, b: CRFTagger) -> None:
    assert a.classes_ == b.classes_
    assert a.encoder_ is not None and b.encoder_ is not None
    assert a.encoder_.features == b.encoder_.features
    assert a.weights_ is not None and b.weights_ is not None
    assert torch.equal(a.weights_, b.weights_)
    assert a.crf_ is not None and b.crf_ is not None
    for (name, p), (_, q) in zip(a.crf_.state_dict().items(), b.crf_.state_dict().items(),
                                 strict=True):
        assert torch.equal(p, q), name
    assert a.predict(X) == b.predict(X)


def _check(payload: bytes) -> None:
    res = outcome(_load, payload)
    if res.kind == "error":
        assert isinstance(res.error, CheckpointError | ParseError), res.error
    else:
        _assert_equal(res.value, _saved()[0])


def test_the_saved_file_loads_back_equal() -> None:
    tagger, payload = _saved()
    _assert_equal(_load(payload), tagger)
    state = torch.load(io.BytesIO(payload), weights_only=True)
    assert "checksum" in state


@functools.cache
def _spans() -> list[tuple[int, int]]:
    """Byte ranges of the archive's records (pickle and tensor data, stored uncompressed): a
    flip there changes a value instead of breaking the archive's structure."""
    raw = _saved()[1]
    spans = []
    for info in zipfile.ZipFile(io.BytesIO(raw)).infolist():
        o = info.header_offset
        name_len, extra_len = struct.unpack("<HH", raw[o + 26:o + 30])
        start = o + 30 + name_len + extra_len
        if info.file_size:
            spans.append((start, start + info.file_size))
    return spans


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@given(st.data())
@settings(max_examples=40)
def test_byte_damage(data: st.DataObject) -> None:
    raw = bytearray(_saved()[1])

    def position() -> int:
        if data.draw(st.booleans()):  # anywhere
            return data.draw(st.integers(0, len(raw) - 1))
        a, b = data.draw(st.sampled_from(_spans()))  # inside a record's content
        return data.draw(st.integers(a, b - 1))

    op = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "flip"]))
    i = position()
    if op == "truncate":
        del raw[i:]
    elif op == "flip":
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
        for _ in range(data.draw(st.integers(0, 2))):
            raw[position()] ^= 1 << data.draw(st.integers(0, 7))
    else:
        raw[i:i + 8] = data.draw(st.binary(min_size=1, max_size=8))
    _check(bytes(raw))


def _state() -> dict[str, Any]:
    state: dict[str, Any] = torch.load(io.BytesIO(_saved()[1]), weights_only=True)
    return state


# Each mutation breaks a rule of the format: with the checksum removed (a file written before
# checksums existed) the field checks must catch it.
_STRUCTURAL = {
    "drop key": lambda s, k: s.pop(k),
    "unknown key": lambda s, k: s.__setitem__("extra", 1),
    "weights narrower": lambda s, k: s.__setitem__("weights", s["weights"][:, :-1]),
    "weights float32": lambda s, k: s.__setitem__("weights", s["weights"].float()),
    "weights long": lambda s, k: s.__setitem__("weights", s["weights"].long()),
    "weights 1-d": lambda s, k: s.__setitem__("weights", s["weights"].reshape(-1)),
    "weights nan": lambda s, k: s["weights"].view(-1).__setitem__(0, math.nan),
    "weights list": lambda s, k: s.__setitem__("weights", s["weights"].tolist()),
    "start longer": lambda s, k: s.__setitem__("start", torch.cat([s["start"], s["start"]])),
    "start shorter": lambda s, k: s.__setitem__("start", s["start"][:1]),
    "transitions 1-d": lambda s, k: s.__setitem__("transitions", s["transitions"][0]),
    "end inf": lambda s, k: s["end"].__setitem__(0, math.inf),
    "labels str": lambda s, k: s.__setitem__("labels", "OB"),
    "labels ints": lambda s, k: s.__setitem__("labels", list(range(len(s["labels"])))),
    "labels repeated": lambda s, k: s.__setitem__("labels", [s["labels"][0]] * len(s["labels"])),
    "labels one more": lambda s, k: s.__setitem__("labels", [*s["labels"], "Z"]),
    "features dropped": lambda s, k: s.__setitem__("features", s["features"][:-1]),
    "features repeated": lambda s, k: s.__setitem__("features", [s["features"][0]] * 3),
    "features None": lambda s, k: s.__setitem__("features", None),
    "config not dict": lambda s, k: s.__setitem__("config", [1, 2]),
    "config key dropped": lambda s, k: s["config"].pop("c1"),
    "config key added": lambda s, k: s["config"].__setitem__("bogus", 1),
    "config dtype": lambda s, k: s["config"].__setitem__("dtype", "int64"),
    "config dtype name": lambda s, k: s["config"].__setitem__("dtype", "__class__"),
    "config c1": lambda s, k: s["config"].__setitem__("c1", -1.0),
    "config buckets": lambda s, k: s["config"].__setitem__("hash_buckets", "x"),
    "config batch": lambda s, k: s["config"].__setitem__("batch_size", 2.5),
    "constraints shape": lambda s, k: s.__setitem__(
        "constraints", [c[:1] for c in s["constraints"]]),
    "constraints float": lambda s, k: s.__setitem__(
        "constraints", [c.double() for c in s["constraints"]]),
    "constraints two": lambda s, k: s.__setitem__("constraints", s["constraints"][:2]),
    "constraints str": lambda s, k: s.__setitem__("constraints", "BIO"),
    "version": lambda s, k: s.__setitem__("version", 99),
    "format": lambda s, k: s.__setitem__("format", "probforge.BiLSTMCRF"),
    "checksum type": lambda s, k: s.__setitem__("checksum", 12),
}
# These keep the format valid but change the model: only the checksum can tell.
_VALUES = {
    "weights changed": lambda s: s["weights"].view(-1).__setitem__(0, 0.5),
    "transitions changed": lambda s: s["transitions"].__setitem__((0, 0), 1.0),
    "labels renamed": lambda s: s["labels"].__setitem__(0, "P"),
    "feature renamed": lambda s: s["features"].__setitem__(0, "w:zzz"),
    "constraint relaxed": lambda s: s["constraints"][1].fill_(True),
    "config changed": lambda s: s["config"].__setitem__("c2", 0.5),
}
_KEYS = ["format", "version", "config", "labels", "features", "weights", "start",
         "transitions", "end", "constraints"]


def _save(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@given(st.sampled_from(sorted(_STRUCTURAL)), st.sampled_from(_KEYS))
@settings(max_examples=40)
def test_malformed_fields_are_checkpoint_errors(mutation: str, key: str) -> None:
    state = _state()
    state.pop("checksum")
    _STRUCTURAL[mutation](state, key)
    res = outcome(_load, _save(state))
    assert res.kind == "error" and isinstance(res.error, CheckpointError), (mutation, res)


@given(st.sampled_from(sorted(_VALUES)))
@settings(max_examples=10)
def test_changed_values_fail_the_checksum(mutation: str) -> None:
    state = _state()
    _VALUES[mutation](state)
    with pytest.raises(CheckpointError, match="checksum"):
        _load(_save(state))
    state.pop("checksum")  # without a checksum (an older file) it is simply another model
    assert isinstance(_load(_save(state)), CRFTagger)


def test_missing_file_and_arguments() -> None:
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(MissingFileError):  # was a bare FileNotFoundError re-raised
            CRFTagger.load(Path(d) / "absent.pt")
        with pytest.raises(MissingFileError):  # a folder is not a checkpoint
            CRFTagger.load(d)
        path = Path(d) / "t.pt"
        path.write_bytes(_saved()[1])
        with pytest.raises(Exception, match="device"):
            CRFTagger.load(path, device="nonsense")
