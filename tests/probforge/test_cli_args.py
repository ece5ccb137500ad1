"""The command-line convention (probforge.cli_args) and the exit statuses of probforge.cli.main."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import probforge.cli as cli
from probforge import cli_args
from probforge.cli_args import (
    ArgumentParser,
    BooleanFlag,
    assignment,
    assignments,
    device_name,
    existing_file,
    int_at_least,
    output_file,
    real_at_least,
    refuse_given,
    refuse_together,
)
from probforge.errors import UsageError, ValidationError


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="demo")
    p.add_argument("-e", "--evidence", nargs="+", default=[])
    p.add_argument("--steps", type=int_at_least(1), default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_false", dest="loud")
    p.add_argument("--progress", action=BooleanFlag, default=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--map", action="store_true")
    g.add_argument("--pr", action="store_true")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("run")
    s.add_argument("--n", type=int_at_least(0))
    s.add_argument("--x", action="extend", nargs="+", type=int)
    return p


def test_repeated_multi_value_flags_accumulate() -> None:
    args = _parser().parse_args(["-e", "a=1", "--evidence", "b=2", "c=3", "-e", "d=4"])
    assert args.evidence == ["a=1", "b=2", "c=3", "d=4"]
    assert _parser().parse_args([]).evidence == []
    args = _parser().parse_args(["run", "--x", "1", "--x", "2", "3"])
    assert args.x == [1, 2, 3]


def test_first_occurrence_replaces_a_non_empty_default() -> None:
    p = ArgumentParser(prog="demo")
    p.add_argument("-q", nargs="+", default=["all"])
    assert p.parse_args([]).q == ["all"]
    assert p.parse_args(["-q", "a", "-q", "b"]).q == ["a", "b"]


@pytest.mark.parametrize("argv, text", [
    (["--steps", "3", "--steps", "4"], "--steps is given twice"),
    (["--steps", "3", "--steps", "3"], "--steps is given twice"),
    (["--json", "--json"], "--json is given twice"),
    (["--quiet", "--quiet"], "--quiet is given twice"),
    (["--progress", "--no-progress"], "--progress and --no-progress are both given"),
    (["--map", "--pr"], "not allowed with argument --map"),
    (["run", "--n", "1", "--n", "2"], "--n is given twice"),
    (["--steps", "0"], "must be >= 1, found 0"),
    (["--steps", "2.0"], "expected a whole number"),
    (["--steps", "abc"], "expected a whole number"),
    (["--nope"], "unrecognized arguments"),
])
def test_refusals_raise_usage_error(argv: list[str], text: str) -> None:
    with pytest.raises(UsageError, match=text) as err:
        _parser().parse_args(argv)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ValidationError)


def test_given_sees_options_typed_with_their_default_value() -> None:
    args = _parser().parse_args(["--steps", "10"])
    assert cli_args.given(args, "steps") and not cli_args.given(args, "json")
    with pytest.raises(UsageError, match=r"--steps does not apply with X\. Fix: drop --steps"):
        refuse_given(args, "demo", ["steps", "json"], "with X")
    refuse_given(_parser().parse_args([]), "demo", ["steps"], "with X")
    args = _parser().parse_args(["--steps", "2", "--json"])
    with pytest.raises(UsageError, match="--steps and --json cannot be used together"):
        refuse_together(args, "demo", "steps", "json")


def test_value_types() -> None:
    assert int_at_least(0)("0") == 0 and int_at_least(-3)("-2") == -2
    for bad in ("1e3", "", " ", "0x10", "True"):
        with pytest.raises(argparse.ArgumentTypeError):
            int_at_least(0)(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[1, 3\]"):
        int_at_least(1, 3)("4")
    assert real_at_least(0.0, strict=True)("1e-3") == 1e-3
    for bad in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            real_at_least(0.0, strict=True)(bad)
    assert real_at_least(0.0)("0") == 0.0
    assert assignment("a=b=c") == ("a", "b=c") and assignment("k=") == ("k", "")
    for bad in ("k", "=v", " =v"):
        with pytest.raises(argparse.ArgumentTypeError):
            assignment(bad)
    assert device_name("cuda:1") == "cuda:1"
    for bad in ("gpu", "cuda:", "CPU"):
        with pytest.raises(argparse.ArgumentTypeError):
            device_name(bad)


def test_file_types(tmp_path: Path) -> None:
    f = tmp_path / "m.bif"
    f.write_text("x")
    assert existing_file(str(f)) == str(f)
    with pytest.raises(argparse.ArgumentTypeError, match="file not found"):
        existing_file(str(tmp_path / "nope"))
    with pytest.raises(argparse.ArgumentTypeError, match="not a regular file"):
        existing_file(str(tmp_path))
    png = output_file(".png", ".pt")
    assert png(str(tmp_path / "g.PNG")) == str(tmp_path / "g.PNG")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must end in \.png or \.pt"):
        png(str(tmp_path / "g.txt"))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        png(str(tmp_path / "no" / "g.png"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        output_file()(str(tmp_path))


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["1", "2"])), max_size=6))
def test_assignments_never_last_one_wins(pairs: list[tuple[str, str]]) -> None:
    keys = [k for k, _ in pairs]
    if len(set(keys)) == len(keys):
        assert assignments(pairs, "demo", "--config") == dict(pairs)
    else:
        with pytest.raises(UsageError, match="given twice"):
            assignments(pairs, "demo", "--config")


# ---------------------------------------------------------------------------------------------
# probforge.cli.main: exit statuses and messages


def _with_command(monkeypatch: pytest.MonkeyPatch, run: object) -> None:
    """Add a subcommand ``boom`` whose function is ``run`` to the parser main() builds."""
    module = types.ModuleType("fake_commands")

    def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        p = sub.add_parser("boom")
        p.set_defaults(func=run)

    module.register = register  # type: ignore[attr-defined]
    real = cli._command_modules
    monkeypatch.setattr(cli, "_command_modules", lambda: [*real(), module])


def _raise(exc: BaseException) -> object:
    def run(args: argparse.Namespace) -> int:
        raise exc

    return run


@pytest.mark.parametrize("exc, code", [
    (ValidationError("thing", "must be >= 1", found=0), 2),
    (FileNotFoundError(2, "No such file or directory", "x.bif"), 2),
    (PermissionError(13, "Permission denied", "/root/x"), 2),
])
def test_user_mistakes_exit_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            exc: BaseException, code: int) -> None:
    _with_command(monkeypatch, _raise(exc))
    assert cli.main(["boom"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("probforge: error: ")
    assert "Traceback" not in err


def test_failed_runs_exit_1_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from probforge.errors import ConvergenceError

    _with_command(monkeypatch, _raise(ConvergenceError("training", "loss is NaN at step 3")))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loss is NaN at step 3" in err


def test_internal_errors_print_a_traceback_and_ask_for_a_report(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _with_command(monkeypatch, _raise(IndexError("index 0 is out of bounds")))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "IndexError" in err
    assert "probforge: internal error: IndexError" in err and "please report it" in err


def test_parse_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["nope"], ["tour", "--seed", "-1"], ["tour", "--seed", "1", "--seed", "2"],
                 ["tour", "--only", "nope"], ["infer"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("probforge: error: "), argv


def test_tour_only_accumulates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tour", "--out", str(tmp_path), "--only", "core", "--only", "core"]) == 0
    assert "1 step(s)" in capsys.readouterr().out
    f = tmp_path / "file"
    f.write_text("")
    assert cli.main(["tour", "--out", str(f), "--only", "core"]) == 2


def test_help_and_version_do_not_import_torch() -> None:
    code = ("import sys\nfrom probforge.cli import main\n"
            "for argv in (['--help'], ['infer', '--help'], ['train', '--help'], "
            "['sample', '--help'], ['tag', '--help'], ['--version']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n"
            "        assert e.code == 0, (argv, e.code)\n"
            "heavy = [m for m in ('torch', 'numpy', 'numba', 'pgm.factor', 'samplers.run') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_lazy_packages_export_what_they_list() -> None:
    import importlib
    import pkgutil

    for name in ("pgm", "samplers", "pgm.hmm", "pgm.crf"):
        pkg = importlib.import_module(name)
        submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
        assert not set(pkg.__all__) & submodules, name
        for attr in pkg.__all__:
            assert getattr(pkg, attr) is not None
            assert attr in dir(pkg)
        with pytest.raises(AttributeError):
            pkg.no_such_name  # noqa: B018
