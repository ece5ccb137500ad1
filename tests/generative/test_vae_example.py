"""examples/vae_fashion_mnist.py runs in its --smoke mode (skips without Fashion-MNIST)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vae_fashion_mnist.py"
DATA = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST (dataset-fashion-mnist) is not installed")
def test_example_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--smoke", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    for tag in ("1. training", "2. test", "NLL", "3. pictures"):
        assert tag in out
    for name in ("samples.png", "interpolation.png", "latent_map.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
