"""``exp`` of non-positive numbers as a numba function that the loop vectoriser turns into SIMD.

Imported by the compiled chain kernels only when numba is installed. numba's ``math.exp`` is a
call into libm per element (~10 ns): in a forward recursion that exponentiates its emission
log-likelihoods step by step, that call costs more than the ``K x K`` arithmetic itself. Without
Intel's SVML, LLVM cannot vectorise it. :func:`exp_nonpositive` is plain arithmetic instead:

- range reduction ``x = n ln 2 + r`` with ``|r| <= ln 2 / 2``: ``n`` by the round-to-nearest
  shift trick (adding and subtracting ``1.5 * 2**52``), ``ln 2`` split in two (Cody & Waite) so
  ``n ln 2`` is exact;
- ``exp(r)`` by its Taylor polynomial to degree 13 (truncation below ``2e-17`` relative);
- ``2**n`` built from its bits: the low bits of the shifted sum hold ``n``.

Accurate to 2 ulp (float64) for ``-708 < x <= 0``; 0 for ``x <= -708`` (including ``-inf``),
where the true value is below ``3.3e-308``: these kernels only exponentiate numbers shifted by
their row's maximum, so such terms are lost to rounding next to the maximum's ``exp(0) = 1``.
Positive or NaN input is never passed and gives undefined results.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _float_from_bits(typingctx: Any, i: Any) -> Any:  # pragma: no cover
    """Reinterpret an int64 as the float64 with the same bits (a no-op the vectoriser keeps)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _bits_of_float(typingctx: Any, x: Any) -> Any:  # pragma: no cover
    """Reinterpret a float64 as the int64 with the same bits."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = context.cast(builder, args[0], signature.args[0], types.float64)
        return builder.bitcast(value, ir.IntType(64))

    return types.int64(x), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # 32 significant bits: n * _LN2_HI is exact for |n| < 2^21
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + _SHIFT rounds x to an integer in the low bits
_CUTOFF = -708.0  # below, 2**n would be subnormal; the result is 0 there


@njit(inline="always", cache=True, fastmath={"contract"})
def exp_nonpositive(x: float) -> float:  # pragma: no cover
    """``exp(x)`` for ``x <= 0`` (``-inf`` allowed) in float64, vectorisable; see the module."""
    t = x * _LOG2E + _SHIFT
    n = t - _SHIFT
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = _float_from_bits((_bits_of_float(t) + 1023) << 52)
    return p * scale if x > _CUTOFF else 0.0
