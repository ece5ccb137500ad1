"""Generators: reproducibility, splitting, and the global RNG left alone."""

from __future__ import annotations

import pytest
import torch

from probforge.errors import DeviceMismatchError, ValidationError
from probforge.ops import make_generator, normal, random_seed, split, uniform


def test_same_seed_same_draws_and_global_rng_untouched() -> None:
    state = torch.get_rng_state()
    a = normal((5,), generator=make_generator(3), dtype=torch.float64)
    b = normal((5,), generator=make_generator(3), dtype=torch.float64)
    c = uniform((5,), generator=make_generator(4))
    assert torch.equal(a, b)
    assert c.dtype == torch.float32 and ((c >= 0) & (c < 1)).all()
    assert torch.equal(torch.get_rng_state(), state)


def test_split_is_reproducible_and_children_differ() -> None:
    kids1 = split(make_generator(0), 3)
    kids2 = split(make_generator(0), 3)
    draws1 = [normal((4,), generator=k) for k in kids1]
    draws2 = [normal((4,), generator=k) for k in kids2]
    assert all(torch.equal(x, y) for x, y in zip(draws1, draws2, strict=True))
    assert not torch.equal(draws1[0], draws1[1])
    # a child's stream does not depend on how much its siblings drew
    kids3 = split(make_generator(0), 3)
    normal((1000,), generator=kids3[0])
    assert torch.equal(normal((4,), generator=kids3[1]), draws1[1])


def test_random_seed_draws_from_generator() -> None:
    assert random_seed(make_generator(1)) == random_seed(make_generator(1))
    assert 0 <= random_seed(make_generator(2)) < 2**62


def test_bad_seed_and_device_mismatch() -> None:
    with pytest.raises(ValidationError, match="non-negative int"):
        make_generator(-1)
    with pytest.raises(ValidationError):
        split(make_generator(0), -2)
    with pytest.raises(DeviceMismatchError, match="draws on cpu"):
        uniform((2,), generator=make_generator(0), device="meta")


def test_sample_distribution_is_reproducible_and_restores_global_rng():
    from probforge.ops.random import sample_distribution

    dist = torch.distributions.Gamma(torch.tensor([0.5, 2.0]), torch.tensor([1.0, 3.0]))
    before = torch.get_rng_state()
    a = sample_distribution(dist, (6,), make_generator(3))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.shape == (6, 2)
    assert torch.equal(a, sample_distribution(dist, (6,), make_generator(3)))
    assert sample_distribution(dist, (2,)).shape == (2, 2)
