"""Reading IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

An IDX file starts with a 4-byte magic number ``0x00 0x00 TYPE NDIM`` (``TYPE`` 0x08 = unsigned
byte, the only type these data sets use), then ``NDIM`` big-endian 32-bit sizes, then the
values in row-major order. :func:`read_idx` checks the magic number, the declared sizes against
the expected ones and a size limit before allocating anything (an uncompressed file's size is
compared with the declared one before the payload is read; a compressed one is read in chunks,
so memory follows what the file really holds, never a size declared in its header), and then
that the file holds exactly that many bytes; a violation raises
:class:`~probforge.errors.ParseError` naming the file and the byte offset.

Examples
--------
>>> import gzip, struct, tempfile, os
>>> from generative.data.idx import read_idx
>>> d = tempfile.mkdtemp()
>>> path = os.path.join(d, "tiny-idx1-ubyte.gz")
>>> with gzip.open(path, "wb") as f:
...     _ = f.write(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 8, 9]))
>>> read_idx(path, expected_ndim=1).tolist()
[7, 8, 9]
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from probforge.errors import ParseError, ValidationError
from probforge.validate import check_existing_file, check_int

__all__ = ["MAX_BYTES", "read_idx"]

#: Largest payload :func:`read_idx` will allocate (declared sizes beyond it are rejected).
MAX_BYTES = 1 << 31
_UBYTE = 0x08


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


#: Bytes read at a time: the payload buffer grows with what the file really holds, never to a
#: size declared in a (possibly corrupt) header.
_CHUNK = 1 << 20


def _read_exactly(f: BinaryIO, count: int) -> bytearray:
    """Up to ``count`` bytes, read in chunks (a short result means the file ended first)."""
    buf = bytearray()
    while len(buf) < count:
        piece = f.read(min(_CHUNK, count - len(buf)))
        if not piece:
            break
        buf += piece
    return buf


def read_idx(path: str | os.PathLike[str], *, expected_ndim: int,
             expected_shape: Sequence[int | None] | None = None) -> Tensor:
    """The ``uint8`` tensor stored in an IDX file.

    Parameters
    ----------
    path : path-like
        ``.gz`` files are decompressed on the fly.
    expected_ndim : int
        Number of dimensions the file must declare (3 for images, 1 for labels), in 1..255.
    expected_shape : sequence of int or None, optional
        Sizes the declared shape must have (``expected_ndim`` entries); None entries are not
        checked.

    Returns
    -------
    Tensor, dtype uint8, the declared shape
        A declared size of 0 gives an empty tensor of that shape.

    Raises
    ------
    ParseError
        Wrong magic number, dimension count or sizes, a payload over :data:`MAX_BYTES`, a file
        shorter or longer than declared, or a damaged gzip stream.
    MissingFileError
        ``path`` does not exist or is not a regular file.
    ValidationError
        ``expected_ndim`` / ``expected_shape`` are not valid.
    """
    p = check_existing_file(path, "IDX file")
    expected_ndim = check_int(expected_ndim, "read_idx expected_ndim", minimum=1, maximum=255)
    want: list[int | None] | None = None
    if expected_shape is not None:
        if isinstance(expected_shape, str | bytes) or not isinstance(expected_shape, Sequence) \
                or len(expected_shape) != expected_ndim:
            raise ValidationError("read_idx expected_shape", f"must list {expected_ndim} sizes "
                                  "(int or None)", found=repr(expected_shape))
        want = [None if w is None else check_int(w, f"read_idx expected_shape[{i}]", minimum=0)
                for i, w in enumerate(expected_shape)]
    name = str(p)
    plain_size = p.stat().st_size if p.suffix != ".gz" else None
    try:
        with _open(p) as f:
            head = f.read(4)
            if len(head) < 4:
                raise ParseError(name, 1, 1, head.hex() or "<end of file>",
                                 "a 4-byte IDX magic number", fix="the file is truncated; "
                                 "reinstall the data package")
            zero0, zero1, dtype_code, ndim = head
            if zero0 != 0 or zero1 != 0 or dtype_code != _UBYTE or ndim != expected_ndim:
                raise ParseError(name, 1, 1, "0x" + head.hex(),
                                 f"IDX magic 0x000008{expected_ndim:02x} (unsigned bytes, "
                                 f"{expected_ndim} dimension(s))",
                                 fix="check that this is the right file and not corrupt")
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise ParseError(name, 1, 5, raw.hex() or "<end of file>",
                                 f"{ndim} big-endian uint32 sizes", fix="the file is truncated")
            shape = struct.unpack(f">{ndim}I", raw)
            if want is not None:
                for i, (got, w) in enumerate(zip(shape, want, strict=True)):
                    if w is not None and got != w:
                        raise ParseError(name, 1, 5 + 4 * i, str(got),
                                         f"size {w} for dimension {i}",
                                         fix="check that this is the right file")
            count = 1
            for s in shape:
                count *= s
            if count > MAX_BYTES:
                raise ParseError(name, 1, 5, str(tuple(shape)),
                                 f"at most {MAX_BYTES} values", fix="the header is corrupt")
            if plain_size is not None and plain_size != 4 + 4 * ndim + count:
                # an uncompressed file's size is known: compare before reading anything more
                have = plain_size - 4 - 4 * ndim
                raise ParseError(name, 1, 5 + 4 * ndim + min(have, count),
                                 "<end of file>" if have < count else "<extra bytes>",
                                 f"{count} data bytes for shape {tuple(shape)}" if have < count
                                 else f"end of file after {count} data bytes",
                                 fix="the file is truncated or corrupt; reinstall the data "
                                 "package")
            payload = _read_exactly(f, count)
            if len(payload) != count:
                raise ParseError(name, 1, 5 + 4 * ndim + len(payload), "<end of file>",
                                 f"{count} data bytes for shape {tuple(shape)}",
                                 fix="the file is truncated; reinstall the data package")
            if f.read(1):
                raise ParseError(name, 1, 5 + 4 * ndim + count, "<extra bytes>",
                                 f"end of file after {count} data bytes",
                                 fix="the file is corrupt; reinstall the data package")
    except (OSError, EOFError, zlib.error) as err:
        # gzip.BadGzipFile is an OSError; a damaged deflate stream raises zlib.error
        raise ParseError(name, 1, 1, type(err).__name__, "a readable IDX file",
                         fix=f"the file is damaged ({err}); reinstall the data package") from err
    if count == 0:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(payload, dtype=torch.uint8).reshape(shape)
