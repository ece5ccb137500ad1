"""examples/gan_toy.py runs in its --smoke mode."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gan_toy.py"


def test_example_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--smoke", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    for tag in ("gan (minimax)", "wgan-gp", "vae", "MMD^2"):
        assert tag in out
    assert (tmp_path / "wgan-gp.png").read_bytes()[:4] == b"\x89PNG"
