"""The No-U-Turn Sampler, vectorised over chains (multinomial variant, Betancourt 2017).

This is the algorithm of Stan's ``base_nuts``: at each doubling a random direction is drawn, a
subtree of ``2**depth`` leapfrog steps is built from that end of the trajectory, a proposal is
drawn inside subtrees by multinomial sampling (weights ``exp(-H)``) and between the old trajectory
and the new subtree by biased progressive sampling, and the trajectory stops when the generalised
no-U-turn criterion ``p_sharp(-) . rho > 0 and p_sharp(+) . rho > 0`` fails on any subtree (with
the extra checks across merged subtrees of Stan >= 2.26), when a leapfrog step diverges (energy
error > 1000) or at ``max_tree_depth``.

Vectorisation: every chain builds a tree of the *same shape* at the same time, because the
doubling and the recursion over subtree levels are the same for all chains; only the direction
(a signed step size per chain) and the random choices differ. A chain whose trajectory has
terminated, or whose current subtree has become invalid, is masked: it takes zero-length steps,
and every update to its tree is a ``torch.where`` that keeps the old value. The result for each
chain is exactly the transition a single-chain NUTS would make; the cost per transition is the
largest tree over the chains. Whether any chain is still running is checked once per subtree
(a host synchronisation), so that finished batches stop early.

Examples
--------
>>> import torch
>>> from probforge.ops.random import make_generator
>>> from samplers.nuts import NUTS, NUTSParams
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> kernel = NUTS()
>>> state = kernel.init(torch.zeros(4, 2), logp)
>>> state, info = kernel.step(state, logp, NUTSParams(step_size=0.5), make_generator(0))
>>> info.tree_depth.shape
torch.Size([4])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.ops.random import uniform
from probforge.validate import check_int, check_real
from samplers._kernel_utils import (
    Metric,
    MetricCache,
    ValueChecks,
    check_generator_arg,
    check_params_fields,
    check_state,
    check_step_size,
    flat_log_density,
    init_with_grad,
    leapfrog,
    per_chain,
)
from samplers.base import LogDensity

__all__ = ["NUTS", "NUTSInfo", "NUTSParams", "NUTSState"]


class NUTSState(NamedTuple):
    """Position (chains, *event), its log density (chains,) and gradient (chains, *event)."""

    position: Tensor
    log_density: Tensor
    grad: Tensor


class NUTSParams(NamedTuple):
    """Tunable parameters of :class:`NUTS`.

    Attributes
    ----------
    step_size : float or Tensor
        Leapfrog step size, scalar or (chains,).
    inverse_mass_matrix : Tensor or None
        None (identity), (d,) diagonal or (d, d) dense.
    max_tree_depth : int
        Maximum number of doublings (at most ``2**max_tree_depth - 1`` leapfrog steps).
    """

    step_size: float | Tensor = 0.1
    inverse_mass_matrix: Tensor | None = None
    max_tree_depth: int = 10


class NUTSInfo(NamedTuple):
    """Per-chain transition statistics, each of shape (chains,).

    ``accept_prob`` is Stan's ``accept_stat__`` (mean Metropolis acceptance over all leapfrog
    steps of the trajectory, the statistic step-size adaptation targets); ``is_accepted`` says
    whether the chain moved; ``tree_depth`` and ``num_steps`` (leapfrog steps) measure the cost;
    ``energy`` is the Hamiltonian of the kept point.
    """

    accept_prob: Tensor
    is_accepted: Tensor
    is_divergent: Tensor
    tree_depth: Tensor
    num_steps: Tensor
    energy: Tensor


class _Tree(NamedTuple):
    p_beg: Tensor  # momentum at the end next to where the subtree started, (chains, d)
    ps_beg: Tensor  # M^-1 p there
    p_end: Tensor  # momentum at the far end
    ps_end: Tensor
    rho: Tensor  # sum of momenta over the subtree
    log_weight: Tensor  # log sum exp(H0 - H) over the subtree, (chains,)
    proposal: Tensor  # multinomial draw from the subtree, packed point (chains, 3d + 1)
    valid: Tensor  # no divergence and no U-turn inside, (chains,)


# A point of phase space is packed as one tensor [z | p | grad | log_density] of shape
# (chains, 3d + 1), so that a per-chain selection is a single torch.where.
def _pack(z: Tensor, p: Tensor, grad: Tensor, lp: Tensor) -> Tensor:
    return torch.cat([z, p, grad, lp[:, None]], dim=-1)


def _unpack(point: Tensor, d: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return point[:, :d], point[:, d : 2 * d], point[:, 2 * d : 3 * d], point[:, 3 * d]


def _merge_criterion(
    left_far_ps: Tensor,
    left_near_p: Tensor,
    left_near_ps: Tensor,
    left_rho: Tensor,
    right_near_p: Tensor,
    right_near_ps: Tensor,
    right_far_ps: Tensor,
    right_rho: Tensor,
) -> Tensor:
    """Generalised no-U-turn criterion on the merge of two adjacent trajectories (True: go on).

    ``p_sharp(-) . rho > 0 and p_sharp(+) . rho > 0`` on the merged trajectory, plus Stan's two
    extra checks across the seam (each side extended by the neighbouring point of the other).
    """
    rho = left_rho + right_rho
    rho_l = left_rho + right_near_p
    rho_r = right_rho + left_near_p
    a = torch.stack([left_far_ps, right_far_ps, left_far_ps, right_near_ps, left_near_ps,
                     right_far_ps])
    b = torch.stack([rho, rho, rho_l, rho_l, rho_r, rho_r])
    return ((a * b).sum(-1) > 0).all(0)


class NUTS:
    """No-U-Turn Sampler kernel (Hoffman & Gelman 2014; Betancourt 2017), chains in lockstep.

    Parameters
    ----------
    divergence_threshold : float
        Energy error above which a leapfrog step is divergent (ends the trajectory).
    """

    def __init__(self, divergence_threshold: float = 1000.0) -> None:
        self.divergence_threshold = check_real(
            divergence_threshold, "NUTS divergence_threshold", minimum=0.0, strict_minimum=True,
            allow_inf=True)
        self._metrics = MetricCache()
        self._values = ValueChecks()

    def default_params(self, position: Tensor) -> NUTSParams:
        """Untuned defaults (:class:`NUTSParams`); prefer warmup with
        :class:`samplers.adaptation.WindowAdaptation`."""
        return NUTSParams()

    def init(self, position: Tensor, log_density: LogDensity) -> NUTSState:
        """State at ``position`` (chains, *event); raises if a chain's log density is not finite.

        Raises
        ------
        ValidationError
            For a position that is not a floating (chains >= 1, *event) tensor with finite
            entries, or a log-density that is not (chains,), not differentiable, or not finite
            (NaN, +-inf) with a finite gradient at the position (the chains are named).
        """
        lp, grad = init_with_grad("NUTS", position, log_density)
        return NUTSState(position.detach(), lp, grad)

    # -- tree building ---------------------------------------------------------------------

    def _leaf(
        self,
        flat_ld: Callable[[Tensor], Tensor],
        start: Tensor,
        eps: Tensor,
        h0: Tensor,
        active: Tensor,
        metric: Metric,
        log: list[tuple[Tensor, Tensor]],
    ) -> tuple[_Tree, Tensor]:
        d = metric.d
        z0, p0, g0, _ = _unpack(start, d)
        # Stopped chains take zero-length steps, so they stay at a finite point.
        z, p, g, lp = leapfrog(flat_ld, z0, p0, g0, eps * active[:, None], metric)
        log_w = torch.nan_to_num(h0 + lp - metric.kinetic(p), nan=-math.inf)
        log.append((log_w, active))
        valid = log_w >= -self.divergence_threshold
        point = torch.where((active & valid)[:, None], _pack(z, p, g, lp), start)
        p = point[:, d : 2 * d]
        ps = metric.velocity(p)
        return _Tree(p, ps, p, ps, p, log_w, point, valid), point

    def _build(
        self,
        flat_ld: Callable[[Tensor], Tensor],
        start: Tensor,
        eps: Tensor,
        h0: Tensor,
        depth: int,
        active: Tensor,
        metric: Metric,
        log: list[tuple[Tensor, Tensor]],
        generator: torch.Generator | None,
    ) -> tuple[_Tree, Tensor]:
        if depth == 0:
            return self._leaf(flat_ld, start, eps, h0, active, metric, log)
        left, end = self._build(flat_ld, start, eps, h0, depth - 1, active, metric, log, generator)
        active_right = active & left.valid
        if depth > 1 and not bool(active_right.any()):  # every chain has stopped: skip
            return left._replace(valid=active_right), end
        right, end = self._build(
            flat_ld, end, eps, h0, depth - 1, active_right, metric, log, generator
        )
        log_weight = torch.logaddexp(left.log_weight, right.log_weight)
        u = uniform(h0.shape, generator=generator, dtype=h0.dtype, device=h0.device)
        take_right = torch.log(u) < right.log_weight - log_weight
        proposal = torch.where(take_right[:, None], right.proposal, left.proposal)
        ok = _merge_criterion(
            left.ps_beg, left.p_end, left.ps_end, left.rho,
            right.p_beg, right.ps_beg, right.ps_end, right.rho,
        )
        tree = _Tree(
            left.p_beg, left.ps_beg, right.p_end, right.ps_end, left.rho + right.rho,
            log_weight, proposal, left.valid & right.valid & ok,
        )
        return tree, end

    # -- transition ------------------------------------------------------------------------

    def step(
        self,
        state: NUTSState,
        log_density: LogDensity,
        params: NUTSParams,
        generator: torch.Generator | None = None,
    ) -> tuple[NUTSState, NUTSInfo]:
        """One NUTS transition for every chain.

        Parameters
        ----------
        state : NUTSState
        log_density : callable
            (chains, *event) -> (chains,).
        params : NUTSParams
        generator : torch.Generator, optional

        Returns
        -------
        (NUTSState, NUTSInfo)
        """
        check_state("NUTS", state, NUTSState)
        check_params_fields("NUTS", params, ("step_size", "inverse_mass_matrix", "max_tree_depth"),
                            "NUTSParams", "WindowAdaptation()")
        x = state.position
        check_generator_arg(generator, x.device)
        chains, event = x.shape[0], x.shape[1:]
        z0 = x.reshape(chains, -1)
        d = z0.shape[1]
        max_depth = check_int(params.max_tree_depth, "NUTS max_tree_depth", minimum=1)
        check_step_size("NUTS", params.step_size, chains, self._values)
        metric = self._metrics.get(params.inverse_mass_matrix, d, z0, "NUTS")
        eps = per_chain(params.step_size, z0)
        flat_ld = flat_log_density(log_density, event)
        dtype, device = z0.dtype, z0.device

        p0 = metric.sample_momentum(chains, z0, generator)
        h0 = -state.log_density + metric.kinetic(p0)
        origin = _pack(z0, p0, state.grad.reshape(chains, -1), state.log_density)
        ps0 = metric.velocity(p0)
        # The trajectory: backward and forward ends (packed points and M^-1 p there), the sum
        # of momenta, the total log weight and the current sample.
        bck, fwd, ps_bck, ps_fwd = origin, origin, ps0, ps0
        rho = p0
        log_weight = torch.zeros(chains, dtype=dtype, device=device)
        sample = origin
        depth = torch.zeros(chains, dtype=torch.long, device=device)
        running = torch.ones(chains, dtype=torch.bool, device=device)
        log: list[tuple[Tensor, Tensor]] = []

        for j in range(max_depth):
            forward = uniform((chains,), generator=generator, dtype=dtype, device=device) < 0.5
            fmask = forward[:, None]
            start = torch.where(fmask, fwd, bck)
            signed = torch.where(fmask, eps, -eps)
            tree, end = self._build(flat_ld, start, signed, h0, j, running, metric, log, generator)
            ok = running & tree.valid
            # Biased progressive sampling between the old trajectory and the new subtree.
            u = uniform((chains,), generator=generator, dtype=dtype, device=device)
            take = ok & (torch.log(u) < tree.log_weight - log_weight)
            sample = torch.where(take[:, None], tree.proposal, sample)
            # Criterion on the merged trajectory: old part (near end, far end) + new subtree.
            near = torch.where(fmask, fwd, bck)
            near_ps = torch.where(fmask, ps_fwd, ps_bck)
            far_ps = torch.where(fmask, ps_bck, ps_fwd)
            no_turn = _merge_criterion(
                far_ps, near[:, d : 2 * d], near_ps, rho,
                tree.p_beg, tree.ps_beg, tree.ps_end, tree.rho,
            )
            log_weight = torch.where(ok, torch.logaddexp(log_weight, tree.log_weight), log_weight)
            rho = torch.where(ok[:, None], rho + tree.rho, rho)
            grow_f = (ok & forward)[:, None]
            grow_b = (ok & ~forward)[:, None]
            fwd = torch.where(grow_f, end, fwd)
            ps_fwd = torch.where(grow_f, tree.ps_end, ps_fwd)
            bck = torch.where(grow_b, end, bck)
            ps_bck = torch.where(grow_b, tree.ps_end, ps_bck)
            depth = depth + ok.long()
            running = ok & no_turn
            if not bool(running.any()):
                break

        log_ws = torch.stack([w for w, _ in log])
        actives = torch.stack([a for _, a in log])
        num_steps = actives.sum(0)
        sum_accept = (torch.exp(torch.clamp(log_ws, max=0.0)) * actives).sum(0)
        divergent = (actives & (log_ws < -self.divergence_threshold)).any(0)
        accept_prob = sum_accept / num_steps.clamp(min=1).to(dtype)
        zs, ps, gs, lps = _unpack(sample, d)
        moved = (zs != z0).any(-1)
        energy = metric.kinetic(ps) - lps
        new = NUTSState(zs.reshape(x.shape), lps, gs.reshape(x.shape))
        info = NUTSInfo(accept_prob, moved, divergent, depth, num_steps, energy)
        return new, info
