"""Explicit random-number generators: creation from a seed, per device, and splitting.

Every stochastic function in probforge takes ``generator: torch.Generator | None``. When a
generator is given, library code draws only from it and never touches the global RNG; the same
seed, device, dtype and shapes give the same draws. When it is None, torch's global RNG is used, as
torch's own functions do.

Child generators for chains, replicas or training phases are derived with :func:`split`, which
draws their seeds from the parent: reproducible, and independent of how many draws each child
later makes.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator, split, uniform
>>> g = make_generator(0)
>>> a, b = split(g, 2)
>>> uniform((2,), generator=a).shape
torch.Size([2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, ValidationError
from probforge.ops.native import enabled as native_enabled

__all__ = [
    "NATIVE_NORMAL_MIN",
    "check_generator",
    "make_generator",
    "normal",
    "random_seed",
    "sample_distribution",
    "split",
    "uniform",
]

_SEED_HIGH = 2**62

#: Draws from this many values up run the compiled kernel (below it, calling it costs more).
NATIVE_NORMAL_MIN = 2**16


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A new generator on ``device`` seeded with ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative integer seed.
    device : torch.device or str
        Device the generator draws on ("cpu", "cuda", "cuda:1", ...).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValidationError(
            "make_generator", "seed must be a non-negative int", found=repr(seed)
        )
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(seed)
    return g


def random_seed(generator: torch.Generator | None = None) -> int:
    """Draw a fresh 62-bit seed from ``generator`` (the global RNG if None)."""
    device = generator.device if generator is not None else torch.device("cpu")
    t = torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=device)
    return int(t.item())


def split(generator: torch.Generator | None, n: int) -> list[torch.Generator]:
    """``n`` child generators on the parent's device, seeded from draws of the parent.

    Parameters
    ----------
    generator : torch.Generator or None
        Parent; its state advances by one draw. None draws the seeds from the global RNG.
    n : int
        Number of children.

    Returns
    -------
    list of torch.Generator
    """
    if n < 0:
        raise ValidationError("split", "number of child generators must be >= 0", found=n)
    device = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, _SEED_HIGH, (n,), generator=generator, device=device).tolist()
    return [make_generator(int(s), device) for s in seeds]


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Raise if ``generator`` cannot draw on ``device`` (torch requires the same device type)."""
    if generator is not None and generator.device.type != device.type:
        raise DeviceMismatchError(
            "generator",
            f"draws on {generator.device} but the tensors live on {device}",
            fix=f"create it with make_generator(seed, device='{device}')",
        )


def uniform(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform draws on [0, 1) of ``shape``; device defaults to the generator's."""
    dev = torch.device(device) if device is not None else _default_device(generator)
    check_generator(generator, dev)
    return torch.rand(tuple(shape), generator=generator, dtype=dtype, device=dev)


def normal(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard normal draws of ``shape``; device defaults to the generator's.

    Large CPU draws (at least :data:`NATIVE_NORMAL_MIN` float32/float64 values, numba
    installed, ``PROBFORGE_NATIVE`` not 0) come from a parallel compiled kernel
    (:mod:`probforge.ops._normal_kernel`: xoshiro256** streams and a ziggurat), seeded by one
    draw of ``generator``: about twice as fast as torch's CPU generator on two cores, and the
    draws depend on the seed and the size only, not on the thread count. They are not the
    numbers ``torch.randn`` would give for the same seed. Everything else is ``torch.randn``.
    """
    dev = torch.device(device) if device is not None else _default_device(generator)
    check_generator(generator, dev)
    shape = tuple(shape)
    dt = dtype if dtype is not None else torch.get_default_dtype()
    if (dev.type == "cpu" and dt in (torch.float32, torch.float64)
            and math.prod(shape) >= NATIVE_NORMAL_MIN and native_enabled()):
        from probforge.ops import _normal_kernel as kernel

        seed = random_seed(generator)
        out = np.empty(math.prod(shape), dtype=np.float32 if dt == torch.float32 else np.float64)
        kernel.fill_normal(out, seed, kernel.ZIG_X, kernel.ZIG_R)
        return torch.from_numpy(out).reshape(shape)
    return torch.randn(shape, generator=generator, dtype=dtype, device=dev)


def sample_distribution(
    distribution: torch.distributions.Distribution,
    sample_shape: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> Tensor:
    """``distribution.sample(sample_shape)`` reproducible from ``generator``.

    torch distributions draw from the global RNG. With a generator, one seed is drawn from it
    and the sample is taken inside ``torch.random.fork_rng`` seeded with it, so the draws follow
    the generator and the global RNG state is the same afterwards as before. Without one, the
    distribution samples as usual (global RNG).

    Parameters
    ----------
    distribution : torch.distributions.Distribution
    sample_shape : sequence of int
    generator : torch.Generator, optional

    Returns
    -------
    Tensor, shape ``sample_shape + batch_shape + event_shape``

    Examples
    --------
    >>> d = torch.distributions.Poisson(torch.tensor([1.0, 5.0]))
    >>> a = sample_distribution(d, (3,), make_generator(0))
    >>> torch.equal(a, sample_distribution(d, (3,), make_generator(0)))
    True
    """
    shape = torch.Size(sample_shape)
    if generator is None:
        return distribution.sample(shape)
    seed = random_seed(generator)
    cuda_in_use = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    devices = list(range(torch.cuda.device_count())) if cuda_in_use else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return distribution.sample(shape)


def _default_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")
