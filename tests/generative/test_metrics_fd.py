"""The Frechet classifier distance (not Inception-FID): features, and the trained classifier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generative.fd_classifier import (
    FDClassifier,
    classifier_features,
    classifier_frechet_distance,
    load_classifier,
    packaged_weights_path,
)
from probforge.errors import CheckpointError, ShapeError

DATA = Path("/usr/share/datasets/fashion-mnist")


def test_untrained_classifier_features_and_distance() -> None:
    net = FDClassifier().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 28, 28, generator=g)
    assert classifier_features(x, net, batch_size=128).shape == (300, 64)
    same = classifier_frechet_distance(x, x, net)
    other = classifier_frechet_distance(x, torch.zeros(300, 1, 28, 28), net)
    assert abs(same.item()) < 1e-6 and other.item() > same.item()
    with pytest.raises(ShapeError):
        net.features(torch.zeros(2, 1, 8, 8))


def test_load_without_training_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "none.pt", train_if_missing=False)


@pytest.mark.skipif(not (DATA / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST (dataset-fashion-mnist) is not installed")
def test_packaged_weights_are_the_default_and_accurate() -> None:
    """The weights the project trained once ship in the package and classify the test split."""
    from generative.data import load

    assert packaged_weights_path().is_file()
    net = load_classifier(train_if_missing=False)  # packaged: never trains here
    test = load("fashion-mnist", "test", n=2000)
    assert test.y is not None
    with torch.no_grad():
        acc = (net(test.x).argmax(1) == test.y).float().mean().item()
    assert acc >= 0.83  # 85 % measured on the full test split when trained


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST (dataset-fashion-mnist) is not installed")
def test_trained_classifier_is_accurate_and_cached(tmp_path: Path) -> None:
    """Trains the classifier (minutes): >= 83 % accuracy; FD(train, test) << FD(data, noise)."""
    from generative.data import load

    path = tmp_path / "fd.pt"
    net = load_classifier(path)
    assert path.exists()
    test = load("fashion-mnist", "test")
    assert test.y is not None
    with torch.no_grad():
        acc = (net(test.x).argmax(1) == test.y).float().mean().item()
    assert acc >= 0.83
    again = load_classifier(path, train_if_missing=False)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    train = load("fashion-mnist", "train", n=2000)
    real_vs_real = classifier_frechet_distance(train.x, test.x[:2000], net).item()
    noise = torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert real_vs_real < 0.1 * classifier_frechet_distance(train.x, noise, net).item()
