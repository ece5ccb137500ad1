"""Standard normal draws in parallel on CPU (numba): xoshiro256** streams and a ziggurat.

Imported by :func:`probforge.ops.random.normal` only when numba is installed. torch's CPU
generator (one Mersenne Twister) costs ~4 ns per float, which bounds samplers that draw a
proposal for 10,000 chains at every step; this kernel costs ~1 ns per draw on two cores.

- Streams: the output is cut into blocks of :data:`BLOCK` draws; block ``j`` runs its own
  xoshiro256** generator (Blackman & Vigna, 2018) seeded by SplitMix64 from ``seed`` and ``j``.
  The draws depend only on the seed and the output size, never on the number of threads.
- Normals: the ziggurat of Marsaglia & Tsang (2000) as given by Doornik (2005, "An improved
  ziggurat method", 128 layers), with the tail of Marsaglia (1964); one 64-bit word gives the
  layer (7 bits) and a 53-bit uniform, so the fast path (~97 %) needs no transcendental.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, uint64

#: Draws per independent stream (fixed: the draws must not depend on the thread count).
BLOCK = 8192

_C = 128
_R = 3.442619855899
_V = 9.91256303526217e-3


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Layer edges ``x`` (C + 1,) and ratios ``x[i + 1] / x[i]`` (C,) of the ziggurat."""
    x = np.zeros(_C + 1)
    f = math.exp(-0.5 * _R * _R)
    x[0] = _V / f
    x[1] = _R
    for i in range(2, _C):
        x[i] = math.sqrt(-2.0 * math.log(_V / x[i - 1] + math.exp(-0.5 * x[i - 1] ** 2)))
    x[_C] = 0.0
    return x, x[1:] / x[:-1]


ZIG_X, ZIG_R = _tables()

_GOLDEN = uint64(0x9E3779B97F4A7C15)
_MIX1 = uint64(0xBF58476D1CE4E5B9)
_MIX2 = uint64(0x94D049BB133111EB)
_MUL5 = uint64(5)
_MUL9 = uint64(9)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(inline="always", cache=True)
def _rotl(x: uint64, k: int) -> uint64:  # pragma: no cover
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(inline="always", cache=True)
def _splitmix(z: uint64) -> uint64:  # pragma: no cover
    z = (z ^ (z >> uint64(30))) * _MIX1
    z = (z ^ (z >> uint64(27))) * _MIX2
    return z ^ (z >> uint64(31))


@njit(inline="always", cache=True)
def _next(s: np.ndarray) -> uint64:  # pragma: no cover
    """xoshiro256** step on the state ``s`` (4 words)."""
    result = _rotl(s[1] * _MUL5, 7) * _MUL9
    t = s[1] << uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(inline="always", cache=True)
def _unit(s: np.ndarray) -> float:  # pragma: no cover
    """Uniform on (0, 1): 53 random bits, never 0 (logarithms are taken)."""
    return (float(_next(s) >> uint64(11)) + 0.5) * _TO_UNIT


@njit(cache=True, error_model="numpy")
def _slow(s: np.ndarray, zx: np.ndarray, zr: np.ndarray, w: uint64) -> float:  # pragma: no cover
    """The rest of the ziggurat for a word ``w`` that missed the fast path: wedges, the tail,
    and fresh words after a rejection (kept out of the hot loop, which it would slow 3x)."""
    while True:
        i = int(w & uint64(0x7F))
        u = 2.0 * ((float(w >> uint64(11)) + 0.5) * _TO_UNIT) - 1.0  # (-1, 1), bits apart from i
        if abs(u) < zr[i]:
            return u * zx[i]
        if i == 0:  # the tail beyond R (Marsaglia 1964)
            while True:
                x = math.log(_unit(s)) / _R
                y = math.log(_unit(s))
                if -2.0 * y >= x * x:
                    return x - _R if u < 0.0 else _R - x
        x = u * zx[i]
        f0 = math.exp(-0.5 * (zx[i] * zx[i] - x * x))
        f1 = math.exp(-0.5 * (zx[i + 1] * zx[i + 1] - x * x))
        if f1 + _unit(s) * (f0 - f1) < 1.0:
            return x
        w = _next(s)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def fill_normal(out: np.ndarray, seed: int, zx: np.ndarray,
                zr: np.ndarray) -> None:  # pragma: no cover
    """Fill the 1-d ``out`` with standard normal draws from ``seed``."""
    n = out.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    for j in prange(blocks):
        s = np.empty(4, dtype=np.uint64)
        z = uint64(seed) + uint64(j) * _GOLDEN
        for k in range(4):
            z += _GOLDEN
            s[k] = _splitmix(z)
        start = j * BLOCK
        stop = min(start + BLOCK, n)
        for e in range(start, stop):
            w = _next(s)
            i = int(w & uint64(0x7F))
            u = 2.0 * ((float(w >> uint64(11)) + 0.5) * _TO_UNIT) - 1.0
            if abs(u) < zr[i]:  # inside layer i's rectangle: ~97 % of draws
                out[e] = u * zx[i]
            else:
                out[e] = _slow(s, zx, zr, w)
