"""The linear-chain conditional random field (11.25) as a layer over emission scores.

For emission scores ``e`` (B, T, K) from any network, start scores ``a`` (K,), transition scores
``W`` (K, K) and end scores ``b`` (K,), a tag sequence ``y`` of length ``L <= T`` scores

    s(y) = a[y_1] + sum_{t=1}^{L} e[t, y_t] + sum_{t=1}^{L-1} W[y_t, y_{t+1}] + b[y_L]

and ``p(y | x) = exp(s(y)) / Z(x)`` with ``Z(x) = sum_y exp(s(y))`` over all ``K^L`` sequences:
(11.25) with state features ``e`` and transition features ``W`` (plus the usual start / end
scores). ``log Z``, posterior marginals (the gradient of ``log Z``), Viterbi and k-best decoding,
exact posterior sampling and the entropy all come from the shared chain core
:mod:`probforge.ops.chain`; this module only builds the chain's potentials:
``unary[t] = e[t]`` plus ``a`` at ``t = 0`` plus ``b`` at the last valid step, ``pair = W``.

Layout and masks follow pytorch-crf: with ``batch_first=True`` (the default here; pytorch-crf's
default is False) emissions are ``(B, T, K)``, tags and mask ``(B, T)``; with
``batch_first=False`` they are ``(T, B, K)`` and ``(T, B)``, and every output with a time axis
comes back in that layout too. A mask (bool or uint8) marks the valid steps; each sequence's
valid steps must be a non-empty prefix (left-aligned ragged batch, ``mask[:, 0]`` all true).
Padded steps are ignored exactly: results equal those of the unpadded sequences.

Constraints (:class:`~pgm.crf.constraints.TransitionConstraints`, e.g. from
:func:`~pgm.crf.constraints.bio_constraints`) set forbidden start / transition / end scores to
``-inf``; forbidden paths then have probability zero.

Parameters and inputs must share a dtype (float32 or float64; cast with ``crf.to(dtype)``) and a
device.

Examples
--------
>>> import torch
>>> from pgm.crf import LinearChainCRF
>>> from probforge.ops.random import make_generator
>>> g = make_generator(0)
>>> crf = LinearChainCRF(3, generator=g)
>>> emissions = torch.randn(2, 4, 3, generator=g)
>>> tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
>>> mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
>>> loss = crf.nll(emissions, tags, mask)            # mean over the batch
>>> loss.backward()
>>> crf.decode(emissions, mask).path                 # padded steps are -1
tensor([[ 0,  1,  2,  2],
        [ 0,  2, -1, -1]])
>>> crf.marginals(emissions, mask).sum(-1).detach().round(decimals=6)  # each valid step: 1
tensor([[1., 1., 1., 1.],
        [1., 1., 0., 0.]])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from pgm.crf.constraints import TransitionConstraints
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.chain import (
    ChainMarginals,
    ChainPath,
    chain_entropy,
    chain_kbest,
    chain_log_partition,
    chain_marginals,
    chain_sample,
    chain_viterbi,
)
from probforge.ops.random import check_generator
from probforge.validate import check_device, check_int, check_real

__all__ = ["REDUCTIONS", "LinearChainCRF"]

REDUCTIONS = ("none", "sum", "mean", "token_mean")


class LinearChainCRF(nn.Module):
    """A linear-chain CRF over emission scores, with constraints, marginals and decoding.

    Parameters
    ----------
    num_tags : int
        Number of tags K.
    batch_first : bool
        ``True`` (default): inputs ``(B, T, ...)``; ``False``: ``(T, B, ...)`` as pytorch-crf's
        default.
    constraints : TransitionConstraints, optional
        Allowed starts / transitions / ends; forbidden ones score ``-inf``.
    init_scale : float
        Parameters start uniform on ``[-init_scale, init_scale]`` (pytorch-crf: 0.1).
    generator : torch.Generator, optional
        Draws the initial parameters (the global RNG if None).
    dtype, device : optional
        Of the parameters (default float32 on the CPU).

    Attributes
    ----------
    start_transitions : Parameter
        ``(K,)`` start scores ``a``.
    end_transitions : Parameter
        ``(K,)`` end scores ``b``.
    transitions : Parameter
        ``(K, K)`` transition scores, ``transitions[i, j]`` for tag ``i`` followed by ``j``.
    allowed_start, allowed_transitions, allowed_end : Tensor or None
        Bool buffers from ``constraints`` (None when unconstrained).
    """

    allowed_start: Tensor | None
    allowed_transitions: Tensor | None
    allowed_end: Tensor | None

    def __init__(
        self,
        num_tags: int,
        *,
        batch_first: bool = True,
        constraints: TransitionConstraints | None = None,
        init_scale: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        num_tags = check_int(num_tags, "LinearChainCRF num_tags", minimum=1)
        init_scale = check_real(init_scale, "LinearChainCRF init_scale", minimum=0.0)
        if not isinstance(batch_first, bool):
            raise ValidationError("LinearChainCRF batch_first", "must be a bool",
                                  found=repr(batch_first))
        if dtype is not None and (not isinstance(dtype, torch.dtype)
                                  or not dtype.is_floating_point):
            raise ValidationError("LinearChainCRF dtype", "must be a floating torch.dtype",
                                  found=repr(dtype), fix="use torch.float32 or torch.float64")
        if device is not None:
            device = check_device(device, "LinearChainCRF device")
        self.num_tags = num_tags
        self.batch_first = batch_first
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        self.start_transitions = nn.Parameter(torch.empty(num_tags, **kw))
        self.end_transitions = nn.Parameter(torch.empty(num_tags, **kw))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags, **kw))
        with torch.no_grad():
            for p in (self.start_transitions, self.end_transitions, self.transitions):
                if init_scale == 0:  # no draw at all: the RNG is left alone
                    p.zero_()
                    continue
                check_generator(generator, p.device)
                u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
                p.copy_((2 * u - 1) * init_scale)
        self.set_constraints(constraints)

    # ------------------------------------------------------------------------------------------
    # Construction helpers

    def set_constraints(self, constraints: TransitionConstraints | None) -> None:
        """Replace the allowed-transition constraints (None removes them)."""
        if constraints is not None and not isinstance(constraints, TransitionConstraints):
            raise ValidationError("constraints", "must be a TransitionConstraints (see "
                                  "pgm.crf.constraints) or None", found=type(constraints).__name__)
        if constraints is None:
            self.register_buffer("allowed_start", None)
            self.register_buffer("allowed_transitions", None)
            self.register_buffer("allowed_end", None)
            return
        constraints.validate(self.num_tags)
        dev = self.transitions.device
        self.register_buffer("allowed_start", constraints.start.to(dev))
        self.register_buffer("allowed_transitions", constraints.transitions.to(dev))
        self.register_buffer("allowed_end", constraints.end.to(dev))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        # the constraints are part of the state: adopt (or drop) them before the strict check
        names = ("allowed_start", "allowed_transitions", "allowed_end")
        present = [prefix + n in state_dict for n in names]
        if all(present):
            self.set_constraints(TransitionConstraints(
                *(state_dict[prefix + n].to(torch.bool) for n in names)))
        elif not any(present):
            self.set_constraints(None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def from_torchcrf(cls, crf: nn.Module) -> LinearChainCRF:
        """A copy of a pytorch-crf ``torchcrf.CRF`` (same scores, same ``batch_first``).

        Parameters
        ----------
        crf : torchcrf.CRF
            The module; its ``start_transitions``, ``end_transitions`` and ``transitions`` are
            copied (not shared).
        """
        try:
            k = int(crf.num_tags)  # type: ignore[arg-type]
            tensors = [getattr(crf, n).detach() for n in
                       ("start_transitions", "end_transitions", "transitions")]
        except AttributeError as err:
            raise ValidationError("from_torchcrf", "expects a torchcrf.CRF module",
                                  found=type(crf).__name__) from err
        p = tensors[2]
        out = cls(k, batch_first=bool(getattr(crf, "batch_first", False)), dtype=p.dtype,
                  device=p.device)
        with torch.no_grad():
            out.start_transitions.copy_(tensors[0])
            out.end_transitions.copy_(tensors[1])
            out.transitions.copy_(tensors[2])
        return out

    def extra_repr(self) -> str:
        c = ", constrained" if self.allowed_transitions is not None else ""
        return f"num_tags={self.num_tags}, batch_first={self.batch_first}{c}"

    # ------------------------------------------------------------------------------------------
    # Potentials

    def scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """Start ``(K,)``, transition ``(K, K)`` and end ``(K,)`` scores, ``-inf`` where
        forbidden by the constraints."""
        start: Tensor = self.start_transitions
        trans: Tensor = self.transitions
        end: Tensor = self.end_transitions
        if self.allowed_transitions is not None:
            assert self.allowed_start is not None and self.allowed_end is not None
            start = start.masked_fill(~self.allowed_start, -math.inf)
            trans = trans.masked_fill(~self.allowed_transitions, -math.inf)
            end = end.masked_fill(~self.allowed_end, -math.inf)
        return start, trans, end

    def _batch_major(self, x: Tensor | None) -> Tensor | None:
        if x is None or self.batch_first:
            return x
        return x.transpose(0, 1)

    def _time_layout(self, x: Tensor, time_dim: int) -> Tensor:
        """Put a batch-major output (batch dim 0) back in the caller's layout: time first."""
        return x if self.batch_first else x.movedim(time_dim, 0)

    def _check_emissions(self, emissions: Tensor) -> Tensor:
        if not isinstance(emissions, Tensor) or emissions.dim() != 3:
            raise ShapeError("emissions", "must be a 3-d tensor "
                             + ("(B, T, K)" if self.batch_first else "(T, B, K)"),
                             found=tuple(emissions.shape) if isinstance(emissions, Tensor)
                             else type(emissions).__name__)
        if emissions.shape[-1] != self.num_tags:
            raise ShapeError("emissions", f"last dimension must be num_tags={self.num_tags}",
                             found=tuple(emissions.shape))
        if emissions.dtype != self.transitions.dtype:
            raise DtypeMismatchError("emissions", f"has dtype {emissions.dtype}, the CRF's "
                                     f"parameters {self.transitions.dtype}",
                                     fix=f"cast one of them, e.g. crf.to({emissions.dtype})")
        if emissions.device != self.transitions.device:
            raise DeviceMismatchError("emissions", f"are on {emissions.device}, the CRF on "
                                      f"{self.transitions.device}", fix="move them together")
        e = self._batch_major(emissions)
        assert e is not None
        if e.shape[1] == 0:
            raise ShapeError("emissions", "need at least one time step (a CRF has no "
                             "distribution over empty tag sequences)", found=tuple(e.shape),
                             fix="drop empty sentences before batching")
        return e

    def _lengths(self, mask: Tensor | None, b: int, t: int, device: torch.device
                 ) -> Tensor | None:
        """``(B,)`` lengths from a left-aligned mask (None: every sequence has length T)."""
        if mask is None:
            return None
        if not isinstance(mask, Tensor) or mask.dim() != 2:
            raise ShapeError("mask", "must be a 2-d bool tensor "
                             + ("(B, T)" if self.batch_first else "(T, B)"),
                             found=tuple(mask.shape) if isinstance(mask, Tensor)
                             else type(mask).__name__)
        m = self._batch_major(mask)
        assert m is not None
        if m.shape != (b, t):
            raise ShapeError("mask", "must match the emissions' batch and time dimensions",
                             found=f"mask {tuple(mask.shape)} vs emissions' {(b, t) if self.batch_first else (t, b)}")  # noqa: E501
        if m.dtype not in (torch.bool, torch.uint8):
            raise ValidationError("mask", "must be a bool (or uint8) tensor", found=m.dtype,
                                  fix="pass mask.bool()")
        if m.device != device:
            raise DeviceMismatchError("mask", f"is on {m.device}, the emissions on {device}",
                                      fix="move the mask to the emissions' device")
        m = m.bool()
        lengths = m.sum(-1)
        expected = torch.arange(t, device=device) < lengths[:, None]
        bad = (m != expected).any(-1) | (lengths == 0)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValidationError(
                f"mask (sequence {i})", "valid steps must be a non-empty prefix: "
                "left-aligned, first step on", found=m[i].int().tolist(),
                fix="pad at the end and keep mask[:, 0] true")
        return lengths

    def potentials(
        self, emissions: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The chain potentials handed to :mod:`probforge.ops.chain`.

        Parameters
        ----------
        emissions : Tensor
            ``(B, T, K)`` (or ``(T, B, K)`` if not ``batch_first``).
        mask : Tensor, optional
            ``(B, T)`` bool (or ``(T, B)``), left-aligned.

        Returns
        -------
        unary : Tensor
            ``(B, T, K)``: emissions, plus start scores at step 0, plus end scores at each
            sequence's last valid step.
        pair : Tensor
            ``(K, K)`` transition scores (``-inf`` where forbidden).
        lengths : Tensor or None
            ``(B,)`` long, None when there is no mask.
        """
        e = self._check_emissions(emissions)
        b, t, _ = e.shape
        lengths = self._lengths(mask, b, t, e.device)
        unary, trans = self._chain_potentials(e, lengths)
        return unary, trans, lengths

    def _chain_potentials(self, e: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """:meth:`potentials` of checked batch-major emissions and lengths."""
        t = e.shape[1]
        start, trans, end = self.scores()
        first = e[:, :1] + start
        if lengths is None:
            if t == 1:
                unary = first + end
            else:
                unary = torch.cat([first, e[:, 1:-1], e[:, -1:] + end], dim=1)
        else:
            unary = torch.cat([first, e[:, 1:]], dim=1)
            last = torch.arange(t, device=e.device) == (lengths - 1)[:, None]
            unary = torch.where(last[..., None], unary + end, unary)
        return unary, trans

    # ------------------------------------------------------------------------------------------
    # Likelihood

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Unnormalised log-score ``s(y)`` of each tag sequence, ``(B,)``.

        Tags at padded steps are ignored (any value). ``-inf`` for a sequence the constraints
        (or ``-inf`` emissions) forbid.

        Raises
        ------
        NonFiniteError
            For NaN or +inf on a gold path (an emission at a valid step, or a parameter).
        """
        e = self._check_emissions(emissions)
        b, t, _ = e.shape
        lengths = self._lengths(mask, b, t, e.device)
        s = self._score(e, tags, lengths)
        # one reduction over (B,): NaN or +inf anywhere on a gold path shows up here
        if s.numel() and bool(torch.isnan(s).any() | (s == math.inf).any()):
            self._raise_nonfinite(e, lengths)
        return s

    def _score(self, e: Tensor, tags: Tensor, lengths: Tensor | None) -> Tensor:
        """:meth:`score` of checked batch-major emissions, without the finiteness check."""
        b, t, _ = e.shape
        y = self._check_tags(tags, b, t, lengths)
        start, trans, end = self.scores()
        if lengths is None:
            valid = None
            last_tag = y[:, -1]
        else:
            valid = torch.arange(t, device=e.device) < lengths[:, None]
            y = y.masked_fill(~valid, 0)
            last_tag = y.gather(1, (lengths - 1)[:, None]).squeeze(1)
        emit = e.gather(-1, y[..., None]).squeeze(-1)  # (B, T)
        step = trans[y[:, :-1], y[:, 1:]]  # (B, T-1)
        if valid is not None:
            emit = emit.masked_fill(~valid, 0.0)
            step = step.masked_fill(~valid[:, 1:], 0.0)
        out: Tensor = start[y[:, 0]] + emit.sum(-1) + step.sum(-1) + end[last_tag]
        return out

    def _raise_nonfinite(self, e: Tensor, lengths: Tensor | None) -> None:
        """Name the first NaN / +inf emission at a valid step, or the parameter holding one."""
        t = e.shape[1]
        bad = torch.isnan(e) | (e == math.inf)
        if lengths is not None:
            bad = bad & (torch.arange(t, device=e.device) < lengths[:, None])[..., None]
        if bool(bad.any()):
            i, j, k = (int(v) for v in bad.nonzero()[0])
            where = f"[{i}, {j}, {k}]" if self.batch_first else f"[{j}, {i}, {k}]"
            raise NonFiniteError(f"emissions{where}", "must be finite or -inf (no NaN, no +inf)",
                                 found=float(e[i, j, k]),
                                 fix="check the network producing them (padded steps may "
                                 "hold anything)")
        for name, p in (("start_transitions", self.start_transitions),
                        ("transitions", self.transitions),
                        ("end_transitions", self.end_transitions)):
            if bool((torch.isnan(p) | (p == math.inf)).any()):
                raise NonFiniteError(f"LinearChainCRF.{name}", "holds NaN or +inf",
                                     fix="training diverged: lower the learning rate or "
                                     "reload a checkpoint")

    def _check_tags(self, tags: Tensor, b: int, t: int, lengths: Tensor | None) -> Tensor:
        if not isinstance(tags, Tensor) or tags.dim() != 2:
            raise ShapeError("tags", "must be a 2-d integer tensor "
                             + ("(B, T)" if self.batch_first else "(T, B)"),
                             found=tuple(tags.shape) if isinstance(tags, Tensor)
                             else type(tags).__name__)
        y = self._batch_major(tags)
        assert y is not None
        if y.shape != (b, t):
            raise ShapeError("tags", "must match the emissions' batch and time dimensions",
                             found=f"tags {tuple(tags.shape)}")
        if y.device != self.transitions.device:
            raise DeviceMismatchError("tags", f"are on {y.device}, the CRF on "
                                      f"{self.transitions.device}", fix="move them together")
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise ValidationError("tags", "must be an integer tensor", found=y.dtype,
                                  fix="pass tags.long()")
        y = y.long()
        valid = y if lengths is None else y.masked_fill(
            torch.arange(t, device=y.device) >= lengths[:, None], 0)
        bad = (valid < 0) | (valid >= self.num_tags)
        if bool(bad.any()):
            i, j = (int(v) for v in bad.nonzero()[0])
            where = f"tags[{i}, {j}]" if self.batch_first else f"tags[{j}, {i}]"
            raise ValidationError(where,
                                  f"must be a tag index in 0..{self.num_tags - 1}",
                                  found=int(valid[i, j]))
        return y

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log Z(x)`` of each sequence, ``(B,)`` (``-inf`` if the constraints forbid every
        path)."""
        unary, pair, lengths = self.potentials(emissions, mask)
        return chain_log_partition(unary, pair, lengths)

    def log_prob(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log p(y | x)`` of each tag sequence, ``(B,)``.

        Raises
        ------
        ZeroProbabilityEvidence
            If the constraints forbid a gold sequence (its log-probability would be ``-inf``).
        """
        e = self._check_emissions(emissions)
        b, t, _ = e.shape
        lengths = self._lengths(mask, b, t, e.device)
        s = self._score(e, tags, lengths)
        unary, pair = self._chain_potentials(e, lengths)
        log_z = chain_log_partition(unary, pair, lengths)
        out = s - log_z
        # one host sync in the common case: everything finite. Otherwise find out why: NaN /
        # +inf on the gold path, a forbidden gold path (constraints), or no allowed path at all
        # (-inf - -inf would be NaN)
        if out.numel() and not bool(torch.isfinite(out).all()):
            if bool(torch.isnan(s).any() | (s == math.inf).any()):
                self._raise_nonfinite(e, lengths)
            if bool(torch.isneginf(log_z).any()):
                i = int(torch.isneginf(log_z).nonzero()[0, 0])
                raise ZeroProbabilityEvidence(
                    f"emissions (sequence {i})", "every tag sequence has score -inf (log Z = "
                    "-inf), so p(y | x) is undefined",
                    fix="check the -inf emissions and the constraints")
            if self.allowed_transitions is not None and bool(torch.isneginf(s).any()):
                i = int(torch.isneginf(s).nonzero()[0, 0])
                raise ZeroProbabilityEvidence(
                    f"tags (sequence {i})",
                    "use a start, transition or end the constraints forbid",
                    fix="fix the tags or the constraints")
        return out

    def log_likelihood(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
        reduction: str = "sum",
    ) -> Tensor:
        """pytorch-crf's ``CRF.forward``: the log-likelihood, reduced (default ``"sum"``).

        Equals ``-nll(emissions, tags, mask, reduction)``.
        """
        return -self.nll(emissions, tags, mask, reduction=reduction)

    def nll(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """Negative log-likelihood ``-log p(y | x)``.

        Parameters
        ----------
        emissions : Tensor
            ``(B, T, K)`` (or ``(T, B, K)``).
        tags : Tensor
            ``(B, T)`` (or ``(T, B)``) integer tags; padded steps ignored.
        mask : Tensor, optional
            ``(B, T)`` (or ``(T, B)``) left-aligned bool mask.
        reduction : {"mean", "sum", "token_mean", "none"}
            ``"mean"`` (default): average over sequences; ``"sum"``; ``"token_mean"``: sum over
            the number of valid tokens; ``"none"``: ``(B,)``. (pytorch-crf's names; note
            pytorch-crf's ``forward`` returns the log-likelihood summed by default.)

        Returns
        -------
        Tensor
            ``()`` or ``(B,)``. On an empty batch (``B = 0``): ``"none"`` gives a ``(0,)``
            tensor and ``"sum"`` gives 0 (the sum of nothing); ``"mean"`` and ``"token_mean"``
            raise :class:`~probforge.errors.ValidationError` (a mean over nothing is
            undefined).
        """
        if not isinstance(reduction, str) or reduction not in REDUCTIONS:
            raise ValidationError("reduction", f"must be one of {REDUCTIONS}",
                                  found=repr(reduction))
        out = -self.log_prob(emissions, tags, mask)
        if reduction == "none":
            return out
        if reduction == "sum":
            return out.sum()
        if out.shape[0] == 0:
            raise ValidationError(f"nll(reduction={reduction!r})", "the batch is empty, and a "
                                  "mean over zero sequences is undefined", found="0 sequences",
                                  fix="skip empty batches, or use reduction='sum' (0 here)")
        if reduction == "mean":
            return out.mean()
        e = self._batch_major(emissions)
        assert e is not None
        m = self._batch_major(mask)
        n_tokens = e.shape[0] * e.shape[1] if m is None else m.bool().sum()
        return out.sum() / n_tokens

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """The training loss: :meth:`nll` (not pytorch-crf's log-likelihood; see
        :meth:`log_likelihood` for that)."""
        return self.nll(emissions, tags, mask, reduction=reduction)

    # ------------------------------------------------------------------------------------------
    # Posterior queries

    def marginals(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Posterior tag marginals ``p(y_t = k | x)``, ``(B, T, K)`` (zero at padded steps).

        Differentiable; equal to the gradient of ``log Z`` with respect to the emissions.

        Raises
        ------
        ZeroProbabilityEvidence
            If the constraints forbid every path of a sequence.
        """
        unary, pair, lengths = self.potentials(emissions, mask)
        res = chain_marginals(unary, pair, lengths, pairwise=False)
        return self._time_layout(res.unary, time_dim=1)

    def posterior(self, emissions: Tensor, mask: Tensor | None = None) -> ChainMarginals:
        """``log Z`` ``(B,)``, tag marginals ``(B, T, K)`` and pairwise marginals
        ``(B, T-1, K, K)`` (``pair[b, t, i, j] = p(y_t = i, y_{t+1} = j | x)``), batch-major
        whatever ``batch_first`` says."""
        unary, pair, lengths = self.potentials(emissions, mask)
        return chain_marginals(unary, pair, lengths, pairwise=True)

    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> ChainPath:
        """Viterbi decoding: the most probable tag sequence of each input.

        Returns
        -------
        ChainPath
            ``score`` ``(B,)``: the best path's ``s(y)``; ``path`` ``(B, T)`` (``(T, B)`` if not
            ``batch_first``) long tags, ``-1`` at padded steps.
        """
        unary, pair, lengths = self.potentials(emissions, mask)
        res = chain_viterbi(unary, pair, lengths)
        return ChainPath(res.score, self._time_layout(res.path, time_dim=1))

    def decode_lists(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """Viterbi tags as lists of valid length, batch order (pytorch-crf's ``decode``)."""
        path = self.decode(emissions, mask).path
        path = path if self.batch_first else path.transpose(0, 1)
        return [[int(v) for v in row if v >= 0] for row in path.tolist()]

    def kbest(self, emissions: Tensor, k: int, mask: Tensor | None = None) -> ChainPath:
        """The ``k`` best distinct tag sequences, best first.

        Returns
        -------
        ChainPath
            ``score`` ``(B, k)``; ``path`` ``(B, k, T)`` (``(T, B, k)`` if not ``batch_first``).
            With fewer than ``k`` allowed sequences the extra scores are ``-inf`` and the paths
            ``-1``.
        """
        k = check_int(k, "k", minimum=1)
        unary, pair, lengths = self.potentials(emissions, mask)
        res = chain_kbest(unary, pair, k, lengths)
        return ChainPath(res.score, self._time_layout(res.path, time_dim=2))

    def sample(
        self, emissions: Tensor, mask: Tensor | None = None, *, num_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact draws from ``p(y | x)`` (forward filtering, backward sampling).

        Returns
        -------
        Tensor
            ``(num_samples, B, T)`` long (``(num_samples, T, B)`` if not ``batch_first``),
            ``-1`` at padded steps.
        """
        num_samples = check_int(num_samples, "num_samples", minimum=1)
        unary, pair, lengths = self.potentials(emissions, mask)
        check_generator(generator, unary.device)
        draws = chain_sample(unary, pair, lengths, num_samples=num_samples, generator=generator)
        return draws if self.batch_first else draws.transpose(1, 2)

    def entropy(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Entropy (nats) of ``p(y | x)`` for each sequence, ``(B,)``."""
        unary, pair, lengths = self.potentials(emissions, mask)
        return chain_entropy(unary, pair, lengths)
