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

Non-finite values follow the package's policy (the one of HMC and NUTS): ``init`` refuses a
start whose log-density is NaN or ``+inf`` (:class:`~probforge.errors.NonFiniteError` names the
chains), or a position with NaN / inf coordinates; during the run a proposal whose log-density
is NaN is treated as outside the support (``-inf``): it is rejected, and ``-inf`` is reported
as its ``proposal_log_density``. Random-walk positions must be floating point (an integer
position is refused, not cast); :class:`MetropolisHastings` and :class:`IndependenceMetropolis`
also take integer positions (states of a discrete space), since they only move to what the
user's proposal returns, which must have the position's dtype.

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

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.random import normal
from probforge.validate import check_finite, check_int
from samplers._kernel_utils import (
    ValueChecks,
    check_generator_arg,
    check_log_density_value,
    check_position,
    check_step_size,
)
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
    A dimension of 0 is treated as 1.
    """
    dim = check_int(dim, "optimal_scale dim", minimum=0)
    return 2.38 / math.sqrt(max(dim, 1))


def mh_accept(
    log_ratio: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Accept with probability ``min(1, exp(log_ratio))``, per chain, in log space.

    NaN ratios (``-inf - (-inf)``, a proposal outside the support from a start outside it, or
    a NaN log-density) are rejected. Returns ``(accept_prob, is_accepted)``, both of shape
    (chains,).
    """
    if not isinstance(log_ratio, Tensor) or not log_ratio.is_floating_point():
        raise ValidationError("mh_accept log_ratio", "must be a floating-point tensor (chains,)",
                              found=getattr(log_ratio, "dtype", type(log_ratio).__name__))
    check_generator_arg(generator, log_ratio.device)
    return _mh_accept(log_ratio, generator)


def _mh_accept(log_ratio: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """:func:`mh_accept` without the argument checks (the kernels' steps checked them)."""
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    log_u = torch.log(torch.rand(log_ratio.shape, generator=generator, dtype=log_ratio.dtype,
                                 device=log_ratio.device))
    accepted = log_u < log_ratio
    accept_prob = torch.exp(torch.clamp(log_ratio, max=0.0))
    return accept_prob, accepted


def _event_numel(position: Tensor) -> int:
    return int(math.prod(position.shape[1:]))


def _init_state(kernel: str, position: Tensor, log_density: LogDensity, *,
                floating: bool = True) -> MHState:
    if isinstance(position, Tensor) and (position.dtype == torch.bool or position.is_complex()):
        raise DtypeMismatchError(f"{kernel} initial position", "must be a real tensor",
                                 found=position.dtype)
    check_position(kernel, position, min_ndim=1, floating=floating)
    if not callable(log_density):
        raise ValidationError(f"{kernel}: log-density", "must be callable",
                              found=type(log_density).__name__)
    lp = log_density(position)
    # -inf is a valid start for this family: the chain moves into the support (module notes).
    check_log_density_value(kernel, lp, position, allow_neg_inf=True)
    return MHState(position, lp.detach())


def _check_state(kernel: str, state: Any) -> None:
    if not isinstance(state, MHState):
        raise ValidationError(f"{kernel} state", f"must be the MHState returned by {kernel}.init",
                              found=type(state).__name__)


def _no_params(kernel: str, params: Any) -> None:
    if params is not None:
        raise ValidationError(
            f"{kernel} params", "this kernel has no tunable parameters",
            found=type(params).__name__, fix="pass params=None (and no adaptation)")


def _finish(
    state: MHState, proposal: Tensor, proposal_lp: Tensor, log_ratio: Tensor,
    generator: torch.Generator | None,
) -> tuple[MHState, MHInfo]:
    # A NaN log-density is outside the support (the package's policy, as HMC / NUTS): report
    # it as -inf (one op; +-inf kept as they are); _mh_accept rejects the NaN ratio.
    proposal_lp = torch.nan_to_num(proposal_lp, nan=-math.inf, posinf=math.inf,
                                   neginf=-math.inf)
    accept_prob, accepted = _mh_accept(log_ratio, generator)
    new = MHState(batched_where(accepted, proposal, state.position),
                  torch.where(accepted, proposal_lp, state.log_density))
    return new, MHInfo(accept_prob, accepted, proposal_lp)


class RandomWalkMetropolis:
    """Random-walk Metropolis: Gaussian increments, isotropic or with a covariance.

    ``params``: a :class:`RandomWalkParams`, or a float / tensor scale (isotropic). The scale is a
    scalar shared by all chains or a tensor of shape (chains,).
    """

    name = "rwmh"

    def __init__(self) -> None:
        self._values = ValueChecks()

    def init(self, position: Tensor, log_density: LogDensity) -> MHState:
        """State at ``position`` (chains, *event), floating point.

        Raises
        ------
        ValidationError
            For a position that is not a floating tensor with at least one chain and finite
            entries, or a log-density whose value there is not (chains,), is NaN or ``+inf``.
        """
        return _init_state("RandomWalkMetropolis", position, log_density)

    def default_params(self, position: Tensor) -> RandomWalkParams:
        """Isotropic proposal with scale ``2.38 / sqrt(d)``."""
        return RandomWalkParams(torch.tensor(optimal_scale(_event_numel(position)),
                                             dtype=position.dtype, device=position.device))

    def as_params(self, params: Any, position: Tensor) -> RandomWalkParams:
        """Normalise ``params`` (float, tensor or :class:`RandomWalkParams`) and check it.

        The scale must be positive and finite (a scalar or one per chain); the Cholesky factor
        a finite floating (d, d) tensor of the position's dtype and device.
        """
        who = "RandomWalkMetropolis"
        if isinstance(params, RandomWalkParams):
            out = params
        elif isinstance(params, Tensor) or (isinstance(params, int | float)
                                            and not isinstance(params, bool)):
            out = RandomWalkParams(params)  # type: ignore[arg-type]
        else:
            hint = ("WindowAdaptation tunes HMC, NUTS and MALA; use ScaleAdaptation()"
                    if hasattr(params, "step_size") else "pass a float scale")
            raise ValidationError(f"{who} params",
                                  "must be a RandomWalkParams, a float scale or a tensor scale",
                                  found=type(params).__name__, fix=hint)
        scale = out.scale
        chains = position.shape[0]
        if isinstance(scale, Tensor):
            check_step_size(who, scale, chains, getattr(self, "_values", None),
                            name="params.scale")
            if scale.dtype != position.dtype or scale.device != position.device:
                scale = scale.to(dtype=position.dtype, device=position.device)
        else:
            check_step_size(who, scale, chains, name="params.scale")
            scale = torch.as_tensor(scale, dtype=position.dtype, device=position.device)
        d = _event_numel(position)
        chol = out.cholesky
        if chol is not None:
            subject = f"{who} params.cholesky"
            if not isinstance(chol, Tensor):
                raise ValidationError(subject, "must be a tensor or None",
                                      found=type(chol).__name__)
            if chol.shape != (d, d):
                raise ShapeError(subject, f"must be (d, d) = ({d}, {d}) over the flattened event",
                                 found=tuple(chol.shape))
            if chol.dtype != position.dtype:
                raise DtypeMismatchError(subject,
                                         f"must have the position's dtype {position.dtype}",
                                         found=chol.dtype, fix=f"use .to({position.dtype})")
            if chol.device != position.device:
                raise DeviceMismatchError(subject, f"must be on the position's device "
                                          f"{position.device}", found=chol.device)
            values = getattr(self, "_values", None)
            if values is None:
                check_finite(chol, subject)
            else:
                values.run(chol, lambda t: check_finite(t, subject))
        return RandomWalkParams(scale, chol)

    def step(
        self,
        state: MHState,
        log_density: LogDensity,
        params: Any,
        generator: torch.Generator | None,
    ) -> tuple[MHState, MHInfo]:
        """One random-walk Metropolis transition of every chain."""
        _check_state("RandomWalkMetropolis", state)
        x = state.position
        check_generator_arg(generator, x.device)
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
        """State at ``position`` (chains, *event): floating (finite) or integer states of a
        discrete proposal (see the module notes)."""
        return _init_state("IndependenceMetropolis", position, log_density, floating=False)

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
        """One independence-MH transition of every chain (``params`` must be None)."""
        _check_state("IndependenceMetropolis", state)
        _no_params("IndependenceMetropolis", params)
        x = state.position
        check_generator_arg(generator, x.device)
        proposal = self.proposal.sample(x.shape[0], generator)
        if not isinstance(proposal, Tensor) or proposal.shape != x.shape:
            raise ShapeError("IndependenceMetropolis proposal",
                             f"draws must have the position's shape {tuple(x.shape)}",
                             found=tuple(proposal.shape) if isinstance(proposal, Tensor)
                             else type(proposal).__name__)
        if proposal.dtype != x.dtype or proposal.device != x.device:
            raise DtypeMismatchError("IndependenceMetropolis proposal",
                                     f"draws must have the position's dtype {x.dtype} and "
                                     f"device {x.device}", found=(proposal.dtype, proposal.device),
                                     fix="build the proposal with loc of the position's dtype")
        proposal_lp = log_density(proposal).detach()
        log_q = self.proposal.log_prob(x) - self.proposal.log_prob(proposal)
        if log_q.shape != x.shape[:1]:
            raise ShapeError("IndependenceMetropolis proposal.log_prob",
                             f"must return shape (chains,) = {tuple(x.shape[:1])}",
                             found=tuple(log_q.shape))
        log_ratio = proposal_lp - state.log_density + log_q
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
        """State at ``position`` (chains, *event): floating (finite) or integer states of a
        discrete proposal (see the module notes)."""
        return _init_state("MetropolisHastings", position, log_density, floating=False)

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
        """One MH transition of every chain (``params`` must be None)."""
        _check_state("MetropolisHastings", state)
        _no_params("MetropolisHastings", params)
        x = state.position
        check_generator_arg(generator, x.device)
        out = self.propose(x, generator)
        ok = (isinstance(out, tuple) and len(out) == 2
              and all(isinstance(t, Tensor) for t in out))
        if not ok or out[0].shape != x.shape or out[1].shape != x.shape[:1]:
            raise ShapeError(
                "MetropolisHastings propose",
                f"must return (x_new {tuple(x.shape)}, log-q correction {tuple(x.shape[:1])})",
                found=tuple(tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                            for t in out) if isinstance(out, tuple) else type(out).__name__,
            )
        proposal, log_q_ratio = out
        if proposal.dtype != x.dtype:
            raise DtypeMismatchError("MetropolisHastings propose",
                                     f"x_new must have the position's dtype {x.dtype}",
                                     found=proposal.dtype, fix=f"return x_new.to({x.dtype})")
        proposal_lp = log_density(proposal).detach()
        log_ratio = proposal_lp - state.log_density - log_q_ratio
        return _finish(state, proposal, proposal_lp, log_ratio, generator)
