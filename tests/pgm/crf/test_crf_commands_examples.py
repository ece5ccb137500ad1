"""``probforge tag``, the ``crf`` tour step, and the two examples in --smoke mode."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from pgm.crf.conllu import ud_ewt_paths
from probforge.cli import main, tour_steps
from probforge.errors import DataNotFoundError

ROOT = Path(__file__).resolve().parents[3]

TRAIN = [("the dog runs", "DET NOUN VERB"), ("a cat sleeps", "DET NOUN VERB"),
         ("the big dog sleeps", "DET ADJ NOUN VERB"), ("dogs run fast", "NOUN VERB ADV"),
         ("a small cat runs", "DET ADJ NOUN VERB")] * 3


def write_conllu(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = []
    for n, (words, tags) in enumerate(rows):
        lines.append(f"# sent_id = s{n}")
        for i, (w, t) in enumerate(zip(words.split(), tags.split(), strict=True), 1):
            lines.append(f"{i}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tag_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_conllu(tmp_path / "train.conllu", TRAIN)
    test = write_conllu(tmp_path / "test.conllu", TRAIN[:3])
    model = tmp_path / "model.pt"
    args = ["tag", "--train", str(train), "--dev", str(test), "--test", str(test),
            "--max-iterations", "30", "--no-progress", "--save", str(model)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy 1.0000" in out and "precision" in out and "NOUN" in out
    assert model.exists()
    assert main([*args[:-2], "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["test_accuracy"] == 1.0 and set(res["per_tag"]) == {"ADJ", "DET", "NOUN", "VERB"}


def test_tag_command_bilstm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_conllu(tmp_path / "train.conllu", TRAIN)
    assert main(["tag", "--model", "bilstm", "--train", str(train), "--test", str(train),
                 "--epochs", "1", "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_tag_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_conllu(tmp_path / "train.conllu", TRAIN)
    assert main(["tag", "--train", str(train)]) == 2
    assert "needs --train and --test" in capsys.readouterr().err
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tx\n", encoding="utf-8")
    assert main(["tag", "--train", str(bad), "--test", str(bad)]) == 2
    assert "bad.conllu:1:" in capsys.readouterr().err


def test_tour_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "crf" in {s.name for s in tour_steps()}
    assert main(["tour", "--out", str(tmp_path), "--only", "crf"]) == 0
    out = capsys.readouterr().out
    assert "reloaded predicts the same: True" in out and "3 best paths" in out
    assert (tmp_path / "crf" / "tagger.pt").exists()


def _have_ewt() -> bool:
    try:
        ud_ewt_paths()
    except DataNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _have_ewt(), reason="UD English EWT not installed")
@pytest.mark.parametrize("name", ["crf_pos_tagger.py", "bilstm_crf.py"])
def test_example_smoke(name: str, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "examples" / name
    monkeypatch.setattr(sys, "argv", [str(path), "--smoke"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(path), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "precision" in out
