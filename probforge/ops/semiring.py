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

from probforge.errors import ValidationError
from probforge.ops.special import logsumexp

__all__ = ["LOG", "MAX", "SAMPLE", "Semiring", "get_semiring", "gumbel"]


def gumbel(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Gumbel noise of ``shape`` on ``like``'s device and dtype.

    Drawn as ``-log(E)`` with ``E ~ Exponential(1)``; ``E`` is clamped away from 0 so no entry is
    ``+inf``.
    """
    e = torch.empty(tuple(shape), device=like.device, dtype=like.dtype)
    e.exponential_(generator=generator)
    return -torch.log(e.clamp_min(torch.finfo(like.dtype).tiny))


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

    @property
    def zero(self) -> float:
        """The additive identity in log space (probability 0)."""
        return float("-inf")

    @property
    def one(self) -> float:
        """The multiplicative identity in log space (probability 1)."""
        return 0.0

    def product(self, a: Tensor, b: Tensor) -> Tensor:
        """Semiring product of two broadcastable log-tables."""
        return a + b

    def reduce(self, x: Tensor, dims: Sequence[int]) -> Tensor:
        """Eliminate ``dims`` of ``x`` (logsumexp for log/sample, amax for max)."""
        if len(dims) == 0:
            return x
        if self.name == "max":
            return x.amax(dim=tuple(dims))
        return logsumexp(x, dim=tuple(dims))

    def select(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Recover an index from a table over the last dimension.

        Parameters
        ----------
        logits : Tensor, shape (..., n)
            Log-table over the flattened eliminated variables.
        generator : torch.Generator, optional
            Used by the sample semiring only.

        Returns
        -------
        LongTensor, shape (...)
            ``argmax`` for max; a draw from ``softmax(logits)`` for sample.
        """
        if self.name == "max":
            return logits.argmax(dim=-1)
        if self.name == "sample":
            return (logits + gumbel(logits.shape, logits, generator)).argmax(dim=-1)
        raise ValidationError(
            f"semiring '{self.name}'", "has no traceback", fix="use the 'max' or 'sample' semiring"
        )


LOG = Semiring("log", traceback=False)
MAX = Semiring("max", traceback=True)
SAMPLE = Semiring("sample", traceback=True)

_BY_NAME = {s.name: s for s in (LOG, MAX, SAMPLE)}


def get_semiring(semiring: Semiring | str) -> Semiring:
    """Resolve a semiring given by object or by name (``"log"``, ``"max"``, ``"sample"``)."""
    if isinstance(semiring, Semiring):
        return semiring
    try:
        return _BY_NAME[semiring]
    except KeyError:
        raise ValidationError(
            "semiring",
            "unknown semiring name",
            found=repr(semiring),
            fix=f"use one of {sorted(_BY_NAME)}",
        ) from None
