"""Two-dimensional toy distributions for GANs, VAEs and flows, sampled with a generator.

Every sampler returns ``(x, y)``: points ``x`` of shape ``(n, 2)`` and integer labels ``y`` of
shape ``(n,)`` (the mixture component, ring or square; None for the swiss roll), plus the
distribution's :class:`~generative.data.dataset.DataInfo` through :data:`TOYS`.

- ``8gaussians``: 8 components on a circle of radius 2 (angles ``2 pi k / 8``), std 0.02 each,
  equal weights (the mode-collapse toy of the textbook's "target: 8 modes").
- ``25gaussians``: a 5 x 5 grid with spacing 2 on ``{-4, -2, 0, 2, 4}^2``, std 0.05 each.
- ``rings``: 4 concentric circles of radii 1, 2, 3, 4 (points uniform in angle, equal numbers
  per ring in expectation) with radial Gaussian noise of std 0.08.
- ``swissroll``: ``t = 1.5 pi (1 + 2 u)``, ``(t cos t, t sin t) / 5`` plus N(0, 0.1^2) noise per
  coordinate, u uniform on [0, 1).
- ``moons``: two interleaving half circles (as scikit-learn's ``make_moons``), Gaussian noise of
  std 0.1; labels are the moon.
- ``checkerboard``: uniform on the 8 black unit squares of a 4 x 4 board on ``[-2, 2]^2``
  (squares whose row and column indices have even sum); labels are the square.

Examples
--------
>>> from probforge.ops.random import make_generator
>>> from generative.data.toys import sample_toy, TOYS
>>> x, y = sample_toy("8gaussians", 1000, generator=make_generator(0))
>>> tuple(x.shape), int(y.max()) + 1, TOYS["8gaussians"].mode_std
((1000, 2), 8, 0.02)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from generative.checks import check_optional_generator
from generative.data.dataset import DataInfo
from probforge.errors import ValidationError

__all__ = ["TOYS", "sample_toy"]

_RADIUS_8 = 2.0
_STD_8 = 0.02
_STD_25 = 0.05
_RING_RADII = (1.0, 2.0, 3.0, 4.0)
_RING_STD = 0.08
_MOON_STD = 0.1
_ROLL_STD = 0.1


def _centres_8() -> tuple[tuple[float, float], ...]:
    return tuple((_RADIUS_8 * math.cos(2 * math.pi * k / 8),
                  _RADIUS_8 * math.sin(2 * math.pi * k / 8)) for k in range(8))


def _centres_25() -> tuple[tuple[float, float], ...]:
    return tuple((float(i), float(j)) for i in (-4, -2, 0, 2, 4) for j in (-4, -2, 0, 2, 4))


def _checker_squares() -> tuple[tuple[float, float], ...]:
    """Lower-left corners of the 8 black squares (row + column even) on [-2, 2]^2."""
    return tuple((float(c - 2), float(r - 2)) for r in range(4) for c in range(4)
                 if (r + c) % 2 == 0)


def _mixture(centres: tuple[tuple[float, float], ...], std: float, n: int,
             g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    c = torch.tensor(centres, dtype=dtype)
    y = torch.randint(0, len(centres), (n,), generator=g)
    return c[y] + std * torch.randn(n, 2, generator=g, dtype=dtype), y


def _gauss8(n: int, g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return _mixture(_centres_8(), _STD_8, n, g, dtype)


def _gauss25(n: int, g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return _mixture(_centres_25(), _STD_25, n, g, dtype)


def _rings(n: int, g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    y = torch.randint(0, len(_RING_RADII), (n,), generator=g)
    radius = torch.tensor(_RING_RADII, dtype=dtype)[y]
    radius = radius + _RING_STD * torch.randn(n, generator=g, dtype=dtype)
    angle = 2 * math.pi * torch.rand(n, generator=g, dtype=dtype)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1), y


def _swissroll(n: int, g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, None]:
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=dtype))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], -1) / 5
    return x + _ROLL_STD * torch.randn(n, 2, generator=g, dtype=dtype), None


def _moons(n: int, g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    y = torch.randint(0, 2, (n,), generator=g)
    angle = math.pi * torch.rand(n, generator=g, dtype=dtype)
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], -1)
    x = torch.where((y == 0)[:, None], upper, lower)
    return x + _MOON_STD * torch.randn(n, 2, generator=g, dtype=dtype), y


def _checkerboard(n: int, g: torch.Generator | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    corners = torch.tensor(_checker_squares(), dtype=dtype)
    y = torch.randint(0, len(corners), (n,), generator=g)
    return corners[y] + torch.rand(n, 2, generator=g, dtype=dtype), y


def _info(name: str, bound: float, classes: int | None, description: str,
          centres: tuple[tuple[float, float], ...] | None = None,
          std: float | None = None) -> DataInfo:
    return DataInfo(name=name, event_shape=(2,), num_classes=classes, is_image=False,
                    value_range=(-bound, bound), mode_centres=centres, mode_std=std,
                    description=description)


#: Name -> DataInfo (split "train") of every 2-D toy.
TOYS: dict[str, DataInfo] = {
    "8gaussians": _info("8gaussians", 2.5, 8, "8 Gaussians on a circle of radius 2, std 0.02",
                        _centres_8(), _STD_8),
    "25gaussians": _info("25gaussians", 5.0, 25, "5x5 grid of Gaussians, spacing 2, std 0.05",
                         _centres_25(), _STD_25),
    "rings": _info("rings", 4.5, 4, "4 concentric rings, radii 1-4, radial std 0.08"),
    "swissroll": _info("swissroll", 3.5, None, "2-D swiss roll / 5, noise std 0.1"),
    "moons": _info("moons", 2.5, 2, "two interleaving half circles, noise std 0.1"),
    "checkerboard": _info("checkerboard", 2.0, 8, "uniform on the 8 black squares of a 4x4 board",
                          tuple((a + 0.5, b + 0.5) for a, b in _checker_squares()), 0.5),
}

_SAMPLERS: dict[str, Callable[[int, torch.Generator | None, torch.dtype],
                              tuple[Tensor, Tensor | None]]] = {
    "8gaussians": _gauss8, "25gaussians": _gauss25, "rings": _rings,
    "swissroll": _swissroll, "moons": _moons, "checkerboard": _checkerboard,
}


def sample_toy(name: str, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor | None]:
    """``n`` points of the toy ``name``: ``x`` (n, 2) and labels ``y`` (n,) or None.

    Draws on the CPU from ``generator`` (torch's global RNG if None); move the result with
    ``.to(device)``, so a seed gives the same points on every device. ``n = 0`` gives empty
    tensors ``(0, 2)`` and ``(0,)``.
    """
    if not isinstance(name, str) or name not in _SAMPLERS:
        raise ValidationError("toy data set", "unknown name", found=repr(name),
                              fix=f"use one of {sorted(_SAMPLERS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError(f"toy {name!r}", "n must be an int >= 0", found=repr(n))
    check_optional_generator(generator, f"toy {name!r} generator")
    if generator is not None and generator.device.type != "cpu":
        raise ValidationError(f"toy {name!r}", "toys are drawn with a CPU generator",
                              found=generator.device, fix="pass make_generator(seed) (CPU)")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError(f"toy {name!r}", "dtype must be floating point", found=repr(dtype))
    return _SAMPLERS[name](n, generator, dtype)
