"""generative.data: toys, digits, Fashion-MNIST (IDX), binarisation and the batch order."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import pytest
import torch

from generative.data import (
    DATASETS,
    TOYS,
    BatchStream,
    Dataset,
    batches,
    binarize,
    info,
    load,
    load_digits,
    read_idx,
    sample_toy,
)
from generative.data.images import FASHION_MNIST_ROOT
from probforge.errors import (
    CheckpointError,
    DataNotFoundError,
    ParseError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import make_generator
from tests.stats import chi_square_gof, ks_test, seed_for, z_test_mean

HAS_FASHION = (FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file()


# ------------------------------------------------------------------ toys
@pytest.mark.parametrize("name", sorted(TOYS))
def test_toys_shapes_labels_and_reproducibility(name: str) -> None:
    x, y = sample_toy(name, 500, generator=make_generator(seed_for(1)))
    x2, y2 = sample_toy(name, 500, generator=make_generator(seed_for(1)))
    assert x.shape == (500, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, x2)
    x3, _ = sample_toy(name, 500, generator=make_generator(seed_for(1) + 1))
    assert not torch.equal(x, x3)
    k = TOYS[name].num_classes
    if k is None:
        assert y is None
    else:
        assert y is not None and y2 is not None and torch.equal(y, y2)
        assert y.dtype == torch.long and 0 <= int(y.min()) and int(y.max()) < k
    lo, hi = TOYS[name].value_range
    assert (x.abs() <= max(-lo, hi)).float().mean() > 0.99


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_gaussian_mixtures_have_their_stated_centres_and_spread(name: str) -> None:
    info_ = TOYS[name]
    x, y = sample_toy(name, 20000, generator=make_generator(seed_for(2)), dtype=torch.float64)
    assert y is not None
    centres = info_.centres(torch.float64)
    assert centres is not None and info_.mode_std is not None
    k = centres.shape[0]
    # Equal weights: chi-square goodness of fit (false-failure rate 1e-4).
    chi_square_gof(torch.bincount(y, minlength=k), torch.full((k,), 1.0 / k, dtype=torch.float64))
    # Each point minus its component centre is N(0, std^2 I): KS test (false-failure 1e-4).
    z = (x - centres[y]) / info_.mode_std
    ks_test(z[:, 0], ("norm", 0.0, 1.0))
    ks_test(z[:, 1], ("norm", 0.0, 1.0))
    # The label is the nearest centre (components are > 40 std apart).
    assert torch.equal(torch.cdist(x, centres).argmin(1), y)


def test_eight_gaussians_centres_lie_on_the_circle_of_radius_two() -> None:
    c = TOYS["8gaussians"].centres(torch.float64)
    assert c is not None
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    angles = torch.atan2(c[:, 1], c[:, 0]).remainder(2 * math.pi).sort().values
    torch.testing.assert_close(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4)


def test_checkerboard_and_rings_geometry() -> None:
    x, y = sample_toy("checkerboard", 5000, generator=make_generator(seed_for(3)))
    cell = torch.floor(x).long() + 2  # column, row of the unit square
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()  # only the black squares
    assert y is not None and torch.bincount(y).numel() == 8
    x, y = sample_toy("rings", 5000, generator=make_generator(seed_for(3)), dtype=torch.float64)
    assert y is not None
    radius_error = x.norm(dim=1) - (y + 1).double()
    # Radial noise std 0.08: the sample mean is within z < 3.9 (false-failure 1e-4).
    z_test_mean(float(radius_error.mean()), 0.0, 0.08 / math.sqrt(5000))


def test_toy_errors() -> None:
    with pytest.raises(ValidationError, match="unknown name"):
        sample_toy("9gaussians", 10)
    with pytest.raises(ValidationError, match="n must be"):
        sample_toy("moons", -1)


# ------------------------------------------------------------------ load / DataInfo
def test_load_toy_is_a_fixed_data_set_unless_a_generator_is_given() -> None:
    a, b = load("moons", "train", n=300), load("moons", "train", n=300)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, load("moons", "test", n=300).x)
    c = load("moons", "train", n=300, generator=make_generator(5))
    assert not torch.equal(a.x, c.x)
    assert len(load("8gaussians")) == 10000 and len(load("8gaussians", "test")) == 2000
    d = load("8gaussians", n=10, dtype=torch.float64)
    assert d.x.dtype == torch.float64 and d.info.split == "train"
    assert d.info.mode_centres is not None and len(d.info.mode_centres) == 8


def test_data_info_fields_and_json() -> None:
    i = info("digits", "test", binarize="fixed")
    assert (i.name, i.event_shape, i.num_classes, i.is_image, i.value_range) == (
        "digits", (1, 8, 8), 10, True, (0.0, 1.0))
    assert i.split == "test" and i.binarized == "fixed" and i.event_numel == 64
    d = i.to_dict()
    assert d["event_shape"] == [1, 8, 8] and d["mode_centres"] is None
    assert set(DATASETS) >= {"digits", "fashion-mnist", "8gaussians", "25gaussians", "rings",
                             "swissroll", "moons", "checkerboard"}


def test_load_errors() -> None:
    with pytest.raises(ValidationError, match="unknown name"):
        load("mnist")
    with pytest.raises(ValidationError, match="split"):
        load("digits", "valid")
    with pytest.raises(ValidationError, match="only image"):
        load("moons", binarize="fixed")
    with pytest.raises(ValidationError, match="binarize mode"):
        load("digits", binarize="otsu")
    with pytest.raises(ValidationError, match="floating"):
        load("digits", dtype=torch.int64)


def test_dataset_validation() -> None:
    with pytest.raises(ShapeError):
        Dataset.from_tensors(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValidationError, match=r"torch\.long"):
        Dataset.from_tensors(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValidationError, match="floating"):
        Dataset.from_tensors(torch.zeros(4, 2, dtype=torch.long))
    ds = Dataset.from_tensors(torch.rand(5, 1, 3, 3), torch.tensor([0, 1, 2, 1, 0]))
    assert ds.info.is_image and ds.info.num_classes == 3 and len(ds.subset(2)) == 2


# ------------------------------------------------------------------ digits
def test_digits_match_sklearn_and_split_partitions_them() -> None:
    from sklearn.datasets import load_digits as sk

    bunch = sk()
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert xtr.shape == (1497, 1, 8, 8) and xte.shape == (300, 1, 8, 8)
    idx = torch.arange(1797)
    ref = torch.as_tensor(bunch.images, dtype=torch.float32) / 16
    torch.testing.assert_close(xte[:, 0], ref[idx % 6 == 0], rtol=0, atol=0)
    torch.testing.assert_close(xtr[:, 0], ref[idx % 6 != 0], rtol=0, atol=0)
    assert torch.equal(torch.cat([ytr, yte]).sort().values,
                       torch.as_tensor(bunch.target).sort().values)
    assert float(xtr.min()) == 0.0 and float(xtr.max()) == 1.0
    ds = load("digits", "train", n=100)
    assert len(ds) == 100 and ds.y is not None and ds.info.is_image


# ------------------------------------------------------------------ IDX / Fashion-MNIST
def _write_idx(path: Path, header: bytes, payload: bytes, compress: bool = True) -> Path:
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + payload)
    return path


def test_read_idx_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    values = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    header = struct.pack(">BBBB3I", 0, 0, 8, 3, 2, 3, 4)
    for compress in (True, False):
        path = _write_idx(tmp_path / f"a{compress}-idx3-ubyte{'.gz' if compress else ''}",
                          header, values.numpy().tobytes(), compress)
        assert torch.equal(read_idx(path, expected_ndim=3, expected_shape=(2, 3, 4)), values)


def test_read_idx_rejects_corrupt_files_before_allocating(tmp_path: Path) -> None:
    good = struct.pack(">BBBBI", 0, 0, 8, 1, 4)
    cases = {
        "magic": (struct.pack(">BBBBI", 0, 0, 9, 1, 4), bytes(4), "magic"),
        "ndim": (struct.pack(">BBBBII", 0, 0, 8, 2, 2, 2), bytes(4), "magic"),
        "short": (good, bytes(3), "4 data bytes"),
        "long": (good, bytes(5), "end of file"),
        "header": (b"\x00\x00", b"", "magic"),
    }
    for name, (header, payload, match) in cases.items():
        path = _write_idx(tmp_path / f"{name}.gz", header, payload)
        with pytest.raises(ParseError, match=match) as err:
            read_idx(path, expected_ndim=1)
        assert str(path) in str(err.value)
    # A declared size far beyond the limit is refused from the header alone.
    huge = _write_idx(tmp_path / "huge.gz", struct.pack(">BBBB3I", 0, 0, 8, 3, 2**31 - 1,
                                                        2**16, 2**16), b"")
    with pytest.raises(ParseError, match="at most"):
        read_idx(huge, expected_ndim=3)
    with pytest.raises(ParseError, match="size 5"):
        read_idx(_write_idx(tmp_path / "n.gz", good, bytes(4)), expected_ndim=1,
                 expected_shape=(5,))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(ParseError, match="readable IDX"):
        read_idx(broken, expected_ndim=1)


def test_missing_fashion_mnist_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        load("fashion-mnist", root=tmp_path)
    text = str(err.value)
    assert "dataset-fashion-mnist" in text and "apt-get install" in text
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.skipif(not HAS_FASHION, reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package() -> None:
    ds = load("fashion-mnist", "test")
    assert ds.x.shape == (10000, 1, 28, 28) and ds.y is not None and ds.y.shape == (10000,)
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    # Oracle: the raw bytes of the first image and label, read independently.
    with gzip.open(FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read(16 + 784)
    first = torch.tensor(list(raw[16:]), dtype=torch.float32).reshape(28, 28) / 255
    torch.testing.assert_close(ds.x[0, 0], first, rtol=0, atol=0)
    with gzip.open(FASHION_MNIST_ROOT / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert int(ds.y[0]) == f.read(9)[8]
    assert torch.bincount(ds.y).tolist() == [1000] * 10  # the test split is balanced
    small = load("fashion-mnist", "train", n=50, binarize="fixed")
    assert small.x.shape == (50, 1, 28, 28) and set(small.x.unique().tolist()) <= {0.0, 1.0}


# ------------------------------------------------------------------ binarisation
def test_binarize_fixed_and_stochastic() -> None:
    x = torch.tensor([0.0, 0.5, 0.51, 1.0])
    assert binarize(x, "fixed").tolist() == [0.0, 0.0, 1.0, 1.0]
    assert binarize(x, "fixed", threshold=0.0).tolist() == [0.0, 1.0, 1.0, 1.0]
    p = torch.full((200000,), 0.3, dtype=torch.float64)
    b = binarize(p, "stochastic", generator=make_generator(seed_for(4)))
    assert torch.equal(b, binarize(p, "stochastic", generator=make_generator(seed_for(4))))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    # Bernoulli(0.3) mean: z-test with false-failure rate 1e-4.
    z_test_mean(float(b.mean()), 0.3, math.sqrt(0.3 * 0.7 / p.numel()))
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        binarize(torch.tensor([1.5]), "fixed")
    with pytest.raises(ValidationError, match="unknown mode"):
        binarize(x, "dither")


def test_load_stochastic_binarisation_is_fixed_per_split() -> None:
    a = load("digits", "test", binarize="stochastic")
    b = load("digits", "test", binarize="stochastic")
    c = load("digits", "test", binarize="stochastic", generator=make_generator(1))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.info.binarized == "stochastic"


# ------------------------------------------------------------------ batch order
def _index_data(n: int) -> Dataset:
    return Dataset.from_tensors(torch.arange(n, dtype=torch.float64)[:, None],
                                torch.arange(n))


def test_each_epoch_is_a_permutation_and_epochs_differ() -> None:
    ds = _index_data(10)
    s = BatchStream(ds, 3, seed=seed_for(7), drop_last=False)
    assert len(s) == 4
    epochs = []
    for _ in range(3):
        labels = [s.next_batch()[1] for _ in range(len(s))]
        ids = torch.cat([y for y in labels if y is not None])
        assert sorted(ids.tolist()) == list(range(10)) and s.epoch_finished
        epochs.append(ids)
    assert not torch.equal(epochs[0], epochs[1])
    x, y = next(batches(ds, 4, make_generator(0)))
    assert x.shape == (4, 1) and y is not None and torch.equal(x[:, 0].long(), y)


def test_drop_last_and_no_shuffle() -> None:
    s = BatchStream(_index_data(10), 4, seed=0, shuffle=False)
    got = [y.tolist() for _, y in s if y is not None]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValidationError, match="no batch"):
        BatchStream(_index_data(3), 4, seed=0)


def test_resume_mid_epoch_continues_the_same_order() -> None:
    ds = _index_data(23)
    full = BatchStream(ds, 4, seed=seed_for(8))
    ref = [full.next_batch()[1] for _ in range(17)]  # crosses three epoch boundaries
    a = BatchStream(ds, 4, seed=seed_for(8))
    for _ in range(9):
        a.next_batch()
    state = a.state_dict()
    assert all(isinstance(v, int) for v in state.values())
    b = BatchStream(ds, 4, generator=make_generator(99))  # another seed, then restored
    b.load_state_dict(state)
    rest = [b.next_batch()[1] for _ in range(8)]
    for r, g in zip(ref[9:], rest, strict=True):
        assert r is not None and g is not None and torch.equal(r, g)
    with pytest.raises(CheckpointError, match="batch_size"):
        BatchStream(ds, 5, seed=0).load_state_dict(state)
    with pytest.raises(CheckpointError, match="num_examples"):
        BatchStream(_index_data(24), 4, seed=0).load_state_dict(state)


def test_rank_shards_are_disjoint_and_cover_the_epoch() -> None:
    ds = _index_data(21)
    shards = [BatchStream(ds, 5, seed=3, rank=r, world_size=2) for r in range(2)]
    single = BatchStream(ds, 10, seed=3)
    assert [len(s) for s in shards] == [2, 2]
    for _ in range(2):
        parts = [s.next_batch()[1] for s in shards]
        whole = single.next_batch()[1]
        assert parts[0] is not None and parts[1] is not None and whole is not None
        assert not set(parts[0].tolist()) & set(parts[1].tolist())
        assert sorted(parts[0].tolist() + parts[1].tolist()) == sorted(whole.tolist())
    with pytest.raises(ValidationError, match="rank"):
        BatchStream(ds, 5, seed=0, rank=2, world_size=2)
