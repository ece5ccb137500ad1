"""Data parallelism for :func:`generative.train.fit`: process groups and DDP-wrapped networks.

Under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) :func:`setup` joins the process group (``gloo`` on CPU,
``nccl`` on CUDA) unless the caller already has; :func:`wrap` puts every network that has
trainable parameters in a ``torch.nn.parallel.DistributedDataParallel``, so gradients are
averaged across ranks during ``backward``.

A task may call any method or sub-module of a network it is given, not only ``forward``
(``nets["vae"].elbo(x)``, ``nets["vae"].encoder(x)``): the wrapper routes such calls through
DDP's forward, so their gradients are synchronised too. Plain attributes, parameters and the
``nn.Module`` methods (``parameters()``, ``train()``, ...) are those of the wrapped network.

DDP's usual rules hold inside ``training_step``: a network called with gradients enabled must
receive gradients in the same iteration's backward (call the generator under ``torch.no_grad()``
for a discriminator step, not ``G(z).detach()``), and ``requires_grad`` must not be toggled
between steps unless ``find_unused_parameters=True`` is passed through ``ddp_options``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from probforge.errors import ValidationError

__all__ = ["DDPNet", "DistContext", "check_in_sync", "setup", "teardown", "unwrap", "wrap"]

_MODULE_ATTRS = frozenset(dir(nn.Module))
_MISSING = object()


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size``; ``owns_group`` when
    :func:`setup` created the process group (and :func:`teardown` destroys it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(mode: bool | None, device: torch.device) -> DistContext:
    """Join (or find) the process group.

    ``mode`` None: data-parallel when a group is initialised or ``WORLD_SIZE > 1`` in the
    environment; False: never; True: required (error without ``torchrun`` / a group).
    """
    if mode is False or not dist.is_available():
        if mode:
            raise ValidationError("fit(ddp=True)", "torch.distributed is not available")
        return DistContext()
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local, False)
    if world_env > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend)
        return DistContext(dist.get_rank(), dist.get_world_size(), local, True)
    if mode:
        raise ValidationError("fit(ddp=True)", "no process group and WORLD_SIZE is not > 1",
                              fix="launch with torchrun --nproc-per-node N, or call "
                              "torch.distributed.init_process_group first")
    return DistContext()


def teardown(ctx: DistContext) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def _forward_as(net: nn.Module, path: tuple[str, ...]) -> Iterator[None]:
    """Make ``net.forward`` call ``net.<path>`` for the duration of the block."""
    target: Any = net
    for name in path:
        target = getattr(target, name)
    saved = net.__dict__.get("forward", _MISSING)

    def restore() -> None:
        if saved is _MISSING:
            net.__dict__.pop("forward", None)
        else:
            net.__dict__["forward"] = saved

    def once(*args: Any, **kwargs: Any) -> Any:
        restore()  # the method may call self(...) itself: give it the real forward back
        return target(*args, **kwargs)

    net.__dict__["forward"] = once  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        restore()


class _Route:
    """An attribute path below a wrapped network; calling it runs through DDP's forward."""

    def __init__(self, ddp: DDPNet, path: tuple[str, ...]) -> None:
        self._ddp = ddp
        self._path = path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _forward_as(self._ddp.module, self._path):
            return self._ddp(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _resolve(self._ddp, (*self._path, name))

    def __repr__(self) -> str:
        return f"<DDP route {'.'.join(self._path)}>"


def _resolve(ddp: DDPNet, path: tuple[str, ...]) -> Any:
    target: Any = ddp.module
    for name in path:
        target = getattr(target, name)
    if isinstance(target, nn.Module) or (inspect.ismethod(target)
                                         and path[-1] not in _MODULE_ATTRS):
        return _Route(ddp, path)
    return target


class DDPNet(DistributedDataParallel):
    """``DistributedDataParallel`` around a network; custom methods and sub-modules of the
    network are reachable as attributes and run through DDP's forward.

    ``ddp.module`` is the network itself. Calling ``ddp.module.<method>`` directly bypasses
    DDP: its gradients are not synchronised (:func:`check_in_sync` detects the result).
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or "module" not in self.__dict__.get("_modules", {}):
                raise
        return _resolve(self, (name,))


def wrap(net: nn.Module, ctx: DistContext, device: torch.device,
         options: dict[str, Any] | None = None) -> nn.Module:
    """``net`` itself when not data-parallel or without trainable parameters, else a
    :class:`DDPNet` (rank 0's parameters and buffers are broadcast to all ranks)."""
    if not ctx.enabled or not any(p.requires_grad for p in net.parameters()):
        return net
    kwargs: dict[str, Any] = dict(options or {})
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device.index if device.index is not None else 0])
    return DDPNet(net, **kwargs)


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside a :func:`wrap` result (or ``net`` itself)."""
    if isinstance(net, DistributedDataParallel):
        inner = net.module
        assert isinstance(inner, nn.Module)
        return inner
    return net


def check_in_sync(nets: dict[str, nn.Module], ctx: DistContext) -> None:
    """Raise if a network's parameters differ between ranks (one all-reduce of checksums).

    Under DDP they stay bitwise equal; a difference means some gradient bypassed the wrapper
    (``training_step`` called ``net.module....`` or a network it holds itself).
    """
    if not ctx.enabled or not nets:
        return
    sums = []
    for net in nets.values():
        params = [p.detach() for p in net.parameters()]
        weights = [torch.arange(1, p.numel() + 1, device=p.device, dtype=torch.float64)
                   for p in params]
        sums.append(sum(((p.double().flatten() * w).sum() for p, w in zip(params, weights,
                                                                          strict=True)),
                        torch.zeros((), dtype=torch.float64)).cpu())
    local = torch.stack(sums)
    low, high = local.clone(), local.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    for (name, _), lo, hi in zip(nets.items(), low.tolist(), high.tolist(), strict=True):
        if lo != hi:
            raise ValidationError(
                f"network {name!r}", "its parameters differ between ranks: gradients of some "
                "computation were not synchronised by DistributedDataParallel",
                fix="in training_step call the networks passed in (nets[name](...), "
                "nets[name].method(...)), not net.module or networks the task holds")
