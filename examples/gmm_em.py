"""EM for mixture models: the textbook's Fig. 11.13 experiment and two generalisations.

1. Algorithm 11.1 on one-dimensional data from a two-component mixture: random initialisation,
   then the parameters after iterations 0, 1, 4, 8, 12 and 16 (the snapshots of Fig. 11.13) and
   the total log marginal likelihood, which never decreases (11.45).
2. Two-dimensional data from three components: every covariance type, compared by BIC.
3. A Bernoulli mixture (Exercise 11-6) on binary patterns, with a Beta(2, 2) prior (MAP-EM).

Run ``python examples/gmm_em.py`` (add ``--plot fig.png`` for a picture of the snapshots,
``--smoke`` for a quick CI run). Plotting uses matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import argparse
import itertools

import torch

from pgm.learning import BernoulliMixture, GaussianMixture, fit_bernoulli_mixture, fit_gmm
from probforge.ops.random import make_generator

SNAPSHOTS = (0, 1, 4, 8, 12, 16)


def figure_11_13(n: int, seed: int, plot: str | None) -> None:
    """Snapshots of Algorithm 11.1 on 1-D data (each snapshot re-runs EM from the same start)."""
    f64 = torch.float64
    truth = GaussianMixture(
        torch.tensor([0.4, 0.6], dtype=f64),
        torch.tensor([[-2.0], [1.5]], dtype=f64),
        torch.tensor([0.36, 1.0], dtype=f64),
        "spherical",
    )
    x, _ = truth.sample(n, generator=make_generator(seed))
    x = x.squeeze(-1)
    start = fit_gmm(x, 2, init="random", max_iter=0, generator=make_generator(seed + 1)).model
    print(f"1-D GMM, K=2, N={n} (truth: pi=(0.4, 0.6), mu=(-2, 1.5), sigma=(0.6, 1.0))")
    print(f"{'iter':>4} {'pi':>16} {'mu':>18} {'sigma':>16} {'log p / N':>10}")
    models = []
    for t in SNAPSHOTS:
        res = fit_gmm(x, 2, init=start, max_iter=t, tol=0.0)
        m = res.model
        models.append(m)
        sigma = m.variances[:, 0].sqrt()  # the M-step estimates sigma^2 (seed erratum 4)
        print(
            f"{res.n_iter:>4} {_fmt(m.weights):>16} {_fmt(m.means[:, 0]):>18} "
            f"{_fmt(sigma):>16} {res.log_likelihood / n:>10.4f}"
        )
    final = fit_gmm(x, 2, init=start, max_iter=500, tol=1e-8)
    print(f"converged after {final.n_iter} iterations: log p / N = {final.log_likelihood / n:.4f}")
    diffs = [b - a for a, b in itertools.pairwise(final.history)]
    print(f"smallest change in the log-likelihood: {min(diffs):.3g} (never negative, 11.45)\n")
    if plot:
        _plot(x, models, plot)


def covariance_types(n: int, seed: int) -> None:
    """Fit a 2-D, K=3 mixture with every covariance type and report BIC."""
    f64 = torch.float64
    truth = GaussianMixture(
        torch.tensor([0.25, 0.35, 0.4], dtype=f64),
        torch.tensor([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]], dtype=f64),
        torch.tensor(
            [[[1.0, 0.5], [0.5, 1.0]], [[0.7, -0.2], [-0.2, 0.5]], [[1.2, 0.0], [0.0, 0.6]]],
            dtype=f64,
        ),
    )
    x, _ = truth.sample(n, generator=make_generator(seed))
    print(f"2-D GMM, K=3, N={n}: covariance types by BIC (lower is better)")
    for ct in ("full", "diag", "spherical", "tied"):
        res = fit_gmm(x, 3, covariance_type=ct, n_init=2, generator=make_generator(seed + 1))
        m = res.model
        print(
            f"  {ct:>9}: {m.n_parameters:>2} parameters, {res.n_iter:>3} iterations, "
            f"log p / N = {res.log_likelihood / n:8.4f}, BIC = {m.bic(x):9.1f}"
        )
    print()


def bernoulli(n: int, seed: int) -> None:
    """MAP-EM for a Bernoulli mixture on three block patterns."""
    f64 = torch.float64
    hi, lo = 0.8, 0.15
    probs = torch.full((3, 12), lo, dtype=f64)
    for k in range(3):
        probs[k, 4 * k : 4 * k + 4] = hi
    truth = BernoulliMixture(torch.tensor([0.25, 0.35, 0.4], dtype=f64), probs)
    x, _ = truth.sample(n, generator=make_generator(seed))
    res = fit_bernoulli_mixture(x, 3, beta_prior=(2.0, 2.0), n_init=2,
                                generator=make_generator(seed + 1))
    m = res.model
    order = torch.cdist(truth.probs, m.probs).argmin(-1)
    err = (m.probs[order] - truth.probs).abs().max()
    print(f"Bernoulli mixture, K=3, D=12, N={n}: {res.n_iter} iterations, "
          f"weights {_fmt(m.weights[order])}, max |mu - mu_true| = {float(err):.3f}")


def _fmt(t: torch.Tensor) -> str:
    return "(" + ", ".join(f"{float(v):.3f}" for v in t) + ")"


def _plot(x: torch.Tensor, models: list[GaussianMixture], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; skipping the plot")
        return
    grid = torch.linspace(float(x.min()) - 1, float(x.max()) + 1, 400, dtype=x.dtype)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True, sharey=True)
    for ax, t, m in zip(axes.flat, SNAPSHOTS, models, strict=True):
        ax.hist(x.numpy(), bins=60, density=True, color="0.85")
        ax.plot(grid.numpy(), m.log_prob(grid).exp().numpy(), "k-", lw=1.5)
        comps = m.log_joint(grid).exp()
        for k in range(m.n_components):
            ax.plot(grid.numpy(), comps[:, k].numpy(), "--", lw=1)
        ax.set_title("initialisation" if t == 0 else f"iteration {t}")
    fig.suptitle("EM for a two-component 1-D GMM (cf. Fig. 11.13)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small, fast run for CI")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--plot", metavar="PNG", help="save the Fig. 11.13 snapshots here")
    args = parser.parse_args(argv)
    n1, n2, n3 = (400, 600, 500) if args.smoke else (4000, 6000, 3000)
    figure_11_13(n1, args.seed, args.plot)
    covariance_types(n2, args.seed + 10)
    bernoulli(n3, args.seed + 20)


if __name__ == "__main__":
    main()
