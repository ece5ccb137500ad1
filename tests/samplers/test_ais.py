"""Annealed importance sampling: log Z of a Gaussian (within 4 SE; unbiased weights on average),
of a 1-d bimodal mixture, kernels and schedules, reproducibility, errors.

False-failure rates: "within 4 SE" has a normal-approximation false-failure rate of 6e-5 per
check; the unbiasedness z-tests state their alpha.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from probforge.errors import NonFiniteError, ValidationError
from probforge.ops.random import make_generator
from samplers.ais import DiagonalNormal, ais, log_evidence_se
from samplers.hmc import HMC, HMCParams
from samplers.mala import MALA, MALAParams
from samplers.slice import SliceParams, SliceSampler
from tests.samplers._mcmc_checks import (  # noqa: F401  (single_thread: fixture)
    DTYPE,
    correlated_cov,
    single_thread,
)
from tests.stats import seed_for

ALPHA = 1e-3
pytestmark = pytest.mark.usefixtures("single_thread")
MEAN = torch.tensor([2.0, -1.0, 0.5], dtype=DTYPE)
COV = correlated_cov(3, 0.6, torch.tensor([0.5, 1.0, 2.0], dtype=DTYPE))
PREC = torch.linalg.inv(COV)
SCALE = 3.7  # unnormalised target: f = SCALE * N(MEAN, COV) * (2 pi)^{d/2} |COV|^{1/2}
LOG_Z = math.log(SCALE) + 1.5 * math.log(2 * math.pi) + 0.5 * float(torch.logdet(COV))


def log_f(x: torch.Tensor) -> torch.Tensor:
    d = x - MEAN
    return math.log(SCALE) - 0.5 * ((d @ PREC) * d).sum(-1)


BASE = DiagonalNormal(torch.zeros(3, dtype=DTYPE), 3.0)


def test_gaussian_log_z_within_4_se() -> None:
    res = ais(log_f, BASE, HMC(), lambda b: HMCParams(0.6 / math.sqrt(0.05 + b), 4, COV),
              num_particles=512, num_temperatures=60, generator=make_generator(seed_for(0)))
    assert abs(res.log_z - LOG_Z) < 4 * res.log_z_se, (res.log_z, LOG_Z, res.log_z_se)
    assert res.log_z_se < 0.1 and res.ess > 100
    assert res.log_weights.shape == (512,) and res.positions.shape == (512, 3)
    assert res.accept_rate.shape == (60,) and float(res.accept_rate.min()) > 0.3


def test_weights_are_unbiased_on_average() -> None:
    """E[w] = Z: z-test of mean(w) / Z = 1 with the weights' own standard error, and over
    repeated independent runs of Z_hat (alpha each)."""
    res = ais(log_f, BASE, MALA(), lambda b: MALAParams(0.6 / math.sqrt(0.1 + b), COV),
              num_particles=4000, num_temperatures=30, generator=make_generator(seed_for(1)))
    w = torch.exp(res.log_weights - LOG_Z)
    z = abs(float(w.mean()) - 1.0) / (float(w.std()) / math.sqrt(w.numel()))
    assert z < stats.norm.isf(ALPHA / 2)
    # 20 independent small runs: their Z_hat average to Z
    g = make_generator(seed_for(2))
    z_hats = torch.tensor([
        math.exp(ais(log_f, BASE, MALA(), lambda b: MALAParams(0.6 / math.sqrt(0.1 + b), COV),
                     num_particles=64, num_temperatures=15, generator=g).log_z - LOG_Z)
        for _ in range(20)
    ])
    zz = abs(float(z_hats.mean()) - 1.0) / (float(z_hats.std()) / math.sqrt(20))
    assert zz < stats.t.isf(ALPHA / 2, df=19)


def test_bimodal_mixture_log_z() -> None:
    """f = 4 * [0.3 N(-3, 0.5) + 0.7 N(3, 0.5)] in 1-d: Z = 4; with slice moves."""

    def log_mix(x: torch.Tensor) -> torch.Tensor:
        normal = torch.distributions.Normal
        comps = torch.stack([math.log(0.3) + normal(-3.0, 0.5).log_prob(x[:, 0]),
                             math.log(0.7) + normal(3.0, 0.5).log_prob(x[:, 0])])
        return math.log(4.0) + torch.logsumexp(comps, 0)

    base = DiagonalNormal(torch.zeros(1, dtype=DTYPE), 5.0)
    res = ais(log_mix, base, SliceSampler(), SliceParams(2.0), num_particles=1000,
              num_temperatures=30, generator=make_generator(seed_for(3)))
    assert abs(res.log_z - math.log(4.0)) < 4 * res.log_z_se, (res.log_z, res.log_z_se)
    # the weighted particles put weight 0.7 on the right mode
    w = torch.softmax(res.log_weights, 0)
    right = float((w * (res.positions[:, 0] > 0)).sum())
    assert abs(right - 0.7) < 0.1


def test_log_evidence_se_matches_numpy() -> None:
    lw = torch.randn(1000, generator=make_generator(seed_for(4)), dtype=DTYPE)
    log_z, se, ess = log_evidence_se(lw)
    w = torch.exp(lw)
    assert math.isclose(log_z, math.log(float(w.mean())), rel_tol=1e-12)
    assert math.isclose(se, float(w.std()) / float(w.mean()) / math.sqrt(1000), rel_tol=1e-10)
    assert math.isclose(ess, float(w.sum() ** 2 / (w**2).sum()), rel_tol=1e-10)


def test_explicit_schedule_initial_position_and_reproducibility() -> None:
    g = make_generator(seed_for(5))
    x0 = BASE.sample(64, g)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    kw = dict(betas=torch.linspace(0.05, 1.0, 20), initial_position=x0)
    a = ais(log_f, BASE, HMC(), HMCParams(0.5, 3), generator=make_generator(seed_for(6)), **kw)
    b = ais(log_f, BASE, HMC(), HMCParams(0.5, 3), generator=make_generator(seed_for(6)), **kw)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a.log_weights, b.log_weights) and a.accept_rate.shape == (20,)
    # with no MCMC moves AIS is plain importance sampling through the path: still unbiased
    c = ais(log_f, BASE, HMC(), HMCParams(0.5, 3), num_mcmc_steps=0, **kw)
    assert torch.allclose(c.log_weights, log_f(x0) - BASE.log_prob(x0))


def test_errors() -> None:
    with pytest.raises(ValidationError, match="num_particles"):
        ais(log_f, BASE, HMC())
    with pytest.raises(ValidationError, match="end at 1"):
        ais(log_f, BASE, HMC(), num_particles=4, betas=[0.2, 0.5])
    with pytest.raises(ValidationError, match="increasing"):
        ais(log_f, BASE, HMC(), num_particles=4, betas=[0.5, 0.2, 1.0])
    with pytest.raises(NonFiniteError, match="NaN"):
        ais(lambda x: torch.full((x.shape[0],), torch.nan, dtype=x.dtype), BASE, HMC(),
            num_particles=4)
    with pytest.raises(ValidationError, match="positive"):
        DiagonalNormal(torch.zeros(2), -1.0)
