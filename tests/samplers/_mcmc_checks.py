"""Shared checks for the gradient, slice, tempering and AIS sampler tests.

- :func:`mcse_z_test`: Monte Carlo standard-error z-tests of posterior means (ArviZ MCSE over
  >= 4 chains), Bonferroni-corrected so that the whole family fails with probability <= alpha
  when the sampler is correct;
- :func:`invariance_pvalues` / :func:`assert_invariant`: the one-step invariance test: exact
  draws from a Gaussian target, one transition, KS tests of every whitened coordinate against
  N(0, 1) and of the squared radius against chi-square(d), Bonferroni-corrected.

Targets: :func:`gaussian`, and the conjugate Beta-Bernoulli posterior through a ParameterSpace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor

from samplers.diagnostics import mcse
from samplers.samples import Samples
from samplers.space import Interval, ParameterSpace
from tests.stats import z_test_mean

DTYPE = torch.float64


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run a test on one intra-op thread, then restore the setting.

    The targets here are tiny: with two threads on a busy 2-core machine, MKL's threading of
    small matmuls and solves costs milliseconds per call (oversubscription) for no gain.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def gaussian(mean: Tensor, cov: Tensor) -> tuple[Any, Tensor]:
    """``log N(x; mean, cov)`` up to a constant for x (chains, d), and the Cholesky factor."""
    chol = torch.linalg.cholesky(cov)

    def logp(x: Tensor) -> Tensor:
        z = torch.linalg.solve_triangular(chol, (x - mean).mT, upper=False)
        return -0.5 * (z**2).sum(0)

    return logp, chol


def correlated_cov(d: int, rho: float, scales: Tensor) -> Tensor:
    """Equicorrelated covariance with correlation ``rho`` and the given marginal scales."""
    corr = torch.full((d, d), rho, dtype=DTYPE)
    corr.fill_diagonal_(1.0)
    return corr * scales[:, None] * scales[None, :]


def exact_draws(mean: Tensor, chol: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` exact draws (n, d) from N(mean, chol chol^T)."""
    z = torch.randn(n, mean.shape[0], generator=generator, dtype=DTYPE)
    return mean + z @ chol.T


def invariance_pvalues(x: Tensor, mean: Tensor, chol: Tensor) -> list[float]:
    """KS p-values of whitened coordinates vs N(0,1) and of the squared radius vs chi2(d)."""
    z = torch.linalg.solve_triangular(chol, (x - mean).mT, upper=False).mT.numpy()
    d = z.shape[1]
    ps = [float(stats.kstest(z[:, i], "norm").pvalue) for i in range(d)]
    ps.append(float(stats.kstest((z**2).sum(1), "chi2", args=(d,)).pvalue))
    return ps


def assert_invariant(x: Tensor, mean: Tensor, chol: Tensor, alpha: float) -> float:
    """Assert the one-step invariance test passes at family-wise level ``alpha``; min p."""
    ps = invariance_pvalues(x, mean, chol)
    limit = alpha / len(ps)
    assert min(ps) > limit, f"invariance rejected: p-values {ps} (Bonferroni limit {limit:.2g})"
    return min(ps)


def mcse_z_test(
    draws: Tensor, truth: Tensor, alpha: float, second_truth: Tensor | None = None
) -> float:
    """z-test of every coordinate's mean (and of E[x^2] if given) with ArviZ's MCSE.

    ``draws`` is (chains, draws, d), ``truth`` (d,). Returns the largest |z|. The family-wise
    false-failure rate is ``alpha`` (Bonferroni over the coordinates and moments tested).
    """
    assert draws.shape[0] >= 4, "the MCSE z-test needs >= 4 chains"
    variables = {"m1": draws}
    truths = {"m1": truth}
    if second_truth is not None:
        variables["m2"] = draws**2
        truths["m2"] = second_truth
    s = Samples(variables)
    se = mcse(s)
    n_tests = sum(int(t.numel()) for t in truths.values())
    worst = 0.0
    for name, t in truths.items():
        est = draws_mean(variables[name])
        for i in range(t.numel()):
            z = z_test_mean(float(est[i]), float(t[i]), float(np.asarray(se[name])[i]),
                            alpha=alpha / n_tests)
            worst = max(worst, z)
    return worst


def draws_mean(draws: Tensor) -> Tensor:
    """Mean over chains and draws, (d,)."""
    return draws.mean((0, 1))


# Conjugate Beta-Bernoulli: theta ~ Beta(a, b), y_i ~ Bernoulli(theta) -------------------------
BETA_A, BETA_B = 2.0, 3.0
BERNOULLI_Y = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0], dtype=DTYPE)


def beta_bernoulli() -> tuple[Any, ParameterSpace, float, float]:
    """(log density on the unconstrained line, space, posterior mean, posterior E[theta^2])."""
    space = ParameterSpace({"theta": Interval(0.0, 1.0)})
    k, n = float(BERNOULLI_Y.sum()), BERNOULLI_Y.numel()

    def joint(v: dict[str, Tensor]) -> Tensor:
        th = v["theta"]
        return (BETA_A - 1 + k) * torch.log(th) + (BETA_B - 1 + n - k) * torch.log1p(-th)

    a, b = BETA_A + k, BETA_B + n - k
    mean = a / (a + b)
    second = a * (a + 1) / ((a + b) * (a + b + 1))
    return space.wrap(joint), space, mean, second


def bonferroni_limit(alpha: float, m: int) -> float:
    """Two-sided z limit for ``m`` tests at family-wise level ``alpha``."""
    return float(stats.norm.isf(alpha / (2 * m)))


__all__ = [
    "DTYPE",
    "assert_invariant",
    "beta_bernoulli",
    "bonferroni_limit",
    "correlated_cov",
    "exact_draws",
    "gaussian",
    "invariance_pvalues",
    "mcse_z_test",
    "single_thread",
]
