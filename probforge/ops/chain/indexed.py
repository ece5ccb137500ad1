"""``log Z`` of chains whose unary potentials are rows of a small table, picked per step.

A categorical HMM's unary potentials are ``log B[:, x_t]``: one of ``M`` rows, chosen by the
symbol. The forward recursion then needs neither a ``(B, T, K)`` tensor nor a max and an
``exp`` per step: the ``M`` rows are exponentiated once (each shifted by its own maximum) and
every step multiplies its message by one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.chain import native as chain_native
from probforge.ops.chain._base import _check_lengths, _check_method
from probforge.ops.chain.partition import chain_log_partition
from probforge.ops.chain.streamed import (
    MIN_STATES,
    assemble,
    blocking,
    exp_pair,
    lengths_array,
)
from probforge.validate import check_tensor

__all__ = ["chain_log_partition_indexed"]


@cache
def _kernel() -> Callable[..., None]:
    from probforge.ops.chain import _kernels as k

    return k.log_forward_indexed


def chain_log_partition_indexed(
    table: Tensor,
    index: Tensor,
    pair: Tensor,
    lengths: Tensor | None = None,
    *,
    initial: Tensor | None = None,
    method: str = "auto",
) -> Tensor:
    """``log Z`` of chains with ``unary[b, t] = table[index[b, t]]`` (plus ``initial`` at
    ``t = 0``).

    Equal to ``chain_log_partition(table[index] + initial at t = 0, pair, lengths)``, which is
    what it computes wherever the compiled kernel does not apply (CUDA, dtypes other than
    float32/float64, a gradient to build, ``method="parallel"``, fewer than 16 states, a NaN
    or +inf potential, which then gets its error) or the scaled recursion is not exact.

    Parameters
    ----------
    table : Tensor, shape (M, K)
        Unary log-potentials of the ``M`` symbols.
    index : LongTensor, shape (B, T)
        The symbol of each step, in ``0 .. M - 1`` (padded steps may hold anything).
    pair : Tensor, shape (K, K)
        Transition log-potentials, the same at every step.
    lengths : LongTensor, shape (B,), optional
        Real lengths ``1 <= lengths <= T``.
    initial : Tensor, shape (K,), optional
        Added to step 0's unary potentials (an HMM's ``log p(y_0)``).
    method : {"auto", "sequential", "parallel"}
        As in :func:`chain_log_partition`.

    Returns
    -------
    Tensor, shape (B,)

    Raises
    ------
    ValidationError
        A symbol out of range at a real step (naming the sequence and the step).

    Examples
    --------
    >>> import torch
    >>> table = torch.randn(5, 16, dtype=torch.float64)
    >>> pair = torch.randn(16, 16, dtype=torch.float64)
    >>> index = torch.randint(0, 5, (3, 40))
    >>> z = chain_log_partition_indexed(table, index, pair)
    >>> bool(torch.allclose(z, chain_log_partition(table[index], pair)))
    True
    """
    name = "chain_log_partition_indexed"
    _check_method(method, name)
    check_tensor(table, f"{name}: table", ndim=2, floating=True)
    check_tensor(pair, f"{name}: pair")
    check_tensor(index, f"{name}: index")
    if index.dim() != 2 or index.is_floating_point() or index.is_complex() \
            or index.dtype == torch.bool:
        raise ShapeError(f"{name}: index", "must be an integer tensor of shape (B, T)",
                         found=(tuple(index.shape), index.dtype))
    if pair.shape[-2:] != (table.shape[1], table.shape[1]):
        raise ShapeError(f"{name}: table and pair", "must have shapes (M, K) and (K, K)",
                         found=(tuple(table.shape), tuple(pair.shape)))
    M, K = table.shape
    B, T = index.shape
    if T < 1:
        raise ShapeError(f"{name}: index", "needs T >= 1 steps", found=tuple(index.shape))
    if initial is not None:
        check_tensor(initial, f"{name}: initial", shape=(K,))
    for what, x in (("pair", pair), ("initial", initial)):
        if x is not None and x.dtype != table.dtype:
            raise DtypeMismatchError(f"{name}: {what}", f"is {x.dtype}, table is {table.dtype}",
                                     fix="convert all potentials to one dtype")
        if x is not None and x.device != table.device:
            raise DeviceMismatchError(f"{name}: {what}", f"is on {x.device}, table on "
                                      f"{table.device}", fix="move them to one device")
    if B < 1:
        return chain_log_partition(table.new_zeros(B, T, K), pair, lengths, method=method)
    if lengths is not None:
        lengths = _check_lengths(lengths, (B,), T, index.device, name)
    index = index.to(table.device)
    valid = None if lengths is None else (
        torch.arange(T, device=index.device) < lengths[:, None])
    bad = (index < 0) | (index >= M)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        b, t = (int(v) for v in bad.nonzero()[0])
        raise ValidationError(f"{name}: index of sequence {b}, step {t}",
                              f"must be a symbol in 0..{M - 1}", found=int(index[b, t]),
                              fix="recode the symbols, or mark the step as padding")

    def whole() -> Tensor:
        safe = index if valid is None else torch.where(valid, index, 0)
        unary = table[safe]  # a new tensor: the initial term can be added in place
        if initial is not None:
            unary[:, 0] += initial
        return chain_log_partition(unary, pair, lengths, method=method)

    if (method == "parallel" or K < MIN_STATES or pair.dim() != 2
            or not chain_native.enabled(table, pair, *(() if initial is None else (initial,)))):
        return whole()
    shifted = exp_pair(pair)
    if shifted is None:
        return whole()  # a NaN / +inf transition: its checks raise the error
    pm, P = shifted
    tab = table.detach()
    row_max = tab.amax(1)
    if bool(torch.isnan(row_max).any() | (row_max == torch.inf).any()):
        return whole()  # its checks name the NaN / +inf potential (or ignore it if unused)
    row_max = torch.where(row_max == -torch.inf, 0.0, row_max)  # a symbol no state emits
    E = torch.exp(tab - row_max[:, None]).numpy()
    u0 = tab[index[:, 0].clamp(0, M - 1)]  # step 0 is real in every sequence (lengths >= 1)
    if initial is not None:
        u0 = u0 + initial.detach()
    lens = lengths_array(lengths, B, T)
    prev = np.empty((B, K), dtype=P.dtype)
    cs = np.empty((T, B))  # float64 whatever the dtype: the sums of logs stay exact
    ms = np.empty((T, B))
    n_blocks, use_dot = blocking(B)
    xt = index.t().contiguous().numpy()  # time-major, as the kernel reads it
    _kernel()(E, row_max.numpy(), xt, u0.contiguous().numpy(), P, lens, prev, cs, ms,
              n_blocks, use_dot)
    log_z = assemble(cs, ms, pm, lens, table.dtype)
    return whole() if log_z is None else log_z
