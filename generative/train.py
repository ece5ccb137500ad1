"""One training loop for every deep generative model: :func:`fit`.

:func:`fit` trains a :class:`~generative.task.TrainTask` on a :class:`~generative.data.Dataset`
for a number of steps or epochs and owns everything around the model's own optimisation step:

- **data order**: a :class:`~generative.data.BatchStream` seeded from ``seed``; reproducible and
  resumable mid-epoch;
- **randomness**: the task draws from a training generator seeded from ``(seed, rank)``; torch's
  global RNG (which ``nn.Dropout`` and other generator-less layers use) is seeded from the same
  pair for the run and restored to the caller's state afterwards; evaluation and sample grids use
  their own generators (the same sample noise at every grid) inside ``torch.random.fork_rng``,
  so they never perturb training;
- **logs**: every step's loss terms (``train.csv``), periodic evaluation (``eval.csv``), both in
  ``metrics.json`` with the run's configuration and status, rewritten atomically at each
  checkpoint and at the end; a tqdm progress bar with ``progress=True``;
- **sample grids**: ``samples/step_0000100.png`` every ``sample_every`` steps (a grid for images,
  a scatter picture with the mode centres for 2-D toys); a task with a ``figures(nets)`` method
  returning ``{name: images (n, C, H, W) in [0, 1]}`` (an RBM's filters) also gets
  ``samples/<name>_step_0000100.png``;
- **checkpoints**: ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, written
  atomically (:mod:`generative.checkpoint`), holding the task's configuration, networks,
  optimisers, schedulers, step, data position and RNG states; ``resume=True`` continues exactly
  (the same losses and parameters as an uninterrupted run, bit for bit on CPU);
- **non-finite losses**: the first NaN or infinite loss term stops training with a
  :class:`~probforge.errors.ConvergenceError` naming the step and the term (or, with
  ``on_nonfinite="stop"``, a result whose ``status`` is ``"nonfinite"``); nothing is written
  after the last good checkpoint, which stays untouched;
- **data parallelism**: under ``torchrun`` (or an initialised process group) every rank trains on
  its own shard with its own generator, gradients are averaged by
  ``DistributedDataParallel`` (see :mod:`generative.distributed`), logged losses are averaged
  over ranks, and only rank 0 writes files.

Loss values are copied to the host every ``log_every`` steps (one synchronisation for several
steps); the history still holds every step.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from generative.data import Dataset
>>> from generative.train import fit
>>> class Line:  # a minimal TrainTask: least squares y = w x
...     def __init__(self): self.net = nn.Linear(1, 1)
...     def config(self): return {"kind": "line"}
...     def networks(self): return {"net": self.net}
...     def make_optimizers(self, nets):
...         return {"sgd": torch.optim.SGD(nets["net"].parameters(), lr=0.1)}, {}
...     def training_step(self, nets, opts, batch, step, generator):
...         x, y = batch[0][:, :1], batch[0][:, 1:]
...         loss = ((nets["net"](x) - y) ** 2).mean()
...         opts["sgd"].zero_grad(); loss.backward(); opts["sgd"].step()
...         return {"loss": loss.detach()}
...     def sample(self, nets, n, generator, labels=None): return torch.zeros(n, 2)
...     def evaluate(self, nets, batch, generator): return {}
>>> x = torch.linspace(-1, 1, 64)[:, None]
>>> result = fit(Line(), Dataset.from_tensors(torch.cat([x, 3 * x], 1)), steps=200,
...              batch_size=16, seed=0)
>>> result.status, result.step, result.history[-1]["loss"] < 1e-3
('completed', 200, True)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

import probforge
from generative import distributed as gdist
from generative.checkpoint import (
    check_training_checkpoint,
    load_checkpoint,
    load_networks,
    load_states,
    save_checkpoint,
)
from generative.checks import check_bool, check_float_dtype, check_optional_generator
from generative.data.dataset import Dataset
from generative.data.loader import BatchStream, derive_seed
from generative.images import save_samples, write_bytes_atomic
from generative.task import TrainTask
from probforge.errors import (
    CheckpointError,
    ConvergenceError,
    DtypeMismatchError,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import random_seed
from probforge.validate import check_choice, check_device, check_finite, check_int

__all__ = ["CHECKPOINT_NAME", "FitResult", "NonFiniteLoss", "fit"]

#: File name of the latest checkpoint inside ``out_dir``.
CHECKPOINT_NAME = "checkpoint.pt"

# Stream ids for derive_seed(seed, id, ...): one independent generator per purpose.
_DATA, _TRAIN, _EVAL, _SAMPLE, _GLOBAL = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class NonFiniteLoss:
    """Where training stopped: the first ``step`` (1-based) whose loss ``term`` was ``value``."""

    step: int
    term: str
    value: float


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    history : list of dict
        One row per training step: ``{"step": s, "epoch": e, <loss term>: value, ...}``, with
        ``s`` counted from 1 (the step just completed); under data parallelism, values are
        averaged over ranks.
    eval_history : list of dict
        One row per evaluation: ``{"step": s, <figure>: value, ...}``.
    step : int
        Completed training steps (including those before a resume).
    epoch : int
        Data epoch at the end.
    status : str
        ``"completed"`` or ``"nonfinite"``.
    nonfinite : NonFiniteLoss or None
        Set when ``status == "nonfinite"``.
    out_dir : Path or None
    checkpoint : Path or None
        The latest good checkpoint, if any.
    train_seconds : float
        Wall time spent in training steps (not evaluation, sampling or writing files).
    examples_per_second : float
        Training examples per second of ``train_seconds``, summed over ranks.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    status: str = "completed"
    nonfinite: NonFiniteLoss | None = None
    out_dir: Path | None = None
    checkpoint: Path | None = None
    train_seconds: float = 0.0
    examples_per_second: float = 0.0

    def losses(self, term: str) -> list[float]:
        """The history of one loss term, step by step."""
        return [row[term] for row in self.history if term in row]

    @property
    def last(self) -> dict[str, float]:
        """The last training row (empty before the first step)."""
        return self.history[-1] if self.history else {}


def _check_count(name: str, value: Any, low: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    return check_int(value, f"fit({name}=...)", minimum=low)


def _as_dataset(data: Any, what: str) -> Dataset:
    if isinstance(data, Dataset):
        ds = data
    elif isinstance(data, Tensor):
        ds = Dataset.from_tensors(data)
    elif isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        ds = Dataset.from_tensors(data[0], data[1])
    else:
        raise ValidationError(f"fit({what}=...)", "must be a Dataset, a tensor x or a tuple "
                              "(x, y)", found=type(data).__name__,
                              fix="use generative.data.load(...)")
    if len(ds) == 0:
        raise ValidationError(f"fit({what}=...)", "holds no examples", found=tuple(ds.x.shape))
    if not ds.x.is_floating_point():
        raise DtypeMismatchError(f"fit({what}=...)", "x must be floating point (integer data "
                                 "are refused, not cast)", found=ds.x.dtype,
                                 fix="convert with .float() and scale images to [0, 1]")
    # once per run, not per step: a NaN in the data would otherwise surface as a NaN loss
    check_finite(ds.x, f"fit({what}=...) x", fix="remove or impute the NaN / inf examples")
    return ds


def _check_out_dir(out_dir: Any) -> Path | None:
    if out_dir is None:
        return None
    if not isinstance(out_dir, str | os.PathLike):
        raise ValidationError("fit(out_dir=...)", "must be a path (str or os.PathLike) or None",
                              found=type(out_dir).__name__)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValidationError("fit(out_dir=...)", "is a file, not a folder", found=str(out),
                              fix="give a folder path (it is created if missing)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValidationError("fit(out_dir=...)", f"cannot be created: {parent} is a "
                                      "file", found=str(out))
            break
    return out


class _Run:
    """State of one :func:`fit` call (kept in one object so the loop body stays short)."""

    def __init__(self, task: TrainTask, out_dir: Path | None, seed: int,
                 ctx: gdist.DistContext, device: torch.device) -> None:
        self.task = task
        self.out_dir = out_dir
        self.seed = seed
        self.ctx = ctx
        self.device = device
        self.pending: list[tuple[int, int, tuple[str, ...], Tensor]] = []
        self.history: list[dict[str, float]] = []
        self.eval_history: list[dict[str, float]] = []
        self.checkpoint: Path | None = None
        self.checkpoint_step: int | None = None

    @property
    def writes(self) -> bool:
        return self.out_dir is not None and self.ctx.is_main

    # ---------------------------------------------------------------- losses
    def record(self, step: int, epoch: int, losses: Any) -> None:
        if not isinstance(losses, Mapping) or not losses:
            raise ValidationError(f"{type(self.task).__name__}.training_step",
                                  "must return a non-empty dict of scalar loss tensors",
                                  found=type(losses).__name__)
        names = tuple(losses)
        values = []
        for name, value in losses.items():
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise ValidationError(f"{type(self.task).__name__}.training_step",
                                      f"loss term {name!r} must be a one-element tensor",
                                      found=type(value).__name__ if not isinstance(value, Tensor)
                                      else tuple(value.shape))
            values.append(value.detach().reshape(()).to(torch.float64))
        self.pending.append((step, epoch, names, torch.stack(values)))

    def flush(self) -> NonFiniteLoss | None:
        """Copy pending losses to the history; return the first non-finite one, if any."""
        if not self.pending:
            return None
        flat = torch.cat([p[3] for p in self.pending])
        if self.ctx.enabled:
            dist.all_reduce(flat)
            flat = flat / self.ctx.world_size
        values = flat.tolist()
        i = 0
        bad: NonFiniteLoss | None = None
        for step, epoch, names, _ in self.pending:
            row: dict[str, float] = {"step": step, "epoch": epoch}
            for name in names:
                v = values[i]
                i += 1
                if bad is None and not math.isfinite(v):
                    bad = NonFiniteLoss(step, name, v)
                row[name] = v
            if bad is not None:
                break
            self.history.append(row)
        self.pending.clear()
        return bad

    # ---------------------------------------------------------------- files
    def write_logs(self, status: str, meta: dict[str, Any]) -> None:
        if not self.writes:
            return
        assert self.out_dir is not None
        write_bytes_atomic(self.out_dir / "train.csv", _csv(self.history).encode())
        write_bytes_atomic(self.out_dir / "eval.csv", _csv(self.eval_history).encode())
        doc = {"status": status, **meta, "train": self.history, "eval": self.eval_history}
        write_bytes_atomic(self.out_dir / "metrics.json",
                           json.dumps(doc, indent=1, default=str).encode())


def _csv(rows: list[dict[str, float]]) -> str:
    cols: list[str] = []
    for row in rows:
        for k in row:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _rng_state(g: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    state = {"generator": g.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(g: torch.Generator, state: dict[str, Tensor], device: torch.device) -> None:
    g.set_state(state["generator"])
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


def _set_mode(nets: Mapping[str, nn.Module], training: bool) -> dict[str, bool]:
    before = {k: n.training for k, n in nets.items()}
    for n in nets.values():
        n.train(training)
    return before


def fit(
    task: TrainTask,
    data: Dataset | Tensor | tuple[Tensor, Tensor | None],
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    out_dir: str | os.PathLike[str] | None = None,
    eval_data: Dataset | Tensor | None = None,
    eval_every: int = 0,
    eval_examples: int = 1000,
    sample_every: int = 0,
    num_samples: int = 64,
    checkpoint_every: int = 0,
    resume: bool | str | os.PathLike[str] = False,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    log_every: int = 10,
    on_nonfinite: str = "raise",
    ddp: bool | None = None,
    ddp_options: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``task`` on ``data``; see the module docstring for what the loop does.

    The task's networks are trained in place (moved to ``device`` / ``dtype`` first).

    Parameters
    ----------
    task : TrainTask
    data : Dataset, Tensor (N, *event) or (x, y)
        Training examples; batches are ``(x (B, *event), y (B,) or None)``.
    steps, epochs : int
        Train until ``steps`` optimisation steps in all (counting those before a resume), or
        for ``epochs`` passes over the data (per rank); give exactly one.
    batch_size : int
        Examples per step (per rank under data parallelism); the last partial batch of an epoch
        is dropped.
    out_dir : path, optional
        Folder for checkpoints, logs and sample grids; nothing is written without it.
    eval_data : Dataset or Tensor, optional
        Held-out data for :meth:`TrainTask.evaluate` (default: the training data).
    eval_every : int
        Evaluate every this many steps and at the end (0: never).
    eval_examples : int
        Evaluate on the first this many examples (in batches of ``batch_size``); figures are
        averaged with batch-size weights.
    sample_every : int
        Write a sample grid every this many steps and at the end (0: never); needs ``out_dir``.
    num_samples : int
        Samples per grid.
    checkpoint_every : int
        Checkpoint every this many steps (0: only at the end); needs ``out_dir``.
    resume : bool or path
        True: continue from ``out_dir/checkpoint.pt`` (an error if there is none); a path:
        continue from that checkpoint. The checkpoint's task configuration must equal
        ``task.config()``.
    seed : int, optional
        Seeds data order, training, evaluation and sampling generators. None: drawn from
        ``generator`` (torch's global RNG if that is None too).
    generator : torch.Generator, optional
        Only used to draw ``seed`` when it is None.
    device, dtype : optional
        Where and in what precision to train (default: the data's device and dtype).
    progress : bool
        Show a tqdm progress bar (rank 0).
    log_every : int
        Copy loss values to the host every this many steps (history keeps every step).
    on_nonfinite : {"raise", "stop"}
        On a NaN / infinite loss term: raise ``ConvergenceError`` (default), or return the
        result with ``status == "nonfinite"``.
    ddp : bool, optional
        None: data-parallel if launched by ``torchrun`` or a process group is initialised;
        False: never; True: required.
    ddp_options : dict, optional
        Keyword arguments for ``DistributedDataParallel`` (e.g. ``find_unused_parameters``).

    Returns
    -------
    FitResult

    Raises
    ------
    ConvergenceError
        A loss term was NaN or infinite (``on_nonfinite="raise"``); attributes ``step``,
        ``term``, ``value`` and ``checkpoint`` (the last good one, or None).
    CheckpointError
        ``resume`` names no readable checkpoint, or one of another task, data set or batch
        size.
    """
    # ------------------------------------------------------------ arguments
    if not isinstance(task, TrainTask):
        raise ValidationError("fit(task=...)", "must implement generative.task.TrainTask",
                              found=type(task).__name__)
    if (steps is None) == (epochs is None):
        raise ValidationError("fit", "give exactly one of steps= and epochs=",
                              found={"steps": steps, "epochs": epochs})
    # steps=0 / epochs=0 would write an untrained checkpoint and report success
    _check_count("steps", steps, 1, allow_none=True)
    _check_count("epochs", epochs, 1, allow_none=True)
    _check_count("batch_size", batch_size, 1)
    for name, value in (("eval_every", eval_every), ("sample_every", sample_every),
                        ("checkpoint_every", checkpoint_every)):
        _check_count(name, value, 0)
    _check_count("eval_examples", eval_examples, 1)
    _check_count("num_samples", num_samples, 1)
    _check_count("log_every", log_every, 1)
    check_choice(on_nonfinite, "fit(on_nonfinite=...)", ("raise", "stop"))
    check_bool(progress, "fit(progress=...)")
    if ddp is not None:
        check_bool(ddp, "fit(ddp=...)")
    if ddp_options is not None and not isinstance(ddp_options, dict):
        raise ValidationError("fit(ddp_options=...)", "must be a dict or None",
                              found=type(ddp_options).__name__)
    if not isinstance(resume, bool):
        if not isinstance(resume, str | os.PathLike) or not str(resume):
            raise ValidationError("fit(resume=...)", "must be True, False or a checkpoint path",
                                  found=repr(resume))
    check_optional_generator(generator, "fit(generator=...)")
    if seed is None:
        seed = random_seed(generator)
    _check_count("seed", seed, 0)
    out = _check_out_dir(out_dir)
    if out is None and (sample_every or checkpoint_every or resume is True):
        raise ValidationError("fit", "sample_every, checkpoint_every and resume=True need "
                              "out_dir", fix="pass out_dir=FOLDER")
    train_ds = _as_dataset(data, "data")
    dev = check_device(device, "fit(device=...)") if device is not None else train_ds.x.device
    dt = check_float_dtype(dtype if dtype is not None else train_ds.x.dtype, "fit(dtype=...)")

    ctx = gdist.setup(ddp, dev)
    if ctx.enabled and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", ctx.local_rank)
    try:
        # The task may draw from torch's global RNG (dropout has no generator argument): seed it
        # from (seed, rank) for the run, checkpoint it, and give the caller's state back after.
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.default_generator.manual_seed(derive_seed(seed, _GLOBAL, ctx.rank))
            if dev.type == "cuda":
                torch.cuda.default_generators[dev.index or 0].manual_seed(
                    derive_seed(seed, _GLOBAL, ctx.rank))
            return _fit(task, train_ds, eval_data, steps, epochs, batch_size, out, eval_every,
                        eval_examples, sample_every, num_samples, checkpoint_every, resume, seed,
                        dev, dt, progress, log_every, on_nonfinite, ctx, ddp_options)
    finally:
        gdist.teardown(ctx)


def _fit(task: TrainTask, train_ds: Dataset, eval_data: Any, steps: int | None,
         epochs: int | None, batch_size: int, out: Path | None, eval_every: int,
         eval_examples: int, sample_every: int, num_samples: int, checkpoint_every: int,
         resume: bool | str | os.PathLike[str], seed: int, dev: torch.device, dt: torch.dtype,
         progress: bool, log_every: int, on_nonfinite: str, ctx: gdist.DistContext,
         ddp_options: dict[str, Any] | None) -> FitResult:
    per_rank = len(train_ds) // ctx.world_size
    if batch_size > per_rank:
        # the last partial batch of an epoch is dropped, so an epoch would have no batch
        raise ValidationError("fit(batch_size=...)", "is larger than the training data"
                              + (" per process" if ctx.world_size > 1 else ""),
                              found=(batch_size, per_rank),
                              fix=f"use batch_size <= {per_rank} or more data")
    train_ds = train_ds.to(dev, dt)
    eval_ds = (_as_dataset(eval_data, "eval_data") if eval_data is not None else train_ds)
    if eval_ds.info.event_shape != train_ds.info.event_shape:
        raise ShapeError("fit(eval_data=...)", "must have the training data's event shape",
                         found=(eval_ds.info.event_shape, train_ds.info.event_shape))
    eval_ds = eval_ds.subset(eval_examples).to(dev, dt)
    config = task.config()
    try:
        config_json = json.dumps(config, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{type(task).__name__}.config", "must return a JSON-serialisable "
                              "dict", found=repr(config)[:80]) from err

    raw = task.networks()
    if not isinstance(raw, Mapping) or not all(isinstance(n, nn.Module) for n in raw.values()):
        raise ValidationError(f"{type(task).__name__}.networks", "must return a dict of "
                              "nn.Module by name", found=type(raw).__name__)
    raw = dict(raw)
    for net in raw.values():
        net.to(device=dev, dtype=dt)
        net.train()
    nets = {k: gdist.wrap(v, ctx, dev, ddp_options) for k, v in raw.items()}
    made = task.make_optimizers(nets)
    if not (isinstance(made, tuple) and len(made) == 2):
        raise ValidationError(f"{type(task).__name__}.make_optimizers",
                              "must return (optimizers, schedulers) dicts",
                              found=type(made).__name__)
    optimizers, schedulers = dict(made[0]), dict(made[1])

    stream = BatchStream(train_ds, batch_size, seed=derive_seed(seed, _DATA),
                         rank=ctx.rank, world_size=ctx.world_size)
    g_train = torch.Generator(dev).manual_seed(derive_seed(seed, _TRAIN, ctx.rank))
    run = _Run(task, out, seed, ctx, dev)
    step = 0
    if resume:
        path = out / CHECKPOINT_NAME if resume is True and out is not None else Path(resume)  # type: ignore[arg-type]
        ck = load_checkpoint(path, map_location=dev)
        if ck.get("config") != config_json:
            raise CheckpointError(f"checkpoint {path}", "was written for another task "
                                  "configuration", found=ck.get("config"),
                                  fix=f"build the task from it (config {config_json})")
        parts = check_training_checkpoint(ck, path)
        meta_ck = parts.meta
        if meta_ck["world_size"] != ctx.world_size:
            raise CheckpointError(f"checkpoint {path}", "was written by another number of "
                                  "processes", found=(meta_ck["world_size"], ctx.world_size),
                                  fix="resume with the same number of processes")
        load_networks(raw, ck["nets"], path)
        load_states(f"checkpoint {path}", "optimizers", optimizers, ck["optimizers"])
        load_states(f"checkpoint {path}", "schedulers", schedulers, ck["schedulers"])
        stream.load_state_dict(ck["data"])
        try:
            _set_rng_state(g_train, ck["rng"][ctx.rank], dev)
        except (RuntimeError, TypeError, KeyError, IndexError) as err:
            raise CheckpointError(f"checkpoint {path}", "has an unusable random-number state",
                                  found=f"{type(err).__name__}: {err}"[:120]) from err
        run.history, run.eval_history = parts.history["train"], parts.history["eval"]
        step = parts.step
        if steps is not None and step > steps:
            raise ValidationError("fit(steps=...)", "counts the steps before a resume too, and "
                                  f"the checkpoint has already done {step}", found=steps,
                                  fix=f"pass steps > {step} to train further")
        run.checkpoint, run.checkpoint_step = path, step
        seed = meta_ck["seed"]

    total = steps if steps is not None else (epochs or 0) * len(stream)
    meta = {"seed": seed, "world_size": ctx.world_size, "dtype": str(dt), "device": str(dev),
            "batch_size": batch_size, "probforge_version": probforge.__version__,
            "data": train_ds.info.to_dict(), "config": config}
    if run.writes:
        assert out is not None
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / "config.json", json.dumps(meta, indent=1).encode())

    def save() -> None:
        gdist.check_in_sync(raw, ctx)
        rng = _rng_state(g_train, dev)
        states: list[Any] = [rng]
        if ctx.enabled:
            states = [None] * ctx.world_size
            dist.all_gather_object(states, {k: v.cpu() for k, v in rng.items()})
        run.checkpoint_step = step
        if run.writes:
            assert out is not None
            write(out, states)
        if ctx.enabled:  # every rank may read the checkpoint once fit returns (resume)
            dist.barrier()

    def write(out: Path, states: list[Any]) -> None:
        payload = {
            "config": config_json,
            "nets": {k: v.state_dict() for k, v in raw.items()},
            "optimizers": {k: v.state_dict() for k, v in optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
            "step": step, "epoch": stream.epoch, "data": stream.state_dict(),
            "history": json.dumps({"train": run.history, "eval": run.eval_history}),
            "meta": json.dumps(meta),
            "rng": states,
        }
        save_checkpoint(out / CHECKPOINT_NAME, payload)
        run.checkpoint = out / CHECKPOINT_NAME
        run.write_logs("running", meta)

    def evaluate() -> None:
        if not ctx.is_main:
            return
        g = torch.Generator(dev).manual_seed(derive_seed(seed, _EVAL, step))
        sums: dict[str, float] = {}
        count = 0
        before = _set_mode(raw, False)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), \
                torch.no_grad():
            for start in range(0, len(eval_ds), batch_size):
                x = eval_ds.x[start: start + batch_size]
                y = eval_ds.y[start: start + batch_size] if eval_ds.y is not None else None
                figures = task.evaluate(raw, (x, y), g)
                for k, v in figures.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * x.shape[0]
                count += x.shape[0]
        for k, n in raw.items():
            n.train(before[k])
        row: dict[str, float] = {"step": step}
        row.update({k: v / max(count, 1) for k, v in sums.items()})
        run.eval_history.append(row)

    def write_samples(tag: str) -> None:
        if not run.writes:
            return
        assert out is not None
        g = torch.Generator(dev).manual_seed(derive_seed(seed, _SAMPLE))
        before = _set_mode(raw, False)
        figures_of = getattr(task, "figures", None)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), \
                torch.no_grad():
            samples = task.sample(raw, num_samples, g)
            figures = figures_of(raw) if callable(figures_of) else {}
        for k, n in raw.items():
            n.train(before[k])
        info = train_ds.info
        save_samples(out / "samples" / f"{tag}.png", samples,
                     bounds=None if info.is_image else info.value_range,
                     centres=info.centres())
        for name, images in figures.items():
            save_samples(out / "samples" / f"{name}_{tag}.png", images)

    def stop_nonfinite(bad: NonFiniteLoss) -> FitResult:
        run.write_logs("nonfinite", {**meta, "nonfinite": bad.__dict__})
        result = _result(run, step, stream, "nonfinite", bad, out, train_seconds, batch_size,
                         steps_done=step - start_step)
        if on_nonfinite == "stop":
            return result
        where = (f"the last good checkpoint {run.checkpoint} (step {run.checkpoint_step}) is "
                 "untouched; resume from it with resume=True"
                 if run.checkpoint is not None else "no checkpoint was written")
        err = ConvergenceError(
            f"fit: step {bad.step}", f"loss term {bad.term!r} is {bad.value}",
            fix=f"lower the learning rate or check the model; {where}")
        err.step, err.term, err.value = bad.step, bad.term, bad.value  # type: ignore[attr-defined]
        err.checkpoint = run.checkpoint  # type: ignore[attr-defined]
        raise err

    bar = None
    if progress and ctx.is_main and total > step:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc=f"training {config.get('kind', '')}".strip(),
                   unit="step", mininterval=0.5)
    train_seconds = 0.0
    start_step = step
    try:
        while step < total:
            t0 = time.perf_counter()
            batch = stream.next_batch()
            losses = task.training_step(nets, optimizers, batch, step, g_train)
            run.record(step + 1, stream.epoch, losses)
            for sch in schedulers.values():
                sch.step()
            step += 1
            if dev.type == "cuda" and step % log_every == 0:
                torch.cuda.synchronize(dev)
            train_seconds += time.perf_counter() - t0
            if step == start_step + 1:
                gdist.check_in_sync(raw, ctx)  # catch a task that bypasses DDP early
            if bar is not None:
                bar.update(1)
            due_eval = eval_every > 0 and step % eval_every == 0
            due_sample = sample_every > 0 and step % sample_every == 0
            due_ckpt = out is not None and checkpoint_every > 0 and step % checkpoint_every == 0
            if step % log_every == 0 or due_eval or due_sample or due_ckpt or step == total:
                bad = run.flush()
                if bad is not None:
                    return stop_nonfinite(bad)
                if bar is not None and run.history:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in run.history[-1].items()
                                     if k not in ("step", "epoch")}, refresh=False)
            if due_eval:
                evaluate()
            if due_sample:
                write_samples(f"step_{step:07d}")
            if due_ckpt:
                save()
    finally:
        if bar is not None:
            bar.close()
    if step > start_step:
        if eval_every > 0 and step % eval_every != 0:
            evaluate()
        if sample_every > 0 and step % sample_every != 0:
            write_samples(f"step_{step:07d}")
    if out is not None and run.checkpoint_step != step:
        save()
    run.write_logs("completed", meta)
    return _result(run, step, stream, "completed", None, out, train_seconds, batch_size,
                   steps_done=step - start_step)


def _result(run: _Run, step: int, stream: BatchStream, status: str,
            bad: NonFiniteLoss | None, out: Path | None, train_seconds: float,
            batch_size: int, steps_done: int | None = None) -> FitResult:
    done = steps_done if steps_done is not None else 0
    rate = (done * batch_size * run.ctx.world_size / train_seconds) if train_seconds > 0 else 0.0
    return FitResult(history=run.history, eval_history=run.eval_history, step=step,
                     epoch=stream.epoch, status=status, nonfinite=bad, out_dir=out,
                     checkpoint=run.checkpoint if run.writes or run.checkpoint else None,
                     train_seconds=train_seconds, examples_per_second=rate)
