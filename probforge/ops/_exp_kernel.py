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

:func:`exp_nonpositive32` is the same in float32 arithmetic (8 lanes per AVX2 vector instead of
4, shift ``1.5 * 2**23``, degree 7: truncation below ``6e-9`` relative), accurate to 1 ulp for
``-87 < x <= 0`` and 0 below (``exp(-87) = 1.6e-38``, near float32's smallest normal).
:func:`exp_nonpositive_of` picks the one of its argument's dtype inside a kernel compiled for
either.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload


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


@intrinsic
def _float32_from_bits(typingctx: Any, i: Any) -> Any:  # pragma: no cover
    """The float32 whose bits are the low 32 bits of an integer."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = args[0]
        if signature.args[0].bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def _bits_of_float32(typingctx: Any, x: Any) -> Any:  # pragma: no cover
    """Reinterpret a float32 as the int32 with the same bits."""
    if x != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


# float32 constants (a Python float would promote the arithmetic to float64)
_F32_LOG2E = np.float32(_LOG2E)
_F32_LN2_HI = np.float32(0.693359375)  # 9 significant bits: n * _F32_LN2_HI is exact
_F32_LN2_LO = np.float32(-2.12194440e-4)
_F32_SHIFT = np.float32(12582912.0)  # 1.5 * 2**23
_F32_CUTOFF = np.float32(-87.0)
_F32_ZERO = np.float32(0.0)
_F32_BIAS = np.int32(127)
_F32_MANT = np.int32(23)
_F32_C = tuple(np.float32(1.0 / math.factorial(k)) for k in range(8))


@njit(inline="always", cache=True, fastmath={"contract"})
def exp_nonpositive32(x: float) -> float:  # pragma: no cover
    """``exp(x)`` for float32 ``x <= 0`` (``-inf`` allowed) in float32 arithmetic; see the
    module."""
    c = _F32_C
    t = x * _F32_LOG2E + _F32_SHIFT
    n = t - _F32_SHIFT
    r = (x - n * _F32_LN2_HI) - n * _F32_LN2_LO
    p = c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    scale = _float32_from_bits((_bits_of_float32(t) + _F32_BIAS) << _F32_MANT)
    return p * scale if x > _F32_CUTOFF else _F32_ZERO


def exp_nonpositive_of(x: float) -> float:
    """``exp(x)`` for ``x <= 0`` in the precision of ``x`` (only callable from numba code)."""
    raise NotImplementedError("exp_nonpositive_of is only callable from numba-compiled code")


@overload(exp_nonpositive_of, inline="always")
def _exp_nonpositive_of(x: Any) -> Any:  # pragma: no cover
    # the implementations' signatures must equal this one, annotations included
    def single(x: Any) -> Any:
        return exp_nonpositive32(x)

    def double(x: Any) -> Any:
        return exp_nonpositive(x)

    if x == types.float32:
        return single
    return double if isinstance(x, types.Float) else None
