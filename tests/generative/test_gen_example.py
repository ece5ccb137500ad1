"""examples/generative_training.py runs in its --smoke mode."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "generative_training.py"


def test_example_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--smoke", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    for tag in ("1. Offline data sets", "2. VAE", "3. GAN", "identical losses at every step: True",
                "modes covered within 3 std"):
        assert tag in out
    assert (tmp_path / "vae-split" / "checkpoint.pt").is_file()
