"""``probforge sample`` and the samplers tour step."""

from __future__ import annotations

from pathlib import Path

import pytest

from probforge.cli import main, tour_steps


def test_sample_command_prints_summary_and_writes_netcdf(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "run.nc"
    assert main(["sample", "gaussian", "--dim", "3", "--chains", "4", "--draws", "300",
                 "--warmup", "300", "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "r_hat" in text and "x[2]" in text and "mean acceptance" in text
    import arviz as az

    idata = az.from_netcdf(str(out))
    assert dict(idata.posterior.sizes)["chain"] == 4 and idata.posterior.attrs["seed"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_sample_command_eight_schools_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "eight_schools", "--chains", "4", "--draws", "50", "--warmup",
                 "50"]) == 0
    text = capsys.readouterr().out
    assert "theta_trans[7]" in text and "tau" in text
    assert main(["sample", "banana", "--chains", "0"]) == 2
    assert "--chains" in capsys.readouterr().err


def test_tour_step_is_registered_and_runs(tmp_path: Path) -> None:
    step = next(s for s in tour_steps() if s.name == "samplers")
    assert step.order == 10
    lines = step.run(tmp_path, 0)
    assert any("R-hat" in line for line in lines)
    assert (tmp_path / "rwmh_gaussian.nc").exists()
