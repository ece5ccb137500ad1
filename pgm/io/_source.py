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
import zlib
from pathlib import Path
from typing import Any

from probforge import validate
from probforge.errors import MissingFileError, ParseError, ValidationError
from probforge.files import atomic_write_bytes, atomic_write_text
from probforge.validate import check_existing_file, check_int

__all__ = [
    "END_OF_FILE",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_INT_DIGITS",
    "MAX_TABLE_AXES",
    "bounded_int",
    "check_limit",
    "check_output_path",
    "check_text",
    "display_name",
    "locate",
    "parse_error",
    "read_bytes",
    "read_source",
    "write_source",
]

#: The ``token`` recorded in a :class:`~probforge.errors.ParseError` raised at the end of the text.
END_OF_FILE = "<end of file>"

#: Whole numbers in files (counts, cardinalities, indices) longer than this many digits (leading
#: zeros aside) are refused: no real count needs them, and Python refuses to convert strings of
#: more than 4300 digits at all.
MAX_INT_DIGITS = 18

#: Most axes a table read from a file may have: numpy 1.x (which probforge supports) holds at most
#: 32 dimensions, and a CPT or potential over more variables is never dense in practice.
MAX_TABLE_AXES = 32

_GZIP_MAGIC = b"\x1f\x8b"
#: Largest decompressed size of a gzip-compressed model file (the largest bnlearn network's
#: text is tens of MB): a small "gzip bomb" is refused before it fills the memory.
MAX_DECOMPRESSED_BYTES = 2**30


def bounded_int(digits: str) -> int | None:
    """The value of a string of ASCII digits (an optional leading ``+``), or None when it has more
    than :data:`MAX_INT_DIGITS` significant digits (so it is never handed to ``int`` unbounded).

    Examples
    --------
    >>> from pgm.io._source import bounded_int
    >>> bounded_int("+007"), bounded_int("1" * 40)
    (7, None)
    """
    body = digits.lstrip("+").lstrip("0")
    if len(body) > MAX_INT_DIGITS:
        return None
    return int(body or "0")


def check_text(text: Any, subject: str, reader: str) -> str:
    """``text`` if it is a ``str``, else a :class:`ValidationError` pointing at ``reader``."""
    if not isinstance(text, str):
        raise ValidationError(
            subject, "must be the file's text (a str)", found=type(text).__name__,
            fix=f"decode bytes first, or read the file with {reader}(path)",
        )
    return text


def check_limit(value: Any, subject: str) -> int:
    """A size limit (``max_cpt_entries``, ``max_table_entries``): an ``int >= 1``."""
    return check_int(value, subject, minimum=1)


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


def read_bytes(path: str | os.PathLike[str], subject: str = "model file") -> bytes:
    """Read a file's bytes, decompressing gzip data (detected by its magic bytes, any name).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    subject : str, default "model file"
        What the file is, for error messages.

    Raises
    ------
    probforge.errors.MissingFileError
        The file does not exist, is not a regular file (a directory, a device, ...) or cannot be
        read (permissions); it is a ``FileNotFoundError`` too.
    probforge.errors.ValidationError
        ``path`` is not a ``str`` or ``os.PathLike``.
    probforge.errors.ParseError
        The file starts like gzip data but is not a complete gzip stream.
    """
    try:
        p = check_existing_file(path, subject)
    except OSError as err:
        if isinstance(err, MissingFileError):
            raise
        # a name too long for the file system, ...: os.stat itself fails
        raise MissingFileError(
            subject, f"cannot be accessed ({err.strerror or type(err).__name__})",
            found=os.fspath(path)[:200], fix="check the path",
        ) from err
    try:
        raw = p.read_bytes()
    except OSError as err:  # permissions, a file removed meanwhile, an I/O error
        raise MissingFileError(
            subject, f"cannot be read ({err.strerror or type(err).__name__})", found=str(p),
            fix="check that the file exists and that you may read it",
        ) from err
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(raw, display_name(path), MAX_DECOMPRESSED_BYTES)
    return raw


def _gunzip(raw: bytes, name: str, limit: int) -> bytes:
    """Decompress every gzip member of ``raw``, refusing more than ``limit`` bytes of output."""
    out = bytearray()
    data = raw
    while data.strip(b"\x00"):  # like gzip.decompress, trailing zero padding ends the stream
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(data, limit - len(out) + 1)
        except zlib.error as err:
            raise ParseError(name, 1, 1, raw[:2].hex(), f"a complete gzip stream ({err})") \
                from err
        if len(out) > limit:
            raise ParseError(name, 1, 1, raw[:2].hex(),
                             f"gzip data that expand to at most {limit} bytes",
                             fix="decompress the file yourself if it really is that large")
        if not d.eof:
            raise ParseError(name, 1, 1, raw[:2].hex(), "a complete gzip stream (truncated)")
        data = d.unused_data
    return bytes(out)


def read_source(path: str | os.PathLike[str], subject: str = "model file") -> str:
    """Read a model file as text: gzip-compressed files are detected by their magic bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file. ``.gz`` files (any name) are decompressed transparently.
    subject : str, default "model file"
        What the file is, for error messages.

    Returns
    -------
    str
        The decoded text (UTF-8, an optional byte-order mark removed).

    Raises
    ------
    probforge.errors.MissingFileError
        See :func:`read_bytes`.
    probforge.errors.ParseError
        The content is not valid UTF-8 (the position of the first bad byte is given), or not a
        complete gzip stream.
    """
    raw = read_bytes(path, subject)
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


def check_output_path(path: Any, subject: str = "output file") -> Path:
    """``path`` as a ``Path`` a file can be written to: its directory exists, it is not a directory.

    See :func:`probforge.validate.check_output_path`.

    Raises
    ------
    probforge.errors.ValidationError
        ``path`` is not a ``str`` / ``os.PathLike``, or names an existing directory.
    probforge.errors.MissingFileError
        The directory it would go in does not exist (or is not a directory).
    """
    return validate.check_output_path(path, subject)


def write_source(
    path: str | os.PathLike[str], text: str, subject: str = "output file", *,
    compress_gz: bool = True,
) -> None:
    """Write a model file atomically, UTF-8; with ``compress_gz``, a name ending in ``.gz`` is
    gzip-compressed (with a zero timestamp, so equal models give equal files).

    Raises
    ------
    probforge.errors.ValidationError, probforge.errors.MissingFileError
        See :func:`check_output_path` (checked before anything is written).
    probforge.errors.FileWriteError
        The write itself failed (permissions, a full disk; also an ``OSError``); the
        destination is left untouched.
    """
    p = check_output_path(path, subject)
    if not compress_gz:
        atomic_write_text(p, text)
        return
    payload = text.encode("utf-8")
    if os.fspath(p).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    atomic_write_bytes(p, payload)
