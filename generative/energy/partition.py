"""Partition functions and test log-likelihoods of RBMs: AIS, reverse AIS, RAISE, exact draws.

An RBM's ``log Z`` is exact only for small models (:meth:`RBM.exact_log_partition` enumerates
the smaller layer). For the rest, annealed importance sampling (Neal 2001) on the path of
Salakhutdinov & Murray (2008) estimates it: intermediate RBMs with parameters

    (beta W, (1 - beta) a_A + beta a, beta b),   0 = beta_0 <= beta_1 <= ... <= beta_K = 1,

run from a base-rate model (zero weights and hidden biases, visible bias ``a_A`` fitted to the
data: :mod:`generative.energy.base_rate`) to the target. With the hidden units summed out, the
unnormalised marginal of the ``k``-th RBM is

    log f_k(v) = visible_term(v, a_k) + sum_j softplus(beta_k (b_j + (v~^T W)_j)),

where ``a_k = (1 - beta_k) a_A + beta_k a`` (for Bernoulli and categorical units this is the
geometric path between base and target; for Gaussian units it moves the mean, ``sigma`` fixed).
At ``beta = 0`` it is ``visible_term(v, a_A) + M log 2``, normalised by the closed-form
``Z_0 = 2^M Z_vis(a_A)``. Transitions are one block-Gibbs sweep ``v -> h -> v`` of the ``k``-th
RBM (it leaves ``p_k`` invariant, and its ``v``-chain is reversible).

Estimators (all chains are one tensor dimension; the temperature loop has no host syncs):

- :func:`ais_log_partition`: forward AIS. Every weight ``exp(log w)`` is unbiased for
  ``Z / Z_0``, so ``log Z_hat`` is a stochastic *lower* bound (``E[log Z_hat] <= log Z``).
- :func:`reverse_ais_log_partition`: the same path run backwards from samples of the target.
  From exact samples ``E[1 / Z_hat] = 1 / Z``, so ``log Z_hat`` is a stochastic *upper* bound;
  the pair brackets ``log Z`` (bidirectional Monte Carlo, Grosse, Ghahramani & Adams 2015;
  Grosse et al. 2016). :func:`exact_samples` draws exact samples from models small enough to
  enumerate; from approximate samples (a long Gibbs chain) the upper-bound property holds only
  approximately.
- :func:`raise_log_likelihood`: RAISE (Burda, Grosse & Salakhutdinov 2015), a conservative
  per-row estimate of the test log-likelihood that needs no ``log Z``.
- :func:`log_likelihood_estimate`: the mean test log-likelihood and its standard error from a
  ``log Z`` estimate.

Numerics: the chains and the Gibbs sweeps run in the model's dtype; the importance-weight
increments ``log f_k(v) - log f_{k-1}(v)`` are computed in float64 from the state (so their
rounding error scales with ``beta_k - beta_{k-1}`` and does not pile up over the thousands of
steps) and accumulated in float64. Results (``log_weights``, RAISE rows) are float64.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.rbm import BernoulliRBM
>>> from generative.energy.partition import ais_log_partition
>>> rbm = BernoulliRBM(8, 4, weight_std=0.5, dtype=torch.float64, generator=make_generator(0))
>>> data = torch.bernoulli(torch.full((50, 8), 0.3, dtype=torch.float64),
...                        generator=make_generator(1))
>>> res = ais_log_partition(rbm, data=data, num_chains=64, num_temperatures=200,
...                         generator=make_generator(2))
>>> res.method, res.log_weights.shape
('ais', torch.Size([64]))
>>> abs(res.log_z - float(rbm.exact_log_partition().detach())) < 4 * res.log_z_se + 1e-3
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from generative.checks import check_optional_generator
from generative.energy.base_rate import base_bias_of, base_log_partition, check_rbm
from generative.energy.rbm import RBM, binary_states
from probforge.errors import (
    DtypeMismatchError,
    MemoryBudgetExceeded,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.validate import check_int, check_real, check_tensor
from samplers.ais import log_evidence_se

__all__ = [
    "DEFAULT_NUM_TEMPERATURES",
    "LogLikelihoodEstimate",
    "PartitionEstimate",
    "ais_log_partition",
    "annealing_schedule",
    "exact_samples",
    "log_likelihood_estimate",
    "raise_log_likelihood",
    "reverse_ais_log_partition",
]

#: Intermediate distributions of Salakhutdinov & Murray's schedule (500 + 4000 + 10000).
DEFAULT_NUM_TEMPERATURES = 14500

#: Largest number of states :func:`exact_samples` enumerates by default (2^20).
MAX_SAMPLED_STATES = 2**20

# Knots of the schedule: (fraction of the steps, beta). Salakhutdinov & Murray take steps of
# 1e-3 on [0, 0.5], 1e-4 on [0.5, 0.9] and 1e-5 on [0.9, 1]: densest near the target, where
# the weights switch on fully and the intermediate distributions change fastest.
_SM_KNOTS = ((0.0, 0.0), (500 / 14500, 0.5), (4500 / 14500, 0.9), (1.0, 1.0))


class PartitionEstimate(NamedTuple):
    """A ``log Z`` estimate of :func:`ais_log_partition` or :func:`reverse_ais_log_partition`.

    Attributes
    ----------
    log_z : float
        The estimate of ``log Z``.
    log_z_se : float
        Its delta-method standard error, ``sd(w / mean w) / sqrt(chains)`` (``inf`` with one
        chain).
    log_weights : Tensor (chains,), float64
        Log importance weights. Forward AIS: ``log Z_hat = base_log_z + log mean exp``; each
        ``exp`` is unbiased for ``Z / Z_0``. Reverse AIS: ``log Z_hat = base_log_z - log mean
        exp``; each ``exp`` is unbiased for ``Z_0 / Z`` when started from exact samples.
    ess : float
        Effective sample size of the normalised weights, ``1 / sum(w_norm^2)``.
    states : Tensor (chains, *event_shape)
        The chains' last visible states: weighted draws from the target (forward) or states
        near the base (reverse).
    base_log_z : float
        Exact ``log Z_0`` of the base-rate model.
    num_temperatures : int
        ``K``: intermediate distributions after the base (the schedule has ``K + 1`` betas).
    method : str
        ``"ais"`` (a stochastic lower bound of ``log Z``) or ``"reverse_ais"`` (a stochastic
        upper bound from exact samples).
    """

    log_z: float
    log_z_se: float
    log_weights: Tensor
    ess: float
    states: Tensor
    base_log_z: float
    num_temperatures: int
    method: str


class LogLikelihoodEstimate(NamedTuple):
    """Mean test log-likelihood of :func:`log_likelihood_estimate`, in nats per example.

    Attributes
    ----------
    mean : float
        ``mean_n log p(v_n) = mean_n(-F(v_n)) - log Z_hat``.
    se : float
        Standard error from the ``log Z`` estimate (the test set is fixed and every row shares
        ``log Z_hat``, so this is the error of the reported figure); 0 for an exact ``log Z``.
    per_row : Tensor (B,), float64
        ``log p(v_n)`` per row with the estimated ``log Z``.
    data_se : float
        ``sd_n(log p(v_n)) / sqrt(B)``: the error of the mean as an estimate of the expected
        log-likelihood under the data distribution (``inf`` for one row). Add it in quadrature
        to ``se`` when comparing models on the population, not on this test set.
    method : str
        ``"exact"``, ``"ais"`` or ``"reverse_ais"``: where ``log Z`` came from.
    """

    mean: float
    se: float
    per_row: Tensor
    data_se: float
    method: str


# ---------------------------------------------------------------------------- schedules
def annealing_schedule(num_temperatures: int = DEFAULT_NUM_TEMPERATURES) -> Tensor:
    """Salakhutdinov & Murray's schedule scaled to ``num_temperatures`` steps.

    The ``beta`` of step ``k`` is piecewise linear in ``k / K``: a fraction 500 / 14500 of the
    steps covers ``[0, 0.5]``, 4000 / 14500 covers ``[0.5, 0.9]`` and 10000 / 14500 covers
    ``[0.9, 1]``. With the default ``K = 14500`` these are their steps of ``1e-3``, ``1e-4`` and
    ``1e-5``.

    Parameters
    ----------
    num_temperatures : int
        ``K >= 1``.

    Returns
    -------
    Tensor (K + 1,), float64, on the CPU
        Non-decreasing, ``beta_0 = 0``, ``beta_K = 1``.

    Examples
    --------
    >>> b = annealing_schedule()
    >>> b.shape, float(b[500]), float(b[4500])
    (torch.Size([14501]), 0.5, 0.9)
    >>> annealing_schedule(2).tolist()
    [0.0, 0.9275, 1.0]
    """
    k = check_int(num_temperatures, "annealing_schedule num_temperatures", minimum=1)
    t = torch.arange(k + 1, dtype=torch.float64)
    out = torch.zeros(k + 1, dtype=torch.float64)
    for (t0, b0), (t1, b1) in itertools.pairwise(_SM_KNOTS):
        lo, hi = t0 * k, t1 * k
        inside = (t >= lo) & (t <= hi)
        out = torch.where(inside, b0 + (t - lo) / (hi - lo) * (b1 - b0), out)
    out[0], out[-1] = 0.0, 1.0
    return torch.cummax(out.clamp(0.0, 1.0), 0).values


def _schedule(betas: Any, num_temperatures: Any, subject: str) -> list[float]:
    """The schedule as Python floats (one host transfer, before the temperature loop)."""
    if betas is None:
        k = DEFAULT_NUM_TEMPERATURES if num_temperatures is None else num_temperatures
        return annealing_schedule(check_int(k, f"{subject} num_temperatures", minimum=1)).tolist()
    if num_temperatures is not None:
        raise ValidationError(subject, "give betas or num_temperatures, not both",
                              found=f"num_temperatures={num_temperatures!r}",
                              fix="drop num_temperatures (it is len(betas) - 1)")
    if isinstance(betas, Tensor):
        if not betas.is_floating_point():
            raise DtypeMismatchError(f"{subject} betas", "must be a floating-point tensor",
                                     found=betas.dtype, fix="convert with .double()")
        sched = betas.detach().to("cpu", torch.float64)
    elif isinstance(betas, np.ndarray):
        if betas.dtype.kind != "f":
            raise DtypeMismatchError(f"{subject} betas", "must be a floating-point array",
                                     found=str(betas.dtype), fix="convert with .astype(float)")
        sched = torch.from_numpy(betas.astype(np.float64))
    elif isinstance(betas, Sequence) and not isinstance(betas, str | bytes):
        sched = torch.tensor([check_real(b, f"{subject} betas[{i}]", allow_inf=True)
                              for i, b in enumerate(betas)], dtype=torch.float64)
    else:
        raise ValidationError(f"{subject} betas", "must be a sequence of numbers or a 1-d "
                              "tensor", found=type(betas).__name__,
                              fix="pass e.g. annealing_schedule(1000)")
    if sched.dim() != 1 or sched.numel() < 2:
        raise ShapeError(f"{subject} betas", "must be 1-d with at least two entries (0 and 1)",
                         found=tuple(sched.shape))
    if not bool(torch.isfinite(sched).all()):
        raise NonFiniteError(f"{subject} betas", "must be finite",
                             found=sched[~torch.isfinite(sched)][:5].tolist())
    if float(sched[0]) != 0.0 or float(sched[-1]) != 1.0:
        raise ValidationError(f"{subject} betas", "must start at 0 (the base) and end at 1 "
                              "(the target)", found=(float(sched[0]), float(sched[-1])),
                              fix="use annealing_schedule(K)")
    if bool((sched[1:] < sched[:-1]).any()):
        i = int(torch.nonzero(sched[1:] < sched[:-1])[0, 0])
        raise ValidationError(f"{subject} betas", "must be non-decreasing",
                              found=f"betas[{i}] = {float(sched[i])} > betas[{i + 1}] = "
                              f"{float(sched[i + 1])}")
    return sched.tolist()


def _check_chains(num_chains: Any, subject: str) -> int:
    return check_int(num_chains, f"{subject} num_chains", minimum=1)


# ---------------------------------------------------------------------------- annealing core
def _anneal(rbm: RBM, base_bias: Tensor, betas: list[float], v: Tensor,
            generator: torch.Generator | None, *, first_move: bool, last_move: bool) -> tuple[
                Tensor, Tensor]:
    """Run the chains ``v`` along ``betas`` (either direction); return (log_w float64, v).

    For ``j = 1 .. n`` the weight gains ``log f_{b_j}(v) - log f_{b_{j-1}}(v)`` at the current
    state, then the state moves by a Gibbs sweep at ``b_j`` (skipped after the last step
    unless ``last_move``). ``first_move`` adds a sweep at ``b_0`` before the first step.
    """
    b = rbm.hidden_bias.detach()
    step = rbm.visible_bias.detach() - base_bias          # a_beta = a_A + beta * step
    base64, step64 = base_bias.to(torch.float64), step.to(torch.float64)

    def move(v: Tensor, pre: Tensor, beta: float) -> tuple[Tensor, Tensor]:
        h = torch.bernoulli(torch.sigmoid(beta * pre), generator=generator)
        v = rbm.sample_visible_given(base_bias + beta * step, beta * rbm.visible_input(h),
                                     generator)
        return v, rbm.hidden_input(v) + b

    def log_f(v64: Tensor, pre64: Tensor, beta: float) -> Tensor:
        return rbm.visible_term(v64, base64 + beta * step64) + F.softplus(beta * pre64).sum(-1)

    log_w = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    pre = rbm.hidden_input(v) + b
    if first_move:
        v, pre = move(v, pre, betas[0])
    n = len(betas) - 1
    for j in range(1, n + 1):
        lo, hi = betas[j - 1], betas[j]
        if hi != lo:
            v64, pre64 = v.to(torch.float64), pre.to(torch.float64)
            log_w = log_w + (log_f(v64, pre64, hi) - log_f(v64, pre64, lo))
        if j < n or last_move:
            v, pre = move(v, pre, hi)
    return log_w, v


def _finish(log_w: Tensor, subject: str) -> tuple[float, float, float]:
    if not bool(torch.isfinite(log_w).all()):
        raise NonFiniteError(subject, "importance weights are not finite",
                             found=log_w[~torch.isfinite(log_w)][:5].tolist(),
                             fix="check the model's parameters for huge or non-finite values")
    return log_evidence_se(log_w)


def _check_params(rbm: RBM, subject: str) -> None:
    for name, p in rbm.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            raise NonFiniteError(f"{subject} rbm.{name}", "must be finite",
                                 fix="the model diverged: reload a good checkpoint")


# ---------------------------------------------------------------------------- estimators
def ais_log_partition(rbm: RBM, *, data: Tensor | None = None, base: Tensor | RBM | None = None,
                      num_chains: int = 100, num_temperatures: int | None = None,
                      betas: Sequence[float] | Tensor | np.ndarray | None = None,
                      generator: torch.Generator | None = None) -> PartitionEstimate:
    """Estimate ``log Z`` of ``rbm`` by forward AIS from a base-rate model.

    Each chain starts with an exact draw ``v_0 ~ p_0`` of the base; for ``k = 1 .. K`` its
    weight gains ``log f_k(v_{k-1}) - log f_{k-1}(v_{k-1})`` and then ``v_k`` is one block-Gibbs
    sweep of the ``k``-th intermediate RBM from ``v_{k-1}`` (see the module docstring). Then
    ``log Z_hat = log Z_0 + log mean_chains exp(log w)``; ``E[Z_hat] = Z``, so ``log Z_hat``
    underestimates ``log Z`` on average (a stochastic lower bound).

    Parameters
    ----------
    rbm : RBM
        The target (Bernoulli, Gaussian-Bernoulli or categorical visible units).
    data : Tensor (N, *event_shape), optional
        Training rows for the base-rate model (one pseudo-count; see
        :mod:`generative.energy.base_rate`).
    base : Tensor (*event_shape) or RBM, optional
        Instead of ``data``: a base visible bias, or a base-rate model. With neither ``data``
        nor ``base`` the base bias is zero (uniform units): valid but slower to converge.
    num_chains : int
        Independent chains (S&M use 100).
    num_temperatures : int, optional
        ``K`` for :func:`annealing_schedule` (default 14500, Salakhutdinov & Murray's).
    betas : sequence of float, Tensor or ndarray (K + 1,), optional
        An explicit schedule instead: non-decreasing, from exactly 0 to exactly 1 (repeated
        values are allowed: a repeated beta adds a Gibbs sweep and nothing to the weights).
    generator : torch.Generator, optional
        On the model's device.

    Returns
    -------
    PartitionEstimate
        ``method = "ais"``.

    Raises
    ------
    ValidationError, ShapeError, NonFiniteError, DtypeMismatchError, DeviceMismatchError
        Bad schedule (not from 0 to 1, decreasing, NaN), ``num_chains < 1``, a base of the
        wrong kind or shape, data that do not fit the visible units, non-finite parameters.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import CategoricalRBM
    >>> rbm = CategoricalRBM(4, 3, 5, weight_std=0.5, dtype=torch.float64)
    >>> res = ais_log_partition(rbm, num_chains=32, betas=torch.linspace(0, 1, 101,
    ...                         dtype=torch.float64), generator=make_generator(0))
    >>> res.num_temperatures, res.states.shape
    (100, torch.Size([32, 4, 3]))
    """
    subject = "ais_log_partition"
    rbm = check_rbm(rbm, f"{subject} rbm")
    _check_params(rbm, subject)
    num_chains = _check_chains(num_chains, subject)
    sched = _schedule(betas, num_temperatures, subject)
    generator = check_optional_generator(generator, f"{subject} generator", rbm.weight.device)
    a_base = base_bias_of(rbm, data=data, base=base, subject=f"{subject} base")
    with torch.no_grad():
        log_z0 = float(base_log_partition(rbm, a_base))
        zero = rbm.weight.new_zeros(num_chains, *rbm.event_shape)
        v0 = rbm.sample_visible_given(a_base, zero, generator)
        log_w, v = _anneal(rbm, a_base, sched, v0, generator, first_move=False, last_move=True)
    log_mean, se, ess = _finish(log_w, subject)
    return PartitionEstimate(log_z0 + log_mean, se, log_w, ess, v, log_z0, len(sched) - 1,
                             "ais")


def reverse_ais_log_partition(rbm: RBM, start: Tensor, *, data: Tensor | None = None,
                              base: Tensor | RBM | None = None,
                              num_temperatures: int | None = None,
                              betas: Sequence[float] | Tensor | np.ndarray | None = None,
                              generator: torch.Generator | None = None) -> PartitionEstimate:
    """Estimate ``log Z`` by annealing from samples of ``rbm`` back to the base (reverse AIS).

    The forward path run backwards: chain ``n`` starts at ``v_K = start[n]``; for ``k = K ..
    1`` its weight gains ``log f_{k-1}(v_k) - log f_k(v_k)`` and ``v_{k-1}`` is a block-Gibbs
    sweep at ``beta_{k-1}``. When ``start`` holds exact draws from the model, ``exp(log w)`` is
    unbiased for ``Z_0 / Z`` and ``log Z_hat = log Z_0 - log mean exp(log w)`` overestimates
    ``log Z`` on average (``E[1 / Z_hat] = 1 / Z``): a stochastic upper bound that, with
    :func:`ais_log_partition`'s lower bound, brackets ``log Z`` (bidirectional Monte Carlo).

    Exact draws come from :func:`exact_samples` (small models). With approximate draws (the
    end of a long Gibbs chain, persistent chains) the upper-bound property is only
    approximate: the estimate inherits the sampler's bias.

    Parameters
    ----------
    rbm : RBM
    start : Tensor (chains, *event_shape)
        Starting visible states, one chain per row (model dtype and device).
    data, base, num_temperatures, betas, generator
        As for :func:`ais_log_partition`; the schedule is given in the forward direction
        (from 0 to 1) and run backwards.

    Returns
    -------
    PartitionEstimate
        ``method = "reverse_ais"``; ``states`` are the chains' states near the base.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(8, 5, weight_std=0.5, dtype=torch.float64)
    >>> v, _ = exact_samples(rbm, 64, generator=make_generator(0))
    >>> res = reverse_ais_log_partition(rbm, v, num_temperatures=300,
    ...                                 generator=make_generator(1))
    >>> abs(res.log_z - float(rbm.exact_log_partition().detach())) < 4 * res.log_z_se + 1e-3
    True
    """
    subject = "reverse_ais_log_partition"
    rbm = check_rbm(rbm, f"{subject} rbm")
    _check_params(rbm, subject)
    start = rbm.check_visible(start, "reverse_ais_log_partition start")
    if start.shape[0] < 1:
        raise ShapeError(f"{subject} start", "must hold at least one row (one chain per row)",
                         found=tuple(start.shape))
    sched = _schedule(betas, num_temperatures, subject)
    generator = check_optional_generator(generator, f"{subject} generator", rbm.weight.device)
    a_base = base_bias_of(rbm, data=data, base=base, subject=f"{subject} base")
    with torch.no_grad():
        log_z0 = float(base_log_partition(rbm, a_base))
        log_w, v = _anneal(rbm, a_base, sched[::-1], start.detach(), generator,
                           first_move=False, last_move=False)
    log_mean, se, ess = _finish(log_w, subject)
    return PartitionEstimate(log_z0 - log_mean, se, log_w, ess, v, log_z0, len(sched) - 1,
                             "reverse_ais")


def raise_log_likelihood(rbm: RBM, v: Tensor, *, data: Tensor | None = None,
                         base: Tensor | RBM | None = None, num_chains: int = 10,
                         num_temperatures: int | None = None,
                         betas: Sequence[float] | Tensor | np.ndarray | None = None,
                         generator: torch.Generator | None = None) -> Tensor:
    """RAISE: conservative estimates of ``log p(v)`` per row, by annealing from ``v`` to the base.

    Burda, Grosse & Salakhutdinov (2015). Let ``T_k`` be the block-Gibbs sweep of the ``k``-th
    intermediate RBM, which leaves ``p_k = f_k / Z_k`` invariant and is reversible. The
    *annealed model* draws ``x_0 ~ p_0`` and then ``x_k ~ T_k(. | x_{k-1})`` for ``k = 1 ..
    K``, so ``p_ann(x_K) = sum p_0(x_0) prod_k T_k(x_k | x_{k-1})``: what forward AIS produces.
    RAISE estimates ``p_ann(v)`` by importance sampling over the path ``x_0 .. x_{K-1}`` with
    the reverse chain as proposal: ``x_K = v``, ``x_{k-1} ~ T_k(. | x_k)`` for ``k = K .. 1``.
    Reversibility, ``p_k(x) T_k(x' | x) = p_k(x') T_k(x | x')``, gives the weight

        p_ann(x_0..x_K) / q(x_0..x_{K-1} | x_K)
            = p_0(x_0) prod_k T_k(x_k | x_{k-1}) / T_k(x_{k-1} | x_k)
            = p_0(x_0) prod_k f_k(x_k) / f_k(x_{k-1}),

    whose expectation under the reverse chain is exactly ``p_ann(v)`` (the ``Z_k`` cancel). In
    logs, ``log w = log p_0(x_0) + sum_k [log f_k(x_k) - log f_k(x_{k-1})]``; the estimate is
    ``log mean_chains w``. Regrouped for a precise float64 sum:
    ``log w = log f_K(v) - log Z_0 + sum_{k=0}^{K-1} [log f_k(x_k) - log f_{k+1}(x_k)]``,
    i.e. ``-F(v)`` minus a reverse-AIS estimate of ``log Z`` whose chains start one sweep away
    from ``v``.

    Why conservative: by Jensen, ``E[log mean w] <= log p_ann(v)``; and for test rows drawn from
    the model, ``E[log p_ann(v)] <= E[log p(v)]`` (Gibbs' inequality). For real test data it is
    not a bound, but Burda et al. find it underestimates in practice; it approaches
    ``log p(v)`` as ``K`` grows (``p_ann -> p``).

    Parameters
    ----------
    rbm : RBM
    v : Tensor (B, *event_shape)
        Test rows (model dtype and device).
    data, base : optional
        The base-rate model, as for :func:`ais_log_partition`.
    num_chains : int
        Reverse chains per row (memory ``B * num_chains`` states).
    num_temperatures, betas, generator
        As for :func:`ais_log_partition` (the schedule given from 0 to 1).

    Returns
    -------
    Tensor (B,), float64
        ``log p_ann(v)`` estimates; their mean is the test log-likelihood estimate.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 4, weight_std=0.5, dtype=torch.float64)
    >>> v, _ = exact_samples(rbm, 5, generator=make_generator(0))
    >>> est = raise_log_likelihood(rbm, v, num_chains=8, num_temperatures=200,
    ...                            generator=make_generator(1))
    >>> est.shape, bool((est - rbm.log_prob(v)).abs().max() < 0.2)
    (torch.Size([5]), True)
    """
    subject = "raise_log_likelihood"
    rbm = check_rbm(rbm, f"{subject} rbm")
    _check_params(rbm, subject)
    v = rbm.check_visible(v, "raise_log_likelihood v")
    if v.shape[0] < 1:
        raise ShapeError(f"{subject} v", "must hold at least one row", found=tuple(v.shape))
    num_chains = _check_chains(num_chains, subject)
    sched = _schedule(betas, num_temperatures, subject)
    generator = check_optional_generator(generator, f"{subject} generator", rbm.weight.device)
    a_base = base_bias_of(rbm, data=data, base=base, subject=f"{subject} base")
    with torch.no_grad():
        log_z0 = float(base_log_partition(rbm, a_base))
        x = v.detach().repeat_interleave(num_chains, 0)
        log_w, _ = _anneal(rbm, a_base, sched[::-1], x, generator, first_move=True,
                           last_move=False)
        log_f = -rbm.free_energy(v.detach()).to(torch.float64)
        log_w = log_w.reshape(v.shape[0], num_chains)
        if not bool(torch.isfinite(log_w).all()):
            raise NonFiniteError(subject, "importance weights are not finite",
                                 found=log_w[~torch.isfinite(log_w)][:5].tolist(),
                                 fix="check the model's parameters for huge values")
        return log_f - log_z0 + torch.logsumexp(log_w, 1) - math.log(num_chains)


def log_likelihood_estimate(rbm: RBM, v: Tensor,
                            log_z: PartitionEstimate | Tensor | float) -> LogLikelihoodEstimate:
    """Mean test log-likelihood ``mean_n log p(v_n)`` and its standard error.

    Parameters
    ----------
    rbm : RBM
    v : Tensor (B, *event_shape)
        Test rows.
    log_z : PartitionEstimate, Tensor () or float
        A ``log Z`` estimate (its ``log_z_se`` is propagated: every row shares ``log Z_hat``,
        so the mean's error is ``log_z_se``), or an exact ``log Z`` (error 0).

    Returns
    -------
    LogLikelihoodEstimate
        Report it as ``f"{r.mean:.1f} +- {r.se:.1f} nats"``.

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(4, 3, dtype=torch.float64)
    >>> v = torch.eye(4, dtype=torch.float64)
    >>> r = log_likelihood_estimate(rbm, v, rbm.exact_log_partition())
    >>> r.method, r.se, round(r.mean, 6) == round(float(rbm.log_prob(v).detach().mean()), 6)
    ('exact', 0.0, True)
    """
    subject = "log_likelihood_estimate"
    rbm = check_rbm(rbm, f"{subject} rbm")
    v = rbm.check_visible(v, "log_likelihood_estimate v")
    if v.shape[0] < 1:
        raise ShapeError(f"{subject} v", "must hold at least one row", found=tuple(v.shape))
    if isinstance(log_z, PartitionEstimate):
        value = check_real(log_z.log_z, f"{subject} log_z.log_z")
        se = check_real(log_z.log_z_se, f"{subject} log_z.log_z_se", minimum=0.0,
                        allow_inf=True)
        method = log_z.method
    elif isinstance(log_z, Tensor):
        check_tensor(log_z, f"{subject} log_z", ndim=0, floating=True, finite=True)
        value, se, method = float(log_z.detach()), 0.0, "exact"
    else:
        value, se, method = check_real(log_z, f"{subject} log_z"), 0.0, "exact"
    with torch.no_grad():
        per_row = -rbm.free_energy(v.detach()).to(torch.float64) - value
    n = per_row.shape[0]
    data_se = float(per_row.std() / math.sqrt(n)) if n > 1 else math.inf
    return LogLikelihoodEstimate(float(per_row.mean()), se, per_row, data_se, method)


# ---------------------------------------------------------------------------- exact draws
def exact_samples(rbm: RBM, n: int, generator: torch.Generator | None = None, *,
                  max_states: int = MAX_SAMPLED_STATES) -> tuple[Tensor, Tensor]:
    """Exact joint draws ``(v, h) ~ p(v, h)`` of a small RBM, by enumerating one layer.

    The smaller layer (the hidden one for Gaussian units) is drawn from its exact marginal,
    ``log p(h) = b^T h + visible_log_normaliser(a, W h) - log Z`` or ``log p(v) = -F(v) - log
    Z``, computed over all its states; the other layer from its conditional given the first.

    Parameters
    ----------
    rbm : RBM
    n : int
        Draws (>= 1).
    generator : torch.Generator, optional
    max_states : int
        Refuse when the smaller layer has more states than this (default ``2^20``).

    Returns
    -------
    (v, h) : (Tensor (n, *event_shape), Tensor (n, M))
        In the model's dtype.

    Raises
    ------
    MemoryBudgetExceeded
        When both layers have more than ``max_states`` states: use a long Gibbs chain
        (:meth:`RBM.sample`) and treat reverse AIS from it as approximate.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import BernoulliRBM
    >>> v, h = exact_samples(BernoulliRBM(5, 3), 4, generator=make_generator(0))
    >>> v.shape, h.shape
    (torch.Size([4, 5]), torch.Size([4, 3]))
    """
    subject = "exact_samples"
    rbm = check_rbm(rbm, f"{subject} rbm")
    _check_params(rbm, subject)
    n = check_int(n, f"{subject} n", minimum=1)
    max_states = check_int(max_states, f"{subject} max_states", minimum=1)
    generator = check_optional_generator(generator, f"{subject} generator", rbm.weight.device)
    m = rbm.num_hidden
    hidden_states = 2.0**m
    k = rbm.num_visible_states
    visible_states = float(k) ** rbm.num_visible if k else math.inf
    if min(hidden_states, visible_states) > max_states:
        raise MemoryBudgetExceeded(
            subject, f"enumeration needs min(2^{m}, {k or 'inf'}^{rbm.num_visible}) states, "
            f"more than max_states = {max_states}",
            fix="run a long Gibbs chain (rbm.sample) instead; reverse AIS from it is then "
            "only approximately an upper bound")
    dtype, device = rbm.weight.dtype, rbm.weight.device
    width = int(torch.Size(rbm.event_shape).numel())
    chunk = max(1, (1 << 22) // max(width, m, 1))
    with torch.no_grad():
        if hidden_states <= visible_states:
            total = 1 << m
            parts = []
            for lo in range(0, total, chunk):
                h = binary_states(m, start=lo, stop=min(total, lo + chunk), dtype=dtype,
                                  device=device)
                parts.append(h @ rbm.hidden_bias.detach()
                             + rbm.visible_log_normaliser(None, rbm.visible_input(h)))
            idx = _draw_indices(torch.cat(parts), n, generator)
            bits = torch.arange(m, device=device)
            h = ((idx[:, None] >> bits) & 1).to(dtype)
            v = rbm.sample_visible_given(None, rbm.visible_input(h), generator)
            return v, h
        total = int(visible_states)
        parts = []
        for lo in range(0, total, chunk):
            parts.append(-rbm.free_energy(rbm.visible_states(lo, min(total, lo + chunk))))
        idx = _draw_indices(torch.cat(parts), n, generator)
        v = rbm.weight.new_zeros(n, *rbm.event_shape)
        for lo in range(0, total, chunk):
            hit = (idx >= lo) & (idx < lo + chunk)
            if bool(hit.any()):
                rows = torch.nonzero(hit)[:, 0]
                states = rbm.visible_states(lo, min(total, lo + chunk))
                v[rows] = states[idx[rows] - lo]
        _, h = rbm.sample_hidden(v, generator)
        return v, h


def _draw_indices(log_p: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    probs = torch.softmax(log_p.to(torch.float64), 0)
    return torch.multinomial(probs, n, replacement=True, generator=generator)
