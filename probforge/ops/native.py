"""Whether probforge's compiled CPU kernels (numba) can run, and a switch to turn them off.

Several hot loops have a compiled CPU kernel beside their torch implementation: the chain
recursions (:mod:`probforge.ops.chain.native`), standard normal draws
(:func:`probforge.ops.random.normal`) and junction-tree calibration
(:mod:`pgm.inference._native_tree`). They run for CPU float32/float64 tensors when numba is
installed and no autograd graph is needed; everything else takes the torch path, which is also
the reference the kernels are tested against. Set ``PROBFORGE_NATIVE=0`` in the environment to
use the torch paths everywhere.
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType

import torch
from torch import Tensor

from probforge.errors import ValidationError

__all__ = ["available", "enabled", "n_threads"]

_DTYPES = (torch.float32, torch.float64)


@cache
def _numba() -> ModuleType | None:
    try:
        import numba
    except ImportError:  # optional: the torch path does everything, only slower
        return None
    return numba


def available() -> bool:
    """Whether numba can be imported (the kernels are compiled lazily on first use)."""
    return _numba() is not None


def enabled(*tensors: Tensor, autograd: bool = False) -> bool:
    """Whether the kernels apply to these tensors: CPU, float32/float64, numba on, no autograd.

    Parameters
    ----------
    *tensors : Tensor
        The inputs of the computation.
    autograd : bool, default False
        The caller differentiates the result itself (a ``torch.autograd.Function`` whose
        backward also runs here): inputs that require grad are then fine.

    Returns
    -------
    bool

    Raises
    ------
    ValidationError
        An argument that is not a tensor, or ``autograd`` not a bool.
    """
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise ValidationError(f"native.enabled argument {i}", "must be a torch.Tensor",
                                  found=type(x).__name__)
    if not isinstance(autograd, bool):
        raise ValidationError("native.enabled autograd", "must be True or False",
                              found=repr(autograd))
    if os.environ.get("PROBFORGE_NATIVE", "1") == "0" or not available():
        return False
    grad = torch.is_grad_enabled() and not autograd
    for x in tensors:
        if x.device.type != "cpu" or x.dtype not in _DTYPES or (grad and x.requires_grad):
            return False
    return True


def n_threads() -> int:
    """Threads the kernels' parallel loops use (numba's setting; 1 without numba)."""
    numba = _numba()
    return 1 if numba is None else int(numba.get_num_threads())
