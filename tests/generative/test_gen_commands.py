"""``probforge train``, ``probforge sample --checkpoint`` and the generative tour step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from generative.checkpoint import load_checkpoint
from generative.commands import parse_overrides
from probforge.cli import main, tour_steps
from probforge.errors import ValidationError

PNG = b"\x89PNG\r\n\x1a\n"


def test_train_sample_and_resume_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "vae", "--data", "8gaussians", "--out", str(out), "--steps", "6",
                 "--batch-size", "32", "--train-examples", "256", "--eval-examples", "64",
                 "--config", "latent_dim=3", "hidden=[16]", "--no-progress",
                 "--seed", "4"]) == 0
    text = capsys.readouterr().out
    assert "vae on 8gaussians: 6 steps" in text and "probforge sample --checkpoint" in text
    ck = load_checkpoint(out / "checkpoint.pt")
    config = json.loads(ck["config"])
    assert config["kind"] == "vae" and config["latent_dim"] == 3 and config["hidden"] == [16]
    assert ck["step"] == 6 and len(list((out / "samples").glob("*.png"))) >= 1
    # Resume to 9 steps: the history continues.
    assert main(["train", "vae", "--data", "8gaussians", "--out", str(out), "--steps", "9",
                 "--batch-size", "32", "--train-examples", "256", "--eval-examples", "64",
                 "--resume", "--no-progress", "--seed", "4"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in doc["train"]] == list(range(1, 10))
    capsys.readouterr()
    # Samples from the checkpoint: a scatter PNG, or the tensor for a .pt path.
    grid = tmp_path / "grid.png"
    assert main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", "100",
                 "--out", str(grid), "--seed", "1"]) == 0
    assert grid.read_bytes()[:8] == PNG and "100 samples" in capsys.readouterr().out
    raw = tmp_path / "s.pt"
    assert main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", "7",
                 "--out", str(raw)]) == 0
    assert torch.load(raw, weights_only=True).shape == (7, 2)


def test_image_model_sample_grid(tmp_path: Path) -> None:
    out = tmp_path / "ae"
    assert main(["train", "ae", "--data", "digits", "--out", str(out), "--steps", "3",
                 "--batch-size", "16", "--train-examples", "64", "--eval-examples", "32",
                 "--no-progress", "--config", "latent_dim=4", "hidden=[32]"]) == 0
    grid = tmp_path / "grid.png"
    assert main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", "16",
                 "--out", str(grid)]) == 0
    pil = pytest.importorskip("PIL.Image")
    with pil.open(grid) as im:
        assert im.size == (4 * 9 + 1, 4 * 9 + 1)


def test_command_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "nope", "--data", "moons", "--out", str(tmp_path), "--steps",
                 "1"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["train", "vae", "--data", "moons", "--out", str(tmp_path / "x"), "--steps",
                 "1", "--resume"]) == 2
    assert "--resume needs a checkpoint" in capsys.readouterr().err
    assert main(["train", "vae", "--data", "moons", "--out", str(tmp_path), "--steps", "1",
                 "--config", "no_such_key=1", "--no-progress"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["sample"]) == 2
    assert "needs a target or --checkpoint" in capsys.readouterr().err
    with pytest.raises(ValidationError, match="KEY=VALUE"):
        parse_overrides(["latent_dim"])
    assert parse_overrides(["beta=0.5", "arch=conv", "tied=true"]) == {
        "beta": 0.5, "arch": "conv", "tied": True}


def test_tour_step_is_registered() -> None:
    step = next(s for s in tour_steps() if s.name == "generative")
    assert step.order == 40 and "GAN" in step.title


@pytest.mark.slow
def test_tour_step_runs(tmp_path: Path) -> None:
    """About 6 s of CPU (600 small GAN steps)."""
    step = next(s for s in tour_steps() if s.name == "generative")
    lines = step.run(tmp_path, 0)
    assert any("modes covered" in line for line in lines)
    assert (tmp_path / "checkpoint.pt").is_file()
    assert (tmp_path / "samples" / "step_0000600.png").read_bytes()[:8] == PNG
