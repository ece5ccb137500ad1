"""Semirings over log-space tensors: sum-product, max-product and sampling.

All three share the log-space product (``+``) and the unit ``0``/zero ``-inf``; they differ in how
a variable is eliminated and in how an eliminated variable is recovered afterwards:

========  =======================  ===================================================
name      eliminate (reduce)       recover (traceback)
========  =======================  ===================================================
log       ``logsumexp``            none: the result is a log-sum
max       ``amax``                 ``argmax`` of the table it was eliminated from (MAP)
sample    ``logsumexp``            a draw from that table by Gumbel-max (posterior sample)
========  =======================  ===================================================

Variable elimination, junction trees, HMMs and CRFs all call :func:`probforge.ops.contract`
with one of these.

Examples
--------
>>> import torch
>>> from probforge.ops.semiring import LOG, MAX
>>> x = torch.log(torch.tensor([[0.1, 0.3], [0.2, 0.4]]))
>>> LOG.reduce(x, (1,)).exp()
tensor([0.4000, 0.6000])
>>> MAX.reduce(x, (0, 1)).exp()
tensor(0.4000)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.ops.device import check_dims, check_floating
from probforge.ops.random import check_generator
from probforge.ops.special import logsumexp
from probforge.validate import check_shape

__all__ = ["LOG", "MAX", "SAMPLE", "Semiring", "get_semiring", "gumbel"]


def gumbel(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Gumbel noise of ``shape`` on ``like``'s device and dtype.

    Drawn as ``-log(E)`` with ``E ~ Exponential(1)``; ``E`` is clamped away from 0 so no entry is
    ``+inf``.

    Parameters
    ----------
    shape : sequence of int
        Sizes ``>= 0`` (0 gives an empty tensor).
    like : Tensor
        A floating tensor giving the device and dtype.
    generator : torch.Generator or None
        Must draw on ``like``'s device type.

    Returns
    -------
    Tensor, shape ``shape``

    Raises
    ------
    ValidationError, DtypeMismatchError, DeviceMismatchError
    """
    size = check_shape(shape, "gumbel shape")
    check_floating(like, "gumbel like")
    check_generator(generator, like.device)
    e = torch.empty(size, device=like.device, dtype=like.dtype)
    e.exponential_(generator=generator)
    return -torch.log(e.clamp_min(torch.finfo(like.dtype).tiny))


_TRACEBACK = {"log": False, "max": True, "sample": True}


@dataclass(frozen=True)
class Semiring:
    """A log-space semiring: ``product`` is ``+``, elimination is ``reduce``.

    Attributes
    ----------
    name : str
        ``"log"``, ``"max"`` or ``"sample"``.
    traceback : bool
        Whether eliminated variables can be recovered (max: argmax, sample: posterior draw).
    """

    name: str
    traceback: bool

    def __post_init__(self) -> None:
        # reduce/select dispatch on the name: any other name would silently act as "log".
        if not isinstance(self.name, str) or self.name not in _TRACEBACK:
            raise ValidationError("Semiring", "name must be one of "
                                  f"{sorted(_TRACEBACK)}", found=repr(self.name),
                                  fix="use probforge.ops.LOG, MAX or SAMPLE")
        if self.traceback is not _TRACEBACK[self.name]:
            raise ValidationError(f"semiring '{self.name}'",
                                  f"traceback must be {_TRACEBACK[self.name]}",
                                  found=repr(self.traceback))

    @property
    def zero(self) -> float:
        """The additive identity in log space (probability 0)."""
        return float("-inf")

    @property
    def one(self) -> float:
        """The multiplicative identity in log space (probability 1)."""
        return 0.0

    def product(self, a: Tensor, b: Tensor) -> Tensor:
        """Semiring product of two broadcastable log-tables.

        Raises
        ------
        ValidationError, DtypeMismatchError, ShapeError
            A non-tensor or integer operand, or shapes that do not broadcast.
        """
        check_floating(a, f"semiring '{self.name}' product: a")
        check_floating(b, f"semiring '{self.name}' product: b")
        try:
            return a + b
        except RuntimeError as err:
            raise ShapeError(f"semiring '{self.name}' product", "shapes do not broadcast",
                             found=f"{tuple(a.shape)} and {tuple(b.shape)}") from err

    def reduce(self, x: Tensor, dims: int | Sequence[int]) -> Tensor:
        """Eliminate ``dims`` of ``x`` (logsumexp for log/sample, amax for max).

        Parameters
        ----------
        x : Tensor
            Floating log-table.
        dims : int or sequence of int
            Distinct dimensions of ``x`` (negative values count from the end); an empty
            sequence returns ``x`` unchanged.

        Returns
        -------
        Tensor
            ``x`` without ``dims``. Eliminating a dimension of size 0 gives the semiring's zero,
            ``-inf`` (an empty sum or an empty max), not an error.
        """
        check_floating(x, f"semiring '{self.name}' reduce: x")
        dd = check_dims(x, dims, f"semiring '{self.name}' reduce: dims")
        if len(dd) == 0 or x.dim() == 0:  # nothing to eliminate, or a scalar: itself
            return x
        if self.name == "max":
            if any(x.shape[d] == 0 for d in dd):  # max over nothing: the zero, -inf
                shape = [n for i, n in enumerate(x.shape) if i not in dd]
                return x.new_full(shape, float("-inf"))
            return x.amax(dim=dd)
        return logsumexp(x, dim=dd)

    def select(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Recover an index from a table over the last dimension.

        Parameters
        ----------
        logits : Tensor, shape (..., n)
            Log-table over the flattened eliminated variables, ``n >= 1``.
        generator : torch.Generator, optional
            Used by the sample semiring only.

        Returns
        -------
        LongTensor, shape (...)
            ``argmax`` for max; a draw from ``softmax(logits)`` for sample.

        Raises
        ------
        ValidationError
            The log semiring (no traceback), or a generator on another device.
        ShapeError
            ``logits`` is 0-d or its last dimension is empty (there is nothing to choose).
        """
        if self.name == "log":
            raise ValidationError(
                f"semiring '{self.name}'", "has no traceback",
                fix="use the 'max' or 'sample' semiring",
            )
        check_floating(logits, f"semiring '{self.name}' select: logits")
        if logits.dim() == 0 or logits.shape[-1] == 0:
            raise ShapeError(f"semiring '{self.name}' select: logits",
                             "needs a last dimension with at least one entry",
                             found=tuple(logits.shape))
        if self.name == "max":
            return logits.argmax(dim=-1)
        return (logits + gumbel(logits.shape, logits, generator)).argmax(dim=-1)


LOG = Semiring("log", traceback=False)
MAX = Semiring("max", traceback=True)
SAMPLE = Semiring("sample", traceback=True)

_BY_NAME = {s.name: s for s in (LOG, MAX, SAMPLE)}


def get_semiring(semiring: Semiring | str) -> Semiring:
    """Resolve a semiring given by object or by name (``"log"``, ``"max"``, ``"sample"``).

    Raises
    ------
    ValidationError
        An unknown name (the message lists the known ones) or an object of another type.
    """
    if isinstance(semiring, Semiring):
        return semiring
    if not isinstance(semiring, str) or semiring not in _BY_NAME:
        raise ValidationError(
            "semiring",
            "unknown semiring name",
            found=repr(semiring),
            fix=f"use one of {sorted(_BY_NAME)}",
        )
    return _BY_NAME[semiring]
