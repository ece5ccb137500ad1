"""Gradient training of HMMs: the HMM as an ``nn.Module`` whose forward pass is ``log p(x)``.

:class:`HMMModule` holds unconstrained parameters (logits of the initial and transition
probabilities, normalised by ``log_softmax``) and an emission module mapping observations
``(..., T, *event)`` to log-likelihoods ``(..., T, K)``: a neural network (neural emissions), or
one of the parametric modules here (:class:`GaussianEmissionModule`,
:class:`CategoricalEmissionModule`). The loss is ``-log p(x)`` from the chain core's forward
pass, differentiable end to end; :func:`fit_gradient` runs Adam on it.

Examples
--------
>>> import torch
>>> from pgm.hmm.module import CategoricalEmissionModule, HMMModule, fit_gradient
>>> torch.manual_seed(0) and None
>>> m = HMMModule(2, CategoricalEmissionModule(2, 3))
>>> x = torch.tensor([[0, 0, 1, 2, 2, 2]])
>>> losses = fit_gradient(m, x, n_steps=50, lr=0.1)
>>> losses[-1] < losses[0]
True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pgm.hmm.emissions import (
    CategoricalEmission,
    Emission,
    GaussianEmission,
    NeuralEmission,
)
from pgm.hmm.inference import log_likelihood
from pgm.hmm.model import HiddenMarkovModel
from probforge.errors import ValidationError

__all__ = [
    "CategoricalEmissionModule",
    "GaussianEmissionModule",
    "HMMModule",
    "fit_gradient",
]


class CategoricalEmissionModule(nn.Module):
    """Categorical emissions with logits ``(K, M)``; observations are symbols ``(..., T)``."""

    event_dim = 0

    def __init__(self, n_states: int, n_symbols: int, logits: Tensor | None = None) -> None:
        super().__init__()
        init = torch.zeros(n_states, n_symbols) if logits is None else logits.clone()
        if logits is None:
            init = init + 0.1 * torch.randn(n_states, n_symbols)
        self.logits = nn.Parameter(init)

    def forward(self, x: Tensor) -> Tensor:
        return torch.log_softmax(self.logits, -1).t()[x.long()]

    def to_emission(self) -> CategoricalEmission:
        """The equivalent fixed :class:`~pgm.hmm.emissions.CategoricalEmission`."""
        return CategoricalEmission(torch.log_softmax(self.logits.detach(), -1))


class GaussianEmissionModule(nn.Module):
    """Diagonal-Gaussian emissions with means ``(K, D)`` and log standard deviations ``(K, D)``."""

    event_dim = 1

    def __init__(self, n_states: int, n_features: int, means: Tensor | None = None,
                 log_scales: Tensor | None = None) -> None:
        super().__init__()
        self.means = nn.Parameter(torch.randn(n_states, n_features) if means is None
                                  else means.clone())
        self.log_scales = nn.Parameter(torch.zeros(n_states, n_features) if log_scales is None
                                       else log_scales.clone())

    def forward(self, x: Tensor) -> Tensor:
        z = (x[..., None, :] - self.means) * torch.exp(-self.log_scales)
        return (-0.5 * z * z - self.log_scales - 0.5 * math.log(2 * math.pi)).sum(-1)

    def to_emission(self) -> GaussianEmission:
        """The equivalent :class:`~pgm.hmm.emissions.GaussianEmission` (diag)."""
        return GaussianEmission(self.means.detach(), torch.exp(2 * self.log_scales.detach()),
                                "diag")


class HMMModule(nn.Module):
    """An HMM with trainable parameters; ``forward(x, ...)`` returns ``log p(x)`` per sequence.

    Parameters
    ----------
    n_states : int
    emission : nn.Module
        Maps observations ``(..., T, *event)`` to log-likelihoods ``(..., T, K)``; its attribute
        ``event_dim`` (default 1) gives the number of event dims.
    initial_logits : Tensor (K,), optional
        Default: zeros (uniform).
    transition_logits : Tensor (K, K), optional
        Default: zeros (uniform). ``-inf`` entries stay forbidden (their gradient is zero).
    """

    def __init__(
        self,
        n_states: int,
        emission: nn.Module,
        *,
        initial_logits: Tensor | None = None,
        transition_logits: Tensor | None = None,
    ) -> None:
        super().__init__()
        K = int(n_states)
        self.n_states = K
        self.emission = emission
        self.initial_logits = nn.Parameter(
            torch.zeros(K) if initial_logits is None else initial_logits.clone())
        self.transition_logits = nn.Parameter(
            torch.zeros(K, K) if transition_logits is None else transition_logits.clone())

    @classmethod
    def from_model(cls, model: HiddenMarkovModel) -> HMMModule:
        """Start gradient training from a model with categorical or diagonal-Gaussian emissions."""
        em: Emission = model.emission
        module: nn.Module
        if isinstance(em, CategoricalEmission):
            module = CategoricalEmissionModule(em.n_states, em.n_symbols, logits=em.log_probs)
        elif isinstance(em, GaussianEmission) and em.covariance_type in ("diag", "spherical"):
            module = GaussianEmissionModule(em.n_states, em.n_features, means=em.means,
                                            log_scales=0.5 * em.variances().log())
        elif isinstance(em, NeuralEmission):
            module = em.module
        else:
            raise ValidationError("HMMModule.from_model", "supports categorical, diag/spherical "
                                  "Gaussian and neural emissions", found=type(em).__name__)
        out = cls(model.n_states, module, initial_logits=model.log_initial,
                  transition_logits=model.log_transition)
        return out.to(model.dtype)

    def to_model(self, *, detach: bool = True) -> HiddenMarkovModel:
        """The current parameters as a :class:`HiddenMarkovModel` (neural emission)."""
        li = torch.log_softmax(self.initial_logits, -1)
        lt = torch.log_softmax(self.transition_logits, -1)
        if detach:
            li, lt = li.detach(), lt.detach()
        em = NeuralEmission(self.emission, self.n_states,
                            event_dim=int(getattr(self.emission, "event_dim", 1)))
        return HiddenMarkovModel(li, lt, em, validate=False)

    def forward(
        self,
        x: Tensor,
        *,
        lengths: Tensor | None = None,
        mask: Tensor | None = None,
        missing: Tensor | None = None,
        clamp: Tensor | None = None,
    ) -> Tensor:
        """``log p(x)`` per sequence, (...), differentiable in every parameter."""
        return log_likelihood(self.to_model(detach=False), x, lengths=lengths, mask=mask,
                              missing=missing, clamp=clamp)


def fit_gradient(
    module: HMMModule,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    missing: Tensor | None = None,
    clamp: Tensor | None = None,
    n_steps: int = 200,
    lr: float = 0.05,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[float]:
    """Maximise ``sum log p(x)`` by Adam (or the given optimiser); returns the loss per step.

    The loss is the negative log-likelihood per observed step. The module is trained in place
    (it is the thing being trained); the data are not modified.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValidationError("fit_gradient: n_steps", "must be an int >= 1", found=n_steps)
    opt = optimizer if optimizer is not None else torch.optim.Adam(module.parameters(), lr=lr)
    n_obs = None
    losses: list[float] = []
    for _ in range(n_steps):
        opt.zero_grad()
        ll = module(x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
        if n_obs is None:
            n_obs = max(int(ll.numel()), 1)
            if lengths is not None:
                n_obs = max(int(lengths.sum()), 1)
            elif ll.dim() < x.dim():
                n_obs = max(int(ll.numel()) * int(x.shape[ll.dim()]), 1)
        loss = -ll.sum() / n_obs
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
