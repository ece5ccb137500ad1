"""Fuzzer for the IDX reader (``generative.data.idx.read_idx``, the Fashion-MNIST file format).

Valid little IDX files (images ``(2, 3, 4)`` and labels ``(5,)``, plain and gzip-compressed) are
written by the test and mutated: the magic number's bytes, the dtype code, the dimension count,
declared sizes (zero, huge, off by one, mismatched with the payload), truncation at any byte,
extra bytes, random byte flips in the header, the payload or the gzip container. What must happen:

* :func:`read_idx` raises :class:`~probforge.errors.ParseError`, exactly when an independent
  reference parser (below, written from the format's description) says the file is not a valid
  IDX file of the expected shape; or
* it returns the array the reference parser reads, bit for bit;
* never another exception, never more than ``TIME_LIMIT_S`` per file, and never a traced peak
  allocation above ``MEMORY_LIMIT`` (``tracemalloc``: a declared size is checked against what the
  file holds before a buffer of that size exists).
"""

from __future__ import annotations

import gzip
import struct
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.data.idx import MAX_BYTES, read_idx
from probforge.errors import MissingFileError, ParseError, ProbforgeError, ValidationError

TIME_LIMIT_S = 2.0
MEMORY_LIMIT = 16 << 20  # bytes; the valid files hold 24 values

IMAGES = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
LABELS = torch.tensor([3, 1, 4, 1, 5], dtype=torch.uint8)


def _idx_bytes(values: torch.Tensor) -> bytes:
    head = struct.pack(">BBBB", 0, 0, 8, values.dim())
    head += struct.pack(f">{values.dim()}I", *values.shape)
    return head + values.contiguous().numpy().tobytes()


def _reference(content: bytes, ndim: int, shape: tuple[int | None, ...] | None) -> \
        torch.Tensor | None:
    """What the file holds if it is a valid IDX file of ``ndim`` dims and ``shape``, else None."""
    if len(content) < 4 or content[:3] != b"\x00\x00\x08" or content[3] != ndim:
        return None
    if len(content) < 4 + 4 * ndim:
        return None
    sizes = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
    if shape is not None and any(w is not None and w != s for s, w in zip(sizes, shape,
                                                                          strict=True)):
        return None
    count = 1
    for s in sizes:
        count *= s
    if count > MAX_BYTES or len(content) != 4 + 4 * ndim + count:
        return None
    payload = content[4 + 4 * ndim:]
    return torch.tensor(list(payload), dtype=torch.uint8).reshape(sizes)


def _read(path: Path, ndim: int, shape: tuple[int | None, ...] | None) -> torch.Tensor | None:
    """``read_idx`` under the time and memory limits; None for a ParseError."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out: torch.Tensor | None = read_idx(path, expected_ndim=ndim, expected_shape=shape)
    except ParseError as err:
        assert str(path) in str(err)
        out = None
    except Exception as err:  # a raw exception is the failure this fuzzer looks for
        raise AssertionError(f"raw {type(err).__name__} from read_idx: {err}") from err
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < TIME_LIMIT_S, f"read_idx took {elapsed:.2f} s"
    assert peak < MEMORY_LIMIT, f"read_idx allocated {peak / 2**20:.1f} MiB for a tiny file"
    return out


def _check(content: bytes, *, compress: bool, ndim: int,
           shape: tuple[int | None, ...] | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("x-idx-ubyte.gz" if compress else "x-idx-ubyte")
        path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
        got = _read(path, ndim, shape)
    want = _reference(content, ndim, shape)
    if want is None:
        assert got is None, f"accepted an invalid file: {content[:24]!r}"
    else:
        assert got is not None, f"refused a valid file: {content[:24]!r}"
        assert got.dtype == torch.uint8 and torch.equal(got, want)


# ---------------------------------------------------------------- mutations of the content
_SOURCES = {"images": (IMAGES, 3, (2, 3, 4)), "labels": (LABELS, 1, (5,))}
_BIG = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 2**16, 2**31 - 1, 2**32 - 1, 2**30])


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[bytes, int, tuple[int | None, ...] | None]:
    values, ndim, shape = _SOURCES[draw(st.sampled_from(sorted(_SOURCES)))]
    data = bytearray(_idx_bytes(values))
    kind = draw(st.sampled_from(["huge", "magic", "dtype", "ndim", "size", "sizes", "truncate",
                                 "extend", "flip", "payload", "none"]))
    if kind == "magic":
        data[draw(st.integers(0, 1))] = draw(st.integers(1, 255))
    elif kind == "dtype":
        data[2] = draw(st.sampled_from([0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
    elif kind == "ndim":
        data[3] = draw(st.integers(0, 255))
    elif kind == "huge":  # under MAX_BYTES, far beyond the file: must not be allocated
        data[4:8] = struct.pack(">I", draw(st.sampled_from([2**30, 2**31 - 1, 2**28])))
    elif kind == "size":
        i = draw(st.integers(0, ndim - 1))
        data[4 + 4 * i: 8 + 4 * i] = struct.pack(">I", draw(_BIG))
    elif kind == "sizes":  # every size at once: a consistent header for another payload
        for i in range(ndim):
            data[4 + 4 * i: 8 + 4 * i] = struct.pack(">I", draw(_BIG))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)):]
    elif kind == "extend":
        data += bytes(draw(st.binary(min_size=1, max_size=8)))
    elif kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    elif kind == "payload":
        i = draw(st.integers(4 + 4 * ndim, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    check_shape = draw(st.sampled_from([shape, None, tuple(None for _ in shape)]))
    return bytes(data), ndim, check_shape


@given(case=_mutated(), compress=st.booleans())
def test_read_idx_on_mutated_files(case: tuple[bytes, int, tuple[int | None, ...] | None],
                                   compress: bool) -> None:
    content, ndim, shape = case
    _check(content, compress=compress, ndim=ndim, shape=shape)


# ------------------------------------------------------- mutations of the gzip container
@given(which=st.sampled_from(sorted(_SOURCES)), data=st.data())
@settings(max_examples=20)
def test_read_idx_on_damaged_gzip_streams(which: str, data: st.DataObject) -> None:
    values, ndim, shape = _SOURCES[which]
    content = _idx_bytes(values)
    packed = bytearray(gzip.compress(content, mtime=0))
    kind = data.draw(st.sampled_from(["deflate", "flip", "truncate", "extend"]))
    if kind == "deflate":  # inside the compressed stream (10-byte header, 8-byte trailer)
        i = data.draw(st.integers(10, len(packed) - 9))
        packed[i] ^= data.draw(st.sampled_from([1, 0x40, 0xFF]))
    elif kind == "flip":
        i = data.draw(st.integers(0, len(packed) - 1))
        packed[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del packed[data.draw(st.integers(0, len(packed) - 1)):]
    else:
        packed += data.draw(st.binary(min_size=1, max_size=8))
    try:  # what the container really holds, if anything
        inner: bytes | None = gzip.decompress(bytes(packed))
    except (OSError, EOFError, zlib.error):
        inner = None
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x-idx-ubyte.gz"
        path.write_bytes(bytes(packed))
        got = _read(path, ndim, shape)
    want = _reference(inner, ndim, shape) if inner is not None else None
    if want is None:
        assert got is None
    else:
        assert got is not None and torch.equal(got, want)


# ----------------------------------------------------------------------- fixed cases
def test_read_idx_refuses_a_huge_declared_size_without_allocating_it(tmp_path: Path) -> None:
    """1 GiB declared (under MAX_BYTES) in a 16-byte plain file: refused, nothing allocated."""
    path = tmp_path / "huge-idx1-ubyte"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 2**30) + b"abcd")
    assert _read(path, 1, None) is None
    packed = tmp_path / "huge-idx1-ubyte.gz"
    packed.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 2**30) + b"abcd"))
    assert _read(packed, 1, None) is None


def test_read_idx_of_a_damaged_deflate_stream_is_a_parse_error(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(_idx_bytes(LABELS), mtime=0))
    packed[12] ^= 0x40  # "invalid distance too far back": zlib.error, not an OSError
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(packed))
    assert _read(path, 1, None) is None


def test_read_idx_of_a_zero_size_gives_an_empty_array(tmp_path: Path) -> None:
    path = tmp_path / "empty-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB3I", 0, 0, 8, 3, 0, 28, 28))
    out = _read(path, 3, None)
    assert out is not None and out.shape == (0, 28, 28) and out.dtype == torch.uint8


def test_read_idx_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        read_idx(tmp_path / "missing.gz", expected_ndim=1)
    with pytest.raises(MissingFileError):
        read_idx(tmp_path, expected_ndim=1)  # a folder
    path = tmp_path / "l-idx1-ubyte"
    path.write_bytes(_idx_bytes(LABELS))
    for bad in (0, -1, 256, 1.0, True, "1"):
        with pytest.raises(ValidationError):
            read_idx(path, expected_ndim=bad)  # type: ignore[arg-type]
    for shape in ((5, 1), (), "5", (5.0,), (-1,)):
        with pytest.raises(ValidationError):
            read_idx(path, expected_ndim=1, expected_shape=shape)  # type: ignore[arg-type]
    with pytest.raises(ProbforgeError):
        read_idx(12, expected_ndim=1)  # type: ignore[arg-type]
