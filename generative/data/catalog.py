"""One entry point for every offline data set: :func:`load` and :data:`DATASETS`.

========================  ===========================================================
name                      what
========================  ===========================================================
``digits``                scikit-learn's 8x8 digits, (1, 8, 8) in [0, 1], 10 classes
``fashion-mnist``         Fashion-MNIST from ``dataset-fashion-mnist``, (1, 28, 28)
``8gaussians`` ...        2-D toys (see :mod:`generative.data.toys`), shape (2,)
========================  ===========================================================

Image data sets can be binarised (``binarize="fixed"`` or ``"stochastic"``). Where a data set
is random (the 2-D toys; stochastic binarisation) and no generator is given, :func:`load` uses a
fixed generator per split (:data:`DEFAULT_SEEDS`), so ``load(name, split)`` always returns the
same data; pass ``generator=`` for other draws.

Examples
--------
>>> from generative.data import load
>>> ds = load("8gaussians", "train", n=500)
>>> len(ds), ds.info.num_classes, ds.info.centres().shape
(500, 8, torch.Size([8, 2]))
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from generative.checks import check_optional_generator
from generative.data.binarize import BINARIZE_MODES, binarize
from generative.data.dataset import DataInfo, Dataset
from generative.data.images import load_digits, load_fashion_mnist
from generative.data.toys import TOYS, sample_toy
from probforge.errors import ValidationError
from probforge.validate import check_device, check_real

__all__ = ["DATASETS", "DEFAULT_SEEDS", "info", "load"]

#: Seeds of the fixed generators used when ``generator`` is None.
DEFAULT_SEEDS = {"train": 20240601, "test": 20240602}
#: Default number of points of a toy split.
TOY_SIZES = {"train": 10000, "test": 2000}

_IMAGE_INFO = {
    "digits": DataInfo("digits", (1, 8, 8), 10, True, (0.0, 1.0),
                       description="scikit-learn 8x8 digits / 16 (1,497 train, 300 test)"),
    "fashion-mnist": DataInfo("fashion-mnist", (1, 28, 28), 10, True, (0.0, 1.0),
                              description="Fashion-MNIST / 255 (60,000 train, 10,000 test), "
                              "Debian package dataset-fashion-mnist"),
}

#: Name -> one-line description of every data set :func:`load` knows.
DATASETS: dict[str, str] = {
    **{k: v.description for k, v in _IMAGE_INFO.items()},
    **{k: v.description for k, v in TOYS.items()},
}


def info(name: str, split: str = "train", *, binarize: str | None = None) -> DataInfo:
    """The :class:`DataInfo` of a data set, without loading it (same checks as :func:`load`)."""
    _check(name, split, binarize)
    base = _IMAGE_INFO.get(name) or TOYS[name]
    return replace(base, split=split, binarized=binarize)


def _check(name: str, split: str, mode: str | None) -> None:
    if not isinstance(name, str) or name not in DATASETS:
        raise ValidationError("data set", "unknown name", found=repr(name),
                              fix=f"use one of {sorted(DATASETS)}")
    if not isinstance(split, str) or split not in ("train", "test"):
        raise ValidationError(f"data set {name!r}", "split must be 'train' or 'test'",
                              found=repr(split))
    if mode is not None:
        if not isinstance(mode, str) or mode not in BINARIZE_MODES:
            raise ValidationError(f"data set {name!r}", "unknown binarize mode",
                                  found=repr(mode),
                                  fix=f"use None or one of {list(BINARIZE_MODES)}")
        if name not in _IMAGE_INFO:
            raise ValidationError(f"data set {name!r}", "only image data sets can be binarised",
                                  found=repr(mode))


def load(name: str, split: str = "train", *, n: int | None = None,
         binarize: str | None = None, threshold: float = 0.5,
         generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
         device: torch.device | str = "cpu",
         root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load (or, for the toys, draw) a data set.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    split : {"train", "test"}
    n : int, optional
        Toys: number of points (default 10,000 train, 2,000 test). Images: keep the first ``n``.
    binarize : {None, "fixed", "stochastic"}
        Image data sets only: threshold at ``threshold`` or draw Bernoulli values once.
    generator : torch.Generator, optional
        CPU generator for the toys' points and stochastic binarisation; default a fixed one per
        split (:data:`DEFAULT_SEEDS`).
    dtype, device
        Of ``x`` (labels are ``torch.long`` on the same device).
    root : path, optional
        Folder of the Fashion-MNIST IDX files.

    Returns
    -------
    Dataset
        ``x`` (N, *event_shape), ``y`` (N,) or None, and its :class:`DataInfo`. ``n = 0`` gives
        an empty data set.

    Raises
    ------
    ValidationError
        Unknown name, split or binarize mode; ``n`` not an int ``>= 0`` or, for an image data
        set, more than its split holds; a non-floating dtype; a device this machine lacks; a
        generator that is not a CPU ``torch.Generator``; a threshold outside ``[0, 1)``.
    DataNotFoundError
        Fashion-MNIST is not installed.
    """
    _check(name, split, binarize)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValidationError(f"data set {name!r}", "n must be an int >= 0", found=repr(n))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError(f"data set {name!r}", "dtype must be floating point",
                              found=repr(dtype))
    dev = check_device(device, f"data set {name!r} device")
    check_optional_generator(generator, f"data set {name!r} generator")
    if generator is not None and generator.device.type != "cpu":
        raise ValidationError(f"data set {name!r} generator", "must be a CPU generator (data "
                              "are drawn on the CPU, then moved)", found=str(generator.device),
                              fix="pass make_generator(seed)")
    if binarize == "fixed":
        threshold = check_real(threshold, f"data set {name!r} threshold", minimum=0.0,
                               maximum=1.0, strict_maximum=True)
    g = generator
    if g is None:
        g = torch.Generator().manual_seed(DEFAULT_SEEDS[split])
    if name in TOYS:
        x, y = sample_toy(name, TOY_SIZES[split] if n is None else n, generator=g, dtype=dtype)
    else:
        x, y = load_digits(split) if name == "digits" else load_fashion_mnist(split, root)
        if n is not None:
            if n > x.shape[0]:
                raise ValidationError(f"data set {name!r} n", f"the {split} split holds "
                                      f"{x.shape[0]} examples", found=n,
                                      fix=f"pass n <= {x.shape[0]} (or None for all)")
            x, y = x[:n], y[:n]
        x = x.to(dtype)
        if binarize is not None:
            x = _binarize_on_cpu(x, binarize, threshold, g)
    ds = Dataset(x, y, info(name, split, binarize=binarize))
    return ds.to(device=dev)


def _binarize_on_cpu(x: torch.Tensor, mode: str, threshold: float,
                     g: torch.Generator) -> torch.Tensor:
    return binarize(x, mode, threshold=threshold, generator=g)
