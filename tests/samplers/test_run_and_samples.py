"""The driver (warmup, thinning, stats, attrs, reproducibility) and the Samples container."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from probforge.errors import DeviceMismatchError, ShapeError, UnknownVariableError, ValidationError
from probforge.ops import make_generator
from samplers.gibbs import Gibbs
from samplers.metropolis import IndependenceMetropolis, RandomWalkMetropolis
from samplers.proposals import DistributionProposal
from samplers.run import sample
from samplers.samples import Samples, concat
from samplers.space import ParameterSpace, Positive, Real, Simplex


def std_normal(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x**2).sum(-1)


class CountingKernel:
    """Deterministic kernel: position counts steps, so thinning/warmup are visible exactly."""

    name = "counter"

    def init(self, position, log_density):  # type: ignore[no-untyped-def]
        from samplers.metropolis import MHState

        return MHState(position, log_density(position))

    def step(self, state, log_density, params, generator):  # type: ignore[no-untyped-def]
        from samplers.metropolis import MHInfo, MHState

        x = state.position + 1
        ones = torch.ones(x.shape[0], dtype=x.dtype)
        return MHState(x, log_density(x)), MHInfo(ones, ones.bool(), ones)


def test_warmup_and_thinning_keep_exactly_the_documented_steps() -> None:
    s = sample(CountingKernel(), std_normal, torch.zeros(3, 1), num_draws=4, num_warmup=5, thin=3)
    # warmup 5 steps discarded; then post-warmup step t = 1.. kept iff t % 3 == 0
    assert s["x"][0, :, 0].tolist() == [5 + 3, 5 + 6, 5 + 9, 5 + 12]
    assert s.num_chains == 3 and s.num_draws == 4
    assert s.attrs["num_warmup"] == 5 and s.attrs["thin"] == 3


def test_stats_attrs_and_device_dtype_follow_the_input() -> None:
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    s = sample(RandomWalkMetropolis(), std_normal, x0, num_draws=10, seed=3)
    assert s["x"].dtype == torch.float64 and s["x"].device == x0.device
    assert set(s.stats) >= {"log_density", "accept_prob", "is_accepted"}
    assert s.stats["accept_prob"].shape == (4, 10)
    assert s.stats["is_accepted"].dtype == torch.bool
    assert s.attrs["sampler"] == "rwmh" and s.attrs["seed"] == 3
    assert s.attrs["dtype"] == "float64" and s.attrs["device"] == "cpu"
    assert torch.allclose(s.stats["log_density"], std_normal(s["x"]))


def test_reproducible_and_global_rng_untouched() -> None:
    x0 = torch.zeros(6, 3)
    state = torch.get_rng_state()
    a = sample(RandomWalkMetropolis(), std_normal, x0, num_draws=50, num_warmup=10, seed=7)
    b = sample(RandomWalkMetropolis(), std_normal, x0, num_draws=50, num_warmup=10,
               generator=make_generator(7))
    c = sample(RandomWalkMetropolis(), std_normal, x0, num_draws=50, num_warmup=10, seed=8)
    q = DistributionProposal(torch.distributions.Independent(
        torch.distributions.StudentT(3.0, torch.zeros(3), torch.ones(3)), 1))
    d1 = sample(IndependenceMetropolis(q), std_normal, x0, num_draws=20, seed=1)
    d2 = sample(IndependenceMetropolis(q), std_normal, x0, num_draws=20, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], c["x"])
    assert torch.equal(d1["x"], d2["x"])
    for k in a.stats:
        assert torch.equal(a.stats[k], b.stats[k])


def test_space_names_the_constrained_draws() -> None:
    space = ParameterSpace({"mu": Real(), "tau": Positive(), "w": Simplex(3)})

    def logp(v: dict[str, torch.Tensor]) -> torch.Tensor:
        return -0.5 * v["mu"] ** 2 - v["tau"] + torch.log(v["w"]).sum(-1)

    g = make_generator(0)
    s = sample(RandomWalkMetropolis(), space.wrap(logp), space.initial_position(4, g),
               num_draws=20, generator=g, space=space)
    assert list(s.draws) == ["mu", "tau", "w"]
    assert s["w"].shape == (4, 20, 3) and torch.allclose(s["w"].sum(-1), torch.ones(4, 20))
    assert bool((s["tau"] > 0).all())


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    s = sample(RandomWalkMetropolis(), std_normal, torch.zeros(2, 2), num_draws=5, seed=0,
               progress=True)
    assert s.num_draws == 5
    assert "sampling" in capsys.readouterr().err


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(ValidationError, match="num_draws"):
        sample(RandomWalkMetropolis(), std_normal, torch.zeros(2, 2), num_draws=0)
    with pytest.raises(ValidationError, match="thin"):
        sample(RandomWalkMetropolis(), std_normal, torch.zeros(2, 2), num_draws=2, thin=0)
    with pytest.raises(ShapeError, match="log-density"):
        sample(RandomWalkMetropolis(), lambda x: x, torch.zeros(2, 2), num_draws=2)
    if torch.cuda.is_available():
        with pytest.raises(DeviceMismatchError):
            sample(RandomWalkMetropolis(), std_normal, torch.zeros(2, 2, device="cuda"),
                   num_draws=2, generator=make_generator(0))
    space = ParameterSpace({"a": Real(2)})
    with pytest.raises(ShapeError, match=r"\(chains, 2\)"):
        sample(RandomWalkMetropolis(), std_normal, torch.zeros(2, 3), num_draws=2, space=space)


def test_samples_selection_concat_and_errors() -> None:
    s = Samples({"a": torch.arange(24.0).reshape(4, 6), "b": torch.zeros(4, 6, 2)},
                {"accept_prob": torch.ones(4, 6)}, {"sampler": "t", "num_chains": 4})
    assert s[1:3].num_chains == 2 and s[:, ::2].num_draws == 3
    assert s[[0, 3], 5]["a"].tolist() == [[5.0], [23.0]]
    both = concat([s, s[:1]])
    assert torch.equal(s.concat(s[:1])["a"], both["a"])
    assert both.num_chains == 5 and both.attrs["num_chains"] == 5
    assert torch.equal(both["a"][4], s["a"][0])
    with pytest.raises(UnknownVariableError, match="'c'"):
        s["c"]
    with pytest.raises(ShapeError, match="chain, draw"):
        Samples({"a": torch.zeros(4, 6), "b": torch.zeros(3, 6)})
    with pytest.raises(ShapeError):
        concat([s, Samples({"a": torch.zeros(1, 6)})])
    assert s.flatten("b").shape == (24, 2)


def test_to_arviz_round_trip(tmp_path: Path) -> None:
    space = ParameterSpace({"mu": Real(), "theta": Real(shape=(3,)), "w": Simplex(4)})
    g = make_generator(1)
    s = sample(RandomWalkMetropolis(), space.wrap(lambda v: -0.5 * v["mu"] ** 2
                                                  - 0.5 * (v["theta"] ** 2).sum(-1)),
               space.initial_position(4, g), num_draws=30, generator=g, space=space, seed=1)
    s.stats["is_divergent"] = torch.zeros(4, 30, dtype=torch.bool)
    idata = s.to_arviz(dims={"theta": ["school"]}, coords={"school": ["a", "b", "c"]})
    post = idata.posterior
    assert dict(post.sizes)["chain"] == 4 and dict(post.sizes)["draw"] == 30
    assert post["theta"].dims == ("chain", "draw", "school")
    assert post["w"].shape == (4, 30, 4) and post["mu"].shape == (4, 30)
    assert torch.allclose(torch.from_numpy(post["theta"].values), s["theta"])
    names = set(idata.sample_stats.data_vars)
    assert {"lp", "acceptance_rate", "diverging", "is_accepted"} <= names
    attrs = idata.posterior.attrs
    for key in ("seed", "device", "dtype", "sampler", "probforge_version", "torch_version",
                "arviz_version"):
        assert key in attrs, key
    assert attrs["seed"] == 1 and attrs["sampler"] == "rwmh"
    assert idata.attrs["seed"] == 1 and "lp" in idata.sample_stats
    idata.to_netcdf(str(tmp_path / "s.nc"))  # every attr is storable
    back = __import__("arviz").from_netcdf(str(tmp_path / "s.nc"))
    assert back.posterior.attrs["sampler"] == "rwmh" and back.posterior["theta"].shape == (4, 30, 3)
    summary = s.summary()
    assert "r_hat" in summary.columns and "theta[0]" in summary.index


def test_gibbs_driver_without_log_density() -> None:
    def draw(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        return torch.randn(x.shape[0], 1, generator=g, dtype=x.dtype)

    s = sample(Gibbs([([0], draw), ([1], draw)]), None, torch.zeros(4, 2), num_draws=5, seed=0)
    assert "log_density" not in s.stats  # no value to report, and never NaN
    assert bool(s.stats["accept_prob"].eq(1).all())


@pytest.mark.cuda
def test_cuda_draws_stay_on_device_and_are_reproducible() -> None:
    x0 = torch.zeros(64, 3, device="cuda", dtype=torch.float64)
    a = sample(RandomWalkMetropolis(), std_normal, x0, num_draws=50, num_warmup=20, seed=0)
    b = sample(RandomWalkMetropolis(), std_normal, x0, num_draws=50, num_warmup=20, seed=0)
    assert a["x"].device.type == "cuda" and a.stats["accept_prob"].device.type == "cuda"
    assert a.attrs["device"].startswith("cuda")
    assert torch.equal(a["x"], b["x"])
    assert a.to_arviz().posterior["x"].shape == (64, 50, 3)
