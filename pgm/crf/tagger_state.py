"""The fields of a CRF tagger file (:meth:`pgm.crf.tagger.CRFTagger.save`), checked on load.

Nothing is cast: each field must have the tagger's own dtype and the shape its labels and
features imply, and be finite; a missing, unknown or malformed field raises
:class:`~probforge.errors.CheckpointError` naming it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from probforge.errors import CheckpointError

__all__ = ["CONFIG_KEYS", "STATE_KEYS", "read_tagger_state"]

#: The keys of a tagger's stored configuration.
CONFIG_KEYS = frozenset({"algorithm", "c1", "c2", "max_iterations", "epochs", "lr",
                          "batch_size", "hash_buckets", "min_freq", "dtype", "seed",
                          "max_batch_cells", "tol"})
#: The keys of a tagger file.
STATE_KEYS = frozenset({"format", "version", "config", "labels", "features", "weights",
                         "start", "transitions", "end", "constraints", "checksum"})


def read_tagger_state(state: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields of a loaded tagger file, each checked (CheckpointError naming the field).

    Parameters
    ----------
    state : dict
        What ``torch.load(weights_only=True)`` returned for a file of :meth:`CRFTagger.save`.
    where : str
        The file, for messages.

    Returns
    -------
    dict
        ``config``, ``labels``, ``features``, ``weights``, ``start``, ``transitions``, ``end``
        and ``constraints`` (None or three bool tensors), with their dtypes and shapes checked.
    """
    def bad(field: str, problem: str, found: Any = None) -> CheckpointError:
        return CheckpointError(f"{where}: {field}", problem, found=found,
                               fix="write the file again with CRFTagger.save")

    missing = sorted(STATE_KEYS - {"checksum"} - set(state))
    if missing:
        raise bad("keys", f"{missing} missing")
    extra = sorted(str(k) for k in set(state) - STATE_KEYS)
    if extra:
        raise bad("keys", f"unknown {extra}")
    if "checksum" in state and not isinstance(state["checksum"], str):
        raise bad("checksum", "must be a string", type(state["checksum"]).__name__)
    cfg = state["config"]
    if not isinstance(cfg, dict) or set(cfg) != CONFIG_KEYS:
        raise bad("config", f"must be a dict with the keys {sorted(CONFIG_KEYS)}",
                  sorted(map(str, cfg)) if isinstance(cfg, dict) else type(cfg).__name__)
    if cfg["dtype"] not in ("float32", "float64"):
        raise bad("config.dtype", "must be 'float32' or 'float64'", repr(cfg["dtype"]))
    dtype = getattr(torch, cfg["dtype"])
    labels = state["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels) \
            or len(set(labels)) != len(labels):
        raise bad("labels", "must be a non-empty list of distinct strings",
                  repr(labels)[:60])
    k = len(labels)
    features = state["features"]
    if cfg["hash_buckets"] is None:
        if not isinstance(features, list) or not all(isinstance(v, str) for v in features) \
                or len(set(features)) != len(features):
            raise bad("features", "must be a list of distinct strings (the vocabulary)",
                      type(features).__name__)
    elif features is not None:
        raise bad("features", "must be None for a hashing tagger", type(features).__name__)

    def tensor(field: str, value: Any, shape: tuple[int | None, ...], want: torch.dtype
               ) -> Tensor:
        if not isinstance(value, Tensor):
            raise bad(field, "must be a tensor", type(value).__name__)
        if value.dtype != want:
            raise bad(field, f"must have dtype {want}", value.dtype)
        if value.dim() != len(shape) or any(w is not None and w != n
                                            for w, n in zip(shape, value.shape, strict=True)):
            raise bad(field, f"must have shape {tuple('F' if w is None else w for w in shape)}",
                      tuple(value.shape))
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(field, "holds NaN or inf")
        return value

    weights = tensor("weights", state["weights"], (None, k), dtype)
    out = {"config": cfg, "labels": labels, "features": features, "weights": weights,
           "start": tensor("start", state["start"], (k,), dtype),
           "transitions": tensor("transitions", state["transitions"], (k, k), dtype),
           "end": tensor("end", state["end"], (k,), dtype), "constraints": None}
    cons = state["constraints"]
    if cons is not None:
        if not isinstance(cons, list) or len(cons) != 3:
            raise bad("constraints", "must be None or a list of 3 bool tensors",
                      type(cons).__name__)
        out["constraints"] = [tensor(f"constraints[{i}]", c, shape, torch.bool)
                              for i, (c, shape) in enumerate(zip(cons, ((k,), (k, k), (k,)),
                                                                 strict=True))]
    return out
