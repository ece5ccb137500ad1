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
from pathlib import Path
from typing import Any

import torch

from probforge.errors import CheckpointError
from probforge.files import atomic_torch_save

__all__ = ["FORMAT", "VERSION", "checkpoint_config", "load_checkpoint", "save_checkpoint"]

FORMAT = "probforge.generative.checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) to ``path``: temp file, fsync, ``os.replace``.

    A crash mid-write leaves the previous checkpoint at ``path`` untouched.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, **payload}
    try:
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
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}", "file not found",
                              fix="give the path of a checkpoint.pt written by fit() or "
                              "'probforge train'")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {p}", "could not be read (corrupt, or not a "
                              "weights-only torch file)", found=f"{type(err).__name__}: {err}",
                              fix="use an intact checkpoint; the previous one is kept on a "
                              "failed write") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {p}", "is not a probforge generative checkpoint",
                              found=repr(data.get("format")) if isinstance(data, dict)
                              else type(data).__name__)
    if data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {p}", f"has format version {data.get('version')}, "
                              f"this probforge reads version {VERSION}",
                              fix="use the probforge version that wrote it")
    return data


def checkpoint_config(data: dict[str, Any]) -> dict[str, Any]:
    """The task configuration stored in a loaded checkpoint."""
    try:
        config = json.loads(data["config"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise CheckpointError("checkpoint", "has no valid task configuration",
                              found=repr(data.get("config"))[:80]) from err
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint", "task configuration must be a JSON object",
                              found=type(config).__name__)
    return config
