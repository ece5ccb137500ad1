"""A small Fashion-MNIST classifier whose features define probforge's Frechet classifier distance.

**This is not Inception-FID.** FID (Heusel et al. 2017) is the Frechet distance between Gaussians
fitted to Inception-v3 pool features; probforge ships no Inception weights and reads no network.
Here the features are the 64-d penultimate layer of a four-layer CNN (about 93k parameters)
trained by :func:`train` on the Fashion-MNIST training split (Adam 1e-3, batch 128, 2 epochs,
seed 0, float32 on CPU; 85 % test accuracy). Numbers from it compare probforge models with
each other on 28x28 grey images; they are not comparable with published FIDs.

The weights were trained once by the project with :func:`train` (the recipe above, torch 2.13 CPU,
2 threads) and ship in the package as ``generative/weights/fd_classifier_fmnist_v1.pt``
(377 kB, loaded with ``weights_only=True``), so every installation measures with the same
features. :func:`load_classifier` uses them; only if that file is missing (a stripped install)
does it train the network once (a few minutes on two idle cores) and cache it atomically in
``$PROBFORGE_CACHE`` (default ``~/.cache/probforge``). Training is seeded and deterministic for
a given torch build and thread count; ``python -m generative.fd_classifier`` prints the SHA-256
of the weights in use so that runs can check they share the same features.

Examples
--------
>>> import torch
>>> from generative.fd_classifier import FDClassifier
>>> net = FDClassifier()
>>> net.features(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 64])
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import CheckpointError, ShapeError, ValidationError
from probforge.validate import check_int

from .checkpoint import load_checkpoint, load_networks, save_checkpoint
from .checks import check_batch
from .metrics.frechet import frechet_distance
from .networks import seeded

__all__ = [
    "FEATURE_DIM",
    "FDClassifier",
    "classifier_features",
    "classifier_frechet_distance",
    "default_weights_path",
    "load_classifier",
    "packaged_weights_path",
    "train",
]

FEATURE_DIM = 64
_FILE = "fd_classifier_fmnist_v1.pt"


class FDClassifier(nn.Module):
    """CNN on ``(B, 1, 28, 28)`` images in ``[0, 1]``: 64-d features and 10 class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(),   # 14x14
            nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),  # 7x7
            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),  # 4x4
            nn.Flatten(), nn.Linear(64 * 16, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (B, 64)."""
        if tuple(x.shape[1:]) != (1, 28, 28):
            raise ShapeError("FDClassifier input", "must be (B, 1, 28, 28) images in [0, 1]",
                             found=tuple(x.shape))
        out: Tensor = self.body(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, 10)."""
        out: Tensor = self.head(self.features(x))
        return out


def default_weights_path() -> Path:
    """``$PROBFORGE_CACHE/fd_classifier_fmnist_v1.pt`` (default cache ``~/.cache/probforge``)."""
    root = os.environ.get("PROBFORGE_CACHE") or Path.home() / ".cache" / "probforge"
    return Path(root) / _FILE


def train(*, epochs: int = 2, seed: int = 0, batch_size: int = 128, lr: float = 1e-3,
          root: str | os.PathLike[str] | None = None,
          out: str | os.PathLike[str] | None = None) -> FDClassifier:
    """Train the classifier on the Fashion-MNIST training split (reproducibly for one seed).

    Parameters
    ----------
    epochs, seed, batch_size, lr
        The recipe (defaults are the ones the cached weights use).
    root : path, optional
        Folder of the Fashion-MNIST IDX files (default: the Debian package's).
    out : path, optional
        Save the weights there (atomically).

    Returns
    -------
    FDClassifier
        In eval mode.
    """
    from .data import load

    ds = load("fashion-mnist", "train", root=root)
    assert ds.y is not None
    with seeded(seed):
        net = FDClassifier()
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = ds.x.shape[0]
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(net(ds.x[idx]), ds.y[idx])
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            opt.step()
    net.eval()
    if out is not None:
        save_checkpoint(out, {"state_dict": net.state_dict(),
                              "recipe": {"epochs": epochs, "seed": seed,
                                         "batch_size": batch_size, "lr": lr}})
    return net


def packaged_weights_path() -> Path:
    """The weights shipped with the package (``generative/weights/fd_classifier_fmnist_v1.pt``)."""
    return Path(__file__).resolve().parent / "weights" / _FILE


def load_classifier(path: str | os.PathLike[str] | None = None, *,
                    train_if_missing: bool = True) -> FDClassifier:
    """The project's classifier: from ``path``, else the packaged weights, else the cache
    (trained and cached first if absent and ``train_if_missing``).

    Raises
    ------
    CheckpointError
        No weights at ``path`` and ``train_if_missing`` is False.
    DataNotFoundError
        Training is needed and Fashion-MNIST is not installed.
    """
    if path is not None:
        p = Path(path)
    elif packaged_weights_path().exists():
        p = packaged_weights_path()
    else:
        p = default_weights_path()
    if not p.exists():
        if not train_if_missing:
            raise CheckpointError(f"FD classifier weights {p}", "not found",
                                  fix="call generative.fd_classifier.train(out=...) once")
        p.parent.mkdir(parents=True, exist_ok=True)
        return train(out=p)
    ck = load_checkpoint(p)
    net = FDClassifier()
    load_networks({"state_dict": net}, {"state_dict": ck.get("state_dict")}, p)
    return net.eval()


def classifier_features(x: Tensor, classifier: FDClassifier, batch_size: int = 500) -> Tensor:
    """Features (N, 64) of images (N, 1, 28, 28) in ``[0, 1]``, in batches, without gradient.

    ``x`` must be a finite floating batch (``N >= 1``) with values in ``[0, 1]``;
    ``batch_size >= 1``.
    """
    if not isinstance(classifier, FDClassifier):
        raise ValidationError("classifier_features classifier", "must be an FDClassifier",
                              found=type(classifier).__name__, fix="use load_classifier()")
    batch_size = check_int(batch_size, "classifier_features batch_size", minimum=1)
    check_batch(x, "FD classifier images", (1, 28, 28), value_range=(0.0, 1.0),
                range_rule="images must lie in [0, 1]")
    p = next(classifier.parameters())
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            outs.append(classifier.features(x[i:i + batch_size].to(p)))
    return torch.cat(outs)


def classifier_frechet_distance(x: Tensor, y: Tensor,
                                classifier: FDClassifier | None = None) -> Tensor:
    """Frechet distance between two image sets in the classifier's feature space (not FID).

    Parameters
    ----------
    x, y : Tensor (N, 1, 28, 28), (M, 1, 28, 28)
        Images in ``[0, 1]``; use thousands of images for a stable figure (the estimate is
        biased upwards for small samples).
    classifier : FDClassifier, optional
        Default: :func:`load_classifier`.

    Returns
    -------
    Tensor () float64
    """
    net = classifier if classifier is not None else load_classifier()
    return frechet_distance(classifier_features(x, net), classifier_features(y, net))


def sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a weights file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":  # pragma: no cover - manual tool
    target = packaged_weights_path()
    if not target.exists():
        target = default_weights_path()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        train(out=target)
    print(target, sha256(target))
