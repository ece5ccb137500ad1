"""Gibbs with user conditionals: Gaussian and discrete targets, systematic and random scans.

False-failure rates: moment tests are Bonferroni families at alpha = 1e-3; invariance tests have
alpha = 1e-4.
"""

from __future__ import annotations

import math

import pytest
import torch

from probforge.errors import ShapeError, ValidationError
from probforge.ops import gumbel, make_generator
from samplers.gibbs import Gibbs, GibbsBlock
from samplers.run import sample
from tests.stats import chi_square_gof, ks_test, mcse_z_test, seed_for

RHO = 0.8


def gauss_conditional(i: int):  # type: ignore[no-untyped-def]
    """x_i | x_j ~ N(rho x_j, 1 - rho^2) for the standard bivariate normal with correlation rho."""

    def draw(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        m = RHO * x[:, 1 - i]
        z = torch.randn(m.shape, generator=g, dtype=x.dtype, device=x.device)
        return (m + math.sqrt(1 - RHO**2) * z).unsqueeze(-1)

    return draw


def gauss_kernel(scan: str) -> Gibbs:
    return Gibbs([GibbsBlock([0], gauss_conditional(0)), ([1], gauss_conditional(1))], scan=scan)


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_gaussian_moments(scan: str) -> None:
    g = make_generator(seed_for(3))
    x0 = 3 * torch.randn(6, 2, generator=g, dtype=torch.float64)
    s = sample(gauss_kernel(scan), None, x0, num_draws=3000, num_warmup=100, generator=g)
    x = s["x"]
    tests = [(x[..., 0], 0.0), (x[..., 1], 0.0), (x[..., 0] ** 2, 1.0),
             (x[..., 0] * x[..., 1], RHO)]
    for draws, truth in tests:
        mcse_z_test(draws, truth, 1e-3, num_tests=len(tests))


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_gaussian_one_step_invariance(scan: str) -> None:
    g = make_generator(seed_for(0))
    n = 20_000
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x0[:, 1] = RHO * x0[:, 0] + math.sqrt(1 - RHO**2) * x0[:, 1]
    k = gauss_kernel(scan)
    state, _ = k.step(k.init(x0, None), None, None, g)
    x = state.position
    ks_test(x[:, 0], ("norm", 0, 1), 1e-4 / 3)
    ks_test(x[:, 1], ("norm", 0, 1), 1e-4 / 3)
    ks_test((x[:, 0] - x[:, 1]) / math.sqrt(2 - 2 * RHO), ("norm", 0, 1), 1e-4 / 3)


JOINT = torch.tensor([[0.10, 0.05], [0.20, 0.25], [0.30, 0.10]], dtype=torch.float64)


def categorical(logits: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return (logits + gumbel(logits.shape, logits, g)).argmax(-1)


def discrete_kernel(scan: str, broken: bool = False) -> Gibbs:
    def draw_a(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        return categorical(torch.log(JOINT[:, x[:, 1]].T), g).unsqueeze(-1)

    def draw_b(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        table = JOINT**2 if broken else JOINT  # the broken kernel uses a wrong conditional
        return categorical(torch.log(table[x[:, 0], :]), g).unsqueeze(-1)

    return Gibbs([([0], draw_a), ([1], draw_b)], scan=scan)


def discrete_invariance(kernel: Gibbs, seed: int = 0, n: int = 50_000) -> None:
    g = make_generator(seed_for(seed))
    flat = torch.multinomial(JOINT.reshape(-1), n, replacement=True, generator=g)
    x0 = torch.stack([flat // 2, flat % 2], -1)
    state, _ = kernel.step(kernel.init(x0, None), None, None, g)
    x = state.position
    chi_square_gof(torch.bincount(x[:, 0] * 2 + x[:, 1], minlength=6), JOINT.reshape(-1), 1e-4)


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_discrete_one_step_invariance_and_a_broken_conditional_fails(scan: str) -> None:
    discrete_invariance(discrete_kernel(scan))
    with pytest.raises(AssertionError, match="chi-square"):
        discrete_invariance(discrete_kernel(scan, broken=True))


def test_discrete_moments_and_log_density_stat() -> None:
    g = make_generator(seed_for(9))
    x0 = torch.zeros(8, 2, dtype=torch.long)

    def logp(x: torch.Tensor) -> torch.Tensor:
        return torch.log(JOINT[x[:, 0], x[:, 1]])

    s = sample(discrete_kernel("systematic"), logp, x0, num_draws=2000, generator=g)
    x = s["x"]
    probs = JOINT.reshape(-1)
    for cell in range(6):
        ind = ((x[..., 0] * 2 + x[..., 1]) == cell).double()
        mcse_z_test(ind, probs[cell], 1e-3, num_tests=6)
    assert torch.allclose(s.stats["log_density"], torch.log(JOINT[x[..., 0], x[..., 1]]))


def test_blocked_update_and_reproducibility() -> None:
    """A single block of both coordinates drawing the exact joint is i.i.d. sampling."""

    def joint(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        return torch.stack([z[:, 0], RHO * z[:, 0] + math.sqrt(1 - RHO**2) * z[:, 1]], -1)

    k = Gibbs([(slice(0, 2), joint)])
    state = torch.get_rng_state()
    a = sample(k, None, torch.zeros(4, 2), num_draws=100, seed=1)
    b = sample(k, None, torch.zeros(4, 2), num_draws=100, seed=1)
    assert torch.equal(state, torch.get_rng_state()) and torch.equal(a["x"], b["x"])
    assert abs(float(torch.corrcoef(a.flatten("x").T)[0, 1]) - RHO) < 0.15


def test_gibbs_errors() -> None:
    with pytest.raises(ValidationError, match="scan"):
        Gibbs([([0], gauss_conditional(0))], scan="sideways")
    with pytest.raises(ShapeError, match=r"\[0, 2\)"):
        Gibbs([([5], gauss_conditional(0))]).init(torch.zeros(3, 2), None)
    with pytest.raises(ShapeError, match=r"\(chains, d\)"):
        Gibbs([([0], gauss_conditional(0))]).init(torch.zeros(3), None)
    k = Gibbs([([0, 1], gauss_conditional(0))])  # returns 1 column for a 2-column block
    with pytest.raises(ShapeError, match="conditional"):
        k.step(k.init(torch.zeros(3, 2), None), None, None, None)
