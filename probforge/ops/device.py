"""Device and dtype helpers: results follow their inputs, with no global configuration.

Examples
--------
>>> import torch
>>> from probforge.ops.device import common_device_dtype
>>> common_device_dtype([torch.zeros(2, dtype=torch.float64)])
(device(type='cpu'), torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ValidationError

__all__ = ["available_devices", "common_device_dtype", "to_like"]


def common_device_dtype(
    tensors: Sequence[Tensor], names: Sequence[str] | None = None
) -> tuple[torch.device, torch.dtype]:
    """The one device and floating dtype shared by ``tensors``; raise naming the odd one out.

    Parameters
    ----------
    tensors : sequence of Tensor
        At least one tensor.
    names : sequence of str, optional
        Names used in error messages (default ``"tensor 0"``, ``"tensor 1"``, ...).
    """
    if not tensors:
        raise ValidationError("common_device_dtype", "needs at least one tensor", found="none")
    labels = list(names) if names is not None else [f"tensor {i}" for i in range(len(tensors))]
    device, dtype = tensors[0].device, tensors[0].dtype
    for label, t in zip(labels, tensors, strict=True):
        if t.device != device:
            raise DeviceMismatchError(
                label, f"is on {t.device}, expected {device} like {labels[0]}",
                fix="move all inputs to one device with .to(device)",
            )
        if t.dtype != dtype:
            raise DtypeMismatchError(
                label, f"has dtype {t.dtype}, expected {dtype} like {labels[0]}",
                fix="cast all inputs to one dtype",
            )
    return device, dtype


def to_like(x: Tensor | float | Sequence[float], like: Tensor) -> Tensor:
    """``x`` as a tensor on ``like``'s device with ``like``'s dtype."""
    return torch.as_tensor(x, device=like.device, dtype=like.dtype)


def available_devices() -> list[torch.device]:
    """CPU plus every visible CUDA device."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return devices
