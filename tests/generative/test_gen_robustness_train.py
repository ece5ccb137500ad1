"""Bad and edge inputs for the training loop, the data sets, the picture writers and the
checkpoint API (issue 21): typed errors or sound answers, never a raw exception, never a silent
change of meaning (an untrained checkpoint reported as trained, a PNG written under a ``.txt``
name, integer data cast to float)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.checkpoint import load_checkpoint, save_checkpoint
from generative.data import BatchStream, Dataset, batches, binarize, derive_seed, info, load
from generative.data.toys import sample_toy
from generative.images import make_grid, save_samples, scatter_image, write_png
from generative.train import fit
from probforge.errors import (
    CheckpointError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import make_generator
from tests.generative._gen_toy_tasks import RegressionTask
from tests.robustness import outcome

F64 = torch.float64
_MOONS = load("moons", "train", n=64, dtype=F64)


# ------------------------------------------------------------------ issue examples
def test_fit_refuses_zero_steps_instead_of_writing_an_untrained_checkpoint(
        tmp_path: Path) -> None:
    """Issue 21: ``--steps 0`` wrote an untrained checkpoint and exited normally."""
    for kwargs in ({"steps": 0}, {"epochs": 0}, {"steps": -1}, {"steps": True},
                   {"epochs": 1.0}, {"steps": 2.0}):
        with pytest.raises(ValidationError, match=r"steps|epochs"):
            fit(RegressionTask(), _MOONS, out_dir=tmp_path, **kwargs)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_fit_argument_errors(tmp_path: Path) -> None:
    task = RegressionTask()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases: list[dict[str, Any]] = [
        {"batch_size": 65}, {"batch_size": 0}, {"eval_every": -1}, {"sample_every": -2},
        {"checkpoint_every": -1}, {"out_dir": a_file}, {"out_dir": a_file / "sub"},
        {"out_dir": 3}, {"dtype": torch.float16}, {"dtype": torch.bfloat16},
        {"dtype": torch.int32}, {"dtype": "float32"}, {"device": "nodevice"},
        {"on_nonfinite": "ignore"}, {"progress": 1}, {"seed": -1}, {"seed": 1.0},
        {"generator": 3, "seed": None}, {"resume": 1}, {"ddp_options": []},
        {"eval_data": torch.zeros(4, 3, dtype=F64)}, {"log_every": 0}, {"num_samples": 0},
    ]
    if not torch.cuda.is_available():
        cases.append({"device": "cuda"})
    for kwargs in cases:
        res = outcome(fit, task, _MOONS, **{"steps": 1, "batch_size": 16, **kwargs})
        assert res.kind == "error", kwargs
    assert not a_file.with_suffix("").exists()
    bad_data = [torch.full((8, 2), math.nan, dtype=F64), torch.zeros(8, 2, dtype=torch.long),
                torch.zeros(0, 2, dtype=F64), [1, 2], (torch.zeros(8, 2), None, None)]
    for data in bad_data:
        assert outcome(fit, task, data, steps=1, batch_size=4).kind == "error", data


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path: Path) -> None:
    fit(RegressionTask(), _MOONS, steps=3, batch_size=16, out_dir=tmp_path)
    with pytest.raises(ValidationError, match="before a resume"):
        fit(RegressionTask(), _MOONS, steps=2, batch_size=16, out_dir=tmp_path, resume=True)
    assert fit(RegressionTask(), _MOONS, steps=3, batch_size=16, out_dir=tmp_path,
               resume=True).step == 3


def test_pictures_are_written_only_as_png(tmp_path: Path) -> None:
    """Issue 21: ``--out g.txt`` wrote a PNG."""
    pts = torch.randn(10, 2)
    for name in ("g.txt", "g.jpg", "g", "g.pt", "g.png.bak"):
        with pytest.raises(ValidationError, match=r"\.png"):
            save_samples(tmp_path / name, pts)
        assert not (tmp_path / name).exists()
    with pytest.raises(ValidationError, match=r"\.png"):
        write_png(tmp_path / "g.gif", torch.zeros(4, 4, dtype=torch.uint8))
    save_samples(tmp_path / "G.PNG", pts)
    assert (tmp_path / "G.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValidationError, match="folder"):
        save_samples(tmp_path, pts)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValidationError):
        save_samples(tmp_path / "f" / "g.png", pts)
    with pytest.raises(DtypeMismatchError):  # 0..255 images would be clipped to 0/1
        save_samples(tmp_path / "u.png", torch.full((2, 1, 4, 4), 200, dtype=torch.uint8))
    with pytest.raises(NonFiniteError):
        save_samples(tmp_path / "n.png", torch.full((3, 2), math.nan))


# ------------------------------------------------------------ property tests: fit
_COUNT = st.one_of(st.integers(-1, 3), st.sampled_from([None, True, 2.0, "2"]))


@given(steps=_COUNT, epochs=_COUNT, batch_size=st.sampled_from([8, 64, 65, 0, 8.0]),
       every=st.sampled_from([0, 1, -1, 2.0]))
@settings(max_examples=25)
def test_fit_on_generated_arguments(steps: Any, epochs: Any, batch_size: Any, every: Any,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("fit")
    res = outcome(fit, RegressionTask(), _MOONS, steps=steps, epochs=epochs,
                  batch_size=batch_size, eval_every=every, checkpoint_every=every, out_dir=out)

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    valid = ((count(steps) and epochs is None) or (count(epochs) and steps is None)) and \
        isinstance(batch_size, int) and 1 <= batch_size <= 64 and isinstance(every, int) and \
        every >= 0
    assert (res.kind == "value") == valid, res
    if valid:
        want = steps if steps is not None else epochs * (64 // batch_size)
        assert res.value.step == want == len(res.value.history)
        assert res.value.status == "completed" and (out / "checkpoint.pt").is_file()
    else:
        assert not (out / "checkpoint.pt").exists()


# ------------------------------------------------------------ property tests: data
@given(name=st.sampled_from(["moons", "8gaussians", "digits", "nope", 3]),
       split=st.sampled_from(["train", "test", "val"]),
       n=st.sampled_from([None, 0, 5, -1, 5.0, True, 10**6]),
       bin_=st.sampled_from([None, "fixed", "stochastic", "otsu"]),
       dtype=st.sampled_from([torch.float32, F64, torch.int64, "float32"]),
       device=st.sampled_from(["cpu", "nodevice"]))
@settings(max_examples=30)
def test_load_on_generated_arguments(name: Any, split: str, n: Any, bin_: str | None,
                                     dtype: Any, device: str) -> None:
    # scikit-learn's digits stand-in (300 images, as the real test split): the catalog's logic
    # is under test here, not scikit-learn's loader (whose import takes seconds)
    fake = (torch.rand(300, 1, 8, 8, generator=make_generator(0)), torch.arange(300) % 10)
    with mock.patch("generative.data.catalog.load_digits", return_value=fake):
        res = outcome(load, name, split, n=n, binarize=bin_, dtype=dtype, device=device)
    ok_n = n is None or (isinstance(n, int) and not isinstance(n, bool) and 0 <= n
                         and (name != "digits" or n <= 300))
    valid = (name in ("moons", "8gaussians", "digits") and split != "val" and ok_n
             and bin_ in (None, "fixed", "stochastic") and (bin_ is None or name == "digits")
             and dtype in (torch.float32, F64) and device == "cpu")
    assert (res.kind == "value") == valid, res
    if valid:
        ds = res.value
        assert ds.x.dtype == dtype and (n is None or len(ds) == n)
        assert bool(torch.isfinite(ds.x).all())
        if bin_ is not None and len(ds):
            assert set(ds.x.unique().tolist()) <= {0.0, 1.0}
        assert info(name, split, binarize=bin_) == ds.info
        if name == "digits":
            assert ds.x.shape[1:] == (1, 8, 8) and ds.y is not None
        if name in ("moons", "8gaussians") and n == 5:
            x, _ = sample_toy(name, 5, generator=make_generator(1), dtype=dtype)
            assert x.shape == (5, 2)


@given(x=st.sampled_from(["ok", "nan", "int", "image_range", "empty", "scalar"]),
       y=st.sampled_from(["none", "ok", "float", "short", "negative"]),
       num_classes=st.sampled_from([None, 3, 1, -1]))
@settings(max_examples=30)
def test_dataset_from_tensors(x: str, y: str, num_classes: int | None) -> None:
    xs = {"ok": torch.rand(4, 1, 2, 2), "nan": torch.full((4, 2), math.nan),
          "int": torch.zeros(4, 2, dtype=torch.long), "image_range": torch.full((4, 1, 2, 2), 2.0),
          "empty": torch.zeros(0, 2), "scalar": torch.tensor(1.0)}[x]
    n = xs.shape[0] if xs.dim() else 0
    ys = {"none": None, "ok": torch.arange(n) % 3, "float": torch.zeros(n),
          "short": torch.zeros(max(n - 1, 0), dtype=torch.long),
          "negative": torch.full((n,), -1)}[y]
    res = outcome(Dataset.from_tensors, xs, ys, num_classes=num_classes)
    valid = (x in ("ok", "empty") and (y in ("none", "ok") or (y == "negative" and n == 0))
             and (num_classes is None or num_classes >= (3 if y == "ok" and n else 0)))
    assert (res.kind == "value") == valid, res
    if valid:
        ds = res.value
        assert len(ds) == n and ds.info.event_shape == tuple(xs.shape[1:])


@given(batch_size=st.sampled_from([1, 3, 10, 11, 0, 2.0, True]),
       world=st.sampled_from([(0, 1), (1, 2), (2, 2), (0, 0)]),
       flags=st.sampled_from([(True, True), (False, False), (1, True), (True, "no")]),
       seed=st.sampled_from([None, 0, 7, -1, 1.5]))
@settings(max_examples=30)
def test_batch_stream_on_generated_arguments(batch_size: Any, world: tuple[int, int],
                                             flags: tuple[Any, Any], seed: Any) -> None:
    ds = Dataset.from_tensors(torch.arange(10.0)[:, None])
    rank, world_size = world
    res = outcome(BatchStream, ds, batch_size, seed=seed, generator=make_generator(0),
                  shuffle=flags[0], drop_last=flags[1], rank=rank, world_size=world_size)
    per = 10 // world_size if world_size else 0
    valid = (isinstance(batch_size, int) and not isinstance(batch_size, bool)
             and 1 <= batch_size <= per and world_size >= 1 and rank < world_size
             and all(isinstance(f, bool) for f in flags)
             and (seed is None or (isinstance(seed, int) and seed >= 0)))
    assert (res.kind == "value") == valid, res
    if valid:
        stream = res.value
        seen = torch.cat([x for x, _ in stream]).flatten()
        assert len(seen) == (per // batch_size) * batch_size if flags[1] else len(seen) == per
        assert len(set(seen.tolist())) == len(seen)  # no example twice in an epoch
        other = BatchStream(ds, batch_size, seed=123, shuffle=flags[0], drop_last=flags[1],
                            rank=rank, world_size=world_size)
        other.load_state_dict(stream.state_dict())
        assert torch.equal(other.next_batch()[0], stream.next_batch()[0])


def test_batch_stream_and_batches_refuse_bad_states() -> None:
    ds = Dataset.from_tensors(torch.arange(10.0)[:, None])
    s = BatchStream(ds, 3, seed=0)
    good = s.state_dict()
    for change in ({"position": 99}, {"epoch": -1}, {"seed": "x"}, {"batch_size": 4}):
        with pytest.raises(CheckpointError):
            s.load_state_dict({**good, **change})
    with pytest.raises(CheckpointError):
        s.load_state_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(CheckpointError):
        s.load_state_dict({k: v for k, v in good.items() if k != "seed"})
    with pytest.raises(ValidationError):
        next(batches(ds, 11))
    with pytest.raises(ValidationError):
        batches(ds, 2, generator="g")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        s.epoch_order(-1)
    for bad in (1.5, True, "3"):
        with pytest.raises(ValidationError):
            derive_seed(bad)  # type: ignore[arg-type]
    assert derive_seed(-1) == derive_seed(2**64 - 1)  # documented: modulo 2**64


@given(kind=st.sampled_from(["ok", "nan", "int", "range", "empty"]),
       mode=st.sampled_from(["fixed", "stochastic", "otsu"]),
       threshold=st.sampled_from([0.5, 0.0, 1.0, math.nan, -0.1]))
@settings(max_examples=30)
def test_binarize(kind: str, mode: str, threshold: float) -> None:
    x = {"ok": torch.tensor([0.1, 0.6, 0.5, 1.0]), "nan": torch.tensor([0.1, math.nan]),
         "int": torch.tensor([0, 1]), "range": torch.tensor([0.5, 1.5]),
         "empty": torch.zeros(0)}[kind]
    res = outcome(binarize, x, mode, threshold=threshold, generator=make_generator(0))
    valid = kind in ("ok", "empty") and mode != "otsu" and (
        mode == "stochastic" or 0.0 <= threshold < 1.0)
    assert (res.kind == "value") == valid
    if valid and mode == "fixed":
        assert torch.equal(res.value, (x > threshold).float())


# --------------------------------------------------------- property tests: pictures
@given(shape=st.sampled_from([(3, 2), (0, 2), (4, 1, 3, 3), (2, 3, 5, 5), (4, 9), (4, 7),
                              (4, 3, 3), (5,), (2, 2, 3, 3)]),
       special=st.sampled_from([None, math.nan, 2.0]),
       suffix=st.sampled_from([".png", ".PNG", ".txt", ""]),
       nrow=st.sampled_from([None, 2, 0, 1.5]))
@settings(max_examples=30)
def test_save_samples_on_generated_inputs(shape: tuple[int, ...], special: float | None,
                                          suffix: str, nrow: Any,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    x = torch.rand(shape)
    if not x.numel():
        special = None
    if special is not None:
        x.view(-1)[0] = special
    path = tmp_path_factory.mktemp("pic") / f"s{suffix}"
    res = outcome(save_samples, path, x, nrow=nrow)
    points = len(shape) == 2 and shape[1] == 2
    image_like = (len(shape) == 4 and shape[1] in (1, 3)) or len(shape) == 3 or (
        len(shape) == 2 and math.isqrt(shape[1]) ** 2 == shape[1])
    ok_nrow = nrow is None or (isinstance(nrow, int) and nrow >= 1)
    finite = special is None or math.isfinite(special)  # 2.0 is only clipped for display
    valid = suffix.lower() == ".png" and finite and (
        points or (image_like and shape[0] >= 1 and ok_nrow))
    assert (res.kind == "value") == valid, (res, shape, special, suffix, nrow)
    assert path.exists() == valid
    if valid:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_picture_helper_arguments() -> None:
    for args, kwargs in (((torch.rand(3, 2),), {"bounds": (1.0, 0.0)}),
                         ((torch.rand(3, 2),), {"bounds": (0.0, math.inf)}),
                         ((torch.rand(3, 2),), {"bounds": "01"}),
                         ((torch.rand(3, 2),), {"size": 4}),
                         ((torch.rand(3, 2),), {"centres": torch.full((2, 2), math.nan)}),
                         ((torch.rand(3, 3),), {}), ((torch.rand(3, 2).long(),), {})):
        assert outcome(scatter_image, *args, **kwargs).kind == "error", kwargs
    assert scatter_image(torch.zeros(0, 2)).shape == (256, 256, 3)  # no points: empty picture
    for kwargs in ({"padding": -1}, {"pad_value": 2.0}, {"nrow": 0}):
        assert outcome(make_grid, torch.rand(2, 1, 3, 3), **kwargs).kind == "error"


# ----------------------------------------------------------------- checkpoint API
def test_checkpoint_save_and_load_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        save_checkpoint(tmp_path, {"step": 1})  # a folder
    with pytest.raises(ValidationError):
        save_checkpoint(tmp_path / "c.pt", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        save_checkpoint(tmp_path / "c.pt", {"format": "mine"})
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValidationError):
        save_checkpoint(tmp_path / "f" / "c.pt", {"step": 1})
    save_checkpoint(tmp_path / "ok.pt", {"step": 1})
    assert load_checkpoint(tmp_path / "ok.pt")["step"] == 1
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ShapeError):
        Dataset.from_tensors(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
