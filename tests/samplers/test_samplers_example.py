"""examples/samplers_classic.py runs in its --smoke mode."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "samplers_classic.py"


def test_example_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--smoke"])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    for tag in ("1. pi", "2. inverse CDF", "3. rejection", "4. importance", "5a.", "5b."):
        assert tag in out
