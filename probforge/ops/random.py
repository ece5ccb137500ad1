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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ValidationError
from probforge.ops.native import enabled as native_enabled
from probforge.validate import check_device, check_int, check_shape

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
_SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes a 64-bit unsigned seed

#: Draws from this many values up run the compiled kernel (below it, calling it costs more).
NATIVE_NORMAL_MIN = 2**16


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A new generator on ``device`` seeded with ``seed``.

    Parameters
    ----------
    seed : int
        Integer seed in ``[0, 2**64)``. A bool, a float (even ``3.0``), a string or a negative
        number is refused, never converted.
    device : torch.device or str
        Device the generator draws on ("cpu", "cuda", "cuda:1", ...); it must exist on this
        machine.

    Returns
    -------
    torch.Generator

    Raises
    ------
    ValidationError
        Bad seed, or a device that is malformed, absent or cannot hold a generator.

    Examples
    --------
    >>> make_generator(0).device
    device(type='cpu')
    """
    try:
        value = check_int(seed, "seed", minimum=0, maximum=_SEED_LIMIT - 1)
    except ValidationError as err:
        raise ValidationError(
            "make_generator", "seed must be a non-negative int below 2**64",
            found=err.found, fix=err.fix or "pass a whole number such as 0",
        ) from None
    dev = check_device(device, "make_generator device")
    if dev.type == "meta":  # meta tensors hold no data, so there is nothing to draw
        raise ValidationError("make_generator device", "cannot hold a random generator",
                              found=str(dev), fix="use 'cpu' or 'cuda'")
    try:
        g = torch.Generator(device=dev)
    except RuntimeError as err:
        raise ValidationError("make_generator device", "cannot hold a random generator",
                              found=f"{dev} ({err})", fix="use 'cpu' or 'cuda'") from None
    g.manual_seed(value)
    return g


def _check_generator_type(generator: Any, subject: str) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValidationError(
            subject, "must be a torch.Generator or None", found=type(generator).__name__,
            fix="create one with probforge.ops.make_generator(seed)",
        )
    return generator


def random_seed(generator: torch.Generator | None = None) -> int:
    """Draw a fresh 62-bit seed from ``generator`` (the global RNG if None).

    Parameters
    ----------
    generator : torch.Generator, optional

    Returns
    -------
    int
        In ``[0, 2**62)``.
    """
    _check_generator_type(generator, "random_seed generator")
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
        Number of children, ``>= 0``; ``n = 0`` gives an empty list.

    Returns
    -------
    list of torch.Generator
    """
    _check_generator_type(generator, "split generator")
    count = check_int(n, "split: number of child generators", minimum=0)
    device = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, _SEED_HIGH, (count,), generator=generator, device=device).tolist()
    return [make_generator(int(s), device) for s in seeds]


def check_generator(generator: torch.Generator | None, device: torch.device | str) -> None:
    """Raise if ``generator`` cannot draw on ``device`` (torch requires the same device type).

    Parameters
    ----------
    generator : torch.Generator or None
        None always passes (the global RNG of ``device`` is used).
    device : torch.device or str
        Where the draws are made.

    Raises
    ------
    ValidationError
        ``generator`` is not a ``torch.Generator`` or ``device`` is not a device.
    DeviceMismatchError
        The generator draws on another device type.
    """
    _check_generator_type(generator, "generator")
    if not isinstance(device, torch.device):
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValidationError("check_generator", "device must be a torch device",
                                  found=repr(device)) from None
    if generator is not None and generator.device.type != device.type:
        raise DeviceMismatchError(
            "generator",
            f"draws on {generator.device} but the tensors live on {device}",
            fix=f"create it with make_generator(seed, device='{device}')",
        )


def _draw_dtype(dtype: Any, subject: str) -> torch.dtype | None:
    """``dtype`` if it is None or a floating dtype (random draws are real numbers)."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        raise ValidationError(subject, "must be a torch.dtype or None", found=repr(dtype))
    if not dtype.is_floating_point:
        raise DtypeMismatchError(subject, "must be a floating dtype", found=dtype,
                                 fix="use torch.float32 or torch.float64")
    return dtype


def _draw_device(device: Any, generator: torch.Generator | None, subject: str) -> torch.device:
    if device is None:
        return generator.device if generator is not None else torch.device("cpu")
    if isinstance(device, torch.device) and device.type == "cpu":  # the common case, no lookup
        return device
    return check_device(device, subject)


def uniform(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform draws on [0, 1) of ``shape``; device defaults to the generator's.

    Parameters
    ----------
    shape : sequence of int
        Sizes ``>= 0`` (a size of 0 gives an empty tensor; a bare int is refused).
    generator : torch.Generator, optional
    dtype : torch.dtype, optional
        A floating dtype (default: torch's default dtype).
    device : torch.device or str, optional
        Must exist on this machine and match the generator's device type.

    Returns
    -------
    Tensor, shape ``shape``
    """
    size, dt, dev = _draw_arguments("uniform", shape, generator, dtype, device)
    return torch.rand(size, generator=generator, dtype=dt, device=dev)


def _draw_arguments(
    who: str, shape: Sequence[int], generator: torch.Generator | None,
    dtype: torch.dtype | None, device: torch.device | str | None,
) -> tuple[tuple[int, ...], torch.dtype, torch.device]:
    """The checked ``(size, dtype, device)`` of a draw (dtype defaults to torch's default)."""
    _check_generator_type(generator, f"{who} generator")
    size = check_shape(shape, f"{who} shape")
    dt = _draw_dtype(dtype, f"{who} dtype") or torch.get_default_dtype()
    dev = _draw_device(device, generator, f"{who} device")
    check_generator(generator, dev)
    return size, dt, dev


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

    Parameters
    ----------
    shape : sequence of int
        Sizes ``>= 0`` (a size of 0 gives an empty tensor; a bare int is refused).
    generator : torch.Generator, optional
    dtype : torch.dtype, optional
        A floating dtype (default: torch's default dtype).
    device : torch.device or str, optional
        Must exist on this machine and match the generator's device type.

    Returns
    -------
    Tensor, shape ``shape``
    """
    size, dt, dev = _draw_arguments("normal", shape, generator, dtype, device)
    if (dev.type == "cpu" and dt in (torch.float32, torch.float64)
            and math.prod(size) >= NATIVE_NORMAL_MIN and native_enabled()):
        from probforge.ops import _normal_kernel as kernel

        seed = random_seed(generator)
        out = np.empty(math.prod(size), dtype=np.float32 if dt == torch.float32 else np.float64)
        kernel.fill_normal(out, seed, kernel.ZIG_X, kernel.ZIG_R)
        return torch.from_numpy(out).reshape(size)
    return torch.randn(size, generator=generator, dtype=dt, device=dev)


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

    Raises
    ------
    ValidationError
        ``distribution`` is not a torch distribution, ``sample_shape`` not a shape, or
        ``generator`` not a generator.

    Examples
    --------
    >>> d = torch.distributions.Poisson(torch.tensor([1.0, 5.0]))
    >>> a = sample_distribution(d, (3,), make_generator(0))
    >>> torch.equal(a, sample_distribution(d, (3,), make_generator(0)))
    True
    """
    if not isinstance(distribution, torch.distributions.Distribution):
        raise ValidationError("sample_distribution", "distribution must be a "
                              "torch.distributions.Distribution",
                              found=type(distribution).__name__)
    shape = torch.Size(check_shape(sample_shape, "sample_distribution sample_shape"))
    _check_generator_type(generator, "sample_distribution generator")
    if generator is None:
        return distribution.sample(shape)
    seed = random_seed(generator)
    cuda_in_use = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    devices = list(range(torch.cuda.device_count())) if cuda_in_use else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return distribution.sample(shape)

