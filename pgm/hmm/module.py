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
from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.validate import check_int, check_real, check_tensor

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
        n_states = check_int(n_states, "CategoricalEmissionModule: n_states", minimum=1)
        n_symbols = check_int(n_symbols, "CategoricalEmissionModule: n_symbols", minimum=1)
        if logits is not None:
            check_tensor(logits, "CategoricalEmissionModule: logits",
                         shape=(n_states, n_symbols), floating=True)
        self.n_symbols = n_symbols
        init = torch.zeros(n_states, n_symbols) if logits is None else logits.clone()
        if logits is None:
            init = init + 0.1 * torch.randn(n_states, n_symbols)
        self.logits = nn.Parameter(init)

    def forward(self, x: Tensor) -> Tensor:
        """Log-likelihoods (..., K) of symbols ``x`` (...): integers in ``0..n_symbols-1``
        (floats are refused, not cast)."""
        check_tensor(x, "CategoricalEmissionModule: x", integer=True)
        if x.numel() and bool(((x < 0) | (x >= self.n_symbols)).any()):
            bad = ((x < 0) | (x >= self.n_symbols)).reshape(-1)
            i = int(bad.nonzero()[0, 0])
            raise ValidationError("CategoricalEmissionModule: x",
                                  f"symbols must lie in 0..{self.n_symbols - 1}",
                                  found=f"{int(x.reshape(-1)[i])} at flat position {i}")
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
        n_states = check_int(n_states, "GaussianEmissionModule: n_states", minimum=1)
        n_features = check_int(n_features, "GaussianEmissionModule: n_features", minimum=1)
        for what, t in (("means", means), ("log_scales", log_scales)):
            if t is not None:
                check_tensor(t, f"GaussianEmissionModule: {what}",
                             shape=(n_states, n_features), floating=True, finite=True)
        self.means = nn.Parameter(torch.randn(n_states, n_features) if means is None
                                  else means.clone())
        self.log_scales = nn.Parameter(torch.zeros(n_states, n_features) if log_scales is None
                                       else log_scales.clone())

    def forward(self, x: Tensor) -> Tensor:
        """Log-likelihoods (..., K) of observations ``x`` (..., D), a float tensor."""
        check_tensor(x, "GaussianEmissionModule: x", min_ndim=1, floating=True)
        if x.shape[-1] != self.means.shape[-1]:
            raise ShapeError("GaussianEmissionModule: x",
                             f"last dim must be D = {self.means.shape[-1]}",
                             found=tuple(x.shape), fix="a series of scalars (T,) needs "
                             "x.unsqueeze(-1)" if x.dim() == 1 else None)
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
        K = check_int(n_states, "HMMModule: n_states", minimum=1)
        if not isinstance(emission, nn.Module):
            raise ValidationError("HMMModule: emission", "must be a torch.nn.Module mapping "
                                  "observations to (..., T, K) log-likelihoods",
                                  found=type(emission).__name__)
        for what, t, shape in (("initial_logits", initial_logits, (K,)),
                               ("transition_logits", transition_logits, (K, K))):
            if t is not None:
                check_tensor(t, f"HMMModule: {what}", shape=shape, floating=True)
                if bool((torch.isnan(t) | (t == math.inf)).any()):
                    raise NonFiniteError(f"HMMModule: {what}", "must be finite or -inf")
        self.n_states = K
        self.emission = emission
        self.initial_logits = nn.Parameter(
            torch.zeros(K) if initial_logits is None else initial_logits.clone())
        self.transition_logits = nn.Parameter(
            torch.zeros(K, K) if transition_logits is None else transition_logits.clone())

    @classmethod
    def from_model(cls, model: HiddenMarkovModel) -> HMMModule:
        """Start gradient training from a model with categorical or diagonal-Gaussian emissions."""
        if not isinstance(model, HiddenMarkovModel):
            raise ValidationError("HMMModule.from_model: model", "must be a HiddenMarkovModel",
                                  found=type(model).__name__)
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

    Raises
    ------
    ValidationError
        For invalid arguments, or data with no real step (every sequence of length 0: the loss
        would not depend on the parameters).
    NonFiniteError
        If the loss becomes NaN or inf (diverged training), naming the step.
    """
    if not isinstance(module, HMMModule):
        raise ValidationError("fit_gradient: module", "must be an HMMModule",
                              found=type(module).__name__)
    n_steps = check_int(n_steps, "fit_gradient: n_steps", minimum=1)
    if optimizer is None:
        lr = check_real(lr, "fit_gradient: lr", minimum=0.0, strict_minimum=True)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise ValidationError("fit_gradient: optimizer", "must be a torch.optim.Optimizer",
                              found=type(optimizer).__name__)
    # step 0's forward pass before the optimizer exists: data with nothing to learn from is
    # refused before any state is created (the forward does not read the gradients)
    ll = module(x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
    if not ll.requires_grad:
        raise ValidationError("fit_gradient", "the loss does not depend on the parameters: x "
                              "holds no real step (every sequence has length 0), no parameter "
                              "requires a gradient, or gradients are disabled",
                              fix="pass at least one non-empty sequence, outside torch.no_grad()")
    n_obs = max(int(ll.numel()), 1)
    if lengths is not None:
        n_obs = max(int(lengths.sum()), 1)
    elif ll.dim() < x.dim():
        n_obs = max(int(ll.numel()) * int(x.shape[ll.dim()]), 1)
    opt = optimizer if optimizer is not None else torch.optim.Adam(module.parameters(), lr=lr)
    losses: list[float] = []
    for step in range(n_steps):
        opt.zero_grad()
        if step:
            ll = module(x, lengths=lengths, mask=mask, missing=missing, clamp=clamp)
        loss = -ll.sum() / n_obs
        value = float(loss.detach())  # the one host sync of the step, also recorded below
        if not math.isfinite(value):
            raise NonFiniteError("fit_gradient", f"the loss is {value} at step {len(losses)}",
                                 fix="lower lr, or check the data (a sequence of probability "
                                 "zero) and the starting parameters")
        loss.backward()
        opt.step()
        losses.append(value)
    return losses
