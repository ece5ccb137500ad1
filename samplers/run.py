"""The sampling driver: warmup with adaptation, then kept, thinned draws, into :class:`Samples`.

:func:`sample` runs any kernel of :mod:`samplers.base` for ``num_warmup`` adaptation steps (a fixed
burn-in count, as the textbook's Algorithm 11.3 needs an operational rule; warmup draws are
discarded) and then ``num_draws * thin`` steps, keeping the state after post-warmup step ``t``
(counted from 1) iff ``t % thin == 0``. All chains move together as tensor operations; the only
Python loop is over steps.

Sample stats come from each step's ``Info``: every field that is a tensor of shape (chains,)
(``accept_prob``, ``is_accepted``, ``is_divergent``, ...) plus the state's ``log_density``.

Inputs are checked before anything runs (named errors from :mod:`probforge.errors`): the
counts are ints (bools and floats refused), the start a tensor with at least one chain, a
known adaptation must suit the kernel (:class:`~samplers.adaptation.WindowAdaptation` tunes
HMC, NUTS and MALA; :class:`~samplers.adaptation_protocol.ScaleAdaptation` random-walk
Metropolis; :class:`~samplers.slice.SliceWidthAdaptation` the slice sampler), and each kernel's
``init`` checks the start and the log-density there (see :mod:`samplers._kernel_utils` for the
policy on NaN). The kept positions are checked for NaN / inf once, after the run.

Examples
--------
>>> import torch
>>> from samplers.metropolis import RandomWalkMetropolis
>>> from samplers.run import sample
>>> logp = lambda x: -0.5 * (x ** 2).sum(-1)
>>> s = sample(RandomWalkMetropolis(), logp, torch.zeros(4, 2), num_draws=100, num_warmup=50,
...            thin=2, seed=0)
>>> tuple(s["x"].shape), sorted(s.stats)
((4, 100, 2), ['accept_prob', 'is_accepted', 'log_density', 'proposal_log_density'])
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import Tensor

import probforge
from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import make_generator
from probforge.validate import check_int
from samplers._kernel_utils import adapted_params, check_generator_arg, check_position
from samplers.adaptation_protocol import Adaptation
from samplers.base import Kernel, LogDensity
from samplers.samples import Samples

__all__ = ["check_adaptation", "kernel_name", "sample"]


def kernel_name(kernel: Any) -> str:
    """A kernel's ``name`` attribute, or its class name."""
    return str(getattr(kernel, "name", type(kernel).__name__))


def _check_count(name: str, value: Any, low: int) -> int:
    return check_int(value, f"sample {name}", minimum=low)


#: For each library kernel (class name): the adaptation that tunes it, for error messages.
_RIGHT_ADAPTATION = {
    "RandomWalkMetropolis": "ScaleAdaptation()",
    "HMC": "WindowAdaptation()",
    "NUTS": "WindowAdaptation()",
    "MALA": "WindowAdaptation(target_accept=0.57)",
    "SliceSampler": "SliceWidthAdaptation()",
    "IndependenceMetropolis": "no adaptation (adaptation=None): it has no tunable parameters",
    "MetropolisHastings": "no adaptation (adaptation=None): it has no tunable parameters",
    "Gibbs": "no adaptation (adaptation=None): it has no tunable parameters",
}


def check_adaptation(kernel: Any, adaptation: Any) -> None:
    """Refuse a library adaptation paired with a library kernel it cannot tune.

    ``ScaleAdaptation`` tunes :class:`~samplers.metropolis.RandomWalkMetropolis`,
    ``WindowAdaptation`` :class:`~samplers.hmc.HMC`, :class:`~samplers.nuts.NUTS` and
    :class:`~samplers.mala.MALA`, ``SliceWidthAdaptation``
    :class:`~samplers.slice.SliceSampler`; inside :class:`~samplers.tempering.ParallelTempering`
    the inner kernel counts. User-defined kernels and adaptations are not checked.
    """
    for name in ("init", "update", "params", "final"):
        if not callable(getattr(adaptation, name, None)):
            raise ValidationError("sample adaptation",
                                  "must provide init, update, params and final (see "
                                  "samplers.adaptation_protocol.Adaptation)",
                                  found=type(adaptation).__name__)
    from samplers.adaptation import WindowAdaptation
    from samplers.adaptation_protocol import ScaleAdaptation
    from samplers.gibbs import Gibbs
    from samplers.hmc import HMC
    from samplers.mala import MALA
    from samplers.metropolis import (
        IndependenceMetropolis,
        MetropolisHastings,
        RandomWalkMetropolis,
    )
    from samplers.nuts import NUTS
    from samplers.slice import SliceSampler, SliceWidthAdaptation
    from samplers.tempering import ParallelTempering

    tunes: dict[type, tuple[type, ...]] = {
        ScaleAdaptation: (RandomWalkMetropolis,),
        WindowAdaptation: (HMC, NUTS, MALA),
        SliceWidthAdaptation: (SliceSampler,),
    }
    known = (RandomWalkMetropolis, IndependenceMetropolis, MetropolisHastings, Gibbs, HMC, NUTS,
             MALA, SliceSampler)
    inner = kernel.inner if isinstance(kernel, ParallelTempering) else kernel
    for adaptation_type, kernels in tunes.items():
        if isinstance(adaptation, adaptation_type) and isinstance(inner, known) \
                and not isinstance(inner, kernels):
            kname = type(inner).__name__
            family = next(c for c in known if isinstance(inner, c))
            right = _RIGHT_ADAPTATION[family.__name__]
            raise ValidationError(
                "sample adaptation",
                f"{adaptation_type.__name__} tunes "
                f"{', '.join(k.__name__ for k in kernels)}, not {kname}",
                found=f"{adaptation_type.__name__} with {kname}",
                fix=f"use {right} for {kname}")


def sample(
    kernel: Kernel,
    log_density: LogDensity | None,
    initial_position: Tensor,
    *,
    num_draws: int,
    num_warmup: int = 0,
    thin: int = 1,
    params: Any = None,
    adaptation: Adaptation | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    space: Any = None,
    seed: int | None = None,
) -> Samples:
    """Run ``kernel`` from ``initial_position`` and return the kept draws.

    Parameters
    ----------
    kernel : Kernel
        Any ``init`` / ``step`` kernel. If ``params`` is None and there is no adaptation, the
        kernel's ``default_params(position)`` is used when it has one.
    log_density : callable or None
        Batched log-density, (chains, *event) -> (chains,); with ``space``, on the flat
        unconstrained position (use :meth:`samplers.space.ParameterSpace.wrap`). None only
        for :class:`~samplers.gibbs.Gibbs` (the samples then have no ``log_density`` stat:
        there is nothing to report).
    initial_position : Tensor, shape (chains, *event)
        Starting points; its device and dtype are those of every draw and stat.
    num_draws : int
        Kept draws per chain (>= 1).
    num_warmup : int
        Warmup (burn-in) steps, discarded; adaptation updates after each of them.
    thin : int
        Keep every ``thin``-th post-warmup state.
    params : object, optional
        Kernel parameters (e.g. a random-walk scale), or the starting point of the adaptation.
    adaptation : Adaptation, optional
        Warmup adaptation (:class:`samplers.adaptation_protocol.ScaleAdaptation`, ...).
    generator : torch.Generator, optional
        Source of all randomness; it must draw on the position's device.
    progress : bool
        Show a tqdm progress bar.
    space : ParameterSpace, optional
        Maps the flat unconstrained position to named constrained variables in the draws;
        without it the draws hold one variable ``"x"``.
    seed : int, optional
        Seed for a new generator on the position's device when ``generator`` is None; recorded
        in ``attrs["seed"]`` either way.

    Returns
    -------
    Samples
        Draws (chain, draw, *shape), stats (chain, draw) and attrs (sampler, seed, device,
        dtype, counts, versions, final ``params`` and ``final_state``).
    """
    num_draws = _check_count("num_draws", num_draws, 1)
    num_warmup = _check_count("num_warmup", num_warmup, 0)
    thin = _check_count("thin", thin, 1)
    for name in ("init", "step"):
        if not callable(getattr(kernel, name, None)):
            raise ValidationError("sample kernel", "must have init and step (see samplers.base)",
                                  found=type(kernel).__name__,
                                  fix="pass e.g. RandomWalkMetropolis() or NUTS()")
    from samplers.gibbs import Gibbs

    if log_density is None and not isinstance(kernel, Gibbs):
        raise ValidationError("sample log_density", "is None, but only Gibbs runs without one",
                              found=type(kernel).__name__, fix="pass the batched log-density")
    if log_density is not None and not callable(log_density):
        raise ValidationError("sample log_density", "must be callable",
                              found=type(log_density).__name__)
    if not isinstance(progress, bool):
        raise ValidationError("sample progress", "must be a bool", found=type(progress).__name__)
    if seed is not None:
        seed = check_int(seed, "sample seed", minimum=0)
    if not isinstance(initial_position, Tensor) or initial_position.dim() < 1:
        raise ShapeError("sample: initial_position", "must be a tensor (chains, *event)",
                         found=getattr(initial_position, "shape", type(initial_position)))
    # Zero chains or an empty event: a named error here, whatever the kernel (an integer
    # position is left to the kernel: Gibbs takes state indices, the others refuse it).
    check_position("sample", initial_position, min_ndim=1, floating=False)
    device = initial_position.device
    if generator is None and seed is not None:
        generator = make_generator(seed, device)
    check_generator_arg(generator, device, "sample generator")
    if space is not None:
        from samplers.space import ParameterSpace

        if not isinstance(space, ParameterSpace):
            raise ValidationError("sample space", "must be a ParameterSpace or None",
                                  found=type(space).__name__)
    if space is not None and tuple(initial_position.shape[1:]) != (space.size,):
        raise ShapeError("sample: initial_position",
                         f"must be (chains, {space.size}) for the parameter space",
                         found=tuple(initial_position.shape),
                         fix="use space.initial_position(chains, generator)")
    if adaptation is not None:
        check_adaptation(kernel, adaptation)

    ld: Any = log_density  # None only for Gibbs (checked above)
    state: Any = kernel.init(initial_position, ld)
    adapt_state = None
    if adaptation is not None:
        adapt_state = adaptation.init(params, state)
        params = adaptation.params(adapt_state)
    elif params is None and hasattr(kernel, "default_params"):
        params = kernel.default_params(initial_position)

    chains = initial_position.shape[0]
    bar = _progress(progress, num_warmup + num_draws * thin, kernel_name(kernel))
    try:
        # The adaptation makes fresh params every warmup step: kernels check their types and
        # shapes but not their values there (no host synchronisation per step); the final
        # params are checked once by the first kept-draw step.
        with adapted_params() if adaptation is not None else contextlib.nullcontext():
            for t in range(num_warmup):
                state, info = kernel.step(state, ld, params, generator)
                if adaptation is not None:
                    adapt_state = adaptation.update(adapt_state, state, info, t, num_warmup)
                    params = adaptation.params(adapt_state)
                if bar is not None:
                    bar.update(1)
        if adaptation is not None:
            params = adaptation.final(adapt_state)

        positions = torch.empty((chains, num_draws, *state.position.shape[1:]),
                                dtype=state.position.dtype, device=device)
        stats: dict[str, Tensor] = {}
        kept = 0
        for t in range(1, num_draws * thin + 1):
            state, info = kernel.step(state, ld, params, generator)
            if bar is not None:
                bar.update(1)
            if t % thin:
                continue
            positions[:, kept] = state.position
            for name, value in _stat_fields(state, info, chains, log_density is not None):
                if name not in stats:
                    stats[name] = torch.empty((chains, num_draws), dtype=value.dtype,
                                              device=device)
                stats[name][:, kept] = value
            kept += 1
    finally:
        if bar is not None:
            bar.close()

    if positions.is_floating_point() and not bool(torch.isfinite(positions).all()):
        bad = ~torch.isfinite(positions.reshape(chains, num_draws, -1)).all(-1)
        c, n = (int(i) for i in bad.nonzero()[0])
        raise NonFiniteError(
            f"sample ({kernel_name(kernel)})",
            f"the kept draws hold NaN / inf positions (first at chain {c}, draw {n})",
            fix="check the kernel's proposals or conditionals (a Gibbs conditional that "
            "returns NaN) and the log-density near those draws")
    draws = _named_draws(positions, space)
    attrs: dict[str, Any] = {
        "sampler": kernel_name(kernel),
        "seed": seed,
        "device": str(device),
        "dtype": str(initial_position.dtype).replace("torch.", ""),
        "num_chains": chains,
        "num_draws": num_draws,
        "num_warmup": num_warmup,
        "thin": thin,
        "probforge_version": probforge.__version__,
        "torch_version": str(torch.__version__),
        "params": params,
        "final_state": state,
    }
    target = getattr(adapt_state, "target_accept", None)
    if target is None:
        target = getattr(adaptation, "target_accept", None)
    if target is not None:
        attrs["target_accept"] = float(target)
    return Samples(draws, stats, attrs)


def _stat_fields(state: Any, info: Any, chains: int,
                 has_log_density: bool) -> list[tuple[str, Tensor]]:
    # Without a log-density (Gibbs from conditionals alone) there is no value to report: the
    # stat is left out rather than filled with NaN.
    out = [("log_density", state.log_density)] if has_log_density else []
    fields = info._asdict() if hasattr(info, "_asdict") else {}
    for name, value in fields.items():
        if isinstance(value, Tensor) and value.shape == (chains,):
            out.append((name, value))
    return out


def _named_draws(positions: Tensor, space: Any) -> dict[str, Tensor]:
    if space is None:
        return {"x": positions}
    c, n = positions.shape[:2]
    values = space.unflatten(positions.reshape(c * n, -1))
    return {k: v.reshape((c, n, *v.shape[1:])) for k, v in values.items()}


def _progress(enabled: bool, total: int, name: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sampling ({name})", unit="step",
                mininterval=0.5, miniters=max(1, int(math.sqrt(total))))
