"""Binarising [0, 1]-valued data: a fixed threshold, or Bernoulli draws with a generator.

``"fixed"`` maps ``x`` to ``1`` where ``x > threshold`` and ``0`` elsewhere (deterministic);
``"stochastic"`` draws ``Bernoulli(x)`` independently per value (the usual "dynamically
binarised MNIST" when redone every epoch; done once it gives a static binarisation).

Examples
--------
>>> import torch
>>> from generative.data.binarize import binarize
>>> binarize(torch.tensor([0.2, 0.5, 0.7]), "fixed").tolist()
[0.0, 0.0, 1.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from probforge.errors import ValidationError
from probforge.ops.random import check_generator

__all__ = ["BINARIZE_MODES", "binarize"]

BINARIZE_MODES = ("fixed", "stochastic")


def binarize(x: Tensor, mode: str, *, threshold: float = 0.5,
             generator: torch.Generator | None = None) -> Tensor:
    """``x`` (any shape, values in [0, 1]) binarised to 0.0 / 1.0 in ``x``'s dtype and device.

    Parameters
    ----------
    mode : {"fixed", "stochastic"}
    threshold : float
        For ``"fixed"``: values strictly above it become 1.
    generator : torch.Generator, optional
        For ``"stochastic"``; on ``x``'s device.
    """
    if mode not in BINARIZE_MODES:
        raise ValidationError("binarize", "unknown mode", found=repr(mode),
                              fix=f"use one of {list(BINARIZE_MODES)}")
    if not torch.is_floating_point(x):
        raise ValidationError("binarize", "x must be floating point", found=x.dtype)
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise ValidationError("binarize", "values must lie in [0, 1]", found=(lo, hi),
                                  fix="scale the data to [0, 1] first")
    if mode == "fixed":
        if not 0.0 <= threshold < 1.0:
            raise ValidationError("binarize", "threshold must lie in [0, 1)", found=threshold)
        return (x > threshold).to(x.dtype)
    check_generator(generator, x.device)
    return torch.bernoulli(x, generator=generator)
