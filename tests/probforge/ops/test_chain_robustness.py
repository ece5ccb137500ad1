"""The chain core's public functions on bad and edge inputs (issue 21).

Every call gives a named probforge error or a NaN-free answer, and where an answer comes back it
is checked against enumeration of all ``K^T`` paths (small chains only).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probforge.errors import DtypeMismatchError, ValidationError
from probforge.ops.chain import (
    chain_backward,
    chain_entropy,
    chain_forward,
    chain_kbest,
    chain_log_partition,
    chain_log_partition_indexed,
    chain_log_partition_streamed,
    chain_marginals,
    chain_sample,
    chain_viterbi,
    choose_method,
)
from probforge.ops.random import make_generator
from tests.robustness import outcome

F64 = torch.float64


def _brute(u: torch.Tensor, p: torch.Tensor, n: int) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Scores of the K^n paths of one chain: u (T, K), p (T-1, K, K)."""
    K = u.shape[-1]
    paths = list(itertools.product(range(K), repeat=n))
    scores = [u[range(n), list(y)].sum() + sum(p[t, y[t], y[t + 1]] for t in range(n - 1))
              for y in paths]
    return torch.stack([torch.as_tensor(s, dtype=u.dtype) for s in scores]), paths


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> None:
    # torch.allclose, not torch.testing.assert_close: the latter imports torch.distributed
    # (seconds) on first use
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a, b)


@st.composite
def chains(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    """A batch of small chains, sometimes broken: NaN / +inf entries, bad lengths."""
    B = draw(st.integers(0, 2))
    T = draw(st.integers(0, 3))
    K = draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    unary = torch.randn(B, T, K, generator=g, dtype=F64)
    pair = torch.randn(K, K, generator=g, dtype=F64)
    if draw(st.booleans()) and unary.numel():  # forbidden states
        unary = torch.where(torch.rand(unary.shape, generator=g) < 0.2, -math.inf, unary)
    if draw(st.booleans()) and pair.numel():
        pair = torch.where(torch.rand(pair.shape, generator=g) < 0.2, -math.inf, pair)
    bad = draw(st.sampled_from([None, None, None, "nan", "inf"]))
    where = None
    if bad and unary.numel():
        where = (draw(st.integers(0, B - 1)), draw(st.integers(0, T - 1)),
                 draw(st.integers(0, K - 1)))
        unary[where] = math.nan if bad == "nan" else math.inf
    lengths = None
    kind = draw(st.sampled_from(["none", "valid", "zero", "long", "bool", "float"]))
    if kind == "valid" and T >= 1:
        lengths = torch.tensor([draw(st.integers(1, T)) for _ in range(B)], dtype=torch.long)
    elif kind == "zero":
        lengths = torch.zeros(B, dtype=torch.long)
    elif kind == "long":
        lengths = torch.full((B,), T + 1, dtype=torch.long)
    elif kind == "bool":
        lengths = torch.ones(B, dtype=torch.bool)
    elif kind == "float":
        lengths = torch.full((B,), float(max(T, 1)))
    # the rules: T >= 1; lengths an integer tensor in 1..T; no NaN / +inf at a real step
    # (padded steps may hold anything)
    bad_real = where is not None and (lengths is None or kind != "valid"
                                      or where[1] < int(lengths[where[0]]))
    error = (T == 0 or kind in ("bool", "float") or (kind in ("zero", "long") and B > 0)
             or bad_real)
    return {"unary": unary, "pair": pair, "lengths": lengths, "error": error}


def _check_against_brute(c: dict, log_z: torch.Tensor) -> None:  # type: ignore[type-arg]
    unary, pair, lengths = c["unary"], c["pair"], c["lengths"]
    B, T, _ = unary.shape
    for b in range(B):
        n = T if lengths is None else int(lengths[b])
        p = pair.expand(max(T - 1, 0), *pair.shape)
        scores, _ = _brute(unary[b], p, n)
        _close(log_z[b], torch.logsumexp(scores, 0))


@given(chains())
@settings(max_examples=25)
def test_log_partition_forward_backward(c: dict) -> None:  # type: ignore[type-arg]
    args = (c["unary"], c["pair"], c["lengths"])
    res = outcome(chain_log_partition, *args, allow_inf=True)
    assert res.kind == ("error" if c["error"] else "value")
    if res.kind == "value":
        _check_against_brute(c, res.value)
    for fn in (chain_forward, chain_backward):
        assert outcome(fn, *args, allow_inf=True).kind == res.kind


@given(chains(), st.sampled_from(["auto", "sequential", "parallel"]))
@settings(max_examples=25)
def test_posterior_queries(c: dict, method: str) -> None:  # type: ignore[type-arg]
    args = (c["unary"], c["pair"], c["lengths"])
    feasible = c["error"] or bool((chain_log_partition(*args) > -math.inf).all())
    m = outcome(chain_marginals, *args, method=method)
    # an infeasible sequence (every path -inf) is ZeroProbabilityEvidence, never NaN
    assert m.kind == ("error" if c["error"] or not feasible else "value")
    if m.kind == "value":
        B, T, _ = c["unary"].shape
        lengths = c["lengths"] if c["lengths"] is not None else torch.full((B,), T)
        valid = torch.arange(T) < lengths[:, None]
        sums = m.value.unary.sum(-1)
        _close(sums, valid.to(F64))
        _check_against_brute(c, m.value.log_z)
    v = outcome(chain_viterbi, *args, method=method)
    assert v.kind == m.kind  # both need a posterior: the same inputs fail the same way
    if v.kind == "value":
        for b in range(c["unary"].shape[0]):
            n = int(valid[b].sum())
            p = c["pair"].expand(max(c["unary"].shape[1] - 1, 0), *c["pair"].shape)
            scores, _ = _brute(c["unary"][b], p, n)
            _close(v.value.score[b], scores.max())
    for fn, kw in ((chain_entropy, {}), (chain_sample, {"generator": make_generator(0)}),
                   (chain_kbest, {"k": 2})):
        if fn is chain_kbest:
            out = outcome(fn, c["unary"], c["pair"], 2, c["lengths"], allow_inf=True)
        else:
            out = outcome(fn, *args, **kw)
        if c["error"]:
            assert out.kind == "error"


@given(st.sampled_from([True, 1.5, "2", -1, None]))
@settings(max_examples=10)
def test_counts_are_checked_ints(bad: object) -> None:
    u = torch.zeros(3, 2, dtype=F64)
    p = torch.zeros(2, 2, dtype=F64)
    assert outcome(chain_kbest, u, p, bad).kind == "error"
    assert outcome(chain_sample, u, p, num_samples=bad).kind == "error"
    assert outcome(choose_method, bad, 10, 4).kind == "error"
    assert outcome(chain_log_partition_streamed, lambda a, b: u[None, a:b], p, bad, 3
                   ).kind == "error"


def test_arguments_of_the_wrong_kind_are_named() -> None:
    u = torch.zeros(3, 2, dtype=F64)
    p = torch.zeros(2, 2, dtype=F64)
    with pytest.raises(ValidationError, match="pairwise"):  # was silently read as True
        chain_marginals(u, p, pairwise="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="lengths"):  # True is not a length of 1
        chain_log_partition(u[None], p, torch.tensor([True]))
    with pytest.raises(ValidationError, match="unary"):  # was AttributeError
        chain_log_partition(u.tolist(), p)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="table"):  # was AttributeError
        chain_log_partition_indexed(u.tolist(), torch.zeros(1, 3, dtype=torch.long),  # type: ignore[arg-type]
                                    p)
    with pytest.raises(ValidationError, match="batch_size"):  # 2.7 was truncated to 2
        chain_log_partition_streamed(lambda a, b: u[None, a:b], p, 2.7, 3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="n_steps"):
        chain_log_partition_streamed(lambda a, b: u[None, a:b], p, 1, 0)
    with pytest.raises(ValidationError, match="semiring"):
        choose_method(1, 10, 4, semiring="sample")
    with pytest.raises(DtypeMismatchError):
        chain_log_partition(u.long(), p.long())


def test_empty_batch_has_empty_answers() -> None:
    u = torch.zeros(0, 3, 2, dtype=F64)
    p = torch.zeros(2, 2, dtype=F64)
    assert chain_log_partition(u, p).shape == (0,)
    assert chain_marginals(u, p).unary.shape == (0, 3, 2)
    assert chain_viterbi(u, p).path.shape == (0, 3)
    assert chain_kbest(u, p, 2).path.shape == (0, 2, 3)
    assert chain_sample(u, p, num_samples=2).shape == (2, 0, 3)
    assert chain_entropy(u, p).shape == (0,)


def test_kbest_with_a_huge_k_is_refused_before_allocating() -> None:
    from probforge.errors import MemoryBudgetExceeded
    from probforge.ops.chain import chain_kbest

    unary = torch.zeros(2, 50, 4, dtype=torch.float64)
    with pytest.raises(MemoryBudgetExceeded, match="best paths need about"):
        chain_kbest(unary, torch.zeros(4, 4, dtype=torch.float64), 10**9)
    top = chain_kbest(unary, torch.zeros(4, 4, dtype=torch.float64), 3)
    assert top.path.shape == (2, 3, 50)
