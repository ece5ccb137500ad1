"""Gradient and random-walk samplers: ESS per second against emcee and Pyro, and chain scaling.

What is compared, in one process, on two targets (float64, CPU):

- ``gauss10``: a 10-d Gaussian with marginal sds from 0.5 to 2 and correlation 0.8;
- ``eight_schools``: the non-centred eight-schools posterior (mu, tau, theta_trans[8]; tau on
  the log scale with its Jacobian for the unconstrained samplers).

Samplers: probforge NUTS and HMC (Stan-style window adaptation, diagonal metric, 4 chains in
lockstep; HMC takes 16 leapfrog steps with the step size jittered by +-50%; NUTS also with 32
chains, as many as emcee's walkers, since extra chains cost little when vectorised), probforge
random-walk Metropolis (covariance adaptation, 4 chains), emcee's affine-invariant ensemble (32
walkers, vectorised numpy log density), Pyro's NUTS (1 chain, its own step-size and diagonal
mass-matrix adaptation); NumPyro is reported as installed or not (it has no figures when it is
not). Each run does the same number of warmup and kept iterations per chain. ``ess_per_s`` is
the minimum over parameters of ArviZ's bulk ESS (``arviz.ess``, chains as given: emcee's
walkers count as chains) divided by the run's total wall time including warmup. Ratios are
ours / theirs (above 1: probforge is more efficient).

Scaling: random-walk Metropolis steps on a 100-d standard Gaussian with 1, 100 and 10,000 chains
(float32), timed over the kernel's ``step`` (no storage of draws): draws per second and the cost
of one step relative to one chain (10,000 chains must cost far less than 10,000x, and well under
100x). On CPU the 10,000-chain step is bound by torch's serial generator: one million N(0, 1)
draws take about 4.4 ms on one core, whatever the thread count.

Threads: ``torch.set_num_threads(--threads)``, default 1: the targets are tiny and on a busy
2-core machine a second MKL thread makes small matmuls ~40x slower (oversubscription). The
1-minute load average is recorded at the start and end (2-core timings are fragile).
Last stdout line: one JSON object with all figures.

Run: python bench/samplers.py [--quick] [--threads N] [--skip-pyro]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# This script is named like the ``samplers`` package: take its own folder off sys.path so that
# ``import samplers`` finds the package, and load the shared timing helpers by path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_timing", _HERE / "_timing.py")
assert _spec is not None and _spec.loader is not None
_timing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_timing)
load_average = _timing.load_average

from probforge.ops.random import make_generator  # noqa: E402
from samplers.adaptation import WindowAdaptation  # noqa: E402
from samplers.adaptation_protocol import ScaleAdaptation  # noqa: E402
from samplers.hmc import HMC, HMCParams  # noqa: E402
from samplers.metropolis import RandomWalkMetropolis  # noqa: E402
from samplers.nuts import NUTS  # noqa: E402
from samplers.run import sample  # noqa: E402

DTYPE = torch.float64
CHAINS = 4
WALKERS = 32
Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def _arviz() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def min_ess(draws: dict[str, np.ndarray]) -> float:
    """Minimum bulk ESS over every scalar parameter; arrays are (chain, draw, *shape)."""
    az = _arviz()
    ds = az.convert_to_dataset({k: np.asarray(v) for k, v in draws.items()})
    ess = az.ess(ds, method="bulk")
    return float(min(float(np.min(ess[k].values)) for k in draws))


# -- targets -----------------------------------------------------------------------------------
def gauss10() -> dict[str, Any]:
    d = 10
    scales = np.linspace(0.5, 2.0, d)
    corr = np.full((d, d), 0.8)
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(scales, scales)
    prec = np.linalg.inv(cov)
    prec_t = torch.tensor(prec, dtype=DTYPE)

    def logp_torch(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x @ prec_t) * x).sum(-1)

    def logp_np(x: np.ndarray) -> np.ndarray:
        return np.asarray(-0.5 * np.einsum("ni,ij,nj->n", x, prec, x))

    def pyro_model() -> None:
        import pyro
        import pyro.distributions as dist

        pyro.sample("x", dist.MultivariateNormal(torch.zeros(d, dtype=DTYPE),
                                                 torch.tensor(cov, dtype=DTYPE)))

    def to_draws(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"x": x}

    return {"d": d, "torch": logp_torch, "numpy": logp_np, "pyro": pyro_model,
            "to_draws": to_draws, "pyro_names": ["x"], "init_scale": 1.0}


def eight_schools() -> dict[str, Any]:
    y, sigma = torch.tensor(Y8, dtype=DTYPE), torch.tensor(SIGMA8, dtype=DTYPE)

    def logp_torch(x: torch.Tensor) -> torch.Tensor:
        mu, log_tau, tt = x[:, 0], x[:, 1], x[:, 2:]
        tau = torch.exp(log_tau)
        lp = -0.5 * (mu / 5.0) ** 2 - torch.log1p((tau / 5.0) ** 2) + log_tau
        lp = lp - 0.5 * (tt**2).sum(-1)
        return lp - 0.5 * (((y - mu[:, None] - tau[:, None] * tt) / sigma) ** 2).sum(-1)

    def logp_np(x: np.ndarray) -> np.ndarray:
        mu, log_tau, tt = x[:, 0], x[:, 1], x[:, 2:]
        tau = np.exp(log_tau)
        lp = -0.5 * (mu / 5.0) ** 2 - np.log1p((tau / 5.0) ** 2) + log_tau
        lp = lp - 0.5 * (tt**2).sum(-1)
        return np.asarray(
            lp - 0.5 * (((Y8 - mu[:, None] - tau[:, None] * tt) / SIGMA8) ** 2).sum(-1))

    def pyro_model() -> None:
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=DTYPE), 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(torch.tensor(5.0, dtype=DTYPE)))
        with pyro.plate("J", 8):
            tt = pyro.sample("theta_trans", dist.Normal(torch.tensor(0.0, dtype=DTYPE), 1.0))
            pyro.sample("y", dist.Normal(mu + tau * tt, sigma), obs=y)

    def to_draws(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"mu": x[..., 0], "tau": np.exp(x[..., 1]), "theta_trans": x[..., 2:]}

    return {"d": 10, "torch": logp_torch, "numpy": logp_np, "pyro": pyro_model,
            "to_draws": to_draws, "pyro_names": ["mu", "tau", "theta_trans"], "init_scale": 1.0}


# -- runners -----------------------------------------------------------------------------------
def run_ours(kind: str, target: dict[str, Any], warmup: int, draws: int, seed: int,
             chains: int = CHAINS) -> dict[str, Any]:
    g = make_generator(seed)
    x0 = (torch.rand(chains, target["d"], generator=g, dtype=DTYPE) * 4 - 2) * target["init_scale"]
    kernel: Any
    adapt: Any
    if kind == "nuts":
        kernel, params, adapt = NUTS(), None, WindowAdaptation()
    elif kind == "hmc":
        kernel, params, adapt = HMC(step_size_jitter=0.5), HMCParams(0.2, 16), WindowAdaptation()
    else:
        kernel, params, adapt = RandomWalkMetropolis(), None, ScaleAdaptation(
            adapt_covariance=True)
    t0 = time.perf_counter()
    s = sample(kernel, target["torch"], x0, num_draws=draws, num_warmup=warmup, params=params,
               adaptation=adapt, generator=g)
    elapsed = time.perf_counter() - t0
    ess = min_ess(target["to_draws"](s["x"].numpy()))
    out = {"time_s": elapsed, "min_ess": ess, "ess_per_s": ess / elapsed}
    if "num_steps" in s.stats:
        out["mean_leapfrog_steps"] = float(s.stats["num_steps"].double().mean())
    return out


def run_emcee(target: dict[str, Any], warmup: int, draws: int, seed: int) -> dict[str, Any]:
    import emcee

    rng = np.random.default_rng(seed)
    p0 = rng.uniform(-2, 2, size=(WALKERS, target["d"])) * target["init_scale"]
    sampler = emcee.EnsembleSampler(WALKERS, target["d"], target["numpy"], vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    t0 = time.perf_counter()
    sampler.run_mcmc(p0, warmup + draws, progress=False)
    elapsed = time.perf_counter() - t0
    chain = sampler.get_chain()[warmup:]  # (draws, walkers, d)
    ess = min_ess(target["to_draws"](np.swapaxes(chain, 0, 1)))
    return {"time_s": elapsed, "min_ess": ess, "ess_per_s": ess / elapsed}


def run_pyro(target: dict[str, Any], warmup: int, draws: int, seed: int) -> dict[str, Any]:
    import pyro
    from pyro.infer import MCMC
    from pyro.infer import NUTS as PyroNUTS

    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    nuts = PyroNUTS(target["pyro"], adapt_step_size=True,  # type: ignore[no-untyped-call]
                    adapt_mass_matrix=True)
    mcmc = MCMC(nuts, num_samples=draws, warmup_steps=warmup,  # type: ignore[no-untyped-call]
                num_chains=1, disable_progbar=True)
    t0 = time.perf_counter()
    mcmc.run()
    elapsed = time.perf_counter() - t0
    samples = mcmc.get_samples(group_by_chain=True)  # type: ignore[no-untyped-call]
    ess = min_ess({k: samples[k].numpy() for k in target["pyro_names"]})
    return {"time_s": elapsed, "min_ess": ess, "ess_per_s": ess / elapsed}


def scaling(steps: int, seed: int) -> dict[str, Any]:
    """Random-walk MH on a 100-d standard Gaussian: step cost for 1, 100, 10,000 chains."""
    d = 100

    def logp(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * (x**2).sum(-1)

    kernel = RandomWalkMetropolis()
    out: dict[str, Any] = {}
    for chains in (1, 100, 10_000):
        g = make_generator(seed)
        x = torch.zeros(chains, d, dtype=torch.float32)
        state = kernel.init(x, logp)
        params = kernel.default_params(x)
        for _ in range(5):  # warm-up of caches and allocator
            state, _ = kernel.step(state, logp, params, g)
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(steps):
                state, _ = kernel.step(state, logp, params, g)
            best = min(best, (time.perf_counter() - t0) / steps)
        out[f"chains_{chains}"] = {"step_s": best, "draws_per_s": chains / best}
    one = out["chains_1"]["step_s"]
    for chains in (100, 10_000):
        out[f"chains_{chains}"]["cost_vs_1_chain"] = out[f"chains_{chains}"]["step_s"] / one
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--skip-pyro", action="store_true", help="leave out Pyro's NUTS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warmup, draws = (300, 300) if args.quick else (1000, 1000)
    figures: dict[str, Any] = {"load_avg_1m_start": load_average(), "threads": args.threads,
                               "warmup": warmup, "draws": draws, "chains": CHAINS,
                               "emcee_walkers": WALKERS, "device": "cpu"}
    try:
        import numpyro  # noqa: F401

        have_numpyro = True
    except ImportError:
        have_numpyro = False
    figures["numpyro"] = "installed" if have_numpyro else "not installed"

    runners: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "probforge_nuts": lambda t: run_ours("nuts", t, warmup, draws, 0),
        "probforge_nuts_32_chains": lambda t: run_ours("nuts", t, warmup, draws, 0, WALKERS),
        "probforge_hmc": lambda t: run_ours("hmc", t, warmup, draws, 0),
        "probforge_rwmh": lambda t: run_ours("rwmh", t, warmup, draws, 0),
        "emcee": lambda t: run_emcee(t, warmup, draws, 0),
    }
    if not args.skip_pyro:
        runners["pyro_nuts"] = lambda t: run_pyro(t, warmup, draws, 0)
    for tname, make in (("gauss10", gauss10), ("eight_schools", eight_schools)):
        target = make()
        res: dict[str, Any] = {}
        for name, run in runners.items():
            try:
                res[name] = run(target)
            except Exception as err:  # a peer failing must not hide the other figures
                res[name] = {"error": f"{type(err).__name__}: {err}"}
            r = res[name]
            if "error" in r:
                print(f"{tname:14s} {name:24s} !!! {r['error']}")
            else:
                print(f"{tname:14s} {name:24s} {r['time_s']:8.2f} s  min ESS {r['min_ess']:8.1f}"
                      f"  ESS/s {r['ess_per_s']:9.1f}")
        ours = res["probforge_nuts"].get("ess_per_s")
        ratios = {}
        for peer in ("emcee", "pyro_nuts"):
            theirs = res.get(peer, {}).get("ess_per_s")
            if ours and theirs:
                ratios[f"nuts_vs_{peer}"] = ours / theirs
        wide, em = res["probforge_nuts_32_chains"].get("ess_per_s"), res["emcee"].get("ess_per_s")
        if wide and em:
            ratios["nuts_32_chains_vs_emcee"] = wide / em
        rw = res["probforge_rwmh"].get("ess_per_s")
        if rw and em:
            ratios["rwmh_vs_emcee"] = rw / em
        res["ratios"] = ratios
        print(f"{tname:14s} ratios (probforge / peer ESS per second): "
              + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        figures[tname] = res

    steps = 20 if args.quick else 50
    figures["rwmh_scaling_100d"] = scal = scaling(steps, 0)
    for k, v in scal.items():
        extra = f"  cost vs 1 chain {v['cost_vs_1_chain']:.1f}x" if "cost_vs_1_chain" in v else ""
        print(f"rwmh 100-d {k:14s} {v['step_s'] * 1e3:9.3f} ms/step  "
              f"{v['draws_per_s']:12.0f} draws/s{extra}")
    figures["load_avg_1m_end"] = load_average()
    print(f"load average (1 min): start {figures['load_avg_1m_start']:.2f}, "
          f"end {figures['load_avg_1m_end']:.2f}; numpyro {figures['numpyro']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
