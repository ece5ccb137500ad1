"""Training checkpoints: one file, written atomically, read with ``weights_only=True``.

A checkpoint is a dictionary of plain values and tensors (nothing pickled beyond what
``torch.load(weights_only=True)`` accepts):

==================  ==============================================================================
key                 contents
==================  ==============================================================================
``format``          ``"probforge.generative.checkpoint"``; ``version``: :data:`VERSION`
``config``          ``task.config()`` as a JSON string (``generative.registry.build_task`` input)
``nets``            network name -> ``state_dict``
``optimizers``      optimiser name -> ``state_dict``; ``schedulers`` likewise
``step``            completed training steps; ``epoch`` the data epoch
``data``            the :class:`~generative.data.BatchStream` position (plain ints)
``rng``             per rank: the training generator's state and torch's CPU (and CUDA) RNG states
``history``         the metric history so far, as a JSON string
``meta``            JSON string: seed, world size, dtype, device, probforge version, data info
==================  ==============================================================================

Examples
--------
>>> import tempfile, os, torch
>>> from generative.checkpoint import load_checkpoint, save_checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
>>> save_checkpoint(path, {"config": "{}", "step": 3, "nets": {}})
>>> load_checkpoint(path)["step"]
3
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import torch
from torch import nn

from probforge.errors import CheckpointError, MissingFileError, ProbforgeError, ValidationError
from probforge.files import atomic_torch_save, load_saved_state
from probforge.validate import check_device

from .checks import check_output_path
from .data.dataset import DataInfo

__all__ = [
    "FORMAT",
    "VERSION",
    "RestoredTask",
    "TrainingCheckpoint",
    "check_training_checkpoint",
    "checkpoint_config",
    "load_checkpoint",
    "load_networks",
    "load_states",
    "restore_task",
    "save_checkpoint",
]

FORMAT = "probforge.generative.checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) to ``path``: temp file, fsync, ``os.replace``.

    A crash mid-write leaves the previous checkpoint at ``path`` untouched. ``payload`` is a dict
    with string keys (``format`` and ``version`` are set here); ``path`` must not be a folder.

    Raises
    ------
    ValidationError
        ``path`` is not a path, is a folder or lies under a file; ``payload`` is not a dict.
    CheckpointError
        The file could not be written.
    """
    p = check_output_path(path, "checkpoint path")
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise ValidationError("checkpoint payload", "must be a dict with string keys",
                              found=type(payload).__name__)
    for key in ("format", "version"):
        if key in payload:
            raise ValidationError("checkpoint payload", f"must not set {key!r} (written here)",
                                  found=repr(payload[key]))
    data = {"format": FORMAT, "version": VERSION, **payload}
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(p, data)
    except OSError as err:
        raise CheckpointError(f"checkpoint {p}", "could not be written", found=str(err),
                              fix="check the folder's free space and permissions") from err


def load_checkpoint(path: str | os.PathLike[str],
                    map_location: torch.device | str | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises
    ------
    CheckpointError
        Missing or unreadable file, or not a probforge generative checkpoint of a known version.
    ValidationError
        ``path`` is not a path, or ``map_location`` names a device this machine lacks.
    """
    try:
        return load_saved_state(
            path, "checkpoint", FORMAT, kind="probforge generative checkpoint", version=VERSION,
            map_location=map_location, fix="use an intact checkpoint written by fit() or "
            "'probforge train' (the previous one is kept on a failed write), with the probforge "
            "version that wrote it")
    except MissingFileError as err:  # a missing checkpoint has always been a CheckpointError
        raise CheckpointError(f"checkpoint {path}", "file not found",
                              fix="give the path of a checkpoint.pt written by fit() or "
                              "'probforge train'") from err


def checkpoint_config(data: dict[str, Any]) -> dict[str, Any]:
    """The task configuration stored in a loaded checkpoint (a JSON object with a ``kind``).

    Raises
    ------
    CheckpointError
        ``data`` is not a loaded checkpoint, or its ``config`` is not a JSON object naming a
        ``kind``.
    """
    if not isinstance(data, dict):
        raise CheckpointError("checkpoint", "must be the dict returned by load_checkpoint",
                              found=type(data).__name__)
    raw = data.get("config")
    try:
        if not isinstance(raw, str):
            raise TypeError(type(raw).__name__)
        config = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as err:
        raise CheckpointError("checkpoint", "has no valid task configuration",
                              found=repr(raw)[:80]) from err
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint", "task configuration must be a JSON object",
                              found=type(config).__name__)
    if not isinstance(config.get("kind"), str):
        raise CheckpointError("checkpoint", "task configuration names no model 'kind'",
                              found=repr(config.get("kind"))[:80])
    return config


class TrainingCheckpoint(NamedTuple):
    """The checked pieces of a training checkpoint (see :func:`check_training_checkpoint`)."""

    step: int
    meta: dict[str, Any]
    history: dict[str, Any]


def _json_object(data: dict[str, Any], key: str, subject: str) -> dict[str, Any]:
    raw = data.get(key)
    try:
        if not isinstance(raw, str):
            raise TypeError(type(raw).__name__)
        value = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as err:
        raise CheckpointError(subject, f"{key!r} must be a JSON string",
                              found=repr(raw)[:80]) from err
    if not isinstance(value, dict):
        raise CheckpointError(subject, f"{key!r} must hold a JSON object",
                              found=type(value).__name__)
    return value


def _require(cond: bool, subject: str, problem: str, found: Any = None) -> None:
    if not cond:
        raise CheckpointError(subject, problem, found=found,
                              fix="use an intact checkpoint written by fit()")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _state_dicts(data: dict[str, Any], key: str, subject: str, *,
                 tensors_only: bool) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CheckpointError(subject, f"{key!r} must map names to state dicts",
                              found=type(value).__name__, fix="use an intact checkpoint")
    for name, sd in value.items():
        _require(isinstance(sd, dict), subject, f"{key}[{name!r}] must be a state dict",
                 type(sd).__name__)
        if tensors_only:
            for k, t in sd.items():
                _require(isinstance(k, str) and isinstance(t, torch.Tensor), subject,
                         f"{key}[{name!r}] must map parameter names to tensors",
                         f"{k!r}: {type(t).__name__}")
    return value


def check_training_checkpoint(data: dict[str, Any],
                              path: str | os.PathLike[str] | None = None) -> TrainingCheckpoint:
    """Check the structure of a loaded training checkpoint before anything is restored from it.

    Every key of the table in the module docstring must be present with the right type: the
    networks' state dicts map names to tensors, ``step`` and ``epoch`` are ints ``>= 0``,
    ``meta`` and ``history`` are JSON objects (``meta`` with an int ``seed >= 0`` and
    ``world_size >= 1``; ``history`` with lists ``train`` and ``eval``), ``rng`` holds one state
    per process.

    Returns
    -------
    TrainingCheckpoint
        ``step``, the parsed ``meta`` and ``history``.

    Raises
    ------
    CheckpointError
        Naming the first missing or malformed piece.
    """
    subject = f"checkpoint {path}" if path is not None else "checkpoint"
    _require(isinstance(data, dict), subject, "must be the dict returned by load_checkpoint",
             type(data).__name__)
    checkpoint_config(data)
    _state_dicts(data, "nets", subject, tensors_only=True)
    _state_dicts(data, "optimizers", subject, tensors_only=False)
    _state_dicts(data, "schedulers", subject, tensors_only=False)
    for key in ("step", "epoch"):
        _require(_is_int(data.get(key)) and data[key] >= 0, subject,
                 f"{key!r} must be an int >= 0", repr(data.get(key))[:40])
    _require(isinstance(data.get("data"), dict), subject, "'data' (the data position) must be "
             "a dict", type(data.get("data")).__name__)
    meta = _json_object(data, "meta", subject)
    _require(_is_int(meta.get("seed")) and meta["seed"] >= 0, subject,
             "meta 'seed' must be an int >= 0", repr(meta.get("seed"))[:40])
    _require(_is_int(meta.get("world_size")) and meta["world_size"] >= 1, subject,
             "meta 'world_size' must be an int >= 1", repr(meta.get("world_size"))[:40])
    history = _json_object(data, "history", subject)
    _require(isinstance(history.get("train"), list) and isinstance(history.get("eval"), list),
             subject, "history must hold lists 'train' and 'eval'", sorted(history)[:4])
    rng = data.get("rng")
    _require(isinstance(rng, list) and len(rng) == meta["world_size"]
             and all(isinstance(r, dict) and isinstance(r.get("generator"), torch.Tensor)
                     and isinstance(r.get("torch_cpu"), torch.Tensor) for r in rng),
             subject, "'rng' must hold one {generator, torch_cpu} state per process",
             type(rng).__name__)
    return TrainingCheckpoint(int(data["step"]), meta, history)


def load_networks(nets: dict[str, nn.Module], states: Any,
                  path: str | os.PathLike[str] | None = None) -> None:
    """Load checkpointed state dicts into ``nets`` (in place), checking before loading.

    Every network needs a state dict with exactly its keys, and tensors of its shapes and
    dtype class (floating / integer); nothing is loaded unless all of them fit.

    Raises
    ------
    CheckpointError
        A network is missing, a key is missing or unexpected, or a tensor has another shape or
        kind of dtype.
    """
    subject = f"checkpoint {path}" if path is not None else "checkpoint"
    _check_states(nets, states, subject)
    for name, net in nets.items():
        try:
            net.load_state_dict(states[name])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(subject, f"nets[{name!r}] could not be loaded",
                                  found=f"{type(err).__name__}: {err}"[:160]) from err


def _check_states(nets: dict[str, nn.Module], states: Any, subject: str) -> None:
    _require(isinstance(states, dict), subject, "'nets' must map names to state dicts",
             type(states).__name__)
    missing = sorted(set(nets) - set(states))
    _require(not missing, subject, f"has no weights for network(s) {missing}",
             sorted(states)[:8])
    for name, net in nets.items():
        sd = states[name]
        _require(isinstance(sd, dict), subject, f"nets[{name!r}] must be a state dict",
                 type(sd).__name__)
        own = net.state_dict()
        extra, lacking = sorted(set(sd) - set(own)), sorted(set(own) - set(sd))
        _require(not extra and not lacking, subject,
                 f"nets[{name!r}] does not fit the network built from its configuration",
                 f"missing {lacking[:4]}, unexpected {extra[:4]}")
        for key, mine in own.items():
            t = sd[key]
            _require(isinstance(t, torch.Tensor) and t.shape == mine.shape
                     and t.is_floating_point() == mine.is_floating_point()
                     and not t.is_complex(), subject,
                     f"nets[{name!r}][{key!r}] must be a {tuple(mine.shape)} "
                     f"{'floating' if mine.is_floating_point() else 'integer'} tensor",
                     (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor)
                     else type(t).__name__)
            # fit() never checkpoints a diverged state, so NaN / inf weights mean corruption
            # (checked only once shapes match, i.e. for at most what the file holds)
            _require(t.is_meta or not t.is_floating_point() or bool(torch.isfinite(t).all()),
                     subject, f"nets[{name!r}][{key!r}] holds NaN or infinite values")


def load_states(subject: str, what: str, objects: dict[str, Any], states: Any) -> None:
    """``obj.load_state_dict(states[name])`` for optimisers or schedulers, with typed errors."""
    _require(isinstance(states, dict), subject, f"{what!r} must map names to state dicts",
             type(states).__name__)
    missing = sorted(set(objects) - set(states))
    _require(not missing, subject, f"has no {what} state for {missing}", sorted(states)[:8])
    for name, obj in objects.items():
        try:
            obj.load_state_dict(states[name])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            raise CheckpointError(subject, f"{what}[{name!r}] could not be restored",
                                  found=f"{type(err).__name__}: {err}"[:160],
                                  fix="resume with the task that wrote the checkpoint") from err


class RestoredTask(NamedTuple):
    """What :func:`restore_task` returns."""

    task: Any
    nets: dict[str, nn.Module]
    config: dict[str, Any]
    meta: dict[str, Any]
    step: int
    #: The training data's description (event shape, image or points, value range, mode
    #: centres), checked: what a sample picture needs.
    data_info: DataInfo


_DTYPES = {"torch.float32": torch.float32, "torch.float64": torch.float64}


def restore_task(path: str | os.PathLike[str],
                 device: torch.device | str = "cpu") -> RestoredTask:
    """Rebuild a trained task from a checkpoint, with typed errors for every corruption.

    The task is rebuilt from the checkpoint's configuration with
    :func:`generative.registry.build_task`, first on the ``meta`` device (no memory is
    allocated, so a corrupt configuration asking for huge layers costs nothing), its state
    dicts are checked against the checkpoint's tensors, and only then are the networks
    allocated on ``device`` in the checkpoint's dtype, loaded and put in eval mode. This is
    what ``probforge sample --checkpoint`` needs.

    Parameters
    ----------
    path : path
        A ``checkpoint.pt`` written by :func:`generative.train.fit`.
    device : torch.device or str
        Where to put the networks (must exist on this machine).

    Returns
    -------
    RestoredTask
        ``task``, its ``nets`` (eval mode, loaded), the ``config``, the parsed ``meta``,
        ``step`` and the training data's checked ``data_info``.

    Raises
    ------
    CheckpointError
        Unreadable file, corrupt structure, a configuration that builds no task, or weights
        that do not fit it.
    ValidationError
        ``device`` does not exist here.
    """
    dev = check_device(device, "device")
    data = load_checkpoint(path, map_location="cpu")
    parts = check_training_checkpoint(data, path)
    config = checkpoint_config(data)
    dtype = _DTYPES.get(str(parts.meta.get("dtype", "torch.float32")))
    _require(dtype is not None, f"checkpoint {path}", "meta 'dtype' must be torch.float32 or "
             "torch.float64", repr(parts.meta.get("dtype"))[:40])
    try:
        data_info = DataInfo.from_dict(parts.meta.get("data"))
    except ValidationError as err:
        raise CheckpointError(f"checkpoint {path}", "has no valid data description in its "
                              "meta", found=str(err)[:200],
                              fix="use an intact checkpoint written by fit()") from err
    from generative.registry import build_task  # the registry imports the models: import late

    try:
        with torch.device("meta"):
            skeleton = build_task(config)
            skeleton_nets = skeleton.networks()
    except (ProbforgeError, ValueError, TypeError, KeyError, AttributeError) as err:
        # the configuration is untrusted file content: whatever it makes build_task refuse
        raise CheckpointError(f"checkpoint {path}", "its task configuration builds no model",
                              found=str(err)[:200],
                              fix="use a checkpoint written by this probforge version") from err
    _require(isinstance(skeleton_nets, dict), f"checkpoint {path}",
             "the task's networks() must be a dict", type(skeleton_nets).__name__)
    # keys, shapes and kinds against the checkpoint's tensors before anything is allocated
    _check_states(skeleton_nets, data["nets"], f"checkpoint {path}")
    task = build_task(config)
    nets = task.networks()
    load_networks(nets, data["nets"], path)
    for net in nets.values():
        net.to(device=dev, dtype=dtype)
        net.eval()
    return RestoredTask(task, nets, config, parts.meta, parts.step, data_info)
