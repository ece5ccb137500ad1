"""NUTS: moments, one-step invariance, a broken variant, tree limits, divergences, errors.

False-failure rates: each statistical assertion states its family-wise ``alpha``.
"""

from __future__ import annotations

import pytest
import torch

from probforge.errors import NonFiniteError, ValidationError
from probforge.ops.random import make_generator
from samplers import nuts as nuts_module
from samplers.adaptation import WindowAdaptation
from samplers.nuts import NUTS, NUTSParams
from samplers.run import sample
from tests.samplers._mcmc_checks import (
    DTYPE,
    assert_invariant,
    beta_bernoulli,
    correlated_cov,
    exact_draws,
    gaussian,
    invariance_pvalues,
    mcse_z_test,
    single_thread,  # noqa: F401  (fixture)
)
from tests.stats import seed_for

ALPHA = 1e-3
pytestmark = pytest.mark.usefixtures("single_thread")
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)
COV = correlated_cov(3, 0.8, torch.tensor([1.0, 2.0, 0.5], dtype=DTYPE))


def test_moments_correlated_gaussian() -> None:
    logp, _ = gaussian(MEAN, COV)
    s = sample(NUTS(), logp, torch.zeros(8, 3, dtype=DTYPE), num_draws=300,
               params=NUTSParams(0.25, COV.diagonal()), seed=seed_for(1))
    mcse_z_test(s["x"], MEAN, ALPHA, COV.diagonal() + MEAN**2)
    idata = s.to_arviz()
    assert {"diverging", "tree_depth", "n_steps", "energy", "acceptance_rate"} <= set(
        idata.sample_stats.data_vars)


def test_moments_with_dense_adaptation() -> None:
    cov = correlated_cov(3, 0.9, torch.tensor([0.3, 1.0, 2.0], dtype=DTYPE))
    logp, _ = gaussian(MEAN, cov)
    s = sample(NUTS(), logp, torch.zeros(8, 3, dtype=DTYPE), num_draws=250, num_warmup=250,
               adaptation=WindowAdaptation(metric="dense"), seed=seed_for(2))
    mcse_z_test(s["x"], MEAN, ALPHA, cov.diagonal() + MEAN**2)
    imm = s.attrs["params"].inverse_mass_matrix
    assert imm.shape == (3, 3) and torch.allclose(imm, cov, rtol=0.5, atol=0.05)
    assert abs(float(s.stats["accept_prob"].mean()) - 0.8) < 0.1


def test_moments_beta_bernoulli_through_space() -> None:
    logp, space, mean, second = beta_bernoulli()
    x0 = space.initial_position(8, make_generator(seed_for(3)), dtype=DTYPE)
    s = sample(NUTS(), logp, x0, num_draws=300, num_warmup=150, adaptation=WindowAdaptation(),
               space=space, seed=seed_for(3))
    mcse_z_test(s["theta"][..., None], torch.tensor([mean], dtype=DTYPE), ALPHA,
                torch.tensor([second], dtype=DTYPE))


@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_one_step_invariance(metric: str) -> None:
    logp, chol = gaussian(MEAN, COV)
    g = make_generator(seed_for(11))
    x0 = exact_draws(MEAN, chol, 10000, g)
    imm, eps = {"diag": (COV.diagonal(), 0.4), "dense": (COV, 0.6)}[metric]
    kernel = NUTS()
    state, info = kernel.step(kernel.init(x0, logp), logp, NUTSParams(eps, imm), g)
    assert float(info.is_accepted.double().mean()) > 0.9
    assert_invariant(state.position, MEAN, chol, ALPHA)


def test_far_end_nuts_fails_invariance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test bites: with every uniform draw ~0, NUTS always extends forward and always takes
    the newest subtree's proposal, i.e. returns the trajectory's last point (not reversible)."""
    logp, chol = gaussian(MEAN, COV)
    real_uniform = nuts_module.uniform
    monkeypatch.setattr(nuts_module, "uniform", lambda *a, **k: real_uniform(*a, **k) * 1e-300)
    g = make_generator(seed_for(11))
    x0 = exact_draws(MEAN, chol, 10000, g)
    kernel = NUTS()
    state, _ = kernel.step(kernel.init(x0, logp), logp, NUTSParams(0.6, COV), g)
    ps = invariance_pvalues(state.position, MEAN, chol)
    assert min(ps) < ALPHA / len(ps)


def test_tree_depth_limit_and_step_counts() -> None:
    logp, _ = gaussian(MEAN, COV)
    kernel = NUTS()
    state = kernel.init(MEAN.expand(4, 3).clone(), logp)
    _, info = kernel.step(state, logp, NUTSParams(1e-4, None, 4), make_generator(seed_for(0)))
    assert info.tree_depth.tolist() == [4] * 4 and info.num_steps.tolist() == [15] * 4
    s = sample(NUTS(), logp, torch.zeros(6, 3, dtype=DTYPE), num_draws=30,
               params=NUTSParams(0.3, COV.diagonal(), 6), seed=seed_for(0))
    steps, depth = s.stats["num_steps"], s.stats["tree_depth"]
    # depth counts the valid doublings; a last, invalid subtree adds at most 2**depth steps
    assert bool((depth <= 6).all()) and bool((steps <= 2 ** (depth + 1) - 1).all())
    assert bool((steps >= 2**depth - 1).all())


def test_divergence_ends_trajectory_and_is_reported() -> None:
    logp, _ = gaussian(torch.zeros(2, dtype=DTYPE), torch.eye(2, dtype=DTYPE) * 1e-4)
    kernel = NUTS()
    state = kernel.init(torch.full((5, 2), 0.01, dtype=DTYPE), logp)
    new, info = kernel.step(state, logp, NUTSParams(1.0), make_generator(seed_for(0)))
    assert bool(info.is_divergent.all())
    assert info.num_steps.tolist() == [1] * 5 and info.tree_depth.tolist() == [0] * 5
    assert torch.equal(new.position, state.position)


def test_reproducible_and_global_rng_untouched() -> None:
    logp, _ = gaussian(MEAN, COV)
    x0 = torch.zeros(4, 3, dtype=DTYPE)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    runs = [sample(NUTS(), logp, x0, num_draws=15, params=NUTSParams(0.3), seed=seed_for(s))
            for s in (7, 7, 8)]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(runs[0]["x"], runs[1]["x"]) and not torch.equal(runs[0]["x"], runs[2]["x"])
    assert torch.equal(runs[0].stats["num_steps"], runs[1].stats["num_steps"])


def test_float32_and_event_shapes_follow_inputs() -> None:
    logp = lambda x: -0.5 * (x**2).sum((-2, -1))  # noqa: E731
    x0 = torch.zeros(3, 2, 2, dtype=torch.float32)
    kernel = NUTS()
    state, info = kernel.step(kernel.init(x0, logp), logp, NUTSParams(0.5, torch.ones(4)),
                              make_generator(seed_for(0)))
    assert state.position.shape == (3, 2, 2) and state.position.dtype == torch.float32
    assert info.energy.dtype == torch.float32 and state.grad.shape == (3, 2, 2)


def test_errors() -> None:
    logp = lambda x: torch.where(x[:, 0] > 0, -0.5 * (x**2).sum(-1), torch.nan)  # noqa: E731
    x0 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=DTYPE)
    with pytest.raises(NonFiniteError, match=r"chain\(s\) \[1\]"):
        NUTS().init(x0, logp)
    state = NUTS().init(x0[:1], logp)
    with pytest.raises(ValidationError, match="max_tree_depth"):
        NUTS().step(state, logp, NUTSParams(0.1, None, 0), None)
    with pytest.raises(ValidationError, match="chains, \\*event"):
        NUTS().init(torch.zeros(3), logp)


@pytest.mark.cuda
def test_gradient_kernels_run_on_cuda_and_match_cpu_leapfrog() -> None:
    """Every kernel keeps its state on the GPU with a CUDA generator; the integrator agrees
    with the CPU one to float64 rounding."""
    from samplers._kernel_utils import Metric, leapfrog
    from samplers.hmc import HMC, HMCParams
    from samplers.mala import MALA, MALAParams
    from samplers.slice import SliceParams, SliceSampler
    from samplers.tempering import ParallelTempering, TemperingParams

    dev = torch.device("cuda")
    mean, cov = MEAN.to(dev), COV.to(dev)
    logp, _ = gaussian(mean, cov)
    g = make_generator(seed_for(0), dev)
    x0 = torch.zeros(64, 3, dtype=DTYPE, device=dev)
    for kernel, params in [(NUTS(), NUTSParams(0.4, cov)), (HMC(), HMCParams(0.3, 5, cov)),
                           (MALA(), MALAParams(0.5, cov.diagonal())),
                           (SliceSampler(), SliceParams(1.0)),
                           (ParallelTempering(MALA(), [1.0, 0.5]),
                            TemperingParams(MALAParams(0.5)))]:
        state = kernel.init(x0, logp)
        for _ in range(3):
            state, info = kernel.step(state, logp, params, g)
        assert state.position.device.type == "cuda" and info.accept_prob.device.type == "cuda"
    z = torch.randn(8, 3, dtype=DTYPE)
    p = torch.randn(8, 3, dtype=DTYPE)
    eps = torch.full((8, 1), 0.2, dtype=DTYPE)
    logp_cpu, _ = gaussian(MEAN, COV)
    from samplers.base import log_density_and_grad

    g_cpu = log_density_and_grad(logp_cpu, z)[1]
    g_dev = log_density_and_grad(logp, z.to(dev))[1]
    cpu = leapfrog(logp_cpu, z, p, g_cpu, eps, Metric(COV, 3, z), 5)
    gpu = leapfrog(logp, z.to(dev), p.to(dev), g_dev, eps.to(dev), Metric(cov, 3, z.to(dev)), 5)
    for a, b in zip(cpu, gpu, strict=True):
        assert torch.allclose(a, b.cpu(), atol=1e-10)
