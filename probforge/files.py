"""Atomic file writes for every package: a reader sees the old file or the complete new one.

The data go to a temporary file in the destination's directory (so the final rename stays on one
file system), are flushed and ``fsync``-ed, and the temporary file is moved over the destination
with :func:`os.replace`, which is atomic on POSIX and Windows. On any error the temporary file is
removed and the destination is left untouched.

Arguments are checked before anything is written: the destination must be a path whose folder
exists (a missing folder, a parent that is a file, or a destination that is a folder raise
:class:`~probforge.errors.MissingFileError`, a ``FileNotFoundError``), and the content must be of
the right type. Errors of the file system itself (permissions, a full disk) propagate as the
``OSError`` they are, after the temporary file is removed.

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

import codecs
import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from probforge.errors import CheckpointError, FileWriteError, MissingFileError, ValidationError
from probforge.validate import check_device, check_existing_file, check_output_path

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "load_saved_state",
           "state_digest"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its directory must exist; an existing file is replaced (its permission bits
        are kept).
    data : bytes
        The complete new content (``bytes``, ``bytearray`` or ``memoryview``).

    Raises
    ------
    MissingFileError
        The destination's folder does not exist or is not a folder.
    ValidationError
        ``path`` is not a path, is a folder, or ``data`` is not bytes.
    FileWriteError
        Writing failed (permissions, a full disk); also an ``OSError``. The previous file is
        left as it was and no temporary file remains.
    """
    target = check_output_path(path, "atomic_write_bytes")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError("atomic_write_bytes data", "must be bytes",
                              found=type(data).__name__,
                              fix="encode text first, or use atomic_write_text")
    _write(target, bytes(data))


def _write(target: Path, data: bytes) -> None:
    directory = target.parent
    try:
        fd, tmp_path = _create_temporary(directory, target.name)
    except MissingFileError:
        raise
    except OSError as err:  # no permission to create files in the folder, ...
        raise _write_error(target, err) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, target.stat().st_mode & 0o7777)
        os.replace(tmp_path, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        if isinstance(err, OSError):
            raise _write_error(target, err) from err
        raise
    _fsync_directory(directory)


def _write_error(target: Path, err: OSError) -> FileWriteError:
    """A write failure as a named error (still an ``OSError``) naming the file and the cause."""
    error = FileWriteError(f"file {str(target)!r}", "could not be written; the previous file, "
                           "if any, is unchanged", found=err.strerror or str(err),
                           fix="check the folder's permissions and free space")
    error.errno, error.strerror, error.filename = err.errno, err.strerror, str(target)
    return error


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

    Raises
    ------
    MissingFileError
        As :func:`atomic_write_bytes`.
    ValidationError
        ``text`` is not a str, ``encoding`` is unknown, or ``text`` has characters the encoding
        cannot represent.
    """
    target = check_output_path(path, "atomic_write_text")
    if not isinstance(text, str):
        raise ValidationError("atomic_write_text text", "must be a str",
                              found=type(text).__name__, fix="use atomic_write_bytes for bytes")
    if not isinstance(encoding, str):
        raise ValidationError("atomic_write_text encoding", "must be a str",
                              found=repr(encoding))
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValidationError("atomic_write_text encoding", "unknown text encoding",
                              found=repr(encoding), fix="use e.g. 'utf-8'") from None
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as err:
        raise ValidationError(
            "atomic_write_text text",
            f"has a character that {encoding} cannot encode at position {err.start}",
            found=repr(text[err.start : err.end]), fix="use encoding='utf-8'",
        ) from None
    _write(target, data)


def atomic_torch_save(path: str | os.PathLike[str], obj: object) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write_bytes`); read it back
    with ``torch.load(path, weights_only=True)``.

    Raises
    ------
    MissingFileError
        As :func:`atomic_write_bytes` (checked before ``obj`` is serialised).
    ValidationError
        ``obj`` cannot be serialised by ``torch.save`` (a lambda, a lock, ...); nothing is
        written.
    """
    import io
    import pickle

    import torch

    target = check_output_path(path, "atomic_torch_save")
    buffer = io.BytesIO()
    try:
        torch.save(obj, buffer)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise ValidationError("atomic_torch_save obj", "cannot be serialised by torch.save",
                              found=f"{type(err).__name__}: {err}",
                              fix="save tensors, numbers, strings and containers of them") from err
    _write(target, buffer.getvalue())


def _create_temporary(directory: Path, name: str) -> tuple[int, Path]:
    """Create a fresh temporary file next to the destination; the umask applies to its mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        candidate = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
        except (FileNotFoundError, NotADirectoryError) as err:  # the folder went away since
            raise MissingFileError(f"folder {str(directory)!r}", "does not exist",
                                   found=str(err)) from err


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


def state_digest(state: dict[str, Any]) -> str:
    """A BLAKE2b checksum of a saved state (every field but ``"checksum"``), as hex.

    Tensors count by dtype, shape and bytes; dicts by sorted keys; lists and tuples in order;
    other values by type and ``repr``. A model file stores it under ``"checksum"`` so that
    loading detects a damaged file whose values would otherwise still look plausible.

    Examples
    --------
    >>> import torch
    >>> a = state_digest({"w": torch.zeros(2), "n": 3})
    >>> a == state_digest({"n": 3, "w": torch.zeros(2), "checksum": "x"})
    True
    >>> a == state_digest({"w": torch.ones(2), "n": 3})
    False
    """
    h = hashlib.blake2b(digest_size=16)

    def feed(value: Any) -> None:
        import torch

        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            h.update(b"D")
            for key in sorted(value, key=str):
                feed(str(key))
                feed(value[key])
        elif isinstance(value, list | tuple):
            h.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        else:
            h.update(f"V{type(value).__name__}:{value!r};".encode())

    feed({key: v for key, v in state.items() if key != "checksum"})
    return h.hexdigest()


def load_saved_state(
    path: str | os.PathLike[str],
    subject: str,
    file_format: str,
    *,
    kind: str,
    version: int | None = None,
    map_location: Any = "cpu",
    fix: str | None = None,
) -> dict[str, Any]:
    """Read a dict saved with :func:`atomic_torch_save`, checked before anything uses it.

    The file is read with ``torch.load(weights_only=True)``; it must be a dict whose
    ``"format"`` is ``file_format`` (and ``"version"`` is ``version``, when given); a
    ``"checksum"`` entry, where the file has one, must equal :func:`state_digest` of the rest.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    subject : str
        What it is, for messages (``"CRF tagger file"``).
    file_format : str
        The format tag the writer stores.
    kind : str
        What such a file is called, for messages (``"CRFTagger file"``).
    version : int, optional
        The format version this code reads.
    map_location : device, optional
        Where tensors go (must exist on this machine); default CPU.
    fix : str, optional
        The remedy for a file that is not of this format or is damaged.

    Raises
    ------
    MissingFileError
        No such file.
    CheckpointError
        Unreadable, of another format or version, or its content does not match its checksum.
    """
    import torch

    file = check_existing_file(path, subject)
    if map_location is not None:
        map_location = check_device(map_location, f"{subject} map_location")
    where = f"{subject} {str(path)!r}"
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as err:  # any corruption of the archive or of the pickle
        raise CheckpointError(where, "could not be read (corrupt, or not a weights-only torch "
                              "file)", found=f"{type(err).__name__}: {str(err)[:200]}",
                              fix=fix) from err
    if not isinstance(state, dict) or state.get("format") != file_format:
        raise CheckpointError(where, f"is not a {kind} (format tag {file_format!r})",
                              found=repr(state.get("format")) if isinstance(state, dict)
                              else type(state).__name__, fix=fix)
    if version is not None and state.get("version") != version:
        raise CheckpointError(where, f"has format version {state.get('version')!r}, this code "
                              f"reads {version}", fix=fix)
    if "checksum" in state and state["checksum"] != state_digest(state):
        raise CheckpointError(where, "is corrupted: its content does not match its checksum",
                              fix=fix)
    return state
