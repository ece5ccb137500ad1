"""Offline data sets for the deep generative models, with one loader API.

:func:`load` returns a :class:`Dataset` (tensors plus a :class:`DataInfo`) for scikit-learn's
digits, Fashion-MNIST (Debian package ``dataset-fashion-mnist``), the 2-D toys (8 and 25
Gaussians, rings, swiss roll, moons, checkerboard) and binarised variants of the images;
:class:`BatchStream` and :func:`batches` give minibatches in a reproducible, resumable order.

Examples
--------
>>> from generative.data import load, batches
>>> from probforge.ops.random import make_generator
>>> ds = load("digits", "train")
>>> x, y = next(batches(ds, 32, make_generator(0)))
>>> tuple(x.shape), tuple(y.shape)
((32, 1, 8, 8), (32,))
"""

from generative.data.binarize import BINARIZE_MODES, binarize
from generative.data.catalog import DATASETS, DEFAULT_SEEDS, info, load
from generative.data.dataset import DataInfo, Dataset
from generative.data.idx import read_idx
from generative.data.images import FASHION_MNIST_CLASSES, load_digits, load_fashion_mnist
from generative.data.loader import BatchStream, batches, derive_seed
from generative.data.toys import TOYS, sample_toy

__all__ = [
    "BINARIZE_MODES",
    "DATASETS",
    "DEFAULT_SEEDS",
    "FASHION_MNIST_CLASSES",
    "TOYS",
    "BatchStream",
    "DataInfo",
    "Dataset",
    "batches",
    "binarize",
    "derive_seed",
    "info",
    "load",
    "load_digits",
    "load_fashion_mnist",
    "read_idx",
    "sample_toy",
]
