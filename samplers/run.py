"""The sampling driver: warmup with adaptation, then kept, thinned draws, into :class:`Samples`.

:func:`sample` runs any kernel of :mod:`samplers.base` for ``num_warmup`` adaptation steps (a fixed
burn-in count, as the textbook's Algorithm 11.3 needs an operational rule; warmup draws are
discarded) and then ``num_draws * thin`` steps, keeping the state after post-warmup step ``t``
(counted from 1) iff ``t % thin == 0``. All chains move together as tensor operations; the only
Python loop is over steps.

Sample stats come from each step's ``Info``: every field that is a tensor of shape (chains,)
(``accept_prob``, ``is_accepted``, ``is_divergent``, ...) plus the state's ``log_density``.

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

import math
from typing import Any

import torch
from torch import Tensor

import probforge
from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import check_generator, make_generator
from samplers.adaptation_protocol import Adaptation
from samplers.base import Kernel, LogDensity
from samplers.samples import Samples

__all__ = ["kernel_name", "sample"]


def kernel_name(kernel: Any) -> str:
    """A kernel's ``name`` attribute, or its class name."""
    return str(getattr(kernel, "name", type(kernel).__name__))


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError("sample", f"{name} must be an int >= {low}", found=repr(value))
    return value


def sample(
    kernel: Kernel,
    log_density: LogDensity,
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
    log_density : callable
        Batched log-density, (chains, *event) -> (chains,); with ``space``, on the flat
        unconstrained position (use :meth:`samplers.space.ParameterSpace.wrap`).
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
    if not isinstance(initial_position, Tensor) or initial_position.dim() < 1:
        raise ShapeError("sample: initial_position", "must be a tensor (chains, *event)",
                         found=getattr(initial_position, "shape", type(initial_position)))
    device = initial_position.device
    if generator is None and seed is not None:
        generator = make_generator(seed, device)
    check_generator(generator, device)
    if space is not None and tuple(initial_position.shape[1:]) != (space.size,):
        raise ShapeError("sample: initial_position",
                         f"must be (chains, {space.size}) for the parameter space",
                         found=tuple(initial_position.shape),
                         fix="use space.initial_position(chains, generator)")

    state: Any = kernel.init(initial_position, log_density)
    adapt_state = None
    if adaptation is not None:
        adapt_state = adaptation.init(params, state)
        params = adaptation.params(adapt_state)
    elif params is None and hasattr(kernel, "default_params"):
        params = kernel.default_params(initial_position)

    chains = initial_position.shape[0]
    bar = _progress(progress, num_warmup + num_draws * thin, kernel_name(kernel))
    try:
        for t in range(num_warmup):
            state, info = kernel.step(state, log_density, params, generator)
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
            state, info = kernel.step(state, log_density, params, generator)
            if bar is not None:
                bar.update(1)
            if t % thin:
                continue
            positions[:, kept] = state.position
            for name, value in _stat_fields(state, info, chains):
                if name not in stats:
                    stats[name] = torch.empty((chains, num_draws), dtype=value.dtype,
                                              device=device)
                stats[name][:, kept] = value
            kept += 1
    finally:
        if bar is not None:
            bar.close()

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


def _stat_fields(state: Any, info: Any, chains: int) -> list[tuple[str, Tensor]]:
    out = [("log_density", state.log_density)]
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
