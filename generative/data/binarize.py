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

from generative.checks import check_optional_generator
from probforge.errors import DtypeMismatchError, ValidationError
from probforge.ops.random import check_generator
from probforge.validate import check_finite, check_real, check_tensor

__all__ = ["BINARIZE_MODES", "binarize"]

BINARIZE_MODES = ("fixed", "stochastic")


def binarize(x: Tensor, mode: str, *, threshold: float = 0.5,
             generator: torch.Generator | None = None) -> Tensor:
    """``x`` (any shape, values in [0, 1]) binarised to 0.0 / 1.0 in ``x``'s dtype and device.

    Parameters
    ----------
    x : Tensor
        Finite, floating point, values in ``[0, 1]`` (an empty tensor gives an empty result).
    mode : {"fixed", "stochastic"}
    threshold : float
        For ``"fixed"``: values strictly above it become 1; in ``[0, 1)``.
    generator : torch.Generator, optional
        For ``"stochastic"``; on ``x``'s device.
    """
    if mode not in BINARIZE_MODES:
        raise ValidationError("binarize", "unknown mode", found=repr(mode),
                              fix=f"use one of {list(BINARIZE_MODES)}")
    x = check_tensor(x, "binarize x")
    if not torch.is_floating_point(x):
        raise DtypeMismatchError("binarize", "x must be floating point", found=x.dtype,
                                 fix="convert with .float() and scale to [0, 1]")
    check_finite(x, "binarize x")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise ValidationError("binarize", "values must lie in [0, 1]", found=(lo, hi),
                                  fix="scale the data to [0, 1] first")
    if mode == "fixed":
        threshold = check_real(threshold, "binarize threshold", minimum=0.0, maximum=1.0,
                               strict_maximum=True)
        return (x > threshold).to(x.dtype)
    check_optional_generator(generator, "binarize generator")
    check_generator(generator, x.device)
    return torch.bernoulli(x, generator=generator)
