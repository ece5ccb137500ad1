"""Atomic file writes for every package: a reader sees the old file or the complete new one.

The data go to a temporary file in the destination's directory (so the final rename stays on one
file system), are flushed and ``fsync``-ed, and the temporary file is moved over the destination
with :func:`os.replace`, which is atomic on POSIX and Windows. On any error the temporary file is
removed and the destination is left untouched.

Examples
--------
>>> import pathlib, tempfile
>>> from probforge.files import atomic_write_text
>>> target = pathlib.Path(tempfile.mkdtemp()) / "model.uai"
>>> atomic_write_text(target, "MARKOV\\n0\\n\\n0\\n")
>>> target.read_text()
'MARKOV\\n0\\n\\n0\\n'
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its directory must exist; an existing file is replaced (its permission bits
        are kept).
    data : bytes
        The complete new content.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp_path = _create_temporary(directory, target.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, target.stat().st_mode & 0o7777)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
    _fsync_directory(directory)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    text : str
        The complete new content; newlines are written as ``"\\n"`` on every platform.
    encoding : str, default "utf-8"
        Text encoding.
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(path: str | os.PathLike[str], obj: object) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write_bytes`); read it back
    with ``torch.load(path, weights_only=True)``."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _create_temporary(directory: Path, name: str) -> tuple[int, Path]:
    """Create a fresh temporary file next to the destination; the umask applies to its mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        candidate = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX only; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
