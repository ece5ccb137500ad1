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

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_device, check_finite, check_int, check_real, check_tensor

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

    @classmethod
    def from_dict(cls, doc: Any) -> DataInfo:
        """The inverse of :meth:`to_dict`, checking every field (a checkpoint's ``meta`` is
        untrusted file content).

        Raises
        ------
        ValidationError
            A missing or unknown field, or a field of the wrong type or range.
        """
        if not isinstance(doc, dict):
            raise ValidationError("data info", "must be a dict", found=type(doc).__name__)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise ValidationError("data info", f"unknown field(s) {unknown}")
        if not isinstance(doc.get("name"), str):
            raise ValidationError("data info name", "must be a string",
                                  found=repr(doc.get("name"))[:40])
        shape = doc.get("event_shape")
        if not isinstance(shape, list | tuple) or not shape:
            raise ValidationError("data info event_shape", "must be a non-empty list of ints",
                                  found=repr(shape)[:40])
        event = tuple(check_int(v, "data info event_shape", minimum=1) for v in shape)
        num_classes = doc.get("num_classes")
        if num_classes is not None:
            num_classes = check_int(num_classes, "data info num_classes", minimum=0)
        is_image = doc.get("is_image", False)
        if not isinstance(is_image, bool):
            raise ValidationError("data info is_image", "must be true or false",
                                  found=repr(is_image))
        vr = doc.get("value_range", (0.0, 1.0))
        if not isinstance(vr, list | tuple) or len(vr) != 2:
            raise ValidationError("data info value_range", "must be a pair [lo, hi]",
                                  found=repr(vr)[:40])
        lo = check_real(vr[0], "data info value_range[0]")
        hi = check_real(vr[1], "data info value_range[1]")
        if not lo < hi:
            raise ValidationError("data info value_range", "needs lo < hi", found=(lo, hi))
        split = doc.get("split", "train")
        binarized = doc.get("binarized")
        description = doc.get("description", "")
        if not isinstance(split, str) or not isinstance(description, str) or (
                binarized is not None and not isinstance(binarized, str)):
            raise ValidationError("data info", "split, binarized and description must be "
                                  "strings", found=(repr(split)[:20], repr(binarized)[:20]))
        centres = doc.get("mode_centres")
        if centres is not None:
            if not isinstance(centres, list | tuple) or not centres or not all(
                    isinstance(c, list | tuple) and len(c) == math.prod(event) for c in centres):
                raise ValidationError("data info mode_centres", "must be a non-empty list of "
                                      "points of the event's size", found=repr(centres)[:40])
            centres = tuple(tuple(check_real(v, "data info mode_centres") for v in c)
                            for c in centres)
        std = doc.get("mode_std")
        if std is not None:
            std = check_real(std, "data info mode_std", minimum=0.0, strict_minimum=True)
        return cls(name=doc["name"], event_shape=event, num_classes=num_classes,
                   is_image=is_image, value_range=(lo, hi), split=split, binarized=binarized,
                   mode_centres=centres, mode_std=std, description=description)

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
        check_tensor(self.x, "Dataset.x")
        if not isinstance(self.info, DataInfo):
            raise ValidationError("Dataset.info", "must be a DataInfo",
                                  found=type(self.info).__name__)
        if self.y is not None:
            check_tensor(self.y, "Dataset.y")
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

        ``x`` (N, *event) must be floating point and finite (integer data are refused, not
        cast); rank-4 images must lie in ``[0, 1]``. Labels ``y`` (N,) are ``torch.long`` in
        ``[0, num_classes - 1]``; ``num_classes`` defaults to ``max(y) + 1`` (0 for no labels).
        """
        if not isinstance(name, str):
            raise ValidationError("Dataset.from_tensors name", "must be a string",
                                  found=type(name).__name__)
        x = check_tensor(x, f"data set {name!r} x", min_ndim=1)
        if not torch.is_floating_point(x):
            raise DtypeMismatchError(f"data set {name!r}", "x must be a floating-point tensor",
                                     found=x.dtype, fix="convert it with x.float()")
        check_finite(x, f"data set {name!r} x")
        is_image = x.dim() == 4
        if is_image and x.numel() and bool(((x < 0) | (x > 1)).any()):
            raise ValidationError(f"data set {name!r} x", "rank-4 tensors are images, whose "
                                  "values must lie in [0, 1]", found=(float(x.min()),
                                                                      float(x.max())),
                                  fix="scale the images to [0, 1]")
        if y is not None:
            y = check_tensor(y, f"data set {name!r} y")
            if y.dtype != torch.long:
                raise ValidationError("Dataset.y", "labels must be torch.long", found=y.dtype,
                                      fix="pass y.long()")
            if y.numel() and int(y.min()) < 0:
                raise ValidationError(f"data set {name!r} y", "labels must be >= 0",
                                      found=int(y.min()))
        if num_classes is not None:
            num_classes = check_int(num_classes, f"data set {name!r} num_classes", minimum=0)
            if y is not None and y.numel() and int(y.max()) >= num_classes:
                raise ValidationError(f"data set {name!r} y", f"labels must be < num_classes = "
                                      f"{num_classes}", found=int(y.max()))
        if y is not None and num_classes is None:
            num_classes = int(y.max()) + 1 if y.numel() else 0
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
        """A copy on ``device`` (one this machine has) with ``x`` in the floating ``dtype``
        (labels stay ``long``)."""
        if device is not None:
            device = check_device(device, "Dataset.to device")
        if dtype is not None and (not isinstance(dtype, torch.dtype)
                                  or not dtype.is_floating_point):
            raise ValidationError("Dataset.to dtype", "must be a floating torch.dtype",
                                  found=repr(dtype), fix="use torch.float32 or torch.float64")
        x = self.x.to(device=device, dtype=dtype)
        y = self.y.to(device=device) if self.y is not None else None
        return Dataset(x, y, self.info)

    def subset(self, n: int) -> Dataset:
        """The first ``n >= 0`` examples (all of them when ``n >= len(self)``)."""
        n = check_int(n, "Dataset.subset n", minimum=0)
        y = self.y[:n] if self.y is not None else None
        return Dataset(self.x[:n], y, self.info)

    def with_info(self, **changes: Any) -> Dataset:
        """The same tensors with some :class:`DataInfo` fields replaced."""
        unknown = sorted(set(changes) - {f.name for f in fields(DataInfo)})
        if unknown:
            raise ValidationError("Dataset.with_info", f"unknown DataInfo field(s) {unknown}",
                                  fix=f"use {[f.name for f in fields(DataInfo)]}")
        return Dataset(self.x, self.y, replace(self.info, **changes))
