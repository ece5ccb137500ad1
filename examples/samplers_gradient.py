"""Gradient-based and tempered samplers, vectorised over chains, with ArviZ output.

1. NUTS with Stan-style window adaptation on the non-centred eight-schools model (Rubin 1981;
   posteriordb ``eight_schools_noncentered``), constrained ``tau > 0`` handled by a
   ParameterSpace; an ArviZ summary and the convergence checks.
2. Parallel tempering on a bimodal target whose modes are 10 sds apart: random-walk Metropolis
   chains never leave the mode they start in, tempered chains visit both with the right weights.
3. Annealed importance sampling of the same target's normalising constant.

Run: python examples/samplers_gradient.py [--smoke]
"""

from __future__ import annotations

import argparse
import math

import torch

from probforge.ops import make_generator
from samplers import (
    NUTS,
    ParallelTempering,
    ParameterSpace,
    Positive,
    RandomWalkMetropolis,
    RandomWalkParams,
    Real,
    TemperingParams,
    WindowAdaptation,
    check,
    sample,
)
from samplers.ais import DiagonalNormal, ais
from samplers.slice import SliceParams, SliceSampler
from samplers.tempering import geometric_betas, replica_values, swap_acceptance_rates

F64 = torch.float64
Y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=F64)
SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=F64)


def eight_schools_log_joint(v: dict[str, torch.Tensor]) -> torch.Tensor:
    """log p(y, mu, tau, theta_trans): mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_trans ~ N(0, 1),
    y_j ~ N(mu + tau theta_trans_j, sigma_j); each value has a leading chain dimension."""
    mu, tau, tt = v["mu"], v["tau"], v["theta_trans"]
    lp = -0.5 * (mu / 5.0) ** 2 - torch.log1p((tau / 5.0) ** 2) - 0.5 * (tt**2).sum(-1)
    theta = mu[:, None] + tau[:, None] * tt
    return lp - 0.5 * (((Y - theta) / SIGMA) ** 2).sum(-1)


def nuts_eight_schools(draws: int, warmup: int, chains: int, seed: int) -> None:
    space = ParameterSpace({"mu": Real(), "tau": Positive(), "theta_trans": Real(8)})
    g = make_generator(seed)
    x0 = space.initial_position(chains, g, dtype=F64)
    s = sample(NUTS(), space.wrap(eight_schools_log_joint), x0, num_draws=draws,
               num_warmup=warmup, adaptation=WindowAdaptation(), space=space, generator=g)
    print(f"1. NUTS on eight schools: {chains} chains x {draws} draws "
          f"(step size {float(s.attrs['params'].step_size):.3f}, mean tree depth "
          f"{float(s.stats['tree_depth'].double().mean()):.2f}, divergences "
          f"{int(s.stats['is_divergent'].sum())})")
    print(s.summary(var_names=["mu", "tau"], round_to=2).to_string())
    theta = s["mu"][..., None] + s["tau"][..., None] * s["theta_trans"]
    print("   theta means:", " ".join(f"{float(t):.2f}" for t in theta.mean((0, 1))),
          "(posteriordb reference: 6.15 4.94 3.91 4.80 3.61 4.05 6.32 4.88)")
    warnings = check(s, print_warnings=False)
    print("   diagnostics:", "; ".join(warnings) if warnings else "no warnings")


def log_bimodal(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised 2-d target: 3 * [0.25 N((-5, -5), I/4) + 0.75 N((5, 5), I/4)]; Z = 3."""
    comps = torch.stack([math.log(0.25) - 2.0 * ((x + 5.0) ** 2).sum(-1),
                         math.log(0.75) - 2.0 * ((x - 5.0) ** 2).sum(-1)])
    return math.log(3.0) + torch.logsumexp(comps, 0) - math.log(2 * math.pi * 0.25)


def tempering_bimodal(draws: int, chains: int, seed: int) -> None:
    x0 = torch.full((chains, 2), -5.0, dtype=F64)  # every chain starts in the small mode
    rw = sample(RandomWalkMetropolis(), log_bimodal, x0, num_draws=draws,
                params=RandomWalkParams(torch.tensor(0.6, dtype=F64)), seed=seed)
    rw_right = float((rw["x"][..., 0] > 0).double().mean())
    betas = geometric_betas(8, 0.005)
    kernel = ParallelTempering(RandomWalkMetropolis(), betas)
    params = TemperingParams(RandomWalkParams(replica_values(0.6 / betas.sqrt(), chains)))
    pt = sample(kernel, log_bimodal, x0, num_draws=draws, num_warmup=200, params=params,
                seed=seed)
    right = (pt["x"][..., 0] > 0).double()
    rates = swap_acceptance_rates(pt.attrs["final_state"])
    print(f"2. bimodal target, modes 10 sds apart, weight 0.75 on (5, 5); {chains} chains "
          f"started at (-5, -5)")
    print(f"   random-walk MH:     fraction of draws in the (5, 5) mode {rw_right:.3f}")
    print(f"   parallel tempering: fraction {float(right.mean()):.3f} (per chain "
          f"{float(right.mean(1).min()):.2f}..{float(right.mean(1).max()):.2f}), "
          f"{len(betas)} temperatures, swap acceptance "
          + " ".join(f"{float(r):.2f}" for r in rates))


def ais_bimodal(particles: int, temperatures: int, seed: int) -> None:
    base = DiagonalNormal(torch.zeros(2, dtype=F64), 6.0)
    res = ais(log_bimodal, base, SliceSampler(), SliceParams(2.0), num_particles=particles,
              num_temperatures=temperatures, generator=make_generator(seed))
    print(f"3. AIS, {particles} particles, {temperatures} temperatures: log Z = "
          f"{res.log_z:.3f} +- {res.log_z_se:.3f} (truth {math.log(3.0):.3f}), ESS {res.ess:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a quick run for CI")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny targets: one thread avoids oversubscription
    if args.smoke:
        nuts_eight_schools(draws=150, warmup=150, chains=4, seed=args.seed)
        tempering_bimodal(draws=300, chains=4, seed=args.seed)
        ais_bimodal(particles=200, temperatures=20, seed=args.seed)
    else:
        nuts_eight_schools(draws=1000, warmup=1000, chains=4, seed=args.seed)
        tempering_bimodal(draws=3000, chains=8, seed=args.seed)
        ais_bimodal(particles=2000, temperatures=100, seed=args.seed)


if __name__ == "__main__":
    main()
