"""`probforge train rbm|grbm|dbn`, sampling their checkpoints, resume, the energy tour step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from generative.checkpoint import load_checkpoint
from probforge.cli import main, tour_steps

PNG = b"\x89PNG\r\n\x1a\n"


def _train(kind: str, out: Path, steps: int, *extra: str) -> int:
    return main(["train", kind, "--data", "digits", "--out", str(out), "--steps", str(steps),
                 "--batch-size", "50", "--train-examples", "300", "--eval-examples", "100",
                 "--no-progress", *extra])


def test_rbm_trains_resumes_exactly_and_samples(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--binarize", "fixed", "--config", "num_hidden=16", "eval_ais_chains=20",
           "eval_ais_temperatures=50", "sample_steps=20"]
    one = tmp_path / "one"
    assert _train("rbm", one, 8, *cfg) == 0
    text = capsys.readouterr().out
    assert "rbm on digits: 8 steps" in text and "ais_log_likelihood" in text
    assert "log_likelihood" in json.loads((one / "metrics.json").read_text())["eval"][-1]
    assert (one / "samples" / "filters_step_0000008.png").read_bytes()[:8] == PNG
    # 4 steps, then resume to 8: the same parameters (and PCD chains) as the 8-step run
    two = tmp_path / "two"
    assert _train("rbm", two, 4, *cfg) == 0
    assert _train("rbm", two, 8, "--binarize", "fixed", "--resume") == 0
    a, b = load_checkpoint(one / "checkpoint.pt"), load_checkpoint(two / "checkpoint.pt")
    for name in ("rbm", "state"):
        for key, value in a["nets"][name].items():
            assert torch.equal(value, b["nets"][name][key]), (name, key)
    grid = tmp_path / "grid.png"
    assert main(["sample", "--checkpoint", str(one / "checkpoint.pt"), "--n", "9",
                 "--out", str(grid)]) == 0
    assert grid.read_bytes()[:8] == PNG


def test_grbm_standardises_and_dbn_trains_layer_by_layer(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert _train("grbm", tmp_path / "g", 6, "--config", "num_hidden=8",
                  "eval_ais_chains=10", "eval_ais_temperatures=20", "sample_steps=5") == 0
    state = load_checkpoint(tmp_path / "g" / "checkpoint.pt")["nets"]["state"]
    assert float(state["data_std"].min()) < 0.5       # the data's standardisation was set
    assert _train("dbn", tmp_path / "d", 6, "--binarize", "fixed", "--config",
                  "hidden=[12,6]", "steps_per_layer=3", "sample_steps=5") == 0
    rows = json.loads((tmp_path / "d" / "metrics.json").read_text())["train"]
    assert [r["layer"] for r in rows] == [0, 0, 0, 1, 1, 1]
    assert "recon_error_2" in capsys.readouterr().out


def test_binary_kinds_refuse_real_valued_data(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _train("rbm", tmp_path / "r", 2) == 2
    err = capsys.readouterr().err
    assert "needs binarised data" in err and "--binarize fixed" in err and "Traceback" not in err
    assert main(["train", "rbm", "--data", "digits", "--out", str(tmp_path / "k"), "--steps",
                 "1", "--binarize", "fixed", "--config", "k=0"]) == 2
    assert "'k' must be an int >= 1" in capsys.readouterr().err
    assert main(["train", "rbm", "--data", "digits", "--out", str(tmp_path / "m"), "--steps",
                 "1", "--binarize", "fixed", "--config", "method=gibbs"]) == 2
    assert "'method' must be 'cd', 'pcd' or 'pt'" in capsys.readouterr().err


def test_energy_tour_step_is_registered() -> None:
    step = next(s for s in tour_steps() if s.name == "energy")
    assert step.order == 41 and "RBM" in step.title


@pytest.mark.slow
def test_energy_tour_step_runs(tmp_path: Path) -> None:
    """About 15 s on one core: 2,000 CD-1 steps and 3,000-temperature AIS."""
    step = next(s for s in tour_steps() if s.name == "energy")
    lines = step.run(tmp_path, 0)
    text = "\n".join(lines)
    assert "test log-likelihood" in text and "Bernoulli mixture" in text
    assert (tmp_path / "filters.png").read_bytes()[:8] == PNG
