"""Training RBMs: contrastive-divergence gradient estimators and a standalone trainer.

The gradient of an RBM's mean log-likelihood over data ``v`` is a difference of two
expectations of ``-dE/dtheta`` (NNDL 12.51-12.53, DL7 7.7-7.11):

    d/dtheta mean log p(v) = E_data E_{p(h|v)}[-dE/dtheta] - E_{p(v,h)}[-dE/dtheta]
                             (positive phase)                (negative phase)

with ``-dE/dW = v~ h^T``, ``-dE/db = h`` and ``-dE/da = v`` (one-hot ``v`` for categorical
units, ``(v - a) / sigma^2`` for Gaussian ones; ``v~`` is ``v``, the one-hot ``v`` or
``v / sigma``, see :mod:`generative.energy.rbm`). The negative phase needs samples of the model;
the estimators differ in where they get them:

- **CD-k** (:func:`contrastive_divergence`; Hinton 2002, NNDL Algorithm 12.1, DL7 Algorithm
  7.1): ``k >= 1`` block-Gibbs steps from the data, ``v^(0) -> h^(0) -> v^(1) -> ... -> v^(k)
  -> h^(k)``; the statistics come from ``(v^(0), h^(0))`` and ``(v^(k), h^(k))`` after the loop
  (DL7 prints them inside it: the seed's erratum 5).
- **PCD** (:func:`persistent_contrastive_divergence`; Tieleman 2008): ``k`` steps of persistent
  "fantasy" chains that are never reset to the data; the chains are returned and passed back.
- **PT** (:func:`parallel_tempering`; Desjardins et al. 2010): persistent chains at inverse
  temperatures ``1 = beta_1 > ... > beta_R >= 0``. *Tempering choice*: the replica at ``beta``
  samples ``p_beta(v, h) ~ exp(visible_term(v, a) + beta (b^T h + v~^T W h))``; the visible
  term is **not** scaled, so ``beta = 0`` is the model's own independent visible units
  (``Bernoulli(sigmoid(a))``, ``N(a, sigma^2)``, ``softmax(a)``: always a proper distribution,
  which scaling the Gaussian term would not be) and the hidden units are scaled with the
  weights. Each update runs one block-Gibbs step per replica, then proposes swaps between
  neighbours (first the pairs (1,2), (3,4), ..., then (2,3), (4,5), ..., each pair set in one
  tensor operation) accepted with the Metropolis ratio
  ``min(1, exp(S_r(x_{r+1}) + S_{r+1}(x_r) - S_r(x_r) - S_{r+1}(x_{r+1})))``,
  ``S_beta(x) = sum_j softplus(beta (b_j + (x~^T W)_j))`` (the unscaled visible terms cancel);
  this is repeated ``k`` times. The ``beta = 1`` replica gives the negative statistics.

``statistics="probabilities"`` (USTC's Rao-Blackwellised form) puts ``p(h = 1 | v)`` in both
phases; ``statistics="samples"`` (Algorithm 12.1) puts the sampled ``h^(0)`` and a sampled
``h^(k) ~ p(h | v^(k))``. The visible states are always samples.

The statistics are computed in closed form with matrix products (``v~^T h`` and the column means;
one more reduction for a learned Gaussian ``log sigma``), not by autograd, and
:func:`set_gradients` writes their negatives into ``.grad``, so any ``torch.optim`` optimiser
*minimises* the negative log-likelihood: :func:`rbm_optimizer` is SGD with momentum and weight
decay on the weights only (not the biases, Hinton's practical guide, 2010). A sparsity target
(Lee et al. 2008; Hinton's guide section 11) adds :func:`sparsity_gradient`. Nothing here calls
``.item()`` or synchronises with the device, apart from the input checks of the public functions
(one per call).

:func:`train_rbm` trains an RBM in place (like an optimiser) on a data tensor; it is what DBN
pre-training stacks. :class:`generative.energy.rbm_task.RBMTask` runs the same estimators in the
shared training loop :func:`generative.train.fit` (checkpoints, resume, sample grids).

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.rbm import BernoulliRBM
>>> from generative.energy.contrastive import contrastive_divergence, train_rbm
>>> g = make_generator(0)
>>> data = (torch.rand(64, 6, generator=g, dtype=torch.float64) < 0.3).double()
>>> rbm = BernoulliRBM(6, 4, dtype=torch.float64, generator=g)
>>> est = contrastive_divergence(rbm, data, k=1, generator=g)
>>> sorted(est.ascent), est.ascent["weight"].shape
(['hidden_bias', 'visible_bias', 'weight'], torch.Size([6, 4]))
>>> res = train_rbm(rbm, data, method="pcd", epochs=3, batch_size=16, lr=0.05, generator=g)
>>> len(res.history), res.chains.shape
(3, torch.Size([16, 6]))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.checks import check_bool, check_optional_generator
from generative.energy.rbm import RBM, BernoulliRBM, CategoricalRBM, GaussianBernoulliRBM
from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_choice, check_finite, check_int, check_real, check_tensor

__all__ = [
    "DATA_VALUES",
    "METHODS",
    "STATISTICS",
    "RBMGradient",
    "RBMTrainResult",
    "check_betas",
    "contrastive_divergence",
    "default_betas",
    "estimate_gradient",
    "init_chains",
    "likelihood_gradient",
    "parallel_tempering",
    "persistent_contrastive_divergence",
    "rbm_optimizer",
    "set_gradients",
    "sparsity_gradient",
    "train_rbm",
    "trainable_names",
]

#: Gradient estimators: contrastive divergence, persistent CD, parallel-tempering CD.
METHODS = ("cd", "pcd", "pt")
#: What stands for ``h`` in the statistics: ``p(h = 1 | v)`` or sampled binary ``h``.
STATISTICS = ("probabilities", "samples")
#: What :func:`train_rbm` accepts for Bernoulli visible units: binary data only, or also
#: probabilities in [0, 1] (the mean-field activations of a lower layer).
DATA_VALUES = ("binary", "probabilities")


class RBMGradient(NamedTuple):
    """One gradient estimate.

    Attributes
    ----------
    ascent : dict of str to Tensor
        The estimated gradient of the mean log-likelihood (the *ascent* direction) for every
        trainable parameter, by its name in ``rbm.named_parameters()`` (``"weight"``,
        ``"visible_bias"``, ``"hidden_bias"``, and ``"log_sigma"`` for a learned Gaussian
        ``sigma``), each of that parameter's shape.
    positive_logits : Tensor (B, M)
        ``b + v~^T W`` of the data rows.
    positive_probs : Tensor (B, M)
        ``p(h = 1 | v)`` of the data rows (what a sparsity target acts on).
    negative : Tensor (B', *event_shape)
        The visible states of the negative phase (``v^(k)``, or the ``beta = 1`` chains).
    negative_logits : Tensor (B', M)
        ``b + v~^T W`` of ``negative``.
    chains : Tensor or None
        PCD: the chains after this update ``(C, *event_shape)``; PT: ``(R, C, *event_shape)``,
        replica 0 at ``beta = 1``; None for CD. Pass them to the next update.
    swap_rate : Tensor or None
        PT: the fraction of proposed replica swaps accepted in this update (0-d); else None.
    penalty : dict of str to Tensor
        Descent-direction gradients of the sparsity penalty (:func:`sparsity_gradient`) when a
        target was given, else empty; :func:`set_gradients` adds them.
    """

    ascent: dict[str, Tensor]
    positive_logits: Tensor
    positive_probs: Tensor
    negative: Tensor
    negative_logits: Tensor
    chains: Tensor | None
    swap_rate: Tensor | None
    penalty: dict[str, Tensor]


class RBMTrainResult(NamedTuple):
    """What :func:`train_rbm` returns (the RBM itself is trained in place).

    Attributes
    ----------
    history : list of float
        After each epoch, the mean-field reconstruction error ``||v - E[v | h = p(h | v)]||^2``
        per example on the training data (DL7 Algorithm 7.1's monitor; not a likelihood).
    chains : Tensor or None
        The persistent chains at the end (PCD ``(C, *event)``, PT ``(R, C, *event)``); pass them
        as ``chains=`` to continue training; None for CD.
    swap_rates : list of float
        PT: the mean swap acceptance rate of each epoch; empty otherwise.
    epochs : int
        Epochs completed (fewer than asked when ``callback`` stopped training).
    method : str
    """

    history: list[float]
    chains: Tensor | None
    swap_rates: list[float]
    epochs: int
    method: str


# ---------------------------------------------------------------------------- checks
def _check_rbm(rbm: Any, subject: str) -> RBM:
    if not isinstance(rbm, RBM):
        raise ValidationError(f"{subject} rbm", "must be a generative.energy.rbm RBM "
                              "(BernoulliRBM, GaussianBernoulliRBM or CategoricalRBM)",
                              found=type(rbm).__name__)
    return rbm


def _check_k(k: Any, subject: str) -> int:
    return check_int(k, f"{subject} k (Gibbs steps per update)", minimum=1)


def _check_statistics(statistics: Any, subject: str) -> str:
    return str(check_choice(statistics, f"{subject} statistics", STATISTICS))


def _check_generator(generator: Any, rbm: RBM, subject: str) -> torch.Generator | None:
    return check_optional_generator(generator, f"{subject} generator", rbm.weight.device)


def trainable_names(rbm: RBM) -> list[str]:
    """Names of the parameters the estimators return gradients for, in ``named_parameters``
    order (a fixed Gaussian ``sigma`` is a buffer and has none).

    Examples
    --------
    >>> from generative.energy.rbm import GaussianBernoulliRBM
    >>> trainable_names(GaussianBernoulliRBM(3, 2, learn_sigma=True))
    ['weight', 'visible_bias', 'hidden_bias', 'log_sigma']
    """
    rbm = _check_rbm(rbm, "trainable_names")
    return [name for name, _ in rbm.named_parameters()]


def _learns_sigma(rbm: RBM) -> bool:
    return isinstance(rbm, GaussianBernoulliRBM) and isinstance(rbm.log_sigma, nn.Parameter)


def default_betas(num_replicas: int, *, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> Tensor:
    """Inverse temperatures ``1, ..., 0`` evenly spaced, ``(num_replicas,)``, ``R >= 2``.

    Examples
    --------
    >>> default_betas(3).tolist()
    [1.0, 0.5, 0.0]
    """
    r = check_int(num_replicas, "default_betas num_replicas", minimum=2)
    return torch.linspace(1.0, 0.0, r, dtype=dtype, device=device)


def check_betas(betas: Any, rbm: RBM, subject: str = "betas") -> Tensor:
    """Check a tempering ladder: 1-D, ``R >= 2``, ``betas[0] == 1``, strictly decreasing,
    ``betas[-1] >= 0``; return it in the model's dtype and device."""
    if isinstance(betas, Tensor):
        b = check_tensor(betas, subject, floating=True, ndim=1, finite=True)
    else:
        if isinstance(betas, str | bytes) or not isinstance(betas, Sequence):
            raise ValidationError(subject, "must be a sequence or 1-D tensor of inverse "
                                  "temperatures", found=type(betas).__name__,
                                  fix="e.g. [1.0, 0.75, 0.5, 0.25, 0.0]")
        vals = [check_real(x, f"{subject}[{i}]") for i, x in enumerate(betas)]
        b = torch.tensor(vals, dtype=torch.float64)
    if b.numel() < 2:
        raise ShapeError(subject, "needs at least 2 replicas", found=b.numel(),
                         fix="use default_betas(R) with R >= 2, or method 'pcd'")
    vals = b.tolist()
    if vals[0] != 1.0 or vals[-1] < 0.0 or any(y >= x for x, y in itertools.pairwise(vals)):
        raise ValidationError(subject, "must start at exactly 1, decrease strictly and stay "
                              ">= 0", found=[round(v, 6) for v in vals[:8]],
                              fix="e.g. default_betas(R)")
    return b.to(device=rbm.weight.device, dtype=rbm.weight.dtype)


def _check_like(rbm: RBM, x: Tensor, name: str) -> None:
    if x.device != rbm.weight.device:
        raise DeviceMismatchError(name, f"must be on the model's device {rbm.weight.device}",
                                  found=x.device, fix=f"move it with .to('{rbm.weight.device}')")
    if x.dtype != rbm.weight.dtype:
        raise DtypeMismatchError(name, f"must have the model's dtype {rbm.weight.dtype}",
                                 found=x.dtype, fix=f"convert with .to({rbm.weight.dtype})")


def _check_values(rbm: RBM, v: Tensor, subject: str, data_values: str) -> None:
    if data_values == "probabilities" and isinstance(rbm, BernoulliRBM):
        bad = ~torch.isfinite(v) | (v < 0) | (v > 1)
        if bool(bad.any()):
            check_finite(v, f"BernoulliRBM {subject}")
            raise ValidationError(f"BernoulliRBM {subject}", "probabilities must lie in [0, 1]",
                                  found=(float(v.min()), float(v.max())))
        return
    rbm.check_visible(v, subject)


def _check_data(rbm: RBM, value: Any, subject: str, data_values: str = "binary",
                check_values: bool = True) -> Tensor:
    """Shape ``(B, *event)`` with ``B >= 1``, the model's dtype and device, then (one host
    synchronisation) the values: binary / one-hot / finite, or probabilities in [0, 1]."""
    name = f"{type(rbm).__name__} {subject}"
    v = check_tensor(value, name, floating=True)
    event = rbm.event_shape
    if v.dim() != len(event) + 1 or tuple(v.shape[1:]) != event or v.shape[0] < 1:
        raise ShapeError(name, f"must have shape (B, {', '.join(map(str, event))}) with B >= 1",
                         found=tuple(v.shape),
                         fix="add a batch dimension with v[None]" if tuple(v.shape) == event
                         else f"the model has {rbm.num_visible} visible units"
                         + (f" of {rbm.num_visible_states} categories (one-hot)"
                            if len(event) == 2 else ""))
    _check_like(rbm, v, name)
    if check_values:
        _check_values(rbm, v, subject, data_values)
    return v


def _check_chains(rbm: RBM, chains: Any, subject: str, replicas: int | None,
                  check_values: bool = True) -> Tensor:
    lead = 1 if replicas is None else 2
    name = f"{type(rbm).__name__} {subject}"
    c = check_tensor(chains, name, floating=True)
    event = rbm.event_shape
    if c.dim() != len(event) + lead or tuple(c.shape[lead:]) != event or c.shape[lead - 1] < 1 \
            or (replicas is not None and c.shape[0] != replicas):
        want = "(C, " if replicas is None else f"({replicas}, C, "
        raise ShapeError(name, f"must have shape {want}{', '.join(map(str, event))}) with "
                         "C >= 1", found=tuple(c.shape),
                         fix="start them with init_chains(rbm, C"
                         + (")" if replicas is None else f", num_replicas={replicas})"))
    _check_like(rbm, c, name)
    if check_values:
        rbm.check_visible(c.reshape(-1, *event), subject)
    return c


def _check_weights(value: Any, rows: int, like: Tensor, subject: str) -> Tensor | None:
    if value is None:
        return None
    w = check_tensor(value, subject, floating=True, ndim=1, finite=True)
    if w.shape[0] != rows:
        raise ShapeError(subject, f"needs one weight per row ({rows})", found=tuple(w.shape))
    if w.dtype != like.dtype or w.device != like.device:
        raise ValidationError(subject, f"must have the model's dtype {like.dtype} and device "
                              f"{like.device}", found=(w.dtype, w.device))
    if bool((w < 0).any()) or not math.isclose(float(w.sum()), 1.0, rel_tol=0, abs_tol=1e-6):
        raise ValidationError(subject, "must be non-negative and sum to 1",
                              found=float(w.sum()), fix="normalise: w / w.sum()")
    return w


# ---------------------------------------------------------------------------- sampling blocks
def _bernoulli(p: Tensor, generator: torch.Generator | None) -> Tensor:
    # u < p with u ~ U[0, 1): a Bernoulli(p) draw; comparing in place into the uniform tensor is
    # about three times faster than torch.bernoulli on small CPU tensors
    return torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device).lt_(p)


def _categorical(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One-hot draws ``(..., K)`` from category probabilities by the inverse CDF (one uniform
    per unit; much faster than ``torch.multinomial`` on many small rows)."""
    k = probs.shape[-1]
    u = torch.rand((*probs.shape[:-1], 1), generator=generator, dtype=probs.dtype,
                   device=probs.device)
    # index = number of categories whose cumulative probability is below u (rounding can leave
    # the last cumulative sum a hair under 1: clamp)
    idx = (probs.cumsum(-1) < u).sum(-1).clamp_max_(k - 1)
    return F.one_hot(idx, k).to(probs.dtype)


def _logits(rbm: RBM, vt: Tensor) -> Tensor:
    """``b + v~ W`` for flat ``v~`` (B, D_flat)."""
    return torch.addmm(rbm.hidden_bias, vt, rbm.flat_weight)


def _sample_visible(rbm: RBM, h: Tensor, generator: torch.Generator | None,
                    beta: Tensor | None = None) -> Tensor:
    """``v ~ p_beta(v | h)``: visible input ``beta W h``, visible bias unscaled."""
    if isinstance(rbm, BernoulliRBM):
        if beta is None:
            mean = torch.addmm(rbm.visible_bias, h, rbm.weight.T).sigmoid_()
        else:
            mean = torch.sigmoid((h @ rbm.weight.T) * beta + rbm.visible_bias)
        return _bernoulli(mean, generator)
    u = rbm.visible_input(h)
    if beta is not None:
        u = u * beta
    if isinstance(rbm, CategoricalRBM):
        return _categorical(rbm.visible_mean_given(None, u), generator)
    return rbm.sample_visible_given(None, u, generator)


# ---------------------------------------------------------------------------- statistics
def _statistics(rbm: RBM, vt0: Tensor, h0: Tensor, vtn: Tensor, hn: Tensor,
                w0: Tensor | None, wn: Tensor | None, sign: float) -> dict[str, Tensor]:
    """``sign * (positive - negative)`` statistics for every trainable parameter.

    ``vt`` are flat ``v~`` (B, D_flat), ``h`` probabilities or samples (B, M); ``w`` optional
    row weights summing to 1 (default uniform).
    """
    if w0 is None and wn is None:
        a0, an = sign / vt0.shape[0], sign / vtn.shape[0]
        gw = torch.addmm(torch.mm(vtn.T, hn), vt0.T, h0, beta=-an, alpha=a0)
        gb = h0.sum(0).mul_(a0).sub_(hn.sum(0).mul_(an))
        gv = vt0.sum(0).mul_(a0).sub_(vtn.sum(0).mul_(an))
    else:
        u0 = w0 if w0 is not None else vt0.new_full((vt0.shape[0],), 1.0 / vt0.shape[0])
        un = wn if wn is not None else vtn.new_full((vtn.shape[0],), 1.0 / vtn.shape[0])
        gw = (vt0.T @ (h0 * u0[:, None]) - vtn.T @ (hn * un[:, None])) * sign
        gb = (u0 @ h0 - un @ hn) * sign
        gv = (u0 @ vt0 - un @ vtn) * sign
    out: dict[str, Tensor] = {"weight": gw.view(rbm.weight.shape)}
    if isinstance(rbm, GaussianBernoulliRBM):
        s = rbm.sigma
        # -dE/da = (v - a) / sigma^2 = (v~ - a / sigma) / sigma: the a-terms cancel
        out["visible_bias"] = gv / s
        if _learns_sigma(rbm):
            # -dE/dlog(sigma_i) = (v_i - a_i)^2 / sigma_i^2 - v~_i (W h)_i; the mean of the
            # second term is sum_j W_ij (v~^T h)_ij / B, read off the weight statistic
            c = rbm.visible_bias / s
            if w0 is None and wn is None:
                sq = (vt0 - c).pow(2).mean(0) - (vtn - c).pow(2).mean(0)
            else:
                sq = u0 @ (vt0 - c).pow(2) - un @ (vtn - c).pow(2)
            gl = sq * sign - (rbm.flat_weight * gw).sum(1)
            # sigma = exp(log_sigma).clamp(min_sigma): no gradient below the floor (as autograd)
            out["log_sigma"] = gl * (rbm.log_sigma.exp() >= rbm.min_sigma)
    else:
        out["visible_bias"] = gv.view(rbm.visible_bias.shape)
    out["hidden_bias"] = gb
    return {name: out[name] for name, _ in rbm.named_parameters()}


class _Estimate(NamedTuple):
    grads: dict[str, Tensor]
    vt0: Tensor
    logits0: Tensor
    probs0: Tensor
    negative: Tensor
    vtn: Tensor
    logitsn: Tensor
    chains: Tensor | None
    swap_rate: Tensor | None


def _positive(rbm: RBM, v: Tensor, samples: bool, g: torch.Generator | None
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    vt = rbm.flatten_visible(v)
    x = _logits(rbm, vt)
    p = torch.sigmoid(x)
    h = _bernoulli(p, g) if samples else p
    return vt, x, p, h


def _gibbs(rbm: RBM, x: Tensor, steps: int, g: torch.Generator | None
           ) -> tuple[Tensor, Tensor, Tensor]:
    """``steps`` block-Gibbs steps from hidden logits ``x``; returns (v, v~, logits)."""
    v = vt = x  # replaced in the first step (steps >= 1)
    for _ in range(steps):
        v = _sample_visible(rbm, _bernoulli(torch.sigmoid(x), g), g)
        vt = rbm.flatten_visible(v)
        x = _logits(rbm, vt)
    return v, vt, x


def _finish(rbm: RBM, pos: tuple[Tensor, Tensor, Tensor, Tensor], v: Tensor, vt: Tensor,
            x: Tensor, samples: bool, g: torch.Generator | None, sign: float,
            chains: Tensor | None, swap: Tensor | None) -> _Estimate:
    vt0, x0, p0, h0 = pos
    pn = torch.sigmoid(x)
    hn = _bernoulli(pn, g) if samples else pn
    grads = _statistics(rbm, vt0, h0, vt, hn, None, None, sign)
    return _Estimate(grads, vt0, x0, p0, v, vt, x, chains, swap)


def _cd(rbm: RBM, v0: Tensor, k: int, samples: bool, g: torch.Generator | None,
        sign: float) -> _Estimate:
    vt0, x0, p0, _ = _positive(rbm, v0, False, None)
    h = _bernoulli(p0, g)  # h^(0): starts the chain, and is the sampled positive statistic
    v = _sample_visible(rbm, h, g)
    vt = rbm.flatten_visible(v)
    x = _logits(rbm, vt)
    if k > 1:
        v, vt, x = _gibbs(rbm, x, k - 1, g)
    return _finish(rbm, (vt0, x0, p0, h if samples else p0), v, vt, x, samples, g, sign,
                   None, None)


def _pcd(rbm: RBM, v0: Tensor, chains: Tensor, k: int, samples: bool,
         g: torch.Generator | None, sign: float) -> _Estimate:
    pos = _positive(rbm, v0, samples, g)
    x = _logits(rbm, rbm.flatten_visible(chains))
    v, vt, x = _gibbs(rbm, x, k, g)
    return _finish(rbm, pos, v, vt, x, samples, g, sign, v, None)


def _swap_round(states: Tensor, x: Tensor, betas: Tensor, start: int,
                g: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, int]:
    """Propose swaps of the pairs (start, start+1), (start+2, start+3), ... at once."""
    r = betas.shape[0]
    if start + 1 >= r:
        return states, x, x.new_zeros(()), 0
    lo = torch.arange(start, r - 1, 2, device=x.device)
    hi = lo + 1
    bl, bh = betas[lo][:, None, None], betas[hi][:, None, None]
    xl, xh = x[lo], x[hi]
    log_ratio = (F.softplus(bl * xh) + F.softplus(bh * xl)
                 - F.softplus(bl * xl) - F.softplus(bh * xh)).sum(-1)       # (P, C)
    accept = torch.rand(log_ratio.shape, generator=g, dtype=x.dtype,
                        device=x.device).log_() < log_ratio
    sl, sh = states[lo], states[hi]
    a = accept.view(*accept.shape, *([1] * (states.dim() - 2)))
    states = states.clone()
    states[lo] = torch.where(a, sh, sl)
    states[hi] = torch.where(a, sl, sh)
    ax = accept[..., None]
    x = x.clone()
    x[lo] = torch.where(ax, xh, xl)
    x[hi] = torch.where(ax, xl, xh)
    return states, x, accept.sum().to(x.dtype), accept.numel()


def _pt(rbm: RBM, v0: Tensor, chains: Tensor, betas: Tensor, k: int, samples: bool,
        g: torch.Generator | None, sign: float) -> _Estimate:
    pos = _positive(rbm, v0, samples, g)
    r, c = chains.shape[0], chains.shape[1]
    event = rbm.event_shape
    b_hid = betas.repeat_interleave(c)[:, None]                             # (R*C, 1)
    b_vis = b_hid.view(r * c, *([1] * len(event)))
    states = chains
    x = _logits(rbm, rbm.flatten_visible(chains.reshape(r * c, *event))).view(r, c, -1)
    accepted = x.new_zeros(())
    proposed = 0
    for _ in range(k):
        h = _bernoulli(torch.sigmoid(b_hid * x.view(r * c, -1)), g)
        flat = _sample_visible(rbm, h, g, b_vis)
        x = _logits(rbm, rbm.flatten_visible(flat)).view(r, c, -1)
        states = flat.view(r, c, *event)
        for start in (0, 1):
            states, x, acc, n = _swap_round(states, x, betas, start, g)
            accepted = accepted + acc
            proposed += n
    v = states[0]
    swap = accepted / max(proposed, 1)
    return _finish(rbm, pos, v, rbm.flatten_visible(v), x[0], samples, g, sign, states, swap)


def _estimate(rbm: RBM, v: Tensor, method: str, k: int, samples: bool, chains: Tensor | None,
              betas: Tensor | None, g: torch.Generator | None, sign: float) -> _Estimate:
    if method == "cd":
        return _cd(rbm, v, k, samples, g, sign)
    assert chains is not None
    if method == "pcd":
        return _pcd(rbm, v, chains, k, samples, g, sign)
    assert betas is not None
    return _pt(rbm, v, chains, betas, k, samples, g, sign)


def _public(est: _Estimate, penalty: dict[str, Tensor]) -> RBMGradient:
    return RBMGradient(est.grads, est.logits0, est.probs0, est.negative, est.logitsn,
                       est.chains, est.swap_rate, penalty)


# ---------------------------------------------------------------------------- public estimators
def init_chains(rbm: RBM, num_chains: int, *, num_replicas: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Starting states of persistent chains: draws of ``v ~ p(v | h = 0)``.

    Parameters
    ----------
    rbm : RBM
    num_chains : int
        ``C >= 1``.
    num_replicas : int, optional
        For parallel tempering: ``R >= 2`` replicas of ``C`` chains each.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor (C, *event_shape), or (R, C, *event_shape)

    Examples
    --------
    >>> from generative.energy.rbm import BernoulliRBM
    >>> init_chains(BernoulliRBM(5, 2), 3, num_replicas=4).shape
    torch.Size([4, 3, 5])
    """
    rbm = _check_rbm(rbm, "init_chains")
    c = check_int(num_chains, "init_chains num_chains", minimum=1)
    r = None if num_replicas is None else check_int(num_replicas, "init_chains num_replicas",
                                                    minimum=2)
    g = _check_generator(generator, rbm, "init_chains")
    rows = c if r is None else r * c
    with torch.no_grad():
        zeros = rbm.weight.new_zeros(rows, *rbm.event_shape)
        v = rbm.sample_visible_given(None, zeros, g)
    return v if r is None else v.view(r, c, *rbm.event_shape)


def likelihood_gradient(rbm: RBM, positive: Tensor, negative: Tensor, *,
                        positive_hidden: Tensor | None = None,
                        negative_hidden: Tensor | None = None,
                        positive_weights: Tensor | None = None,
                        negative_weights: Tensor | None = None) -> dict[str, Tensor]:
    """The closed-form statistics ``positive phase - negative phase`` for given samples.

    ``E_pos[-dE/dtheta] - E_neg[-dE/dtheta]`` with ``h`` replaced by ``p(h = 1 | v)`` where no
    hidden values are given (the probability statistics; with them it is exactly the gradient of
    ``mean(-F(positive)) - mean(-F(negative))``). With the negative rows all visible states and
    ``negative_weights = p(v)`` it is the exact log-likelihood gradient.

    Parameters
    ----------
    rbm : RBM
    positive, negative : Tensor (B, *event_shape), (B', *event_shape)
    positive_hidden, negative_hidden : Tensor (B, M), optional
        Hidden values (samples or probabilities in [0, 1]); default ``p(h = 1 | v)``.
    positive_weights, negative_weights : Tensor (B,), optional
        Row weights, non-negative, summing to 1; default uniform.

    Returns
    -------
    dict of str to Tensor
        The ascent direction for every trainable parameter (see :class:`RBMGradient`).

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, dtype=torch.float64)
    >>> v = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    >>> likelihood_gradient(rbm, v, v)["visible_bias"].tolist()
    [0.0, 0.0, 0.0]
    """
    subject = "likelihood_gradient"
    rbm = _check_rbm(rbm, subject)
    positive = _check_data(rbm, positive, f"{subject} positive")
    negative = _check_data(rbm, negative, f"{subject} negative")
    hid: list[Tensor | None] = []
    for name, h, v in (("positive_hidden", positive_hidden, positive),
                       ("negative_hidden", negative_hidden, negative)):
        if h is None:
            hid.append(None)
            continue
        h = check_tensor(h, f"{subject} {name}", floating=True, ndim=2, finite=True)
        if tuple(h.shape) != (v.shape[0], rbm.num_hidden):
            raise ShapeError(f"{subject} {name}", f"must have shape ({v.shape[0]}, "
                             f"{rbm.num_hidden})", found=tuple(h.shape))
        if h.dtype != rbm.weight.dtype or h.device != rbm.weight.device:
            raise ValidationError(f"{subject} {name}", "must have the model's dtype and device",
                                  found=(h.dtype, h.device))
        if bool(((h < 0) | (h > 1)).any()):
            raise ValidationError(f"{subject} {name}", "hidden values must lie in [0, 1]",
                                  found=(float(h.min()), float(h.max())))
        hid.append(h)
    w0 = _check_weights(positive_weights, positive.shape[0], rbm.weight,
                        f"{subject} positive_weights")
    wn = _check_weights(negative_weights, negative.shape[0], rbm.weight,
                        f"{subject} negative_weights")
    with torch.no_grad():
        vt0, vtn = rbm.flatten_visible(positive), rbm.flatten_visible(negative)
        h0 = hid[0] if hid[0] is not None else torch.sigmoid(_logits(rbm, vt0))
        hn = hid[1] if hid[1] is not None else torch.sigmoid(_logits(rbm, vtn))
        return _statistics(rbm, vt0, h0, vtn, hn, w0, wn, 1.0)


def _resolve_betas(rbm: RBM, method: str, betas: Any, chains: Any, num_replicas: Any,
                   subject: str) -> Tensor | None:
    if method != "pt":
        if betas is not None:
            raise ValidationError(f"{subject} betas", "are for method 'pt' only",
                                  found=type(betas).__name__, fix="drop betas or use method='pt'")
        return None
    if betas is not None:
        return check_betas(betas, rbm, f"{subject} betas")
    if isinstance(chains, Tensor) and chains.dim() >= 2:
        r = chains.shape[0]
    else:
        r = check_int(num_replicas, f"{subject} num_replicas", minimum=2)
    if r < 2:
        raise ShapeError(f"{subject} chains", "parallel tempering needs R >= 2 replicas "
                         "(chains of shape (R, C, *event_shape))", found=tuple(chains.shape),
                         fix="start them with init_chains(rbm, C, num_replicas=R)")
    return default_betas(r, dtype=rbm.weight.dtype, device=rbm.weight.device)


def estimate_gradient(rbm: RBM, v: Tensor, *, method: str = "cd", k: int = 1,
                      statistics: str = "probabilities", chains: Tensor | None = None,
                      betas: Sequence[float] | Tensor | None = None, num_replicas: int = 5,
                      sparsity_target: float | None = None, sparsity_cost: float = 0.0,
                      check_values: bool = True,
                      generator: torch.Generator | None = None) -> RBMGradient:
    """One gradient estimate on a minibatch by CD-k, PCD or PT (see the module docstring).

    Parameters
    ----------
    rbm : RBM
    v : Tensor (B, *event_shape)
        Data rows: binary for Bernoulli units, one-hot for categorical ones, finite reals for
        Gaussian ones; the model's dtype and device.
    method : {"cd", "pcd", "pt"}
        Contrastive divergence from the data, persistent CD, parallel-tempering CD.
    k : int
        CD / PCD: block-Gibbs steps per update; PT: rounds of (one step per replica, swaps).
        ``>= 1``.
    statistics : {"probabilities", "samples"}
        ``p(h = 1 | v)`` in both phases, or the sampled ``h^(0)`` and ``h^(k)``.
    chains : Tensor, optional
        PCD ``(C, *event_shape)``, PT ``(R, C, *event_shape)`` with replica 0 at ``beta = 1``:
        the previous estimate's :attr:`RBMGradient.chains`. None starts fresh ones
        (:func:`init_chains`, ``C = B``). Not modified.
    betas : sequence of float or Tensor (R,), optional
        PT inverse temperatures (:func:`check_betas`); default :func:`default_betas` of the
        chains' ``R``, else of ``num_replicas``.
    num_replicas : int
        PT: ``R >= 2`` when neither ``betas`` nor ``chains`` give it.
    sparsity_target : float, optional
        If given (in (0, 1)), :attr:`RBMGradient.penalty` holds :func:`sparsity_gradient`.
    sparsity_cost : float
        ``>= 0``.
    check_values : bool
        Check the values of ``v`` and ``chains`` (binary / one-hot / finite): one host
        synchronisation. False skips it (shapes, dtypes and devices are still checked) for loops
        that have checked their data already.
    generator : torch.Generator, optional
        On the model's device.

    Returns
    -------
    RBMGradient

    Raises
    ------
    ValidationError, ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError
        Unknown method or statistics, ``k < 1``, chains or betas that do not fit (or given to
        CD), data of the wrong shape, dtype or device, NaN, non-binary or non-one-hot values.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(4, 3, dtype=torch.float64)
    >>> v = torch.ones(2, 4, dtype=torch.float64)
    >>> est = estimate_gradient(rbm, v, method="pt", num_replicas=3, generator=make_generator(0))
    >>> est.chains.shape, float(est.swap_rate) <= 1
    (torch.Size([3, 2, 4]), True)
    """
    subject = "estimate_gradient"
    rbm = _check_rbm(rbm, subject)
    method = str(check_choice(method, f"{subject} method", METHODS))
    k = _check_k(k, subject)
    samples = _check_statistics(statistics, subject) == "samples"
    check_bool(check_values, f"{subject} check_values")
    target, cost = _check_sparsity(sparsity_target, sparsity_cost, subject)
    g = _check_generator(generator, rbm, subject)
    v = _check_data(rbm, v, f"{subject} v", check_values=check_values)
    if method == "cd" and chains is not None:
        raise ValidationError(f"{subject} chains", "method 'cd' starts its chains at the data; "
                              "persistent chains are for 'pcd' / 'pt'",
                              found=type(chains).__name__, fix="drop chains or use 'pcd'")
    b = _resolve_betas(rbm, method, betas, chains, num_replicas, subject)
    c: Tensor | None = None
    if method != "cd":
        r = None if b is None else b.shape[0]
        c = init_chains(rbm, v.shape[0], num_replicas=r, generator=g) if chains is None else \
            _check_chains(rbm, chains, f"{subject} chains", r, check_values)
    with torch.no_grad():
        est = _estimate(rbm, v, method, k, samples, c, b, g, 1.0)
        penalty = _sparsity(rbm, est.vt0, est.probs0, target, cost) \
            if target is not None else {}
    return _public(est, penalty)


def contrastive_divergence(rbm: RBM, v: Tensor, *, k: int = 1,
                           statistics: str = "probabilities",
                           generator: torch.Generator | None = None) -> RBMGradient:
    """CD-k gradient estimate on a minibatch (Hinton 2002; NNDL Alg. 12.1; DL7 Alg. 7.1).

    ``estimate_gradient(rbm, v, method="cd", ...)``: ``k >= 1`` block-Gibbs steps from the data
    rows ``v`` (B, *event_shape); ``chains`` of the result is None.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(4, 3, dtype=torch.float64)
    >>> v = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    >>> contrastive_divergence(rbm, v, k=3, generator=make_generator(0)).negative.shape
    torch.Size([1, 4])
    """
    return estimate_gradient(rbm, v, method="cd", k=k, statistics=statistics,
                             generator=generator)


def persistent_contrastive_divergence(rbm: RBM, v: Tensor, chains: Tensor | None = None, *,
                                      k: int = 1, statistics: str = "probabilities",
                                      generator: torch.Generator | None = None) -> RBMGradient:
    """Persistent CD (Tieleman 2008): ``k`` block-Gibbs steps of persistent chains per update.

    ``estimate_gradient(rbm, v, method="pcd", chains=chains, ...)``; pass the result's
    ``chains`` (C, *event_shape) to the next update (None starts ``B`` fresh chains).
    """
    return estimate_gradient(rbm, v, method="pcd", k=k, statistics=statistics, chains=chains,
                             generator=generator)


def parallel_tempering(rbm: RBM, v: Tensor, chains: Tensor | None = None, *,
                       betas: Sequence[float] | Tensor | None = None, num_replicas: int = 5,
                       k: int = 1, statistics: str = "probabilities",
                       generator: torch.Generator | None = None) -> RBMGradient:
    """Parallel-tempering CD (Desjardins et al. 2010); tempering as in the module docstring.

    ``estimate_gradient(rbm, v, method="pt", ...)``: ``chains`` (R, C, *event_shape), replica 0
    at ``beta = 1``; the result has the advanced chains and the swap acceptance rate.
    """
    return estimate_gradient(rbm, v, method="pt", k=k, statistics=statistics, chains=chains,
                             betas=betas, num_replicas=num_replicas, generator=generator)


# ---------------------------------------------------------------------------- penalties, grads
def _sparsity(rbm: RBM, vt0: Tensor, p0: Tensor, target: float, cost: float
              ) -> dict[str, Tensor]:
    d = (p0.mean(0) - target).mul_(cost)                                     # (M,)
    return {"weight": torch.outer(vt0.mean(0), d).view(rbm.weight.shape), "hidden_bias": d}


def sparsity_gradient(rbm: RBM, v: Tensor, hidden_probs: Tensor | None = None, *,
                      target: float, cost: float) -> dict[str, Tensor]:
    """Gradient (descent direction) of the sparsity penalty on the mean hidden activation.

    With ``q_j`` the minibatch mean of ``p(h_j = 1 | v)``, the penalty is ``cost`` times the
    cross-entropy between the target ``p`` and ``q_j``; as in Hinton's practical guide
    (section 11.3) its derivative with respect to a hidden unit's total input is taken as
    ``cost (q_j - p)``, applied to the hidden bias and to the incoming weights (times the mean
    ``v~_i``). Lee et al. (2008) apply the same push to the hidden biases.

    Parameters
    ----------
    rbm : RBM
    v : Tensor (B, *event_shape)
    hidden_probs : Tensor (B, M), optional
        ``p(h = 1 | v)`` if already computed.
    target : float
        ``p`` in (0, 1).
    cost : float
        ``>= 0``.

    Returns
    -------
    dict
        ``{"weight": (D.., M), "hidden_bias": (M,)}``: add to ``.grad`` (see
        :func:`set_gradients`).

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, dtype=torch.float64)   # p(h = 1 | v) = 0.5 at zero bias
    >>> g = sparsity_gradient(rbm, torch.zeros(4, 3, dtype=torch.float64), target=0.1, cost=1.0)
    >>> [round(x, 6) for x in g["hidden_bias"].tolist()]
    [0.4, 0.4]
    """
    subject = "sparsity_gradient"
    rbm = _check_rbm(rbm, subject)
    v = _check_data(rbm, v, f"{subject} v")
    target = check_real(target, f"{subject} target", minimum=0.0, maximum=1.0,
                        strict_minimum=True, strict_maximum=True)
    cost = check_real(cost, f"{subject} cost", minimum=0.0)
    with torch.no_grad():
        vt = rbm.flatten_visible(v)
        if hidden_probs is None:
            p = torch.sigmoid(_logits(rbm, vt))
        else:
            p = check_tensor(hidden_probs, f"{subject} hidden_probs", floating=True,
                             shape=(v.shape[0], rbm.num_hidden), finite=True)
        return _sparsity(rbm, vt, p, target, cost)


def set_gradients(rbm: RBM, ascent: Mapping[str, Tensor], *,
                  penalty: Mapping[str, Tensor] | None = None) -> None:
    """Write ``-ascent (+ penalty)`` into the parameters' ``.grad`` (accumulating, as backward).

    After ``optimizer.zero_grad()`` and this call, any ``torch.optim`` optimiser's ``step()``
    moves the parameters up the estimated log-likelihood (and down the penalty).

    Parameters
    ----------
    rbm : RBM
    ascent : dict
        :attr:`RBMGradient.ascent`: one tensor per trainable parameter, of its shape.
    penalty : dict, optional
        Descent-direction gradients of penalties for some parameters (e.g.
        :func:`sparsity_gradient`).

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(2, 1, dtype=torch.float64)
    >>> set_gradients(rbm, {n: torch.ones_like(p) for n, p in rbm.named_parameters()})
    >>> rbm.hidden_bias.grad.tolist()
    [-1.0]
    """
    rbm = _check_rbm(rbm, "set_gradients")
    params = dict(rbm.named_parameters())
    if not isinstance(ascent, Mapping) or set(ascent) != set(params):
        raise ValidationError("set_gradients ascent", f"must map exactly {sorted(params)} to "
                              "tensors", found=sorted(ascent) if isinstance(ascent, Mapping)
                              else type(ascent).__name__, fix="pass estimate.ascent")
    extra = dict(penalty) if penalty is not None else {}
    unknown = sorted(set(extra) - set(params))
    if unknown:
        raise ValidationError("set_gradients penalty", f"names unknown parameters {unknown}",
                              fix=f"use some of {sorted(params)}")
    for name, p in params.items():
        for what, t in (("ascent", ascent[name]), ("penalty", extra.get(name))):
            if t is None:
                continue
            if not isinstance(t, Tensor) or t.shape != p.shape:
                raise ShapeError(f"set_gradients {what}[{name!r}]", f"must be a tensor of shape "
                                 f"{tuple(p.shape)}", found=tuple(t.shape)
                                 if isinstance(t, Tensor) else type(t).__name__)
    _write_grads(params, ascent, extra)


def _write_grads(params: Mapping[str, nn.Parameter], ascent: Mapping[str, Tensor],
                 penalty: Mapping[str, Tensor]) -> None:
    for name, p in params.items():
        g = -ascent[name].detach()
        if name in penalty:
            g = g + penalty[name].detach()
        if p.grad is None:
            p.grad = g
        else:
            p.grad.add_(g)


def rbm_optimizer(rbm: RBM, *, lr: float, momentum: float = 0.0,
                  weight_decay: float = 0.0) -> torch.optim.SGD:
    """SGD with momentum, and L2 weight decay on the weights only (Hinton's guide, section 10).

    Parameters
    ----------
    rbm : RBM
    lr : float
        Learning rate ``> 0``.
    momentum : float
        In ``[0, 1)``.
    weight_decay : float
        ``>= 0``; adds ``weight_decay * W`` to the weights' gradient (biases and ``log sigma``
        are not decayed).

    Examples
    --------
    >>> from generative.energy.rbm import BernoulliRBM
    >>> opt = rbm_optimizer(BernoulliRBM(3, 2), lr=0.1, momentum=0.5, weight_decay=1e-4)
    >>> [g["weight_decay"] for g in opt.param_groups]
    [0.0001, 0.0]
    """
    rbm = _check_rbm(rbm, "rbm_optimizer")
    lr, momentum, weight_decay = _check_rates(lr, momentum, weight_decay, "rbm_optimizer")
    others = [p for name, p in rbm.named_parameters() if name != "weight"]
    return torch.optim.SGD([{"params": [rbm.weight], "weight_decay": weight_decay},
                            {"params": others, "weight_decay": 0.0}],
                           lr=lr, momentum=momentum)


def _check_rates(lr: Any, momentum: Any, weight_decay: Any, subject: str
                 ) -> tuple[float, float, float]:
    lr = check_real(lr, f"{subject} lr", minimum=0.0, strict_minimum=True)
    momentum = check_real(momentum, f"{subject} momentum", minimum=0.0, maximum=1.0,
                          strict_maximum=True)
    weight_decay = check_real(weight_decay, f"{subject} weight_decay", minimum=0.0)
    return lr, momentum, weight_decay


def _check_sparsity(target: Any, cost: Any, subject: str) -> tuple[float | None, float]:
    cost = check_real(cost, f"{subject} sparsity_cost", minimum=0.0)
    if target is None:
        return None, cost
    target = check_real(target, f"{subject} sparsity_target", minimum=0.0, maximum=1.0,
                        strict_minimum=True, strict_maximum=True)
    return target, cost


# ---------------------------------------------------------------------------- trainer
class _FusedSGD:
    """``torch.optim.SGD`` (momentum, no dampening, weight decay on ``weight``) on descent
    gradients, without the optimiser's per-step overhead (it dominates small RBM batches)."""

    def __init__(self, params: dict[str, nn.Parameter], lr: float, momentum: float,
                 weight_decay: float) -> None:
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, \
            weight_decay
        self.bufs: dict[str, Tensor] = {}

    def step(self, grads: dict[str, Tensor]) -> None:
        for name, p in self.params.items():
            g = grads[name]
            if name == "weight" and self.weight_decay:
                g = g.add_(p, alpha=self.weight_decay)
            if self.momentum:
                buf = self.bufs.get(name)
                if buf is None:
                    buf = self.bufs[name] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g)
                g = buf
            p.sub_(g, alpha=self.lr)


class _PackedBernoulli:
    """CD / PCD updates of a Bernoulli RBM on one packed matrix ``P = [[W, a], [b, 0]]``.

    With a constant 1 appended to every visible and hidden vector, ``-E = [v, 1]^T P [h, 1]``:
    the hidden inputs are ``[v, 1] @ P[:, :M]``, and one product ``[v, 1]^T [h, 1]`` gives the
    statistics of the weights and both biases at once, so an update is a handful of tensor
    operations (their count, not their arithmetic, dominates small minibatches). Samples and
    probabilities are written straight into buffers whose last column is 1. It draws the same
    random numbers in the same order as the generic estimators, and its update equals
    ``torch.optim.SGD`` with :func:`rbm_optimizer`'s groups. :meth:`sync` writes the packed
    parameters back into the RBM's own.
    """

    def __init__(self, rbm: BernoulliRBM, lr: float, momentum: float,
                 weight_decay: float) -> None:
        d, m = rbm.num_visible, rbm.num_hidden
        # float32 sigmoids of logits below log(tiny) ~ -87.3 are subnormal, and products with
        # subnormals run ~100x slower on x86 (a saturated RBM stalls): such logits are raised
        # to log(tiny) + 0.5, which changes a probability by less than 2e-38 (below the
        # resolution of float32 uniforms: no draw changes). float64 keeps exact logits.
        dt = rbm.weight.dtype
        self.floor = (math.log(torch.finfo(dt).tiny) + 0.5
                      if dt.is_floating_point and torch.finfo(dt).bits <= 32 else None)
        self.rbm, self.d, self.m = rbm, d, m
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        w = rbm.weight.detach()
        p = self.packed = w.new_zeros(d + 1, m + 1)
        p[:d, :m] = w
        p[:d, m] = rbm.visible_bias.detach()
        p[d, :m] = rbm.hidden_bias.detach()
        # views of P, valid for the whole run (P is only updated in place): hidden inputs
        # [v, 1] @ P[:, :M], visible inputs [h, 1] @ P[:D].T = W h + a
        self.hid, self.weight, self.vis_t = p[:, :m], p[:d, :m], p[:d].T
        self.buf: Tensor | None = None
        self._bufs: dict[tuple[str, int], Tensor] = {}

    def augment(self, v: Tensor) -> Tensor:
        """``[v, 1]``: (N, D + 1)."""
        return torch.cat([v, v.new_ones(v.shape[0], 1)], 1)

    def _ones(self, slot: str, rows: int, width: int) -> Tensor:
        """A reused (rows, width + 1) buffer whose last column is 1."""
        out = self._bufs.get((slot, rows))
        if out is None:
            out = self._bufs[(slot, rows)] = self.packed.new_ones(rows, width + 1)
        return out

    def _hidden_probs(self, va: Tensor, slot: str) -> Tensor:
        out = self._ones(slot, va.shape[0], self.m)
        x = torch.mm(va, self.hid)
        if self.floor is not None:
            x.clamp_min_(self.floor)
        torch.sigmoid(x, out=out[:, :self.m])
        return out

    def _sample_into(self, p: Tensor, slot: str, g: torch.Generator | None) -> Tensor:
        out = self._ones(slot, p.shape[0], p.shape[1])
        self._draw(p, out[:, :-1], g)
        return out

    def _draw(self, p: Tensor, out: Tensor, g: torch.Generator | None) -> None:
        """Bernoulli(p) draws into ``out``."""
        torch.lt(torch.rand(p.shape, generator=g, dtype=p.dtype, device=p.device), p, out=out)

    def _visible_mean(self, ha: Tensor) -> Tensor:
        """``sigmoid(W h + a)`` from ``[h, 1]``."""
        x = torch.mm(ha, self.vis_t)
        if self.floor is not None:
            x.clamp_min_(self.floor)
        return x.sigmoid_()

    def gather(self, data: Tensor, rows: Tensor) -> Tensor:
        """``[data[rows], 1]`` in a reused buffer (a minibatch of the shuffled data, without
        copying the whole shuffled data set)."""
        out = self._ones("v0", rows.shape[0], self.d)
        torch.index_select(data, 0, rows, out=self._rows(rows.shape[0]))
        out[:, :self.d] = self._bufs[("rows", rows.shape[0])]
        return out

    def _rows(self, n: int) -> Tensor:
        out = self._bufs.get(("rows", n))
        if out is None:
            out = self._bufs[("rows", n)] = self.packed.new_empty(n, self.d)
        return out

    def recon_error(self, data: Tensor, chunk: int = 4096) -> Tensor:
        """Mean-field reconstruction error per example of ``data`` (N, D)."""
        d, m = self.d, self.m
        total = data.new_zeros((), dtype=torch.float64)
        for lo in range(0, data.shape[0], chunk):
            v = data[lo: lo + chunk]
            ha = self._ones("recon", v.shape[0], m)
            x = torch.addmm(self.packed[d, :m], v, self.weight)
            if self.floor is not None:
                x.clamp_min_(self.floor)
            torch.sigmoid(x, out=ha[:, :m])
            recon = self._visible_mean(ha)
            total = total + F.mse_loss(recon, v, reduction="sum").double()
        return total / data.shape[0]

    def step(self, v0a: Tensor, chains: Tensor | None, k: int, samples: bool,
             target: float | None, cost: float, g: torch.Generator | None) -> None:
        """One update from augmented data rows ``v0a`` (B, D + 1); PCD advances ``chains``
        (C, D + 1, last column 1) in place."""
        d, m = self.d, self.m
        p0a = self._hidden_probs(v0a, "p0")
        p0 = p0a[:, :m]
        if chains is None:                                   # CD-k from the data
            h0a = self._sample_into(p0, "h0", g)             # h^(0) starts the chain
            vna = self._sample_into(self._visible_mean(h0a), "v", g)
            pna = self._hidden_probs(vna, "pn")
            for _ in range(k - 1):
                ha = self._sample_into(pna[:, :m], "h", g)
                vna = self._sample_into(self._visible_mean(ha), "v", g)
                pna = self._hidden_probs(vna, "pn")
            if not samples:
                h0a = p0a
        else:                                                # PCD: persistent chains
            h0a = self._sample_into(p0, "h0", g) if samples else p0a
            vna = chains
            pna = self._hidden_probs(vna, "pn")
            for _ in range(k):
                mean = self._visible_mean(self._sample_into(pna[:, :m], "h", g))
                self._draw(mean, vna[:, :d], g)
                pna = self._hidden_probs(vna, "pn")
        hna = self._sample_into(pna[:, :m], "hn", g) if samples else pna
        # descent direction: negative minus positive statistics, all parameters at once
        grad = torch.addmm(torch.mm(vna.T, hna), v0a.T, h0a, beta=1.0 / vna.shape[0],
                           alpha=-1.0 / v0a.shape[0])
        if target is not None and cost > 0:
            grad[:, :m].addr_(v0a.mean(0), p0.mean(0).sub_(target).mul_(cost))
        if self.weight_decay:
            grad[:d, :m].add_(self.weight, alpha=self.weight_decay)
        if self.momentum:
            if self.buf is None:
                self.buf = grad
            else:
                grad = self.buf.mul_(self.momentum).add_(grad)
        self.packed.sub_(grad, alpha=self.lr)

    def sync(self) -> None:
        """Write the packed parameters back into the RBM's own."""
        self.rbm.weight.copy_(self.weight)
        self.rbm.visible_bias.copy_(self.packed[:self.d, self.m])
        self.rbm.hidden_bias.copy_(self.packed[self.d, :self.m])


def _even_slices(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``ceil(n / batch_size)`` contiguous slices whose sizes differ by at most one."""
    num = max(1, -(-n // batch_size))
    base, extra = divmod(n, num)
    out, start = [], 0
    for i in range(num):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def _recon_error(rbm: RBM, data: Tensor, chunk: int = 4096) -> Tensor:
    total = data.new_zeros((), dtype=torch.float64)
    for lo in range(0, data.shape[0], chunk):
        v = data[lo: lo + chunk]
        p = torch.sigmoid(_logits(rbm, rbm.flatten_visible(v)))
        recon = rbm.visible_mean_given(None, rbm.visible_input(p))
        total = total + (v - recon).pow(2).sum().double()
    return total / data.shape[0]


def train_rbm(rbm: RBM, data: Tensor, *, method: str = "cd", k: int = 1, epochs: int = 10,
              batch_size: int = 100, lr: float = 0.05, momentum: float = 0.5,
              weight_decay: float = 1e-4, sparsity_target: float | None = None,
              sparsity_cost: float = 0.0, statistics: str = "probabilities",
              num_replicas: int = 5, num_chains: int | None = None,
              chains: Tensor | None = None, betas: Sequence[float] | Tensor | None = None,
              data_values: str = "binary", generator: torch.Generator | None = None,
              callback: Callable[[int, RBM, float], Any] | None = None) -> RBMTrainResult:
    """Train ``rbm`` in place on ``data`` (like an optimiser: the model is what changes).

    Each epoch shuffles the rows (with ``generator``), cuts them into ``ceil(N / batch_size)``
    minibatches whose sizes differ by at most one, and per minibatch estimates the gradient with
    ``method`` and takes one SGD step: momentum (``buf = momentum * buf + g``), weight decay on
    the weights only, the sparsity push if a target is set, then ``theta -= lr * buf``: exactly
    ``torch.optim.SGD`` on :func:`set_gradients`' ``.grad`` with :func:`rbm_optimizer`'s groups.
    No host synchronisation happens inside an epoch.

    Parameters
    ----------
    rbm : RBM
        Trained in place.
    data : Tensor (N, *event_shape)
        In the model's dtype and device; checked once (binary for Bernoulli units unless
        ``data_values="probabilities"``, one-hot for categorical units, finite for Gaussian
        ones; standardise Gaussian data with :func:`generative.energy.standardize.standardize`).
    method : {"cd", "pcd", "pt"}
    k : int
        Gibbs steps per update (PT: rounds of one step per replica then swaps), ``>= 1``.
    epochs : int
        ``>= 1``.
    batch_size : int
        ``>= 1``.
    lr, momentum, weight_decay : float
        Learning rate ``> 0``, momentum in ``[0, 1)``, L2 decay of the weights ``>= 0``.
    sparsity_target : float, optional
        Target mean hidden activation in (0, 1) (see :func:`sparsity_gradient`).
    sparsity_cost : float
        ``>= 0``; used with a target.
    statistics : {"probabilities", "samples"}
    num_replicas : int
        PT replicas ``R >= 2`` (inverse temperatures :func:`default_betas`) unless ``betas``
        or ``chains`` are given.
    num_chains : int, optional
        Persistent chains (PCD; per replica for PT); default ``batch_size``.
    chains : Tensor, optional
        Chains to continue from (a previous result's ``chains``).
    betas : sequence of float or Tensor, optional
        PT inverse temperatures (see :func:`check_betas`).
    data_values : {"binary", "probabilities"}
        For Bernoulli visible units: require binary data, or accept values in [0, 1] (e.g. the
        hidden probabilities of a lower layer, a mean-field stand-in for binary data).
    generator : torch.Generator, optional
        All draws: shuffling, initial chains, Gibbs steps.
    callback : callable, optional
        ``callback(epoch, rbm, reconstruction_error)`` after each epoch (epoch from 1); return
        True to stop training (e.g. DL7 Algorithm 7.1's error threshold).

    Returns
    -------
    RBMTrainResult

    Raises
    ------
    ValidationError, ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError
        Bad method / statistics names, ``k < 1``, negative or out-of-range rates, data of the
        wrong shape, dtype or device, NaN, non-binary data for Bernoulli units, chains or betas
        that do not fit.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> from generative.energy.rbm import BernoulliRBM
    >>> g = make_generator(0)
    >>> x = (torch.rand(200, 8, generator=g) < 0.2).float()
    >>> rbm = BernoulliRBM(8, 4, generator=g)
    >>> res = train_rbm(rbm, x, method="cd", k=1, epochs=5, batch_size=50, lr=0.1, generator=g)
    >>> res.epochs, res.history[-1] < res.history[0]
    (5, True)
    """
    subject = "train_rbm"
    rbm = _check_rbm(rbm, subject)
    method = str(check_choice(method, f"{subject} method", METHODS))
    k = _check_k(k, subject)
    epochs = check_int(epochs, f"{subject} epochs", minimum=1)
    batch_size = check_int(batch_size, f"{subject} batch_size", minimum=1)
    lr, momentum, weight_decay = _check_rates(lr, momentum, weight_decay, subject)
    target, cost = _check_sparsity(sparsity_target, sparsity_cost, subject)
    samples = _check_statistics(statistics, subject) == "samples"
    data_values = str(check_choice(data_values, f"{subject} data_values", DATA_VALUES))
    g = _check_generator(generator, rbm, subject)
    if callback is not None and not callable(callback):
        raise ValidationError(f"{subject} callback", "must be callable or None",
                              found=type(callback).__name__)
    data = _check_data(rbm, data, f"{subject} data", data_values)
    if method == "cd" and (chains is not None or num_chains is not None):
        raise ValidationError(subject, "method 'cd' starts its chains at the data: chains and "
                              "num_chains are for 'pcd' / 'pt'",
                              found={"chains": chains is not None, "num_chains": num_chains},
                              fix="drop them or pick method='pcd' / 'pt'")
    b = _resolve_betas(rbm, method, betas, chains, num_replicas, subject)
    state: Tensor | None = None
    if method != "cd":
        replicas = None if b is None else b.shape[0]
        if chains is not None:
            if num_chains is not None:
                raise ValidationError(subject, "give chains or num_chains, not both",
                                      found=num_chains)
            state = _check_chains(rbm, chains, f"{subject} chains", replicas)
        else:
            c = batch_size if num_chains is None else check_int(
                num_chains, f"{subject} num_chains", minimum=1)
            state = init_chains(rbm, c, num_replicas=replicas, generator=g)
    n = data.shape[0]
    slices = _even_slices(n, batch_size)
    history: list[float] = []
    swap_rates: list[float] = []
    done = 0
    packed = isinstance(rbm, BernoulliRBM) and method != "pt"
    with torch.no_grad():
        if packed:
            assert isinstance(rbm, BernoulliRBM)
            fast = _PackedBernoulli(rbm, lr, momentum, weight_decay)
            chains_a = None if state is None else fast.augment(state)
        else:
            opt = _FusedSGD(dict(rbm.named_parameters()), lr, momentum, weight_decay)
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(n, generator=g, device=data.device)
            swaps = data.new_zeros(())
            if packed:
                for lo, hi in slices:
                    fast.step(fast.gather(data, perm[lo:hi]), chains_a, k, samples, target,
                              cost, g)
                fast.sync()
                err = float(fast.recon_error(data))
            else:
                shuffled = data[perm]
                for lo, hi in slices:
                    est = _estimate(rbm, shuffled[lo:hi], method, k, samples, state, b, g, -1.0)
                    grads = est.grads
                    if target is not None and cost > 0:
                        pen = _sparsity(rbm, est.vt0, est.probs0, target, cost)
                        grads["weight"] = grads["weight"] + pen["weight"]
                        grads["hidden_bias"] = grads["hidden_bias"] + pen["hidden_bias"]
                    opt.step(grads)
                    state = est.chains
                    if est.swap_rate is not None:
                        swaps = swaps + est.swap_rate
                err = float(_recon_error(rbm, data))
            history.append(err)
            if b is not None:
                swap_rates.append(float(swaps) / len(slices))
            done = epoch
            if callback is not None and callback(epoch, rbm, err) is True:
                break
        if packed and chains_a is not None:
            state = chains_a[:, :rbm.num_visible].clone()
    return RBMTrainResult(history, state, swap_rates, done, method)
