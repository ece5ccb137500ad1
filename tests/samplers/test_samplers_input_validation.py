"""Issue 21 in the samplers package: every public entry point checks its input.

One test per example of the issue (each failed on the code before the checks were added), then
regressions for the other checks: a named error from :mod:`probforge.errors`, or a documented
answer, never a raw exception, a NaN or a silent change of meaning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from probforge.errors import (
    DtypeMismatchError,
    MemoryBudgetExceeded,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
)
from probforge.ops.random import make_generator
from samplers.adaptation import WindowAdaptation
from samplers.adaptation_protocol import ScaleAdaptation
from samplers.ais import DiagonalNormal, ais
from samplers.diagnostics import check, ess, mcse, rhat
from samplers.gibbs import Gibbs
from samplers.hmc import HMC, HMCParams
from samplers.importance import importance_sample
from samplers.mala import MALA, MALAParams
from samplers.markov_chain import (
    empirical_transition_matrix,
    gibbs_transition_matrix,
    metropolis_hastings_matrix,
    stationary_distribution,
)
from samplers.metropolis import (
    IndependenceMetropolis,
    MetropolisHastings,
    RandomWalkMetropolis,
    RandomWalkParams,
)
from samplers.monte_carlo import estimate_pi, monte_carlo_expectation
from samplers.nuts import NUTS, NUTSParams
from samplers.proposals import Gaussian
from samplers.rejection import estimate_log_envelope, rejection_sample
from samplers.run import sample
from samplers.samples import Samples, concat
from samplers.slice import SliceParams, SliceSampler, SliceWidthAdaptation
from samplers.space import Interval, ParameterSpace, Positive, Real
from samplers.tempering import ParallelTempering
from tests.samplers._mcmc_checks import single_thread  # noqa: F401  (fixture)

# tiny tensors: one intra-op thread avoids oversubscribing the shared cores
pytestmark = pytest.mark.usefixtures("single_thread")

DTYPE = torch.float64
NAN = float("nan")


def std_normal(x: Tensor) -> Tensor:
    return -0.5 * (x**2).sum(-1)


def nan_density(x: Tensor) -> Tensor:
    """NaN everywhere, but differentiable (so gradient kernels reach the value check)."""
    return x.sum(-1) * NAN


def keepdim_density(x: Tensor) -> Tensor:
    return -0.5 * (x**2).sum(-1, keepdim=True)


def _copy(x: Tensor, g: torch.Generator | None) -> Tensor:
    return x[:, :1].clone()


def _walk(x: Tensor, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
    return x + 0.1, torch.zeros(x.shape[0], dtype=x.dtype)


#: (kernel factory, params) for every kernel of the package, small and fast.
KERNELS: dict[str, tuple[Callable[[], Any], Any]] = {
    "rwmh": (RandomWalkMetropolis, None),
    "independence": (lambda: IndependenceMetropolis(Gaussian(torch.zeros(2, dtype=DTYPE))), None),
    "mh": (lambda: MetropolisHastings(_walk), None),
    "gibbs": (lambda: Gibbs([([0], _copy), ([1], _copy)]), None),
    "hmc": (HMC, HMCParams(0.3, 3)),
    "nuts": (NUTS, NUTSParams(0.3, None, 3)),
    "mala": (MALA, MALAParams(0.3)),
    "slice": (SliceSampler, SliceParams(1.0, 3, 20)),
    "tempering": (lambda: ParallelTempering(RandomWalkMetropolis(), [1.0, 0.5]), None),
}


def _run(name: str, logp: Any, x0: Tensor, **kw: Any) -> Samples:
    factory, params = KERNELS[name]
    return sample(factory(), logp, x0, num_draws=kw.pop("num_draws", 3), params=params,
                  seed=0, **kw)


# -- the examples --------------------------------------------------------------------
@pytest.mark.parametrize("name", list(KERNELS))
def test_nan_log_density_at_the_start_raises_for_every_kernel(name: str) -> None:
    # random-walk MH used to return chains frozen at the start; now every kernel does as NUTS
    with pytest.raises(NonFiniteError, match="NaN"):
        _run(name, nan_density, torch.zeros(3, 2, dtype=DTYPE))


@pytest.mark.parametrize("name", ["rwmh", "independence", "mh", "hmc", "nuts", "mala", "slice",
                                  "tempering"])
def test_nan_proposals_are_rejected_never_entered(name: str) -> None:
    """The run-time policy of HMC / NUTS everywhere: NaN is outside the support, no NaN stat."""

    def half_nan(x: Tensor) -> Tensor:
        lp = -0.5 * (x**2).sum(-1)
        return torch.where(x[:, 0] > 0.5, torch.full_like(lp, NAN), lp)

    s = _run(name, half_nan, torch.zeros(4, 2, dtype=DTYPE), num_draws=20)
    assert bool((s["x"][..., 0] <= 0.5).all())
    for key, value in s.stats.items():
        if value.is_floating_point():
            assert not bool(torch.isnan(value).any()), key
    if "proposal_log_density" in s.stats:  # the NaN proposals are reported as -inf
        assert bool(torch.isneginf(s.stats["proposal_log_density"]).any())


@pytest.mark.parametrize("name", list(KERNELS))
def test_zero_chains_raise_a_named_error(name: str) -> None:
    with pytest.raises(ShapeError, match="at least one chain"):
        _run(name, std_normal, torch.zeros(0, 2, dtype=DTYPE))


@pytest.mark.parametrize("name", list(KERNELS))
def test_log_density_of_shape_chains_by_one_is_refused_by_every_kernel(name: str) -> None:
    with pytest.raises(ShapeError, match=r"\(chains,\)|\(6,\)"):
        _run(name, keepdim_density, torch.zeros(3, 2, dtype=DTYPE))


def test_log_density_of_wrong_shape_is_refused_by_the_iid_methods() -> None:
    q = Gaussian(torch.zeros(2, dtype=DTYPE))
    scalar = lambda x: -0.5 * (x**2).sum()  # noqa: E731  (broadcast silently before)
    for bad in (keepdim_density, scalar):
        with pytest.raises(ShapeError):
            importance_sample(bad, q, 10, diagnose=False)
        with pytest.raises(ShapeError):
            rejection_sample(bad, q, 1.0, 5, generator=make_generator(0))
        with pytest.raises(ShapeError):
            estimate_log_envelope(bad, q, 10)
        with pytest.raises(ShapeError):
            ais(bad, DiagonalNormal(torch.zeros(2, dtype=DTYPE), 1.0), HMC(), HMCParams(0.3, 2),
                num_particles=4, num_temperatures=2)


@pytest.mark.parametrize("name", ["rwmh", "hmc", "nuts", "mala", "slice", "tempering"])
def test_integer_starting_position_is_refused(name: str) -> None:
    with pytest.raises(DtypeMismatchError, match="floating point"):
        _run(name, lambda x: -0.5 * (x.double() ** 2).sum(-1), torch.zeros(3, 2, dtype=torch.long))


def test_integer_states_stay_valid_for_the_discrete_kernels() -> None:
    """MetropolisHastings, IndependenceMetropolis and Gibbs sample discrete states (documented)."""
    pi = torch.tensor([0.2, 0.3, 0.5], dtype=DTYPE)

    def propose(x: Tensor, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return (x + 1) % 3, torch.zeros(x.shape[0], dtype=DTYPE)

    s = sample(MetropolisHastings(propose), lambda x: torch.log(pi)[x[:, 0]],
               torch.zeros(2, 1, dtype=torch.long), num_draws=4, seed=0)
    assert s["x"].dtype == torch.long and bool(((s["x"] >= 0) & (s["x"] < 3)).all())


@pytest.mark.parametrize(("kernel", "adaptation", "right"), [
    (RandomWalkMetropolis(), WindowAdaptation(), "ScaleAdaptation"),
    (NUTS(), ScaleAdaptation(), "WindowAdaptation"),
    (MALA(), SliceWidthAdaptation(), "WindowAdaptation"),
    (SliceSampler(), WindowAdaptation(), "SliceWidthAdaptation"),
    (IndependenceMetropolis(Gaussian(torch.zeros(2, dtype=DTYPE))), ScaleAdaptation(),
     "no adaptation"),
    (ParallelTempering(RandomWalkMetropolis(), [1.0, 0.5]), WindowAdaptation(),
     "ScaleAdaptation"),
])
def test_mismatched_kernel_and_adaptation_are_refused(kernel: Any, adaptation: Any,
                                                      right: str) -> None:
    # WindowAdaptation with random-walk MH used to give "TypeError: must be real number"
    with pytest.raises(ValidationError) as err:
        sample(kernel, std_normal, torch.zeros(2, 2, dtype=DTYPE), num_draws=2, num_warmup=2,
               adaptation=adaptation, seed=0)
    text = str(err.value)
    assert type(adaptation).__name__ in text and type(getattr(kernel, "inner", kernel)).__name__ \
        in text and right in text


def test_window_adaptation_refuses_a_random_walk_state_directly() -> None:
    state = RandomWalkMetropolis().init(torch.zeros(2, 2, dtype=DTYPE), std_normal)
    with pytest.raises(ValidationError, match="ScaleAdaptation"):
        WindowAdaptation().init(None, state)


# -- sample() and the kernels' params ---------------------------------------------------------
@pytest.mark.parametrize("value", [True, 2.0, "3", -1, None])
def test_counts_must_be_ints(value: Any) -> None:
    with pytest.raises(ValidationError, match="num_draws"):
        sample(RandomWalkMetropolis(), std_normal, torch.zeros(2, 2), num_draws=value)


def test_generator_seed_progress_and_log_density_types() -> None:
    x0 = torch.zeros(2, 2, dtype=DTYPE)
    with pytest.raises(ValidationError, match="generator"):
        sample(HMC(), std_normal, x0, num_draws=2, generator=3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="seed"):
        sample(HMC(), std_normal, x0, num_draws=2, seed=-1)
    with pytest.raises(ValidationError, match="progress"):
        sample(HMC(), std_normal, x0, num_draws=2, progress="yes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="only Gibbs"):
        sample(HMC(), None, x0, num_draws=2)
    with pytest.raises(ValidationError, match="differentiable"):
        HMC().init(x0, lambda x: std_normal(x).detach())
    with pytest.raises(NonFiniteError, match="initial position"):
        sample(RandomWalkMetropolis(), std_normal, torch.full((2, 2), NAN), num_draws=2)


@pytest.mark.parametrize("step", [NAN, -0.1, 0.0, math.inf, torch.tensor(NAN, dtype=DTYPE),
                                  torch.tensor([0.1, -0.1], dtype=DTYPE),
                                  torch.tensor(1, dtype=torch.long)])
def test_bad_step_sizes_are_refused(step: Any) -> None:
    # a NaN or negative tensor step size used to leave the chains frozen without a word
    state = HMC().init(torch.zeros(2, 2, dtype=DTYPE), std_normal)
    with pytest.raises(ValidationError, match="step_size"):
        HMC().step(state, std_normal, HMCParams(step, 2), make_generator(0))


@pytest.mark.parametrize("imm", [torch.tensor([-1.0, 1.0], dtype=DTYPE),
                                 torch.tensor([NAN, 1.0], dtype=DTYPE),
                                 torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=DTYPE),
                                 torch.tensor([1, 1])])
def test_bad_inverse_mass_matrices_are_refused(imm: Tensor) -> None:
    state = MALA().init(torch.zeros(2, 2, dtype=DTYPE), std_normal)
    with pytest.raises(ValidationError, match="inverse_mass_matrix"):
        MALA().step(state, std_normal, MALAParams(0.1, imm), make_generator(0))


def test_random_walk_params_are_checked() -> None:
    k = RandomWalkMetropolis()
    state = k.init(torch.zeros(2, 2, dtype=DTYPE), std_normal)
    for bad in (NAN, -1.0, torch.tensor(0.0, dtype=DTYPE), NUTSParams(0.1)):
        with pytest.raises(ValidationError):
            k.step(state, std_normal, bad, make_generator(0))
    with pytest.raises(NonFiniteError, match="cholesky"):
        k.step(state, std_normal, RandomWalkParams(torch.tensor(1.0, dtype=DTYPE),
                                                   torch.full((2, 2), NAN, dtype=DTYPE)), None)


def test_gibbs_checks_blocks_and_draws() -> None:
    with pytest.raises(ValidationError, match="indices"):
        Gibbs([([0.5], _copy)])
    with pytest.raises(ValidationError, match="twice"):
        Gibbs([([0, 0], lambda x, g: x[:, :2])]).init(torch.zeros(2, 2), None)
    trunc = Gibbs([([0], lambda x, g: x[:, :1] + 0.7)])
    with pytest.raises(DtypeMismatchError, match="truncate"):
        sample(trunc, None, torch.zeros(2, 1, dtype=torch.long), num_draws=2, seed=0)
    nan = Gibbs([([0], lambda x, g: x[:, :1] * NAN)])
    with pytest.raises(NonFiniteError, match="chain 0, draw 0"):  # checked once, after the run
        sample(nan, None, torch.zeros(2, 1, dtype=DTYPE), num_draws=2, seed=0)


def test_tempering_and_ais_refuse_nan_schedules() -> None:
    with pytest.raises(NonFiniteError):
        ParallelTempering(RandomWalkMetropolis(), [1.0, NAN])
    with pytest.raises(NonFiniteError):
        ais(std_normal, DiagonalNormal(torch.zeros(1, dtype=DTYPE), 1.0), HMC(),
            HMCParams(0.3, 2), num_particles=4, betas=[NAN, 1.0])
    with pytest.raises(NonFiniteError):
        DiagonalNormal(torch.zeros(1, dtype=DTYPE), NAN)


def test_ais_of_a_normalised_target_is_exact() -> None:
    """The documented answer: log_target = log base gives weights 1, log Z = 0, se = 0; one
    particle has an undefined standard error, returned as inf."""
    base = DiagonalNormal(torch.zeros(2, dtype=DTYPE), 1.5)
    res = ais(base.log_prob, base, HMC(), HMCParams(0.3, 2), num_particles=5,
              num_temperatures=3, generator=make_generator(0))
    assert res.log_z == pytest.approx(0.0, abs=1e-12) and res.log_z_se == pytest.approx(0.0)
    one = ais(base.log_prob, base, HMC(), HMCParams(0.3, 2), num_particles=1,
              num_temperatures=2, generator=make_generator(0))
    assert one.log_z_se == math.inf and one.ess == 1.0


# -- i.i.d. methods ---------------------------------------------------------------------------
def test_iid_methods_refuse_nan_and_bad_sizes() -> None:
    q = Gaussian(torch.zeros(1, dtype=DTYPE))
    with pytest.raises(NonFiniteError, match="NaN"):  # was silently treated as a rejection
        rejection_sample(nan_density, q, 1.0, 3, generator=make_generator(0))
    with pytest.raises(ValidationError, match="batch_size"):
        rejection_sample(std_normal, q, 1.0, 3, batch_size=0)
    with pytest.raises(ValidationError, match="batch_size"):  # was an endless loop
        monte_carlo_expectation(lambda x: x, lambda n, g: torch.randn(n), 4, batch_size=0)
    with pytest.raises(NonFiniteError):
        monte_carlo_expectation(lambda x: x * NAN, lambda n, g: torch.randn(n), 4)
    with pytest.raises(NonFiniteError):
        estimate_pi(10, radius=NAN)
    r = importance_sample(std_normal, q, 10, diagnose=False, generator=make_generator(0))
    with pytest.raises(NonFiniteError, match="f"):
        r.expectation(lambda x: x[:, 0] * NAN)
    with pytest.raises(ValidationError, match="lower triangular"):
        Gaussian(torch.zeros(2, dtype=DTYPE), scale_tril=torch.ones(2, 2, dtype=DTYPE))
    with pytest.raises(NonFiniteError):
        Gaussian(torch.zeros(2, dtype=DTYPE), NAN)


# -- diagnostics and Samples ------------------------------------------------------------------
def test_diagnostics_on_too_few_chains_or_draws_raise_instead_of_nan() -> None:
    one_chain = Samples({"x": torch.randn(1, 50, generator=make_generator(0))})
    with pytest.raises(ValidationError, match="one chain it is undefined"):
        rhat(one_chain)
    assert float(ess(one_chain)["x"]) > 0  # ESS of one chain is defined
    short = Samples({"x": torch.randn(4, 2, generator=make_generator(1))})
    for fn in (rhat, ess, mcse):
        with pytest.raises(ValidationError, match="4 draws"):
            fn(short)
    assert any("draw" in w for w in check(short, print_warnings=False))


def test_rhat_of_constant_chains_is_a_named_error_and_check_flags_frozen_chains() -> None:
    frozen = Samples({"x": torch.zeros(4, 50), "y": torch.randn(4, 50)},
                     {"is_accepted": torch.zeros(4, 50, dtype=torch.bool)})
    with pytest.raises(NonFiniteError, match="constant"):
        rhat(frozen)
    assert set(rhat(frozen, var_names="y")) == {"y"}  # a string is one name
    with pytest.raises(UnknownVariableError):
        rhat(frozen, var_names=["z"])
    assert any("accepted" in w for w in check(frozen, print_warnings=False))


def test_mcse_sd_matches_arviz_formula() -> None:
    # arviz 0.23's own mcse(method="sd") fails under NumPy 2 (TypeError)
    x = torch.randn(3, 200, 2, generator=make_generator(2), dtype=DTYPE)
    got = mcse(Samples({"x": x}), "sd")["x"]
    c2 = (x - x.mean((0, 1))) ** 2
    ess_c2 = ess(Samples({"c": c2}), "mean")["c"]
    evar = c2.mean((0, 1)).numpy()
    varvar = ((c2**2).mean((0, 1)).numpy() - evar**2) / ess_c2
    assert torch.allclose(torch.as_tensor(got), torch.as_tensor((varvar / evar / 4) ** 0.5))


def test_samples_container_checks() -> None:
    with pytest.raises(NonFiniteError):
        Samples({"x": torch.full((2, 3), NAN)})
    with pytest.raises(ShapeError, match="one chain and one draw"):
        Samples({"x": torch.zeros(0, 3)})
    s = Samples({"x": torch.zeros(2, 3)})
    with pytest.raises(ShapeError, match="out of range"):
        s[5]
    with pytest.raises(ValidationError):
        s[True]  # a bool is not an index
    with pytest.raises(ValidationError, match="list of Samples"):
        concat(s)  # type: ignore[arg-type]  # used to select chain 0 silently
    with pytest.raises(ShapeError):
        concat([s, Samples({"x": torch.zeros(2, 3, 2)})])
    with pytest.raises(ShapeError, match="one name per event"):
        Samples({"x": torch.zeros(2, 3, 2)}).to_arviz(dims={"x": ["a", "b"]})


# -- Markov chains and parameter spaces -------------------------------------------------------
def test_markov_chain_functions_refuse_nan_and_wrong_states() -> None:
    P = torch.tensor([[0.5, 0.5], [NAN, 1.0]], dtype=DTYPE)
    with pytest.raises(NonFiniteError):  # used to pass the row-sum check and return NaN
        stationary_distribution(P)
    Q = torch.full((3, 3), 1 / 3, dtype=DTYPE)
    with pytest.raises(ShapeError):
        metropolis_hastings_matrix(Q, torch.zeros(3, 1, dtype=DTYPE))
    with pytest.raises(ValidationError, match="outside"):  # used to count into the next row
        empirical_transition_matrix(lambda s, g: s + 1, 3, 5)
    with pytest.raises(MemoryBudgetExceeded):
        gibbs_transition_matrix(torch.zeros(2**14, dtype=DTYPE), [[0]])


def test_parameter_space_checks() -> None:
    with pytest.raises(ValidationError):
        Interval(0.0, math.inf)
    with pytest.raises(ValidationError):
        Real(shape=(2.5,))  # type: ignore[arg-type]  # was truncated to 2
    space = ParameterSpace({"a": Positive(), "b": Real(2)})
    with pytest.raises(ValidationError, match="support"):  # its inverse used to be NaN
        space.flatten({"a": torch.tensor([-1.0]), "b": torch.zeros(1, 2)})
    with pytest.raises(ValidationError, match="unknown"):
        space.flatten({"a": torch.ones(1), "b": torch.zeros(1, 2), "c": torch.zeros(1)})
    with pytest.raises(ValidationError, match="chains"):
        space.initial_position(0)
