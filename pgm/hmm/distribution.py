"""An HMM as a ``torch.distributions.Distribution``, usable as a Pyro sample site.

:class:`HMMDistribution` is the distribution of an observation sequence with the hidden states
summed out (the forward algorithm on :mod:`probforge.ops.chain`), in the manner of Pyro's
``DiscreteHMM``: parameters may carry batch dimensions (chains of a sampler, plates), so a
Bayesian HMM can be written as a Pyro model and sampled with :func:`samplers.from_pyro_model`.

Shapes: ``initial_logits`` (..., K), ``transition_logits`` (..., K, K) (rows normalised by
``log_softmax``), ``observation_dist`` a distribution with ``batch_shape == (..., K)`` (one
component per state). ``event_shape = (T, *observation_dist.event_shape)``.

Examples
--------
>>> import torch
>>> from torch.distributions import Normal
>>> from pgm.hmm.distribution import HMMDistribution
>>> d = HMMDistribution(torch.zeros(2), torch.tensor([[2.0, 0.0], [0.0, 2.0]]),
...                     Normal(torch.tensor([-1.0, 1.0]), 1.0), duration=5)
>>> d.batch_shape, d.event_shape
(torch.Size([]), torch.Size([5]))
>>> d.log_prob(torch.zeros(5)).shape
torch.Size([])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.ops.chain import chain_log_partition, chain_sample
from probforge.ops.random import sample_distribution
from probforge.validate import check_int, check_shape, check_tensor

__all__ = ["HMMDistribution"]


class HMMDistribution(Distribution):
    """Marginal distribution of an observation sequence under an HMM.

    Parameters
    ----------
    initial_logits : Tensor, shape (..., K)
        Unnormalised log initial probabilities (normalised with ``log_softmax``).
    transition_logits : Tensor, shape (..., K, K)
        Unnormalised log transition probabilities, row ``i`` for the previous state ``i``.
    observation_dist : torch.distributions.Distribution
        Emission distribution with ``batch_shape`` ending in ``K`` (e.g.
        ``Normal(mu[..., :], sigma)``), any ``event_shape``.
    duration : int, optional
        Sequence length ``T >= 0``; needed for :meth:`sample`, otherwise taken from the value.
        ``T = 0`` is the empty sequence (log-probability 0; samples with 0 steps).
    validate_args : bool, optional
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "initial_logits": constraints.real_vector,
        "transition_logits": constraints.independent(constraints.real, 2),  # type: ignore[no-untyped-call]
    }
    has_rsample = False

    def __init__(
        self,
        initial_logits: Tensor,
        transition_logits: Tensor,
        observation_dist: Distribution,
        *,
        duration: int | None = None,
        validate_args: bool | None = None,
    ) -> None:
        check_tensor(initial_logits, "HMMDistribution: initial_logits", min_ndim=1,
                     floating=True)
        check_tensor(transition_logits, "HMMDistribution: transition_logits", min_ndim=2,
                     floating=True)
        if not isinstance(observation_dist, Distribution):
            raise ValidationError("HMMDistribution: observation_dist",
                                  "must be a torch.distributions.Distribution",
                                  found=type(observation_dist).__name__)
        if initial_logits.dim() < 1 or transition_logits.dim() < 2:
            raise ShapeError("HMMDistribution", "initial_logits (..., K) and transition_logits "
                             "(..., K, K) are required",
                             found=(tuple(initial_logits.shape), tuple(transition_logits.shape)))
        K = initial_logits.shape[-1]
        if tuple(transition_logits.shape[-2:]) != (K, K):
            raise ShapeError("HMMDistribution: transition_logits",
                             f"must end in (K, K) = ({K}, {K})",
                             found=tuple(transition_logits.shape))
        obs_batch = tuple(observation_dist.batch_shape)
        if len(obs_batch) < 1 or obs_batch[-1] != K:
            raise ShapeError("HMMDistribution: observation_dist",
                             f"batch_shape must end in K = {K} (one component per state)",
                             found=obs_batch)
        if K == 0:
            raise ShapeError("HMMDistribution: initial_logits", "needs K >= 1 states",
                             found=tuple(initial_logits.shape))
        for what, logits in (("initial_logits", initial_logits),
                             ("transition_logits", transition_logits)):
            # -inf forbids a start or a transition; NaN, +inf or a row with nothing allowed
            # would make log_softmax NaN
            bad = torch.isnan(logits) | (logits == math.inf)
            if bool(bad.any()) or bool((logits == -math.inf).all(-1).any()):
                raise NonFiniteError(f"HMMDistribution: {what}",
                                     "must be finite or -inf, with a finite entry in every row",
                                     fix="use -inf only for forbidden entries")
        try:
            batch_shape = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
                initial_logits.shape[:-1], transition_logits.shape[:-2], obs_batch[:-1]
            )
        except RuntimeError as err:
            raise ShapeError("HMMDistribution", "the batch shapes of initial_logits, "
                             "transition_logits and observation_dist do not broadcast",
                             found=(tuple(initial_logits.shape[:-1]),
                                    tuple(transition_logits.shape[:-2]), obs_batch[:-1])
                             ) from err
        if duration is not None:
            duration = check_int(duration, "HMMDistribution: duration", minimum=0)
        self.initial_logits = initial_logits
        self.transition_logits = transition_logits
        self.observation_dist = observation_dist
        self.duration = duration
        self._obs_event = tuple(observation_dist.event_shape)
        # Without a duration the time axis is reported as 1 and taken from the value (as Pyro's
        # DiscreteHMM does); give the duration to get exact shapes and to sample.
        T = 1 if duration is None else int(duration)
        super().__init__(torch.Size(batch_shape), torch.Size((T, *self._obs_event)),
                         validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> Any:
        return constraints.independent(  # type: ignore[no-untyped-call]
            self.observation_dist.support, 1
        )

    @property
    def n_states(self) -> int:
        """Number of hidden states ``K``."""
        return int(self.initial_logits.shape[-1])

    def expand(self, batch_shape: Any, _instance: Any = None) -> HMMDistribution:
        batch_shape = torch.Size(batch_shape)
        K = self.n_states
        init = self.initial_logits.expand(*batch_shape, K)
        trans = self.transition_logits.expand(*batch_shape, K, K)
        obs = self.observation_dist.expand((*batch_shape, K))
        return HMMDistribution(init, trans, obs, duration=self.duration,
                               validate_args=False)

    def _potentials(self, value: Tensor) -> tuple[Tensor, Tensor]:
        ed = len(self._obs_event)
        check_tensor(value, "HMMDistribution.log_prob: value")
        if value.dim() < 1 + ed:
            raise ShapeError("HMMDistribution.log_prob: value",
                             "must have shape (..., T, *event)", found=tuple(value.shape))
        T = value.shape[value.dim() - 1 - ed]
        if self.duration is not None and T != self.duration:
            raise ShapeError("HMMDistribution.log_prob: value",
                             f"has T = {T} steps, the distribution {self.duration}")
        # time to the far left (beyond every batch dim of the distribution) so that the
        # emission's batch dims (..., K) align with the value's
        missing = len(self.batch_shape) - (value.dim() - 1 - ed)
        if missing > 0:
            value = value.reshape((1,) * missing + tuple(value.shape))
        x = value.unsqueeze(value.dim() - ed).movedim(value.dim() - 1 - ed, 0)  # (T, ..., 1, *ev)
        obs_lp = self.observation_dist.log_prob(x).movedim(0, -2)  # (..., T, K)
        log_init = torch.log_softmax(self.initial_logits, -1)
        log_trans = torch.log_softmax(self.transition_logits, -1)
        unary = torch.cat([obs_lp[..., :1, :] + log_init[..., None, :], obs_lp[..., 1:, :]], -2)
        batch = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
            unary.shape[:-2], log_trans.shape[:-2]
        )
        unary = unary.expand(*batch, *unary.shape[-2:])
        pair = log_trans[..., None, :, :]  # shared over time
        return unary, pair

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(value)`` with the states summed out: shape ``sample_shape + batch_shape``.

        A value with ``T = 0`` steps (the empty sequence) has log-probability 0. NaN in the
        value is refused (:class:`~probforge.errors.NonFiniteError`).
        """
        if isinstance(value, Tensor) and value.is_floating_point() \
                and bool(torch.isnan(value).any()):
            raise NonFiniteError("HMMDistribution.log_prob: value", "has NaN observations",
                                 fix="remove or impute them (this distribution has no mask)")
        unary, pair = self._potentials(value)
        if unary.shape[-2] == 0:  # the empty sequence: probability 1
            batch = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
                unary.shape[:-2], pair.shape[:-3])
            return unary.new_zeros(batch)
        return chain_log_partition(unary, pair)

    def sample(self, sample_shape: Any = (), generator: torch.Generator | None = None
               ) -> Tensor:
        """Draw sequences: ``sample_shape + batch_shape + (T, *event)``.

        Both the state paths and the observations follow ``generator`` (the observations via
        :func:`probforge.ops.random.sample_distribution`, which leaves the global RNG as it
        was); without one, torch's global RNG is used, as by every torch distribution.
        """
        if self.duration is None:
            raise ValidationError("HMMDistribution.sample", "needs the sequence length",
                                  fix="construct the distribution with duration=T")
        sample_shape = torch.Size(check_shape(sample_shape, "HMMDistribution.sample: sample_shape"))
        T = int(self.duration)
        K = self.n_states
        shape = torch.Size(sample_shape) + self.batch_shape
        n = int(torch.Size(sample_shape).numel())
        if T == 0 or n == 0 or self.batch_shape.numel() == 0:
            # nothing to draw: the empty sequence, or no sequence at all
            with torch.no_grad():  # no draw: only the observations' dtype and device
                like = sample_distribution(self.observation_dist, (0,), generator)
            return like.new_zeros((*shape, T, *self._obs_event))
        log_init = torch.log_softmax(self.initial_logits.detach(), -1).expand(*self.batch_shape, K)
        log_trans = torch.log_softmax(self.transition_logits.detach(), -1).expand(
            *self.batch_shape, K, K)
        unary = torch.zeros(*self.batch_shape, T, K, dtype=log_init.dtype,
                            device=log_init.device)
        unary = torch.cat([log_init[..., None, :], unary[..., 1:, :]], -2)
        states = chain_sample(unary, log_trans[..., None, :, :], num_samples=max(n, 1),
                              generator=generator)  # (n, *batch, T)
        states = states.reshape(*shape, T)
        with torch.no_grad():
            every = sample_distribution(self.observation_dist, (*torch.Size(sample_shape), T),
                                        generator)
        # every: sample_shape + (T,) + batch + (K,) + event -> move T next to the batch
        nb = len(self.batch_shape)
        ns = len(torch.Size(sample_shape))
        every = every.movedim(ns, ns + nb)  # sample + batch + (T, K) + event
        ed = len(self._obs_event)
        idx = states.reshape(*states.shape, 1, *([1] * ed)).expand(
            *states.shape, 1, *self._obs_event)
        return every.gather(states.dim(), idx).squeeze(states.dim())

    def __repr__(self) -> str:
        return (f"HMMDistribution(n_states={self.n_states}, duration={self.duration}, "
                f"batch_shape={tuple(self.batch_shape)})")
