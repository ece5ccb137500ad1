"""``probforge infer`` and the pgm tour step."""

from __future__ import annotations

import json
from pathlib import Path

from probforge.cli import main


def test_infer_json_marginals(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["infer", "asia", "-e", "smoke=yes", "dysp=yes", "-q", "lung", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["marginals"]["lung"]["yes"] - 0.148334) < 5e-7
    assert set(out) >= {"marginals", "log_evidence"}


def test_infer_map_table_and_errors(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert main(["infer", "asia", "-e", "dysp=yes", "--map"]) == 0
    assert "log p(MAP | evidence)" in capsys.readouterr().out
    assert main(["infer", "asia", "-e", "smoke=maybe"]) == 2
    assert "has no such state" in capsys.readouterr().err
    assert main(["infer", str(tmp_path / "missing.bif")]) == 2


def test_infer_uai_roundtrip_and_result_files(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pgm.io import bundled_network, read_uai_result, write_network

    write_network(bundled_network("asia"), tmp_path / "asia.uai")
    (tmp_path / "asia.uai.evid").write_text("2\n1 2 0\n1 7 0\n")
    assert main(["infer", str(tmp_path / "asia.uai"), "--evidence-file",
                 str(tmp_path / "asia.uai.evid"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res) == 2 and abs(res[0]["marginals"]["5"]["0"] - 1.0) < 1e-12
    assert main(["infer", str(tmp_path / "asia.uai"), "-e", "7=0", "--pr",
                 "--uai-result", str(tmp_path / "r.PR")]) == 0
    assert abs(read_uai_result(tmp_path / "r.PR").log10_probability
               - __import__("math").log10(0.435971)) < 1e-6


def test_pgm_tour_step(tmp_path: Path) -> None:
    assert main(["tour", "--out", str(tmp_path), "--only", "pgm"]) == 0
    data = json.loads((tmp_path / "pgm" / "pgm.json").read_text())
    assert abs(data["p_lung_given_smoke_dysp"] - 0.148334) < 5e-7
