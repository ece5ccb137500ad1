"""Metropolis-Hastings kernels (textbook 11.5.4.1-11.5.4.2), vectorised over chains.

Three kernels under the protocol of :mod:`samplers.base`, all accepting in log space with
``log u < log A`` and a ``torch.where`` per chain:

- :class:`RandomWalkMetropolis`: ``x' = x + scale * L eps``, ``eps ~ N(0, I)``, a symmetric
  proposal, so ``A = min(1, p(x') / p(x))`` (11.115). ``params`` is a
  :class:`RandomWalkParams` (scale, optional Cholesky factor ``L`` of a proposal covariance) or
  just a float scale.
- :class:`IndependenceMetropolis`: ``x' ~ q`` independent of ``x``;
  ``A = min(1, p(x') q(x) / (p(x) q(x')))``.
- :class:`MetropolisHastings`: any user proposal
  ``propose(x, generator) -> (x', log q(x'|x) - log q(x|x'))``; the second output is the
  Hastings correction, ``A = min(1, p(x') q(x|x') / (p(x) q(x'|x)))`` (11.107).

Rejected moves repeat the current state (Algorithm 11.3). A position where ``log p = -inf``
is never entered; from such a start any finite proposal is accepted.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from samplers.metropolis import RandomWalkMetropolis
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> k = RandomWalkMetropolis()
>>> state = k.init(torch.zeros(8, 3), logp)
>>> state, info = k.step(state, logp, 0.8, make_generator(0))
>>> tuple(state.position.shape), tuple(info.accept_prob.shape)
((8, 3), (8,))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import check_generator, normal
from samplers.base import LogDensity, batched_where
from samplers.proposals import Proposal, as_proposal

__all__ = [
    "IndependenceMetropolis",
    "MHInfo",
    "MHState",
    "MetropolisHastings",
    "RandomWalkMetropolis",
    "RandomWalkParams",
    "mh_accept",
    "optimal_scale",
]


class MHState(NamedTuple):
    """State of a Metropolis-Hastings chain batch.

    Attributes
    ----------
    position : Tensor (chains, *event)
    log_density : Tensor (chains,)
    """

    position: Tensor
    log_density: Tensor


class MHInfo(NamedTuple):
    """What one MH transition did, per chain.

    Attributes
    ----------
    accept_prob : Tensor (chains,)
        ``min(1, exp(log A))``; 0 for a proposal with ``log p = -inf`` or NaN.
    is_accepted : Tensor (chains,) bool
    proposal_log_density : Tensor (chains,)
        ``log p`` at the proposal.
    """

    accept_prob: Tensor
    is_accepted: Tensor
    proposal_log_density: Tensor


class RandomWalkParams(NamedTuple):
    """Parameters of the random-walk proposal ``x' = x + scale * L eps``.

    Attributes
    ----------
    scale : Tensor, shape () or (chains,)
        Step scale (a shared scalar or one per chain).
    cholesky : Tensor (d, d) or None
        Lower Cholesky factor of the proposal covariance over the flattened event
        (``d = prod(event)``); None is the identity (an isotropic proposal).
    """

    scale: Tensor
    cholesky: Tensor | None = None


def optimal_scale(dim: int) -> float:
    """``2.38 / sqrt(d)``: the optimal random-walk scale for a standardised Gaussian target.

    (Roberts, Gelman & Gilks 1997; it gives acceptance near 0.234 in high dimension.)
    """
    return 2.38 / math.sqrt(max(dim, 1))


def mh_accept(
    log_ratio: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Accept with probability ``min(1, exp(log_ratio))``, per chain, in log space.

    NaN ratios (``-inf - (-inf)``, a proposal outside the support from a start outside it) are
    rejected. Returns ``(accept_prob, is_accepted)``, both of shape (chains,).
    """
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    log_u = torch.log(torch.rand(log_ratio.shape, generator=generator, dtype=log_ratio.dtype,
                                 device=log_ratio.device))
    accepted = log_u < log_ratio
    accept_prob = torch.exp(torch.clamp(log_ratio, max=0.0))
    return accept_prob, accepted


def _event_numel(position: Tensor) -> int:
    return int(math.prod(position.shape[1:]))


def _check_position(kernel: str, position: Tensor) -> None:
    if not isinstance(position, Tensor) or position.dim() < 1:
        raise ShapeError(kernel, "position must be a tensor of shape (chains, *event)",
                         found=tuple(position.shape) if isinstance(position, Tensor)
                         else type(position).__name__,
                         fix="add a leading chain dimension, e.g. x.unsqueeze(0)")


def _init_state(kernel: str, position: Tensor, log_density: LogDensity) -> MHState:
    _check_position(kernel, position)
    lp = log_density(position)
    if lp.shape != position.shape[:1]:
        raise ShapeError(f"{kernel}: log-density", "must map (chains, *event) to (chains,)",
                         found=tuple(lp.shape), fix="sum over the event dimensions")
    return MHState(position, lp.detach())


def _finish(
    state: MHState, proposal: Tensor, proposal_lp: Tensor, log_ratio: Tensor,
    generator: torch.Generator | None,
) -> tuple[MHState, MHInfo]:
    accept_prob, accepted = mh_accept(log_ratio, generator)
    new = MHState(batched_where(accepted, proposal, state.position),
                  torch.where(accepted, proposal_lp, state.log_density))
    return new, MHInfo(accept_prob, accepted, proposal_lp)


class RandomWalkMetropolis:
    """Random-walk Metropolis: Gaussian increments, isotropic or with a covariance.

    ``params``: a :class:`RandomWalkParams`, or a float / tensor scale (isotropic). The scale is a
    scalar shared by all chains or a tensor of shape (chains,).
    """

    name = "rwmh"

    def init(self, position: Tensor, log_density: LogDensity) -> MHState:
        """State at ``position`` (chains, *event), floating point."""
        if isinstance(position, Tensor) and not position.is_floating_point():
            raise ValidationError("RandomWalkMetropolis", "position must be floating point",
                                  found=position.dtype, fix="use .double() or .float()")
        return _init_state("RandomWalkMetropolis", position, log_density)

    def default_params(self, position: Tensor) -> RandomWalkParams:
        """Isotropic proposal with scale ``2.38 / sqrt(d)``."""
        return RandomWalkParams(torch.tensor(optimal_scale(_event_numel(position)),
                                             dtype=position.dtype, device=position.device))

    @staticmethod
    def as_params(params: Any, position: Tensor) -> RandomWalkParams:
        """Normalise ``params`` (float, tensor or :class:`RandomWalkParams`)."""
        if isinstance(params, RandomWalkParams):
            out = params
        else:
            out = RandomWalkParams(torch.as_tensor(params, dtype=position.dtype,
                                                   device=position.device))
        params = out
        scale = params.scale
        if scale.dim() > 1 or (scale.dim() == 1 and scale.shape[0] != position.shape[0]):
            raise ShapeError("RandomWalkMetropolis params.scale",
                             "must be a scalar or have shape (chains,)",
                             found=tuple(scale.shape))
        d = _event_numel(position)
        if params.cholesky is not None and params.cholesky.shape != (d, d):
            raise ShapeError("RandomWalkMetropolis params.cholesky",
                             f"must be (d, d) = ({d}, {d}) over the flattened event",
                             found=tuple(params.cholesky.shape))
        return out

    def step(
        self,
        state: MHState,
        log_density: LogDensity,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[MHState, MHInfo]:
        """One random-walk Metropolis transition of every chain."""
        x = state.position
        check_generator(generator, x.device)
        p = self.as_params(params, x)
        eps = normal(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if p.cholesky is not None:
            eps = (eps.reshape(x.shape[0], -1) @ p.cholesky.T).reshape(x.shape)
        scale = p.scale.reshape(p.scale.shape + (1,) * (x.dim() - p.scale.dim()))
        proposal = torch.addcmul(x, scale, eps)  # x + scale * eps in one pass
        proposal_lp = log_density(proposal).detach()
        return _finish(state, proposal, proposal_lp, proposal_lp - state.log_density, generator)


class IndependenceMetropolis:
    """Independence sampler: proposals ``x' ~ q`` that ignore the current state.

    Parameters
    ----------
    proposal : Proposal or torch.distributions.Distribution
        ``sample(num, generator)`` of shape (num, *event) and normalised ``log_prob``.
        ``params`` is unused (pass None).
    """

    name = "independence_mh"

    def __init__(self, proposal: Proposal | torch.distributions.Distribution) -> None:
        self.proposal = as_proposal(proposal)

    def init(self, position: Tensor, log_density: LogDensity) -> MHState:
        """State at ``position`` (chains, *event)."""
        return _init_state("IndependenceMetropolis", position, log_density)

    def default_params(self, position: Tensor) -> None:
        """No tunable parameters."""
        return None

    def step(
        self,
        state: MHState,
        log_density: LogDensity,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[MHState, MHInfo]:
        """One independence-MH transition of every chain."""
        x = state.position
        check_generator(generator, x.device)
        proposal = self.proposal.sample(x.shape[0], generator)
        if proposal.shape != x.shape:
            raise ShapeError("IndependenceMetropolis proposal",
                             f"draws must have the position's shape {tuple(x.shape)}",
                             found=tuple(proposal.shape))
        proposal_lp = log_density(proposal).detach()
        log_ratio = (proposal_lp - state.log_density
                     + self.proposal.log_prob(x) - self.proposal.log_prob(proposal))
        return _finish(state, proposal, proposal_lp, log_ratio, generator)


#: ``propose(x, generator) -> (x', log q(x'|x) - log q(x|x'))``, vectorised over chains.
ProposeFn = Callable[[Tensor, torch.Generator | None], tuple[Tensor, Tensor]]


class MetropolisHastings:
    """Metropolis-Hastings with a user proposal and its Hastings correction (11.107).

    Parameters
    ----------
    propose : callable
        ``propose(x, generator) -> (x_new, log_q_forward_minus_reverse)`` with ``x`` and
        ``x_new`` of shape (chains, *event) and the correction
        ``log q(x_new | x) - log q(x | x_new)`` of shape (chains,) (zeros for a symmetric
        proposal). ``params`` is unused.

    Examples
    --------
    A multiplicative (log-normal) random walk on a positive target:
    ``q(x'|x) = LogNormal(x'; log x, 0.5)``, so ``log q(x'|x) - log q(x|x') = log x - log x'``.

    >>> import torch
    >>> def propose(x, g):
    ...     y = x * torch.exp(0.5 * torch.randn(x.shape, generator=g, dtype=x.dtype))
    ...     return y, (torch.log(x) - torch.log(y)).sum(-1)
    >>> k = MetropolisHastings(propose)
    """

    name = "mh"

    def __init__(self, propose: ProposeFn) -> None:
        if not callable(propose):
            raise ValidationError("MetropolisHastings", "propose must be callable",
                                  found=type(propose).__name__)
        self.propose = propose

    def init(self, position: Tensor, log_density: LogDensity) -> MHState:
        """State at ``position`` (chains, *event)."""
        return _init_state("MetropolisHastings", position, log_density)

    def default_params(self, position: Tensor) -> None:
        """No tunable parameters."""
        return None

    def step(
        self,
        state: MHState,
        log_density: LogDensity,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[MHState, MHInfo]:
        """One MH transition of every chain."""
        x = state.position
        check_generator(generator, x.device)
        proposal, log_q_ratio = self.propose(x, generator)
        if proposal.shape != x.shape or log_q_ratio.shape != x.shape[:1]:
            raise ShapeError(
                "MetropolisHastings propose",
                f"must return (x_new {tuple(x.shape)}, log-q correction {tuple(x.shape[:1])})",
                found=(tuple(proposal.shape), tuple(log_q_ratio.shape)),
            )
        proposal_lp = log_density(proposal).detach()
        log_ratio = proposal_lp - state.log_density - log_q_ratio
        return _finish(state, proposal, proposal_lp, log_ratio, generator)
