"""Baum-Welch: expectation-maximisation for HMMs, with optional conjugate priors (MAP).

The E-step is one batched forward-backward pass (:func:`probforge.ops.chain.chain_marginals`)
over every sequence; the M-step uses expected counts:

- initial: ``pi ∝ max(initial_prior - 1 + sum_n gamma_n[0], 0)``;
- transition: ``A[i] ∝ max(transition_prior - 1 + sum_n sum_t xi_n[t, i], 0)``;
- emission: the family's :meth:`~pgm.hmm.emissions.Emission.m_step` on the observed steps,
  weighted by ``gamma``.

As in hmmlearn, probabilities that are exactly zero stay zero (forbidden starts and transitions of
left-right models survive), and a prior of 1 is maximum likelihood. A row whose expected count is
zero (a state never visited) keeps its previous value. :class:`~pgm.learning.em_monitor.EMMonitor`
checks that the objective (log-likelihood plus log prior) never decreases.

Examples
--------
>>> import torch
>>> from pgm.hmm import fit, init_hmm
>>> from probforge.ops import make_generator
>>> x = torch.cat([torch.randn(50, 1) - 3, torch.randn(50, 1) + 3]).double()
>>> start = init_hmm("gaussian", x, 2, generator=make_generator(0))
>>> result = fit(start, x, n_iter=20)
>>> sorted(round(float(m), 0) for m in result.model.emission.means[:, 0])
[-3.0, 3.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pgm.hmm.emissions import (
    BernoulliEmission,
    CategoricalEmission,
    Emission,
    GaussianEmission,
    GaussianMixtureEmission,
    PoissonEmission,
)
from pgm.hmm.inference import chain_inputs
from pgm.hmm.model import HiddenMarkovModel
from pgm.learning.em_monitor import EMMonitor
from probforge.errors import ValidationError
from probforge.ops.chain import chain_marginals

__all__ = ["BaumWelchResult", "SufficientStats", "baum_welch_step", "e_step", "fit", "init_hmm",
           "log_prior", "m_step"]

_FAMILIES: dict[str, type[Emission]] = {
    "categorical": CategoricalEmission,
    "gaussian": GaussianEmission,
    "gmm": GaussianMixtureEmission,
    "poisson": PoissonEmission,
    "bernoulli": BernoulliEmission,
}


@dataclass(frozen=True)
class SufficientStats:
    """Expected counts of one E-step.

    Attributes
    ----------
    log_likelihood : Tensor, shape ()
        Total ``log p(x)`` of all sequences under the current parameters.
    start : Tensor, shape (K,)
        Expected number of sequences starting in each state.
    transitions : Tensor, shape (K, K)
        Expected number of transitions ``i -> j``.
    observations : Tensor, shape (N, *event)
        The observed (real, non-missing) observations, flattened.
    weights : Tensor, shape (N, K)
        Their posterior state probabilities.
    """

    log_likelihood: Tensor
    start: Tensor
    transitions: Tensor
    observations: Tensor
    weights: Tensor


@dataclass
class BaumWelchResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    model : HiddenMarkovModel
        The fitted model (after the last M-step).
    monitor : EMMonitor
        Objective per iteration (``monitor.history``), ``converged`` and ``n_iter``.
    """

    model: HiddenMarkovModel
    monitor: EMMonitor = field(repr=False)

    @property
    def log_likelihood(self) -> float:
        """Objective of the parameters evaluated last (before the final M-step)."""
        return self.monitor.history[-1]

    @property
    def converged(self) -> bool:
        """Whether the improvement fell below ``tol`` before ``n_iter`` iterations."""
        return self.monitor.converged


def e_step(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    method: str = "auto",
) -> SufficientStats:
    """Expected sufficient statistics under ``model`` (forward-backward on every sequence).

    Runs without autograd (EM needs no gradients).
    """
    with torch.no_grad():
        return _e_step(model, x, lengths, mask, missing, clamp, method)


def _e_step(
    model: HiddenMarkovModel,
    x: Tensor,
    lengths: Tensor | None,
    mask: Tensor | None,
    missing: Tensor | None,
    clamp: Tensor | None,
    method: str,
) -> SufficientStats:
    c = chain_inputs(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    m = chain_marginals(c.unary, c.pair, c.lengths, method=method, pairwise="sum")
    K = model.n_states
    gamma = m.unary.reshape(-1, *m.unary.shape[-2:])  # (B, T, K)
    assert m.pair is not None
    trans = m.pair.reshape(-1, K, K).sum(0)
    start = gamma[:, 0].sum(0)
    ed = model.emission.event_dim
    obs_mask = c.observed.reshape(-1, c.observed.shape[-1])
    xs = x.to(model.device).reshape(-1, *x.shape[x.dim() - 1 - ed:])  # (B, T, *event)
    return SufficientStats(
        m.log_z.sum(), start, trans, xs[obs_mask], gamma[obs_mask]
    )


def _dirichlet_update(old_log: Tensor, counts: Tensor, prior: float | Tensor) -> Tensor:
    a = torch.as_tensor(prior, dtype=counts.dtype, device=counts.device)
    num = (a - 1 + counts).clamp_min(0)
    num = torch.where(old_log == -math.inf, torch.zeros_like(num), num)
    total = num.sum(-1, keepdim=True)
    return torch.where(total > 0, (num / total.clamp_min(1e-300)).log(), old_log)


def m_step(
    model: HiddenMarkovModel,
    stats: SufficientStats,
    *,
    initial_prior: float | Tensor = 1.0,
    transition_prior: float | Tensor = 1.0,
    emission_prior: Any = None,
    update: str = "ste",
) -> HiddenMarkovModel:
    """New parameters from expected counts.

    Parameters
    ----------
    model : HiddenMarkovModel
        Current parameters (kept for the parts not in ``update`` and for structural zeros).
    stats : SufficientStats
        From :func:`e_step`.
    initial_prior, transition_prior : float or Tensor ((K,) / (K, K))
        Dirichlet concentrations (hmmlearn's ``startprob_prior`` / ``transmat_prior``).
    emission_prior : optional
        The emission family's prior object (e.g. :class:`~pgm.hmm.emissions.GaussianPrior`).
    update : str
        Letters of the parts to update: ``s`` initial, ``t`` transition, ``e`` emission.
    """
    bad = set(update) - set("ste")
    if bad:
        raise ValidationError("update", "letters must come from 's', 't', 'e'",
                              found=repr(update))
    log_init = model.log_initial
    log_trans = model.log_transition
    emission = model.emission
    if "s" in update:
        log_init = _dirichlet_update(log_init, stats.start, initial_prior)
    if "t" in update:
        log_trans = _dirichlet_update(log_trans, stats.transitions, transition_prior)
    if "e" in update:
        emission = emission.m_step(stats.observations, stats.weights, emission_prior)
    return HiddenMarkovModel(log_init, log_trans, emission, validate=False)


def log_prior(
    model: HiddenMarkovModel,
    *,
    initial_prior: float | Tensor = 1.0,
    transition_prior: float | Tensor = 1.0,
    emission_prior: Any = None,
) -> Tensor:
    """Log prior density (up to a constant) of the parameters; the MAP-EM objective adds it."""
    total = model.emission.log_prior(emission_prior)
    for log_p, a in ((model.log_initial, initial_prior), (model.log_transition, transition_prior)):
        am1 = torch.as_tensor(a, dtype=log_p.dtype, device=log_p.device) - 1
        am1 = am1.expand_as(log_p)
        term = torch.where((am1 != 0) & (log_p > -math.inf), am1 * log_p,
                           torch.zeros_like(log_p))
        total = total + term.sum()
    return total


def baum_welch_step(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    initial_prior: float | Tensor = 1.0,
    transition_prior: float | Tensor = 1.0,
    emission_prior: Any = None,
    update: str = "ste",
    method: str = "auto",
) -> tuple[HiddenMarkovModel, Tensor]:
    """One EM iteration: returns the new model and the total log-likelihood of the old one."""
    stats = e_step(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp,
                   method=method)
    new = m_step(model, stats, initial_prior=initial_prior, transition_prior=transition_prior,
                 emission_prior=emission_prior, update=update)
    return new, stats.log_likelihood


def fit(
    model: HiddenMarkovModel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    n_iter: int = 100,
    tol: float = 1e-2,
    initial_prior: float | Tensor = 1.0,
    transition_prior: float | Tensor = 1.0,
    emission_prior: Any = None,
    update: str = "ste",
    method: str = "auto",
) -> BaumWelchResult:
    """Baum-Welch from the starting ``model`` until the objective improves by less than ``tol``.

    Parameters
    ----------
    model : HiddenMarkovModel
        Starting point (see :func:`init_hmm`); not modified.
    x, lengths, mask, missing, clamp
        Observations as in :mod:`pgm.hmm.inference`. Several sequences are a batch (padded with
        ``lengths``); clamped states make the fit semi-supervised.
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when the objective (total log-likelihood + log prior) improves by less (hmmlearn's
        convention: total over all sequences).
    initial_prior, transition_prior, emission_prior, update
        As in :func:`m_step`.

    Returns
    -------
    BaumWelchResult

    Raises
    ------
    ConvergenceError
        If the objective decreases by more than rounding (a bug) or becomes non-finite.
    """
    dtype = model.dtype
    rtol = 1e-9 if dtype == torch.float64 else 1e3 * torch.finfo(dtype).eps
    monitor = EMMonitor(tol=tol, max_iter=n_iter, decrease_rtol=rtol, name="Baum-Welch")
    current = model
    while True:
        stats = e_step(current, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp,
                       method=method)
        with torch.no_grad():
            objective = stats.log_likelihood + log_prior(
                current, initial_prior=initial_prior, transition_prior=transition_prior,
                emission_prior=emission_prior,
            )
        if monitor.update(objective):
            break
        current = m_step(current, stats, initial_prior=initial_prior,
                         transition_prior=transition_prior, emission_prior=emission_prior,
                         update=update)
    return BaumWelchResult(current, monitor)


def init_hmm(
    emission: str | type[Emission],
    x: Tensor,
    n_states: int,
    *,
    lengths: Tensor | None = None,
    generator: torch.Generator | None = None,
    method: str = "kmeans",
    stickiness: float = 0.5,
    **emission_kwargs: Any,
) -> HiddenMarkovModel:
    """A starting model for :func:`fit`: uniform initial probabilities, transitions
    ``stickiness * I + (1 - stickiness) / K``, emission parameters from the data (k-means or
    random, drawn from ``generator``).

    Parameters
    ----------
    emission : str or Emission subclass
        ``"categorical"``, ``"gaussian"``, ``"gmm"``, ``"poisson"``, ``"bernoulli"`` or a class.
    x : Tensor, shape (..., T, *event)
    n_states : int
    lengths : LongTensor (...), optional
        Padding is excluded from the initialisation.
    generator : torch.Generator, optional
    method : {"kmeans", "random"}
    stickiness : float in [0, 1), default 0.5
        Extra probability of staying in a state (0 gives hmmlearn's uniform start).
    **emission_kwargs
        Passed to the family's ``init`` (``covariance_type``, ``n_mix``, ``n_symbols``, ...).
    """
    cls = _FAMILIES.get(emission) if isinstance(emission, str) else emission
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Emission)):
        raise ValidationError("init_hmm: emission", f"must be one of {sorted(_FAMILIES)} or an "
                              "Emission subclass", found=repr(emission))
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 1:
        raise ValidationError("init_hmm: n_states", "must be an int >= 1", found=repr(n_states))
    ed = cls.event_dim
    T = x.shape[x.dim() - 1 - ed]
    flat = x.reshape(-1, *x.shape[x.dim() - ed:]) if ed else x.reshape(-1)
    if lengths is not None:
        keep = torch.arange(T, device=x.device) < lengths.to(x.device)[..., None]
        flat = flat[keep.reshape(-1)]
    if x.is_floating_point():
        ok = torch.isfinite(flat.reshape(flat.shape[0], -1)).all(-1)
        flat = flat[ok]
    em = cls.init(flat, n_states, generator=generator, method=method, **emission_kwargs)
    dtype = em.dtype
    log_init = torch.full((n_states,), -math.log(n_states), dtype=dtype, device=em.device)
    # sticky start (0.5 on the diagonal, the rest uniform): regime-like data, the common case,
    # is found far more often from here than from hmmlearn's uniform matrix
    eye = torch.eye(n_states, dtype=dtype, device=em.device)
    log_trans = torch.log(stickiness * eye + (1 - stickiness) / n_states)
    return HiddenMarkovModel(log_init, log_trans, em)
