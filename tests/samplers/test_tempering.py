"""Parallel tempering: mixing between separated modes (where RWMH is stuck), invariance of a
full step and of the swaps alone, a broken swap ratio, swap statistics, errors.

False-failure rates: each statistical assertion states its family-wise ``alpha``.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import make_generator
from samplers.mala import MALA, MALAParams
from samplers.metropolis import RandomWalkMetropolis, RandomWalkParams
from samplers.run import sample
from samplers.tempering import (
    ParallelTempering,
    TemperingParams,
    geometric_betas,
    replica_values,
    swap_acceptance_rates,
)
from tests.samplers._mcmc_checks import (  # noqa: F401  (single_thread: fixture)
    DTYPE,
    correlated_cov,
    gaussian,
    invariance_pvalues,
    single_thread,
)
from tests.stats import seed_for

ALPHA = 1e-3
pytestmark = pytest.mark.usefixtures("single_thread")
W_RIGHT = 0.7  # mixture weight of the mode at +5


def bimodal(x: torch.Tensor) -> torch.Tensor:
    """0.3 N(-5, 0.5^2) + 0.7 N(5, 0.5^2) in 1-d (normalised); barrier exp(-50) at 0."""
    lp = torch.stack([math.log(1 - W_RIGHT) - 2 * (x[:, 0] + 5) ** 2,
                      math.log(W_RIGHT) - 2 * (x[:, 0] - 5) ** 2])
    return torch.logsumexp(lp, 0) - math.log(0.5 * math.sqrt(2 * math.pi))


def test_tempering_mixes_where_random_walk_is_stuck() -> None:
    chains = 8
    x0 = torch.full((chains, 1), -5.0, dtype=DTYPE)
    x0[::2] = 5.0
    rw = sample(RandomWalkMetropolis(), bimodal, x0, num_draws=1000,
                params=RandomWalkParams(torch.tensor(0.6, dtype=DTYPE)), seed=seed_for(0))
    right = (rw["x"][..., 0] > 0).double().mean(1)
    assert right.tolist() == [1.0, 0.0] * (chains // 2)  # every chain stays in its mode

    betas = geometric_betas(8, 0.005)
    kernel = ParallelTempering(RandomWalkMetropolis(), betas)
    scale = replica_values(0.6 / betas.sqrt(), chains)
    s = sample(kernel, bimodal, x0, num_draws=1000, num_warmup=100,
               params=TemperingParams(RandomWalkParams(scale)), seed=seed_for(0))
    frac = (s["x"][..., 0] > 0).double()
    assert bool(((frac.mean(1) > 0.2) & (frac.mean(1) < 0.95)).all())  # every chain visits both
    # the mode weight by an MCSE z-test on the indicator (family of one test, alpha)
    from samplers.diagnostics import mcse
    from samplers.samples import Samples

    se = float(mcse(Samples({"ind": frac}))["ind"])
    z = abs(float(frac.mean()) - W_RIGHT) / se
    assert z < stats.norm.isf(ALPHA / 2), (float(frac.mean()), se)
    rates = swap_acceptance_rates(s.attrs["final_state"])
    assert rates.shape == (7,) and bool(((rates > 0.05) & (rates <= 1)).all())
    assert "mean_swap_accept" in s.stats


MEAN = torch.tensor([1.0, -1.0], dtype=DTYPE)
COV = correlated_cov(2, 0.7, torch.tensor([1.0, 0.5], dtype=DTYPE))
BETAS = torch.tensor([1.0, 0.6, 0.3, 0.1], dtype=DTYPE)


def _tempered_draws(n: int, g: torch.Generator) -> torch.Tensor:
    chol = torch.linalg.cholesky(COV)
    z = torch.randn(n, len(BETAS), 2, generator=g, dtype=DTYPE)
    return MEAN + (z @ chol.T) / BETAS.sqrt()[None, :, None]


def _replica_pvalues(replicas: torch.Tensor) -> list[float]:
    chol = torch.linalg.cholesky(COV)
    ps: list[float] = []
    for r, b in enumerate(BETAS.tolist()):
        ps += invariance_pvalues(replicas[:, r], MEAN, chol / math.sqrt(b))
    return ps


def _one_step(kernel: ParallelTempering, eps: float, seed: int, steps: int = 1) -> torch.Tensor:
    logp, _ = gaussian(MEAN, COV)
    g = make_generator(seed)
    n = 10000
    state = kernel.init_replicas(_tempered_draws(n, g), logp)
    params = TemperingParams(MALAParams(replica_values(eps / BETAS.sqrt(), n), COV))
    for _ in range(steps):
        state, _info = kernel.step(state, logp, params, g)
    return state.replicas


@pytest.mark.parametrize("eps", [0.9, 1e-9])  # full step; swaps alone (inner moves ~ nil)
def test_invariance_of_every_replica(eps: float) -> None:
    replicas = _one_step(ParallelTempering(MALA(), BETAS), eps, seed=seed_for(21), steps=2)
    ps = _replica_pvalues(replicas)
    assert min(ps) > ALPHA / len(ps), ps


class WrongSwap(ParallelTempering):
    """Deliberately broken: the swap ratio with the sign of the temperature difference flipped."""

    @staticmethod
    def _swap_log_ratio(betas: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        return -ParallelTempering._swap_log_ratio(betas, energy)


def test_wrong_swap_ratio_fails_invariance() -> None:
    replicas = _one_step(WrongSwap(MALA(), BETAS), 1e-9, seed=seed_for(21), steps=2)
    ps = _replica_pvalues(replicas)
    assert min(ps) < ALPHA / len(ps)


def test_even_odd_alternation_and_info() -> None:
    logp, _ = gaussian(MEAN, COV)
    kernel = ParallelTempering(MALA(), BETAS)
    state = kernel.init(torch.zeros(3, 2, dtype=DTYPE), logp)
    g = make_generator(seed_for(0))
    params = TemperingParams(MALAParams(0.5))
    state, info = kernel.step(state, logp, params, g)
    assert info.swap_proposed[0].tolist() == [True, False, True]
    state, info = kernel.step(state, logp, params, g)
    assert info.swap_proposed[0].tolist() == [False, True, False]
    assert info.swap_accept_prob.shape == (3, 3) and info.accept_prob.shape == (3,)
    assert state.position.shape == (3, 2) and state.replicas.shape == (3, 4, 2)
    assert torch.allclose(state.log_density, logp(state.position))
    flat = state.replicas.reshape(-1, 2)
    assert torch.allclose(state.replica_log_density, logp(flat).reshape(3, 4))
    assert state.swap_proposed.sum().item() == 3 * 3


def test_reference_density_and_single_temperature() -> None:
    logp, _ = gaussian(MEAN, COV)
    ref = lambda x: -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)  # noqa: E731
    kernel = ParallelTempering(MALA(), BETAS, reference_log_density=ref)
    s = sample(kernel, logp, torch.zeros(4, 2, dtype=DTYPE), num_draws=20,
               params=TemperingParams(MALAParams(0.5)), seed=seed_for(1))
    assert s["x"].shape == (4, 20, 2)
    one = ParallelTempering(MALA(), [1.0])
    s1 = sample(one, logp, torch.zeros(4, 2, dtype=DTYPE), num_draws=5,
                params=MALAParams(0.5), seed=seed_for(1))
    assert s1["x"].shape == (4, 5, 2)


def test_reproducible_and_global_rng_untouched() -> None:
    torch.manual_seed(3)
    before = torch.get_rng_state()
    kernel = ParallelTempering(RandomWalkMetropolis(), geometric_betas(3, 0.1))
    x0 = torch.zeros(4, 1, dtype=DTYPE)
    a = sample(kernel, bimodal, x0, num_draws=30, params=TemperingParams(0.5), seed=seed_for(2))
    b = sample(kernel, bimodal, x0, num_draws=30, params=TemperingParams(0.5), seed=seed_for(2))
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(a["x"], b["x"])


def test_errors() -> None:
    with pytest.raises(ValidationError, match="exactly 1"):
        ParallelTempering(MALA(), [0.9, 0.5])
    with pytest.raises(ValidationError, match="decreasing"):
        ParallelTempering(MALA(), [1.0, 0.2, 0.5])
    with pytest.raises(ValidationError, match="geometric_betas"):
        geometric_betas(0)
    kernel = ParallelTempering(MALA(), BETAS)
    logp = lambda x: torch.where(x[:, 0] > 0, -(x**2).sum(-1), -torch.inf)  # noqa: E731
    with pytest.raises(NonFiniteError, match=r"\[1\]"):
        kernel.init(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=DTYPE), logp)
    with pytest.raises(ShapeError, match="R = 4"):
        kernel.init_replicas(torch.ones(2, 3, 2, dtype=DTYPE), logp)
