"""Model selection for HMMs: free-parameter counts, AIC and BIC.

``n_parameters = (K - 1) + K (K - 1) + emission parameters`` (the same count as hmmlearn's
``_get_n_fit_scalars_per_param`` for the default ``params``), ``AIC = -2 log L + 2 p`` and
``BIC = -2 log L + p log N`` with ``N`` the number of observed steps.

Examples
--------
>>> import torch
>>> from pgm.hmm import CategoricalEmission, HiddenMarkovModel, n_parameters
>>> hmm = HiddenMarkovModel.from_probs(
...     torch.tensor([0.5, 0.5]), torch.tensor([[0.9, 0.1], [0.2, 0.8]]),
...     CategoricalEmission(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]).log()))
>>> n_parameters(hmm)   # 1 initial + 2 transition + 4 emission
7
"""

from __future__ import annotations

import math

from torch import Tensor

from pgm.hmm.inference import chain_inputs, log_likelihood
from pgm.hmm.model import HiddenMarkovModel
from probforge.errors import ValidationError

__all__ = ["aic", "bic", "n_parameters"]


def n_parameters(model: HiddenMarkovModel) -> int:
    """Number of free parameters of ``model``."""
    if not isinstance(model, HiddenMarkovModel):
        raise ValidationError("n_parameters: model", "must be a HiddenMarkovModel",
                              found=type(model).__name__)
    K = model.n_states
    return (K - 1) + K * (K - 1) + model.emission.n_parameters()


def _ll_and_n(model: HiddenMarkovModel, x: Tensor, lengths: Tensor | None,
              missing: Tensor | None) -> tuple[float, int]:
    ll = log_likelihood(model, x, lengths=lengths, missing=missing)
    c = chain_inputs(model, x, lengths=lengths, missing=missing)
    return float(ll.sum()), int(c.observed.sum())


def aic(model: HiddenMarkovModel, x: Tensor, *, lengths: Tensor | None = None,
        missing: Tensor | None = None) -> float:
    """Akaike information criterion ``-2 log L + 2 p`` (lower is better).

    Sequences of length 0 add nothing to ``log L`` (their probability is 1); with no
    observation at all the criterion is ``2 p``.
    """
    ll, _ = _ll_and_n(model, x, lengths, missing)
    return -2 * ll + 2 * n_parameters(model)


def bic(model: HiddenMarkovModel, x: Tensor, *, lengths: Tensor | None = None,
        missing: Tensor | None = None) -> float:
    """Bayesian information criterion ``-2 log L + p log N`` (lower is better).

    ``N`` is the number of observed steps.

    Raises
    ------
    ValidationError
        With no observed step (``N = 0``: ``log N`` is undefined).
    """
    ll, n = _ll_and_n(model, x, lengths, missing)
    if n == 0:
        raise ValidationError("bic: x", "has no observed step, so log N is undefined",
                              fix="pass at least one observation (or use aic)")
    return -2 * ll + n_parameters(model) * math.log(n)
