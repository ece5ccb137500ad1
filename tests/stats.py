"""Statistical test helpers with stated false-failure rates.

Every helper takes ``alpha``: the probability that the check fails although the sampler is correct
(the test's false-failure rate). With fixed seeds a test is deterministic; ``alpha`` says how
likely a *different* seed would be to fail by chance, and is what makes a tolerance principled.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy import stats


def seed_for(n: int) -> int:
    """A test's fixed seed ``n``, shifted by ``$PROBFORGE_SEED_OFFSET`` (default 0).

    CI runs the fixed seeds; during development run ``PROBFORGE_SEED_OFFSET=k pytest ...`` for
    several ``k`` to check that statistical tests pass at their stated rates for other seeds too
    (no seed hacking).
    """
    return n + int(os.environ.get("PROBFORGE_SEED_OFFSET", "0"))


def chi_square_gof(counts: torch.Tensor, probs: torch.Tensor, alpha: float = 1e-4) -> float:
    """Assert observed ``counts`` fit ``probs`` by Pearson's chi-square test; return the p-value.

    Cells with expected count below 5 are pooled into one cell (the test's usual validity rule);
    cells of probability zero must have no counts at all (checked exactly).
    """
    counts_np = counts.detach().cpu().double().numpy().ravel()
    probs_np = probs.detach().cpu().double().numpy().ravel()
    n = counts_np.sum()
    zero = probs_np == 0
    assert counts_np[zero].sum() == 0, "draws landed on states of probability zero"
    expected = probs_np[~zero] * n
    observed = counts_np[~zero]
    small = expected < 5
    if small.any():
        expected = np.append(expected[~small], expected[small].sum())
        observed = np.append(observed[~small], observed[small].sum())
    if len(expected) < 2:
        return 1.0
    p = float(stats.chisquare(observed, expected).pvalue)
    assert p > alpha, f"chi-square goodness of fit rejected: p = {p:.3g} <= alpha = {alpha}"
    return p


def z_test_mean(
    estimate: float, truth: float, standard_error: float, alpha: float = 1e-4
) -> float:
    """Assert ``|estimate - truth| / standard_error`` is within the two-sided ``alpha`` quantile."""
    z = abs(estimate - truth) / standard_error
    limit = float(stats.norm.isf(alpha / 2))
    assert z < limit, f"z = {z:.2f} >= {limit:.2f} (alpha = {alpha}): {estimate} vs {truth}"
    return z


def _bonferroni_limit(alpha: float, num_tests: int) -> float:
    return float(stats.norm.isf(alpha / (2 * num_tests)))


def ks_test(draws: torch.Tensor, cdf: object, alpha: float = 1e-4) -> float:
    """Assert i.i.d. ``draws`` (any shape, flattened) follow the continuous ``cdf`` by a
    one-sample Kolmogorov-Smirnov test; return the p-value.

    ``cdf`` is a callable on numpy arrays or the name of a scipy.stats distribution given with
    its parameters as ``("norm", loc, scale)``. False-failure rate: ``alpha``.
    """
    x = draws.detach().cpu().double().numpy().ravel()
    if isinstance(cdf, tuple):
        name, *params = cdf
        p = float(stats.kstest(x, name, args=tuple(params)).pvalue)
    else:
        p = float(stats.kstest(x, cdf).pvalue)  # type: ignore[arg-type]
    assert p > alpha, f"Kolmogorov-Smirnov test rejected: p = {p:.3g} <= alpha = {alpha}"
    return p


def mcse_z_test(
    draws: torch.Tensor, truth: float | torch.Tensor, alpha: float = 1e-4, num_tests: int = 1
) -> float:
    """Assert the mean of MCMC ``draws`` (chain, draw) matches ``truth`` within its Monte Carlo
    standard error (ArviZ's ESS-based ``mcse``, which accounts for autocorrelation).

    With ``num_tests > 1`` the two-sided level is Bonferroni-corrected to ``alpha / num_tests`` so
    that a family of tests has false-failure rate at most ``alpha`` (asymptotically in the number
    of draws: the MCSE is itself estimated). Returns ``|z|``. Needs >= 4 chains.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    x = draws.detach().cpu().double().numpy()
    assert x.ndim == 2 and x.shape[0] >= 4, "mcse_z_test needs draws (chain >= 4, draw)"
    se = float(np.asarray(az.mcse(x, method="mean")).reshape(-1)[0])
    est = float(x.mean())
    z = abs(est - float(truth)) / se
    limit = _bonferroni_limit(alpha, num_tests)
    assert z < limit, (f"MCSE z = {z:.2f} >= {limit:.2f} (alpha = {alpha}, {num_tests} tests): "
                       f"{est:.5g} vs {float(truth):.5g}, mcse {se:.3g}")
    return z


def batch_means_z_test(
    draws: torch.Tensor, truth: float | torch.Tensor, alpha: float = 1e-4,
    num_batches: int = 20, num_tests: int = 1,
) -> float:
    """Like :func:`mcse_z_test` with a batch-means standard error: each chain (chain, draw) is cut
    into ``num_batches`` consecutive batches whose means are treated as i.i.d.; the statistic is
    Student-t with ``chains * num_batches - 1`` degrees of freedom. Returns ``|t|``.
    """
    x = draws.detach().cpu().double()
    c, n = x.shape
    b = n // num_batches
    means = x[:, : b * num_batches].reshape(c, num_batches, b).mean(-1).reshape(-1).numpy()
    k = means.size
    se = float(means.std(ddof=1) / np.sqrt(k))
    t = abs(float(means.mean()) - float(truth)) / se
    limit = float(stats.t.isf(alpha / (2 * num_tests), k - 1))
    assert t < limit, f"batch-means t = {t:.2f} >= {limit:.2f} (alpha = {alpha}): " \
                      f"{float(means.mean()):.5g} vs {float(truth):.5g}"
    return t
