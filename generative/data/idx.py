"""Reading IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

An IDX file starts with a 4-byte magic number ``0x00 0x00 TYPE NDIM`` (``TYPE`` 0x08 = unsigned
byte, the only type these data sets use), then ``NDIM`` big-endian 32-bit sizes, then the
values in row-major order. :func:`read_idx` checks the magic number, the declared sizes against
the expected ones and a size limit before allocating anything, and then that the file holds
exactly that many bytes; a violation raises :class:`~probforge.errors.ParseError` naming the
file and the byte offset.

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
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from probforge.errors import ParseError

__all__ = ["MAX_BYTES", "read_idx"]

#: Largest payload :func:`read_idx` will allocate (declared sizes beyond it are rejected).
MAX_BYTES = 1 << 31
_UBYTE = 0x08


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_idx(path: str | os.PathLike[str], *, expected_ndim: int,
             expected_shape: Sequence[int | None] | None = None) -> Tensor:
    """The ``uint8`` tensor stored in an IDX file.

    Parameters
    ----------
    path : path-like
        ``.gz`` files are decompressed on the fly.
    expected_ndim : int
        Number of dimensions the file must declare (3 for images, 1 for labels).
    expected_shape : sequence of int or None, optional
        Sizes the declared shape must have; None entries are not checked.

    Returns
    -------
    Tensor, dtype uint8, the declared shape

    Raises
    ------
    ParseError
        Wrong magic number, dimension count or sizes, a payload over :data:`MAX_BYTES`, or a
        file shorter or longer than declared.
    """
    p = Path(path)
    name = str(p)
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
            if expected_shape is not None:
                for i, (got, want) in enumerate(zip(shape, expected_shape, strict=True)):
                    if want is not None and got != want:
                        raise ParseError(name, 1, 5 + 4 * i, str(got),
                                         f"size {want} for dimension {i}",
                                         fix="check that this is the right file")
            count = 1
            for s in shape:
                count *= s
            if count > MAX_BYTES:
                raise ParseError(name, 1, 5, str(tuple(shape)),
                                 f"at most {MAX_BYTES} values", fix="the header is corrupt")
            payload = f.read(count)
            if len(payload) != count:
                raise ParseError(name, 1, 5 + 4 * ndim + len(payload), "<end of file>",
                                 f"{count} data bytes for shape {tuple(shape)}",
                                 fix="the file is truncated; reinstall the data package")
            if f.read(1):
                raise ParseError(name, 1, 5 + 4 * ndim + count, "<extra bytes>",
                                 f"end of file after {count} data bytes",
                                 fix="the file is corrupt; reinstall the data package")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ParseError(name, 1, 1, type(err).__name__, "a readable IDX file",
                         fix=f"the file is damaged ({err}); reinstall the data package") from err
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).reshape(shape)
