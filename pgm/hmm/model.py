"""The hidden Markov model object: initial and transition log-probabilities plus an emission.

``p(x, y) = p(y_0) p(x_0 | y_0) prod_{t>0} p(y_t | y_{t-1}) p(x_t | y_t)`` (textbook 11.14). The
model only holds and validates parameters and draws samples; inference lives in
:mod:`pgm.hmm.inference`, learning in :mod:`pgm.hmm.baum_welch` and :mod:`pgm.hmm.module`.

Examples
--------
>>> import torch
>>> from pgm.hmm import CategoricalEmission, HiddenMarkovModel
>>> from probforge.ops import make_generator
>>> hmm = HiddenMarkovModel.from_probs(
...     torch.tensor([0.5, 0.5]),
...     torch.tensor([[0.95, 0.05], [0.1, 0.9]]),
...     CategoricalEmission(torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()),
... )
>>> draw = hmm.sample(10, n_sequences=3, generator=make_generator(0))
>>> draw.states.shape, draw.observations.shape
(torch.Size([3, 10]), torch.Size([3, 10]))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from pgm.hmm.emissions import Emission
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.ops.chain import chain_sample
from probforge.ops.random import check_generator
from probforge.validate import check_device, check_int, check_tensor

__all__ = ["HMMSample", "HiddenMarkovModel"]

_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


class HMMSample(NamedTuple):
    """Draws from an HMM.

    Attributes
    ----------
    states : LongTensor, shape (n_sequences, T) or (T,)
    observations : Tensor, shape (n_sequences, T, *event) or (T, *event)
    """

    states: Tensor
    observations: Tensor


def _check_log_rows(log_p: Tensor, subject: str, what: str) -> None:
    if torch.isnan(log_p).any() or (log_p == math.inf).any():
        raise NonFiniteError(subject, "log-probabilities must not be NaN or +inf")
    tol = _TOL.get(log_p.dtype, 1e-5) * max(log_p.shape[-1], 1)
    sums = torch.logsumexp(log_p, dim=-1).exp()
    bad = (sums - 1).abs() > tol
    if bool(bad.any()):
        i = int(bad.reshape(-1).nonzero()[0, 0]) if log_p.dim() > 1 else None
        raise NormalisationError(
            f"{subject}{'' if i is None else f' row {i}'}",
            f"{what} must sum to 1",
            found=float(sums.reshape(-1)[i or 0]),
            fix="normalise it (probforge never renormalises silently)",
        )


class HiddenMarkovModel:
    """A discrete-state HMM with any emission family.

    Parameters
    ----------
    log_initial : Tensor, shape (K,)
        ``log p(y_0 = k)``; must sum to one in probability (``-inf`` = impossible start).
    log_transition : Tensor, shape (K, K)
        ``log p(y_t = j | y_{t-1} = i)`` at ``[i, j]``; rows sum to one (``-inf`` = forbidden).
    emission : Emission
        ``log p(x_t | y_t)``, with ``emission.n_states == K``.
    validate : bool, default True
        Check shapes, finiteness and normalisation.

    Raises
    ------
    ShapeError, NormalisationError, NonFiniteError, DtypeMismatchError, DeviceMismatchError
    """

    def __init__(
        self,
        log_initial: Tensor,
        log_transition: Tensor,
        emission: Emission,
        *,
        validate: bool = True,
    ) -> None:
        if not isinstance(emission, Emission):
            raise ValidationError(
                "HiddenMarkovModel: emission",
                "must be an Emission (see pgm.hmm.emissions)",
                found=type(emission).__name__,
            )
        check_tensor(log_initial, "HiddenMarkovModel: log_initial")
        check_tensor(log_transition, "HiddenMarkovModel: log_transition")
        if log_initial.dim() != 1 or log_initial.shape[0] == 0:
            raise ShapeError("HiddenMarkovModel: log_initial", "must have shape (K,), K >= 1",
                             found=tuple(log_initial.shape))
        K = log_initial.shape[0]
        if tuple(log_transition.shape) != (K, K):
            raise ShapeError("HiddenMarkovModel: log_transition",
                             f"must have shape (K, K) = ({K}, {K})",
                             found=tuple(log_transition.shape))
        if emission.n_states != K:
            raise ShapeError("HiddenMarkovModel: emission",
                             f"has {emission.n_states} states, the chain has K = {K}")
        if not log_initial.is_floating_point():
            raise DtypeMismatchError("HiddenMarkovModel: log_initial",
                                     "must be a floating tensor", found=log_initial.dtype)
        if log_transition.dtype != log_initial.dtype:
            raise DtypeMismatchError("HiddenMarkovModel: log_transition",
                                     f"dtype {log_transition.dtype} differs from log_initial's "
                                     f"{log_initial.dtype}")
        if log_transition.device != log_initial.device:
            raise DeviceMismatchError("HiddenMarkovModel: log_transition",
                                      f"is on {log_transition.device}, log_initial on "
                                      f"{log_initial.device}")
        if not isinstance(validate, bool):
            raise ValidationError("HiddenMarkovModel: validate", "must be a bool",
                                  found=repr(validate))
        if validate:
            _check_log_rows(log_initial, "HiddenMarkovModel: log_initial", "initial probabilities")
            _check_log_rows(log_transition, "HiddenMarkovModel: log_transition",
                            "transition probabilities")
        self.log_initial = log_initial
        self.log_transition = log_transition
        self.emission = emission

    @classmethod
    def from_probs(
        cls, initial: Tensor, transition: Tensor, emission: Emission, *, validate: bool = True
    ) -> HiddenMarkovModel:
        """Build from probabilities (zeros become ``-inf``).

        Raises
        ------
        DtypeMismatchError, ValidationError
            For integer tensors (not cast) or probabilities outside ``[0, 1]`` (and every error
            of the constructor).
        """
        for what, p in (("initial", initial), ("transition", transition)):
            check_tensor(p, f"HiddenMarkovModel.from_probs: {what}", floating=True)
            if bool((torch.isnan(p) | (p < 0) | (p > 1)).any()):
                raise ValidationError(f"HiddenMarkovModel.from_probs: {what}",
                                      "probabilities must lie in [0, 1]",
                                      fix="pass probabilities, or log-probabilities to the "
                                      "constructor")
        return cls(torch.log(initial), torch.log(transition), emission, validate=validate)

    @property
    def n_states(self) -> int:
        """Number of hidden states ``K``."""
        return int(self.log_initial.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the chain parameters."""
        return self.log_initial.dtype

    @property
    def device(self) -> torch.device:
        """Device of the chain parameters."""
        return self.log_initial.device

    @property
    def initial_probs(self) -> Tensor:
        """``p(y_0)``, shape (K,)."""
        return self.log_initial.exp()

    @property
    def transition_probs(self) -> Tensor:
        """``p(y_t | y_{t-1})``, shape (K, K)."""
        return self.log_transition.exp()

    def replace(
        self,
        *,
        log_initial: Tensor | None = None,
        log_transition: Tensor | None = None,
        emission: Emission | None = None,
        validate: bool = True,
    ) -> HiddenMarkovModel:
        """A new model with some parameters replaced (the model itself is never changed)."""
        return HiddenMarkovModel(
            self.log_initial if log_initial is None else log_initial,
            self.log_transition if log_transition is None else log_transition,
            self.emission if emission is None else emission,
            validate=validate,
        )

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> HiddenMarkovModel:
        """A copy with every parameter converted (to a floating dtype)."""
        if dtype is not None and (not isinstance(dtype, torch.dtype)
                                  or not dtype.is_floating_point):
            raise ValidationError("HiddenMarkovModel.to: dtype", "must be a floating dtype",
                                  found=repr(dtype))
        if device is not None:
            device = check_device(device, "HiddenMarkovModel.to: device")
        return HiddenMarkovModel(
            self.log_initial.to(dtype=dtype, device=device),
            self.log_transition.to(dtype=dtype, device=device),
            self.emission.to(dtype=dtype, device=device),
            validate=False,
        )

    def sample(
        self,
        n_steps: int,
        *,
        n_sequences: int | None = None,
        generator: torch.Generator | None = None,
    ) -> HMMSample:
        """Draw state paths and observations.

        The state paths are drawn as exact samples of the Markov chain (by the chain core's
        backward sampling, log-depth in ``n_steps``), then one observation per step.

        Parameters
        ----------
        n_steps : int
            Length ``T >= 0`` of each sequence (``0`` gives empty sequences, the length-0
            sequences that inference accepts).
        n_sequences : int, optional
            Number of sequences (``>= 1``); None returns a single unbatched sequence.
        generator : torch.Generator, optional

        Returns
        -------
        HMMSample
            ``states`` (n_sequences, T) and ``observations`` (n_sequences, T, *event), without
            the leading dim when ``n_sequences`` is None.
        """
        n_steps = check_int(n_steps, "HiddenMarkovModel.sample: n_steps", minimum=0)
        n = 1 if n_sequences is None else check_int(
            n_sequences, "HiddenMarkovModel.sample: n_sequences", minimum=1)
        check_generator(generator, self.device)
        K = self.n_states
        if n_steps == 0:
            empty = torch.zeros(n, 0, dtype=torch.long, device=self.device)
            obs0 = self.emission.sample(empty, generator)
            if n_sequences is None:
                return HMMSample(empty[0], obs0[0])
            return HMMSample(empty, obs0)
        unary = torch.zeros(n_steps, K, dtype=self.dtype, device=self.device)
        unary[0] = self.log_initial
        states = chain_sample(unary, self.log_transition, num_samples=n, generator=generator)
        obs = self.emission.sample(states, generator)
        if n_sequences is None:
            return HMMSample(states[0], obs[0])
        return HMMSample(states, obs)

    def __repr__(self) -> str:
        return (
            f"HiddenMarkovModel(n_states={self.n_states}, emission={type(self.emission).__name__}"
            f", dtype={self.dtype}, device={self.device})"
        )
