"""The textbook's sampling methods (section 11.5), vectorised, with ArviZ output.

1. Monte Carlo: pi from uniform points in a square (T14), with its standard error.
2. Inverse-CDF sampling of an exponential (Ex. 11-10).
3. Rejection sampling (Algorithm 11.2) of a Fig. 11.15-like bimodal target; acceptance = Z / M.
4. Importance sampling of the same target: log Z with its standard error, ESS, Pareto k.
5. Metropolis-Hastings (random walk, adapted) and Gibbs on a correlated bivariate Gaussian, many
   chains at once, summarised by ArviZ.

Run: python examples/samplers_classic.py [--smoke]
"""

from __future__ import annotations

import argparse
import math

import torch

from probforge.ops import make_generator
from samplers import (
    Cauchy,
    Gaussian,
    Gibbs,
    RandomWalkMetropolis,
    ScaleAdaptation,
    check,
    estimate_pi,
    importance_sample,
    inverse_cdf_sample,
    rejection_sample,
    sample,
)

Z = 2.5  # normaliser of the unnormalised target below


def log_p_hat(x: torch.Tensor) -> torch.Tensor:
    """``Z (0.6 N(-1.5, 1) + 0.4 N(2, 0.8^2))`` on the real line, (n, 1) -> (n,)."""
    v = x[:, 0]
    a = math.log(0.6) - 0.5 * (v + 1.5) ** 2 - 0.5 * math.log(2 * math.pi)
    b = math.log(0.4) - 0.5 * ((v - 2) / 0.8) ** 2 - math.log(0.8 * math.sqrt(2 * math.pi))
    return math.log(Z) + torch.logaddexp(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small sizes for CI")
    args = parser.parse_args()
    n = 20_000 if args.smoke else 1_000_000
    g = make_generator(0)

    est = estimate_pi(n, generator=g)
    print(f"1. pi ~= {float(est.mean):.5f} +- {float(est.std_error):.5f} from {n:,} points "
          f"(error {float(est.mean) - math.pi:+.5f})")

    x = inverse_cdf_sample(lambda u: -torch.log1p(-u) / 2.0, n, generator=g)
    print(f"2. inverse CDF, Exponential(rate 2): mean {float(x.mean()):.4f} (exact 0.5), "
          f"var {float(x.var()):.4f} (exact 0.25)")

    q = Gaussian(torch.zeros(1, dtype=torch.float64), 3.0)
    grid = torch.linspace(-20, 20, 200_001, dtype=torch.float64).unsqueeze(-1)
    log_M = float((log_p_hat(grid) - q.log_prob(grid)).max()) + 1e-6  # sup p_hat / q
    r = rejection_sample(log_p_hat, q, log_M, n // 4, generator=g)
    print(f"3. rejection: {r.num_accepted:,} draws from {r.num_proposed:,} proposals, acceptance "
          f"{r.acceptance_rate:.4f} (Z / M = {r.expected_rate(math.log(Z)):.4f}); "
          f"mean {float(r.samples.mean()):.4f} (exact {0.6 * -1.5 + 0.4 * 2:.4f})")

    imp = importance_sample(log_p_hat, Cauchy(torch.zeros(1, dtype=torch.float64), 2.0), n,
                            generator=g)
    m = imp.expectation(lambda s: s[:, 0])
    print(f"4. importance: log Z = {imp.log_evidence:.4f} +- {imp.log_evidence_se:.4f} (exact "
          f"{math.log(Z):.4f}); E[x] = {float(m.mean):.4f} +- {float(m.std_error):.4f}; "
          f"ESS {imp.ess:,.0f} of {n:,}; Pareto k {imp.pareto_k:.2f}")

    rho = 0.9
    prec = torch.linalg.inv(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64))

    def gauss(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x @ prec) * x).sum(-1)

    chains, draws = (8, 1000) if args.smoke else (64, 5000)
    x0 = 3 * torch.randn(chains, 2, generator=g, dtype=torch.float64)
    mh = sample(RandomWalkMetropolis(), gauss, x0, num_draws=draws, num_warmup=draws,
                adaptation=ScaleAdaptation(adapt_covariance=True), generator=g)
    acc = float(mh.stats["accept_prob"].mean())
    print(f"5a. random-walk MH, {chains} chains: acceptance {acc:.3f}; "
          f"warnings: {check(mh, print_warnings=False)}")
    print(mh.summary().round(3).to_string())

    def conditional(i: int):  # type: ignore[no-untyped-def]
        def draw(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
            z = torch.randn(x.shape[0], generator=gen, dtype=x.dtype)
            return (rho * x[:, 1 - i] + math.sqrt(1 - rho**2) * z).unsqueeze(-1)

        return draw

    gibbs = sample(Gibbs([([0], conditional(0)), ([1], conditional(1))]), gauss, x0,
                   num_draws=draws, num_warmup=100, generator=g)
    corr = torch.corrcoef(gibbs.flatten("x").T)[0, 1]
    print(f"5b. Gibbs (systematic scan), {chains} chains: correlation {float(corr):.3f} "
          f"(exact {rho}); warnings: {check(gibbs, print_warnings=False)}")
    print(gibbs.summary().round(3).to_string())


if __name__ == "__main__":
    main()
