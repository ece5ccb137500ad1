"""Fuzzer for training checkpoints: ``load_checkpoint``, ``checkpoint_config``, ``restore_task``
(what ``probforge sample --checkpoint`` needs) and ``fit(resume=...)``.

A real checkpoint is written once by :func:`generative.train.fit` (a tiny VAE, two steps on the
moons toy). It is then damaged in two ways:

* as bytes: truncated at any byte, bytes flipped, junk appended;
* as a structure: loaded, one piece changed (a key deleted; a network tensor given another shape,
  an integer dtype or replaced by a non-tensor; the JSON ``meta`` / ``config`` / ``history``
  strings corrupted or given impossible values, including a configuration asking for layers of
  a billion units; ``step``, ``rng``, ``data`` and optimiser states replaced by junk), saved
  again.

Reading, rebuilding and resuming from the result must raise
:class:`~probforge.errors.CheckpointError`, :class:`~probforge.errors.ParseError` or a
:class:`~probforge.errors.ValidationError` -- or work; never another exception. A corrupt
configuration is built on the ``meta`` device first, so a huge layer is never allocated.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.checkpoint import (
    check_training_checkpoint,
    checkpoint_config,
    load_checkpoint,
    restore_task,
)
from generative.data import load
from generative.images import save_samples
from generative.tasks import VAETask
from generative.train import fit
from generative.vae import VAE
from probforge.errors import CheckpointError, ParseError, ValidationError
from tests.robustness import outcome

TIME_LIMIT_S = 5.0
ALLOWED = (CheckpointError, ParseError, ValidationError)


def _task() -> VAETask:
    return VAETask(VAE((2,), 2, likelihood="gaussian", hidden=(4,)), lr=1e-2,
                   eval_importance_samples=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, dict[str, Any]]:
    out = tmp_path_factory.mktemp("ckpt")
    res = fit(_task(), _data(), steps=2, batch_size=16, out_dir=out, seed=3)
    assert res.checkpoint is not None
    raw = res.checkpoint.read_bytes()
    return res.checkpoint, raw, torch.load(res.checkpoint, weights_only=True)


_DATA = load("moons", "train", n=64)


def _data() -> Any:
    return _DATA


def _typed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A typed error of the allowed kinds, or the value; within the time limit."""
    t0 = time.perf_counter()
    result = outcome(fn, *args, **kwargs)
    assert time.perf_counter() - t0 < TIME_LIMIT_S
    if result.kind == "error":
        assert isinstance(result.error, ALLOWED), type(result.error).__name__
        return None
    return result.value


def _exercise(path: Path) -> None:
    """Everything that reads a checkpoint: typed errors or sound results."""
    ck = _typed(load_checkpoint, path)
    if ck is not None:
        _typed(checkpoint_config, ck)
        _typed(check_training_checkpoint, ck, path)
    restored = _typed(restore_task, path)
    if restored is not None:  # what ``probforge sample --checkpoint`` does next
        assert restored.step >= 0 and all(not n.training for n in restored.nets.values())
        info = restored.data_info
        with torch.no_grad():  # finite weights may still overflow: save_samples refuses that
            samples = restored.task.sample(restored.nets, 4, torch.Generator())
        _typed(save_samples, path.with_suffix(".png"), samples,
               bounds=None if info.is_image else info.value_range, centres=info.centres())
    _typed(fit, _task(), _data(), steps=4, batch_size=16, resume=path, seed=3)


# ---------------------------------------------------------------------- byte mutations
@given(data=st.data())
@settings(max_examples=15)
def test_damaged_checkpoint_bytes(written: tuple[Path, bytes, dict[str, Any]],
                                  data: st.DataObject) -> None:
    _, raw, _ = written
    blob = bytearray(raw)
    kind = data.draw(st.sampled_from(["truncate", "flip", "flip", "append"]))
    if kind == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)):]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    else:
        blob += data.draw(st.binary(min_size=1, max_size=64))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "checkpoint.pt"
        path.write_bytes(bytes(blob))
        _exercise(path)


# ------------------------------------------------------------------ structure mutations
_JUNK = st.sampled_from([None, -1, 2.5, True, "x", [], {}, [1, 2], {"a": 1}])


def _set_json(ck: dict[str, Any], key: str, field: str, value: Any) -> None:
    doc = json.loads(ck[key])
    doc[field] = value
    ck[key] = json.dumps(doc)


@st.composite
def _structure_mutation(draw: st.DrawFn) -> Callable[[dict[str, Any]], None]:
    kind = draw(st.sampled_from(["del_key", "net_shape", "net_dtype", "net_junk", "net_missing",
                                 "net_extra", "meta_json", "meta_field", "config_json",
                                 "config_field", "step", "rng", "data", "optimizer", "history",
                                 "format"]))
    top = ["format", "version", "config", "nets", "optimizers", "schedulers", "step", "epoch",
           "data", "history", "meta", "rng"]
    if kind == "del_key":
        key = draw(st.sampled_from(top))
        return lambda ck: ck.pop(key)
    if kind in ("net_shape", "net_dtype", "net_junk", "net_missing"):
        def net(ck: dict[str, Any]) -> None:
            sd = ck["nets"]["vae"]
            name = sorted(sd)[draw(st.integers(0, len(sd) - 1))]
            if kind == "net_shape":
                sd[name] = torch.zeros(*(s + 1 for s in sd[name].shape), 1)
            elif kind == "net_dtype":
                sd[name] = sd[name].to(torch.int64)
            elif kind == "net_junk":
                sd[name] = draw(st.sampled_from([3, "w", [1.0, 2.0]]))
            else:
                del sd[name]
        return net
    if kind == "net_extra":
        return lambda ck: ck["nets"]["vae"].__setitem__("stray.weight", torch.zeros(2))
    if kind == "meta_json":
        text = draw(st.sampled_from(["", "{", "[]", "null", "7", '"x"', "{'a': 1}"]))
        return lambda ck: ck.__setitem__("meta", text)
    if kind == "meta_field":
        field = draw(st.sampled_from(["seed", "world_size", "dtype", "data", "data"]))
        value = draw(st.one_of(_JUNK, st.sampled_from([0, 2, 10**30, "torch.int8"])))
        return lambda ck: _set_json(ck, "meta", field, value)
    if kind == "config_json":
        text = draw(st.sampled_from(["", "{", "[]", "null", "[1]", '{"kind": 1}', "{}"]))
        return lambda ck: ck.__setitem__("config", text)
    if kind == "config_field":
        field = draw(st.sampled_from(["kind", "latent_dim", "hidden", "event_shape", "likelihood",
                                      "beta", "lr", "num_classes", "unknown_key"]))
        value = draw(st.one_of(_JUNK, st.sampled_from(
            [0, 10**9, [10**9], [0], [-1], "gan", "abc", [2, 2], float("nan")])))
        return lambda ck: _set_json(ck, "config", field, value)
    if kind == "step":
        value = draw(_JUNK)
        return lambda ck: ck.__setitem__("step", value)
    if kind == "rng":
        value = draw(st.sampled_from([[], [{}], "x", [{"generator": torch.zeros(3, dtype=torch
                                                                                 .uint8),
                                                        "torch_cpu": torch.zeros(3, dtype=torch
                                                                                 .uint8)}]]))
        return lambda ck: ck.__setitem__("rng", value)
    if kind == "data":
        field = draw(st.sampled_from(["seed", "epoch", "position", "batch_size", "num_examples"]))
        value = draw(st.one_of(_JUNK, st.sampled_from([-5, 10**6])))
        return lambda ck: ck["data"].__setitem__(field, value)
    if kind == "optimizer":
        value = draw(st.sampled_from([{}, {"vae": {}}, {"vae": {"state": {}, "param_groups": []}},
                                      {"vae": {"state": 1, "param_groups": [{"params": [0]}]}}]))
        return lambda ck: ck.__setitem__("optimizers", value)
    if kind == "history":
        text = draw(st.sampled_from(["", "[]", '{"train": 1, "eval": []}', "{"]))
        return lambda ck: ck.__setitem__("history", text)
    value = draw(st.sampled_from(["other", None, 1]))
    return lambda ck: ck.__setitem__("format", value)


@given(mutate=_structure_mutation())
@settings(max_examples=25)
def test_corrupted_checkpoint_structure(written: tuple[Path, bytes, dict[str, Any]],
                                        mutate: Callable[[dict[str, Any]], None]) -> None:
    _, _, original = written
    ck = copy.deepcopy(original)
    mutate(ck)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "checkpoint.pt"
        torch.save(ck, path)
        _exercise(path)


# ------------------------------------------------------------------------ fixed cases
def test_intact_checkpoint_restores_and_resumes(written: tuple[Path, bytes, dict[str, Any]],
                                                tmp_path: Path) -> None:
    path, raw, _ = written
    restored = restore_task(path)
    assert restored.step == 2 and restored.config["kind"] == "vae"
    with torch.no_grad():
        x = restored.task.sample(restored.nets, 5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 2) and bool(torch.isfinite(x).all())
    copy_path = tmp_path / "checkpoint.pt"
    copy_path.write_bytes(raw)
    res = fit(_task(), _data(), steps=3, batch_size=16, resume=copy_path, seed=3)
    assert res.step == 3


def test_config_asking_for_huge_layers_is_refused_before_allocating(
        written: tuple[Path, bytes, dict[str, Any]], tmp_path: Path) -> None:
    _, _, original = written
    ck = copy.deepcopy(original)
    _set_json(ck, "config", "hidden", [2**31])  # 2^32 floats per layer if it were built
    torch.save(ck, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"must be a|does not fit|builds no model"):
        restore_task(tmp_path / "checkpoint.pt")


def test_checkpoint_config_of_junk_is_a_checkpoint_error() -> None:
    for junk in ([], "x", None, {"config": 3}, {"config": "[1]"}, {"config": "{"},
                 {"config": '{"kind": null}'}, {}):
        with pytest.raises(CheckpointError):
            checkpoint_config(junk)  # type: ignore[arg-type]


def test_load_checkpoint_argument_errors(written: tuple[Path, bytes, dict[str, Any]]) -> None:
    path, _, _ = written
    with pytest.raises(ValidationError):
        load_checkpoint(3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        load_checkpoint(path, map_location="nodevice")
    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="CUDA"):
            load_checkpoint(path, map_location="cuda")
        with pytest.raises(ValidationError, match="CUDA"):
            restore_task(path, device="cuda")
