"""Log-space primitives: values against torch/closed forms, finite gradients, gradcheck."""

from __future__ import annotations

import math

import pytest
import torch

from probforge.ops import log1mexp, logaddexp, logmatmulexp, logsumexp, safe_log

NEG_INF = -math.inf


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def test_logsumexp_matches_torch_and_handles_all_neg_inf_rows() -> None:
    x = rand(4, 5)
    x[1] = NEG_INF
    x[2, :3] = NEG_INF
    x.requires_grad_(True)
    y = logsumexp(x, dim=-1)
    assert torch.allclose(y, torch.logsumexp(x.detach(), dim=-1), atol=1e-14)
    assert y[1] == NEG_INF
    y[torch.isfinite(y)].sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[1] == 0).all() and (x.grad[2, :3] == 0).all()
    # gradient of logsumexp is softmax
    assert torch.allclose(x.grad[0], torch.softmax(x.detach()[0], -1), atol=1e-14)


def test_logsumexp_multiple_dims_keepdim() -> None:
    x = rand(2, 3, 4)
    for keepdim in (False, True):
        assert torch.allclose(logsumexp(x, (0, 2), keepdim=keepdim),
                              torch.logsumexp(x, (0, 2), keepdim=keepdim))


def test_logsumexp_gradient_through_neg_inf_row_even_when_it_is_used() -> None:
    # A -inf result that flows into a later finite sum must not produce NaN gradients.
    x = torch.full((2, 3), NEG_INF, dtype=torch.float64)
    x[0] = 0.0
    x.requires_grad_(True)
    logsumexp(logsumexp(x, -1), 0).backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad[0], torch.full((3,), 1 / 3, dtype=torch.float64))


def test_logaddexp() -> None:
    a, b = rand(5, seed=1), rand(5, seed=2)
    assert torch.allclose(logaddexp(a, b), torch.logaddexp(a, b), atol=1e-14)
    ni = torch.tensor([NEG_INF], dtype=torch.float64, requires_grad=True)
    out = logaddexp(ni, ni)
    assert out.item() == NEG_INF
    out.sum().backward()
    assert ni.grad is not None and torch.isfinite(ni.grad).all()


def test_log1mexp_accuracy_across_the_range() -> None:
    x = -torch.logspace(-20, 3, 200, dtype=torch.float64)
    expected = torch.tensor([math.log(-math.expm1(v)) for v in x.tolist()], dtype=torch.float64)
    assert torch.allclose(log1mexp(x), expected, rtol=1e-13)
    assert log1mexp(torch.tensor(0.0)).item() == NEG_INF
    assert log1mexp(torch.tensor(NEG_INF)).item() == 0.0


def test_logmatmulexp_matches_broadcast_reference() -> None:
    a, b = rand(3, 2, 4, seed=3), rand(4, 5, seed=4)
    a[0, 1] = NEG_INF
    ref = torch.logsumexp(a[..., :, :, None] + b[None, None], dim=-2)
    assert torch.allclose(logmatmulexp(a, b), ref, atol=1e-13)
    big = a - 5e3  # shifted far below exp's range
    assert torch.allclose(logmatmulexp(big, b), ref - 5e3, rtol=1e-14)


def test_safe_log_gradient_is_zero_at_zero() -> None:
    x = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = safe_log(x)
    assert y[0] == NEG_INF
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.5]


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: logsumexp(x, -1),
        lambda x: logsumexp(x, (0, 1), keepdim=True),
        lambda x: logaddexp(x[0], x[1]),
        lambda x: log1mexp(-x.abs() - 1e-3),
        lambda x: log1mexp(-x.abs() * 10 - 2.0),
        lambda x: logmatmulexp(x, x.transpose(-1, -2)),
        lambda x: safe_log(x.abs() + 0.1),
    ],
)
def test_gradcheck(fn) -> None:  # type: ignore[no-untyped-def]
    x = rand(3, 3, seed=9).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_follow_inputs(dtype: torch.dtype) -> None:
    x = torch.zeros(2, 3, dtype=dtype)
    for out in (logsumexp(x, -1), logaddexp(x, x), log1mexp(x - 1), logmatmulexp(x, x.T),
                safe_log(x + 1)):
        assert out.dtype == dtype and out.device == x.device


def test_logmatmulexp_exact_recovers_underflowed_entries() -> None:
    # Row 0 of a peaks where column 0 of b is tiny and vice versa: the shifted product of that
    # entry is about exp(-1500), zero in float64, so the plain version returns -inf.
    a = torch.tensor([[0.0, -1500.0]], dtype=torch.float64)
    b = torch.tensor([[-1500.0], [0.0]], dtype=torch.float64)
    ref = torch.tensor([[-1500.0 + math.log(2)]], dtype=torch.float64)  # log(2 e^-1500)
    assert torch.isneginf(logmatmulexp(a, b)).all()
    got = logmatmulexp(a, b, exact=True)
    assert torch.allclose(got, ref, rtol=1e-15, atol=0)
    # entries that did not underflow are unchanged
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    y = torch.randn(3, 5, 2, dtype=torch.float64)
    assert torch.equal(logmatmulexp(x, y, exact=True), logmatmulexp(x, y))
