"""ParameterSpace: every transform's log-det against autograd Jacobians, round trips, wrap."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from probforge.errors import ShapeError, ValidationError
from probforge.ops import make_generator
from samplers.space import (
    Interval,
    LowerBounded,
    Ordered,
    ParameterSpace,
    Positive,
    Real,
    Simplex,
    Support,
)

SPECS = {
    "real": Real(),
    "real_vec": Real(shape=(3,)),
    "positive": Positive(shape=(2,)),
    "lower": LowerBounded(-1.5),
    "interval": Interval(-2.0, 5.0),
    "unit": Interval(0, 1, shape=(2,)),
    "simplex": Simplex(4),
    "ordered": Ordered(4),
    "simplex_rows": Simplex(3, batch_shape=(2,)),
}


def _autograd_log_det(spec: Support, u: torch.Tensor) -> float:
    """log |det J| of u -> y for one value; for the simplex, the first K-1 coordinates of each
    vector (the density's reference measure)."""

    def f(z: torch.Tensor) -> torch.Tensor:
        y = spec.transform(z.reshape(spec.unconstrained_shape))
        if isinstance(spec, Simplex):
            y = y[..., :-1]
        return y.reshape(-1)

    J = jacobian(f, u.reshape(-1))
    return float(torch.linalg.slogdet(J)[1])


@pytest.mark.parametrize("name", list(SPECS))
def test_log_det_matches_autograd(name: str) -> None:
    spec = SPECS[name]
    g = make_generator(3)
    for _ in range(3):
        u = torch.randn((1, *spec.unconstrained_shape), generator=g, dtype=torch.float64)
        y, ladj = spec.forward(u)
        assert y.shape == (1, *spec.shape)
        assert spec.constraint.check(y).all()
        assert math.isclose(float(ladj[0]), _autograd_log_det(spec, u[0]), abs_tol=1e-9)
        assert torch.allclose(spec.inverse(y), u, atol=1e-9)


def test_space_layout_unflatten_and_jacobian_sum() -> None:
    space = ParameterSpace({"mu": Real(), "tau": Positive(), "theta": Real(shape=(8,)),
                            "p": Interval(0, 1), "w": Simplex(3), "c": Ordered(4)})
    assert space.size == 1 + 1 + 8 + 1 + 2 + 4
    assert space.shapes == {"mu": (), "tau": (), "theta": (8,), "p": (), "w": (3,), "c": (4,)}
    x = space.initial_position(6, make_generator(0), dtype=torch.float64)
    assert x.shape == (6, space.size) and float(x.abs().max()) <= 2.0
    values, ladj = space.forward(x)
    assert ladj.shape == (6,)
    parts = space.split(x)
    expected = sum(space.specs[k].forward(parts[k])[1] for k in space.specs)
    assert torch.allclose(ladj, expected)
    assert torch.allclose(space.flatten(values), x, atol=1e-10)
    assert bool((values["c"].diff(dim=-1) > 0).all()) and bool((values["tau"] > 0).all())
    # leading dims other than one chain dimension
    assert space.unflatten(x.reshape(2, 3, -1))["theta"].shape == (2, 3, 8)


def test_wrap_is_the_change_of_variables() -> None:
    """A Gamma(2, 1) density on tau, wrapped, is the density of log tau: it integrates to 1."""
    space = ParameterSpace({"tau": Positive()})
    logp = space.wrap(lambda v: torch.distributions.Gamma(2.0, 1.0).log_prob(v["tau"]))
    grid = torch.linspace(-12, 6, 20001, dtype=torch.float64).unsqueeze(-1)
    total = torch.trapezoid(logp(grid).exp(), grid[:, 0])
    assert abs(float(total) - 1.0) < 1e-6


def test_space_errors() -> None:
    with pytest.raises(ValidationError, match="low < high"):
        Interval(1, 1)
    with pytest.raises(ValidationError, match="K >= 2"):
        Simplex(1)
    with pytest.raises(ValidationError, match="Support"):
        ParameterSpace({"a": "real"})  # type: ignore[dict-item]
    space = ParameterSpace({"a": Real(2)})
    with pytest.raises(ShapeError, match=r"\(\.\.\., 2\)"):
        space.unflatten(torch.zeros(3, 4))
    with pytest.raises(ShapeError, match="one per chain"):
        space.wrap(lambda v: v["a"])(torch.zeros(3, 2))
    with pytest.raises(ValidationError, match="every parameter"):
        space.flatten({})
