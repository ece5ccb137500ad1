"""``probforge tag`` under the command-line convention: options a model would ignore are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from probforge.cli import main
from tests.pgm.crf.test_crf_commands_examples import TRAIN, write_conllu


@pytest.mark.parametrize("argv, text", [
    (["--model", "bilstm", "--c2", "0.5"], "--c2 does not apply to --model bilstm"),
    (["--model", "bilstm", "--max-iterations", "5"], "--max-iterations does not apply"),
    (["--model", "bilstm", "--algorithm", "adam"], "--algorithm does not apply"),
    (["--epochs", "3"], "--epochs does not apply to the crf with L-BFGS"),
    (["--algorithm", "adam", "--max-iterations", "3"], "--max-iterations does not apply to "
     "the crf with Adam"),
    (["--c1", "-1"], "argument --c1: must be >= 0"),
    (["--limit", "0"], "argument --limit: must be >= 1"),
    (["--max-iterations", "0"], "must be >= 1"),
    (["--seed", "1", "--seed", "2"], "--seed is given twice"),
    (["--data", "somewhere"], "--data cannot be combined with --train/--dev/--test"),
])
def test_tag_mistakes_exit_2_with_one_line(argv: list[str], text: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    train = write_conllu(tmp_path / "train.conllu", TRAIN)
    code = main(["tag", "--train", str(train), "--test", str(train), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("probforge: error: ")
    assert text in err, err


def test_tag_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "--train", str(tmp_path / "no.conllu"), "--test", "x"]) == 2
    assert "file not found" in capsys.readouterr().err
    train = write_conllu(tmp_path / "train.conllu", TRAIN)
    assert main(["tag", "--train", str(train), "--test", str(train), "--save",
                 str(tmp_path / "no" / "m.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
