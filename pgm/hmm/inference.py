"""HMM inference on batches of variable-length sequences, on the shared chain core.

All functions take a :class:`~pgm.hmm.model.HiddenMarkovModel` and observations ``x`` of shape
``(..., T, *event)`` (``...`` = any batch dims, possibly none) and accept

- ``lengths`` (LongTensor (...)) or ``mask`` (bool (..., T), True on real steps, a prefix of each
  sequence): later steps are padding, ignored exactly and free to hold anything;
- ``missing`` (bool (..., T)): observations that are missing (their emission term is dropped,
  i.e. marginalised out; they may hold NaN);
- ``clamp`` (LongTensor (..., T), ``-1`` = free): states known in advance (semi-supervised);
- ``method``: ``"auto" | "sequential" | "parallel"`` as in :mod:`probforge.ops.chain`.

Everything is computed in log space by :mod:`probforge.ops.chain`: ``unary[t] = log p(x_t | k)``
(plus ``log p(y_0)`` at ``t = 0``) and ``pair = log A``.

Examples
--------
>>> import torch
>>> from pgm.hmm import CategoricalEmission, HiddenMarkovModel, log_likelihood, viterbi
>>> hmm = HiddenMarkovModel.from_probs(
...     torch.tensor([0.5, 0.5], dtype=torch.float64),
...     torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64),
...     CategoricalEmission(torch.tensor([[0.7, 0.3], [0.1, 0.9]], dtype=torch.float64).log()),
... )
>>> x = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])
>>> log_likelihood(hmm, x, lengths=torch.tensor([4, 2]))
tensor([-3.1593, -0.9039], dtype=torch.float64)
>>> viterbi(hmm, x).states
tensor([[0, 0, 0, 0],
        [1, 1, 0, 0]])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from pgm.hmm.emissions import CategoricalEmission
from pgm.hmm.model import HiddenMarkovModel
from probforge.errors import ShapeError, ValidationError
from probforge.ops.chain import (
    chain_forward,
    chain_kbest,
    chain_log_partition_indexed,
    chain_log_partition_streamed,
    chain_marginals,
    chain_sample,
    chain_viterbi,
)
from probforge.ops.chain.streamed import streams

__all__ = [
    "ChainInputs",
    "HMMPath",
    "HMMPosterior",
    "chain_inputs",
    "filter_states",
    "kbest",
    "log_likelihood",
    "posterior",
    "sample_states",
    "viterbi",
]


class HMMPosterior(NamedTuple):
    """Posterior of the hidden states.

    Attributes
    ----------
    log_likelihood : Tensor, shape (...)
        ``log p(x)`` (with clamped states: ``log p(x, clamped states)``).
    state_probs : Tensor, shape (..., T, K)
        ``p(y_t = k | x)``; zero at padded steps.
    transition_probs : Tensor, shape (..., T-1, K, K), or None
        ``p(y_t = i, y_{t+1} = j | x)`` when requested.
    """

    log_likelihood: Tensor
    state_probs: Tensor
    transition_probs: Tensor | None


class HMMPath(NamedTuple):
    """Decoded state path(s).

    Attributes
    ----------
    log_prob : Tensor, shape (...) or (..., k)
        Joint ``log p(x, path)``.
    states : LongTensor, shape (..., T) or (..., k, T)
        ``-1`` at padded steps.
    """

    log_prob: Tensor
    states: Tensor


class ChainInputs(NamedTuple):
    """What an HMM hands to the chain core."""

    unary: Tensor  # (..., T, K)
    pair: Tensor  # (K, K)
    lengths: Tensor | None  # (...)
    valid: Tensor  # (..., T) bool, real steps
    observed: Tensor  # (..., T) bool, real and observed steps


def _batch_and_T(model: HiddenMarkovModel, x: Tensor) -> tuple[tuple[int, ...], int]:
    ed = model.emission.event_dim
    if not isinstance(x, Tensor) or x.dim() < 1 + ed:
        raise ShapeError(
            "observations",
            f"must have shape (..., T{', *event' if ed else ''}) with {ed} event dim(s) for "
            f"{type(model.emission).__name__}",
            found=tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__,
        )
    batch = tuple(x.shape[: x.dim() - 1 - ed])
    return batch, int(x.shape[len(batch)])


def _resolve_lengths(
    lengths: Tensor | None, mask: Tensor | None, batch: tuple[int, ...], T: int,
    device: torch.device,
) -> tuple[Tensor | None, Tensor]:
    if lengths is not None and mask is not None:
        raise ValidationError("lengths / mask", "give one of them, not both")
    steps = torch.arange(T, device=device)
    if mask is not None:
        if mask.dtype != torch.bool or tuple(mask.shape) != (*batch, T):
            raise ShapeError("mask", f"must be a bool tensor of shape {(*batch, T)}",
                             found=(tuple(mask.shape), mask.dtype))
        mask = mask.to(device)
        lengths = mask.sum(-1)
        prefix = steps < lengths[..., None]
        if not torch.equal(prefix, mask):
            bad = (prefix != mask).reshape(-1, T).any(-1).nonzero()[0, 0]
            raise ValidationError(
                f"mask of sequence {int(bad)} (flattened batch index)",
                "real steps must come first (padding only at the end)",
                fix="left-align the sequences or pass `missing` for gaps",
            )
    if lengths is None:
        return None, torch.ones(*batch, T, dtype=torch.bool, device=device)
    if not isinstance(lengths, Tensor) or lengths.is_floating_point():
        raise ValidationError("lengths", "must be an integer tensor of the batch shape",
                              found=type(lengths).__name__)
    if tuple(lengths.shape) != batch:
        raise ShapeError("lengths", f"must have the batch shape {batch} of the observations",
                         found=tuple(lengths.shape))
    lengths = lengths.to(device=device, dtype=torch.long)
    bad = (lengths < 1) | (lengths > T)
    if bool(bad.any()):
        i = int(bad.reshape(-1).nonzero()[0, 0])
        raise ValidationError(
            f"lengths of sequence {i} (flattened batch index)",
            f"must lie in 1..T = 1..{T}",
            found=int(lengths.reshape(-1)[i]),
        )
    return lengths, steps < lengths[..., None]


class _Inputs(NamedTuple):
    """Validated observations and masks of an HMM call (everything but the unary tensor)."""

    batch: tuple[int, ...]
    T: int
    x: Tensor  # (..., T, *event) on the model's device
    lengths: Tensor | None  # (...)
    valid: Tensor  # (..., T)
    observed: Tensor  # (..., T)
    clamp: Tensor | None  # (..., T)
    all_observed: bool  # no padding, nothing missing: the masks need not be applied


def _validate(
    model: HiddenMarkovModel,
    x: Tensor,
    lengths: Tensor | None,
    mask: Tensor | None,
    missing: Tensor | None,
    clamp: Tensor | None,
) -> _Inputs:
    batch, T = _batch_and_T(model, x)
    dev = model.device
    x = x.to(dev)
    lens, valid = _resolve_lengths(lengths, mask, batch, T, dev)
    observed = valid
    if missing is not None:
        if missing.dtype != torch.bool or tuple(missing.shape) != (*batch, T):
            raise ShapeError("missing", f"must be a bool tensor of shape {(*batch, T)}",
                             found=(tuple(missing.shape), missing.dtype))
        observed = valid & ~missing.to(dev)
    model.emission.check(x, observed)
    if clamp is not None:
        if clamp.is_floating_point() or tuple(clamp.shape) != (*batch, T):
            raise ShapeError("clamp", f"must be an integer tensor of shape {(*batch, T)}",
                             found=(tuple(clamp.shape), clamp.dtype))
        clamp = clamp.to(dev)
        K = model.n_states
        bad = ((clamp < -1) | (clamp >= K)) & valid
        if bool(bad.any()):
            flat = int(bad.reshape(-1).nonzero()[0, 0])
            raise ValidationError(
                f"clamp at flattened sequence {flat // T}, step {flat % T}",
                f"must be -1 (free) or a state in 0..{K - 1}",
                found=int(clamp.reshape(-1)[flat]),
            )
    return _Inputs(batch, T, x, lens, valid, observed, clamp, bool(observed.all()))


def _unary(model: HiddenMarkovModel, inp: _Inputs, t0: int, t1: int) -> Tensor:
    """The chain's unary log-potentials (..., t1 - t0, K) of steps ``t0 .. t1 - 1``."""
    em = model.emission
    d = len(inp.batch)
    whole = t0 == 0 and t1 == inp.T
    x = inp.x if whole else inp.x.narrow(d, t0, t1 - t0)
    observed = inp.observed if whole else inp.observed[..., t0:t1]
    if inp.all_observed and em.fresh_log_prob:
        unary = em.log_prob(x)  # a new tensor: the initial term can be added in place
        dev = unary.device
    else:
        ll = em.log_prob(em.fill(x, observed))
        dev = ll.device
        # a new tensor (never the emission's own), so the initial term can be added in place
        unary = torch.where(observed[..., None], ll, torch.zeros((), dtype=ll.dtype, device=dev))
    if t0 == 0:
        unary[..., 0, :] += model.log_initial
    if inp.clamp is not None:
        clamp = inp.clamp if whole else inp.clamp[..., t0:t1]
        allowed = (clamp[..., None] < 0) | (
            clamp[..., None] == torch.arange(model.n_states, device=dev)
        )
        unary = torch.where(allowed, unary, torch.full((), -math.inf, dtype=unary.dtype,
                                                       device=dev))
    return unary


def _unary_time_major(model: HiddenMarkovModel, inp: _Inputs, B: int,
                      xt: Tensor | None, t0: int, t1: int) -> Tensor:
    """:func:`_unary` of the ``B`` flattened sequences, time-major: (t1 - t0, B, K).

    With ``xt``, the observations as a contiguous (T, B, *event) tensor (only where every step
    is observed and nothing is clamped), the emission computes the block from it directly (a
    fresh tensor, laid out as the streamed forward reads it); otherwise it is a transposed
    view of :func:`_unary`'s block."""
    if xt is not None:
        unary = model.emission.log_prob(xt[t0:t1])
        if t0 == 0:
            unary[0] += model.log_initial
        return unary
    return _unary(model, inp, t0, t1).reshape(B, t1 - t0, model.n_states).transpose(0, 1)


def chain_inputs(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
) -> ChainInputs:
    """Validate the inputs and build the chain potentials of an HMM.

    Returns
    -------
    ChainInputs
        ``unary`` (..., T, K): emission log-likelihoods (0 at missing and padded steps) plus
        ``log p(y_0)`` at ``t = 0``, ``-inf`` for states excluded by ``clamp``; ``pair`` (K, K);
        ``lengths``; ``valid`` and ``observed`` masks (..., T).
    """
    inp = _validate(model, x, lengths, mask, missing, clamp)
    return ChainInputs(_unary(model, inp, 0, inp.T), model.log_transition, inp.lengths,
                       inp.valid, inp.observed)


def log_likelihood(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    method: str = "auto",
) -> Tensor:
    """``log p(x)`` of each sequence (the forward algorithm); differentiable.

    Returns
    -------
    Tensor, shape (...)
        ``-inf`` for a sequence of probability zero.
    """
    inp = _validate(model, x, lengths, mask, missing, clamp)
    B = math.prod(inp.batch)
    lens = None if inp.lengths is None else inp.lengths.reshape(B)
    # the unary potentials a block of steps at a time (see chain_log_partition_streamed), in
    # the kernel's time-major layout where it runs (the whole-tensor path reads batch-major)
    pair = model.log_transition
    em = model.emission
    if (isinstance(em, CategoricalEmission) and missing is None and clamp is None
            and streams(pair, method)):
        # symbols pick rows of the emission table: exponentiated once, no per-step exp
        log_z = chain_log_partition_indexed(
            em.log_probs.t(), inp.x.reshape(B, inp.T), pair, lens, initial=model.log_initial,
            method=method)
    elif streams(pair, method):
        xt = None
        if inp.all_observed and model.emission.fresh_log_prob and inp.clamp is None:
            # one time-major copy of the observations: each block of it is then contiguous
            xt = inp.x.reshape(B, inp.T, *inp.x.shape[len(inp.batch) + 1:]).transpose(0, 1)
            xt = xt.contiguous()
        log_z = chain_log_partition_streamed(
            lambda t0, t1: _unary_time_major(model, inp, B, xt, t0, t1), pair, B, inp.T, lens,
            method=method, time_major=True)
    else:
        log_z = chain_log_partition_streamed(
            lambda t0, t1: _unary(model, inp, t0, t1).reshape(B, t1 - t0, model.n_states),
            pair, B, inp.T, lens, method=method)
    out: Tensor = log_z.reshape(inp.batch)
    return out


def posterior(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    pairwise: bool = False,
    method: str = "auto",
) -> HMMPosterior:
    """Posterior state marginals (forward-backward), optionally pairwise.

    Raises
    ------
    ZeroProbabilityEvidence
        If a sequence has probability zero under the model.
    """
    c = chain_inputs(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    m = chain_marginals(c.unary, c.pair, c.lengths, method=method, pairwise=pairwise)
    return HMMPosterior(m.log_z, m.unary, m.pair)


def filter_states(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    method: str = "auto",
) -> Tensor:
    """Filtering distributions ``p(y_t = k | x_0..x_t)``: (..., T, K), zero at padded steps."""
    c = chain_inputs(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    return chain_forward(c.unary, c.pair, c.lengths, method=method, normalized=True).exp()


def viterbi(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    method: str = "auto",
) -> HMMPath:
    """Most probable state path and its joint log-probability ``log p(x, path)``."""
    c = chain_inputs(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    v = chain_viterbi(c.unary, c.pair, c.lengths, method=method)
    return HMMPath(v.score, v.path)


def kbest(
    model: HiddenMarkovModel,
    x: Tensor,
    k: int,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
) -> HMMPath:
    """The ``k`` most probable distinct state paths, best first: (..., k) and (..., k, T)."""
    c = chain_inputs(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    v = chain_kbest(c.unary, c.pair, k, c.lengths)
    return HMMPath(v.score, v.path)


def sample_states(
    model: HiddenMarkovModel,
    x: Tensor,
    num_samples: int = 1,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    generator: torch.Generator | None = None,
    method: str = "auto",
) -> Tensor:
    """Exact posterior draws of state paths (forward filtering, backward sampling).

    Returns
    -------
    LongTensor, shape (num_samples, ..., T)
        ``-1`` at padded steps.
    """
    c = chain_inputs(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    return chain_sample(c.unary, c.pair, c.lengths, num_samples=num_samples,
                        generator=generator, method=method)
