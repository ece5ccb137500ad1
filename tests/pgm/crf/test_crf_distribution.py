"""LinearChainCRFDistribution against enumeration of every tag sequence, the layer, and Pyro."""

from __future__ import annotations

import itertools
import math

import pyro
import pytest
import torch

from pgm.crf import LinearChainCRF
from pgm.crf.distribution import LinearChainCRFDistribution
from probforge.errors import ShapeError
from probforge.ops import make_generator
from tests.stats import chi_square_gof

F64 = torch.float64
T, K = 4, 3


def _model() -> LinearChainCRFDistribution:
    g = make_generator(0)
    unary = torch.randn(2, T, K, generator=g, dtype=F64)
    pair = torch.randn(K, K, generator=g, dtype=F64)
    pair[0, 2] = -math.inf  # a forbidden transition
    return LinearChainCRFDistribution(unary, pair, torch.tensor([4, 2]))


def _paths(length: int) -> torch.Tensor:
    """Every tag sequence of ``length`` steps, padded with -1 to T."""
    rows = [list(p) + [-1] * (T - length) for p in itertools.product(range(K), repeat=length)]
    return torch.tensor(rows)


def _brute(d: LinearChainCRFDistribution, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paths and their log-probabilities by enumeration of the unnormalised scores."""
    assert d.lengths is not None
    length = int(d.lengths[b])
    paths = _paths(length)
    scores = []
    for p in paths.tolist():
        s = sum(float(d.unary[b, t, p[t]]) for t in range(length))
        s += sum(float(d.pair[p[t], p[t + 1]]) for t in range(length - 1))
        scores.append(s)
    lp = torch.tensor(scores, dtype=F64)
    return paths, lp - torch.logsumexp(lp, 0)


def test_log_prob_entropy_mode_equal_enumeration() -> None:
    d = _model()
    for b in range(2):
        paths, ref = _brute(d, b)
        # the batch element b of the distribution, every path at once
        one = LinearChainCRFDistribution(d.unary[b], d.pair, d.lengths[b])  # type: ignore[index]
        got = one.log_prob(paths)
        assert torch.allclose(got, ref, atol=1e-10, rtol=0)
        assert math.isclose(float(torch.logsumexp(got, 0)), 0.0, abs_tol=1e-10)
        finite = torch.isfinite(ref)
        entropy = -(ref[finite].exp() * ref[finite]).sum()
        assert math.isclose(float(d.entropy()[b]), float(entropy), abs_tol=1e-10)
        assert torch.equal(d.mode[b], paths[int(ref.argmax())])


def test_equals_the_layer_log_prob() -> None:
    g = make_generator(3)
    crf = LinearChainCRF(K, init_scale=1.0, generator=g, dtype=F64)
    emissions = torch.randn(2, T, K, generator=g, dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    d = LinearChainCRFDistribution.from_crf(crf, emissions, mask)
    padded = torch.where(mask, tags, torch.full_like(tags, -1))
    assert torch.allclose(d.log_prob(padded), crf.log_prob(emissions, tags, mask), atol=1e-12)


def test_samples_follow_the_distribution() -> None:
    # chi-square test at alpha = 1e-4: false-failure rate 1e-4 (fixed generator).
    d = _model()
    draws = d.sample((6000,), generator=make_generator(5))
    assert draws.shape == (6000, 2, T)
    paths, ref = _brute(d, 1)
    codes = {tuple(p): i for i, p in enumerate(paths.tolist())}
    counts = torch.zeros(len(paths))
    for row in draws[:, 1].tolist():
        counts[codes[tuple(row)]] += 1
    chi_square_gof(counts, ref.exp())
    again = d.sample((6000,), generator=make_generator(5))
    assert torch.equal(draws, again)


def test_pyro_sample_site_scores_the_tags() -> None:
    d = _model()
    tags = d.mode

    def model() -> None:
        pyro.sample("tags", d, obs=tags)

    trace = pyro.poutine.trace(model).get_trace()
    assert math.isclose(float(trace.log_prob_sum()), float(d.log_prob(tags).sum()),
                        rel_tol=1e-12)


def test_shape_errors() -> None:
    with pytest.raises(ShapeError, match="pair"):
        LinearChainCRFDistribution(torch.zeros(4, 3), torch.zeros(2, 2))
    with pytest.raises(ShapeError, match="value"):
        LinearChainCRFDistribution(torch.zeros(4, 3), torch.zeros(3, 3)).log_prob(
            torch.zeros(5, dtype=torch.long))
