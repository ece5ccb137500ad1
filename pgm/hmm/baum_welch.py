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
from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.ops.chain import chain_marginals
from probforge.validate import check_choice, check_int, check_real, check_tensor

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
    T = c.valid.shape[-1]
    B = math.prod(c.valid.shape[:-1])
    gamma = m.unary.reshape(B, *m.unary.shape[-2:])[:, :T]  # (B, T, K)
    valid = c.valid.reshape(B, T)
    if T == 0 or not bool(valid[:, 0].all()):
        # sequences of length 0 are one-step chains for the chain core: no mass of theirs
        gamma = torch.where(valid[..., None], gamma, torch.zeros((), dtype=gamma.dtype))
    assert m.pair is not None
    trans = m.pair.reshape(-1, K, K).sum(0)
    start = gamma[:, 0].sum(0) if T > 0 else gamma.new_zeros(K)
    ed = model.emission.event_dim
    obs_mask = c.observed.reshape(B, T)
    xs = x.to(model.device).reshape(B, *x.shape[x.dim() - 1 - ed:])  # (B, T, *event)
    return SufficientStats(
        m.log_z.sum(), start, trans, xs[obs_mask], gamma[obs_mask]
    )


def _dirichlet_update(old_log: Tensor, counts: Tensor, prior: float | Tensor) -> Tensor:
    a = torch.as_tensor(prior, dtype=counts.dtype, device=counts.device)
    num = (a - 1 + counts).clamp_min(0)
    num = torch.where(old_log == -math.inf, torch.zeros_like(num), num)
    total = num.sum(-1, keepdim=True)
    return torch.where(total > 0, (num / total.clamp_min(1e-300)).log(), old_log)


def _check_update(update: Any) -> None:
    if not isinstance(update, str) or set(update) - set("ste"):
        raise ValidationError("update", "letters must come from 's', 't', 'e'",
                              found=repr(update), fix="e.g. 'ste' (everything) or 'st'")


def _check_concentration(prior: Any, shape: tuple[int, ...], subject: str) -> None:
    """A Dirichlet concentration: a number >= 0, or a tensor of ``shape`` (or broadcastable
    to it) with finite entries >= 0."""
    if isinstance(prior, Tensor):
        check_tensor(prior, subject, floating=True, finite=True)
        try:
            torch.broadcast_shapes(prior.shape, shape)  # type: ignore[no-untyped-call]
        except RuntimeError as err:
            raise ShapeError(subject, f"must broadcast to {shape}", found=tuple(prior.shape)
                             ) from err
        if bool((prior < 0).any()):
            raise ValidationError(subject, "concentrations must be >= 0",
                                  found=float(prior.min()))
    else:
        check_real(prior, subject, minimum=0.0)


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
    _check_update(update)
    if not isinstance(model, HiddenMarkovModel):
        raise ValidationError("m_step: model", "must be a HiddenMarkovModel",
                              found=type(model).__name__)
    if not isinstance(stats, SufficientStats):
        raise ValidationError("m_step: stats", "must be the SufficientStats of e_step",
                              found=type(stats).__name__)
    K = model.n_states
    _check_concentration(initial_prior, (K,), "initial_prior")
    _check_concentration(transition_prior, (K, K), "transition_prior")
    if tuple(stats.start.shape) != (K,) or tuple(stats.transitions.shape) != (K, K):
        raise ShapeError("m_step: stats", f"are for another number of states than K = {K}",
                         found=(tuple(stats.start.shape), tuple(stats.transitions.shape)))
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
    if not isinstance(model, HiddenMarkovModel):
        raise ValidationError("log_prior: model", "must be a HiddenMarkovModel",
                              found=type(model).__name__)
    _check_concentration(initial_prior, (model.n_states,), "initial_prior")
    _check_concentration(transition_prior, (model.n_states, model.n_states), "transition_prior")
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
    """One EM iteration: returns the new model and the total log-likelihood of the old one.

    Raises
    ------
    ValidationError
        If no sequence has a real step (nothing to learn from), and as :func:`e_step` and
        :func:`m_step`.
    """
    _check_update(update)
    stats = e_step(model, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp,
                   method=method)
    if stats.weights.shape[0] == 0 and float(stats.start.sum()) == 0:
        raise ValidationError("baum_welch_step: x", "holds no real step (every sequence has "
                              "length 0)", fix="pass at least one non-empty sequence")
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
    ValidationError
        If no sequence has a real step (every sequence of length 0: nothing to fit), or an
        argument is invalid.
    """
    if not isinstance(model, HiddenMarkovModel):
        raise ValidationError("fit: model", "must be a HiddenMarkovModel",
                              found=type(model).__name__)
    n_iter = check_int(n_iter, "fit: n_iter", minimum=0)
    tol = check_real(tol, "fit: tol", minimum=0.0)
    _check_update(update)
    K = model.n_states
    _check_concentration(initial_prior, (K,), "initial_prior")
    _check_concentration(transition_prior, (K, K), "transition_prior")
    dtype = model.dtype
    rtol = 1e-9 if dtype == torch.float64 else 1e3 * torch.finfo(dtype).eps
    monitor = EMMonitor(tol=tol, max_iter=n_iter, decrease_rtol=rtol, name="Baum-Welch")
    current = model
    while True:
        stats = e_step(current, x, lengths=lengths, mask=mask, missing=missing, clamp=clamp,
                       method=method)
        if not monitor.history and stats.weights.shape[0] == 0 \
                and float(stats.start.sum()) == 0:
            raise ValidationError("fit: x", "holds no real step (every sequence has length 0)",
                                  fix="pass at least one non-empty sequence")
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


def _check_symbols(x: Tensor, keep: Tensor, n_symbols: Any) -> None:
    """Symbols of a categorical ``x`` (..., T): integers, ``>= 0`` and below ``n_symbols`` at
    the steps kept, the first offender named with its sequence and step."""
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise DtypeMismatchError("init_hmm: x", "symbols must be an integer tensor (floats "
                                 "are not cast)", found=x.dtype,
                                 fix="convert with x.long() after checking the values are whole")
    bad = x < 0
    rule = "symbols must be >= 0"
    if n_symbols is not None:
        m = check_int(n_symbols, "init_hmm: n_symbols", minimum=1)
        bad = bad | (x >= m)
        rule = f"symbols must lie in 0..{m - 1} (n_symbols={m})"
    bad = bad & keep
    if bool(bad.any()):
        pos = [int(v) for v in bad.nonzero()[0]]
        where = f"sequence {pos[:-1]}, step {pos[-1]}" if len(pos) > 1 else f"step {pos[0]}"
        raise ValidationError(f"init_hmm: x at {where}", rule, found=int(x[tuple(pos)]),
                              fix="recode the symbols or pass a larger n_symbols")


def init_hmm(
    emission: str | type[Emission],
    x: Tensor,
    n_states: int,
    *,
    lengths: Tensor | None = None,
    generator: torch.Generator | None = None,
    method: str = "kmeans",
    stickiness: float = 0.5,
    missing: Tensor | None = None,
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
        Padding is excluded from the initialisation (lengths in ``0..T``).
    missing : BoolTensor (..., T), optional
        Missing observations (excluded; they may hold NaN). A NaN or inf at any other real
        step is an error, never dropped silently.
    generator : torch.Generator, optional
    method : {"kmeans", "random"}
    stickiness : float in [0, 1), default 0.5
        Extra probability of staying in a state (0 gives hmmlearn's uniform start).
    **emission_kwargs
        Passed to the family's ``init`` (``covariance_type``, ``n_mix``, ``n_symbols``, ...);
        one the family does not take is refused.

    Raises
    ------
    ShapeError
        For observations without the family's event axis: a 1-D series ``(T,)`` for a vector
        family (Gaussian, GMM, Poisson, Bernoulli) is refused (use ``x.unsqueeze(-1)``), never
        read as one ``T``-dimensional observation.
    ValidationError
        For symbols out of range (naming the symbol and its position), no observed step, or
        any invalid argument.
    """
    cls = _FAMILIES.get(emission) if isinstance(emission, str) else emission
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Emission)):
        raise ValidationError("init_hmm: emission", f"must be one of {sorted(_FAMILIES)} or an "
                              "Emission subclass", found=repr(emission))
    n_states = check_int(n_states, "init_hmm: n_states", minimum=1)
    check_choice(method, "init_hmm: method", ("kmeans", "random"))
    stickiness = check_real(stickiness, "init_hmm: stickiness", minimum=0.0, maximum=1.0,
                            strict_maximum=True)
    if not isinstance(cls.event_dim, int):
        raise ValidationError("init_hmm: emission", "needs a fixed event_dim (a class "
                              "attribute) to read the observations", found=cls.__name__)
    ed = cls.event_dim
    if not isinstance(x, Tensor):
        raise ValidationError("init_hmm: x", "must be a torch.Tensor", found=type(x).__name__,
                              fix="convert with torch.as_tensor(...)")
    if x.dim() < 1 + ed:
        # (T,) for a vector family could be T scalars or one T-dimensional observation:
        # refused, never reinterpreted
        fix = "a series of scalars of shape (T,) needs a feature axis: pass x.unsqueeze(-1), " \
            "shape (T, 1)" if ed == 1 and x.dim() == 1 else None
        raise ShapeError("init_hmm: x", f"must have shape (..., T{', D' if ed else ''}) for "
                         f"{cls.__name__}", found=tuple(x.shape), fix=fix)
    if 0 in x.shape[x.dim() - ed:]:
        raise ShapeError("init_hmm: x", "observations need at least one feature",
                         found=tuple(x.shape))
    batch = tuple(x.shape[: x.dim() - 1 - ed])
    T = x.shape[x.dim() - 1 - ed]
    flat = x.reshape(-1, *x.shape[x.dim() - ed:]) if ed else x.reshape(-1)
    keep = torch.ones(*batch, T, dtype=torch.bool, device=x.device)
    if lengths is not None:
        if (not isinstance(lengths, Tensor) or lengths.is_floating_point()
                or lengths.is_complex() or lengths.dtype == torch.bool):
            raise ValidationError("init_hmm: lengths", "must be an integer tensor of the batch "
                                  "shape", found=lengths.dtype if isinstance(lengths, Tensor)
                                  else type(lengths).__name__)
        if tuple(lengths.shape) != batch:
            raise ShapeError("init_hmm: lengths", f"must have the batch shape {batch} of x",
                             found=tuple(lengths.shape))
        lens = lengths.to(x.device)
        if lens.numel() and bool(((lens < 0) | (lens > T)).any()):
            i = int(((lens < 0) | (lens > T)).reshape(-1).nonzero()[0, 0])
            raise ValidationError(f"init_hmm: lengths of sequence {i} (flattened batch index)",
                                  f"must lie in 0..T = 0..{T}", found=int(lens.reshape(-1)[i]))
        keep = torch.arange(T, device=x.device) < lens[..., None]
    if missing is not None:
        if not isinstance(missing, Tensor) or missing.dtype != torch.bool \
                or tuple(missing.shape) != (*batch, T):
            raise ShapeError("init_hmm: missing", f"must be a bool tensor of shape "
                             f"{(*batch, T)}", found=(tuple(missing.shape), missing.dtype)
                             if isinstance(missing, Tensor) else type(missing).__name__)
        keep = keep & ~missing.to(x.device)
    if issubclass(cls, CategoricalEmission):
        _check_symbols(x, keep, emission_kwargs.get("n_symbols"))
    flat = flat[keep.reshape(-1)]
    if x.is_floating_point():
        if not bool(torch.isfinite(flat).all()):
            raise NonFiniteError("init_hmm: x", "has a NaN or inf observation at a real step",
                                 fix="mark missing observations with the `missing` mask")
    if flat.shape[0] == 0:
        raise ValidationError("init_hmm: x", "holds no observed real step to initialise from",
                              found=tuple(x.shape), fix="pass at least one observation")
    em = cls.init(flat, n_states, generator=generator, method=method, **emission_kwargs)
    dtype = em.dtype
    log_init = torch.full((n_states,), -math.log(n_states), dtype=dtype, device=em.device)
    # sticky start (0.5 on the diagonal, the rest uniform): regime-like data, the common case,
    # is found far more often from here than from hmmlearn's uniform matrix
    eye = torch.eye(n_states, dtype=dtype, device=em.device)
    log_trans = torch.log(stickiness * eye + (1 - stickiness) / n_states)
    return HiddenMarkovModel(log_init, log_trans, em)
