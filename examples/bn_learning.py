"""Parameter learning for a discrete Bayesian network: MLE, BDeu, and EM with missing data.

Samples the asia network, fits its CPTs by maximum likelihood and by the BDeu posterior mean,
then hides 30% of the values at random and one variable entirely and fits by EM. Prints the error
of every fit as the KL divergence of the true joint from the fitted one (for two networks on the
same graph: the CPT-row KLs weighted by the true parent-configuration probabilities) and EM's
log-likelihood trace.

Run ``python examples/bn_learning.py`` (``--smoke`` for a fast CI run).
"""

from __future__ import annotations

import argparse
import math

import torch

from pgm.bayesnet import BayesianNetwork
from pgm.inference import JunctionTree
from pgm.io import bundled_network
from pgm.learning.bn_em import fit_em
from pgm.learning.parameters import fit_bayesian, fit_mle, log_likelihood, structure_score


def joint_kl(true: BayesianNetwork, est: BayesianNetwork, hidden: str | None = None) -> float:
    """KL(p_true || p_est) of the joints, or of the observed marginals when ``hidden`` is set.

    A latent variable's states can come out relabelled, so its fit is judged on the observed
    variables only (by enumerating the joint: fine for asia's 2^8 states).
    """
    if hidden is None:
        cal = JunctionTree(true).calibrate()
        total = 0.0
        for v, ps in true.parents.items():
            p = cal.joint((*ps, v))
            d = true.cpd(v).log_probs - est.cpd(v).log_probs
            total += float(torch.where(p > 0, p * d, torch.zeros_like(p)).sum())
        return total
    cards = [true.cards[v] for v in true.variables]
    grids = torch.meshgrid(*[torch.arange(c) for c in cards], indexing="ij")
    every = torch.stack([g.reshape(-1) for g in grids], dim=1)
    j = true.variables.index(hidden)
    lt = torch.logsumexp(true.log_prob(every).reshape(cards), dim=j).reshape(-1)
    le = torch.logsumexp(est.log_prob(every).reshape(cards), dim=j).reshape(-1)
    p = lt.exp()
    return float(torch.where(p > 0, p * (lt - le), torch.zeros_like(p)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small and fast, for CI")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--missing", type=float, default=0.3, help="fraction missing at random")
    parser.add_argument("--latent", default="either", help="variable never observed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = 2000 if args.smoke else args.samples
    max_iter = 30 if args.smoke else 300

    asia = bundled_network("asia")
    g = torch.Generator().manual_seed(args.seed)
    x = asia.sample(n, generator=g)
    print(f"asia: {len(asia.variables)} variables, {asia.num_free_parameters} free parameters, "
          f"{n} samples")

    mle = fit_mle(asia, x, unseen="uniform")  # rare parent configurations may be unseen
    bdeu = fit_bayesian(asia, x, "bdeu", equivalent_sample_size=5)
    print(f"KL(true || MLE)                  = {joint_kl(asia, mle):.3g}")
    print(f"KL(true || BDeu, ESS 5)          = {joint_kl(asia, bdeu):.3g}")
    print(f"BIC of the true structure        = {float(structure_score(asia, x, 'bic')):.1f}")

    x_mar = x.clone()
    x_mar[torch.rand(x.shape, generator=g) < args.missing] = -1
    complete = x_mar[(x_mar >= 0).all(1)]
    res = fit_em(asia, x_mar, prior="bdeu", equivalent_sample_size=1.0, max_iter=max_iter,
                 generator=g)
    cc = fit_bayesian(asia, complete, "bdeu", equivalent_sample_size=1.0)
    print(f"\n{args.missing:.0%} missing at random ({len(complete)} complete rows)")
    print(f"KL(true || complete-case BDeu)   = {joint_kl(asia, cc):.3g}")
    print(f"KL(true || MAP-EM, all rows)     = {joint_kl(asia, res.model):.3g} "
          f"({res.n_iter} iterations, converged={res.converged})")
    print("log-likelihood trace:", ", ".join(f"{v:.1f}" for v in res.log_likelihood[:8]),
          "..." if len(res.log_likelihood) > 8 else "")

    observed = [v for v in asia.variables if v != args.latent]
    x_lat = x[:, [asia.variables.index(v) for v in observed]]
    lat = fit_em(asia, x_lat, variables=observed, prior="bdeu", equivalent_sample_size=1.0,
                 max_iter=max_iter, generator=g)
    truth_ll = float(log_likelihood(asia, x_lat, variables=observed))
    print(f"\n{args.latent!r} latent")
    print(f"KL of the observed marginals     = {joint_kl(asia, lat.model, args.latent):.3g} "
          f"({lat.n_iter} iterations, converged={lat.converged})")
    print(f"log-likelihood: start {lat.log_likelihood[0]:.1f} -> end "
          f"{lat.log_likelihood[-1]:.1f} (true parameters: {truth_ll:.1f})")
    steps = [b - a for a, b in zip(lat.objective, lat.objective[1:], strict=False)]
    assert all(s >= -1e-9 * abs(lat.objective[0]) for s in steps), "EM decreased its objective"
    assert math.isfinite(lat.log_likelihood[-1])


if __name__ == "__main__":
    main()
