"""generative.train.fit: exact resume, NaN stops, logs, checkpoints, sample grids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from generative.checkpoint import load_checkpoint, save_checkpoint
from generative.data import Dataset, load
from generative.train import CHECKPOINT_NAME, fit
from probforge.errors import CheckpointError, ConvergenceError, ValidationError
from tests.generative._gen_toy_tasks import MeanImageTask, RegressionTask, TwoNetTask

F64 = torch.float64


def _data() -> Dataset:
    return load("moons", "train", n=200, dtype=F64)


def _params(task: RegressionTask | TwoNetTask) -> list[torch.Tensor]:
    return [p.detach().clone() for net in task.networks().values() for p in net.parameters()]


def _same_run(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb  # exact float equality, every term of every step


def test_resume_after_a_stop_continues_exactly(tmp_path: Path) -> None:
    """Train 20 steps; versus 7 steps, stop, resume to 20: identical losses and parameters.

    The task draws input noise from the loop's generator and uses dropout (torch's global RNG),
    Adam and a StepLR schedule; the stop falls mid-epoch (6 batches per epoch).
    """
    kw = dict(batch_size=32, seed=3, eval_every=5, checkpoint_every=5, log_every=3)
    full_task = RegressionTask()
    full = fit(full_task, _data(), steps=20, out_dir=tmp_path / "full", **kw)
    first = fit(RegressionTask(), _data(), steps=7, out_dir=tmp_path / "split", **kw)
    assert first.step == 7 and first.epoch == 1
    resumed_task = RegressionTask(seed=0)
    resumed = fit(resumed_task, _data(), steps=20, out_dir=tmp_path / "split", resume=True, **kw)
    assert resumed.step == 20 and full.step == 20
    _same_run(full.history, resumed.history)
    for p, q in zip(_params(full_task), _params(resumed_task), strict=True):
        assert torch.equal(p, q)
    full_eval = {r["step"]: r for r in full.eval_history}
    for row in resumed.eval_history:
        if row["step"] in full_eval:
            assert row == full_eval[row["step"]]
    assert [r["step"] for r in full.eval_history] == [5, 10, 15, 20]


def test_resume_after_a_crash_from_the_last_checkpoint(tmp_path: Path) -> None:
    """A run killed at step 13 resumes from its step-10 checkpoint and matches a clean run."""
    kw = dict(batch_size=16, seed=5, checkpoint_every=5, log_every=4)
    clean_task = TwoNetTask()
    clean = fit(clean_task, _data(), steps=18, out_dir=tmp_path / "clean", **kw)
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(RegressionTask(crash_at=13), _data(), steps=18, out_dir=tmp_path / "r", **kw)
    assert int(load_checkpoint(tmp_path / "r" / CHECKPOINT_NAME)["step"]) == 10
    # The same for the two-network task: kill it by raising from its training step.
    crashing = TwoNetTask()
    real_step = crashing.training_step

    def dying(nets, opts, batch, step, g):  # type: ignore[no-untyped-def]
        if step == 12:
            raise RuntimeError("simulated kill")
        return real_step(nets, opts, batch, step, g)

    crashing.training_step = dying  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(crashing, _data(), steps=18, out_dir=tmp_path / "t", **kw)
    again = TwoNetTask()
    resumed = fit(again, _data(), steps=18, out_dir=tmp_path / "t", resume=True, **kw)
    _same_run(clean.history, resumed.history)
    for p, q in zip(_params(clean_task), _params(again), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_naming_step_and_term(tmp_path: Path, bad: float) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConvergenceError) as err:
        fit(RegressionTask(nan_at=7, nan_value=bad), _data(), steps=20, batch_size=16,
            out_dir=out, checkpoint_every=5, log_every=10, seed=1)
    e = err.value
    assert e.step == 8 and e.term == "kl"  # type: ignore[attr-defined]
    assert "step 8" in str(e) and "'kl'" in str(e) and "checkpoint" in str(e)
    ck = load_checkpoint(out / CHECKPOINT_NAME)
    assert int(ck["step"]) == 5  # the last good checkpoint, untouched
    assert e.checkpoint == out / CHECKPOINT_NAME  # type: ignore[attr-defined]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"] == "nonfinite" and doc["nonfinite"]["step"] == 8
    assert [r["step"] for r in doc["train"]] == list(range(1, 8))
    assert not list(out.glob(".*.tmp"))


def test_nonfinite_stop_mode_returns_a_flagged_result(tmp_path: Path) -> None:
    res = fit(RegressionTask(nan_at=2), _data(), steps=10, batch_size=16, seed=1,
              on_nonfinite="stop", log_every=1)
    assert res.status == "nonfinite" and res.nonfinite is not None
    assert (res.nonfinite.step, res.nonfinite.term) == (3, "kl")
    assert len(res.history) == 2 and res.checkpoint is None


def test_logs_checkpoint_contents_and_sample_grids(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = fit(TwoNetTask(), load("8gaussians", n=256), steps=12, batch_size=32, out_dir=out,
              eval_every=4, sample_every=6, checkpoint_every=8, eval_data=load("8gaussians",
                                                                               "test", n=64))
    assert res.status == "completed" and res.checkpoint == out / CHECKPOINT_NAME
    rows = list(csv.DictReader((out / "train.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert set(rows[0]) == {"step", "epoch", "d_loss", "g_loss"}
    assert float(rows[-1]["g_loss"]) == res.history[-1]["g_loss"]
    evals = list(csv.DictReader((out / "eval.csv").open()))
    assert [int(r["step"]) for r in evals] == [4, 8, 12] and "mean_gap" in evals[0]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"] == "completed" and doc["config"]["kind"] == "toy-two-net"
    assert doc["data"]["name"] == "8gaussians" and len(doc["train"]) == 12
    assert json.loads((out / "config.json").read_text())["seed"] == 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000006.png",
                                                                   "step_0000012.png"]
    raw = torch.load(out / CHECKPOINT_NAME, weights_only=True)  # plain tensors and values
    assert raw["step"] == 12 and set(raw["nets"]) == {"generator", "critic"}
    assert set(raw["optimizers"]) == {"g", "d"} and raw["data"]["position"] == 4
    assert json.loads(raw["config"]) == {"kind": "toy-two-net", "k": 2, "seed": 0}
    assert raw["rng"][0]["generator"].dtype == torch.uint8
    assert not list(out.glob(".*.tmp")) and res.examples_per_second > 0


def test_image_samples_become_a_png_grid(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    res = fit(MeanImageTask(), load("digits", n=128), epochs=2, batch_size=32,
              out_dir=tmp_path, sample_every=100, num_samples=12)
    assert res.step == 8 and res.epoch == 1
    png = tmp_path / "samples" / "step_0000008.png"
    with pil.open(png) as im:
        assert im.size == (4 * 9 + 1, 3 * 9 + 1) and im.mode == "RGB"
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_argument_and_resume_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        fit(RegressionTask(), _data(), batch_size=8)
    with pytest.raises(ValidationError, match="exactly one"):
        fit(RegressionTask(), _data(), steps=2, epochs=1)
    with pytest.raises(ValidationError, match="out_dir"):
        fit(RegressionTask(), _data(), steps=2, sample_every=1)
    with pytest.raises(ValidationError, match="TrainTask"):
        fit(object(), _data(), steps=2)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="batch_size"):
        fit(RegressionTask(), _data(), steps=2, batch_size=0)
    with pytest.raises(CheckpointError, match="not found"):
        fit(RegressionTask(), _data(), steps=2, out_dir=tmp_path, resume=True)
    fit(RegressionTask(), _data(), steps=2, out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="another task configuration"):
        fit(RegressionTask(hidden=4), _data(), steps=4, out_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="batch_size"):
        fit(RegressionTask(), _data(), steps=4, out_dir=tmp_path, resume=True, batch_size=8)
    done = fit(RegressionTask(), _data(), steps=2, out_dir=tmp_path, resume=True)
    assert done.step == 2 and len(done.history) == 2  # nothing left to do
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "other.pt", {"step": 1})
    torch.save({"format": "x"}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a probforge"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_training_step_must_return_scalar_tensors() -> None:
    task = RegressionTask()
    task.training_step = lambda *a: {"loss": 1.0}  # type: ignore[assignment, method-assign]
    with pytest.raises(ValidationError, match="one-element tensor"):
        fit(task, _data(), steps=1)


def test_progress_bar_and_float32_default(capsys: pytest.CaptureFixture[str]) -> None:
    task = RegressionTask(dropout=0.0)
    res = fit(task, load("moons", n=64), steps=5, batch_size=16, progress=True)
    assert next(task.net.parameters()).dtype == torch.float32 and res.step == 5
    assert "training toy-regression" in capsys.readouterr().err
