"""Reading (and writing) model files as text and turning character offsets into ``line:column``
positions.

The parsers in :mod:`pgm.io` work on one decoded string and remember only character offsets; a
line and column are computed from an offset when (and only when) an error is reported, so the hot
path pays nothing for position tracking.

Examples
--------
>>> from pgm.io._source import locate
>>> locate("ab\\ncd", 4)
(2, 2)
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from probforge.errors import ParseError
from probforge.files import atomic_write_bytes

__all__ = ["END_OF_FILE", "display_name", "locate", "parse_error", "read_bytes", "read_source",
           "write_source"]

#: The ``token`` recorded in a :class:`~probforge.errors.ParseError` raised at the end of the text.
END_OF_FILE = "<end of file>"

_GZIP_MAGIC = b"\x1f\x8b"


def display_name(path: str | os.PathLike[str]) -> str:
    """Return the name a parse error shows for ``path`` (the path as given, as a string)."""
    return os.fspath(path)


def locate(text: str, offset: int) -> tuple[int, int]:
    """Return the 1-based ``(line, column)`` of character ``offset`` in ``text``.

    Parameters
    ----------
    text : str
        The whole source text.
    offset : int
        A character offset, ``0 <= offset <= len(text)``.

    Returns
    -------
    tuple of int
        ``(line, column)``, both counted from 1; the column counts characters, not bytes.
    """
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def parse_error(
    filename: str, text: str, offset: int, token: str, expected: str, *, fix: str | None = None
) -> ParseError:
    """Build a :class:`~probforge.errors.ParseError` for ``token`` found at ``offset``.

    Parameters
    ----------
    filename : str
        Name shown in the message (a path or ``"<string>"``).
    text : str
        The source text, used to turn ``offset`` into a line and column.
    offset : int
        Character offset of the offending token.
    token : str
        The token found (:data:`END_OF_FILE` at the end of the text).
    expected : str
        What the grammar expected there, in words.
    fix : str, optional
        A remedy, when one exists.
    """
    line, column = locate(text, offset)
    if len(token) > 60:
        token = token[:57] + "..."
    return ParseError(filename, line, column, token, expected, fix=fix)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a file's bytes, decompressing gzip data (detected by its magic bytes, any name).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    probforge.errors.ParseError
        The file starts like gzip data but is not a complete gzip stream.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ParseError(
                display_name(path), 1, 1, raw[:2].hex(), f"a complete gzip stream ({err})"
            ) from err
    return raw


def read_source(path: str | os.PathLike[str]) -> str:
    """Read a model file as text: gzip-compressed files are detected by their magic bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file. ``.gz`` files (any name) are decompressed transparently.

    Returns
    -------
    str
        The decoded text (UTF-8, an optional byte-order mark removed).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    probforge.errors.ParseError
        The content is not valid UTF-8 (the position of the first bad byte is given), or not a
        complete gzip stream.
    """
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        prefix = raw[: err.start].decode("utf-8-sig", errors="replace")
        line, column = locate(prefix, len(prefix))
        raise ParseError(
            display_name(path),
            line,
            column,
            raw[err.start : err.end].hex(),
            "UTF-8 encoded text",
            fix="re-encode the file as UTF-8",
        ) from err


def write_source(path: str | os.PathLike[str], text: str) -> None:
    """Write a model file atomically, UTF-8; a name ending in ``.gz`` is gzip-compressed (with a
    zero timestamp, so equal models give equal files)."""
    payload = text.encode("utf-8")
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    atomic_write_bytes(path, payload)
