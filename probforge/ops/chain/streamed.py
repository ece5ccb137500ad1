"""``log Z`` of chains whose unary potentials are produced a block of time steps at a time.

:func:`chain_log_partition` needs the whole ``(B, T, K)`` unary tensor. When only ``log Z`` is
wanted (an HMM's log-likelihood, with no gradient), the forward recursion reads each step once,
so the unary potentials can be produced, consumed and dropped in blocks of steps that stay in
cache: no ``(B, T, K)`` tensor is written to memory, and none of its temporaries either. On the
two-core machines this project targets, each pass over a table that size costs about as much as
the recursion itself (memory traffic and page faults of fresh allocations).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.chain import native as chain_native
from probforge.ops.chain._base import _check_lengths, _check_method
from probforge.ops.chain.partition import chain_log_partition
from probforge.ops.native import n_threads
from probforge.ops.special import finite_shift
from probforge.validate import check_int, check_tensor

__all__ = ["CHUNK_ELEMENTS", "MIN_STATES", "chain_log_partition_streamed", "streams"]

#: Target size of one block of unary potentials (B * steps * K entries): a few MiB, within the
#: last-level cache, and enough steps per block that the per-block call overhead stays small.
CHUNK_ELEMENTS = 2**18
_MIN_STEPS = 16
#: Fewer states than this: the whole-tensor path is as fast (its exponentials are one vectorised
#: pass; per step there is too little work to pay for the fused kernel's per-step overhead).
MIN_STATES = 16


@cache
def _kernel() -> Callable[..., None]:
    from probforge.ops.chain import _kernels as k

    return k.log_forward


def streams(pair: Tensor, method: str = "auto") -> bool:
    """Whether :func:`chain_log_partition_streamed` would run its kernel with this ``pair``
    (unary blocks of the same dtype that need no gradient assumed).

    A caller whose blocks are cheaper to make in one layout than the other asks this to choose
    ``time_major``: the whole-tensor fallback wants batch-major potentials.

    Examples
    --------
    >>> import torch
    >>> streams(torch.zeros(16, 16, dtype=torch.float64)), streams(torch.zeros(4, 4))
    (True, False)
    """
    return (isinstance(pair, Tensor) and method != "parallel" and pair.dim() == 2
            and pair.shape[-1] >= MIN_STATES and chain_native.enabled(pair))


def chain_log_partition_streamed(
    unary_fn: Callable[[int, int], Tensor],
    pair: Tensor,
    batch_size: int,
    n_steps: int,
    lengths: Tensor | None = None,
    *,
    method: str = "auto",
    chunk_elements: int = CHUNK_ELEMENTS,
    time_major: bool = False,
) -> Tensor:
    """``log Z`` of ``batch_size`` chains of ``n_steps`` steps, the unary potentials on demand.

    Equal to ``chain_log_partition(unary_fn(0, n_steps), pair, lengths, method=method)``, which
    is what it computes whenever the compiled kernels do not apply (CUDA, dtypes other than
    float32/float64, a gradient to build, ``method="parallel"``, a time-dependent ``pair``, fewer
    than :data:`MIN_STATES` states), and
    wherever the scaled recursion is not exact (a normaliser below ``tiny / eps``, e.g. a chain
    of probability zero) or an invalid potential needs its error message.

    Parameters
    ----------
    unary_fn : callable ``(t0, t1) -> Tensor`` of shape (B, t1 - t0, K)
        Unary log-potentials of steps ``t0 .. t1 - 1``; called with consecutive blocks.
        Padded steps (beyond ``lengths``) are never read. With ``time_major``, of shape
        (t1 - t0, B, K) instead.
    pair : Tensor, shape (K, K)
        Transition log-potentials, the same at every step.
    batch_size, n_steps : int
        ``B >= 0`` and ``T >= 1`` (a chain has at least one step, as in
        :func:`chain_log_partition`).
    lengths : LongTensor, shape (B,), optional
        Real lengths ``1 <= lengths <= T``.
    method : {"auto", "sequential", "parallel"}
        As in :func:`chain_log_partition`.
    chunk_elements : int
        Target ``B * steps * K`` per block.
    time_major : bool
        ``unary_fn`` returns time-major blocks (the kernel's own layout: each step's rows
        adjacent; batch-major blocks are read through a strided view, correct but slower).

    Returns
    -------
    Tensor, shape (B,)

    Examples
    --------
    >>> import torch
    >>> u = torch.randn(3, 50, 16, dtype=torch.float64)
    >>> pair = torch.randn(16, 16, dtype=torch.float64)
    >>> z = chain_log_partition_streamed(lambda a, b: u[:, a:b], pair, 3, 50)
    >>> bool(torch.allclose(z, chain_log_partition(u, pair)))
    True
    """
    name = "chain_log_partition_streamed"
    _check_method(method, name)
    if not callable(unary_fn):
        raise ValidationError(f"{name}: unary_fn", "must be a callable (t0, t1) -> Tensor",
                              found=type(unary_fn).__name__)
    check_tensor(pair, f"{name}: pair", min_ndim=2)
    B = check_int(batch_size, f"{name}: batch_size", minimum=0)
    T = check_int(n_steps, f"{name}: n_steps", minimum=1)
    chunk_elements = check_int(chunk_elements, f"{name}: chunk_elements", minimum=1)
    if not isinstance(time_major, bool):
        raise ValidationError(f"{name}: time_major", "must be a bool", found=repr(time_major))
    K = pair.shape[-1]
    if lengths is not None and B >= 1 and T >= 1:
        lengths = _check_lengths(lengths, (B,), T, pair.device, name)

    def block(t0: int, t1: int) -> Tensor:
        u = unary_fn(t0, t1)
        if not isinstance(u, Tensor):
            raise ValidationError(f"{name}: unary_fn({t0}, {t1})", "must return a torch.Tensor",
                                  found=type(u).__name__)
        want = (t1 - t0, B, K) if time_major else (B, t1 - t0, K)
        if tuple(u.shape) != want:
            raise ShapeError(f"{name}: unary_fn({t0}, {t1})", f"must return a tensor of shape "
                             f"{want}", found=tuple(u.shape))
        return u

    def whole() -> Tensor:
        u = block(0, T)
        return chain_log_partition(u.transpose(0, 1) if time_major else u, pair, lengths,
                                   method=method)

    if method == "parallel" or B < 1 or T < 1 or pair.dim() != 2 or K < MIN_STATES:
        return whole()
    steps = max(_MIN_STEPS, chunk_elements // (B * K))
    first = block(0, min(T, steps))
    if not (chain_native.enabled(first, pair) and first.dtype == pair.dtype
            and tuple(pair.shape) == (K, K)):
        return whole()
    shifted = exp_pair(pair)
    if shifted is None:
        return whole()  # a NaN / +inf transition: its checks raise the error
    pm, P = shifted
    log_forward = _kernel()
    lens = lengths_array(lengths, B, T)
    prev = np.empty((B, K), dtype=P.dtype)
    cs = np.empty((T, B))  # float64 whatever the dtype: the sums of logs stay exact
    ms = np.empty((T, B))
    n_blocks, use_dot = blocking(B)
    for t0 in range(0, T, steps):
        t1 = min(T, t0 + steps)
        u = first if t0 == 0 else block(t0, t1)
        if u.dtype != pair.dtype:
            raise DtypeMismatchError(f"{name}: unary_fn({t0}, {t1})",
                                     f"returned {u.dtype}, pair is {pair.dtype}",
                                     fix="return tensors of the pair's dtype")
        u = u.detach()
        # (Tc, B, K); a batch-major block as a strided view (rows stay contiguous)
        un = u.contiguous().numpy() if time_major else u.transpose(0, 1).numpy()
        log_forward(un, P, lens, t0, prev, cs, ms, n_blocks, use_dot)
    # NaN where a row held NaN / +inf: the checked path names it (or ignores it in padding)
    log_z = assemble(cs, ms, pm, lens, pair.dtype)
    return whole() if log_z is None else log_z


def exp_pair(pair: Tensor) -> tuple[Tensor, np.ndarray] | None:
    """The kernels' transition matrix ``exp(pair - max)`` and the shift; None if ``pair`` holds
    NaN or +inf (the checked path then raises)."""
    pm = pair.detach().amax()
    if bool(torch.isnan(pm) | (pm == math.inf)):
        return None
    pm = finite_shift(pm)
    return pm, np.ascontiguousarray(torch.exp(pair.detach() - pm).numpy())


def lengths_array(lengths: Tensor | None, B: int, T: int) -> np.ndarray:
    """Checked ``lengths`` (or all ``T``) as an int64 array for the kernels."""
    return (np.full(B, T, dtype=np.int64) if lengths is None
            else lengths.detach().to(torch.long).reshape(B).contiguous().numpy())


def blocking(B: int) -> tuple[int, bool]:
    """Parallel blocks of sequences, and whether each step is one BLAS product per block."""
    n_blocks = max(1, min(B, n_threads()))
    # one product per block and step where the blocks have rows enough to pay for the call
    # (measured on 2 cores, K = 16..64: faster from 16 rows a block on, slower at 4-8)
    return n_blocks, B // n_blocks >= 16


def assemble(cs: np.ndarray, ms: np.ndarray, pm: Tensor, lens: np.ndarray,
             dtype: torch.dtype) -> Tensor | None:
    """``log Z`` from the kernels' normalisers ``cs`` and shifts ``ms`` (T, B); None where a
    normaliser is below ``tiny / eps`` or NaN (the scaled recursion is not exact there, or a
    row was invalid): the caller then takes the checked log-space path."""
    info = torch.finfo(dtype)
    c = torch.from_numpy(cs)
    if not bool((c >= info.tiny / info.eps).all()):
        return None
    pair_terms = pm.to(torch.float64) * (torch.from_numpy(lens) - 1)
    log_z = torch.log(c).sum(0) + torch.from_numpy(ms).sum(0) + pair_terms
    return log_z.to(dtype)
