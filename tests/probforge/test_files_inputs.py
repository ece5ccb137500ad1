"""Atomic writes (probforge.files): checked arguments, named errors, no temporary file left.

Every call goes through ``tests.robustness.outcome`` (a typed error or a value); after each one
the folder must hold nothing but the destination (never a ``.*.tmp`` file).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probforge.errors import FileWriteError, MissingFileError, ValidationError
from probforge.files import atomic_torch_save, atomic_write_bytes, atomic_write_text
from tests.robustness import outcome


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_missing_folder_is_a_named_error(tmp_path: Path) -> None:
    # used to be a raw FileNotFoundError naming the hidden temporary file
    target = tmp_path / "no" / "such" / "folder" / "model.uai"
    for write in (lambda: atomic_write_text(target, "x"),
                  lambda: atomic_write_bytes(target, b"x"),
                  lambda: atomic_torch_save(target, {"a": torch.zeros(2)})):
        with pytest.raises(MissingFileError, match="folder does not exist") as err:
            write()
        assert isinstance(err.value, FileNotFoundError)  # callers catching OSError still do
        assert ".tmp" not in str(err.value) and "mkdir" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_destinations(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(ValidationError, match="is a folder"):
        atomic_write_text(tmp_path, "x")  # used to be IsADirectoryError from os.replace
    with pytest.raises(MissingFileError, match="parent is not a folder"):
        atomic_write_text(tmp_path / "afile" / "x.txt", "x")
    with pytest.raises(ValidationError, match="must not be empty"):
        atomic_write_text("", "x")
    for bad in (3, None, b"bytes-path", ["a"]):
        with pytest.raises(ValidationError, match="must be a path"):
            atomic_write_bytes(bad, b"x")  # type: ignore[arg-type]
    assert (tmp_path / "afile").read_text() == "keep"
    assert leftovers(tmp_path) == []


def test_bad_contents(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(ValidationError, match="must be a str"):
        atomic_write_text(target, b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="must be bytes"):
        atomic_write_bytes(target, "text")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown text encoding"):
        atomic_write_text(target, "x", encoding="utf-99")
    with pytest.raises(ValidationError, match="cannot encode at position 2"):
        atomic_write_text(target, "ab\u00e9", encoding="ascii")
    with pytest.raises(ValidationError, match="cannot be serialised"):
        atomic_torch_save(target, {"f": lambda: 0})
    assert target.read_text() == "old"  # untouched by every refused call
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    def broken(*args: object) -> None:
        raise failure

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(type(failure)) as err:
        atomic_write_bytes(target, b"new")
    if isinstance(failure, OSError):  # a named error that callers catching OSError still see
        assert isinstance(err.value, FileWriteError) and "model.bin" in str(err.value)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_a_folder_without_write_permission_is_a_named_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> int:
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FileWriteError, match="Permission denied") as err:
        atomic_write_text(tmp_path / "x.txt", "hi")
    assert isinstance(err.value, OSError) and err.value.errno == 13


PATHS = st.one_of(st.sampled_from(["ok.txt", "sub/ok.txt", "", ".", "missing/x/y.txt"]),
                  st.integers(), st.none(), st.binary(max_size=3))
CONTENT = st.one_of(st.text(max_size=20), st.binary(max_size=20), st.integers(), st.none())


@settings(max_examples=40)
@given(path=PATHS, content=CONTENT, kind=st.sampled_from(["text", "bytes"]))
def test_writes_give_a_named_error_or_the_exact_content(
    tmp_path_factory: pytest.TempPathFactory, path, content, kind: str  # type: ignore[no-untyped-def]
) -> None:
    folder = tmp_path_factory.mktemp("w")
    (folder / "sub").mkdir()
    arg = str(folder / path) if isinstance(path, str) and path else path
    write = atomic_write_text if kind == "text" else atomic_write_bytes
    got = outcome(write, arg, content)
    good_path = path in ("ok.txt", "sub/ok.txt")
    good_content = isinstance(content, str if kind == "text" else bytes)
    if good_path and good_content:
        assert got.kind == "value", got.error
        target = folder / path
        assert (target.read_bytes().decode("utf-8") if kind == "text"
                else target.read_bytes()) == content
    else:
        assert got.kind == "error", got
    for f in (folder, folder / "sub"):
        assert leftovers(f) == []


def test_round_trip_and_permissions_kept(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    atomic_torch_save(target, {"w": torch.arange(3.0)})
    os.chmod(target, 0o600)
    atomic_torch_save(target, {"w": torch.arange(4.0)})
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(4.0))
    assert (target.stat().st_mode & 0o777) == 0o600
    assert leftovers(tmp_path) == []


def test_load_saved_state_checks_before_anything_is_used(tmp_path: Path) -> None:
    import torch

    from probforge.errors import CheckpointError
    from probforge.files import load_saved_state, state_digest

    state = {"format": "demo", "version": 2, "w": torch.ones(3)}
    state["checksum"] = state_digest(state)
    atomic_torch_save(tmp_path / "ok.pt", state)
    back = load_saved_state(tmp_path / "ok.pt", "demo file", "demo", kind="demo", version=2)
    assert torch.equal(back["w"], state["w"])
    with pytest.raises(MissingFileError, match="file not found"):
        load_saved_state(tmp_path / "no.pt", "demo file", "demo", kind="demo")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_saved_state(tmp_path / "junk.pt", "demo file", "demo", kind="demo")
    with pytest.raises(CheckpointError, match="is not a other"):
        load_saved_state(tmp_path / "ok.pt", "demo file", "other", kind="other")
    with pytest.raises(CheckpointError, match="format version 2, this code reads 3"):
        load_saved_state(tmp_path / "ok.pt", "demo file", "demo", kind="demo", version=3)
    torch.save({**state, "w": torch.ones(3) * 2}, tmp_path / "changed.pt")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        load_saved_state(tmp_path / "changed.pt", "demo file", "demo", kind="demo")
    with pytest.raises(ValidationError, match="map_location"):
        load_saved_state(tmp_path / "ok.pt", "demo file", "demo", kind="demo",
                         map_location="gpu")
