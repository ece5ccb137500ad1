"""Private helpers shared by the gradient-based, slice, tempering and AIS kernels.

Flattening of event dimensions, the Euclidean metric (unit, diagonal or dense inverse mass
matrix), the leapfrog integrator, and the input checks every kernel runs in ``init``.

Examples
--------
>>> import torch
>>> from samplers._kernel_utils import Metric
>>> m = Metric(torch.tensor([1.0, 4.0]), 2, torch.zeros(1))
>>> m.kinetic(torch.tensor([[1.0, 1.0]]))
tensor([2.5000])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import normal
from samplers.base import LogDensity, log_density_and_grad

__all__ = [
    "Metric",
    "MetricCache",
    "check_finite_initial",
    "check_step_size",
    "flat_log_density",
    "leapfrog",
    "per_chain",
]


def flat_log_density(log_density: LogDensity, event_shape: torch.Size) -> LogDensity:
    """Wrap ``log_density`` so that it takes flat positions ``(chains, d)``."""
    if len(event_shape) == 1:
        return log_density

    def flat(z: Tensor) -> Tensor:
        return log_density(z.reshape(z.shape[:1] + event_shape))

    return flat


def check_initial_position(who: str, position: Tensor) -> None:
    """Raise unless ``position`` has shape (chains, *event) with at least one event dimension."""
    if position.dim() < 2:
        raise ValidationError(
            f"{who} initial position",
            "must have shape (chains, *event) with at least one event dimension",
            found=tuple(position.shape),
            fix="use position[:, None] for a scalar parameter",
        )


def check_finite_initial(who: str, log_density: Tensor, grad: Tensor | None = None) -> None:
    """Raise :class:`NonFiniteError` naming the chains whose initial log density is not finite.

    Parameters
    ----------
    who : str
        The kernel's name, for the message.
    log_density : Tensor
        Shape (chains,).
    grad : Tensor, optional
        Shape (chains, *event); its non-finite entries are reported too.
    """
    bad = ~torch.isfinite(log_density)
    what = "log density"
    if grad is not None:
        bad_grad = ~torch.isfinite(grad.reshape(grad.shape[0], -1)).all(-1)
        if bool(bad_grad.any()) and not bool(bad.any()):
            what = "gradient of the log density"
        bad = bad | bad_grad
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        shown = idx[:20]
        more = f" and {len(idx) - 20} more" if len(idx) > 20 else ""
        raise NonFiniteError(
            f"{who} initial position",
            f"the {what} is not finite for chain(s) {shown}{more}",
            found=log_density[bad][:5].tolist(),
            fix="start every chain inside the support (e.g. at a prior draw or in the "
            "unconstrained space of a ParameterSpace)",
        )


def check_step_size(who: str, step_size: float | Tensor, chains: int) -> None:
    """Validate a step size: a positive float, or a tensor of shape () or (chains,)."""
    if isinstance(step_size, Tensor):
        if step_size.dim() > 1 or (step_size.dim() == 1 and step_size.shape[0] != chains):
            raise ShapeError(
                f"{who} step_size",
                f"must be a scalar or have shape (chains,) = ({chains},)",
                found=tuple(step_size.shape),
            )
        return
    if not (float(step_size) > 0.0 and float(step_size) < float("inf")):
        raise ValidationError(
            f"{who} step_size", "must be positive and finite", found=step_size
        )


def per_chain(value: float | Tensor, like: Tensor) -> Tensor:
    """``value`` as a (chains, 1) tensor on ``like``'s device and dtype; ``like`` is (chains, d)."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.reshape(-1, 1).expand(like.shape[0], 1) if t.dim() <= 1 else t


class Metric:
    """Euclidean metric from an inverse mass matrix: unit (None), diagonal (d,) or dense (d, d).

    Parameters
    ----------
    inverse_mass_matrix : Tensor or None
        None for the identity, shape (d,) for a diagonal, (d, d) for a dense matrix.
    d : int
        Flattened event size.
    like : Tensor
        Any tensor on the target device and dtype.
    who : str
        Kernel name for error messages.
    """

    def __init__(
        self, inverse_mass_matrix: Tensor | None, d: int, like: Tensor, who: str = "kernel"
    ) -> None:
        self.d = d
        self.kind = "unit"
        self.minv: Tensor | None = None
        self.chol: Tensor | None = None
        if inverse_mass_matrix is None:
            return
        minv = torch.as_tensor(inverse_mass_matrix, dtype=like.dtype, device=like.device)
        if minv.shape == (d,):
            self.kind = "diag"
            self.minv = minv
            self.inv_sqrt = minv.rsqrt()
        elif minv.shape == (d, d):
            self.kind = "dense"
            self.minv = minv
            chol, info = torch.linalg.cholesky_ex(minv)
            if bool(info != 0):
                raise ValidationError(
                    f"{who} inverse_mass_matrix",
                    "a dense inverse mass matrix must be symmetric positive definite",
                    fix="pass a covariance estimate, or a diagonal of shape (d,)",
                )
            self.chol = chol
        else:
            raise ShapeError(
                f"{who} inverse_mass_matrix",
                f"must have shape (d,) = ({d},) (diagonal) or (d, d) = ({d}, {d}) (dense), "
                "d being the flattened event size",
                found=tuple(minv.shape),
            )

    def sample_momentum(self, chains: int, like: Tensor, generator: Any) -> Tensor:
        """Momenta ``p ~ N(0, M)`` of shape (chains, d)."""
        z = normal((chains, self.d), generator=generator, dtype=like.dtype, device=like.device)
        if self.kind == "unit":
            return z
        if self.kind == "diag":
            return z * self.inv_sqrt
        assert self.chol is not None
        # Minv = L L^T  =>  M = L^-T L^-1, and p = L^-T z has covariance M.
        p: Tensor = torch.linalg.solve_triangular(self.chol.mT, z.mT, upper=True).mT
        return p

    def velocity(self, p: Tensor) -> Tensor:
        """``M^-1 p``, shape (chains, d)."""
        if self.kind == "unit":
            return p
        assert self.minv is not None
        if self.kind == "diag":
            return p * self.minv
        return p @ self.minv

    def kinetic(self, p: Tensor) -> Tensor:
        """Kinetic energy ``p^T M^-1 p / 2``, shape (chains,)."""
        return 0.5 * (p * self.velocity(p)).sum(-1)

    def log_normal(self, x: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
        """``log N(x; mean, scale^2 M^-1)`` up to a constant common to all x, shape (chains,).

        ``scale`` has shape (chains, 1). Used by MALA's Hastings correction; the omitted constant
        (the log-determinant of M^-1) cancels between the forward and reverse proposals.
        """
        diff = (x - mean) / scale
        d = self.d
        if self.kind == "unit":
            quad = (diff**2).sum(-1)
        elif self.kind == "diag":
            assert self.minv is not None
            quad = (diff**2 / self.minv).sum(-1)
        else:
            assert self.chol is not None
            sol = torch.linalg.solve_triangular(self.chol, diff.mT, upper=False)
            quad = (sol**2).sum(0)
        return -0.5 * quad - d * torch.log(scale.squeeze(-1))


class MetricCache:
    """Remembers the last :class:`Metric` built, so a dense inverse mass matrix is factorised
    once per params object rather than once per transition (a cache only: same results)."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._metric: Metric | None = None

    def get(self, inverse_mass_matrix: Tensor | None, d: int, like: Tensor, who: str) -> Metric:
        """The metric for ``inverse_mass_matrix`` (rebuilt if the tensor or its data changed)."""
        imm = inverse_mass_matrix
        key = (
            imm,  # held, so its id cannot be reused while cached
            None if imm is None else imm._version,
            d,
            like.dtype,
            like.device,
        )
        if self._key is not None and self._metric is not None and len(key) == len(self._key):
            same = key[0] is self._key[0] and key[1:] == self._key[1:]
            if same:
                return self._metric
        metric = Metric(imm, d, like, who)
        self._key, self._metric = key, metric
        return metric


def leapfrog(
    flat_ld: Callable[[Tensor], Tensor],
    z: Tensor,
    p: Tensor,
    grad: Tensor,
    step_size: Tensor,
    metric: Metric,
    num_steps: int = 1,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``num_steps`` leapfrog steps on flat positions.

    Parameters
    ----------
    flat_ld : callable
        Log density of flat positions (chains, d) -> (chains,).
    z, p, grad : Tensor
        Position, momentum and gradient of the log density, each (chains, d).
    step_size : Tensor
        Shape (chains, 1); negative integrates backwards in time, zero leaves a chain in place.
    metric : Metric
    num_steps : int

    Returns
    -------
    z, p, grad, log_density : Tensor
        (chains, d), (chains, d), (chains, d), (chains,).
    """
    lp = torch.empty(0)
    for _ in range(num_steps):
        p = p + 0.5 * step_size * grad
        z = z + step_size * metric.velocity(p)
        lp, grad = log_density_and_grad(flat_ld, z)
        p = p + 0.5 * step_size * grad
    return z, p, grad, lp
