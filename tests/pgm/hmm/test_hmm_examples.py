"""examples/hmm_*.py and the `probforge tour` step run in their quick modes."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DATA = Path("/work/shared/data/posteriordb/hmm_example.json")


def _run(name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    path = EXAMPLES / name
    monkeypatch.setattr(sys, "argv", [str(path), "--smoke"])
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        assert exc.code in (0, None)
    return capsys.readouterr().out


def test_casino_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("hmm_casino.py", monkeypatch, capsys)
    for tag in ("viterbi:", "3 best paths", "FFBS", "Baum-Welch"):
        assert tag in out


def test_regimes_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("hmm_regimes.py", monkeypatch, capsys)
    assert "BIC picks K" in out and "filtered vs smoothed" in out


@pytest.mark.skipif(not DATA.exists(), reason="posteriordb data not installed")
def test_posteriordb_smoke(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("hmm_posteriordb.py", monkeypatch, capsys)
    assert "hmm_example: N = 100" in out and "posterior means" in out


def test_tour_step(tmp_path: Path) -> None:
    from pgm.hmm.commands import TOUR_STEPS

    (step,) = TOUR_STEPS
    assert step.name == "hmm"
    lines = step.run(tmp_path, 0)
    assert any("Viterbi accuracy" in line for line in lines)
    assert (tmp_path / "hmm.json").exists()
