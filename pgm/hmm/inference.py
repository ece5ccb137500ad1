"""HMM inference on batches of variable-length sequences, on the shared chain core.

All functions take a :class:`~pgm.hmm.model.HiddenMarkovModel` and observations ``x`` of shape
``(..., T, *event)`` (``...`` = any batch dims, possibly none) and accept

- ``lengths`` (LongTensor (...), each in ``0..T``) or ``mask`` (bool (..., T), True on real
  steps, a prefix of each sequence): later steps are padding, ignored exactly and free to hold
  anything;
- ``missing`` (bool (..., T)): observations that are missing (their emission term is dropped,
  i.e. marginalised out; they may hold NaN);
- ``clamp`` (LongTensor (..., T), ``-1`` = free): states known in advance (semi-supervised);
- ``method``: ``"auto" | "sequential" | "parallel"`` as in :mod:`probforge.ops.chain`.

Everything is computed in log space by :mod:`probforge.ops.chain`: ``unary[t] = log p(x_t | k)``
(plus ``log p(y_0)`` at ``t = 0``) and ``pair = log A``.

Sequences of length 0 (``T = 0``, a ``lengths`` entry 0, or an all-False ``mask`` row) have the
documented answers of the empty sequence: ``log p = 0`` (probability 1), posteriors and filtering
distributions with no mass (all-zero rows, or 0 steps), the empty path of log-probability 0
(states ``-1``), and for :func:`kbest` that one path followed by missing ones (``-inf``). Learning
from data with no real step at all is refused (:func:`~pgm.hmm.baum_welch.fit`).

Observations are checked before use: the emission family's dtype (symbols are integers, never
cast from floats), event shape (a 1-D series for a vector family is refused with the fix
``x.unsqueeze(-1)``), and values at real, observed steps (symbols in range, finite values).

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


_METHODS = ("auto", "sequential", "parallel")


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
    if not isinstance(x, Tensor):
        raise ValidationError("observations", "must be a torch.Tensor", found=type(x).__name__,
                              fix="convert with torch.as_tensor(...)")
    if x.dim() < 1 + ed:
        fix = None
        if ed == 1 and x.dim() == 1:
            # (T,) could be T scalar observations or one observation of dimension T: never
            # guess; the documented layout puts the feature axis last
            fix = "a series of scalars of shape (T,) needs a feature axis: pass x.unsqueeze(-1)" \
                ", shape (T, 1)"
        raise ShapeError(
            "observations",
            f"must have shape (..., T{', *event' if ed else ''}) with {ed} event dim(s) for "
            f"{type(model.emission).__name__}",
            found=tuple(x.shape), fix=fix,
        )
    batch = tuple(x.shape[: x.dim() - 1 - ed])
    return batch, int(x.shape[len(batch)])


def _resolve_lengths(
    lengths: Tensor | None, mask: Tensor | None, batch: tuple[int, ...], T: int,
    device: torch.device,
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """(lengths or None, valid (..., T), empty (...) or None): ``empty`` marks the sequences of
    length 0 (None when there are none)."""
    if lengths is not None and mask is not None:
        raise ValidationError("lengths / mask", "give one of them, not both")
    steps = torch.arange(T, device=device)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool \
                or tuple(mask.shape) != (*batch, T):
            raise ShapeError("mask", f"must be a bool tensor of shape {(*batch, T)}",
                             found=(tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor)
                             else type(mask).__name__)
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
        valid = torch.ones(*batch, T, dtype=torch.bool, device=device)
        empty = torch.ones(batch, dtype=torch.bool, device=device) if T == 0 else None
        return None, valid, empty
    if (not isinstance(lengths, Tensor) or lengths.is_floating_point() or lengths.is_complex()
            or lengths.dtype == torch.bool):
        raise ValidationError("lengths", "must be an integer tensor of the batch shape",
                              found=lengths.dtype if isinstance(lengths, Tensor)
                              else type(lengths).__name__,
                              fix="pass a LongTensor, e.g. mask.sum(-1)")
    if tuple(lengths.shape) != batch:
        raise ShapeError("lengths", f"must have the batch shape {batch} of the observations",
                         found=tuple(lengths.shape))
    lengths = lengths.to(device=device, dtype=torch.long)
    empty = None
    if lengths.numel():
        lo, hi = torch.stack(torch.aminmax(lengths)).tolist()  # one host sync
        if lo < 0 or hi > T:
            bad = (lengths < 0) | (lengths > T)
            i = int(bad.reshape(-1).nonzero()[0, 0])
            raise ValidationError(
                f"lengths of sequence {i} (flattened batch index)",
                f"must lie in 0..T = 0..{T}",
                found=int(lengths.reshape(-1)[i]),
            )
        if lo == 0:
            empty = lengths == 0
    return lengths, steps < lengths[..., None], empty


class _Inputs(NamedTuple):
    """Validated observations and masks of an HMM call (everything but the unary tensor).

    Sequences of length 0 are handed to the chain core as chains of one step whose only
    allowed state has potential 0 (so ``log Z = 0``, the probability of an empty sequence);
    the callers mask that step out of every result. ``T == 0`` is the case where every
    sequence is empty.
    """

    batch: tuple[int, ...]
    T: int
    x: Tensor  # (..., T, *event) on the model's device
    lengths: Tensor | None  # (...), real lengths (0 allowed)
    valid: Tensor  # (..., T)
    observed: Tensor  # (..., T)
    clamp: Tensor | None  # (..., T)
    all_observed: bool  # no padding, nothing missing: the masks need not be applied
    empty: Tensor | None  # (...) True for sequences of length 0; None when there are none
    chain_T: int  # max(T, 1): the chain core's number of steps
    chain_lengths: Tensor | None  # (...) lengths for the chain core (>= 1)


def _validate(
    model: HiddenMarkovModel,
    x: Tensor,
    lengths: Tensor | None,
    mask: Tensor | None,
    missing: Tensor | None,
    clamp: Tensor | None,
) -> _Inputs:
    if not isinstance(model, HiddenMarkovModel):
        raise ValidationError("model", "must be a HiddenMarkovModel", found=type(model).__name__)
    batch, T = _batch_and_T(model, x)
    dev = model.device
    x = x.to(dev)
    lens, valid, empty = _resolve_lengths(lengths, mask, batch, T, dev)
    observed = valid
    if missing is not None:
        if not isinstance(missing, Tensor) or missing.dtype != torch.bool \
                or tuple(missing.shape) != (*batch, T):
            raise ShapeError("missing", f"must be a bool tensor of shape {(*batch, T)}",
                             found=(tuple(missing.shape), missing.dtype)
                             if isinstance(missing, Tensor) else type(missing).__name__)
        observed = valid & ~missing.to(dev)
    model.emission.check(x, observed)
    if clamp is not None:
        if (not isinstance(clamp, Tensor) or clamp.is_floating_point() or clamp.is_complex()
                or clamp.dtype == torch.bool or tuple(clamp.shape) != (*batch, T)):
            raise ShapeError("clamp", f"must be an integer tensor of shape {(*batch, T)}",
                             found=(tuple(clamp.shape), clamp.dtype)
                             if isinstance(clamp, Tensor) else type(clamp).__name__,
                             fix="use -1 for free steps and a state index elsewhere")
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
    chain_lengths = lens
    if empty is not None and T > 0 and lens is not None:
        chain_lengths = lens.clamp_min(1)
    if T == 0:
        chain_lengths = None
    all_observed = T > 0 and empty is None and bool(observed.all())
    return _Inputs(batch, T, x, lens, valid, observed, clamp, all_observed, empty, max(T, 1),
                   chain_lengths)


def _lone_start(model: HiddenMarkovModel) -> Tensor:
    """The step-0 potentials of an empty sequence: one allowed state, potential 0."""
    row = torch.full((model.n_states,), -math.inf, dtype=model.dtype, device=model.device)
    row[0] = 0.0
    return row


def _unary(model: HiddenMarkovModel, inp: _Inputs, t0: int, t1: int) -> Tensor:
    """The chain's unary log-potentials (..., t1 - t0, K) of steps ``t0 .. t1 - 1``."""
    if inp.T == 0:  # every sequence empty: a one-step chain of log Z = 0 each
        return _lone_start(model).expand(*inp.batch, 1, model.n_states).clone()
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
    if inp.empty is not None and t0 == 0:
        # after the clamp: a clamp at an empty sequence's (padded) step 0 means nothing
        first = torch.where(inp.empty[..., None], _lone_start(model).to(unary.dtype),
                            unary[..., 0, :])
        unary = torch.cat([first.unsqueeze(-2), unary[..., 1:, :]], -2)
    return unary


def _trim_probs(p: Tensor, inp: _Inputs, time_dim: int) -> Tensor:
    """Per-step probabilities from the chain core (``chain_T`` steps along ``time_dim``) as the
    caller's ``T`` steps, zero at the steps of empty sequences."""
    if inp.T == 0:
        return p.narrow(time_dim, 0, 0)
    if inp.empty is None:
        return p
    v = inp.valid.reshape(inp.valid.shape + (1,) * (p.dim() - 1 - time_dim))
    return torch.where(v, p, torch.zeros((), dtype=p.dtype, device=p.device))


def _trim_path(path: Tensor, inp: _Inputs, *, per_path: bool = False) -> Tensor:
    """Paths with time last (``chain_T`` steps) as the caller's ``T`` steps, ``-1`` at padded
    steps. Leading sample dims broadcast; ``per_path`` for k-best paths (..., k, T)."""
    if inp.T == 0:
        return path[..., :0]
    if inp.empty is None:
        return path
    v = inp.valid.unsqueeze(-2) if per_path else inp.valid
    return torch.where(v, path, torch.full((), -1, dtype=path.dtype, device=path.device))


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
        ``lengths`` for the chain core; ``valid`` and ``observed`` masks (..., T).

        The chain core needs at least one step per sequence: a sequence of length 0 is handed
        over as one step whose only allowed state (state 0) has potential 0, so that its
        ``log Z`` is 0 (the probability of an empty sequence is 1); its ``lengths`` entry is 1
        and its ``valid`` row all False, so mask the chain core's per-step results with
        ``valid``. With ``T = 0`` (every sequence empty) ``unary`` has one step.
    """
    inp = _validate(model, x, lengths, mask, missing, clamp)
    return ChainInputs(_unary(model, inp, 0, inp.T), model.log_transition, inp.chain_lengths,
                       inp.valid, inp.observed)


def _check_method(method: str) -> None:
    if not isinstance(method, str) or method not in _METHODS:
        raise ValidationError("method", f"must be one of {_METHODS}", found=repr(method))


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
        ``-inf`` for a sequence of probability zero; ``0`` for a sequence of length 0 (the
        empty sequence has probability 1).
    """
    _check_method(method)
    inp = _validate(model, x, lengths, mask, missing, clamp)
    B = math.prod(inp.batch)
    T = inp.chain_T
    lens = None if inp.chain_lengths is None else inp.chain_lengths.reshape(B)
    # the unary potentials a block of steps at a time (see chain_log_partition_streamed), in
    # the kernel's time-major layout where it runs (the whole-tensor path reads batch-major)
    pair = model.log_transition
    em = model.emission
    if (isinstance(em, CategoricalEmission) and missing is None and clamp is None
            and inp.empty is None and streams(pair, method)):
        # symbols pick rows of the emission table: exponentiated once, no per-step exp
        log_z = chain_log_partition_indexed(
            em.log_probs.t(), inp.x.reshape(B, T), pair, lens, initial=model.log_initial,
            method=method)
    elif streams(pair, method):
        xt = None
        if inp.all_observed and model.emission.fresh_log_prob and inp.clamp is None:
            # one time-major copy of the observations: each block of it is then contiguous
            xt = inp.x.reshape(B, T, *inp.x.shape[len(inp.batch) + 1:]).transpose(0, 1)
            xt = xt.contiguous()
        log_z = chain_log_partition_streamed(
            lambda t0, t1: _unary_time_major(model, inp, B, xt, t0, t1), pair, B, T, lens,
            method=method, time_major=True)
    else:
        log_z = chain_log_partition_streamed(
            lambda t0, t1: _unary(model, inp, t0, t1).reshape(B, t1 - t0, model.n_states),
            pair, B, T, lens, method=method)
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

    A sequence of length 0 has log-likelihood 0 and no steps: its rows of ``state_probs`` and
    ``transition_probs`` are all zero (as at padded steps); with ``T = 0`` they have 0 steps.

    Raises
    ------
    ZeroProbabilityEvidence
        If a sequence has probability zero under the model.
    """
    _check_method(method)
    if not isinstance(pairwise, bool):
        raise ValidationError("pairwise", "must be a bool", found=repr(pairwise))
    inp = _validate(model, x, lengths, mask, missing, clamp)
    unary = _unary(model, inp, 0, inp.T)
    m = chain_marginals(unary, model.log_transition, inp.chain_lengths, method=method,
                        pairwise=pairwise)
    return HMMPosterior(m.log_z, _trim_probs(m.unary, inp, len(inp.batch)), m.pair)


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
    """Filtering distributions ``p(y_t = k | x_0..x_t)``: (..., T, K), zero at padded steps
    (and so everywhere in a sequence of length 0)."""
    _check_method(method)
    inp = _validate(model, x, lengths, mask, missing, clamp)
    unary = _unary(model, inp, 0, inp.T)
    f = chain_forward(unary, model.log_transition, inp.chain_lengths, method=method,
                      normalized=True).exp()
    return _trim_probs(f, inp, len(inp.batch))


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
    """Most probable state path and its joint log-probability ``log p(x, path)``.

    A sequence of length 0 has the empty path, of log-probability 0 (its states are all
    ``-1``, as at padded steps).
    """
    _check_method(method)
    inp = _validate(model, x, lengths, mask, missing, clamp)
    unary = _unary(model, inp, 0, inp.T)
    v = chain_viterbi(unary, model.log_transition, inp.chain_lengths, method=method)
    return HMMPath(v.score, _trim_path(v.path, inp))


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
    """The ``k`` most probable distinct state paths, best first: (..., k) and (..., k, T).

    Missing paths (fewer than ``k`` feasible ones) have log-probability ``-inf`` and states
    ``-1``: a sequence of length 0 has one path, the empty one, of log-probability 0.
    """
    inp = _validate(model, x, lengths, mask, missing, clamp)
    unary = _unary(model, inp, 0, inp.T)
    v = chain_kbest(unary, model.log_transition, k, inp.chain_lengths)
    return HMMPath(v.score, _trim_path(v.path, inp, per_path=True))


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
        ``-1`` at padded steps (every step of a sequence of length 0).
    """
    _check_method(method)
    inp = _validate(model, x, lengths, mask, missing, clamp)
    unary = _unary(model, inp, 0, inp.T)
    draws = chain_sample(unary, model.log_transition, inp.chain_lengths,
                         num_samples=num_samples, generator=generator, method=method)
    return _trim_path(draws, inp)
