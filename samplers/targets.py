"""Log-densities from Pyro models, vectorised over chains.

:func:`from_pyro_model` traces a Pyro model once to find its latent sample sites and their
supports, builds a :class:`~samplers.space.ParameterSpace` with ``biject_to(site.fn.support)``
for each, and returns a batched log-density on the flat unconstrained position: the model's log
joint (priors, likelihood, ``poutine.scale`` / masks included, as Pyro's potential energy) plus
the log-Jacobian of the transforms.

How chains are vectorised (``vectorize``):

- ``"plate"`` (default): the model runs once inside an outer ``pyro.plate`` over chains placed left
  of every model plate (like Pyro's ``vectorize_particles``); each latent value gets shape
  ``(chains, 1, ..., 1, *site_shape)``. This needs every batch dimension of the model to be
  declared by a ``pyro.plate`` and no Python control flow on sampled values.
- ``"vmap"``: ``torch.func.vmap`` over chains of the unbatched log joint (Pyro's validation is
  switched off inside, since its argument checks are data-dependent control flow).
- ``"loop"``: one model run per chain, a Python loop over chains. Always works, but is slow;
  use it only for models the other two cannot handle.

With ``validate=True`` the chosen mode is compared with the per-chain loop at two random points
when the target is built, and a mismatch raises :class:`~probforge.errors.ValidationError`.

Examples
--------
>>> import torch, pyro, pyro.distributions as dist
>>> from probforge.ops import make_generator
>>> from samplers.targets import from_pyro_model
>>> def model(y):
...     mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
...     sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
...     with pyro.plate("data", len(y)):
...         pyro.sample("y", dist.Normal(mu, sigma), obs=y)
>>> logp, space = from_pyro_model(model, torch.tensor([0.3, -0.2, 1.1]))
>>> space.names, space.size
(['mu', 'sigma'], 2)
>>> x = space.initial_position(4, make_generator(0))
>>> tuple(logp(x).shape)
(4,)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.validate import check_choice
from samplers.base import LogDensity
from samplers.space import ParameterSpace, Support

__all__ = ["from_pyro_model"]


class _Site:
    def __init__(self, name: str, shape: tuple[int, ...], batch_ndim: int) -> None:
        self.name = name
        self.shape = shape
        self.batch_ndim = batch_ndim


def _trace(model: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from pyro import poutine

    # Tracing samples from the priors: do it on a forked, fixed global RNG so the caller's global
    # RNG state is unchanged.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return poutine.trace(model).get_trace(*args, **kwargs)


def _sample_sites(trace: Any) -> list[Any]:
    from pyro.poutine.util import site_is_subsample

    return [s for s in trace.nodes.values()
            if s["type"] == "sample" and not site_is_subsample(s)]


def from_pyro_model(
    model: Callable[..., Any],
    *args: Any,
    vectorize: str = "plate",
    validate: bool = True,
    **kwargs: Any,
) -> tuple[LogDensity, ParameterSpace]:
    """A batched log-density on unconstrained space and its parameter space, from a Pyro model.

    Parameters
    ----------
    model : callable
        A Pyro model; its continuous latent ``pyro.sample`` sites become parameters.
    *args, **kwargs
        Passed to the model on every evaluation (data, sizes, ...).
    vectorize : {"plate", "vmap", "loop"}
        How chains are evaluated together (see the module docstring).
    validate : bool
        Compare with the per-chain loop at two random points when building.

    Returns
    -------
    log_density : callable
        (chains, d) -> (chains,): ``log p(data, T(x)) + log |det J_T(x)|``.
    space : ParameterSpace
        Maps ``x`` to the latent sites' constrained values, by site name.

    Raises
    ------
    ValidationError
        For discrete latent sites, an unknown ``vectorize``, or a vectorised evaluation that
        disagrees with the per-chain loop.
    """
    if not callable(model):
        raise ValidationError("from_pyro_model model", "must be callable (a Pyro model)",
                              found=type(model).__name__)
    check_choice(vectorize, "from_pyro_model vectorize", ("plate", "vmap", "loop"))
    if not isinstance(validate, bool):
        raise ValidationError("from_pyro_model validate", "must be a bool",
                              found=type(validate).__name__)
    from probforge.errors import MissingDependencyError

    try:
        import pyro
    except ImportError as err:  # pragma: no cover - pyro is a dependency of this extra
        raise MissingDependencyError("from_pyro_model", "needs Pyro",
                                     fix="pip install pyro-ppl") from err
    trace = _trace(model, args, kwargs)
    sites = _sample_sites(trace)
    max_plate = 0
    for s in sites:
        for f in s["cond_indep_stack"]:
            if f.dim is not None:
                max_plate = max(max_plate, -f.dim)
    specs: dict[str, Support] = {}
    latent: list[_Site] = []
    for s in sites:
        if s["is_observed"] or s["infer"].get("_deterministic"):
            continue
        fn = s["fn"]
        if fn.support.is_discrete:
            raise ValidationError(
                f"Pyro model site {s['name']!r}", "is a discrete latent variable",
                found=type(fn).__name__,
                fix="marginalise it out (e.g. with enumeration) or sample it with Gibbs")
        shape = tuple(s["value"].shape)
        specs[s["name"]] = Support(fn.support, shape)
        latent.append(_Site(s["name"], shape, len(fn.batch_shape)))
    if not specs:
        raise ValidationError("from_pyro_model", "the model has no latent sample sites",
                              fix="check that latent sites are not all observed")
    space = ParameterSpace(specs)

    def joint_one(values: dict[str, Tensor]) -> Tensor:
        cond = pyro.poutine.condition(model, data=values)
        return torch.as_tensor(pyro.poutine.trace(cond).get_trace(*args, **kwargs).log_prob_sum())

    def joint_loop(values: dict[str, Tensor]) -> Tensor:
        chains = next(iter(values.values())).shape[0]
        out = [joint_one({k: v[i] for k, v in values.items()}) for i in range(chains)]
        return torch.stack(out)

    def joint_plate(values: dict[str, Tensor]) -> Tensor:
        chains = next(iter(values.values())).shape[0]
        shaped = {}
        for site in latent:
            pad = (1,) * (max_plate - site.batch_ndim)
            shaped[site.name] = values[site.name].reshape((chains, *pad, *site.shape))

        def vectorised() -> Any:
            with pyro.plate("_probforge_chains", chains, dim=-(max_plate + 1)):
                return model(*args, **kwargs)

        tr = pyro.poutine.trace(pyro.poutine.condition(vectorised, data=shaped)).get_trace()
        tr.compute_log_prob()
        ref = next(iter(values.values()))
        total = torch.zeros(chains, dtype=ref.dtype, device=ref.device)
        for s in _sample_sites(tr):
            lp = s["log_prob"]
            if lp.dim() <= max_plate:  # not batched over chains
                lp = lp.sum()
            elif max_plate:  # (note: sum over an empty dim tuple would reduce everything)
                lp = lp.sum(tuple(range(lp.dim() - max_plate, lp.dim())))
            if lp.numel() not in (1, chains):
                _bad_shape(s["name"], lp, chains)
            total = total + lp.reshape(-1).expand(chains)
        return total

    def joint_vmap(values: dict[str, Tensor]) -> Tensor:
        names = list(values)

        def one(*vals: Tensor) -> Tensor:
            return joint_one(dict(zip(names, vals, strict=True)))

        with pyro.validation_enabled(False):
            return torch.func.vmap(one)(*[values[k] for k in names])

    joint = {"plate": joint_plate, "vmap": joint_vmap, "loop": joint_loop}[vectorize]
    log_density = space.wrap(joint)
    if validate and vectorize != "loop":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            x = space.initial_position(2, dtype=_dtype_of(trace))
        fix = ("declare every batch dimension of the model with pyro.plate, avoid Python "
               "control flow on sampled values, or pass vectorize='loop'")
        try:
            a = log_density(x)
        except (ValueError, RuntimeError) as err:
            raise ValidationError(
                "from_pyro_model", f"the {vectorize!r}-vectorised evaluation failed",
                found=f"{type(err).__name__}: {str(err).splitlines()[0]}", fix=fix) from err
        b = space.wrap(joint_loop)(x)
        if not torch.allclose(a, b, rtol=1e-5, atol=1e-5 * (1 + float(b.abs().max()))):
            raise ValidationError(
                "from_pyro_model",
                f"the {vectorize!r}-vectorised log-density disagrees with the per-chain one",
                found=f"{a.tolist()} vs {b.tolist()}", fix=fix)
    return log_density, space


def _bad_shape(name: str, lp: Tensor, chains: int) -> None:
    raise ShapeError(f"Pyro model site {name!r}",
                     f"log-probability does not reduce to one value per chain ({chains})",
                     found=tuple(lp.shape),
                     fix="declare the site's batch dimensions with pyro.plate, or use "
                     "vectorize='loop'")


def _dtype_of(trace: Any) -> torch.dtype:
    for s in _sample_sites(trace):
        v = s["value"]
        if isinstance(v, Tensor) and v.is_floating_point():
            return v.dtype
    return torch.get_default_dtype()

