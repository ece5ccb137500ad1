"""chain_log_partition_indexed against chain_log_partition on the gathered potentials.

Deterministic: only float rounding differs. Cases meant to run the compiled kernel replace the
fallback by a function that fails, so a silent fallback cannot make them pass.
"""

from __future__ import annotations

import math

import pytest
import torch

from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.chain import chain_log_partition, chain_log_partition_indexed
from probforge.ops.chain import indexed as indexed_module
from probforge.ops.chain import native as chain_native
from probforge.ops.random import make_generator

pytestmark = pytest.mark.skipif(not chain_native.available(), reason="numba not installed")


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the indexed kernel fell back to chain_log_partition")

    monkeypatch.setattr(indexed_module, "chain_log_partition", fail)


def _case(B: int, T: int, K: int, M: int, dtype: torch.dtype, seed: int):
    gen = make_generator(seed)
    table = torch.randn(M, K, generator=gen, dtype=dtype) * 3
    table[1, : K // 2] = -math.inf  # symbol 1 impossible in half the states
    pair = torch.randn(K, K, generator=gen, dtype=dtype).log_softmax(-1)
    pair[2, 3] = -math.inf
    initial = torch.randn(K, generator=gen, dtype=dtype).log_softmax(-1)
    index = torch.randint(0, M, (B, T), generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T
    return table, index, pair, initial, lengths


def _reference(table, index, pair, initial, lengths):
    unary = table[index.clamp(0, table.shape[0] - 1)]
    if initial is not None:
        unary[:, 0] += initial
    return chain_log_partition(unary, pair, lengths)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("B, T, K", [(3, 200, 16), (40, 90, 64), (36, 60, 16), (2, 1, 16)])
@pytest.mark.parametrize("ragged", [False, True])
def test_indexed_equals_gathered_potentials(monkeypatch, dtype, tol, B, T, K, ragged):
    table, index, pair, initial, lengths = _case(B, T, K, 7, dtype, seed=B * 100 + T + K)
    lens = lengths if ragged else None
    if ragged:  # padding may hold anything, even symbols out of range
        index = torch.where(torch.arange(T) < lengths[:, None], index, -5)
    expected = _reference(table, index, pair, initial, lens)
    _no_fallback(monkeypatch)
    got = chain_log_partition_indexed(table, index, pair, lens, initial=initial)
    assert got.dtype == dtype and got.shape == (B,)
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol * 10)
    got = chain_log_partition_indexed(table, index, pair, lens)  # no initial term
    torch.testing.assert_close(got, _reference(table, index, pair, None, lens), rtol=tol,
                               atol=tol * 10)


def test_few_states_parallel_and_gradients_take_the_whole_tensor_path():
    table, index, pair, initial, lengths = _case(4, 30, 4, 5, torch.float64, seed=1)
    got = chain_log_partition_indexed(table, index, pair, lengths, initial=initial)
    torch.testing.assert_close(got, _reference(table, index, pair, initial, lengths),
                               rtol=1e-12, atol=0)
    table, index, pair, initial, lengths = _case(4, 30, 16, 5, torch.float64, seed=2)
    got = chain_log_partition_indexed(table, index, pair, lengths, initial=initial,
                                      method="parallel")
    torch.testing.assert_close(got, _reference(table, index, pair, initial, lengths),
                               rtol=1e-12, atol=0)
    t = table.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(chain_log_partition_indexed(t, index, pair).sum(), t)
    t_ref = table.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(_reference(t_ref, index, pair, None, None).sum(), t_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


def test_zero_probability_sequence_is_minus_inf_not_nan():
    table, index, pair, initial, _ = _case(5, 60, 16, 6, torch.float64, seed=3)
    table[5] = -math.inf  # a symbol that no state emits
    index[index == 5] = 0
    index[2, 40] = 5
    got = chain_log_partition_indexed(table, index, pair, initial=initial)
    assert got[2] == -math.inf and torch.isfinite(got[[0, 1, 3, 4]]).all()
    torch.testing.assert_close(got, _reference(table, index, pair, initial, None),
                               rtol=1e-12, atol=0)


def test_bad_inputs_get_named_errors():
    table, index, pair, initial, _ = _case(3, 50, 16, 6, torch.float64, seed=4)
    bad = index.clone()
    bad[1, 7] = 6
    with pytest.raises(ValidationError, match=r"sequence 1, step 7"):
        chain_log_partition_indexed(table, bad, pair)
    bad[1, 7] = -1
    with pytest.raises(ValidationError, match=r"sequence 1, step 7"):
        chain_log_partition_indexed(table, bad, pair)
    with pytest.raises(ShapeError, match="index"):
        chain_log_partition_indexed(table, index.double(), pair)
    with pytest.raises(ShapeError, match="table and pair"):
        chain_log_partition_indexed(table, index, pair[:8, :8])
    with pytest.raises(ShapeError, match="initial"):
        chain_log_partition_indexed(table, index, pair, initial=initial[:3])
    with pytest.raises(DtypeMismatchError, match="pair"):
        chain_log_partition_indexed(table, index, pair.float())
    with pytest.raises(ValidationError, match=r"lengths\[1\]"):
        chain_log_partition_indexed(table, index, pair, torch.tensor([50, 0, 3]))
    with pytest.raises(ValidationError, match="method"):
        chain_log_partition_indexed(table, index, pair, method="bogus")
    for value in (math.nan, math.inf):  # in a row that is used: the checked path's error
        t = table.clone()
        t[int(index[0, 3]), 2] = value
        with pytest.raises(NonFiniteError):
            chain_log_partition_indexed(t, index, pair)
        p = pair.clone()
        p[4, 4] = value
        with pytest.raises(NonFiniteError):
            chain_log_partition_indexed(table, index, p)
    # a NaN in a row no real step uses is never read
    t = table.clone()
    t[5] = math.nan
    idx = torch.where(index == 5, 0, index)
    torch.testing.assert_close(chain_log_partition_indexed(t, idx, pair),
                               _reference(table, idx, pair, None, None), rtol=1e-12, atol=0)
