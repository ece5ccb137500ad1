"""Named, constrained parameters on one flat unconstrained vector (as Stan and Pyro do).

A :class:`ParameterSpace` maps a flat unconstrained position ``x`` of shape (chains, d) to named
constrained tensors through bijections ``T_k`` from ``torch.distributions.biject_to``, and a
density on the constrained values to one on ``x`` by adding ``log |det J_T(x)|`` (the change of
variables). Samplers run on ``x``; the draws come back constrained, by name.

=========================  ====================  ==================================
spec                       constrained value     transform (unconstrained size)
=========================  ====================  ==================================
``Real(shape)``            any real              identity (numel)
``Positive(shape)``        ``> 0``               ``exp`` (numel)
``LowerBounded(a, shape)`` ``> a``               ``a + exp`` (numel)
``Interval(a, b, shape)``  ``(a, b)``            ``a + (b - a) sigmoid`` (numel)
``Simplex(K, batch)``      probability vector    stick breaking (K - 1 per vector)
``Ordered(K, batch)``      increasing vector     ``y_0 = x_0, y_k = y_{k-1} + exp x_k`` (K)
``Support(c, shape)``      any constraint        ``biject_to(c)``
=========================  ====================  ==================================

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from samplers.space import ParameterSpace, Real, Positive, Interval, Simplex, Ordered
>>> space = ParameterSpace({"mu": Real(), "tau": Positive(), "theta": Real(shape=(8,)),
...                         "p": Interval(0, 1), "w": Simplex(3), "c": Ordered(4)})
>>> space.size
17
>>> x = space.initial_position(5, make_generator(0), dtype=torch.float64)
>>> values = space.unflatten(x)
>>> tuple(values["theta"].shape), tuple(values["w"].shape), bool((values["tau"] > 0).all())
((5, 8), (5, 3), True)
>>> logp = space.wrap(lambda v: -v["tau"] + torch.log(v["p"]))
>>> tuple(logp(x).shape)
(5,)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Transform, biject_to, constraints

from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.ops.random import check_generator
from probforge.validate import check_device, check_int, check_real
from samplers.base import LogDensity

__all__ = [
    "Interval",
    "LowerBounded",
    "Ordered",
    "OrderedTransform",
    "ParameterSpace",
    "Positive",
    "Real",
    "Simplex",
    "Support",
    "ordered_vector",
]


class _OrderedVector(constraints.Constraint):
    """Strictly increasing real vectors (last dimension)."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        return (value[..., 1:] > value[..., :-1]).all(-1)


#: The constraint of strictly increasing vectors.
ordered_vector = _OrderedVector()


class OrderedTransform(Transform):
    """``y_0 = x_0``, ``y_k = y_{k-1} + exp(x_k)``: reals to increasing vectors.

    ``log |det J| = sum_{k >= 1} x_k``.
    """

    domain = constraints.real_vector
    codomain = ordered_vector
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderedTransform)

    def __hash__(self) -> int:
        return hash(type(self))

    def _call(self, x: Tensor) -> Tensor:
        return torch.cat([x[..., :1], x[..., :1] + torch.cumsum(torch.exp(x[..., 1:]), -1)], -1)

    def _inverse(self, y: Tensor) -> Tensor:
        return torch.cat([y[..., :1], torch.log(y[..., 1:] - y[..., :-1])], -1)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x[..., 1:].sum(-1)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    """A shape from an int or a sequence of ints, each >= 1 (bools and floats refused)."""
    if isinstance(shape, str) or not isinstance(shape, int | Sequence) or isinstance(shape, bool):
        raise ShapeError("parameter shape", "must be an int or a sequence of ints",
                         found=repr(shape))
    items = [shape] if isinstance(shape, int) else list(shape)
    out = tuple(check_int(s, "parameter shape size") for s in items)
    if any(s < 1 for s in out):
        raise ShapeError("parameter shape", "sizes must be >= 1", found=out)
    return out


def _check_positions(who: str, x: Any) -> None:
    if isinstance(x, Tensor) and not x.is_floating_point():
        raise DtypeMismatchError(who, "positions must be floating point (an integer tensor is "
                                 "not converted)", found=x.dtype, fix="use .double()")


class Support:
    """A parameter of ``shape`` constrained to ``constraint``, mapped by ``biject_to``.

    Parameters
    ----------
    constraint : torch.distributions.constraints.Constraint
        The support (any constraint ``biject_to`` knows, including Pyro's).
    shape : int or tuple of int
        Shape of one constrained value (without the chain dimension).
    transform : Transform, optional
        Use this bijection instead of ``biject_to(constraint)``.
    """

    def __init__(self, constraint: constraints.Constraint, shape: int | Sequence[int] = (),
                 transform: Transform | None = None) -> None:
        if not isinstance(constraint, constraints.Constraint):
            raise ValidationError("Support constraint", "must be a torch constraint",
                                  found=type(constraint).__name__,
                                  fix="use torch.distributions.constraints.positive, ...")
        if transform is not None and not isinstance(transform, Transform):
            raise ValidationError("Support transform", "must be a torch Transform or None",
                                  found=type(transform).__name__)
        self.constraint = constraint
        self.shape = _shape(shape)
        if transform is None:
            try:
                transform = biject_to(constraint)
            except NotImplementedError as err:
                raise ValidationError("Support constraint", "has no known bijection from the reals",
                                      found=repr(constraint),
                                      fix="pass transform= explicitly") from err
        self.transform = transform
        ev = self.transform.codomain.event_dim
        if len(self.shape) < ev:
            raise ShapeError(f"{self!r}", f"the constraint needs at least {ev} dimension(s)",
                             found=self.shape)
        self.unconstrained_shape = tuple(self.transform.inverse_shape(self.shape))
        self.unconstrained_size = int(math.prod(self.unconstrained_shape))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Constrained values (n, *shape) and ``log |det J|`` (n,) from ``u`` (n, *unc_shape)."""
        if not isinstance(u, Tensor) or tuple(u.shape[1:]) != self.unconstrained_shape:
            raise ShapeError(f"{self!r}.forward", f"u must have shape (n, "
                             f"*{self.unconstrained_shape})",
                             found=getattr(u, "shape", type(u).__name__))
        _check_positions(f"{self!r}.forward", u)
        y = self.transform(u)
        ladj = self.transform.log_abs_det_jacobian(u, y)
        ladj = ladj.reshape(u.shape[0], -1).sum(-1) if ladj.dim() > 1 else ladj
        if ladj.dim() == 0:
            ladj = ladj.expand(u.shape[0])
        return y, ladj

    def inverse(self, y: Tensor) -> Tensor:
        """Unconstrained values (n, *unc_shape) from constrained ``y`` (n, *shape).

        Raises
        ------
        ValidationError
            If ``y`` is not floating, has NaN / inf, or lies outside the support (the inverse
            would be NaN or infinite there).
        """
        if not isinstance(y, Tensor) or tuple(y.shape[1:]) != self.shape:
            raise ShapeError(f"{self!r}.inverse", f"y must have shape (n, *{self.shape})",
                             found=getattr(y, "shape", type(y).__name__))
        _check_positions(f"{self!r}.inverse", y)
        inside = self.constraint.check(y)  # type: ignore[no-untyped-call]
        if not bool(torch.isfinite(y).all()) or not bool(inside.all()):
            raise ValidationError(f"{self!r}", "values must be finite and inside the support "
                                  f"{self.constraint}", found=y[~inside].flatten()[:5].tolist()
                                  if not bool(inside.all()) else "NaN / inf",
                                  fix="pass constrained values (e.g. > 0 for Positive)")
        u: Tensor = self.transform.inv(y)
        if not bool(torch.isfinite(u).all()):
            raise ValidationError(f"{self!r}", "values on the boundary of the support "
                                  f"{self.constraint} have no finite unconstrained image",
                                  fix="move them strictly inside the support")
        return u


class Real(Support):
    """Unconstrained reals of ``shape``."""

    def __init__(self, shape: int | Sequence[int] = ()) -> None:
        super().__init__(constraints.real, shape)


class Positive(Support):
    """Positive reals of ``shape`` (``exp``)."""

    def __init__(self, shape: int | Sequence[int] = ()) -> None:
        super().__init__(constraints.positive, shape)


class LowerBounded(Support):
    """Reals above ``low`` (``low + exp``)."""

    def __init__(self, low: float, shape: int | Sequence[int] = ()) -> None:
        self.low = check_real(low, "LowerBounded low")
        support = constraints.greater_than(self.low)  # type: ignore[no-untyped-call]
        super().__init__(support, shape)


class Interval(Support):
    """Reals in the open interval ``(low, high)`` (scaled logistic)."""

    def __init__(self, low: float, high: float, shape: int | Sequence[int] = ()) -> None:
        lo = check_real(low, "Interval low")
        hi = check_real(high, "Interval high")
        if not lo < hi:
            raise ValidationError("Interval", "needs low < high", found=(low, high),
                                  fix="swap the bounds or widen the interval")
        self.low, self.high = lo, hi
        support = constraints.interval(self.low, self.high)  # type: ignore[no-untyped-call]
        super().__init__(support, shape)


class Simplex(Support):
    """Probability vectors of length ``K`` (stick breaking), ``batch_shape`` of them."""

    def __init__(self, K: int, batch_shape: int | Sequence[int] = ()) -> None:
        K = check_int(K, "Simplex K")
        if K < 2:
            raise ValidationError("Simplex", "needs K >= 2 categories", found=K)
        super().__init__(constraints.simplex, (*_shape(batch_shape), K))


class Ordered(Support):
    """Strictly increasing vectors of length ``K``, ``batch_shape`` of them."""

    def __init__(self, K: int, batch_shape: int | Sequence[int] = ()) -> None:
        K = check_int(K, "Ordered K")
        if K < 1:
            raise ValidationError("Ordered", "needs K >= 1", found=K)
        super().__init__(ordered_vector, (*_shape(batch_shape), K), OrderedTransform())


class ParameterSpace:
    """Named constrained parameters on one flat unconstrained vector.

    Parameters
    ----------
    specs : mapping str -> Support
        Parameters in order; their unconstrained parts are laid out one after another.
    """

    def __init__(self, specs: Mapping[str, Support]) -> None:
        if not isinstance(specs, Mapping):
            raise ValidationError("ParameterSpace", "needs a mapping name -> Support",
                                  found=type(specs).__name__)
        if not specs:
            raise ValidationError("ParameterSpace", "needs at least one parameter")
        for name, spec in specs.items():
            if not isinstance(name, str) or not name:
                raise ValidationError("ParameterSpace", "parameter names must be non-empty "
                                      "strings", found=repr(name))
            if not isinstance(spec, Support):
                raise ValidationError(f"ParameterSpace parameter {name!r}",
                                      "must be a Support (Real(), Positive(), ...)",
                                      found=type(spec).__name__)
        self.specs = dict(specs)
        self._slices: dict[str, slice] = {}
        start = 0
        for name, spec in self.specs.items():
            self._slices[name] = slice(start, start + spec.unconstrained_size)
            start += spec.unconstrained_size
        self.size = start

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.specs.items())
        return f"ParameterSpace({{{inner}}}, size={self.size})"

    @property
    def names(self) -> list[str]:
        """Parameter names."""
        return list(self.specs)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Constrained shape of each parameter."""
        return {k: v.shape for k, v in self.specs.items()}

    def _check(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[-1] != self.size:
            raise ShapeError(repr(self), f"positions must have shape (..., {self.size})",
                             found=tuple(x.shape) if isinstance(x, Tensor)
                             else type(x).__name__,
                             fix="flatten with space.flatten or build with initial_position")
        _check_positions(repr(self), x)
        return x.reshape(-1, self.size)

    def split(self, x: Tensor) -> dict[str, Tensor]:
        """Unconstrained parts, each of shape (..., *unconstrained_shape)."""
        flat = self._check(x)
        lead = x.shape[:-1]
        return {k: flat[:, sl].reshape((*lead, *self.specs[k].unconstrained_shape))
                for k, sl in self._slices.items()}

    def forward(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Constrained values ``{name: (..., *shape)}`` and ``log |det J|`` of shape (...)."""
        flat = self._check(x)
        lead = x.shape[:-1]
        n = flat.shape[0]
        values: dict[str, Tensor] = {}
        total = torch.zeros(n, dtype=x.dtype, device=x.device)
        for k, sl in self._slices.items():
            spec = self.specs[k]
            u = flat[:, sl].reshape((n, *spec.unconstrained_shape))
            y, ladj = spec.forward(u)
            values[k] = y.reshape((*lead, *spec.shape))
            total = total + ladj
        return values, total.reshape(lead)

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Constrained values ``{name: (..., *shape)}`` of flat positions ``x`` (..., d)."""
        return self.forward(x)[0]

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        """``log |det J_T(x)|`` of the whole map, shape (...)."""
        return self.forward(x)[1]

    def flatten(self, values: Mapping[str, Tensor]) -> Tensor:
        """Flat unconstrained positions (n, d) from constrained values ``{name: (n, *shape)}``.

        Every parameter needs a value, all with the same ``n``, inside its support (an unknown
        name is refused rather than ignored).
        """
        if not isinstance(values, Mapping):
            raise ValidationError(repr(self), "flatten needs a mapping name -> values",
                                  found=type(values).__name__)
        missing = set(self.specs) - set(values)
        if missing:
            raise ValidationError(repr(self), "flatten needs a value for every parameter",
                                  found=sorted(missing))
        extra = set(values) - set(self.specs)
        if extra:
            raise ValidationError(repr(self), "flatten got values for unknown parameters",
                                  found=sorted(map(str, extra)), fix=f"use {self.names}")
        parts = []
        n = None
        for k, spec in self.specs.items():
            y = values[k]
            if not isinstance(y, Tensor) or tuple(y.shape[1:]) != spec.shape or y.dim() < 1:
                raise ShapeError(f"parameter {k!r}", f"values must be (n, *{spec.shape})",
                                 found=getattr(y, "shape", type(y).__name__))
            if n is not None and y.shape[0] != n:
                raise ShapeError(f"parameter {k!r}", f"has {y.shape[0]} values, the others {n}",
                                 fix="give every parameter the same number of values")
            n = y.shape[0]
            parts.append(spec.inverse(y).reshape(n, -1))
        return torch.cat(parts, -1)

    def wrap(self, log_density: Callable[[dict[str, Tensor]], Tensor]) -> LogDensity:
        """A log-density on flat unconstrained ``x`` (chains, d) from one on constrained values.

        ``log p_x(x) = log p(T(x)) + log |det J_T(x)|``.
        """
        if not callable(log_density):
            raise ValidationError(f"{self!r}.wrap", "log_density must be callable",
                                  found=type(log_density).__name__)

        def on_unconstrained(x: Tensor) -> Tensor:
            values, ladj = self.forward(x)
            lp = log_density(values)
            if not isinstance(lp, Tensor) or lp.shape != ladj.shape:
                raise ShapeError("log-density on constrained values",
                                 f"must return shape {tuple(ladj.shape)} (one per chain)",
                                 found=tuple(lp.shape) if isinstance(lp, Tensor)
                                 else type(lp).__name__,
                                 fix="sum over each parameter's own dimensions")
            return lp + ladj

        return on_unconstrained

    def initial_position(
        self,
        chains: int,
        generator: torch.Generator | None = None,
        radius: float = 2.0,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Uniform(-radius, radius) starting points in unconstrained space (Stan's default).

        Returns
        -------
        Tensor, shape (chains, size)
        """
        chains = check_int(chains, "initial_position chains", minimum=1)
        radius = check_real(radius, "initial_position radius", minimum=0.0)
        if dtype is not None and (not isinstance(dtype, torch.dtype)
                                  or not dtype.is_floating_point):
            raise DtypeMismatchError("initial_position dtype", "must be a floating torch.dtype",
                                     found=dtype, fix="use torch.float64 or torch.float32")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValidationError("initial_position generator",
                                  "must be a torch.Generator or None",
                                  found=type(generator).__name__)
        dev = check_device(device, "initial_position device") if device is not None else (
            generator.device if generator is not None else torch.device("cpu"))
        check_generator(generator, dev)
        u = torch.rand((chains, self.size), generator=generator, dtype=dtype, device=dev)
        return (2 * u - 1) * radius
