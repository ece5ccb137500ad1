"""The contract between a deep generative model and the shared training loop.

A *task* bundles what one model needs to be trained by :func:`generative.train.fit`: its networks,
how to build their optimisers, one optimisation step on a batch, how to draw samples for the
periodic sample grids, and how to evaluate. Models (``VAE``, ``GAN``, autoencoders, ...) implement
it; the loop owns everything else (data order, checkpoints and resume, logs, NaN stops, DDP).

The loop may replace entries of the ``nets`` mapping it passes in (for instance by
``DistributedDataParallel`` wrappers under ``torchrun``), so a task must use the networks it is
given, never networks it holds itself, inside :meth:`TrainTask.training_step`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["Batch", "TrainTask"]

#: One minibatch: ``(x, y)``; ``x`` is ``(B, *event)``, ``y`` is ``(B,)`` labels or ``None``.
Batch = tuple[Tensor, Tensor | None]


@runtime_checkable
class TrainTask(Protocol):
    """What a model exposes to the training loop.

    Methods
    -------
    config()
        A JSON-serialisable description from which ``generative.registry.build_task(config)``
        rebuilds an equal, untrained task (``{"kind": "vae", "latent_dim": 16, ...}``); stored in
        every checkpoint so ``probforge sample --checkpoint`` can rebuild the model.
    networks()
        The trainable networks by name, e.g. ``{"vae": vae}`` or
        ``{"generator": g, "discriminator": d}``. Their ``state_dict`` is checkpointed.
    make_optimizers(nets)
        Optimisers (and optionally learning-rate schedulers) for those networks, by name:
        ``({"g": Adam(...), "d": Adam(...)}, {"g": scheduler})``. The loop steps every scheduler
        once after each training step.
    training_step(nets, optimizers, batch, step, generator)
        One optimisation step (zero_grad, backward, step for every optimiser it uses, e.g. ``k``
        discriminator steps then one generator step). Returns the detached scalar loss terms by
        name, e.g. ``{"loss": ..., "recon": ..., "kl": ...}``; the loop logs them and stops if
        any is NaN or infinite.
    sample(nets, n, generator, labels)
        ``n`` samples, ``(n, *event)``; images in ``[0, 1]`` with shape ``(n, C, H, W)``.
    evaluate(nets, batch, generator)
        Evaluation figures on a held-out batch, by name (floats), e.g. ``{"elbo": ...}``.

    A task may also define ``figures(nets) -> {name: images (n, C, H, W) in [0, 1]}`` (an RBM's
    filters): the loop writes each beside the sample grids. It is optional, so it is not part
    of the protocol's required methods.
    """

    def config(self) -> dict[str, object]: ...

    def networks(self) -> dict[str, nn.Module]: ...

    def make_optimizers(
        self, nets: Mapping[str, nn.Module]
    ) -> tuple[dict[str, torch.optim.Optimizer], dict[str, torch.optim.lr_scheduler.LRScheduler]]:
        ...

    def training_step(
        self,
        nets: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        batch: Batch,
        step: int,
        generator: torch.Generator | None,
    ) -> dict[str, Tensor]: ...

    def sample(
        self,
        nets: Mapping[str, nn.Module],
        n: int,
        generator: torch.Generator | None,
        labels: Tensor | None = None,
    ) -> Tensor: ...

    def evaluate(
        self, nets: Mapping[str, nn.Module], batch: Batch, generator: torch.Generator | None
    ) -> dict[str, float]: ...
