"""The compiled diagonal-Gaussian log-density against the torch path and the closed form.

Deterministic: the kernel computes the direct form ``sum_d (x_d - mu_kd)^2 / var_kd``, the
torch path the expanded form of scikit-learn / hmmlearn, and the reference is
torch.distributions.Normal in float64; only float rounding differs.
"""

from __future__ import annotations

import pytest
import torch

from pgm.hmm import GaussianEmission
from probforge.ops import make_generator, native

pytestmark = pytest.mark.skipif(not native.available(), reason="numba not installed")


def _reference(em: GaussianEmission, x: torch.Tensor) -> torch.Tensor:
    var = em.variances().double()
    normal = torch.distributions.Normal(em.means.double(), var.sqrt())
    return normal.log_prob(x.double()[..., None, :]).sum(-1)


@pytest.mark.parametrize("cov", ["diag", "spherical"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("n, K, D", [(3, 4, 1), (5000, 16, 2), (700, 64, 5)])
def test_native_log_density_matches_closed_form_and_torch_path(monkeypatch, cov, dtype, tol,
                                                               n, K, D):
    gen = make_generator(n + K + D)
    means = (torch.randn(K, D, generator=gen, dtype=torch.float64) * 3 + 1e3).to(dtype)
    covars = 0.2 + torch.rand((K, D) if cov == "diag" else (K,), generator=gen,
                              dtype=torch.float64)
    em = GaussianEmission(means, covars.to(dtype), cov)
    x = (torch.randn(2, n, D, generator=gen, dtype=torch.float64) * 4 + 1e3).to(dtype)
    got = em.log_prob(x)  # native by default
    assert got.shape == (2, n, K) and got.dtype == dtype
    ref = _reference(em, x)
    torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol)
    monkeypatch.setenv("PROBFORGE_NATIVE", "0")
    torch_path = em.log_prob(x)
    # the expanded form loses a few digits to cancellation far from the origin (1e3 here)
    torch.testing.assert_close(torch_path.double(), ref, rtol=100 * tol, atol=100 * tol)


def test_parameters_changed_in_place_or_replaced_are_seen():
    em = GaussianEmission(torch.zeros(3, 2, dtype=torch.float64),
                          torch.ones(3, 2, dtype=torch.float64))
    x = torch.randn(10, 2, dtype=torch.float64)
    first = em.log_prob(x)
    em.means.add_(1.0)
    em.covars.mul_(2.0)
    torch.testing.assert_close(em.log_prob(x), _reference(em, x), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(first, em.log_prob(x))
    em.means = torch.full((3, 2), -2.0, dtype=torch.float64)  # replaced, version 0 again
    torch.testing.assert_close(em.log_prob(x), _reference(em, x), rtol=1e-12, atol=1e-12)


def test_gradients_take_the_torch_path():
    means = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    em = GaussianEmission(means, torch.ones(2, 3, dtype=torch.float64))
    x = torch.randn(4, 3, dtype=torch.float64)
    out = em.log_prob(x)
    assert out.requires_grad
    (g,) = torch.autograd.grad(out.sum(), means)
    torch.testing.assert_close(g, (x[:, None, :] - means.detach()).sum(0))
