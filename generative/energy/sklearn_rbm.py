"""Load an RBM trained by scikit-learn, so it can be evaluated like ours (exact log Z, AIS, RAISE).

scikit-learn's ``sklearn.neural_network.BernoulliRBM`` is a Bernoulli-Bernoulli RBM with the same
energy as :class:`generative.energy.rbm.BernoulliRBM`; it stores the weights as ``components_``
of shape ``(M, D)`` (hidden by visible), the visible bias as ``intercept_visible_`` ``(D,)`` and
the hidden bias as ``intercept_hidden_`` ``(M,)``. Our weight is ``components_.T`` ``(D, M)``.
scikit-learn reports only a pseudo-likelihood; after :func:`from_sklearn` its model's test
log-likelihood comes from :func:`generative.energy.partition.ais_log_partition` (or the exact
``log Z`` of a small model).

scikit-learn is optional (the ``bench`` extra); it is imported only when a model is converted.

Examples
--------
(Skipped by the doctest run, which must pass without scikit-learn; the tests run it.)

>>> import numpy as np, torch
>>> from sklearn.neural_network import BernoulliRBM as SkRBM          # doctest: +SKIP
>>> X = (np.random.default_rng(0).random((40, 6)) > 0.5).astype(float)
>>> sk = SkRBM(n_components=3, n_iter=2, random_state=0).fit(X)      # doctest: +SKIP
>>> rbm = from_sklearn(sk)                                           # doctest: +SKIP
>>> rbm.weight.shape, rbm.weight.dtype                               # doctest: +SKIP
(torch.Size([6, 3]), torch.float64)
"""

from __future__ import annotations

from typing import Any

import torch

from generative.checks import check_float_dtype
from generative.energy.rbm import BernoulliRBM
from probforge.errors import MissingDependencyError, ShapeError, ValidationError
from probforge.validate import check_device, check_finite

__all__ = ["from_sklearn"]


def from_sklearn(model: Any, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> BernoulliRBM:
    """A BernoulliRBM of ours holding a fitted scikit-learn model's parameters.

    Parameters
    ----------
    model : sklearn.neural_network.BernoulliRBM
        A fitted model (``fit`` or ``partial_fit`` has run).
    dtype : torch.dtype
        ``torch.float64`` (default: exact comparisons with scikit-learn's float64 numbers) or
        ``torch.float32``.
    device : torch.device or str

    Returns
    -------
    BernoulliRBM
        ``weight = components_.T`` ``(D, M)``, ``visible_bias = intercept_visible_``,
        ``hidden_bias = intercept_hidden_``; the scikit-learn model is not changed.

    Raises
    ------
    MissingDependencyError
        scikit-learn is not installed.
    ValidationError
        ``model`` is not a scikit-learn ``BernoulliRBM``, or is not fitted.
    ShapeError, NonFiniteError
        Its parameters disagree in shape or are not finite.
    """
    try:
        from sklearn.neural_network import BernoulliRBM as SkBernoulliRBM
    except ImportError as err:
        raise MissingDependencyError("from_sklearn", "needs scikit-learn",
                                     fix="pip install scikit-learn (or the 'bench' extra)") from err
    if not isinstance(model, SkBernoulliRBM):
        raise ValidationError("from_sklearn model", "must be a sklearn.neural_network."
                              "BernoulliRBM", found=type(model).__name__)
    dtype = check_float_dtype(dtype, "from_sklearn dtype")
    dev = check_device(device, "from_sklearn device")
    names = ("components_", "intercept_visible_", "intercept_hidden_")
    missing = [n for n in names if not hasattr(model, n)]
    if missing:
        raise ValidationError("from_sklearn model", "is not fitted", found=f"no {missing[0]}",
                              fix="call model.fit(X) (or partial_fit) first")
    comp, vis, hid = (torch.as_tensor(getattr(model, n)) for n in names)
    if comp.dim() != 2 or vis.shape != (comp.shape[1],) or hid.shape != (comp.shape[0],):
        raise ShapeError("from_sklearn model", "components_ (M, D), intercept_visible_ (D,) and "
                         "intercept_hidden_ (M,) disagree",
                         found=(tuple(comp.shape), tuple(vis.shape), tuple(hid.shape)))
    if not (comp.is_floating_point() and vis.is_floating_point() and hid.is_floating_point()):
        raise ValidationError("from_sklearn model", "parameters must be floating point",
                              found=(comp.dtype, vis.dtype, hid.dtype))
    for name, value in zip(names, (comp, vis, hid), strict=True):
        check_finite(value, f"from_sklearn model.{name}")
    num_hidden, num_visible = comp.shape
    rbm = BernoulliRBM(int(num_visible), int(num_hidden), weight_std=0.0, dtype=dtype,
                       device=dev)
    with torch.no_grad():
        rbm.weight.copy_(comp.T.to(dtype))
        rbm.visible_bias.copy_(vis.to(dtype))
        rbm.hidden_bias.copy_(hid.to(dtype))
    return rbm
