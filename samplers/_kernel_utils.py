"""Private helpers shared by the kernels: input checks, flattening, metric, leapfrog.

Flattening of event dimensions, the Euclidean metric (unit, diagonal or dense inverse mass
matrix), the leapfrog integrator, and the input checks every kernel runs in ``init`` and ``step``.

The checks follow one policy for every kernel of the package (the one HMC and NUTS always had):

- the initial position must be a floating-point tensor ``(chains >= 1, *event)`` with a
  non-empty event and no NaN / inf (an integer position is refused, not cast);
- the log-density must map it to a floating tensor of shape ``(chains,)``, and its value there
  must not be NaN or ``+inf`` (:class:`~probforge.errors.NonFiniteError` names the chains);
  ``-inf`` (outside the support) is refused too, except by the Metropolis-Hastings family and
  Gibbs, which document that such a start moves into the support;
- during the run, a proposal whose log-density is NaN is treated as outside the support
  (``-inf``): it is rejected, never entered (HMC and NUTS also flag it divergent).

Tensor-valued params (step sizes, scales, widths, mass matrices) are checked once per tensor
object (:class:`ValueChecks`), so a run with fixed params pays one host synchronisation, not
one per step; inside :func:`adapted_params` (the warmup of :func:`samplers.run.sample`, where
the adaptation makes fresh params every step) only their types and shapes are checked.

Examples
--------
>>> import torch
>>> from samplers._kernel_utils import Metric
>>> m = Metric(torch.tensor([1.0, 4.0]), 2, torch.zeros(1))
>>> m.kinetic(torch.tensor([[1.0, 1.0]]))
tensor([2.5000])
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import check_generator, normal
from probforge.validate import check_finite, check_real
from samplers.base import LogDensity, check_per_row_output, log_density_and_grad

__all__ = [
    "Metric",
    "MetricCache",
    "ValueChecks",
    "adapted_params",
    "check_callable",
    "check_finite_initial",
    "check_generator_arg",
    "check_initial_position",
    "check_log_density_value",
    "check_params_fields",
    "check_position",
    "check_positive_values",
    "check_state",
    "check_step_size",
    "flat_log_density",
    "init_with_grad",
    "leapfrog",
    "per_chain",
]

_ADAPTING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "probforge_samplers_adapting", default=False
)


@contextlib.contextmanager
def adapted_params() -> Iterator[None]:
    """Within this block, kernels check the types and shapes of tensor params but not values.

    :func:`samplers.run.sample` runs its warmup in it: the adaptation returns fresh step sizes
    (scales, widths) every step, and checking their values would cost a host synchronisation
    per step. The adapted params are checked once, by the first kept-draw step.
    """
    token = _ADAPTING.set(True)
    try:
        yield
    finally:
        _ADAPTING.reset(token)


class ValueChecks:
    """Run a value check (a host synchronisation) once per tensor object and version.

    Parameters
    ----------
    size : int
        How many checked tensors to remember (the oldest is forgotten first).
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._seen: dict[int, tuple[Tensor, int]] = {}

    def run(self, t: Tensor, check: Callable[[Tensor], None]) -> None:
        """``check(t)`` unless ``t`` (same object, same version) passed before, or while
        :func:`adapted_params` is active."""
        if _ADAPTING.get():
            return
        hit = self._seen.get(id(t))
        if hit is not None and hit[0] is t and hit[1] == t._version:
            return
        check(t)
        if len(self._seen) >= self._size:
            self._seen.pop(next(iter(self._seen)))
        self._seen[id(t)] = (t, t._version)  # held, so its id cannot be reused meanwhile


def check_generator_arg(generator: Any, device: torch.device | None,
                        who: str = "generator") -> None:
    """Raise unless ``generator`` is None or a ``torch.Generator`` that draws on ``device``
    (any device when ``device`` is None)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValidationError(
            who, "must be a torch.Generator or None", found=type(generator).__name__,
            fix="create one with probforge.ops.make_generator(seed, device), or pass seed=",
        )
    if device is not None:
        check_generator(generator, device)


def check_position(who: str, position: Any, *, min_ndim: int = 2,
                   floating: bool = True) -> Tensor:
    """Check an initial position ``(chains, *event)``; return it unchanged.

    Parameters
    ----------
    who : str
        The kernel (or function) name, for the message.
    position : object
        Must be a tensor with at least ``min_ndim`` dimensions, at least one chain and a
        non-empty event; with ``floating``, of a floating dtype (an integer position is refused,
        not cast) and free of NaN / inf.
    """
    subject = f"{who} initial position"
    if not isinstance(position, Tensor):
        raise ValidationError(
            subject, "must be a torch.Tensor of shape (chains, *event)",
            found=type(position).__name__,
            fix="convert with torch.as_tensor(x, dtype=torch.float64)",
        )
    if position.dim() < min_ndim:
        rule = ("must have shape (chains, *event) with at least one event dimension"
                if min_ndim >= 2 else "must have shape (chains, *event)")
        raise ShapeError(subject, rule, found=tuple(position.shape),
                         fix="use position[:, None] for a scalar parameter"
                         if min_ndim >= 2 else "add a leading chain dimension: x.unsqueeze(0)")
    if floating and not position.is_floating_point():
        raise DtypeMismatchError(
            subject, "must be floating point (an integer position is not converted)",
            found=position.dtype, fix="use .double() or .float()",
        )
    if position.shape[0] == 0:
        raise ShapeError(subject, "needs at least one chain (the leading dimension is 0)",
                         found=tuple(position.shape),
                         fix="pass a position of shape (chains >= 1, *event)")
    if position.numel() == 0:
        raise ShapeError(subject, "has an empty event (a parameter of size 0)",
                         found=tuple(position.shape),
                         fix="give every chain at least one coordinate")
    if position.is_floating_point():
        check_finite(position, subject, fix="start every chain at finite coordinates")
    return position


def check_log_density_value(who: str, lp: Any, position: Tensor, *,
                            allow_neg_inf: bool = False, grad: Tensor | None = None) -> Tensor:
    """Check the log-density's value (and gradient) at the initial position; return it.

    It must be a floating tensor of shape (chains,) on the position's device, and not NaN or
    ``+inf`` (nor ``-inf`` unless ``allow_neg_inf``) for any chain; ``grad`` (chains, *event),
    when given, must be finite.
    """
    out = check_per_row_output(f"{who}: log-density", lp, position)
    if not out.is_floating_point():
        raise DtypeMismatchError(f"{who}: log-density", "must return a floating-point tensor",
                                 found=out.dtype, fix="compute it in the position's dtype")
    if out.device != position.device:
        raise DeviceMismatchError(f"{who}: log-density",
                                  f"must return a tensor on the position's device "
                                  f"{position.device}",
                                  found=out.device, fix="compute it on the position's device")
    check_finite_initial(who, out, grad, allow_neg_inf=allow_neg_inf)
    return out


def check_initial_position(who: str, position: Tensor) -> None:
    """Raise unless ``position`` is a valid floating start (chains, *event); see
    :func:`check_position`."""
    check_position(who, position, min_ndim=2)


def check_callable(who: str, fn: Any, what: str = "log-density") -> None:
    """Raise :class:`ValidationError` unless ``fn`` is callable."""
    if not callable(fn):
        raise ValidationError(f"{who}: {what}", "must be callable", found=type(fn).__name__,
                              fix="pass a function of the position (chains, *event)")


def init_with_grad(who: str, position: Tensor, log_density: Any) -> tuple[Tensor, Tensor]:
    """The checks and first evaluation of a gradient-based kernel's ``init``: ``(lp, grad)``."""
    check_position(who, position, min_ndim=2)
    check_callable(who, log_density)
    lp, grad = log_density_and_grad(log_density, position)
    check_log_density_value(who, lp, position, grad=grad)
    return lp, grad


def check_state(who: str, state: Any, state_type: type) -> None:
    """Raise unless ``state`` is a ``state_type`` (the NamedTuple the kernel's init returns)."""
    if not isinstance(state, state_type):
        raise ValidationError(f"{who} state",
                              f"must be the {state_type.__name__} returned by {who}.init",
                              found=type(state).__name__)


def check_finite_initial(who: str, log_density: Tensor, grad: Tensor | None = None, *,
                         allow_neg_inf: bool = False) -> None:
    """Raise :class:`NonFiniteError` naming the chains whose initial log density is not finite.

    Parameters
    ----------
    who : str
        The kernel's name, for the message.
    log_density : Tensor
        Shape (chains,).
    grad : Tensor, optional
        Shape (chains, *event); its non-finite entries are reported too.
    allow_neg_inf : bool
        Accept ``-inf`` (a start outside the support); NaN and ``+inf`` are always refused.
    """
    if allow_neg_inf:
        bad = torch.isnan(log_density) | torch.isposinf(log_density)
        what = "log density is NaN or +inf"
    else:
        bad = ~torch.isfinite(log_density)
        what = "log density is not finite"
    if grad is not None:
        bad_grad = ~torch.isfinite(grad.reshape(grad.shape[0], -1)).all(-1)
        if bool(bad_grad.any()) and not bool(bad.any()):
            what = "gradient of the log density is not finite"
        bad = bad | bad_grad
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        shown = idx[:20]
        more = f" and {len(idx) - 20} more" if len(idx) > 20 else ""
        raise NonFiniteError(
            f"{who} initial position",
            f"the {what} for chain(s) {shown}{more}",
            found=log_density[bad][:5].tolist(),
            fix="start every chain inside the support (e.g. at a prior draw or in the "
            "unconstrained space of a ParameterSpace), and make the log-density return -inf, "
            "not NaN, outside it",
        )


def check_params_fields(who: str, params: Any, fields: tuple[str, ...], expected: str,
                        adaptation: str) -> None:
    """Raise unless ``params`` has every attribute in ``fields`` (e.g. an ``HMCParams``)."""
    missing = [f for f in fields if not hasattr(params, f)]
    if missing:
        raise ValidationError(
            f"{who} params",
            f"must be a {expected} (with fields {', '.join(fields)})",
            found=type(params).__name__,
            fix=f"pass {expected}(...); to tune it during warmup use {adaptation}",
        )


def check_positive_values(subject: str, t: Tensor) -> None:
    """Raise unless every entry of ``t`` is finite and > 0 (one host synchronisation)."""
    check_finite(t, subject)
    if not bool((t > 0).all()):
        raise ValidationError(subject, "must be > 0", found=t.flatten()[:5].tolist())


def check_step_size(who: str, step_size: Any, chains: int, cache: ValueChecks | None = None,
                    name: str = "step_size") -> None:
    """Validate a step size: a positive finite number, or a floating tensor of shape () or
    (chains,) with positive finite entries (its values checked once through ``cache``)."""
    subject = f"{who} {name}"
    if isinstance(step_size, Tensor):
        if not step_size.is_floating_point():
            raise DtypeMismatchError(subject, "must be a floating-point tensor (or a number)",
                                     found=step_size.dtype, fix="use .double() or a float")
        if step_size.dim() > 1 or (step_size.dim() == 1 and step_size.shape[0] != chains):
            raise ShapeError(
                subject,
                f"must be a scalar or have shape (chains,) = ({chains},)",
                found=tuple(step_size.shape),
            )
        if cache is None:
            check_positive_values(subject, step_size)
        else:
            cache.run(step_size, lambda t: check_positive_values(subject, t))
        return
    check_real(step_size, subject, minimum=0.0, strict_minimum=True)


def flat_log_density(log_density: LogDensity, event_shape: torch.Size) -> LogDensity:
    """Wrap ``log_density`` so that it takes flat positions ``(chains, d)``."""
    if len(event_shape) == 1:
        return log_density

    def flat(z: Tensor) -> Tensor:
        return log_density(z.reshape(z.shape[:1] + event_shape))

    return flat


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
        subject = f"{who} inverse_mass_matrix"
        minv = (inverse_mass_matrix if isinstance(inverse_mass_matrix, Tensor)
                else torch.as_tensor(inverse_mass_matrix, dtype=like.dtype))
        if not minv.is_floating_point():
            raise DtypeMismatchError(subject, "must be a floating-point tensor (an integer "
                                     "matrix is not converted)", found=minv.dtype,
                                     fix="use .double() or .float()")
        minv = minv.to(dtype=like.dtype, device=like.device)
        if minv.shape not in ((d,), (d, d)):
            raise ShapeError(
                subject,
                f"must have shape (d,) = ({d},) (diagonal) or (d, d) = ({d}, {d}) (dense), "
                "d being the flattened event size",
                found=tuple(minv.shape),
            )
        check_finite(minv, subject)
        if minv.shape == (d,):
            if not bool((minv > 0).all()):
                raise ValidationError(subject, "a diagonal inverse mass matrix must be positive",
                                      found=minv[minv <= 0][:5].tolist(),
                                      fix="pass variances (> 0) of the target's coordinates")
            self.kind = "diag"
            self.minv = minv
            self.inv_sqrt = minv.rsqrt()
        else:
            # cholesky_ex reads only the lower triangle: a non-symmetric matrix would be used
            # as if it were symmetric, so refuse it (relative tolerance sqrt(eps)).
            scale = float(minv.abs().max())
            tol = math.sqrt(torch.finfo(minv.dtype).eps) * max(scale, 1e-300)
            if float((minv - minv.mT).abs().max()) > tol:
                raise ValidationError(
                    subject, "a dense inverse mass matrix must be symmetric positive definite "
                    "(it is not symmetric)",
                    fix="pass (m + m.T) / 2 of a covariance estimate, or a diagonal (d,)")
            chol, info = torch.linalg.cholesky_ex(minv)
            if bool(info != 0):
                raise ValidationError(
                    subject,
                    "a dense inverse mass matrix must be symmetric positive definite",
                    fix="pass a covariance estimate, or a diagonal of shape (d,)",
                )
            self.kind = "dense"
            self.minv = minv
            self.chol = chol

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
        if imm is not None and not isinstance(imm, Tensor):
            raise ValidationError(f"{who} inverse_mass_matrix", "must be a tensor or None",
                                  found=type(imm).__name__,
                                  fix="pass torch.tensor(values, dtype=position.dtype)")
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
