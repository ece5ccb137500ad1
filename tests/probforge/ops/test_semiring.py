"""Semiring objects: identities, reductions, selection."""

from __future__ import annotations

import math

import pytest
import torch

from probforge.errors import ValidationError
from probforge.ops import LOG, MAX, SAMPLE, get_semiring, make_generator


def test_identities_and_lookup() -> None:
    for s in (LOG, MAX, SAMPLE):
        assert s.zero == -math.inf and s.one == 0.0
        assert get_semiring(s.name) is s
    with pytest.raises(ValidationError, match="unknown semiring name"):
        get_semiring("tropical")


def test_reduce_and_select() -> None:
    x = torch.log(torch.tensor([[0.1, 0.6], [0.2, 0.1]], dtype=torch.float64))
    assert torch.allclose(LOG.reduce(x, (0, 1)).exp(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(MAX.reduce(x, (1,)).exp(), torch.tensor([0.6, 0.2], dtype=torch.float64))
    assert MAX.select(x).tolist() == [1, 0]
    with pytest.raises(ValidationError, match="no traceback"):
        LOG.select(x)
    logits = torch.log(torch.tensor([0.2, 0.0, 0.8], dtype=torch.float64)).expand(50000, 3)
    draws = SAMPLE.select(logits, make_generator(0))
    freq = torch.bincount(draws, minlength=3).double() / 50000
    assert freq[1] == 0
    # binomial sd of the frequency is 0.0018; 0.01 is 5.6 sd (false-failure rate ~2e-8)
    assert abs(freq[2] - 0.8) < 0.01
