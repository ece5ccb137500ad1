"""Modern (continuous) Hopfield retrieval: ``xi <- X^T softmax(beta X xi)`` (Ramsauer et al. 2020).

Stored patterns are the rows of ``X`` (N, d); a state (query) ``xi`` is a real vector of size
``d``. The energy of "Hopfield networks is all you need" (Ramsauer et al. 2020, eq. 2) is

    E(xi) = -lse(beta, X xi) + 1/2 xi^T xi + (1/beta) log N + 1/2 M^2,

with ``lse(beta, z) = (1/beta) log sum_i exp(beta z_i)`` and ``M = max_i ||x_i||``; the
constants make ``0 <= E <= 2 M^2``. The update rule (their eq. 3)

    xi_new = X^T softmax(beta X xi)

is the concave-convex procedure for ``E``, so the energy never increases along the iterates and
they converge to a stationary point; for well separated patterns and a large ``beta``, one
update retrieves the stored pattern nearest the query. Everything is batched over queries
(B, d); :meth:`ModernHopfield.retrieve` reports the largest energy increase seen, which is zero up
to rounding (the monotonicity check).

Examples
--------
>>> import torch
>>> from generative.energy.modern_hopfield import ModernHopfield
>>> from probforge.ops import make_generator
>>> g = make_generator(0)
>>> x = torch.randn(5, 16, generator=g, dtype=torch.float64)
>>> net = ModernHopfield(x, beta=8.0)
>>> out = net.retrieve(x + 0.2 * torch.randn(5, 16, generator=g, dtype=torch.float64))
>>> bool(torch.allclose(out.states, x, atol=1e-6)), bool(out.converged.all())
(True, True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.errors import DeviceMismatchError, DtypeMismatchError, ShapeError
from probforge.validate import check_int, check_real, check_tensor

__all__ = ["ModernHopfield", "ModernHopfieldRetrieval"]


class ModernHopfieldRetrieval(NamedTuple):
    """What :meth:`ModernHopfield.retrieve` returns.

    Attributes
    ----------
    states : Tensor (B, d)
        The final states.
    num_iterations : Tensor (B,) int64
        Updates applied to each row (a row stops once an update moves it by at most ``tol``).
    converged : Tensor (B,) bool
        The row met the tolerance within ``max_iter`` updates.
    energies : Tensor (T + 1, B)
        The energy at the start and after each of the ``T`` iterations run.
    max_energy_increase : Tensor (B,)
        The largest rise of the energy between consecutive iterates, zero if it never rose; by
        the theory it is zero up to rounding.
    """

    states: Tensor
    num_iterations: Tensor
    converged: Tensor
    energies: Tensor
    max_energy_increase: Tensor


class ModernHopfield:
    """Continuous Hopfield network with the softmax update of Ramsauer et al. (2020).

    Parameters
    ----------
    patterns : Tensor (N, d)
        Stored patterns, one per row: floating, finite, ``N >= 1``, ``d >= 1``. Kept, not copied.
    beta : float
        Inverse temperature ``> 0``: larger values make retrieval sharper (one pattern), smaller
        values average several (metastable states).

    Examples
    --------
    >>> x = torch.eye(3, dtype=torch.float64)
    >>> ModernHopfield(x, beta=50.0).update(torch.tensor([[0.9, 0.1, 0.0]], dtype=torch.float64))
    tensor([[1., 0., 0.]], dtype=torch.float64)
    """

    def __init__(self, patterns: Tensor, beta: float = 1.0) -> None:
        check_tensor(patterns, "ModernHopfield patterns", ndim=2, floating=True, finite=True)
        if patterns.shape[0] < 1 or patterns.shape[1] < 1:
            raise ShapeError("ModernHopfield patterns", "must be (N, d) with N >= 1 and d >= 1",
                             found=tuple(patterns.shape))
        self.patterns = patterns
        self.beta = check_real(beta, "ModernHopfield beta", minimum=0.0, strict_minimum=True)

    def _queries(self, xi: Tensor, subject: str) -> Tensor:
        name = f"ModernHopfield.{subject} xi"
        check_tensor(xi, name, ndim=2, floating=True)
        d = self.patterns.shape[1]
        if xi.shape[1] != d or xi.shape[0] < 1:
            raise ShapeError(name, f"must be (B, {d}) with B >= 1, one query per row",
                             found=tuple(xi.shape))
        if xi.dtype != self.patterns.dtype:
            raise DtypeMismatchError(name, f"must have the patterns' dtype {self.patterns.dtype}",
                                     found=xi.dtype, fix=f"convert with .to({self.patterns.dtype})")
        if xi.device != self.patterns.device:
            raise DeviceMismatchError(name, f"must be on the patterns' device "
                                      f"{self.patterns.device}", found=str(xi.device))
        check_tensor(xi, name, finite=True)
        return xi

    def _update(self, xi: Tensor) -> Tensor:
        return torch.softmax(self.beta * xi @ self.patterns.T, -1) @ self.patterns

    def _energy(self, xi: Tensor) -> Tensor:
        x = self.patterns
        lse = torch.logsumexp(self.beta * xi @ x.T, -1) / self.beta
        big_m = x.norm(dim=-1).max()
        out: Tensor = -lse + 0.5 * (xi * xi).sum(-1) + math.log(x.shape[0]) / self.beta \
            + 0.5 * big_m * big_m
        return out

    def update(self, xi: Tensor) -> Tensor:
        """One retrieval update ``X^T softmax(beta X xi)`` of each query.

        Parameters
        ----------
        xi : Tensor (B, d)
            Queries: floating, finite, the patterns' dtype and device.

        Returns
        -------
        Tensor (B, d)

        Examples
        --------
        >>> net = ModernHopfield(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), beta=1.0)
        >>> net.update(torch.zeros(1, 2))
        tensor([[0.5000, 0.5000]])
        """
        return self._update(self._queries(xi, "update"))

    def energy(self, xi: Tensor) -> Tensor:
        """The energy ``-lse(beta, X xi) + xi^T xi / 2 + log(N) / beta + M^2 / 2`` of each query.

        Parameters
        ----------
        xi : Tensor (B, d)

        Returns
        -------
        Tensor (B,)
            Between 0 and ``2 M^2`` where ``M`` is the largest pattern norm.

        Examples
        --------
        >>> net = ModernHopfield(torch.tensor([[1.0, 0.0]]), beta=2.0)
        >>> net.energy(torch.tensor([[1.0, 0.0]]))
        tensor([0.])
        """
        return self._energy(self._queries(xi, "energy"))

    def retrieve(self, xi0: Tensor, max_iter: int = 100, tol: float = 1e-10
                 ) -> ModernHopfieldRetrieval:
        """Iterate :meth:`update` from ``xi0`` until each row moves by at most ``tol``.

        A row stops (is frozen) after the first update whose largest coordinate change is at
        most ``tol``; the loop ends when every row has stopped or after ``max_iter`` updates
        (one host synchronisation per iteration for that check).

        Parameters
        ----------
        xi0 : Tensor (B, d)
            Start queries; not modified.
        max_iter : int
            At most this many updates (>= 1).
        tol : float
            Convergence tolerance on ``max_k |xi_new_k - xi_k|`` (>= 0).

        Returns
        -------
        ModernHopfieldRetrieval

        Examples
        --------
        >>> net = ModernHopfield(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), beta=20.0)
        >>> out = net.retrieve(torch.tensor([[0.8, 0.3]]))
        >>> out.states.round(decimals=4), int(out.num_iterations[0])
        (tensor([[1., 0.]]), 3)
        """
        xi = self._queries(xi0, "retrieve").clone()
        max_iter = check_int(max_iter, "ModernHopfield.retrieve max_iter", minimum=1)
        tol = check_real(tol, "ModernHopfield.retrieve tol", minimum=0.0)
        rows = xi.shape[0]
        converged = torch.zeros(rows, dtype=torch.bool, device=xi.device)
        iterations = torch.zeros(rows, dtype=torch.long, device=xi.device)
        energies = [self._energy(xi)]
        for t in range(max_iter):
            new = self._update(xi)
            active = ~converged
            converged = converged | (active & ((new - xi).abs().amax(-1) <= tol))
            xi = torch.where(active.unsqueeze(-1), new, xi)
            iterations = iterations + active.long()
            energies.append(self._energy(xi))
            if t + 1 < max_iter and bool(converged.all()):
                break
        trace = torch.stack(energies)
        rise = (trace[1:] - trace[:-1]).clamp(min=0).amax(0)
        return ModernHopfieldRetrieval(xi, iterations, converged, trace, rise)
