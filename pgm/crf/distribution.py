"""A linear-chain CRF's conditional distribution over tag sequences, as a torch Distribution.

:class:`LinearChainCRFDistribution` is ``p(y | x)`` for fixed chain potentials (emissions with the
start and end scores folded in, and transition scores), so a CRF can be a Pyro sample site
(``pyro.sample("tags", dist, obs=tags)``) or be used wherever torch distributions are: ``log_prob``,
``sample`` (exact, forward filtering backward sampling, with a ``generator``), ``entropy`` and
``mode`` (the Viterbi path), all on :mod:`probforge.ops.chain`. Build one from a
:class:`~pgm.crf.linear_chain.LinearChainCRF` with :meth:`LinearChainCRFDistribution.from_crf`.

Shapes: ``unary`` (..., T, K); ``pair`` (K, K), (..., T-1, K, K) or broadcastable; ``lengths``
(...,) or None. ``batch_shape = unary.shape[:-2]``, ``event_shape = (T,)``; steps beyond a
sequence's length hold ``-1`` in samples and are ignored by ``log_prob``.

Examples
--------
>>> import torch
>>> from pgm.crf.distribution import LinearChainCRFDistribution
>>> d = LinearChainCRFDistribution(torch.zeros(4, 3), torch.zeros(3, 3))
>>> d.batch_shape, d.event_shape
(torch.Size([]), torch.Size([4]))
>>> round(float(d.log_prob(torch.tensor([0, 1, 2, 0]))), 4)  # uniform over 3**4 paths
-4.3944
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from probforge.errors import (
    DtypeMismatchError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.chain import chain_entropy, chain_log_partition, chain_sample, chain_viterbi
from probforge.validate import check_shape, check_tensor

__all__ = ["LinearChainCRFDistribution"]


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The broadcast of two shapes, or None (torch.broadcast_shapes imports sympy on first
    use, seconds on a cold start)."""
    out = []
    for x, y in itertools.zip_longest(reversed(a), reversed(b), fillvalue=1):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


class LinearChainCRFDistribution(Distribution):
    """Distribution over tag sequences of a linear-chain CRF with given potentials.

    Parameters
    ----------
    unary : Tensor, shape (..., T, K)
        Log-potential of each tag at each step (emissions, start scores at step 0, end scores
        at each sequence's last step).
    pair : Tensor, shape (K, K) or (..., T-1, K, K)
        Transition log-potentials, ``pair[i, j]`` for tag ``i`` followed by ``j``; ``-inf``
        forbids a transition.
    lengths : LongTensor, shape (...,), optional
        Valid steps of each sequence (1 <= length <= T; a CRF has no distribution over empty
        tag sequences, so 0 is refused).
    validate_args : bool, optional
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    has_rsample = False

    def __init__(self, unary: Tensor, pair: Tensor, lengths: Tensor | None = None, *,
                 validate_args: bool | None = None) -> None:
        check_tensor(unary, "LinearChainCRFDistribution: unary", floating=True)
        check_tensor(pair, "LinearChainCRFDistribution: pair", floating=True)
        if unary.dim() < 2 or unary.shape[-2] < 1 or unary.shape[-1] < 1:
            raise ShapeError("LinearChainCRFDistribution: unary", "must be (..., T, K) with "
                             "T >= 1 and K >= 1", found=tuple(unary.shape))
        k = unary.shape[-1]
        if pair.dim() < 2 or tuple(pair.shape[-2:]) != (k, k):
            raise ShapeError("LinearChainCRFDistribution: pair", f"must end in (K, K) = ({k}, {k})",
                             found=tuple(pair.shape))
        if lengths is not None:
            t = unary.shape[-2]
            if (not isinstance(lengths, Tensor) or lengths.is_floating_point()
                    or lengths.is_complex() or lengths.dtype == torch.bool):
                raise ValidationError("LinearChainCRFDistribution: lengths",
                                      "must be an integer tensor of the batch shape",
                                      found=lengths.dtype if isinstance(lengths, Tensor)
                                      else type(lengths).__name__)
            if tuple(lengths.shape) != tuple(unary.shape[:-2]):
                raise ShapeError("LinearChainCRFDistribution: lengths",
                                 f"must have the batch shape {tuple(unary.shape[:-2])}",
                                 found=tuple(lengths.shape))
            bad = (lengths < 1) | (lengths > t)
            if bool(bad.any()):
                i = int(bad.reshape(-1).nonzero()[0, 0])
                raise ValidationError("LinearChainCRFDistribution: lengths",
                                      f"must lie in 1..T = 1..{t}",
                                      found=f"{int(lengths.reshape(-1)[i])} at flat index {i}")
            lengths = lengths.to(device=unary.device, dtype=torch.long)
        self.unary, self.pair, self.lengths = unary, pair, lengths
        super().__init__(unary.shape[:-2], unary.shape[-2:-1], validate_args=validate_args)

    @classmethod
    def from_crf(cls, crf: Any, emissions: Tensor, mask: Tensor | None = None
                 ) -> LinearChainCRFDistribution:
        """``p(y | x)`` of a :class:`~pgm.crf.linear_chain.LinearChainCRF` for emissions
        ``(B, T, K)`` (batch-major: samples and values are ``(..., B, T)``)."""
        from pgm.crf.linear_chain import LinearChainCRF

        if not isinstance(crf, LinearChainCRF):
            raise ValidationError("LinearChainCRFDistribution.from_crf: crf",
                                  "must be a LinearChainCRF", found=type(crf).__name__)
        unary, pair, lengths = crf.potentials(emissions, mask)
        return cls(unary, pair, lengths)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> Any:
        low = -1 if self.lengths is not None else 0  # -1 marks padded steps
        return constraints.independent(  # type: ignore[no-untyped-call]
            constraints.integer_interval(low, int(self.unary.shape[-1]) - 1), 1)  # type: ignore[no-untyped-call]

    def _valid(self, t: int, device: torch.device) -> Tensor | None:
        if self.lengths is None:
            return None
        return torch.arange(t, device=device) < self.lengths[..., None]

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(y | x)``, shape ``sample_shape + batch_shape``; padded steps are ignored."""
        t = self.unary.shape[-2]
        k = self.unary.shape[-1]
        name = "LinearChainCRFDistribution.log_prob: value"
        check_tensor(value, name)
        if value.dim() < 1 or value.shape[-1] != t:
            raise ShapeError(name, f"must end in T = {t}", found=tuple(value.shape))
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise DtypeMismatchError(name, "tags must be an integer tensor (floats are not "
                                     "cast)", found=value.dtype, fix="pass value.long()")
        shape = _broadcast(tuple(value.shape[:-1]), tuple(self.batch_shape))
        if shape is None:
            raise ShapeError(name, f"batch dims do not broadcast to {tuple(self.batch_shape)}",
                             found=tuple(value.shape))
        y = value.long().expand(*shape, t)
        valid = self._valid(t, value.device)
        # tags out of range at a real step would be clamped or crash the gather: refused
        # (before torch's own support check, whose ValueError names neither step nor rule)
        bad = (y < 0) | (y >= k)
        if valid is not None:
            bad = bad & valid
        if bool(bad.any()):
            pos = [int(v) for v in bad.nonzero()[0]]
            raise ValidationError(f"{name}{pos}", f"must be a tag in 0..{k - 1} at a real step",
                                  found=int(y[tuple(pos)]),
                                  fix="-1 only marks padded steps (beyond lengths)")
        if self._validate_args:
            try:
                self._validate_sample(value)
            except ValueError as err:
                raise ValidationError(name, "is outside the support", found=str(err)[:120]
                                      ) from err
        yc = y.clamp_min(0)
        unary = self.unary.expand(*shape, *self.unary.shape[-2:])
        node = unary.gather(-1, yc[..., None]).squeeze(-1)  # (..., T)
        pair = self.pair if self.pair.dim() > 2 else self.pair.expand(t - 1, *self.pair.shape)
        pair = pair.expand(*shape, t - 1, *pair.shape[-2:])
        rows = pair.gather(-2, yc[..., :-1, None, None].expand(*yc.shape[:-1], t - 1, 1,
                                                               pair.shape[-1])).squeeze(-2)
        edge = rows.gather(-1, yc[..., 1:, None]).squeeze(-1)  # (..., T-1)
        if valid is not None:
            node = torch.where(valid, node, torch.zeros_like(node))
            edge = torch.where(valid[..., 1:], edge, torch.zeros_like(edge))
        score = node.sum(-1) + edge.sum(-1)
        log_z = chain_log_partition(self.unary, self.pair, self.lengths)
        if log_z.numel() and bool(torch.isneginf(log_z).any()):
            raise ZeroProbabilityEvidence("LinearChainCRFDistribution",
                                          "every tag sequence has potential -inf (log Z = -inf)"
                                          ", so p(y | x) is undefined",
                                          fix="check the -inf potentials")
        return score - log_z

    def sample(self, sample_shape: Any = (), generator: torch.Generator | None = None
               ) -> Tensor:
        """Exact draws ``sample_shape + batch_shape + (T,)`` (``-1`` on padded steps)."""
        sample_shape = torch.Size(
            check_shape(sample_shape, "LinearChainCRFDistribution.sample: sample_shape"))
        if sample_shape.numel() == 0:  # no draw at all
            return torch.zeros((*sample_shape, *self.batch_shape, self.unary.shape[-2]),
                               dtype=torch.long, device=self.unary.device)
        n = max(int(sample_shape.numel()), 1)
        draws = chain_sample(self.unary.detach(), self.pair.detach(), self.lengths,
                             num_samples=n, generator=generator)
        return draws.reshape(*sample_shape, *self.batch_shape, self.unary.shape[-2])

    def entropy(self) -> Tensor:
        """Entropy of the path distribution, shape ``batch_shape``."""
        return chain_entropy(self.unary, self.pair, self.lengths)

    @property
    def mode(self) -> Tensor:
        """The most probable path (Viterbi), ``batch_shape + (T,)``, ``-1`` on padded steps."""
        return chain_viterbi(self.unary, self.pair, self.lengths).path

    def __repr__(self) -> str:
        return (f"LinearChainCRFDistribution(T={self.unary.shape[-2]}, "
                f"K={self.unary.shape[-1]}, batch_shape={tuple(self.batch_shape)})")
