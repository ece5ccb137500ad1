"""PNG files without an imaging library: sample grids and 2-D scatter pictures.

:func:`write_png` encodes an 8-bit grey, RGB or RGBA array with ``zlib`` and ``struct`` (PNG
filter type 0 on every row) and writes it atomically (a temp file in the same folder, then
``os.replace``). :func:`make_grid` tiles images ``(n, C, H, W)`` in [0, 1] into one picture;
:func:`scatter_image` rasterises 2-D points (with optional mode centres marked in red), and
:func:`save_samples` picks one or the other from the samples' shape.

Values outside [0, 1] are clipped for display only; NaN raises. Only PNG is written: an output
path whose suffix is not ``.png`` is refused (never a PNG under another name), as are integer
sample tensors (a ``uint8`` image of 0..255 would be clipped to black and white).

Examples
--------
>>> import torch, tempfile, os
>>> from generative.images import make_grid, write_png
>>> grid = make_grid(torch.rand(6, 1, 8, 8), nrow=3)
>>> tuple(grid.shape)
(19, 28, 3)
>>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
>>> write_png(path, grid)
>>> open(path, "rb").read(8) == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor

from probforge.errors import (
    DtypeMismatchError,
    FileWriteError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.files import atomic_write_bytes
from probforge.validate import check_int, check_real, check_tensor

from .checks import check_output_path

__all__ = ["make_grid", "save_samples", "scatter_image", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(image: Tensor) -> bytes:
    """The PNG bytes of a ``uint8`` image ``(H, W)`` or ``(H, W, C)``, C in 1, 3, 4."""
    image = check_tensor(image, "PNG image")
    if image.dtype != torch.uint8:
        raise ValidationError("PNG image", "must be torch.uint8", found=image.dtype,
                              fix="scale to 0..255 and convert with .to(torch.uint8)")
    img = image.detach().cpu()
    if img.dim() == 2:
        img = img[:, :, None]
    if img.dim() != 3 or img.shape[2] not in _COLOUR_TYPES or img.shape[0] < 1 or img.shape[1] < 1:
        raise ShapeError("PNG image", "must be (H, W) or (H, W, C) with C in 1, 3, 4 and H, W >= 1",
                         found=tuple(image.shape))
    h, w, c = img.shape
    rows = torch.cat([torch.zeros(h, 1, dtype=torch.uint8), img.reshape(h, w * c)], dim=1)
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[c], 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.contiguous().numpy().tobytes(), 6))
            + _chunk(b"IEND", b""))


def write_png(path: str | os.PathLike[str], image: Tensor) -> None:
    """Write a ``uint8`` image (see :func:`encode_png`) to ``path`` atomically.

    ``path`` must end in ``.png`` (any case) and must not be a folder.
    """
    p = check_output_path(path, "PNG output", suffixes=(".png",))
    data = encode_png(image)
    write_bytes_atomic(p, data)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating its folder first.

    Raises
    ------
    ValidationError
        ``path`` is a folder, lies under a file, or cannot be written (the message says why).
    """
    p = check_output_path(path, "output file")
    if not isinstance(data, bytes | bytearray):
        raise ValidationError("output file data", "must be bytes", found=type(data).__name__)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, bytes(data))
    except FileWriteError:
        raise
    except OSError as err:  # the folder could not be created
        raise FileWriteError(f"output file {p}", "could not be written",
                              found=f"{type(err).__name__}: {err}",
                              fix="check the folder's permissions and free space") from err


def _to_uint8(x: Tensor, what: str) -> Tensor:
    x = check_tensor(x, what)
    if not x.is_floating_point():
        raise DtypeMismatchError(what, "must be floating point with values in [0, 1] (integer "
                                 "images are refused, not rescaled)", found=x.dtype,
                                 fix="pass x.float() / 255 for 0..255 images")
    x = x.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError(what, "contains NaN or infinite values",
                             fix="check the model's sample() output")
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 1,
              pad_value: float = 1.0) -> Tensor:
    """Tile ``images`` (n, C, H, W) with values in [0, 1] into a ``uint8`` (H', W', 3) picture.

    Parameters
    ----------
    images : Tensor, shape (n, C, H, W), C in {1, 3}, n >= 1
        Floating point, finite.
    nrow : int, optional
        Images per row (default ``ceil(sqrt(n))``), ``>= 1``.
    padding : int
        Pixels between images and around the border, ``>= 0``.
    pad_value : float
        Grey level of the padding, in [0, 1].
    """
    images = check_tensor(images, "sample grid images")
    if nrow is not None:
        nrow = check_int(nrow, "sample grid nrow", minimum=1)
    padding = check_int(padding, "sample grid padding", minimum=0)
    pad_value = check_real(pad_value, "sample grid pad_value", minimum=0.0, maximum=1.0)
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
        raise ShapeError("sample grid", "images must be (n, C, H, W) with n >= 1, C in 1 or 3",
                         found=tuple(images.shape))
    n, c, h, w = images.shape
    per_row = nrow if nrow is not None else math.ceil(math.sqrt(n))
    if per_row < 1 or padding < 0:
        raise ValidationError("sample grid", "nrow must be >= 1 and padding >= 0",
                              found=(nrow, padding))
    rows = math.ceil(n / per_row)
    pix = _to_uint8(images, "sample grid images")
    if c == 1:
        pix = pix.expand(n, 3, h, w)
    fill = round(min(max(pad_value, 0.0), 1.0) * 255)
    grid = torch.full((rows * (h + padding) + padding, per_row * (w + padding) + padding, 3),
                      fill, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, per_row)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top: top + h, left: left + w] = pix[i].permute(1, 2, 0)
    return grid


def scatter_image(points: Tensor, *, size: int = 256,
                  bounds: tuple[float, float] | None = None,
                  centres: Tensor | None = None) -> Tensor:
    """Rasterise 2-D ``points`` (n, 2) into a ``uint8`` (size, size, 3) picture.

    Points are dark blue pixels on white; ``centres`` (K, 2) are drawn as red crosses; the axes
    through the origin are light grey. ``bounds = (lo, hi)`` is the square window (default: the
    points' extent, padded by 5 %), two finite numbers with ``lo < hi``. Points outside the
    window are not drawn; no points (``n = 0``) give an empty picture. ``points`` and
    ``centres`` must be finite floating tensors; ``size >= 8``.
    """
    points = check_tensor(points, "scatter image points", floating=True)
    if points.dim() != 2 or points.shape[1] != 2:
        raise ShapeError("scatter image", "points must be (n, 2)", found=tuple(points.shape))
    size = check_int(size, "scatter image size", minimum=8)
    if bounds is not None:
        if isinstance(bounds, str | bytes | Tensor) or not isinstance(bounds, tuple | list) \
                or len(bounds) != 2:
            raise ValidationError("scatter image bounds", "must be a pair (lo, hi)",
                                  found=repr(bounds))
        bounds = (check_real(bounds[0], "scatter image bounds[0]"),
                  check_real(bounds[1], "scatter image bounds[1]"))
    if centres is not None:
        centres = check_tensor(centres, "scatter image centres", floating=True, finite=True)
        if centres.numel() % 2:
            raise ShapeError("scatter image centres", "must be (K, 2)",
                             found=tuple(centres.shape))
    p = points.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(p).all()):
        raise NonFiniteError("scatter image points", "contain NaN or infinite values",
                             fix="check the model's sample() output")
    if bounds is None:
        lo = float(p.min()) if p.numel() else -1.0
        hi = float(p.max()) if p.numel() else 1.0
        pad = 0.05 * max(hi - lo, 1e-6)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = float(bounds[0]), float(bounds[1])
        if not hi > lo:
            raise ValidationError("scatter image", "bounds must have lo < hi", found=bounds)
    img = torch.full((size, size, 3), 255, dtype=torch.uint8)

    def to_pix(q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        col = ((q[:, 0] - lo) / (hi - lo) * (size - 1)).round().long()
        row = ((hi - q[:, 1]) / (hi - lo) * (size - 1)).round().long()
        ok = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        return row[ok], col[ok], ok

    if lo < 0 < hi:
        r0, c0, _ = to_pix(torch.zeros(1, 2, dtype=torch.float64))
        img[r0, :] = 225
        img[:, c0] = 225
    rows, cols, _ = to_pix(p)
    img[rows, cols] = torch.tensor([20, 40, 160], dtype=torch.uint8)
    if centres is not None:
        rr, cc, _ = to_pix(centres.detach().to("cpu", torch.float64).reshape(-1, 2))
        red = torch.tensor([220, 20, 20], dtype=torch.uint8)
        for d in range(-3, 4):
            img[(rr + d).clamp(0, size - 1), cc] = red
            img[rr, (cc + d).clamp(0, size - 1)] = red
    return img


def save_samples(path: str | os.PathLike[str], samples: Tensor, *,
                 bounds: tuple[float, float] | None = None,
                 centres: Tensor | None = None, nrow: int | None = None) -> None:
    """Write ``samples`` as a PNG: a grid for images (n, C, H, W), a scatter for points (n, 2).

    Flat samples (n, D) with D a square number (e.g. 784) are shown as (n, 1, sqrt D, sqrt D)
    images. ``path`` must end in ``.png`` (PNG is the only format written) and ``samples``
    must be a finite floating tensor.

    Raises
    ------
    ValidationError
        The path's suffix is not ``.png``, it is a folder, or the samples are not floating.
    ShapeError
        Samples that are neither points (n, 2) nor images.
    NonFiniteError
        NaN or infinite samples.
    """
    p = check_output_path(path, "sample picture", suffixes=(".png",))
    samples = check_tensor(samples, "samples", floating=True)
    s = samples.detach()
    if s.dim() == 2 and s.shape[1] == 2:
        write_png(p, scatter_image(s, bounds=bounds, centres=centres))
        return
    if s.dim() == 2 and math.isqrt(s.shape[1]) ** 2 == s.shape[1]:
        side = math.isqrt(s.shape[1])
        s = s.reshape(s.shape[0], 1, side, side)
    if s.dim() == 3:
        s = s.unsqueeze(1)
    write_png(p, make_grid(s, nrow=nrow))
