"""Offline image data sets: scikit-learn's 8x8 digits and Fashion-MNIST from the Debian package.

- ``digits``: the 1,797 8x8 handwritten digits shipped inside scikit-learn (values 0..16, scaled
  to [0, 1] by dividing by 16). scikit-learn has no split; here example ``i`` is in the test
  split when ``i % 6 == 0`` (300 examples) and in the train split otherwise (1,497).
- ``fashion-mnist``: Zalando's 28x28 grey-scale clothing images (60,000 train, 10,000 test,
  10 classes) read from the IDX files of the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``; override with the ``root`` argument or the
  ``PROBFORGE_FASHION_MNIST`` environment variable). Values are ``byte / 255``.

Images come as ``(N, 1, H, W)`` float tensors in [0, 1] and ``(N,)`` long labels.

Examples
--------
>>> from generative.data.images import load_digits
>>> x, y = load_digits("test")
>>> tuple(x.shape), float(x.max()) <= 1.0, int(y[0])
((300, 1, 8, 8), True, 0)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import Tensor

from generative.data.idx import read_idx
from probforge.errors import DataNotFoundError, MissingDependencyError, ValidationError

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_ROOT", "fashion_mnist_root", "load_digits",
           "load_fashion_mnist"]

#: Where the Debian package ``dataset-fashion-mnist`` installs its files.
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000)}


def _check_split(split: str, name: str) -> None:
    if not isinstance(split, str) or split not in ("train", "test"):
        raise ValidationError(f"data set {name!r}", "split must be 'train' or 'test'",
                              found=repr(split))


def load_digits(split: str = "train") -> tuple[Tensor, Tensor]:
    """scikit-learn's digits: ``x`` (N, 1, 8, 8) float32 in [0, 1], ``y`` (N,) long."""
    _check_split(split, "digits")
    images, labels = _digits_arrays()
    idx = torch.arange(images.shape[0])
    keep = (idx % 6 == 0) if split == "test" else (idx % 6 != 0)
    return images[keep].clone(), labels[keep].clone()


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[Tensor, Tensor]:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as err:
        raise MissingDependencyError(
            "data set 'digits'", "needs scikit-learn", fix="pip install scikit-learn") from err
    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return x, y


def fashion_mnist_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$PROBFORGE_FASHION_MNIST``, else :data:`FASHION_MNIST_ROOT`."""
    if root is not None:
        if not isinstance(root, str | os.PathLike):
            raise ValidationError("fashion-mnist root", "must be a folder path (str or "
                                  "os.PathLike)", found=type(root).__name__)
        return Path(root)
    env = os.environ.get("PROBFORGE_FASHION_MNIST")
    return Path(env) if env else FASHION_MNIST_ROOT


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(
        "data set 'fashion-mnist'", f"file {stem}.gz not found in {root}",
        fix="install the Debian package dataset-fashion-mnist (sudo apt-get install "
        "dataset-fashion-mnist), or point root= / $PROBFORGE_FASHION_MNIST at a folder "
        "holding the four IDX files")


def load_fashion_mnist(split: str = "train",
                       root: str | os.PathLike[str] | None = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST: ``x`` (N, 1, 28, 28) float32 in [0, 1], ``y`` (N,) long.

    Raises
    ------
    DataNotFoundError
        The files are not installed (the message names the package and the apt command).
    ParseError
        A file is not a valid IDX file of the expected shape.
    """
    _check_split(split, "fashion-mnist")
    base = fashion_mnist_root(root)
    img_stem, lab_stem, n = _FILES[split]
    img_path, lab_path = _find(base, img_stem), _find(base, lab_stem)
    images = _read_cached(str(img_path), img_path.stat().st_mtime_ns, 3, (n, 28, 28))
    labels = _read_cached(str(lab_path), lab_path.stat().st_mtime_ns, 1, (n,))
    if int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValidationError(f"file {lab_path}", "labels must be 0..9",
                              found=int(labels.max()), fix="reinstall the data package")
    return images.unsqueeze(1).float() / 255.0, labels.long()


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, ndim: int, shape: tuple[int, ...]) -> Tensor:
    del mtime_ns  # part of the cache key only: a changed file is read again
    return read_idx(path, expected_ndim=ndim, expected_shape=shape)
