"""RBMs on the shared training loop: :class:`RBMTask` implements :class:`generative.task.TrainTask`.

:func:`generative.train.fit` trains an RBM through this task with everything the loop owns:
reproducible batches, checkpoints that resume exactly, NaN stops that keep the last good
checkpoint, progress bars, sample grids and periodic evaluation. Each training step estimates the
log-likelihood gradient by CD-k, PCD or PT (:mod:`generative.energy.contrastive`), writes it into
``.grad`` and steps SGD with momentum (weight decay on the weights only).

Networks the loop checkpoints:

- ``"rbm"``: the :class:`~generative.energy.rbm.RBM`;
- ``"state"``: an :class:`RBMState` without parameters whose buffers hold the persistent chains
  (PCD ``(C, D..)``, PT ``(R, C, D..)``, empty for CD) and, for Gaussian visible units, the data
  standardisation (``data_mean``, ``data_std``), so a resumed run continues the same chains
  bit for bit. The chains are drawn afresh at step 0 (``v ~ p(v | h = 0)``).

Data: a batch ``x`` of shape ``(B, *event_shape)`` (e.g. images ``(B, 1, 28, 28)``) is flattened
to the RBM's ``D`` visible units:

=======  ======================================  =============================================
kind     model                                   data
=======  ======================================  =============================================
rbm      :class:`BernoulliRBM`                   binary values (refused otherwise)
grbm     :class:`GaussianBernoulliRBM`           finite reals; standardised by the task with
                                                 :meth:`RBMTask.set_standardizer` (identity by
                                                 default)
crbm     :class:`CategoricalRBM`                 category indices ``0 .. K-1`` stored as floats
=======  ======================================  =============================================

Training terms (model units, before the step): ``recon_error`` (mean-field squared
reconstruction error per example), ``free_energy_gap`` (``mean F(data) - mean F(negative
samples)``: the surrogate loss the probability statistics descend) and, for PT, ``swap_rate``.
Evaluation (data units): ``recon_error``, ``pseudo_log_likelihood`` (per example, the sum over
all ``D`` units; not for Gaussian units), ``log_likelihood`` from the exact ``log Z`` when the
smaller layer has at most :data:`EXACT_EVAL_MAX_STATES` states, and with ``eval_ais_chains > 0``
``ais_log_z``, ``ais_log_z_se`` and ``ais_log_likelihood`` (AIS,
:func:`generative.energy.partition.ais_log_partition`, from the base rates of the first
evaluation batch; run once per set of parameter values, so the loop's evaluation batches share
one estimate). For ``grbm`` the log-likelihoods are densities of the unstandardised data
(``- sum log std``).

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.rbm_task import RBMTask
>>> from generative.train import fit
>>> x = (torch.rand(64, 1, 3, 3, generator=make_generator(0)) < 0.3).float()
>>> task = RBMTask.from_config({"kind": "rbm", "event_shape": [1, 3, 3], "num_hidden": 4,
...                             "num_chains": 8, "eval_ais_chains": 0, "sample_steps": 5})
>>> result = fit(task, x, steps=20, batch_size=16, seed=0)
>>> result.status, sorted(result.last)
('completed', ['epoch', 'free_energy_gap', 'recon_error', 'step'])
>>> task.sample(task.networks(), 4, make_generator(1)).shape
torch.Size([4, 1, 3, 3])
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from generative.checks import check_bool, check_event_shape, check_optional_generator
from generative.config_schema import DEFAULTS, TASK_KINDS, check_config
from generative.distributed import unwrap
from generative.energy.contrastive import (
    METHODS,
    STATISTICS,
    estimate_gradient,
    init_chains,
    rbm_optimizer,
    set_gradients,
)
from generative.energy.rbm import RBM, BernoulliRBM, CategoricalRBM, GaussianBernoulliRBM
from generative.energy.standardize import Standardizer
from generative.images import make_grid, write_png
from probforge.errors import ShapeError, ValidationError
from probforge.ops.random import make_generator
from probforge.validate import check_choice, check_int, check_real, check_tensor

__all__ = [
    "EXACT_EVAL_MAX_STATES",
    "RBM_DEFAULTS",
    "RBM_KINDS",
    "RBMState",
    "RBMTask",
    "filter_images",
]

#: Kind -> one-line help.
RBM_KINDS: dict[str, str] = {k: TASK_KINDS[k] for k in ("rbm", "grbm", "crbm")}

#: Kind -> complete default config (``event_shape`` comes from the data; ``crbm`` needs
#: ``num_categories``); the same dicts as :data:`generative.config_schema.DEFAULTS`.
RBM_DEFAULTS: dict[str, dict[str, Any]] = {k: DEFAULTS[k] for k in RBM_KINDS}

#: Evaluate the exact log-likelihood when the smaller layer has at most this many states.
EXACT_EVAL_MAX_STATES = 2**16


def _kind_of(rbm: RBM) -> str:
    if isinstance(rbm, GaussianBernoulliRBM):
        return "grbm"
    if isinstance(rbm, CategoricalRBM):
        return "crbm"
    return "rbm"


class RBMState(nn.Module):
    """The buffers :func:`generative.train.fit` checkpoints beside the RBM (no parameters).

    Attributes
    ----------
    chains : Tensor
        Persistent chains: PCD ``(C, *rbm.event_shape)``, PT ``(R, C, *rbm.event_shape)``, CD
        ``(0, *rbm.event_shape)``.
    data_mean, data_std : Tensor (*event_shape)
        Gaussian units only: the standardisation ``z = (x - mean) / std`` (0 and 1 until set).
    """

    chains: Tensor
    data_mean: Tensor
    data_std: Tensor

    def __init__(self, chain_shape: tuple[int, ...], data_shape: tuple[int, ...] | None,
                 dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.register_buffer("chains", torch.zeros(chain_shape, dtype=dtype, device=device))
        if data_shape is not None:
            self.register_buffer("data_mean", torch.zeros(data_shape, dtype=dtype,
                                                          device=device))
            self.register_buffer("data_std", torch.ones(data_shape, dtype=dtype,
                                                        device=device))


def _image_shape(event_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(event_shape) == 3 and event_shape[0] in (1, 3):
        return (event_shape[0], event_shape[1], event_shape[2])
    if len(event_shape) == 2:
        return (1, event_shape[0], event_shape[1])
    size = math.prod(event_shape)
    side = math.isqrt(size)
    return (1, side, side) if side * side == size else (1, 1, size)


def filter_images(rbm: RBM, event_shape: tuple[int, ...] | None = None) -> Tensor:
    """The RBM's filters as images in [0, 1], one per hidden unit, ``(M, C, H, W)``.

    Tile ``j`` is the weight column ``W[:, j]`` reshaped to the image shape (``event_shape``
    if it is ``(C, H, W)`` with ``C`` 1 or 3, ``(H, W)`` as one channel, a square ``D`` as
    ``sqrt D x sqrt D``, else a ``1 x D`` strip), scaled to [0, 1] per tile (a constant tile is
    0.5). Categorical units show ``W[:, K-1, j] - W[:, 0, j]``: the pull from the lowest to the
    highest category.

    Examples
    --------
    >>> from generative.energy.rbm import BernoulliRBM
    >>> filter_images(BernoulliRBM(16, 3)).shape
    torch.Size([3, 1, 4, 4])
    """
    if not isinstance(rbm, RBM):
        raise ValidationError("filter_images rbm", "must be an RBM", found=type(rbm).__name__)
    w = rbm.weight.detach()
    if isinstance(rbm, CategoricalRBM):
        w = w[:, -1, :] - w[:, 0, :]
    w = w.reshape(-1, rbm.num_hidden).T                                    # (M, D)
    shape = tuple(event_shape) if event_shape is not None else (w.shape[1],)
    if math.prod(shape) != w.shape[1]:
        raise ShapeError("filter_images event_shape", f"must hold the {w.shape[1]} visible "
                         "units", found=shape)
    lo = w.min(1, keepdim=True).values
    span = w.max(1, keepdim=True).values - lo
    tiles = torch.where(span > 0, (w - lo) / span.clamp_min(1e-30), torch.full_like(w, 0.5))
    return tiles.reshape(w.shape[0], *_image_shape(shape)).to(torch.float32)


def _net(nets: Any, name: str, where: str) -> nn.Module:
    if not isinstance(nets, Mapping) or not isinstance(nets.get(name), nn.Module):
        raise ValidationError(f"{where} nets", f"must map {name!r} to the task's network",
                              found=sorted(nets) if isinstance(nets, Mapping)
                              else type(nets).__name__, fix="pass task.networks()")
    return cast(nn.Module, nets[name])


def _batch_x(batch: Any, where: str) -> Tensor:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValidationError(f"{where} batch", "must be a pair (x, y) with y None when "
                              "unlabelled", found=type(batch).__name__)
    x = batch[0]
    if not isinstance(x, Tensor):
        raise ValidationError(f"{where} batch x", "must be a torch.Tensor",
                              found=type(x).__name__)
    return x


class RBMTask:
    """Train an RBM with CD-k, PCD or PT on :func:`generative.train.fit`.

    Parameters
    ----------
    rbm : RBM
        ``BernoulliRBM`` (kind "rbm"), ``GaussianBernoulliRBM`` ("grbm") or ``CategoricalRBM``
        ("crbm").
    event_shape : sequence of int, optional
        Shape of one data example (e.g. ``(1, 28, 28)``); its size must be the RBM's number of
        visible units ``D``. Default ``(D,)``.
    method : {"cd", "pcd", "pt"}
    k : int
        Gibbs steps per update (PT: rounds of one step per replica then swaps), ``>= 1``.
    statistics : {"probabilities", "samples"}
    lr, momentum, weight_decay : float
        SGD rate ``> 0``, momentum in ``[0, 1)``, L2 decay of the weights ``>= 0``.
    sparsity_target : float or None
        Target mean hidden activation in (0, 1).
    sparsity_cost : float
        ``>= 0``.
    num_chains : int
        Persistent chains (PCD; per replica for PT), ``>= 1``.
    num_replicas : int
        PT replicas at inverse temperatures ``linspace(1, 0, R)``, ``>= 2``.
    eval_ais_chains : int
        AIS chains at evaluation (0: no AIS), ``>= 0``.
    eval_ais_temperatures : int
        AIS intermediate distributions, ``>= 1``.
    sample_steps : int
        Block-Gibbs steps of the sample grids' chains, ``>= 1``.
    seed : int
        Seed of the initial weights (recorded in :meth:`config`, used by :meth:`from_config`).
    weight_std : float
        Initial weight scale (recorded in :meth:`config`).
    standardizer : Standardizer, optional
        Gaussian units: the data standardisation (see :meth:`set_standardizer`).
    """

    def __init__(self, rbm: RBM, *, event_shape: Any = None, method: str = "pcd", k: int = 1,
                 statistics: str = "probabilities", lr: float = 0.05, momentum: float = 0.5,
                 weight_decay: float = 1e-4, sparsity_target: float | None = None,
                 sparsity_cost: float = 0.0, num_chains: int = 100, num_replicas: int = 5,
                 eval_ais_chains: int = 100, eval_ais_temperatures: int = 1000,
                 sample_steps: int = 1000, seed: int = 0, weight_std: float = 0.01,
                 standardizer: Standardizer | None = None) -> None:
        if not isinstance(rbm, RBM):
            raise ValidationError("RBMTask rbm", "must be a BernoulliRBM, GaussianBernoulliRBM "
                                  "or CategoricalRBM", found=type(rbm).__name__)
        self.rbm = rbm
        self._kind = _kind_of(rbm)
        d = rbm.num_visible
        shape = (d,) if event_shape is None else check_event_shape(event_shape,
                                                                   "RBMTask event_shape")
        if math.prod(shape) != d:
            raise ShapeError("RBMTask event_shape", f"must hold the RBM's {d} visible units",
                             found=shape, fix=f"build the RBM with {math.prod(shape)} visible "
                             "units, or pass the data's event shape")
        self.event_shape: tuple[int, ...] = shape
        self.method = str(check_choice(method, "RBMTask method", METHODS))
        self.k = check_int(k, "RBMTask k", minimum=1)
        self.statistics = str(check_choice(statistics, "RBMTask statistics", STATISTICS))
        self.lr = check_real(lr, "RBMTask lr", minimum=0.0, strict_minimum=True)
        self.momentum = check_real(momentum, "RBMTask momentum", minimum=0.0, maximum=1.0,
                                   strict_maximum=True)
        self.weight_decay = check_real(weight_decay, "RBMTask weight_decay", minimum=0.0)
        self.sparsity_target = None if sparsity_target is None else check_real(
            sparsity_target, "RBMTask sparsity_target", minimum=0.0, maximum=1.0,
            strict_minimum=True, strict_maximum=True)
        self.sparsity_cost = check_real(sparsity_cost, "RBMTask sparsity_cost", minimum=0.0)
        self.num_chains = check_int(num_chains, "RBMTask num_chains", minimum=1)
        self.num_replicas = check_int(num_replicas, "RBMTask num_replicas", minimum=2)
        self.eval_ais_chains = check_int(eval_ais_chains, "RBMTask eval_ais_chains", minimum=0)
        self.eval_ais_temperatures = check_int(eval_ais_temperatures,
                                               "RBMTask eval_ais_temperatures", minimum=1)
        self.sample_steps = check_int(sample_steps, "RBMTask sample_steps", minimum=1)
        self.seed = check_int(seed, "RBMTask seed", minimum=0)
        self.weight_std = check_real(weight_std, "RBMTask weight_std", minimum=0.0)
        ev = rbm.event_shape
        if self.method == "pcd":
            chain_shape: tuple[int, ...] = (self.num_chains, *ev)
        elif self.method == "pt":
            chain_shape = (self.num_replicas, self.num_chains, *ev)
        else:
            chain_shape = (0, *ev)
        p = rbm.weight
        self.state = RBMState(chain_shape, shape if self._kind == "grbm" else None, p.dtype,
                              p.device)
        self._cache: dict[str, tuple[list[Tensor], Any]] = {}
        if standardizer is not None:
            self.set_standardizer(standardizer)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def default_config(kind: str) -> dict[str, Any]:
        """The complete default config of ``kind`` ("rbm", "grbm" or "crbm")."""
        check_choice(kind, "RBMTask kind", tuple(RBM_DEFAULTS))
        return {"kind": kind, **RBM_DEFAULTS[kind]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RBMTask:
        """Build an untrained task from a config (missing keys take the kind's defaults).

        The RBM has ``prod(event_shape)`` visible units, float32 parameters on the CPU (the
        training loop moves them to the data's device and dtype) and initial weights
        ``N(0, weight_std^2)`` drawn from a generator seeded with ``seed``.

        Raises
        ------
        ValidationError
            Unknown kind or key, missing ``event_shape`` (or ``num_categories`` for "crbm"),
            values of the wrong type or range.
        """
        if not isinstance(config, Mapping):
            raise ValidationError("RBM task config", "must be a dict",
                                  found=type(config).__name__)
        kind = check_choice(config.get("kind"), "RBM task config 'kind'", tuple(RBM_DEFAULTS))
        defaults = RBM_DEFAULTS[kind]
        check_config(kind, config)  # unknown keys, types and ranges, named
        p = {**defaults, **{k: v for k, v in config.items() if k != "kind"}}
        if p["event_shape"] is None:
            raise ValidationError(f"task config of kind '{kind}'", "'event_shape' is required",
                                  fix="give the data's event shape, e.g. [1, 28, 28] or [64]")
        shape = check_event_shape(p.pop("event_shape"), f"task config of kind '{kind}' "
                                  "event_shape")
        d = math.prod(shape)
        seed = check_int(p.pop("seed"), f"task config of kind '{kind}' seed", minimum=0)
        weight_std = check_real(p.pop("weight_std"), f"task config of kind '{kind}' weight_std",
                                minimum=0.0)
        num_hidden = p.pop("num_hidden")
        g = make_generator(seed)
        rbm: RBM
        if kind == "rbm":
            rbm = BernoulliRBM(d, num_hidden, weight_std=weight_std, generator=g)
        elif kind == "grbm":
            rbm = GaussianBernoulliRBM(d, num_hidden, learn_sigma=check_bool(
                p.pop("learn_sigma"), "task config of kind 'grbm' learn_sigma"),
                min_sigma=p.pop("min_sigma"), weight_std=weight_std, generator=g)
        else:
            k = p.pop("num_categories")
            if k is None:
                raise ValidationError("task config of kind 'crbm'", "'num_categories' is "
                                      "required", fix="give K, the number of values per unit")
            rbm = CategoricalRBM(d, k, num_hidden, weight_std=weight_std, generator=g)
        return cls(rbm, event_shape=shape, seed=seed, weight_std=weight_std, **p)

    def kind(self) -> str:
        """Registry kind: "rbm", "grbm" or "crbm"."""
        return self._kind

    def config(self) -> dict[str, object]:
        """Every key of the kind's config (JSON-able); ``from_config`` rebuilds from it."""
        rbm = self.rbm
        cfg: dict[str, object] = {
            "kind": self._kind, "event_shape": list(self.event_shape),
            "num_hidden": rbm.num_hidden, "weight_std": self.weight_std, "seed": self.seed,
            "method": self.method, "k": self.k, "statistics": self.statistics, "lr": self.lr,
            "momentum": self.momentum, "weight_decay": self.weight_decay,
            "sparsity_target": self.sparsity_target, "sparsity_cost": self.sparsity_cost,
            "num_chains": self.num_chains, "num_replicas": self.num_replicas,
            "eval_ais_chains": self.eval_ais_chains,
            "eval_ais_temperatures": self.eval_ais_temperatures,
            "sample_steps": self.sample_steps,
        }
        if isinstance(rbm, GaussianBernoulliRBM):
            cfg.update(learn_sigma=rbm.learn_sigma, min_sigma=rbm.min_sigma)
        if isinstance(rbm, CategoricalRBM):
            cfg["num_categories"] = rbm.num_categories
        return cfg

    def set_standardizer(self, standardizer: Standardizer) -> None:
        """Gaussian units: train on ``(x - mean) / std`` of this map (data ``x`` stay raw).

        Samples are mapped back (:meth:`Standardizer.inverse`) and evaluated log-likelihoods
        are densities of ``x``. The map lives in the ``"state"`` network's buffers, so it is
        checkpointed with the model.
        """
        if self._kind != "grbm":
            raise ValidationError("RBMTask.set_standardizer", "only Gaussian visible units are "
                                  "standardised", found=self._kind,
                                  fix="train binary or categorical data as they are")
        if not isinstance(standardizer, Standardizer):
            raise ValidationError("RBMTask.set_standardizer standardizer", "must be a "
                                  "generative.energy.standardize.Standardizer",
                                  found=type(standardizer).__name__,
                                  fix="z, st = standardize(x); task.set_standardizer(st)")
        if standardizer.event_shape != self.event_shape:
            raise ShapeError("RBMTask.set_standardizer standardizer", "must have the data's "
                             f"event shape {self.event_shape}",
                             found=standardizer.event_shape)
        with torch.no_grad():
            self.state.data_mean.copy_(standardizer.mean)
            self.state.data_std.copy_(standardizer.std)

    # ------------------------------------------------------------------ TrainTask
    def networks(self) -> dict[str, nn.Module]:
        return {"rbm": self.rbm, "state": self.state}

    def make_optimizers(self, nets: Mapping[str, nn.Module]
                        ) -> tuple[dict[str, torch.optim.Optimizer],
                                   dict[str, torch.optim.lr_scheduler.LRScheduler]]:
        rbm = self._rbm(nets, "RBMTask.make_optimizers")
        return {"rbm": rbm_optimizer(rbm, lr=self.lr, momentum=self.momentum,
                                     weight_decay=self.weight_decay)}, {}

    def _rbm(self, nets: Any, where: str) -> RBM:
        rbm = unwrap(_net(nets, "rbm", where))
        if not isinstance(rbm, type(self.rbm)) or rbm.event_shape != self.rbm.event_shape \
                or rbm.num_hidden != self.rbm.num_hidden:
            raise ValidationError(f"{where} nets['rbm']", "must be the task's RBM (or one of "
                                  "its kind and size)", found=type(rbm).__name__,
                                  fix="pass task.networks()")
        return rbm

    def _state(self, nets: Any, where: str) -> RBMState:
        state = _net(nets, "state", where)
        if not isinstance(state, RBMState):
            raise ValidationError(f"{where} nets['state']", "must be the task's RBMState",
                                  found=type(state).__name__, fix="pass task.networks()")
        return state

    def _visible(self, x: Tensor, rbm: RBM, state: RBMState, where: str) -> Tensor:
        """Data batch -> the RBM's visible rows (flattened, standardised, one-hot); checks
        the shape, dtype and device, and the values (one host synchronisation)."""
        name = f"{where} x"
        x = check_tensor(x, name, floating=True)
        if x.dim() != len(self.event_shape) + 1 or tuple(x.shape[1:]) != self.event_shape \
                or x.shape[0] < 1:
            raise ShapeError(name, f"must have shape (B, {', '.join(map(str, self.event_shape))})"
                             " with B >= 1", found=tuple(x.shape),
                             fix=f"the task was built for data of event shape {self.event_shape}")
        flat = x.reshape(x.shape[0], -1)
        if isinstance(rbm, GaussianBernoulliRBM):
            rbm.check_visible(flat, name)          # finite, dtype, device
            return (flat - state.data_mean.reshape(-1)) / state.data_std.reshape(-1)
        if isinstance(rbm, CategoricalRBM):
            k = rbm.num_categories
            bad = (flat != flat.round()) | (flat < 0) | (flat > k - 1) | ~torch.isfinite(flat)
            if bool(bad.any()):
                raise ValidationError(name, f"categorical data must be whole numbers in "
                                      f"[0, {k - 1}]", found=sorted(set(flat[bad][:5].tolist())),
                                      fix="pass category indices as floats")
            v = F.one_hot(flat.long(), k).to(rbm.weight.dtype)
            if flat.dtype != rbm.weight.dtype or flat.device != rbm.weight.device:
                rbm.check_visible(v.to(flat), name)  # names the dtype / device mismatch
            return v
        return rbm.check_visible(flat, name)

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Any, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        where = "RBMTask.training_step"
        net = _net(nets, "rbm", where)
        rbm = self._rbm(nets, where)
        state = self._state(nets, where)
        opt = optimizers.get("rbm") if isinstance(optimizers, Mapping) else None
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValidationError(f"{where} optimizers", "must map 'rbm' to an optimiser",
                                  found=type(optimizers).__name__,
                                  fix="pass the first element of task.make_optimizers(nets)")
        check_int(step, f"{where} step", minimum=0)
        g = check_optional_generator(generator, f"{where} generator", rbm.weight.device)
        net.train()
        v = self._visible(_batch_x(batch, where), rbm, state, where)
        chains = None
        if self.method != "cd":
            # fresh chains at a run's first step; later steps (and resumed runs) use the buffer.
            # PT's ladder is default_betas(R) of the chains' R = num_replicas.
            chains = init_chains(rbm, self.num_chains, num_replicas=self.num_replicas
                                 if self.method == "pt" else None, generator=g) \
                if step == 0 else state.chains
        est = estimate_gradient(rbm, v, method=self.method, k=self.k,
                                statistics=self.statistics, chains=chains,
                                sparsity_target=self.sparsity_target,
                                sparsity_cost=self.sparsity_cost, check_values=False,
                                generator=g)
        with torch.no_grad():
            terms = self._terms(rbm, v, est.positive_logits, est.negative, est.negative_logits)
        opt.zero_grad(set_to_none=True)
        set_gradients(rbm, est.ascent, penalty=est.penalty)
        if net is not rbm and dist.is_available() and dist.is_initialized():
            # the statistics bypass autograd, so DDP's hooks never see them: average by hand
            world = dist.get_world_size()
            for p in rbm.parameters():
                assert p.grad is not None
                dist.all_reduce(p.grad)
                p.grad.div_(world)
        opt.step()
        if est.chains is not None:
            with torch.no_grad():
                state.chains.copy_(est.chains)
        if est.swap_rate is not None:
            terms["swap_rate"] = est.swap_rate
        return {k: t.detach() for k, t in terms.items()}

    @staticmethod
    def _terms(rbm: RBM, v: Tensor, x0: Tensor, vn: Tensor, xn: Tensor) -> dict[str, Tensor]:
        p0 = torch.sigmoid(x0)
        recon = rbm.visible_mean_given(None, rbm.visible_input(p0))
        err = (v - recon).pow(2).reshape(v.shape[0], -1).sum(-1).mean()
        f0 = -(rbm.visible_term(v) + F.softplus(x0).sum(-1))
        fn = -(rbm.visible_term(vn) + F.softplus(xn).sum(-1))
        return {"recon_error": err, "free_energy_gap": f0.mean() - fn.mean()}

    def _to_data(self, mean: Tensor, rbm: RBM, state: RBMState) -> Tensor:
        """Visible means -> data units, shaped like the data (images clamped to [0, 1])."""
        if isinstance(rbm, CategoricalRBM):
            levels = torch.arange(rbm.num_categories, dtype=mean.dtype, device=mean.device)
            flat = (mean * levels).sum(-1) / (rbm.num_categories - 1)
        elif isinstance(rbm, GaussianBernoulliRBM):
            flat = mean * state.data_std.reshape(-1) + state.data_mean.reshape(-1)
        else:
            flat = mean
        out = flat.reshape(mean.shape[0], *self.event_shape)
        # Gaussian means of image data can leave [0, 1]; binary and categorical ones cannot
        if len(self.event_shape) == 3 and isinstance(rbm, GaussianBernoulliRBM):
            return out.clamp(0.0, 1.0)
        return out

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        """``n`` visible means after ``sample_steps`` block-Gibbs steps from random starts,
        in data units and shape ``(n, *event_shape)`` (images in [0, 1])."""
        where = "RBMTask.sample"
        n = check_int(n, f"{where} n", minimum=1)
        if labels is not None:
            raise ValidationError(f"{where} labels", "an RBM is unconditional",
                                  found=type(labels).__name__, fix="pass labels=None")
        rbm = self._rbm(nets, where)
        state = self._state(nets, where)
        g = check_optional_generator(generator, f"{where} generator", rbm.weight.device)
        with torch.no_grad():
            _, h = rbm.sample(n, self.sample_steps, generator=g)
            mean = rbm.visible_mean_given(None, rbm.visible_input(h))
            return self._to_data(mean, rbm, state)

    def figures(self, nets: Mapping[str, nn.Module]) -> dict[str, Tensor]:
        """``{"filters": filter_images(rbm)}`` for the loop's picture files."""
        rbm = self._rbm(nets, "RBMTask.figures")
        return {"filters": filter_images(rbm, self.event_shape)}

    def save_filters(self, path: str | os.PathLike[str], nets: Mapping[str, nn.Module] | None
                     = None, *, nrow: int | None = None) -> None:
        """Write the filters (:func:`filter_images`) as a PNG grid, atomically."""
        rbm = self._rbm(nets if nets is not None else self.networks(), "RBMTask.save_filters")
        write_png(path, make_grid(filter_images(rbm, self.event_shape), nrow=nrow))

    # ------------------------------------------------------------------ evaluation
    def _cached(self, key: str, rbm: RBM, compute: Any) -> Any:
        """``compute()`` once per parameter values (the loop evaluates batch by batch)."""
        now = [t.detach() for t in (*rbm.parameters(), *rbm.buffers())]
        hit = self._cache.get(key)
        if hit is not None and len(hit[0]) == len(now) and all(
                a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
                and torch.equal(a, b) for a, b in zip(hit[0], now, strict=True)):
            return hit[1]
        value = compute()
        self._cache[key] = ([t.clone() for t in now], value)
        return value

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Any,
                 generator: torch.Generator | None) -> dict[str, float]:
        """Figures on a held-out batch (see the module docstring), per example."""
        where = "RBMTask.evaluate"
        rbm = self._rbm(nets, where)
        state = self._state(nets, where)
        g = check_optional_generator(generator, f"{where} generator", rbm.weight.device)
        v = self._visible(_batch_x(batch, where), rbm, state, where)
        log_det = 0.0
        if isinstance(rbm, GaussianBernoulliRBM):
            log_det = float(state.data_std.log().sum())
        with torch.no_grad():
            p = rbm.hidden_probs(v)
            recon = rbm.visible_mean_given(None, rbm.visible_input(p))
            sq = (v - recon).pow(2).reshape(v.shape[0], -1)
            if isinstance(rbm, GaussianBernoulliRBM):
                sq = sq * state.data_std.reshape(1, -1).pow(2)
            out = {"recon_error": float(sq.sum(-1).mean())}
            if not isinstance(rbm, GaussianBernoulliRBM):
                out["pseudo_log_likelihood"] = float(rbm.pseudo_log_likelihood(v).mean())
            neg_f = -rbm.free_energy(v)
            hidden_states = 2.0 ** rbm.num_hidden
            visible_states = float(rbm.num_visible_states) ** rbm.num_visible \
                if rbm.num_visible_states else math.inf
            if min(hidden_states, visible_states) <= EXACT_EVAL_MAX_STATES:
                log_z = self._cached("exact", rbm, lambda: float(rbm.exact_log_partition()))
                out["log_likelihood"] = float(neg_f.mean()) - log_z - log_det
            if self.eval_ais_chains > 0:
                from generative.energy.partition import ais_log_partition

                def ais() -> tuple[float, float]:
                    res = ais_log_partition(rbm, data=v, num_chains=self.eval_ais_chains,
                                            num_temperatures=self.eval_ais_temperatures,
                                            generator=g)
                    return res.log_z, res.log_z_se

                log_z_ais, se = self._cached("ais", rbm, ais)
                out.update(ais_log_z=log_z_ais, ais_log_z_se=se,
                           ais_log_likelihood=float(neg_f.mean()) - log_z_ais - log_det)
        return out

