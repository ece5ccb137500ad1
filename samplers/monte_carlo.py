"""Plain Monte Carlo (textbook 11.5.1): expectations with standard errors, the pi demo, inverse CDF.

``E_p[f(x)] ~= (1/N) sum_n f(x_n)`` with ``x_n ~ p`` i.i.d. (11.96); by the central limit theorem
its standard error is ``sd(f) / sqrt(N)``.

Examples
--------
>>> import math
>>> from probforge.ops import make_generator
>>> from samplers.monte_carlo import estimate_pi
>>> est = estimate_pi(100_000, generator=make_generator(0))
>>> bool(abs(est.mean - math.pi) < 4 * est.std_error)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.errors import DtypeMismatchError, NonFiniteError, ShapeError
from probforge.ops.random import check_generator
from probforge.validate import check_device, check_int, check_real
from samplers._kernel_utils import check_callable, check_generator_arg

__all__ = ["Estimate", "estimate_pi", "inverse_cdf_sample", "monte_carlo_expectation"]


class Estimate(NamedTuple):
    """A Monte Carlo estimate.

    Attributes
    ----------
    mean : Tensor, shape of one ``f`` value
        The estimate.
    std_error : Tensor, same shape
        Its standard error.
    num_samples : int
        Draws used (for weighted estimates, the number of weighted draws).
    """

    mean: Tensor
    std_error: Tensor
    num_samples: int


def _check_n(name: str, n: int) -> int:
    return check_int(n, f"{name} num_samples", minimum=2)


def _check_dtype(name: str, dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DtypeMismatchError(f"{name} dtype", "must be a floating torch.dtype", found=dtype,
                                 fix="use torch.float64 or torch.float32")
    return dtype


def monte_carlo_expectation(
    f: Callable[[Tensor], Tensor],
    draw: Callable[[int, torch.Generator | None], Tensor],
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 1_000_000,
) -> Estimate:
    """``E_p[f(x)]`` from ``num_samples`` i.i.d. draws, with its standard error (11.96).

    Parameters
    ----------
    f : callable
        (n, *event) -> (n, *out).
    draw : callable
        ``draw(n, generator) -> (n, *event)``: i.i.d. draws from ``p``.
    num_samples : int
    generator : torch.Generator, optional
    batch_size : int
        Draws per batch (sums are accumulated, so memory stays bounded).

    Raises
    ------
    NonFiniteError
        If ``f`` returns NaN / inf for some draw (the estimate would be NaN).

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> draw = lambda n, g: torch.randn(n, generator=g, dtype=torch.float64)
    >>> est = monte_carlo_expectation(lambda x: x ** 2, draw, 10_000, generator=make_generator(1))
    >>> abs(float(est.mean) - 1.0) < 4 * float(est.std_error)
    True
    """
    num_samples = _check_n("monte_carlo_expectation", num_samples)
    batch_size = check_int(batch_size, "monte_carlo_expectation batch_size", minimum=1)
    check_callable("monte_carlo_expectation", f, "f")
    check_callable("monte_carlo_expectation", draw, "draw")
    check_generator_arg(generator, None, "monte_carlo_expectation generator")
    total = total_sq = None
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        x = draw(n, generator)
        fx = f(x)
        if not isinstance(fx, Tensor) or fx.shape[:1] != (n,):
            raise ShapeError("monte_carlo_expectation: f", f"must return (n, ...) = ({n}, ...)",
                             found=tuple(fx.shape) if isinstance(fx, Tensor)
                             else type(fx).__name__)
        if fx.is_complex():
            raise DtypeMismatchError("monte_carlo_expectation: f", "must return real values",
                                     found=fx.dtype)
        # An indicator or a count is exact in floating point: promoting it is not a change of
        # meaning (the mean of a bool is a probability).
        fx = fx if fx.is_floating_point() else fx.to(torch.get_default_dtype())
        s, s2 = fx.sum(0), (fx * fx).sum(0)
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
        done += n
    assert total is not None and total_sq is not None
    mean = total / num_samples
    var = (total_sq - num_samples * mean * mean).clamp_min(0) / (num_samples - 1)
    se = torch.sqrt(var / num_samples)
    if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(se).all())):
        raise NonFiniteError("monte_carlo_expectation",
                             "f returned NaN / inf for some draws, or its sum overflows",
                             fix="make f finite on the draws")
    return Estimate(mean, se, num_samples)


def estimate_pi(
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    radius: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> Estimate:
    """Estimate pi by throwing uniform points into the square ``[-r, r]^2`` (textbook T14).

    The fraction inside the inscribed circle tends to ``pi r^2 / (2r)^2 = pi / 4``; returns
    ``4 *`` that fraction with its binomial standard error.
    """
    num_samples = _check_n("estimate_pi", num_samples)
    radius = check_real(radius, "estimate_pi radius", minimum=0.0, strict_minimum=True)
    dtype = _check_dtype("estimate_pi", dtype)
    check_generator_arg(generator, None, "estimate_pi generator")
    device = generator.device if generator is not None else torch.device("cpu")

    def draw(n: int, g: torch.Generator | None) -> Tensor:
        return (2 * torch.rand((n, 2), generator=g, dtype=dtype, device=device) - 1) * radius

    inside = monte_carlo_expectation(
        lambda p: ((p * p).sum(-1) <= radius * radius).to(dtype), draw, num_samples,
        generator=generator)
    return Estimate(4 * inside.mean, 4 * inside.std_error, num_samples)


def inverse_cdf_sample(
    inverse_cdf: Callable[[Tensor], Tensor],
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draws ``cdf^{-1}(xi)``, ``xi ~ U(0, 1)`` (textbook Ex. 11-10).

    Valid when the CDF is continuous and strictly increasing; ``xi`` is drawn from the open
    interval ``(0, 1)`` so that ``cdf^{-1}`` stays finite for unbounded supports.

    Parameters
    ----------
    inverse_cdf : callable
        Elementwise ``cdf^{-1}`` on a tensor of probabilities.
    num_samples : int

    Returns
    -------
    Tensor, shape (num_samples,)

    Examples
    --------
    Exponential(rate 2): ``cdf^{-1}(u) = -log(1 - u) / 2``.

    >>> import torch
    >>> from probforge.ops import make_generator
    >>> x = inverse_cdf_sample(lambda u: -torch.log1p(-u) / 2, 20_000,
    ...                        generator=make_generator(0))
    >>> abs(float(x.mean()) - 0.5) < 0.02
    True
    """
    num_samples = check_int(num_samples, "inverse_cdf_sample num_samples", minimum=1)
    check_callable("inverse_cdf_sample", inverse_cdf, "inverse_cdf")
    dtype = _check_dtype("inverse_cdf_sample", dtype)
    check_generator_arg(generator, None, "inverse_cdf_sample generator")
    dev = check_device(device, "inverse_cdf_sample device") if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    check_generator(generator, dev)
    u = torch.rand(num_samples, generator=generator, dtype=dtype, device=dev)
    tiny = torch.finfo(dtype).tiny
    u = u.clamp(min=tiny, max=1 - torch.finfo(dtype).eps / 2)
    x = inverse_cdf(u)
    if not isinstance(x, Tensor) or x.shape != u.shape:
        raise ShapeError("inverse_cdf_sample: inverse_cdf", "must act elementwise",
                         found=tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__)
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError("inverse_cdf_sample: inverse_cdf",
                              "returned non-finite values on (0, 1)",
                              fix="check the inverse CDF near 0 and 1")
    return x

