"""Per-feature standardisation: moments, the constant-feature rule, the inverse, the density
change of variables, and named errors."""

from __future__ import annotations

import math

import pytest
import torch

from generative.energy.standardize import Standardizer, standardize
from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops import make_generator

F64 = torch.float64


def test_moments_and_inverse():
    g = make_generator(0)
    x = torch.randn(500, 2, 3, generator=g, dtype=F64) * torch.tensor([1.0, 5.0, 0.1]) + 7
    z, st = standardize(x)
    assert z.shape == x.shape and z.dtype == F64
    assert torch.allclose(z.mean(0), torch.zeros(2, 3, dtype=F64), atol=1e-12)
    assert torch.allclose(z.std(0, correction=0), torch.ones(2, 3, dtype=F64), atol=1e-12)
    assert torch.allclose(st.mean, x.mean(0), atol=1e-12)
    assert torch.allclose(st.std, x.std(0, correction=0), atol=1e-12)
    assert torch.allclose(st.inverse(z), x, atol=1e-12)
    new = torch.randn(4, 2, 3, generator=g, dtype=F64)
    assert torch.allclose(st.transform(new), (new - st.mean) / st.std)
    assert st.event_shape == (2, 3)


def test_float32_statistics_are_computed_in_float64():
    x = torch.full((1000, 1), 1e4, dtype=torch.float32) + torch.arange(1000.0)[:, None] % 2
    z, st = standardize(x)
    assert z.dtype == torch.float32 and st.mean.dtype == torch.float32
    assert torch.allclose(z.abs(), torch.ones_like(z), atol=1e-3)


def test_constant_features_get_unit_std_or_are_refused():
    x = torch.tensor([[1.0, 3.0, 0.0], [2.0, 3.0, 0.0], [4.0, 3.0, 0.0]], dtype=F64)
    before = x.clone()
    z, st = standardize(x)
    assert torch.equal(x, before)
    assert st.std[1:].tolist() == [1.0, 1.0]
    assert torch.equal(z[:, 1:], torch.zeros(3, 2, dtype=F64))
    assert bool(torch.isfinite(z).all())
    assert torch.equal(st.inverse(z)[:, 1:], x[:, 1:])
    with pytest.raises(ValidationError, match="constant"):
        standardize(x, constant="error")


def test_log_abs_det_turns_densities_of_z_into_densities_of_x():
    """If z = (x - m) / s is N(0, 1) per feature, x is N(m, s^2): log p_x = log p_z - sum log s."""
    st = Standardizer(torch.tensor([1.0, -2.0], dtype=F64), torch.tensor([0.5, 3.0], dtype=F64))
    x = torch.tensor([[0.3, 1.0]], dtype=F64)
    z = st.transform(x)
    log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum()
    want = torch.distributions.Normal(st.mean, st.std).log_prob(x).sum()
    assert torch.allclose(log_pz - st.log_abs_det, want, atol=1e-12)


BAD = [
    ("integer data", DtypeMismatchError, lambda: standardize(torch.zeros(3, 2, dtype=torch.long))),
    ("one row", ShapeError, lambda: standardize(torch.zeros(1, 2))),
    ("no feature dimension", ShapeError, lambda: standardize(torch.zeros(5))),
    ("NaN", NonFiniteError, lambda: standardize(torch.tensor([[0.0], [float("nan")]]))),
    ("bad rule", ValidationError, lambda: standardize(torch.randn(3, 2), constant="drop")),
    ("zero std", ValidationError, lambda: Standardizer(torch.zeros(2), torch.tensor([1.0, 0.0]))),
    ("shape mismatch", ShapeError, lambda: Standardizer(torch.zeros(2), torch.ones(3))),
    ("transform of the wrong shape", ShapeError,
     lambda: standardize(torch.randn(4, 3))[1].transform(torch.zeros(2, 4))),
    ("transform of one example", ShapeError,
     lambda: standardize(torch.randn(4, 3))[1].transform(torch.zeros(3))),
    ("transform in another dtype", DtypeMismatchError,
     lambda: standardize(torch.randn(4, 3))[1].transform(torch.zeros(2, 3, dtype=F64))),
    ("inverse with NaN", NonFiniteError,
     lambda: standardize(torch.randn(4, 3))[1].inverse(torch.full((2, 3), float("nan")))),
]


@pytest.mark.parametrize(("what", "error", "call"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_named_errors(what, error, call):
    with pytest.raises(error):
        call()
