"""Window adaptation: Stan's schedule, dual averaging, mass-matrix estimates, the protocol.

False-failure rates: each statistical assertion states its family-wise ``alpha``; tolerance
checks on adapted quantities are loose bounds (a factor of the truth), not tests at a level.
"""

from __future__ import annotations

import math

import pytest
import torch

from probforge.errors import ValidationError
from samplers.adaptation import (
    WindowAdaptation,
    dual_averaging_init,
    dual_averaging_update,
    window_schedule,
)
from samplers.hmc import HMC, HMCParams
from samplers.mala import MALAParams
from samplers.nuts import NUTS, NUTSParams
from samplers.run import sample
from tests.samplers._mcmc_checks import (  # noqa: F401  (single_thread: fixture)
    DTYPE,
    correlated_cov,
    gaussian,
    mcse_z_test,
    single_thread,
)
from tests.stats import seed_for

ALPHA = 1e-3
pytestmark = pytest.mark.usefixtures("single_thread")


def test_window_schedule_matches_stan() -> None:
    # Stan: 75 init buffer, windows 25, 50, 100, 200, then stretched to num_warmup - 50
    assert window_schedule(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert window_schedule(500) == [(75, 100), (100, 150), (150, 250), (250, 450)]
    assert window_schedule(150) == [(75, 100)]
    # short warmups: 15% / 75% / 10%
    assert window_schedule(100) == [(15, 90)]
    assert window_schedule(19) == []
    for n in (20, 77, 151, 333, 2000):
        w = window_schedule(n)
        assert all(a < b for a, b in w) and all(w[i][1] == w[i + 1][0] for i in range(len(w) - 1))


def test_dual_averaging_finds_the_step_size_of_a_known_acceptance_curve() -> None:
    """With accept(eps) = exp(-eps), the target 0.8 is met at eps = -log(0.8)."""
    state = dual_averaging_init(torch.tensor(1.0, dtype=DTYPE))
    for _ in range(2000):
        accept = torch.exp(-torch.exp(state.log_step))
        state = dual_averaging_update(state, accept, 0.8)
    assert abs(math.exp(float(state.log_step_avg)) - (-math.log(0.8))) < 0.01


def test_diag_metric_learns_scales_and_step_hits_target() -> None:
    scales = torch.tensor([0.05, 1.0, 20.0], dtype=DTYPE)
    mean = torch.tensor([1.0, 0.0, -5.0], dtype=DTYPE)
    logp, _ = gaussian(mean, torch.diag(scales**2))
    s = sample(HMC(), logp, torch.zeros(8, 3, dtype=DTYPE), num_draws=200, num_warmup=400,
               params=HMCParams(0.1, 5), adaptation=WindowAdaptation(), seed=seed_for(0))
    imm = s.attrs["params"].inverse_mass_matrix
    ratio = imm / scales**2
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio
    assert 0.65 < float(s.stats["accept_prob"].mean()) < 0.95
    mcse_z_test(s["x"], mean, ALPHA)


def test_dense_metric_learns_covariance() -> None:
    cov = correlated_cov(3, 0.9, torch.tensor([0.5, 1.0, 2.0], dtype=DTYPE))
    logp, _ = gaussian(torch.zeros(3, dtype=DTYPE), cov)
    s = sample(NUTS(), logp, torch.zeros(8, 3, dtype=DTYPE), num_draws=20, num_warmup=300,
               adaptation=WindowAdaptation(metric="dense"), seed=seed_for(1))
    imm = s.attrs["params"].inverse_mass_matrix
    rel = torch.linalg.solve(cov, imm)  # ~ identity
    eig = torch.linalg.eigvals(rel).real
    assert bool(((eig > 0.5) & (eig < 2.0)).all()), eig


def test_per_chain_step_size_has_chain_shape() -> None:
    logp, _ = gaussian(torch.zeros(2, dtype=DTYPE), torch.eye(2, dtype=DTYPE))
    s = sample(NUTS(), logp, torch.zeros(6, 2, dtype=DTYPE), num_draws=10, num_warmup=60,
               adaptation=WindowAdaptation(per_chain_step_size=True), seed=seed_for(2))
    step = s.attrs["params"].step_size
    assert step.shape == (6,) and bool((step > 0.1).all())
    shared = sample(NUTS(), logp, torch.zeros(6, 2, dtype=DTYPE), num_draws=10, num_warmup=60,
                    adaptation=WindowAdaptation(), seed=seed_for(2))
    assert shared.attrs["params"].step_size.shape == ()
    assert shared.attrs["target_accept"] == 0.8


def test_protocol_pieces_and_metric_none() -> None:
    ad = WindowAdaptation(metric="none", kernel=HMC())
    state = HMC().init(torch.zeros(4, 2, dtype=DTYPE), lambda x: -0.5 * (x**2).sum(-1))
    a = ad.init(None, state)
    p = ad.params(a)
    assert isinstance(p, HMCParams) and p.inverse_mass_matrix is None
    from samplers.hmc import HMCInfo

    info = HMCInfo(torch.full((4,), 0.2, dtype=DTYPE), torch.ones(4, dtype=torch.bool),
                   torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=DTYPE))
    a2 = ad.update(a, state, info, 0, 100)
    assert float(ad.params(a2).step_size) < float(torch.exp(a.dual.mu))
    assert ad.final(a2).inverse_mass_matrix is None
    # MALA params have the same fields
    m = WindowAdaptation().init(MALAParams(0.3), state)
    assert isinstance(WindowAdaptation().final(m), MALAParams)
    n = WindowAdaptation().init(None, state)
    assert isinstance(WindowAdaptation().params(n), NUTSParams)


def test_validation() -> None:
    with pytest.raises(ValidationError, match="target_accept"):
        WindowAdaptation(target_accept=1.5)
    with pytest.raises(ValidationError, match="metric"):
        WindowAdaptation(metric="full")
    state = HMC().init(torch.zeros(2, 1, dtype=DTYPE), lambda x: -(x**2).sum(-1))
    with pytest.raises(ValidationError, match="step_size"):
        WindowAdaptation().init(0.5, state)
