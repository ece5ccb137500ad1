"""Statistical test helpers with stated false-failure rates.

Every helper takes ``alpha``: the probability that the check fails although the sampler is correct
(the test's false-failure rate). With fixed seeds a test is deterministic; ``alpha`` says how
likely a *different* seed would be to fail by chance, and is what makes a tolerance principled.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats


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
