"""In-memory data sets and their description: :class:`Dataset` and :class:`DataInfo`.

A :class:`Dataset` is a pair of tensors, ``x`` of shape ``(N, *event_shape)`` and optional integer
labels ``y`` of shape ``(N,)``, plus a :class:`DataInfo` saying what they are (name, event shape,
number of classes, whether they are images, their value range and, for the 2-D mixture toys, the
mode centres used by mode-coverage metrics). Models size themselves from the ``DataInfo``
(``generative.registry.default_config(kind, info)``).

Examples
--------
>>> import torch
>>> from generative.data import Dataset
>>> ds = Dataset.from_tensors(torch.zeros(5, 2))
>>> len(ds), ds.info.event_shape, ds.info.is_image
(5, (2,), False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError

__all__ = ["DataInfo", "Dataset"]


@dataclass(frozen=True)
class DataInfo:
    """What a data set holds.

    Attributes
    ----------
    name : str
        Registry name (``"fashion-mnist"``, ``"8gaussians"``, ...).
    event_shape : tuple of int
        Shape of one example: ``(C, H, W)`` for images, ``(2,)`` for the 2-D toys.
    num_classes : int or None
        Number of label values (labels are ``0 .. num_classes - 1``); None when unlabelled.
    is_image : bool
        True for ``(C, H, W)`` images with values in ``value_range``.
    value_range : (float, float)
        Bounds of the values: ``(0, 1)`` for images; for toys, a box holding (almost) all points,
        used for plotting.
    split : str
        ``"train"`` or ``"test"``.
    binarized : str or None
        None, ``"fixed"`` (thresholded) or ``"stochastic"`` (Bernoulli draws).
    mode_centres : tuple of tuples of float, or None
        For the Gaussian-mixture toys (and the checkerboard's squares), the ``(K, 2)`` mode
        centres; None otherwise. :meth:`centres` returns them as a tensor.
    mode_std : float or None
        Standard deviation of each mixture component (half the square side for the
        checkerboard); a natural radius for "this sample hit that mode" (e.g. ``3 * mode_std``).
    description : str
        One line on provenance.
    """

    name: str
    event_shape: tuple[int, ...]
    num_classes: int | None = None
    is_image: bool = False
    value_range: tuple[float, float] = (0.0, 1.0)
    split: str = "train"
    binarized: str | None = None
    mode_centres: tuple[tuple[float, ...], ...] | None = None
    mode_std: float | None = None
    description: str = ""

    @property
    def event_numel(self) -> int:
        """Number of scalars in one example (``prod(event_shape)``)."""
        n = 1
        for s in self.event_shape:
            n *= s
        return n

    def centres(self, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> Tensor | None:
        """The mode centres as a ``(K, 2)`` tensor, or None if the data set has none."""
        if self.mode_centres is None:
            return None
        return torch.tensor(self.mode_centres, dtype=dtype, device=device)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (tuples become lists)."""
        out = asdict(self)
        out["event_shape"] = list(self.event_shape)
        out["value_range"] = list(self.value_range)
        if self.mode_centres is not None:
            out["mode_centres"] = [list(c) for c in self.mode_centres]
        return out


@dataclass(frozen=True, eq=False)
class Dataset:
    """Examples ``x`` of shape ``(N, *event_shape)``, labels ``y`` of shape ``(N,)`` or None.

    Build one with :func:`generative.data.load` or :meth:`from_tensors`. The tensors are not
    copied; treat them as read-only.
    """

    x: Tensor
    y: Tensor | None
    info: DataInfo

    def __post_init__(self) -> None:
        if self.x.dim() < 1:
            raise ShapeError("Dataset.x", "must have a leading example dimension",
                             found=tuple(self.x.shape))
        if tuple(self.x.shape[1:]) != tuple(self.info.event_shape):
            raise ShapeError("Dataset.x", "shape must be (N, *info.event_shape)",
                             found=(tuple(self.x.shape), self.info.event_shape))
        if self.y is not None:
            if self.y.shape != (self.x.shape[0],):
                raise ShapeError("Dataset.y", "must have shape (N,) with N = len(x)",
                                 found=(tuple(self.y.shape), self.x.shape[0]))
            if self.y.dtype != torch.long:
                raise ValidationError("Dataset.y", "labels must be torch.long",
                                      found=self.y.dtype, fix="pass y.long()")
            if self.y.device != self.x.device:
                raise ValidationError("Dataset.y", "must be on the device of x",
                                      found=(self.y.device, self.x.device))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def from_tensors(cls, x: Tensor, y: Tensor | None = None, name: str = "tensor",
                     num_classes: int | None = None) -> Dataset:
        """Wrap tensors; ``x`` of rank 4 is taken as ``(N, C, H, W)`` images in ``[0, 1]``.

        ``num_classes`` defaults to ``max(y) + 1`` when labels are given.
        """
        if not torch.is_floating_point(x):
            raise ValidationError(f"data set {name!r}", "x must be a floating-point tensor",
                                  found=x.dtype, fix="convert it with x.float()")
        if y is not None and num_classes is None:
            num_classes = int(y.max()) + 1 if y.numel() else 0
        is_image = x.dim() == 4
        if is_image:
            lo, hi = 0.0, 1.0
        elif x.numel():
            lo, hi = float(x.min()), float(x.max())
        else:
            lo, hi = 0.0, 1.0
        info = DataInfo(name=name, event_shape=tuple(x.shape[1:]), num_classes=num_classes,
                        is_image=is_image, value_range=(lo, hi))
        return cls(x, y, info)

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Dataset:
        """A copy on ``device`` with ``x`` in ``dtype`` (labels stay ``long``)."""
        x = self.x.to(device=device, dtype=dtype)
        y = self.y.to(device=device) if self.y is not None else None
        return Dataset(x, y, self.info)

    def subset(self, n: int) -> Dataset:
        """The first ``n`` examples."""
        y = self.y[:n] if self.y is not None else None
        return Dataset(self.x[:n], y, self.info)

    def with_info(self, **changes: Any) -> Dataset:
        """The same tensors with some :class:`DataInfo` fields replaced."""
        return Dataset(self.x, self.y, replace(self.info, **changes))
