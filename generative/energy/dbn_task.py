"""Greedy layer-wise DBN pre-training on the shared training loop (``probforge train dbn``).

:class:`DBNTask` runs Algorithm 12.2 / DL7 Algorithm 7.1 (Hinton et al. 2006) inside
:func:`generative.train.fit`, so a DBN gets the loop's progress bar, sample grids, filters of the
bottom layer, checkpoints and exact resume: training step ``s`` updates layer
``l = min(s // steps_per_layer, L - 1)`` (counted from the bottom) with CD-k, PCD or PT
(:func:`generative.energy.contrastive.estimate_gradient`) on the minibatch pushed up through the
layers below it (their mean-field probabilities, or binary samples, as ``propagate`` says). Run
at least ``L * steps_per_layer`` steps; further steps keep training the top layer. Every layer
has its own SGD optimiser (momentum, weight decay on the weights) and, for PCD / PT, its own
persistent chains, kept in the ``"state"`` network's buffers so they are checkpointed.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.dbn_task import DBNTask
>>> task = DBNTask.from_config({"kind": "dbn", "event_shape": [1, 3, 3], "hidden": [4, 2],
...                             "steps_per_layer": 2, "sample_steps": 5})
>>> nets = task.networks()
>>> opts, _ = task.make_optimizers(nets)
>>> x = (torch.rand(8, 1, 3, 3, generator=make_generator(0)) > 0.5).float()
>>> sorted(task.training_step(nets, opts, (x, None), 3, make_generator(1)))
['layer', 'recon_error']
>>> task.sample(nets, 2, make_generator(2)).shape
torch.Size([2, 1, 3, 3])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from generative.checks import check_event_shape, check_optional_generator
from generative.config_schema import DEFAULTS, check_config
from generative.distributed import unwrap
from generative.energy.contrastive import (
    METHODS,
    STATISTICS,
    estimate_gradient,
    init_chains,
    rbm_optimizer,
    set_gradients,
)
from generative.energy.dbn import DBN
from generative.energy.rbm import RBM
from generative.energy.rbm_task import filter_images
from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import make_generator
from probforge.validate import check_choice, check_int, check_real, check_tensor

__all__ = ["DBNState", "DBNTask"]

_PROPAGATE = ("probabilities", "samples")


class DBNState(nn.Module):
    """Persistent chains of every layer (buffers ``chains0``, ``chains1``, ...; no parameters)."""

    def __init__(self, shapes: list[tuple[int, ...]], dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        for i, shape in enumerate(shapes):
            self.register_buffer(f"chains{i}", torch.zeros(shape, dtype=dtype, device=device))

    def chains(self, layer: int) -> Tensor:
        """The persistent chains of ``layer`` (0 = bottom)."""
        return cast(Tensor, getattr(self, f"chains{layer}"))


class DBNTask:
    """Train a DBN greedily, layer by layer, with :func:`generative.train.fit`.

    Parameters
    ----------
    dbn : DBN
        Bernoulli bottom layer (binary data).
    event_shape : sequence of int
        Shape of one data example; its size is the bottom layer's visible units.
    steps_per_layer : int
        Training steps given to each layer before the next one starts (>= 1).
    propagate : {"probabilities", "samples"}
        What the layers below hand up: mean-field ``p(h = 1 | v)`` or binary samples.
    method, k, statistics, lr, momentum, weight_decay, num_chains, num_replicas
        As for :class:`generative.energy.rbm_task.RBMTask`, the same for every layer.
    sample_steps : int
        Top-level block-Gibbs steps of the sample grids' chains.
    seed, weight_std
        Recorded in :meth:`config` (the initial weights' seed and scale).
    """

    def __init__(self, dbn: DBN, *, event_shape: Any, steps_per_layer: int = 1000,
                 propagate: str = "probabilities", method: str = "cd", k: int = 1,
                 statistics: str = "probabilities", lr: float = 0.05, momentum: float = 0.5,
                 weight_decay: float = 1e-4, num_chains: int = 100, num_replicas: int = 5,
                 sample_steps: int = 1000, seed: int = 0, weight_std: float = 0.01) -> None:
        if not isinstance(dbn, DBN):
            raise ValidationError("DBNTask dbn", "must be a generative.energy.dbn.DBN",
                                  found=type(dbn).__name__)
        if dbn.visible_kind != "bernoulli":
            raise ValidationError("DBNTask dbn", "needs a Bernoulli bottom layer (binary data)",
                                  found=dbn.visible_kind,
                                  fix="pre-train Gaussian-bottom DBNs with pretrain_dbn")
        self.dbn = dbn
        shape = check_event_shape(event_shape, "DBNTask event_shape")
        if math.prod(shape) != dbn.layer_sizes[0]:
            raise ShapeError("DBNTask event_shape", f"must hold the DBN's {dbn.layer_sizes[0]} "
                             "visible units", found=shape)
        self.event_shape: tuple[int, ...] = shape
        self.steps_per_layer = check_int(steps_per_layer, "DBNTask steps_per_layer", minimum=1)
        self.propagate = str(check_choice(propagate, "DBNTask propagate", _PROPAGATE))
        self.method = str(check_choice(method, "DBNTask method", METHODS))
        self.k = check_int(k, "DBNTask k", minimum=1)
        self.statistics = str(check_choice(statistics, "DBNTask statistics", STATISTICS))
        self.lr = check_real(lr, "DBNTask lr", minimum=0.0, strict_minimum=True)
        self.momentum = check_real(momentum, "DBNTask momentum", minimum=0.0, maximum=1.0,
                                   strict_maximum=True)
        self.weight_decay = check_real(weight_decay, "DBNTask weight_decay", minimum=0.0)
        self.num_chains = check_int(num_chains, "DBNTask num_chains", minimum=1)
        self.num_replicas = check_int(num_replicas, "DBNTask num_replicas", minimum=2)
        self.sample_steps = check_int(sample_steps, "DBNTask sample_steps", minimum=1)
        self.seed = check_int(seed, "DBNTask seed", minimum=0)
        self.weight_std = check_real(weight_std, "DBNTask weight_std", minimum=0.0)
        shapes: list[tuple[int, ...]] = []
        for rbm in dbn.rbms:
            ev = cast(RBM, rbm).event_shape
            if self.method == "pcd":
                shapes.append((self.num_chains, *ev))
            elif self.method == "pt":
                shapes.append((self.num_replicas, self.num_chains, *ev))
            else:
                shapes.append((0, *ev))
        w = cast(RBM, dbn.rbms[0]).weight
        self.state = DBNState(shapes, w.dtype, w.device)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DBNTask:
        """Build an untrained task from a config of kind ``"dbn"`` (missing keys: defaults).

        ``hidden`` lists the hidden layer sizes from the bottom (``[500, 500]``); the visible
        layer has ``prod(event_shape)`` units. Initial weights ``N(0, weight_std^2)`` come from a
        generator seeded with ``seed``.
        """
        if not isinstance(config, Mapping):
            raise ValidationError("DBN task config", "must be a dict", found=type(config).__name__)
        check_config("dbn", config)
        p = {**DEFAULTS["dbn"], **{k: v for k, v in config.items() if k != "kind"}}
        if p["event_shape"] is None:
            raise ValidationError("task config of kind 'dbn'", "'event_shape' is required",
                                  fix="give the data's event shape, e.g. [1, 28, 28]")
        shape = check_event_shape(p.pop("event_shape"), "task config of kind 'dbn' event_shape")
        hidden = [int(h) for h in p.pop("hidden")]
        if not hidden:
            raise ValidationError("task config of kind 'dbn'", "'hidden' needs at least one "
                                  "layer size", found=hidden, fix="e.g. hidden=[500,500]")
        dbn = DBN.from_layer_sizes([math.prod(shape), *hidden], weight_std=p["weight_std"],
                                   generator=make_generator(p["seed"]))
        return cls(dbn, event_shape=shape, **p)

    def kind(self) -> str:
        """Registry kind: ``"dbn"``."""
        return "dbn"

    def config(self) -> dict[str, object]:
        """Every key of the ``"dbn"`` config (JSON-able); :meth:`from_config` rebuilds from it."""
        return {
            "kind": "dbn", "event_shape": list(self.event_shape),
            "hidden": list(self.dbn.layer_sizes[1:]), "steps_per_layer": self.steps_per_layer,
            "propagate": self.propagate, "method": self.method, "k": self.k,
            "statistics": self.statistics, "lr": self.lr, "momentum": self.momentum,
            "weight_decay": self.weight_decay, "num_chains": self.num_chains,
            "num_replicas": self.num_replicas, "sample_steps": self.sample_steps,
            "seed": self.seed, "weight_std": self.weight_std,
        }

    # ------------------------------------------------------------------ TrainTask
    def networks(self) -> dict[str, nn.Module]:
        return {"dbn": self.dbn, "state": self.state}

    def make_optimizers(self, nets: Mapping[str, nn.Module]
                        ) -> tuple[dict[str, torch.optim.Optimizer],
                                   dict[str, torch.optim.lr_scheduler.LRScheduler]]:
        dbn = self._dbn(nets, "DBNTask.make_optimizers")
        return {f"layer{i}": rbm_optimizer(cast(RBM, rbm), lr=self.lr, momentum=self.momentum,
                                           weight_decay=self.weight_decay)
                for i, rbm in enumerate(dbn.rbms)}, {}

    def _dbn(self, nets: Any, where: str) -> DBN:
        net = nets.get("dbn") if isinstance(nets, Mapping) else None
        dbn = unwrap(net) if isinstance(net, nn.Module) else None
        if not isinstance(dbn, DBN) or dbn.layer_sizes != self.dbn.layer_sizes:
            raise ValidationError(f"{where} nets", "must map 'dbn' to the task's DBN",
                                  found=type(dbn).__name__, fix="pass task.networks()")
        return dbn

    def _state(self, nets: Any, where: str) -> DBNState:
        state = nets.get("state") if isinstance(nets, Mapping) else None
        if not isinstance(state, DBNState):
            raise ValidationError(f"{where} nets", "must map 'state' to the task's DBNState",
                                  found=type(state).__name__, fix="pass task.networks()")
        return state

    def _flat(self, batch: Any, dbn: DBN, where: str) -> Tensor:
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValidationError(f"{where} batch", "must be a pair (x, y)",
                                  found=type(batch).__name__)
        x = check_tensor(batch[0], f"{where} x", floating=True)
        if x.dim() != len(self.event_shape) + 1 or tuple(x.shape[1:]) != self.event_shape:
            shape = ", ".join(map(str, self.event_shape))
            raise ShapeError(f"{where} x", f"must have shape (B, {shape})", found=tuple(x.shape))
        return dbn.check_data(x.reshape(x.shape[0], -1), f"{where} x")

    def layer_at(self, step: int) -> int:
        """The layer (0 = bottom) that training step ``step`` (0-based) updates."""
        step = check_int(step, "DBNTask.layer_at step", minimum=0)
        return min(step // self.steps_per_layer, len(self.dbn.rbms) - 1)

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Any, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        where = "DBNTask.training_step"
        dbn = self._dbn(nets, where)
        state = self._state(nets, where)
        layer = self.layer_at(step)
        opt = optimizers.get(f"layer{layer}") if isinstance(optimizers, Mapping) else None
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValidationError(f"{where} optimizers", f"must map 'layer{layer}' to an "
                                  "optimiser", fix="pass task.make_optimizers(nets)[0]")
        dev = cast(RBM, dbn.rbms[0]).weight.device
        g = check_optional_generator(generator, f"{where} generator", dev)
        v = self._flat(batch, dbn, where)
        with torch.no_grad():
            for below in dbn.rbms[:layer]:
                rbm_below = cast(RBM, below)
                p = torch.sigmoid(rbm_below.hidden_input(v) + rbm_below.hidden_bias)
                v = p if self.propagate == "probabilities" else torch.bernoulli(p, generator=g)
        rbm = cast(RBM, dbn.rbms[layer])
        chains = None
        if self.method != "cd":
            fresh = step == layer * self.steps_per_layer
            chains = init_chains(rbm, self.num_chains, num_replicas=self.num_replicas
                                 if self.method == "pt" else None, generator=g) \
                if fresh else state.chains(layer)
        est = estimate_gradient(rbm, v, method=self.method, k=self.k,
                                statistics=self.statistics, chains=chains, check_values=False,
                                generator=g)
        opt.zero_grad(set_to_none=True)
        set_gradients(rbm, est.ascent, penalty=est.penalty)
        opt.step()
        with torch.no_grad():
            if est.chains is not None:
                state.chains(layer).copy_(est.chains)
            p0 = torch.sigmoid(est.positive_logits)
            recon = rbm.visible_mean_given(None, rbm.visible_input(p0))
            err = (v - recon).pow(2).sum(-1).mean()
        return {"layer": torch.tensor(float(layer), dtype=err.dtype), "recon_error": err}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        """``n`` visible means: top-level Gibbs (``sample_steps``), then one down pass."""
        where = "DBNTask.sample"
        n = check_int(n, f"{where} n", minimum=1)
        if labels is not None:
            raise ValidationError(f"{where} labels", "a DBN is unconditional here",
                                  found=type(labels).__name__, fix="pass labels=None")
        dbn = self._dbn(nets, where)
        with torch.no_grad():
            x = dbn.sample(n, self.sample_steps, generator=generator, mean_visible=True)
        return x.reshape(n, *self.event_shape)

    def figures(self, nets: Mapping[str, nn.Module]) -> dict[str, Tensor]:
        """``{"filters": the bottom layer's filters}``."""
        dbn = self._dbn(nets, "DBNTask.figures")
        return {"filters": filter_images(cast(RBM, dbn.rbms[0]), self.event_shape)}

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Any,
                 generator: torch.Generator | None) -> dict[str, float]:
        """Per-layer mean-field reconstruction error on a held-out batch (``recon_error_1``..)."""
        where = "DBNTask.evaluate"
        dbn = self._dbn(nets, where)
        v = self._flat(batch, dbn, where)
        out: dict[str, float] = {}
        with torch.no_grad():
            for i, layer in enumerate(dbn.rbms):
                rbm = cast(RBM, layer)
                p = torch.sigmoid(rbm.hidden_input(v) + rbm.hidden_bias)
                recon = rbm.visible_mean_given(None, rbm.visible_input(p))
                out[f"recon_error_{i + 1}"] = float((v - recon).pow(2).sum(-1).mean())
                v = p
        return out
