"""The probforge command line: version, help, tour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from probforge import __version__
from probforge.cli import main, tour_steps


def test_version_and_help(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert f"probforge {__version__}" in capsys.readouterr().out
    assert main([]) == 0
    assert "tour" in capsys.readouterr().out


def test_tour_core_step_writes_its_outputs(tmp_path: Path) -> None:
    assert "core" in {s.name for s in tour_steps()}
    assert main(["tour", "--out", str(tmp_path), "--only", "core"]) == 0
    result = json.loads((tmp_path / "core" / "core.json").read_text())
    assert abs(result["p_wet"][1] - 0.44838) < 1e-12
    assert abs(result["p_rain_given_wet"][1] - 0.2 * 0.8019 / 0.44838) < 1e-12
    assert result["map"] == {"R": 0, "S": 0, "W": 0}


def test_tour_unknown_step(tmp_path: Path) -> None:
    assert main(["tour", "--out", str(tmp_path), "--only", "nope"]) == 2


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "probforge", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
