"""The compiled chain kernels (probforge.ops.chain.native) against the torch recursions.

Every public chain function is computed twice on the same inputs, once with the kernels
(``PROBFORGE_NATIVE=1``) and once on the torch path (``PROBFORGE_NATIVE=0``); both paths are
also checked against enumeration by tests/probforge/ops/test_chain.py, which runs on whichever
path is the default. Deterministic: no statistical tolerance, only float rounding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from probforge.errors import ZeroProbabilityEvidence
from probforge.ops.chain import (
    chain_forward,
    chain_log_partition,
    chain_marginals,
    chain_sample,
    chain_viterbi,
)
from probforge.ops.chain import native as chain_native
from probforge.ops.random import make_generator

pytestmark = pytest.mark.skipif(not chain_native.available(), reason="numba not installed")

F64 = torch.float64


def _both(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], object]) -> tuple[object, object]:
    monkeypatch.setenv("PROBFORGE_NATIVE", "1")
    native = fn()
    monkeypatch.setenv("PROBFORGE_NATIVE", "0")
    ref = fn()
    monkeypatch.setenv("PROBFORGE_NATIVE", "1")
    return native, ref


def _inputs(
    dtype: torch.dtype, pair_kind: str, seed: int, K: int = 4
) -> tuple[torch.Tensor, ...]:
    gen = make_generator(seed)
    B, T = 6, 11
    unary = torch.randn(B, T, K, generator=gen, dtype=dtype) * 2
    unary[1, 3, 2] = -math.inf  # forbidden states and transitions
    unary[4, 0, :2] = -math.inf
    shapes = {"shared": (K, K), "per_step": (T - 1, K, K), "per_sequence": (B, 1, K, K),
              "full": (B, T - 1, K, K)}
    pair = torch.randn(*shapes[pair_kind], generator=gen, dtype=dtype)
    pair[..., 0, 3] = -math.inf
    lengths = torch.tensor([11, 5, 1, 7, 2, 11])
    return unary, pair, lengths


def test_enabled_follows_device_dtype_grad_and_environment(monkeypatch):
    x = torch.zeros(2, 3, dtype=F64)
    monkeypatch.setenv("PROBFORGE_NATIVE", "1")
    assert chain_native.enabled(x)
    assert not chain_native.enabled(x.to(torch.float16))
    assert not chain_native.enabled(x.requires_grad_())
    assert chain_native.enabled(x, autograd=True)
    with torch.no_grad():
        assert chain_native.enabled(x)
    monkeypatch.setenv("PROBFORGE_NATIVE", "0")
    assert not chain_native.enabled(torch.zeros(2, 3))


@pytest.mark.parametrize(
    ("dtype", "pair_kind", "K"),
    [*itertools.product([F64, torch.float32], ["shared", "per_step", "per_sequence", "full"],
                        [4]),
     # K >= 16: the Viterbi kernel's vectorised (maxnum) branches: max-reductions by rows
     # (float64; float32 below 32 states) and the row-broadcast loop (float32 from 32 on)
     *itertools.product([F64, torch.float32], ["shared", "full"], [19, 33])],
)
def test_kernels_equal_torch_recursions(monkeypatch, dtype, pair_kind, K):
    unary, pair, lengths = _inputs(dtype, pair_kind, 3, K)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == F64 else {"rtol": 2e-5, "atol": 2e-6}
    for fn in (
        lambda: chain_log_partition(unary, pair, lengths),
        lambda: chain_marginals(unary, pair, lengths).unary,
        lambda: chain_marginals(unary, pair, lengths).pair,
        lambda: chain_marginals(unary, pair, lengths, pairwise="sum").pair,
        lambda: chain_forward(unary, pair, lengths),
        lambda: chain_viterbi(unary, pair, lengths).score,
    ):
        got, want = _both(monkeypatch, fn)
        torch.testing.assert_close(got, want, **tol)
    got_p, want_p = _both(monkeypatch, lambda: chain_viterbi(unary, pair, lengths).path)
    assert torch.equal(got_p, want_p)  # type: ignore[arg-type]


@pytest.mark.parametrize("pair_kind", ["shared", "full"])
def test_gradient_of_log_z_equal_torch(monkeypatch, pair_kind):
    unary, pair, lengths = _inputs(F64, pair_kind, 5)

    def grads() -> tuple[torch.Tensor, torch.Tensor]:
        u = unary.clone().requires_grad_()
        p = pair.clone().requires_grad_()
        w = torch.linspace(0.5, 2.0, 6, dtype=F64)
        (chain_log_partition(u, p, lengths) * w).sum().backward()
        assert u.grad is not None and p.grad is not None
        return u.grad, p.grad

    got, want = _both(monkeypatch, grads)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)  # type: ignore[arg-type]


# K = 17 in float64: the kernel's per-state max-reduction branch and its backtrack search
@pytest.mark.parametrize(("K", "dtype"), [(5, F64), (17, F64), (17, torch.float32)])
def test_viterbi_ties_take_the_lowest_state(monkeypatch, K, dtype):
    # all paths tie: the torch path's argmax picks state 0 everywhere, and so must the kernel
    unary = torch.zeros(3, 7, K, dtype=dtype)
    pair = torch.zeros(K, K, dtype=dtype)
    got, want = _both(monkeypatch, lambda: chain_viterbi(unary, pair).path)
    assert torch.equal(got, want)  # type: ignore[arg-type]
    assert torch.equal(got, torch.zeros(3, 7, dtype=torch.long))  # type: ignore[arg-type]
    # ties among later states only: the lowest of them
    unary[:, :, :3] = -math.inf
    got, want = _both(monkeypatch, lambda: chain_viterbi(unary, pair).path)
    assert torch.equal(got, want)  # type: ignore[arg-type]
    assert torch.equal(got, torch.full((3, 7), 3))  # type: ignore[arg-type]


def test_underflowing_scaled_recursion_falls_back_exactly(monkeypatch):
    # normalisers below tiny/eps: the scaled recursion is not exact and the log-space one is used
    gen = make_generator(9)
    unary = torch.randn(2, 30, 3, generator=gen, dtype=F64)
    unary[:, 5:, 1] = -2000.0
    pair = torch.log(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0]], dtype=F64))
    for fn in (lambda: chain_log_partition(unary, pair),
               lambda: chain_marginals(unary, pair).unary):
        got, want = _both(monkeypatch, fn)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [2, 17])
def test_infeasible_sequence_is_reported_by_both_paths(monkeypatch, K):
    unary = torch.zeros(3, 4, K, dtype=F64)
    unary[2, 2] = -math.inf
    pair = torch.zeros(K, K, dtype=F64)
    for native in ("1", "0"):
        monkeypatch.setenv("PROBFORGE_NATIVE", native)
        assert chain_log_partition(unary, pair)[2] == -math.inf
        with pytest.raises(ZeroProbabilityEvidence, match=r"sequence \[2\]"):
            chain_viterbi(unary, pair)
        with pytest.raises(ZeroProbabilityEvidence, match=r"sequence \[2\]"):
            chain_marginals(unary, pair)


def test_padding_may_hold_nan_and_long_chain_stays_finite(monkeypatch):
    gen = make_generator(11)
    unary = torch.randn(2, 50_000, 3, generator=gen, dtype=torch.float32)
    unary[0, 40_000:] = float("nan")
    pair = torch.randn(3, 3, generator=gen, dtype=torch.float32)
    lengths = torch.tensor([40_000, 50_000])
    got, want = _both(monkeypatch, lambda: chain_log_partition(unary, pair, lengths))
    assert bool(torch.isfinite(got).all())  # type: ignore[arg-type]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    path, ref = _both(monkeypatch, lambda: chain_viterbi(unary, pair, lengths).path)
    assert torch.equal(path, ref)  # type: ignore[arg-type]


def test_sampling_is_unchanged_by_the_kernels(monkeypatch):
    unary, pair, lengths = _inputs(F64, "shared", 13)
    got, want = _both(monkeypatch, lambda: chain_sample(
        unary, pair, lengths, num_samples=4, generator=make_generator(2)))
    assert torch.equal(got, want)  # type: ignore[arg-type]
