"""Chains split across processes with ``torch.distributed``, gathered into one :class:`Samples`.

Every rank runs :func:`samplers.run.sample` on its own chains with its own generator, derived from
one seed by rank (:func:`rank_generator`: the ``rank``-th of ``split(make_generator(seed),
world_size)``), so a distributed run equals, chain for chain, the single-process runs with the
same per-rank generators. The results are gathered on ``dst`` (rank 0) and joined along the chain
dimension; other ranks get None.

Warmup adaptation runs per rank (each rank tunes on its own chains); the ranks do not
communicate during sampling, only at the gather.

:func:`launch` starts ``world_size`` local processes (``torch.multiprocessing.spawn``) with a
process group on the ``gloo`` backend (CPU; ``nccl`` for one GPU per rank) and returns rank 0's
result; under ``torchrun`` call :func:`sample_distributed` directly after
``torch.distributed.init_process_group``.

Examples
--------
>>> from samplers.distributed import rank_generator
>>> g0, g1 = rank_generator(7, 0, 2), rank_generator(7, 1, 2)
>>> g0.initial_seed() != g1.initial_seed()
True
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from probforge.errors import ValidationError
from probforge.ops.random import make_generator, split
from probforge.validate import check_choice, check_device, check_int
from samplers.base import Kernel, LogDensity
from samplers.run import sample
from samplers.samples import Samples, concat

__all__ = ["launch", "rank_generator", "sample_distributed"]


def rank_generator(seed: int, rank: int, world_size: int,
                   device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of ``rank``: child ``rank`` of ``split(make_generator(seed), world_size)``."""
    seed = check_int(seed, "rank_generator seed", minimum=0)
    world_size = check_int(world_size, "rank_generator world_size", minimum=1)
    rank = check_int(rank, "rank_generator rank", minimum=0)
    if not 0 <= rank < world_size:
        raise ValidationError("rank_generator", "needs 0 <= rank < world_size",
                              found=(rank, world_size))
    return split(make_generator(seed, check_device(device, "rank_generator device")),
                 world_size)[rank]


def sample_distributed(
    kernel: Kernel,
    log_density: LogDensity,
    initial_position: Tensor | Callable[[int, torch.Generator], Tensor],
    *,
    seed: int,
    num_draws: int,
    num_warmup: int = 0,
    thin: int = 1,
    params: Any = None,
    adaptation: Any = None,
    space: Any = None,
    progress: bool = False,
    group: Any = None,
    dst: int = 0,
) -> Samples | None:
    """Run this rank's chains and gather every rank's draws on ``dst``.

    Call on every rank of an initialised process group.

    Parameters
    ----------
    initial_position : Tensor (chains_r, *event) or callable
        This rank's starting points, or ``initial_position(rank, generator) -> Tensor``, which
        draws them from the rank's generator (before sampling starts).
    seed : int
        The run's seed; rank ``r`` uses :func:`rank_generator` ``(seed, r, world_size)``.
    group : ProcessGroup, optional
        Default: the world.
    dst : int
        Rank that receives the joined result.

    Other parameters are those of :func:`samplers.run.sample`.

    Returns
    -------
    Samples on ``dst`` (chains of rank 0 first, then rank 1, ...), None on other ranks
        ``attrs`` gain ``world_size``, ``rank_chains`` (chains per rank) and ``rank_seeds``.
    """
    seed = check_int(seed, "sample_distributed seed", minimum=0)
    if not isinstance(initial_position, Tensor) and not callable(initial_position):
        raise ValidationError("sample_distributed initial_position",
                              "must be a tensor or a function (rank, generator) -> tensor",
                              found=type(initial_position).__name__)
    if not dist.is_available() or not dist.is_initialized():
        raise ValidationError("sample_distributed", "needs an initialised process group",
                              fix="call torch.distributed.init_process_group first, or use "
                              "samplers.distributed.launch")
    rank = dist.get_rank(group)
    world = dist.get_world_size(group)
    if isinstance(initial_position, Tensor):
        device = initial_position.device
    else:
        device = torch.device("cpu")
    g = rank_generator(seed, rank, world, device)
    x0 = initial_position(rank, g) if callable(initial_position) else initial_position
    s = sample(kernel, log_density, x0, num_draws=num_draws, num_warmup=num_warmup, thin=thin,
               params=params, adaptation=adaptation, generator=g, progress=progress,
               space=space, seed=seed)
    payload = {
        "draws": {k: v.detach().cpu() for k, v in s.draws.items()},
        "stats": {k: v.detach().cpu() for k, v in s.stats.items()},
        "attrs": {k: v for k, v in s.attrs.items() if k not in ("params", "final_state")},
        "rank_seed": g.initial_seed(),
    }
    gathered: list[Any] | None = [None] * world if rank == dst else None
    dist.gather_object(payload, gathered, dst=dst, group=group)
    if gathered is None:
        return None
    parts = [Samples(p["draws"], p["stats"], dict(p["attrs"])) for p in gathered]
    out = concat(parts)
    out.attrs.update({
        "world_size": world,
        "rank_chains": [p.num_chains for p in parts],
        "rank_seeds": [str(p["rank_seed"]) for p in gathered],
        "device": str(device),
    })
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, fn: Callable[..., Any], world_size: int, backend: str, port: int,
           out_dir: str, args: tuple[Any, ...], forked: bool) -> None:
    # Share the cores between ranks; a forked child must not reuse the parent's OpenMP pool.
    torch.set_num_threads(1 if forked else max(1, (os.cpu_count() or 1) // world_size))
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        if rank == 0:
            torch.save(result, Path(out_dir) / "result.pt")
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], world_size: int, *args: Any,
           backend: str = "gloo", start_method: str = "spawn") -> Any:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` local processes; return rank 0's
    result.

    ``fn`` must be importable by name (a module-level function), as ``spawn`` requires
    (``start_method="fork"`` starts faster on Linux but is unsafe once CUDA or threads are in
    use). The process group is initialised before ``fn`` runs and destroyed after. Rank 0's
    return value is passed back through ``torch.save`` (so it may hold tensors and ``Samples``).
    """
    world_size = check_int(world_size, "launch world_size", minimum=1)
    if not callable(fn):
        raise ValidationError("launch fn", "must be a module-level function",
                              found=type(fn).__name__)
    check_choice(backend, "launch backend", ("gloo", "nccl", "mpi"))
    check_choice(start_method, "launch start_method", ("spawn", "fork", "forkserver"))
    from torch.multiprocessing.spawn import start_processes

    with tempfile.TemporaryDirectory(prefix="probforge-dist-") as tmp:
        start_processes(  # type: ignore[no-untyped-call]
            _entry, args=(fn, world_size, backend, _free_port(), tmp, args,
                          start_method == "fork"),
            nprocs=world_size, join=True, start_method=start_method)
        # Our own file, written by rank 0 a moment ago in a private temp dir: full unpickling
        # is safe here (Samples is not a plain-tensor payload).
        return torch.load(Path(tmp) / "result.pt", weights_only=False)
