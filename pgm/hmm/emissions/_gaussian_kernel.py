"""Compiled diagonal-Gaussian log-densities for every observation and state (numba).

Imported by :meth:`GaussianEmission.log_prob` only when the kernels apply (CPU float tensors, no
autograd graph, numba installed; see :mod:`probforge.ops.native`). With few features (HMM data
is often one- to a few-dimensional) the torch path is two skinny matrix products and three
elementwise passes over the (N, K) output, each far from the arithmetic's cost; here each
output entry is written once, from the direct form ``sum_d (x_d - mu_kd)^2 / var_kd``, which
also has none of the expanded form's cancellation for data far from the means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract", "reassoc"})
def diag_log_density(x: Any, means_t: Any, half_prec_t: Any, const: Any, out: Any,
                     n_blocks: int) -> None:  # pragma: no cover
    """``out[n, k] = const[k] - sum_d (x[n, d] - means_t[d, k])^2 * half_prec_t[d, k]``.

    x (N, D); means_t, half_prec_t (D, K), transposed so the loop over states is contiguous
    and vectorises; const (K,); out (N, K). Rows in ``n_blocks`` parallel blocks."""
    N, D = x.shape
    K = const.shape[0]
    for q in prange(n_blocks):
        acc = np.empty(K, dtype=out.dtype)
        for n in range(q * N // n_blocks, (q + 1) * N // n_blocks):
            for k in range(K):
                acc[k] = const[k]
            for d in range(D):
                xd = x[n, d]
                m = means_t[d]
                h = half_prec_t[d]
                for k in range(K):
                    diff = xd - m[k]
                    acc[k] -= diff * diff * h[k]
            o = out[n]
            for k in range(K):
                o[k] = acc[k]
