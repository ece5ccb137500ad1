"""Base-rate models: the starting point of annealed importance sampling for RBMs.

Salakhutdinov & Murray (2008, "On the quantitative analysis of deep belief networks") start
AIS from an RBM with zero weights and zero hidden biases whose visible bias ``a_A`` matches the
marginals of the training data. Its visible units are independent, so its partition function is
closed form,

    log Z_A = M log 2 + visible_log_normaliser(a_A, 0),

where the ``M log 2`` comes from the hidden units (each free, ``softplus(0) = log 2``), and exact
draws are one call of :meth:`~generative.energy.rbm.RBM.sample_visible_given`. A base that
matches the data puts the annealing path's start close to a trained model, so fewer intermediate
distributions are needed than from the uniform base.

The base visible bias per kind of visible unit, from ``N`` training rows:

==================  ========================================================================
Bernoulli           ``a_A,i = log(n1_i + c) - log(n0_i + c)``: the logit of the smoothed pixel
                    mean ``(n1_i + c) / (N + 2 c)``, ``c = pseudo_count`` (1 by default:
                    Laplace's rule; an all-zero pixel would otherwise get ``a_A = -inf``)
Categorical         ``a_A,ik = log((n_ik + c) / (N + K c))``: smoothed log frequencies (already
                    normalised, so ``visible_log_normaliser(a_A, 0) = 0``)
Gaussian            ``a_A = mean of the data``; the target's ``sigma`` is kept (the annealing
                    path interpolates the visible bias only), ``pseudo_count`` is not used
==================  ========================================================================

Examples
--------
>>> import torch
>>> from generative.energy.rbm import BernoulliRBM
>>> from generative.energy.base_rate import base_rate_bias, base_log_partition
>>> rbm = BernoulliRBM(3, 2, dtype=torch.float64)
>>> data = torch.tensor([[1., 0., 1.], [1., 0., 0.]], dtype=torch.float64)
>>> bias = base_rate_bias(rbm, data)
>>> [round(x, 4) for x in torch.sigmoid(bias).tolist()]     # (n1 + 1) / (N + 2)
[0.75, 0.25, 0.5]
>>> bool(torch.isclose(base_log_partition(rbm, bias),
...                    base_rate_model(rbm, bias=bias).exact_log_partition()))
True
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor

from generative.energy.rbm import RBM, GaussianBernoulliRBM
from probforge.errors import ShapeError, ValidationError
from probforge.validate import check_real, check_tensor

__all__ = [
    "base_bias_of",
    "base_log_partition",
    "base_rate_bias",
    "base_rate_model",
    "check_rbm",
]

_KINDS = ("bernoulli", "categorical", "gaussian")


def check_rbm(rbm: Any, subject: str) -> RBM:
    """``rbm`` if it is an :class:`~generative.energy.rbm.RBM` of a known visible kind."""
    if not isinstance(rbm, RBM):
        raise ValidationError(subject, "must be an RBM (BernoulliRBM, GaussianBernoulliRBM or "
                              "CategoricalRBM)", found=type(rbm).__name__,
                              fix="build one from generative.energy.rbm, or convert a "
                              "scikit-learn model with generative.energy.sklearn_rbm.from_sklearn")
    if rbm.visible_kind not in _KINDS:
        raise ValidationError(subject, f"visible units must be one of {list(_KINDS)}",
                              found=repr(rbm.visible_kind))
    return rbm


def base_rate_bias(rbm: RBM, data: Tensor, *, pseudo_count: float = 1.0) -> Tensor:
    """The base-rate visible bias ``a_A`` of ``rbm``'s kind, fitted to ``data``.

    Parameters
    ----------
    rbm : RBM
        Decides the kind of visible unit, the shape, dtype and device.
    data : Tensor (N, *event_shape)
        Training rows (``N >= 1``), checked as the model's visible data (binary for Bernoulli,
        one-hot for categorical units, finite, the model's dtype and device).
    pseudo_count : float
        ``c > 0`` added to the count of every value (Bernoulli and categorical units); see the
        module's table. Ignored for Gaussian units.

    Returns
    -------
    Tensor (*event_shape)
        ``a_A`` in the model's dtype, detached.

    Raises
    ------
    ValidationError, ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError
        Non-binary (non one-hot) data, NaN, wrong shape, no rows, a non-positive pseudo-count.

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import GaussianBernoulliRBM
    >>> rbm = GaussianBernoulliRBM(2, 3, dtype=torch.float64)
    >>> base_rate_bias(rbm, torch.tensor([[0., 2.], [1., 4.]], dtype=torch.float64)).tolist()
    [0.5, 3.0]
    """
    rbm = check_rbm(rbm, "base_rate_bias rbm")
    c = check_real(pseudo_count, "base_rate_bias pseudo_count", minimum=0.0, strict_minimum=True)
    data = rbm.check_visible(data, "base-rate data")
    if data.shape[0] < 1:
        raise ShapeError("base_rate_bias data", "must hold at least one row (N >= 1)",
                         found=tuple(data.shape))
    x = data.detach().to(torch.float64)
    n = x.shape[0]
    if rbm.visible_kind == "gaussian":
        out = x.mean(0)
    elif rbm.visible_kind == "bernoulli":
        ones = x.sum(0)
        out = torch.log(ones + c) - torch.log(n - ones + c)
    else:
        k = rbm.num_visible_states
        out = torch.log(x.sum(0) + c) - math.log(n + k * c)
    return out.to(rbm.weight.dtype)


def base_log_partition(rbm: RBM, bias: Tensor) -> Tensor:
    """``log Z_A = M log 2 + visible_log_normaliser(bias, 0)`` of the base-rate model.

    Parameters
    ----------
    rbm : RBM
        Gives ``M`` (the hidden units, all free in the base) and, for Gaussian units, ``sigma``.
    bias : Tensor (*event_shape)
        The base's visible bias ``a_A`` (model dtype and device, finite).

    Returns
    -------
    Tensor ()
        In the model's dtype.

    Examples
    --------
    >>> import math, torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, dtype=torch.float64)
    >>> math.isclose(float(base_log_partition(rbm, torch.zeros(3, dtype=torch.float64))),
    ...              5 * math.log(2))
    True
    """
    rbm = check_rbm(rbm, "base_log_partition rbm")
    bias = _check_bias(rbm, bias, "base_log_partition bias")
    with torch.no_grad():
        zero = rbm.weight.new_zeros(1, *rbm.event_shape)
        return rbm.num_hidden * math.log(2.0) + rbm.visible_log_normaliser(bias, zero)[0]


def base_rate_model(rbm: RBM, data: Tensor | None = None, *, bias: Tensor | None = None,
                    pseudo_count: float = 1.0) -> RBM:
    """A copy of ``rbm`` with zero weights and hidden biases and the base-rate visible bias.

    Give ``data`` (the bias is :func:`base_rate_bias`) or ``bias`` (used as is), not both.
    Gaussian units keep ``rbm``'s ``sigma``. ``rbm`` itself is not changed.

    Returns
    -------
    RBM
        Same class, sizes, dtype and device as ``rbm``; its exact ``log Z`` is
        :func:`base_log_partition`.
    """
    rbm = check_rbm(rbm, "base_rate_model rbm")
    if (data is None) == (bias is None):
        raise ValidationError("base_rate_model", "give exactly one of data and bias",
                              found=f"data={'given' if data is not None else None}, "
                              f"bias={'given' if bias is not None else None}")
    a = base_rate_bias(rbm, data, pseudo_count=pseudo_count) if data is not None else \
        _check_bias(rbm, bias, "base_rate_model bias")
    base = copy.deepcopy(rbm)
    with torch.no_grad():
        base.weight.zero_()
        base.hidden_bias.zero_()
        base.visible_bias.copy_(a)
    return base


def base_bias_of(rbm: RBM, *, data: Tensor | None = None, base: Tensor | RBM | None = None,
                 subject: str = "base") -> Tensor:
    """Resolve the annealing path's base: the visible bias ``a_A`` (model dtype, detached).

    Parameters
    ----------
    rbm : RBM
        The target model.
    data : Tensor (N, *event_shape), optional
        Training rows: the base is :func:`base_rate_bias` with one pseudo-count.
    base : Tensor (*event_shape) or RBM, optional
        A base visible bias, or a base-rate model of ``rbm``'s class and shape with zero
        weights and hidden biases (and, for Gaussian units, ``rbm``'s ``sigma``).

    With neither, the base is the zero bias (uniform binary / categorical units, Gaussian units
    centred at 0): valid, but far from a trained model; pass the training data where possible.

    Raises
    ------
    ValidationError
        Both given; a base model of another kind, with non-zero weights or hidden biases, or
        another ``sigma``.
    ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError
        A bias of the wrong shape, dtype or device, or not finite.
    """
    if data is not None and base is not None:
        raise ValidationError(f"{subject}", "give data or base, not both",
                              fix="pass data=train_rows (a base-rate model is fitted) or "
                              "base=base_rate_bias(rbm, data, pseudo_count=...)")
    if data is not None:
        return base_rate_bias(rbm, data)
    if base is None:
        return rbm.weight.new_zeros(rbm.event_shape).detach()
    if isinstance(base, RBM):
        if type(base) is not type(rbm) or base.event_shape != rbm.event_shape:
            raise ValidationError(subject, f"a base model must be a {type(rbm).__name__} with "
                                  f"visible shape {rbm.event_shape}",
                                  found=f"{type(base).__name__} with visible shape "
                                  f"{base.event_shape}",
                                  fix="build it with base_rate_model(rbm, data)")
        for name in ("weight", "hidden_bias"):
            if bool((getattr(base, name).detach() != 0).any()):
                raise ValidationError(subject, f"a base model needs zero {name} (the annealing "
                                      "path starts from a base-rate model)",
                                      found=f"max |{name}| = "
                                      f"{float(getattr(base, name).detach().abs().max()):.3g}",
                                      fix="build it with base_rate_model(rbm, data)")
        if isinstance(rbm, GaussianBernoulliRBM) and isinstance(base, GaussianBernoulliRBM):
            s_base = base.sigma.detach()
            s_rbm = rbm.sigma.detach()
            if s_base.shape != s_rbm.shape or s_base.device != s_rbm.device or \
                    not bool(torch.equal(s_base.to(s_rbm.dtype), s_rbm)):
                raise ValidationError(subject, "a Gaussian base model must have the target's "
                                      "sigma (the path interpolates the visible bias only)",
                                      fix="build it with base_rate_model(rbm, data)")
        return _check_bias(rbm, base.visible_bias.detach(), f"{subject} visible_bias")
    return _check_bias(rbm, base, subject)


def _check_bias(rbm: RBM, bias: Any, subject: str) -> Tensor:
    out = check_tensor(bias, subject, floating=True, shape=rbm.event_shape,
                        dtype=rbm.weight.dtype, device=rbm.weight.device, finite=True)
    return out.detach()
