"""``probforge train`` and ``probforge sample --checkpoint`` under the command-line convention.

Every ``--config`` value is checked (type, range, known key, given once) before data or torch
are loaded; options that a mode ignores are refused; output formats follow the suffix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.commands import DATA_SETS, checked_overrides
from generative.config_schema import DEFAULTS, KEY_RULES, TASK_KINDS
from generative.data import DATASETS, info
from generative.registry import build_task, default_config
from probforge.cli import build_parser, main
from probforge.errors import ProbforgeError, UsageError


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("probforge: error: ")


def test_lists_match_the_library() -> None:
    assert set(DATA_SETS) == set(DATASETS)
    for kind, defaults in DEFAULTS.items():
        assert kind in TASK_KINDS and set(defaults) <= set(KEY_RULES)


def test_repeated_config_flags_accumulate(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "vae"
    code, _, err = _run(["train", "vae", "--data", "moons", "--out", str(out), "--steps", "2",
                         "--train-examples", "64", "--eval-examples", "32", "--batch-size",
                         "32", "--config", "latent_dim=3", "--config", "beta=2.0",
                         "hidden=[16]", "--no-progress"], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["latent_dim"] == 3 and config["beta"] == 2.0 and config["hidden"] == [16]


@pytest.mark.parametrize("argv, text", [
    (["--steps", "0"], "argument --steps: must be >= 1, found 0"),
    (["--epochs", "0"], "argument --epochs: must be >= 1"),
    (["--steps", "2", "--epochs", "1"], "not allowed with argument --steps"),
    (["--config", "kind=gan"], "--config kind cannot be set"),
    (["--config", "event_shape=[3]"], "--config event_shape cannot be set"),
    (["--config", "latent_dim=abc"], "key 'latent_dim' must be an int >= 1 (found 'abc')"),
    (["--config", "latent_dim=2.0"], "key 'latent_dim' must be an int >= 1"),
    (["--config", "latent_dim=true"], "key 'latent_dim' must be an int >= 1"),
    (["--config", "lr=-1"], "key 'lr' must be a finite number > 0 (found -1)"),
    (["--config", "beta=NaN"], "key 'beta' must be a finite number >= 0"),
    (["--config", "hidden=[0]"], "key 'hidden' must be a list of ints >= 1"),
    (["--config", "latent_dim=3", "--config", "latent_dim=4"], "given twice"),
    (["--config", "no_such_key=1"], "unknown key(s) 'no_such_key'"),
    (["--config", "latent_dim"], "expected KEY=VALUE"),
    (["--progress", "--no-progress"], "--progress and --no-progress are both given"),
    (["--batch-size", "0"], "must be >= 1"),
    (["--eval-every", "-1"], "must be >= 0"),
    (["--device", "gpu"], "expected cpu, cuda, cuda:N or mps"),
    (["--resume", "--config", "beta=2"], "cannot change the configuration of a resumed run"),
])
def test_train_mistakes_exit_2_before_anything_runs(
        argv: list[str], text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, stdout, err = _run(["train", "vae", "--data", "moons", "--out", str(out), *argv],
                             capsys)
    assert code == 2 and stdout == ""
    assert _one_error_line(err) and text in err, err
    assert not out.exists()  # nothing was written


def test_unknown_kind_and_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["train", "vea", "--data", "moons", "--out", str(tmp_path)],
                 ["train", "vae", "--data", "mnist", "--out", str(tmp_path)]):
        code, _, err = _run(argv, capsys)
        assert code == 2 and _one_error_line(err) and "invalid choice" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["train", "vae", "--data", "moons", "--out", str(tmp_path / "r"),
                         "--device", "cuda"], capsys)
    assert code == 2 and _one_error_line(err) and "CUDA is not available" in err
    code, _, err = _run(["sample", "gaussian", "--device", "cuda:0"], capsys)
    assert code == 2 and "CUDA is not available" in err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gan")
    assert main(["train", "gan", "--data", "8gaussians", "--out", str(out), "--steps", "2",
                 "--train-examples", "64", "--eval-examples", "32", "--batch-size", "32",
                 "--no-progress"]) == 0
    return out / "checkpoint.pt"


@pytest.mark.parametrize("argv, text", [
    (["--sampler", "nuts"], "--sampler does not apply with --checkpoint"),
    (["--sampler", "rwmh"], "--sampler does not apply with --checkpoint"),
    (["--chains", "2", "--draws", "5"], "--chains, --draws do not apply with --checkpoint"),
    (["--out", "g.txt"], "'g.txt' must end in .png or .pt"),
    (["--out", "nofolder/g.png"], "does not exist"),
    (["--n", "0"], "argument --n: must be >= 1"),
    (["--n", "2", "--n", "3"], "--n is given twice"),
])
def test_sample_checkpoint_mistakes(argv: list[str], text: str, checkpoint: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["sample", "--checkpoint", str(checkpoint), *argv], capsys)
    assert code == 2 and _one_error_line(err) and text in err, err


def test_sample_checkpoint_writes_the_format_its_suffix_names(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, pt = tmp_path / "g.png", tmp_path / "g.pt"
    assert _run(["sample", "--checkpoint", str(checkpoint), "--n", "8", "--out", str(png)],
                capsys)[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run(["sample", "--checkpoint", str(checkpoint), "--n", "8", "--out", str(pt)],
                capsys)[0] == 0
    x = torch.load(pt, weights_only=True)
    assert x.shape == (8, 2) and bool(torch.isfinite(x).all())


# ---------------------------------------------------------------------------------------------
# property: a --config value is accepted only if the task it builds accepts it too

_VALUES = st.one_of(
    st.integers(-3, 300).map(str), st.floats(-2, 2).map(repr),
    st.sampled_from(["abc", "true", "null", "[]", "[8]", "[8, 0]", "[1.5]", "\"x\"",
                     "learned", "mlp", "conv", "gaussian", "bernoulli", "relu", "NaN",
                     "[0.5, 0.9]", "[0.5]", "{}", "1e400", "-0"]))


@settings(max_examples=40)
@given(kind=st.sampled_from(["vae", "ae", "dae", "gan", "wgan-gp"]),
       items=st.lists(st.tuples(st.sampled_from(sorted(KEY_RULES)), _VALUES), max_size=3))
def test_config_checked_at_parse_time_agrees_with_build_task(
        kind: str, items: list[tuple[str, str]]) -> None:
    argv = ["train", kind, "--data", "moons", "--out", "unused"]
    for key, value in items:
        argv += ["--config", f"{key}={value}"]
    try:
        args = build_parser().parse_args(argv)
        overrides = checked_overrides(args)
    except UsageError:
        return
    config = default_config(kind, info("moons"))
    config.update(overrides)
    try:
        task = build_task(config)
    except ProbforgeError:
        return  # a value of the right type that the model refuses (e.g. an unknown arch)
    for key, value in overrides.items():  # nothing was changed on the way
        assert task.config()[key] == value or key in ("lr", "lr_d", "betas", "n_critic",
                                                      "optimizer")
