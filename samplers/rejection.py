"""Rejection (acceptance-rejection) sampling, textbook Algorithm 11.2, in batches and log space.

Given an unnormalised target ``p_hat`` and a proposal ``q`` with an envelope constant ``M`` such
that ``M q(x) >= p_hat(x)`` everywhere, draw ``x ~ q`` and accept it with probability
``alpha(x) = p_hat(x) / (M q(x))`` (11.98). Accepted draws are exact draws from
``p = p_hat / Z``, and the expected acceptance rate is ``Z / M`` (standard, not in the seed).

Proposals are drawn in vectorised batches; accepted draws keep their proposal order, so the
output is the first ``N`` acceptances of one long proposal stream and the counts are exact
(proposals after the ``N``-th acceptance are not counted).

If some proposal has ``log p_hat(x) > log M + log q(x)`` the envelope is violated and the output
would be biased: ``on_violation`` decides (``"raise"`` a :class:`ValidationError`, ``"warn"`` once,
or ``"ignore"``). A NaN ``log p_hat - log q`` raises :class:`~probforge.errors.NonFiniteError`
(as in importance sampling: treating it as a rejection could bias the draws silently).

Examples
--------
>>> import math, torch
>>> from probforge.ops import make_generator
>>> from samplers.proposals import Gaussian
>>> from samplers.rejection import rejection_sample
>>> log_p_hat = lambda x: -0.5 * (x ** 2).sum(-1)        # Z = sqrt(2 pi)
>>> q = Gaussian(torch.zeros(1, dtype=torch.float64), 2.0)
>>> log_M = math.log(2 * math.sqrt(2 * math.pi))          # sup p_hat / q
>>> r = rejection_sample(log_p_hat, q, log_M, 1000, generator=make_generator(0))
>>> tuple(r.samples.shape), round(r.expected_rate(math.log(math.sqrt(2 * math.pi))), 3)
((1000, 1), 0.5)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from probforge.errors import NonFiniteError, SamplingError, ShapeError, ValidationError
from probforge.validate import check_choice, check_int, check_log_values, check_real
from samplers._kernel_utils import check_callable, check_generator_arg
from samplers.proposals import Proposal, as_proposal

__all__ = ["EnvelopeWarning", "RejectionResult", "estimate_log_envelope", "rejection_sample"]


class EnvelopeWarning(RuntimeWarning):
    """A proposal violated ``M q(x) >= p_hat(x)``; the draws are biased."""


@dataclass(frozen=True)
class RejectionResult:
    """Output of :func:`rejection_sample`.

    Attributes
    ----------
    samples : Tensor (N, *event)
        Exact draws from ``p_hat / Z``.
    num_accepted : int
        ``N``.
    num_proposed : int
        Proposals up to and including the ``N``-th acceptance.
    num_violations : int
        Proposals for which the envelope was violated.
    max_log_ratio : float
        Largest ``log p_hat - log M - log q`` seen (> 0 means a violation).
    log_M : float
        The envelope constant used (log).
    """

    samples: Tensor
    num_accepted: int
    num_proposed: int
    num_violations: int
    max_log_ratio: float
    log_M: float

    @property
    def acceptance_rate(self) -> float:
        """``num_accepted / num_proposed`` (an estimate of ``Z / M``)."""
        return self.num_accepted / self.num_proposed

    @property
    def acceptance_rate_se(self) -> float:
        """Binomial standard error of :attr:`acceptance_rate`."""
        a = self.acceptance_rate
        return math.sqrt(max(a * (1 - a), 0.0) / self.num_proposed)

    def expected_rate(self, log_Z: float) -> float:
        """The expected acceptance rate ``Z / M`` for a known ``log Z``."""
        return math.exp(log_Z - self.log_M)

    def log_evidence(self) -> float:
        """``log(acceptance_rate) + log M``: an estimate of ``log Z``."""
        return math.log(self.acceptance_rate) + self.log_M if self.num_accepted else -math.inf


def rejection_sample(
    log_target: Callable[[Tensor], Tensor],
    proposal: Proposal | torch.distributions.Distribution,
    log_M: float,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    max_proposals: int = 10_000_000,
    on_violation: str = "raise",
) -> RejectionResult:
    """Draw ``num_samples`` exact samples from ``exp(log_target) / Z`` by rejection.

    Parameters
    ----------
    log_target : callable
        ``log p_hat``, batched: (n, *event) -> (n,); ``-inf`` outside the support.
    proposal : Proposal or torch distribution
        ``q`` with ``sample(num, generator)`` and normalised ``log_prob``.
    log_M : float
        ``log`` of the envelope constant ``k`` with ``k q >= p_hat`` (known, or a bound the user
        trusts; see :func:`estimate_log_envelope`).
    num_samples : int
        ``N``, the number of accepted draws wanted.
    generator : torch.Generator, optional
    batch_size : int, optional
        Proposals per vectorised batch (default ``max(1024, 2 N)``, capped at ``max_proposals``).
    max_proposals : int
        Give up after this many proposals.
    on_violation : {"raise", "warn", "ignore"}
        What to do when a proposal has ``log p_hat > log M + log q``.

    Returns
    -------
    RejectionResult

    Raises
    ------
    SamplingError
        After ``max_proposals`` proposals without ``N`` acceptances (the counts are in the
        message and in ``err.found``).
    ValidationError
        On an envelope violation with ``on_violation="raise"``.
    """
    num_samples = check_int(num_samples, "rejection_sample num_samples", minimum=1)
    check_choice(on_violation, "rejection_sample on_violation", ("raise", "warn", "ignore"))
    log_M = check_real(log_M, "rejection_sample log_M")
    max_proposals = check_int(max_proposals, "rejection_sample max_proposals", minimum=1)
    if batch_size is not None:
        batch_size = check_int(batch_size, "rejection_sample batch_size", minimum=1)
    check_callable("rejection_sample", log_target, "log_target")
    check_generator_arg(generator, None, "rejection_sample generator")
    q = as_proposal(proposal)
    batch = batch_size or min(max(1024, 2 * num_samples), max_proposals)
    accepted: list[Tensor] = []
    n_acc = n_prop = n_viol = 0
    max_ratio = -math.inf
    warned = False
    while n_acc < num_samples:
        if n_prop >= max_proposals:
            raise SamplingError(
                "rejection_sample",
                f"gave up after max_proposals = {max_proposals} proposals with "
                f"{n_acc} of {num_samples} accepted (acceptance rate "
                f"{n_acc / max(n_prop, 1):.3g})",
                found={"num_proposed": n_prop, "num_accepted": n_acc},
                fix="use a proposal closer to the target, a tighter log_M, or raise max_proposals",
            )
        size = min(batch, max_proposals - n_prop)
        x = q.sample(size, generator)
        log_ratio = (_per_draw("rejection_sample: log_target", log_target(x), size)
                     - _per_draw("rejection_sample: proposal.log_prob", q.log_prob(x), size)
                     - log_M)
        if bool(torch.isnan(log_ratio).any()):
            raise NonFiniteError("rejection_sample", "log p_hat - log q is NaN for some proposals",
                                 fix="make log_target return -inf (not NaN) outside its support")
        viol = log_ratio > 1e-9 * max(1.0, abs(log_M))
        batch_viol = int(viol.sum())
        if batch_viol:
            worst = float(log_ratio.max())
            msg = (f"{batch_viol} proposal(s) have log p_hat > log M + log q (by up to "
                   f"{worst:.3g} nats), so k q >= p_hat is violated and the draws are biased")
            if on_violation == "raise":
                raise ValidationError("rejection_sample", msg, found={"log_M": log_M},
                                      fix=f"raise log_M to at least {log_M + worst:.6g} or "
                                      "use a wider proposal")
            if on_violation == "warn" and not warned:
                warnings.warn(msg, EnvelopeWarning, stacklevel=2)
                warned = True
        log_u = torch.log(torch.rand(size, generator=generator, dtype=log_ratio.dtype,
                                     device=log_ratio.device))
        acc = log_u <= log_ratio
        cum = torch.cumsum(acc.long(), 0)
        need = num_samples - n_acc
        total = int(cum[-1])
        if total >= need:  # stop at the need-th acceptance of this batch
            last = int(torch.searchsorted(cum, torch.tensor(need, device=cum.device)))
            acc = acc[: last + 1]
            x, log_ratio, viol = x[: last + 1], log_ratio[: last + 1], viol[: last + 1]
            size = last + 1
        accepted.append(x[acc])
        n_acc += int(acc.sum())
        n_prop += size
        n_viol += int(viol.sum())
        if log_ratio.numel():
            max_ratio = max(max_ratio, float(log_ratio.max()))
    return RejectionResult(torch.cat(accepted, 0), n_acc, n_prop, n_viol, max_ratio,
                           float(log_M))


def _per_draw(subject: str, value: object, n: int) -> Tensor:
    """``value`` if it is a floating tensor of shape (n,) (a scalar or (n, 1) is refused: it
    would broadcast silently)."""
    if not isinstance(value, Tensor) or value.shape != (n,):
        raise ShapeError(subject, f"must return shape (n,) = ({n},)",
                         found=tuple(value.shape) if isinstance(value, Tensor)
                         else type(value).__name__,
                         fix="sum over the event dimensions (no keepdim)")
    if not value.is_floating_point():
        raise ValidationError(subject, "must return a floating-point tensor", found=value.dtype)
    return value


def estimate_log_envelope(
    log_target: Callable[[Tensor], Tensor],
    proposal: Proposal | torch.distributions.Distribution,
    num_points: int = 100_000,
    *,
    generator: torch.Generator | None = None,
    margin: float = math.log(1.5),
) -> float:
    """A heuristic ``log M``: the largest ``log p_hat - log q`` over proposal draws, plus a margin.

    This is not a guaranteed bound (the supremum may lie where ``q`` rarely goes); check the
    result with ``on_violation="raise"``, or supply an analytic bound.

    Raises
    ------
    NonFiniteError
        If ``log p_hat - log q`` is NaN or ``+inf`` at some draw, or ``-inf`` at every draw
        (no finite envelope can be read off).
    """
    num_points = check_int(num_points, "estimate_log_envelope num_points", minimum=1)
    margin = check_real(margin, "estimate_log_envelope margin", minimum=0.0)
    check_callable("estimate_log_envelope", log_target, "log_target")
    check_generator_arg(generator, None, "estimate_log_envelope generator")
    q = as_proposal(proposal)
    x = q.sample(num_points, generator)
    r = (_per_draw("estimate_log_envelope: log_target", log_target(x), num_points)
         - _per_draw("estimate_log_envelope: proposal.log_prob", q.log_prob(x), num_points))
    check_log_values(r, "estimate_log_envelope (log p_hat - log q)",
                     fix="make log_target finite (or -inf outside its support) and q > 0 "
                     "wherever p_hat > 0")
    top = float(r.max())
    if not math.isfinite(top):
        raise NonFiniteError("estimate_log_envelope",
                             "log p_hat is -inf at every proposal draw",
                             fix="use a proposal that covers the target's support")
    return top + margin
