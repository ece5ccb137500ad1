"""Slice sampling: moments, one-step invariance (both methods), a broken shrinkage, the bounded
loops, reproducibility and errors.

False-failure rates: each statistical assertion states its family-wise ``alpha``.
"""

from __future__ import annotations

import pytest
import torch

from probforge.errors import NonFiniteError, SamplingError, ShapeError, ValidationError
from probforge.ops.random import make_generator
from samplers.run import sample
from samplers.slice import SliceParams, SliceSampler
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
WIDTH = torch.tensor([1.0, 2.0, 0.5], dtype=DTYPE)


@pytest.mark.parametrize("method", ["coordinate", "hit_and_run"])
def test_moments_correlated_gaussian(method: str) -> None:
    logp, _ = gaussian(MEAN, COV)
    s = sample(SliceSampler(method), logp, torch.zeros(16, 3, dtype=DTYPE), num_draws=300,
               num_warmup=50, params=SliceParams(WIDTH), seed=seed_for(1))
    mcse_z_test(s["x"], MEAN, ALPHA, COV.diagonal() + MEAN**2)
    assert bool(s.stats["accept_prob"].eq(1).all())
    assert not bool(s.stats["max_exceeded"].any())


def test_moments_beta_bernoulli_through_space() -> None:
    logp, space, mean, second = beta_bernoulli()
    x0 = space.initial_position(16, make_generator(seed_for(3)), dtype=DTYPE)
    s = sample(SliceSampler(), logp, x0, num_draws=300, num_warmup=50, space=space,
               seed=seed_for(3))
    mcse_z_test(s["theta"][..., None], torch.tensor([mean], dtype=DTYPE), ALPHA,
                torch.tensor([second], dtype=DTYPE))


@pytest.mark.parametrize("method", ["coordinate", "hit_and_run"])
def test_one_step_invariance(method: str) -> None:
    logp, chol = gaussian(MEAN, COV)
    g = make_generator(seed_for(13))
    x0 = exact_draws(MEAN, chol, 20000, g)
    kernel = SliceSampler(method)
    # a small m makes the stepping-out bound bind often: invariance must still hold
    state, info = kernel.step(kernel.init(x0, logp),
                              logp, SliceParams(WIDTH * 0.7, max_steps_out=3), g)
    assert bool(info.is_accepted.all())
    assert_invariant(state.position, MEAN, chol, ALPHA)


class RaisedLevelSlice(SliceSampler):
    """Deliberately broken: the slice level is drawn under ``e * p(x)`` instead of ``p(x)``
    (``log y = log p(x) + 1 - Exp(1)``), which favours moves to higher density."""

    def _slice_1d(self, f, lp0, width, params, generator):  # type: ignore[no-untyped-def]
        t, lp, n, ex = super()._slice_1d(f, lp0 + 1.0, width, params, generator)
        return t, lp - torch.where(t == 0, 1.0, 0.0), n, ex


def test_broken_slice_fails_invariance() -> None:
    logp, chol = gaussian(MEAN, COV)
    g = make_generator(seed_for(13))
    x0 = exact_draws(MEAN, chol, 20000, g)
    kernel = RaisedLevelSlice()
    state, _ = kernel.step(kernel.init(x0, logp), logp, SliceParams(WIDTH * 0.7, 3), g)
    ps = invariance_pvalues(state.position, MEAN, chol)
    assert min(ps) < ALPHA / len(ps)


def test_bounded_shrinkage_flags_or_raises() -> None:
    # NaN off a thin line: shrinkage cannot find a point in the slice
    logp = lambda x: torch.where(x[:, 0].abs() < 1e-300, -0.5 * (x**2).sum(-1), torch.nan)  # noqa: E731
    x0 = torch.zeros(3, 2, dtype=DTYPE)
    kernel = SliceSampler()
    state = kernel.init(x0, logp)
    params = SliceParams(1.0, max_steps_out=2, max_shrink=5)
    new, info = kernel.step(state, logp, params, make_generator(seed_for(0)))
    assert bool(info.max_exceeded.all()) and torch.equal(new.position[:, 0], x0[:, 0])
    with pytest.raises(SamplingError, match="max_shrink = 5"):
        SliceSampler(strict=True).step(state, logp, params, make_generator(seed_for(0)))


def test_evaluation_counts_and_event_shape() -> None:
    logp = lambda x: -0.5 * (x**2).sum((-2, -1))  # noqa: E731
    kernel = SliceSampler()
    state = kernel.init(torch.zeros(5, 2, 2, dtype=torch.float32), logp)
    new, info = kernel.step(state, logp, SliceParams(torch.ones(2, 2)), make_generator(seed_for(1)))
    assert new.position.shape == (5, 2, 2) and new.position.dtype == torch.float32
    assert bool((info.num_evaluations >= 4).all())  # at least one shrinkage draw per coordinate


def test_reproducible_and_global_rng_untouched() -> None:
    logp, _ = gaussian(MEAN, COV)
    x0 = torch.zeros(4, 3, dtype=DTYPE)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = sample(SliceSampler("hit_and_run"), logp, x0, num_draws=10, seed=seed_for(4))
    b = sample(SliceSampler("hit_and_run"), logp, x0, num_draws=10, seed=seed_for(4))
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(a["x"], b["x"])


def test_errors() -> None:
    logp = lambda x: torch.where(x[:, 0] > 0, -0.5 * (x**2).sum(-1), -torch.inf)  # noqa: E731
    with pytest.raises(NonFiniteError, match=r"\[1\]"):
        SliceSampler().init(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=DTYPE), logp)
    with pytest.raises(ValidationError, match="method"):
        SliceSampler("doubling")
    state = SliceSampler().init(torch.ones(2, 2, dtype=DTYPE), logp)
    with pytest.raises(ShapeError, match="width"):
        SliceSampler().step(state, logp, SliceParams(torch.ones(3)), None)
    with pytest.raises(ValidationError, match="max_steps_out"):
        SliceSampler().step(state, logp, SliceParams(1.0, 0), None)


@pytest.mark.parametrize("method", ["coordinate", "hit_and_run"])
def test_width_adaptation_learns_scales_and_keeps_moments(method: str) -> None:
    from samplers.slice import SliceWidthAdaptation

    scales = torch.tensor([10.0, 0.1], dtype=DTYPE)

    def logp(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x / scales) ** 2).sum(-1)

    kernel, adapt = SliceSampler(method), SliceWidthAdaptation()
    g = make_generator(seed_for(11))
    state = kernel.init(torch.zeros(16, 2, dtype=DTYPE), logp)
    a = adapt.init(SliceParams(width=1.0), state)
    for t in range(300):
        state, info = kernel.step(state, logp, adapt.params(a), g)
        a = adapt.update(a, state, info, t, 300)
    width = adapt.final(a).width
    # widths follow the scales (a factor 100 apart), within a factor 3 of 2 * E|move| ~ scale
    ratio = float(width[0] / width[1])
    assert 30 < ratio < 300, width
    assert bool((width / scales > 0.3).all() and (width / scales < 5).all()), width
    # from the same (stationary) state: the slowest coordinate's squared jump distance (in units
    # of its scale) per log-density evaluation, well above that of the starting width 1
    def efficiency(params: SliceParams) -> float:
        st, jump, evals = state, torch.zeros(2, dtype=DTYPE), 0.0
        for _ in range(30):
            new, inf = kernel.step(st, logp, params, g)
            jump += (((new.position - st.position) / scales) ** 2).mean(0)
            evals += float(inf.num_evaluations.double().mean())
            st = new
        return float(jump.min()) / evals

    assert efficiency(adapt.final(a)) > 3 * efficiency(SliceParams(width=1.0))
    s = sample(kernel, logp, state.position, num_draws=300, num_warmup=0,
               params=adapt.final(a), seed=seed_for(12))
    mcse_z_test(s["x"], torch.zeros(2, dtype=DTYPE), ALPHA, scales**2)


def test_width_adaptation_errors() -> None:
    from samplers.slice import SliceWidthAdaptation

    with pytest.raises(ValidationError):
        SliceWidthAdaptation(factor=0.0)
    state = SliceSampler().init(torch.zeros(4, 2, dtype=DTYPE), lambda x: -(x**2).sum(-1))
    with pytest.raises(ValidationError, match="positive"):
        SliceWidthAdaptation().init(SliceParams(width=-1.0), state)
    with pytest.raises(ShapeError):
        SliceWidthAdaptation().init(SliceParams(width=torch.ones(3, dtype=DTYPE)), state)
