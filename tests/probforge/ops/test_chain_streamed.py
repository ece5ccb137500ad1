"""chain_log_partition_streamed against chain_log_partition, and the vectorisable exp it uses.

The streamed path must equal the whole-tensor path on the same potentials (deterministic: only
float rounding differs), fall back to it exactly where the scaled recursion does not apply, and
keep its error messages. Cases meant to run the fused kernel replace the fallback by a function
that fails, so a silent fallback cannot make them pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.chain import chain_log_partition, chain_log_partition_streamed
from probforge.ops.chain import native as chain_native
from probforge.ops.chain import streamed as streamed_module
from probforge.ops.random import make_generator

pytestmark = pytest.mark.skipif(not chain_native.available(), reason="numba not installed")


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the streamed kernel fell back to chain_log_partition")

    monkeypatch.setattr(streamed_module, "chain_log_partition", fail)


def _case(B: int, T: int, K: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    gen = make_generator(seed)
    unary = torch.randn(B, T, K, generator=gen, dtype=dtype) * 3
    pair = torch.randn(K, K, generator=gen, dtype=dtype).log_softmax(-1)
    unary[0, T // 2, : K // 2] = -math.inf  # forbidden states and a forbidden transition
    pair[1, 2] = -math.inf
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T
    return unary, pair, lengths


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("B, T, K", [(3, 200, 16), (40, 90, 64), (36, 60, 16), (2, 1, 16),
                                     (1, 700, 32)])
@pytest.mark.parametrize("ragged", [False, True])
def test_streamed_equals_whole_tensor_path(monkeypatch, dtype, tol, B, T, K, ragged):
    unary, pair, lengths = _case(B, T, K, dtype, seed=B * 1000 + T + K)
    lens = lengths if ragged else None
    expected = chain_log_partition(unary, pair, lens)
    _no_fallback(monkeypatch)
    calls = []

    def unary_fn(t0: int, t1: int) -> torch.Tensor:
        calls.append((t0, t1))
        return unary[:, t0:t1]

    # a small block size forces many blocks, so the carried messages are exercised
    got = chain_log_partition_streamed(unary_fn, pair, B, T, lens, chunk_elements=B * K * 16)
    assert got.dtype == dtype and got.shape == (B,)
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol * 10)
    assert [c[0] for c in calls] == list(range(0, T, 16))  # consecutive blocks, each once


def test_few_states_and_parallel_take_the_whole_tensor_path(monkeypatch):
    def fail() -> None:
        raise AssertionError("the fused kernel ran where the whole-tensor path should")

    monkeypatch.setattr(streamed_module, "_kernel", fail)
    unary, pair, _ = _case(4, 30, 4, torch.float64, seed=1)
    got = chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 4, 30)
    torch.testing.assert_close(got, chain_log_partition(unary, pair), rtol=1e-12, atol=0)
    unary, pair, _ = _case(4, 30, 16, torch.float64, seed=2)
    got = chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 4, 30,
                                       method="parallel")
    torch.testing.assert_close(got, chain_log_partition(unary, pair), rtol=1e-12, atol=0)


def test_zero_probability_sequence_is_minus_inf_not_nan():
    unary, pair, _ = _case(5, 60, 16, torch.float64, seed=3)
    unary[2, 40] = -math.inf  # every state forbidden at one step of sequence 2
    got = chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 5, 60)
    expected = chain_log_partition(unary, pair)
    assert got[2] == -math.inf and torch.isfinite(got[[0, 1, 3, 4]]).all()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_extreme_potentials_stay_exact(monkeypatch):
    # normalisers far below float64's range: the per-step max shift keeps them representable
    unary, pair, _ = _case(3, 400, 16, torch.float64, seed=4)
    unary = unary * 200 - 5000
    expected = chain_log_partition(unary, pair)
    _no_fallback(monkeypatch)
    got = chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 3, 400)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_invalid_potentials_keep_their_errors():
    unary, pair, lengths = _case(3, 50, 16, torch.float64, seed=5)
    bad = unary.clone()
    bad[1, 20, 3] = math.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        chain_log_partition_streamed(lambda a, b: bad[:, a:b], pair, 3, 50)
    lengths[1] = 10  # ... unless the NaN is in padding, which is never read
    torch.testing.assert_close(
        chain_log_partition_streamed(lambda a, b: bad[:, a:b], pair, 3, 50, lengths),
        chain_log_partition(unary, pair, lengths), rtol=1e-12, atol=0)
    with pytest.raises(ShapeError, match="unary_fn"):
        chain_log_partition_streamed(lambda a, b: unary[:, a:b, :8], pair, 3, 50)
    # a later block of another dtype (the first block's dtype is checked by the fallback)
    with pytest.raises(DtypeMismatchError, match=r"unary_fn\(16, 32\)"):
        chain_log_partition_streamed(
            lambda a, b: unary[:, a:b] if a == 0 else unary[:, a:b].float(), pair, 3, 50,
            chunk_elements=3 * 16 * 16)
    for bad in (math.nan, math.inf):  # a NaN / +inf transition is an error, not a number
        bad_pair = pair.clone()
        bad_pair[2, 5] = bad
        with pytest.raises(NonFiniteError):
            chain_log_partition_streamed(lambda a, b: unary[:, a:b], bad_pair, 3, 50)
    with pytest.raises(ValidationError, match="method"):
        chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 3, 50, method="bogus")
    for bad_lengths in (torch.tensor([50, 0, 3]), torch.tensor([50, 51, 3])):
        with pytest.raises(ValidationError, match=r"lengths\[1\]"):
            chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 3, 50, bad_lengths)
    with pytest.raises(ShapeError, match="lengths"):
        chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 3, 50, torch.tensor([5]))


def test_gradient_requests_take_the_differentiable_path():
    unary, pair, _ = _case(2, 40, 16, torch.float64, seed=6)
    pair = pair.clone().requires_grad_(True)
    got = chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 2, 40)
    assert got.requires_grad
    (g,) = torch.autograd.grad(got.sum(), pair)
    pair_ref = pair.detach().clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(chain_log_partition(unary, pair_ref).sum(), pair_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


def _exp_kernel_applied(x: np.ndarray) -> np.ndarray:
    """``exp_nonpositive_of`` (exp_nonpositive / exp_nonpositive32 by dtype) on each entry."""
    numba = pytest.importorskip("numba")
    from probforge.ops._exp_kernel import exp_nonpositive_of

    @numba.njit
    def apply(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = exp_nonpositive_of(x[i])
        return out

    return apply(x)


def test_invalid_potentials_in_later_blocks_are_found_by_the_kernel(monkeypatch):
    # the kernel flags rows holding NaN / +inf (no separate pass over each block); the checked
    # path then names them, and padding is still never read
    unary, pair, lengths = _case(3, 50, 16, torch.float64, seed=8)
    small = 3 * 16 * 16  # blocks of 16 steps: the bad entries sit in the third block
    for bad_value, match in ((math.nan, "NaN"), (math.inf, "inf")):
        bad = unary.clone()
        bad[2, 40, 7] = bad_value
        with pytest.raises(NonFiniteError, match=match):
            chain_log_partition_streamed(lambda a, b, bad=bad: bad[:, a:b], pair, 3, 50,
                                         chunk_elements=small)
    bad = unary.clone()
    bad[2, 40:, :] = math.nan
    lengths[2] = 40
    expected = chain_log_partition(unary, pair, lengths)
    _no_fallback(monkeypatch)
    got = chain_log_partition_streamed(lambda a, b: bad[:, a:b], pair, 3, 50, lengths,
                                       chunk_elements=small)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_time_major_blocks_equal_batch_major(monkeypatch, dtype, tol):
    unary, pair, lengths = _case(5, 70, 32, dtype, seed=9)
    expected = chain_log_partition(unary, pair, lengths)
    _no_fallback(monkeypatch)
    tm = unary.transpose(0, 1).contiguous()  # (T, B, K)
    for fn in (lambda a, b: tm[a:b], lambda a, b: unary.transpose(0, 1)[a:b]):  # also a view
        got = chain_log_partition_streamed(fn, pair, 5, 70, lengths, time_major=True,
                                           chunk_elements=5 * 32 * 16)
        torch.testing.assert_close(got, expected, rtol=tol, atol=tol * 10)
    monkeypatch.undo()
    with pytest.raises(ShapeError, match=r"\(16, 5, 32\)"):
        chain_log_partition_streamed(lambda a, b: unary[:, a:b], pair, 5, 70, time_major=True,
                                     chunk_elements=5 * 32 * 16)


# (dtype, spread of the normal draws, lower end of the uniform draws, special points, the
# documented cut-off: exactly 0 at and below it, -inf included)
_EXP_CASES = {
    "float64": (np.float64, 30.0, -707.9,
                [0.0, -0.0, -1e-300, -5e-324, -math.log(2) / 2, -math.log(2), -1.0, -707.9],
                [-708.0, -708.1, -745.2, -1e4, -math.inf]),
    "float32": (np.float32, 10.0, -86.99,
                [0.0, -0.0, -1e-30, -1e-45, -math.log(2) / 2, -math.log(2), -1.0, -86.99],
                [-87.0, -87.5, -103.0, -1e4, -math.inf]),
}


@pytest.mark.parametrize("case", sorted(_EXP_CASES))
def test_exp_nonpositive_is_accurate_to_two_ulp(case):
    dtype, spread, low, special, tail = _EXP_CASES[case]
    rng = np.random.default_rng(0)
    x = np.concatenate([-np.abs(rng.standard_normal(20000)) * spread,
                        rng.uniform(low, 0, 20000), special]).astype(dtype)
    got = _exp_kernel_applied(x)
    ref = np.exp(x.astype(np.float64))
    ulp = np.abs(got - ref) / np.spacing(ref.astype(dtype)).astype(np.float64)
    assert ulp.max() <= 2.0, (x[ulp.argmax()], ulp.max())
    assert (_exp_kernel_applied(np.array(tail, dtype=dtype)) == 0.0).all()
