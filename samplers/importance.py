"""Importance sampling (textbook 11.5.3) with log-evidence, ESS and the Pareto-k diagnostic.

Draw ``x_n ~ q`` and weight by ``w_n = p_hat(x_n) / q(x_n)`` (kept as log-weights):

- unnormalised estimator (11.103): ``(1/N) sum_n f(x_n) w_n``, which is ``E_p[f]`` when ``p_hat`` is
  normalised (and ``Z E_p[f]`` otherwise);
- self-normalised estimator (11.106): ``sum_n f(x_n) w_n / sum_n w_n``, valid for an unnormalised
  ``p_hat``;
- ``log Z ~= log mean(w)``, with a delta-method standard error ``sd(w) / (sqrt(N) mean(w))``;
- Kish's effective sample size ``(sum w)^2 / sum w^2``;
- the Pareto-k shape of the upper weight tail (PSIS, Vehtari et al. 2024) through
  ``arviz.psislw``: ``k > 0.7`` means the estimates cannot be trusted (the weights' variance is
  effectively infinite); a warning is stored in the result and issued once.

Examples
--------
>>> import math, torch
>>> from probforge.ops import make_generator
>>> from samplers.importance import importance_sample
>>> from samplers.proposals import Gaussian
>>> log_p_hat = lambda x: -0.5 * ((x - 1) ** 2).sum(-1)      # Z = sqrt(2 pi)
>>> r = importance_sample(log_p_hat, Gaussian(torch.zeros(1, dtype=torch.float64), 2.0), 20_000,
...                       generator=make_generator(0))
>>> abs(r.log_evidence - 0.5 * math.log(2 * math.pi)) < 4 * r.log_evidence_se
True
>>> est = r.expectation(lambda x: x[:, 0])
>>> bool(abs(est.mean - 1) < 4 * est.std_error), r.pareto_k < 0.7
(True, True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError, ValidationError
from probforge.validate import check_finite, check_int, check_log_values, check_tensor
from samplers._kernel_utils import check_callable, check_generator_arg
from samplers.base import check_per_row_output
from samplers.monte_carlo import Estimate
from samplers.proposals import Proposal, as_proposal
from samplers.samples import import_arviz

__all__ = [
    "ImportanceResult",
    "ImportanceWarning",
    "importance_sample",
    "importance_weights",
    "kish_ess",
    "pareto_k",
]

#: Pareto-k above this makes importance-sampling estimates unreliable (Vehtari et al. 2024).
PARETO_K_THRESHOLD = 0.7


class ImportanceWarning(RuntimeWarning):
    """The importance weights are too heavy-tailed to trust (Pareto k > 0.7)."""


def kish_ess(log_weights: Tensor) -> Tensor:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` from log-weights (n,), in log space.

    Log-weights must be floating, non-empty, free of NaN and ``+inf``, and not all ``-inf``
    (all weights zero leave the ESS undefined: :class:`NonFiniteError`).
    """
    _check_log_weights("kish_ess", log_weights)
    return torch.exp(2 * torch.logsumexp(log_weights, -1) - torch.logsumexp(2 * log_weights, -1))


def pareto_k(log_weights: Tensor) -> float:
    """Pareto-k of the weights' upper tail by ArviZ's PSIS (``arviz.psislw``).

    ArviZ needs a few weights in the tail: with too few it returns ``inf`` (not trusted),
    which is returned as it is.
    """
    _check_log_weights("pareto_k", log_weights)
    az = import_arviz()
    lw = log_weights.detach().cpu().double().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k = az.psislw(lw.copy(), reff=1.0)
    return float(np.asarray(k))


def _per_draw(subject: str, value: Any, x: Tensor) -> Tensor:
    """``value`` if it is a floating tensor of shape (N,) for draws ``x`` (N, *event)."""
    out = check_per_row_output(subject, value, x)
    if not out.is_floating_point():
        raise DtypeMismatchError(subject, "must return a floating-point tensor",
                                 found=out.dtype)
    return out


def _check_log_weights(who: str, log_weights: Tensor) -> None:
    check_tensor(log_weights, f"{who} log_weights", floating=True, nonempty=True)
    check_log_values(log_weights, f"{who} log_weights", allow_all_neg_inf=False)


@dataclass(frozen=True)
class ImportanceResult:
    """Draws from the proposal with their log-weights and diagnostics.

    Attributes
    ----------
    samples : Tensor (N, *event)
    log_weights : Tensor (N,)
        ``log p_hat(x) - log q(x)`` (unnormalised).
    log_evidence : float
        ``log Z_hat = logsumexp(log_weights) - log N``.
    log_evidence_se : float
        Delta-method standard error of ``log Z_hat``.
    ess : float
        Kish's effective sample size.
    pareto_k : float or None
        PSIS tail shape; None when not computed (``diagnose=False``).
    warnings : tuple of str
    """

    samples: Tensor
    log_weights: Tensor
    log_evidence: float
    log_evidence_se: float
    ess: float
    pareto_k: float | None
    warnings: tuple[str, ...]

    @property
    def num_samples(self) -> int:
        """``N``."""
        return int(self.log_weights.shape[0])

    @property
    def weights(self) -> Tensor:
        """Normalised weights ``w_n / sum w`` (N,)."""
        return torch.softmax(self.log_weights, 0)

    def expectation(self, f: Callable[[Tensor], Tensor],
                    self_normalised: bool = True) -> Estimate:
        """``E_p[f(x)]`` by (11.106) (default) or (11.103), with a standard error.

        Parameters
        ----------
        f : callable
            (N, *event) -> (N, *out).
        self_normalised : bool
            True: ``sum w f / sum w`` with delta-method SE ``sqrt(sum wbar^2 (f - mean)^2)``.
            False: ``mean(w f)`` (correct only for a normalised target) with SE
            ``sd(w f) / sqrt(N)``.

        Raises
        ------
        NonFiniteError
            If ``f`` returns NaN / inf, or the unnormalised estimate overflows.
        """
        check_callable("ImportanceResult.expectation", f, "f")
        if not isinstance(self_normalised, bool):
            raise ValidationError("ImportanceResult.expectation self_normalised",
                                  "must be a bool", found=type(self_normalised).__name__)
        fx = f(self.samples)
        n = self.num_samples
        if not isinstance(fx, Tensor) or fx.shape[:1] != (n,):
            raise ShapeError("ImportanceResult.expectation: f", f"must return ({n}, ...)",
                             found=tuple(fx.shape) if isinstance(fx, Tensor)
                             else type(fx).__name__)
        if fx.dtype == torch.bool or fx.is_complex():
            raise DtypeMismatchError("ImportanceResult.expectation: f",
                                     "must return real numbers", found=fx.dtype,
                                     fix="convert an indicator with .double()")
        # An integer f (a count) is exact in the weights' floating dtype: promoting is not a
        # change of meaning.
        fx = fx if fx.is_floating_point() else fx.to(self.log_weights.dtype)
        check_finite(fx, "ImportanceResult.expectation: f(samples)",
                     fix="make f finite on the proposal's draws")
        shape = (n,) + (1,) * (fx.dim() - 1)
        if self_normalised:
            wbar = self.weights.reshape(shape)
            mean = (wbar * fx).sum(0)
            se = torch.sqrt((wbar * wbar * (fx - mean) ** 2).sum(0))
            return Estimate(mean, se, n)
        wf = torch.exp(self.log_weights).reshape(shape) * fx
        mean, se = wf.mean(0), wf.std(0) / math.sqrt(n)
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(se).all())):
            raise NonFiniteError("ImportanceResult.expectation",
                                 "the unnormalised estimate overflows the floating range",
                                 fix="use self_normalised=True, or a log-space target that is "
                                 "normalised")
        return Estimate(mean, se, n)


def importance_weights(
    log_target: Callable[[Tensor], Tensor], proposal: Proposal, x: Tensor
) -> Tensor:
    """``log p_hat(x) - log q(x)`` for draws ``x`` (N, *event) of ``proposal``; shape (N,).

    Both terms must be floating tensors of shape (N,) (checked separately: a scalar or an
    (N, 1) output would broadcast silently); NaN or ``+inf`` weights raise
    :class:`NonFiniteError`.
    """
    check_callable("importance weights", log_target, "log_target")
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise ShapeError("importance weights x", "must be draws of shape (N, *event)",
                         found=getattr(x, "shape", type(x).__name__))
    lw = (_per_draw("importance weights: log_target", log_target(x), x)
          - _per_draw("importance weights: proposal.log_prob", proposal.log_prob(x), x))
    return check_log_values(lw, "importance weights (log p_hat - log q)",
                            fix="make sure q > 0 wherever p_hat > 0 and log_target is finite")


def importance_sample(
    log_target: Callable[[Tensor], Tensor],
    proposal: Proposal | torch.distributions.Distribution,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    diagnose: bool = True,
) -> ImportanceResult:
    """Draw ``num_samples`` proposals and weight them against ``exp(log_target)``.

    Parameters
    ----------
    log_target : callable
        ``log p_hat``: (N, *event) -> (N,); need not be normalised.
    proposal : Proposal or torch distribution
        ``q``; must be positive wherever ``p_hat`` is.
    num_samples : int
    generator : torch.Generator, optional
    diagnose : bool
        Compute the Pareto-k diagnostic (needs ArviZ; default True); without it
        ``pareto_k`` is None.

    Returns
    -------
    ImportanceResult
    """
    num_samples = check_int(num_samples, "importance_sample num_samples", minimum=2)
    check_callable("importance_sample", log_target, "log_target")
    if not isinstance(diagnose, bool):
        raise ValidationError("importance_sample diagnose", "must be a bool",
                              found=type(diagnose).__name__)
    check_generator_arg(generator, None, "importance_sample generator")
    q = as_proposal(proposal)
    x = q.sample(num_samples, generator)
    lw = importance_weights(log_target, q, x)
    n = num_samples
    log_sum = torch.logsumexp(lw, 0)
    if not bool(torch.isfinite(log_sum)):
        raise NonFiniteError("importance_sample", "every weight is zero (log p_hat = -inf)",
                             fix="use a proposal that covers the target's support")
    log_z = float(log_sum) - math.log(n)
    w = torch.exp(lw - lw.max())  # scaled weights; the ratio sd / mean is scale-free
    mean_w = w.mean()
    var_w = ((w - mean_w) ** 2).sum() / (n - 1)
    se = float(torch.sqrt(var_w / n) / mean_w)
    ess = float(kish_ess(lw))
    k = pareto_k(lw) if diagnose else None
    notes: list[str] = []
    if k is not None and k > PARETO_K_THRESHOLD:
        msg = (f"importance sampling: Pareto k = {k:.2f} > {PARETO_K_THRESHOLD}: the weights are "
               f"too heavy-tailed, so log Z and expectations are unreliable (ESS {ess:.1f} of "
               f"{n}); use a proposal with heavier tails or closer to the target")
        notes.append(msg)
        warnings.warn(msg, ImportanceWarning, stacklevel=2)
    return ImportanceResult(x, lw, log_z, se, ess, k, tuple(notes))
