"""Emissions the user supplies: a log-likelihood tensor, or any nn.Module."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.validate import check_device, check_int

from ._base import (
    Emission,
)


class LogLikelihoodEmission(Emission):
    """The observations *are* the emission log-likelihoods ``(..., T, K)``.

    Use it for emissions computed elsewhere (a classifier's scores turned into scaled
    likelihoods, a pre-computed acoustic model ...). It has no parameters and no M-step (Baum-Welch
    then only updates the initial and transition probabilities).

    Parameters
    ----------
    n_states : int
    dtype : torch.dtype, default float64
    device : torch.device or str, default "cpu"
    """

    def __init__(self, n_states: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> None:
        self._k = check_int(n_states, "LogLikelihoodEmission: n_states", minimum=1)
        self._dtype = self._check_dtype_arg(dtype, "LogLikelihoodEmission: dtype")
        self._device = check_device(device, "LogLikelihoodEmission: device")

    @property
    def n_states(self) -> int:
        return self._k

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        if x.dim() < 1 or x.shape[-1] != self._k:
            raise ShapeError("LogLikelihoodEmission: observations",
                             f"last dim must be K = {self._k}", found=tuple(x.shape))
        if not x.is_floating_point():
            raise DtypeMismatchError("LogLikelihoodEmission: observations",
                                     "log-likelihoods must be a floating-point tensor "
                                     "(integers are not cast)", found=x.dtype,
                                     fix="convert with x.double()")

    def log_prob(self, x: Tensor) -> Tensor:
        """The log-likelihoods ``x`` (..., K) themselves, after checking them.

        Raises
        ------
        ShapeError, DtypeMismatchError, NonFiniteError
            For a last dimension other than ``K``, an integer tensor, NaN or +inf (``-inf``, an
            impossible observation, is allowed).
        """
        self._validate_obs(x)
        return x

    def _invalid(self, x: Tensor) -> Tensor | None:
        return (torch.isnan(x) | (x == math.inf)).any(-1)

    def _error(self, where: str) -> ValidationError:
        return NonFiniteError(f"log-likelihoods at {where}", "must not be NaN or +inf",
                              fix="mark missing observations with the `missing` mask")

    def m_step(self, x: Tensor, weights: Tensor, prior: Any = None) -> LogLikelihoodEmission:
        self._check_m_step(x, weights, None, None, "LogLikelihoodEmission.m_step")
        return self

    def n_parameters(self) -> int:
        return 0

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> LogLikelihoodEmission:
        return LogLikelihoodEmission(self._k, dtype or self._dtype, device or self._device)


class NeuralEmission(Emission):
    """Emissions given by a neural network: ``module(x)`` returns ``(..., T, K)`` log-likelihoods.

    The module must map observations ``(..., T, *event)`` to (normalised, for a proper HMM)
    log-densities of each state. There is no closed-form M-step: train the HMM by gradient
    (:class:`pgm.hmm.module.HMMModule`).

    Parameters
    ----------
    module : torch.nn.Module
    n_states : int
    event_dim : int, default 1
        Number of trailing dims of one observation.
    n_params : int, optional
        Free parameters counted for AIC/BIC (default: the module's parameter count).
    """

    def __init__(self, module: nn.Module, n_states: int, *, event_dim: int = 1,
                 n_params: int | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise ValidationError("NeuralEmission: module", "must be a torch.nn.Module",
                                  found=type(module).__name__)
        self.module = module
        self._k = check_int(n_states, "NeuralEmission: n_states", minimum=1)
        self._event_dim = check_int(event_dim, "NeuralEmission: event_dim", minimum=0)
        self._n_params = None if n_params is None else check_int(
            n_params, "NeuralEmission: n_params", minimum=0)
        p = next(iter(module.parameters()), None)
        self._dtype = p.dtype if p is not None else torch.get_default_dtype()
        self._device = p.device if p is not None else torch.device("cpu")

    @property
    def event_dim(self) -> int:  # type: ignore[override]
        return self._event_dim

    @property
    def n_states(self) -> int:
        return self._k

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def log_prob(self, x: Tensor) -> Tensor:
        """``module(x)``, checked: a tensor of shape ``(..., K)`` free of NaN and +inf.

        Raises
        ------
        ShapeError, NonFiniteError
            For an output of another shape, or NaN / +inf log-likelihoods.
        """
        self._validate_obs(x)
        out: Tensor = self.module(x)
        want = (*x.shape[: x.dim() - self._event_dim], self._k)
        if not isinstance(out, Tensor) or tuple(out.shape) != want:
            raise ShapeError("NeuralEmission: module output",
                             f"must have shape (..., T, K) = {want}",
                             found=tuple(out.shape) if isinstance(out, Tensor)
                             else type(out).__name__)
        if out.is_floating_point():
            top = out.detach().max() if out.numel() else None
            if top is not None and bool(torch.isnan(top) | (top == math.inf)):
                raise NonFiniteError("NeuralEmission: module output",
                                     "log-likelihoods must not be NaN or +inf",
                                     fix="check the network's inputs and weights")
        return out

    def n_parameters(self) -> int:
        if self._n_params is not None:
            return self._n_params
        return sum(int(p.numel()) for p in self.module.parameters() if p.requires_grad)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
           ) -> NeuralEmission:
        module = copy.deepcopy(self.module).to(dtype=dtype, device=device)
        return NeuralEmission(module, self._k, event_dim=self._event_dim,
                              n_params=self._n_params)
