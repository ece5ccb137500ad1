"""LinearChainCRF against pytorch-crf (``torchcrf``) with the same parameters: NLL and paths."""

from __future__ import annotations

import pytest
import torch

from pgm.crf import LinearChainCRF
from probforge.ops.random import make_generator

torchcrf = pytest.importorskip("torchcrf")


def _case(seed: int, batch_first: bool, b: int = 6, t: int = 7, k: int = 5
          ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)  # pytorch-crf initialises from the global RNG
    ref = torchcrf.CRF(k, batch_first=batch_first).double()
    g = make_generator(seed)
    with torch.no_grad():  # larger scores than pytorch-crf's init, to make paths differ
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    e = torch.randn(b, t, k, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t) < lengths[:, None]
    tags = torch.randint(0, k, (b, t), generator=g)
    if not batch_first:
        e, mask, tags = e.transpose(0, 1), mask.T, tags.T
    return ref, e, mask, tags


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "token_mean"])
def test_same_nll(batch_first: bool, reduction: str) -> None:
    ref, e, mask, tags = _case(0, batch_first)
    ours = LinearChainCRF.from_torchcrf(ref)
    assert ours.batch_first == batch_first
    want = ref(e, tags, mask, reduction=reduction)
    got = ours.log_likelihood(e, tags, mask, reduction=reduction)
    assert torch.allclose(got, want, atol=1e-10, rtol=0)
    assert torch.allclose(ours.nll(e, tags, mask, reduction=reduction), -want, atol=1e-10,
                          rtol=0)


@pytest.mark.parametrize("batch_first", [True, False])
def test_same_gradients(batch_first: bool) -> None:
    ref, e, mask, tags = _case(1, batch_first)
    ours = LinearChainCRF.from_torchcrf(ref)
    e1 = e.clone().requires_grad_(True)
    e2 = e.clone().requires_grad_(True)
    torch.autograd.backward(-ref(e1, tags, mask))
    torch.autograd.backward(ours.nll(e2, tags, mask, reduction="sum"))
    assert e1.grad is not None and e2.grad is not None
    assert torch.allclose(e1.grad, e2.grad, atol=1e-10, rtol=0)
    for name in ("start_transitions", "end_transitions", "transitions"):
        a, b = getattr(ref, name).grad, getattr(ours, name).grad
        assert torch.allclose(a, b, atol=1e-10, rtol=0), name


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_same_decoded_paths(batch_first: bool, seed: int) -> None:
    ref, e, mask, _ = _case(seed, batch_first, b=16, t=9, k=6)
    ours = LinearChainCRF.from_torchcrf(ref)
    assert ours.decode_lists(e, mask) == ref.decode(e, mask)


@pytest.mark.filterwarnings("ignore:where received a uint8")  # pytorch-crf's own default mask
def test_float32_and_no_mask() -> None:
    ref, e, _, tags = _case(5, True)
    ref = ref.float()
    ours = LinearChainCRF.from_torchcrf(ref)
    e = e.float()
    assert torch.allclose(ours.log_likelihood(e, tags), ref(e, tags), atol=1e-3, rtol=1e-6)
    assert ours.decode_lists(e) == ref.decode(e)
