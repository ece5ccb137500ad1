"""posteriordb reference posteriors recovered by NUTS and HMC (slow).

Data: ``../shared/data/posteriordb/`` (``eight_schools.json``, ``sblrc.json``); the tests skip
when it is absent. Targets are written here as torch log densities on the constrained
parameters, sampled in unconstrained space through :class:`samplers.space.ParameterSpace`.

Reference values are posteriordb's published reference posteriors (stan-dev/posteriordb,
``posterior_database/reference_posteriors/summary_statistics``): the means of
``eight_schools-eight_schools_noncentered`` and ``sblrc-blr``, and posterior sds derived from
the published mean squared values (``sd = sqrt(E[x^2] - E[x]^2)``; for eight schools from the
centred parameterisation, the same posterior of theta, mu, tau). Criterion (issue 4): every
parameter's posterior mean within 0.25 posterior sd of the reference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from probforge.ops.random import make_generator
from samplers.adaptation import WindowAdaptation
from samplers.hmc import HMC, HMCParams
from samplers.nuts import NUTS
from samplers.run import sample
from samplers.space import ParameterSpace, Positive, Real
from tests.samplers._mcmc_checks import single_thread  # noqa: F401  (fixture)
from tests.stats import seed_for

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "posteriordb"
DTYPE = torch.float64
TOLERANCE = 0.25  # posterior sds

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

# posteriordb reference posterior means and mean squared values -------------------------------
EIGHT_SCHOOLS_NAMES = [f"theta[{i}]" for i in range(1, 9)] + ["mu", "tau"]
EIGHT_SCHOOLS_MEAN = [6.15050229334425, 4.9395811407422, 3.90590609001582, 4.79601675138494,
                      3.6144363246799, 4.0511475789675, 6.31716975886893, 4.88399694353288,
                      4.41051833695493, 3.60205952364059]
EIGHT_SCHOOLS_MSV = [69.36345, 45.9787, 43.13923, 45.76135, 34.35767, 39.4135, 64.93269,
                     52.12845, 30.40302, 23.20407]
SBLRC_NAMES = [f"beta[{i}]" for i in range(1, 6)] + ["sigma"]
SBLRC_MEAN = [0.999647386264381, 0.99873177349098, 0.998198942727135, 0.998843664075728,
              0.998593084548124, 1.04229066997578]
# The mean squared values of beta are published to 7 digits, too few for sd = 1e-3 after the
# cancellation in E[x^2] - E[x]^2; those sds (about 1.0e-3) are checked against our draws'
# own sd within a factor of 1.5 instead, and the mean criterion uses our sd.
SBLRC_SIGMA_MSV = 1.0922524


def _load(name: str) -> dict:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"posteriordb data not found at {path}")
    return json.loads(path.read_text())


def _normal_lp(x: torch.Tensor, loc: float | torch.Tensor, scale: float | torch.Tensor
               ) -> torch.Tensor:
    scale = torch.as_tensor(scale, dtype=x.dtype)
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)


def eight_schools_target() -> tuple[ParameterSpace, object]:
    """Non-centred eight schools: theta_trans ~ N(0,1), mu ~ N(0,5), tau ~ HalfCauchy(0,5),
    y_j ~ N(mu + tau theta_trans_j, sigma_j)."""
    data = _load("eight_schools.json")
    y = torch.tensor(data["y"], dtype=DTYPE)
    sigma = torch.tensor(data["sigma"], dtype=DTYPE)
    space = ParameterSpace({"mu": Real(), "tau": Positive(), "theta_trans": Real(8)})

    def log_joint(v: dict[str, torch.Tensor]) -> torch.Tensor:
        mu, tau, tt = v["mu"], v["tau"], v["theta_trans"]
        lp = _normal_lp(mu, 0.0, 5.0)
        lp = lp + math.log(2 / (math.pi * 5.0)) - torch.log1p((tau / 5.0) ** 2)
        lp = lp + _normal_lp(tt, 0.0, 1.0).sum(-1)
        return lp + _normal_lp(y, mu[:, None] + tau[:, None] * tt, sigma).sum(-1)

    return space, space.wrap(log_joint)


def sblrc_target() -> tuple[ParameterSpace, object]:
    """Bayesian linear regression: beta ~ N(0, 10), sigma ~ HalfNormal(0, 10),
    y ~ N(X beta, sigma)."""
    data = _load("sblrc.json")
    x = torch.tensor(data["X"], dtype=DTYPE)
    y = torch.tensor(data["y"], dtype=DTYPE)
    space = ParameterSpace({"beta": Real(x.shape[1]), "sigma": Positive()})

    def log_joint(v: dict[str, torch.Tensor]) -> torch.Tensor:
        beta, sigma = v["beta"], v["sigma"]
        lp = _normal_lp(beta, 0.0, 10.0).sum(-1) + _normal_lp(sigma, 0.0, 10.0) + math.log(2)
        return lp + _normal_lp(y, beta @ x.T, sigma[:, None]).sum(-1)

    return space, space.wrap(log_joint)


def _check(ours: torch.Tensor, ref_mean: list[float], ref_sd: torch.Tensor,
           names: list[str]) -> torch.Tensor:
    err = (ours - torch.tensor(ref_mean, dtype=DTYPE)).abs() / ref_sd
    bad = [f"{n}: {float(e):.3f} sd" for n, e in zip(names, err, strict=True) if e >= TOLERANCE]
    assert not bad, f"posterior means off by >= {TOLERANCE} sd: {bad}"
    return err


def _eight_schools_means(s: object) -> torch.Tensor:
    theta = s["mu"][..., None] + s["tau"][..., None] * s["theta_trans"]  # type: ignore[index]
    return torch.cat([theta.mean((0, 1)), s["mu"].mean()[None],  # type: ignore[index]
                      s["tau"].mean()[None]])  # type: ignore[index]


def _eight_schools_sd() -> torch.Tensor:
    mean = torch.tensor(EIGHT_SCHOOLS_MEAN, dtype=DTYPE)
    return (torch.tensor(EIGHT_SCHOOLS_MSV, dtype=DTYPE) - mean**2).sqrt()


@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_eight_schools_noncentered(kernel: str) -> None:
    space, logp = eight_schools_target()
    g = make_generator(seed_for(2024))
    x0 = space.initial_position(4, g, dtype=DTYPE)
    if kernel == "nuts":
        k, params, adapt = NUTS(), None, WindowAdaptation()
    else:
        k, params, adapt = HMC(), HMCParams(0.3, 12), WindowAdaptation(target_accept=0.85)
    s = sample(k, logp, x0, num_draws=1000, num_warmup=600, params=params, adaptation=adapt,
               space=space, generator=g)
    err = _check(_eight_schools_means(s), EIGHT_SCHOOLS_MEAN, _eight_schools_sd(),
                 EIGHT_SCHOOLS_NAMES)
    print(f"eight schools ({kernel}): max error {float(err.max()):.3f} posterior sd")
    assert float(s.stats["is_divergent"].double().mean()) < 0.02


def test_sblrc_regression() -> None:
    space, logp = sblrc_target()
    g = make_generator(seed_for(7))
    x0 = space.initial_position(4, g, dtype=DTYPE)
    s = sample(NUTS(), logp, x0, num_draws=500, num_warmup=500,
               adaptation=WindowAdaptation(metric="dense"), space=space, generator=g)
    draws = torch.cat([s["beta"], s["sigma"][..., None]], -1).reshape(-1, 6)
    ours_sd = draws.std(0)
    sigma_sd = math.sqrt(SBLRC_SIGMA_MSV - SBLRC_MEAN[5] ** 2)
    assert 1 / 1.5 < float(ours_sd[5]) / sigma_sd < 1.5
    assert bool(((ours_sd[:5] > 0.6e-3) & (ours_sd[:5] < 1.6e-3)).all()), ours_sd
    ref_sd = torch.cat([ours_sd[:5], torch.tensor([sigma_sd], dtype=DTYPE)])
    err = _check(draws.mean(0), SBLRC_MEAN, ref_sd, SBLRC_NAMES)
    print(f"sblrc (nuts): max error {float(err.max()):.3f} posterior sd")
