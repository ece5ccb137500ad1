"""A Bayesian HMM sampled with ``samplers``: posteriordb's ``hmm_example`` (Stan user's guide).

Two hidden states, ``y_t ~ N(mu_{z_t}, 1)``, each row of the transition matrix uniform on the
simplex, ``mu`` positive and ordered with ``mu_1 ~ N(3, 1)``, ``mu_2 ~ N(10, 1)``. The states are
summed out by the forward algorithm: the model is written in Pyro with
:class:`pgm.hmm.HMMDistribution` as the likelihood, turned into a batched log-density by
:func:`samplers.from_pyro_model`, and sampled with NUTS (``--smoke``: random-walk Metropolis, a
quick check only). Afterwards the posterior mean parameters decode the states (Viterbi) and give
the posterior probability of state 2.

The data come from ``/work/shared/data/posteriordb/hmm_example.json`` (or ``$POSTERIORDB_DATA``);
the example exits cleanly when they are absent.

Run ``python examples/hmm_posteriordb.py`` (``--smoke`` for a quick CI run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import ClassVar

import torch
from torch.distributions import Normal

from pgm.hmm import GaussianEmission, HiddenMarkovModel, HMMDistribution, posterior, viterbi
from probforge.ops import make_generator

F64 = torch.float64
DATA = Path(os.environ.get("POSTERIORDB_DATA", "/work/shared/data/posteriordb")) / (
    "hmm_example.json")


def load() -> torch.Tensor | None:
    if not DATA.exists():
        return None
    d = json.loads(DATA.read_text())
    return torch.tensor(d["y"], dtype=F64)


def model(y: torch.Tensor) -> None:
    import pyro
    import pyro.distributions as dist
    from pyro.distributions import constraints

    class OrderedNormals(dist.TorchDistribution):
        """N(3, 1) x N(10, 1) restricted to 0 < mu_1 < mu_2 (unnormalised, as in Stan)."""

        support = constraints.positive_ordered_vector
        arg_constraints: ClassVar[dict] = {}

        def __init__(self) -> None:
            super().__init__(torch.Size(), torch.Size((2,)), validate_args=False)
            self.base = Normal(torch.tensor([3.0, 10.0], dtype=F64), 1.0)

        def sample(self, sample_shape=torch.Size()):  # noqa: B008 (torch's signature)
            return self.base.sample(sample_shape).abs().sort(-1).values

        def log_prob(self, value):
            return self.base.log_prob(value).sum(-1)

    theta = pyro.sample("theta", dist.Dirichlet(torch.ones(2, 2, dtype=F64)).to_event(1))
    mu = pyro.sample("mu", OrderedNormals())
    # Stan's hmm_example starts the forward recursion without an initial distribution (a
    # constant factor 2 here, which does not change the posterior)
    pyro.sample("y", HMMDistribution(torch.zeros(2, dtype=F64), theta.log(), Normal(mu, 1.0),
                                     duration=len(y)), obs=y)


def main(draws: int, warmup: int, chains: int, seed: int, kernel: str = "nuts") -> None:
    y = load()
    if y is None:
        print(f"posteriordb data not found at {DATA}: skipped")
        return
    from samplers import (
        NUTS,
        RandomWalkMetropolis,
        ScaleAdaptation,
        WindowAdaptation,
        check,
        from_pyro_model,
        sample,
    )

    logp, space = from_pyro_model(model, y)
    g = make_generator(seed)
    x0 = space.initial_position(chains, g, dtype=F64)
    if kernel == "nuts":
        s = sample(NUTS(), logp, x0, num_draws=draws, num_warmup=warmup,
                   adaptation=WindowAdaptation(), space=space, generator=g)
    else:  # gradient-free, for the quick CI run
        s = sample(RandomWalkMetropolis(), logp, x0, num_draws=draws, num_warmup=warmup,
                   adaptation=ScaleAdaptation(), space=space, generator=g)
    print(f"hmm_example: N = {len(y)}, {chains} chains x {draws} draws ({kernel}, "
          f"{warmup} warmup)")
    print(s.summary(round_to=3).to_string())
    warnings = check(s, print_warnings=False)
    print("diagnostics:", "; ".join(warnings) if warnings else "no warnings")
    mu = s["mu"].reshape(-1, 2).mean(0)
    theta = s["theta"].reshape(-1, 2, 2).mean(0)
    hmm = HiddenMarkovModel(torch.log(torch.full((2,), 0.5, dtype=F64)),
                            (theta / theta.sum(-1, keepdim=True)).log(),
                            GaussianEmission(mu[:, None], torch.ones(2, 1, dtype=F64)))
    path = viterbi(hmm, y[:, None]).states
    p2 = posterior(hmm, y[:, None]).state_probs[:, 1]
    print(f"posterior means: mu = ({float(mu[0]):.3f}, {float(mu[1]):.3f}), theta = "
          f"{[[round(float(v), 3) for v in row] for row in theta]}")
    print(f"Viterbi at the posterior mean: {int((path == 1).sum())} of {len(y)} steps in state 2;"
          f" mean p(state 2) = {float(p2.mean()):.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small, fast run for CI")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.smoke:
        main(60, 60, 2, args.seed, kernel="rwm")
    else:
        main(500, 500, 4, args.seed)
    sys.exit(0)
