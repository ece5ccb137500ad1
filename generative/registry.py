"""Build training tasks from JSON-able configs: the kinds ``probforge train`` knows.

A config is a flat dict ``{"kind": ..., <model keys>, <optimisation keys>}``; every task's
``config()`` returns one, every checkpoint stores it, and :func:`build_task` rebuilds an equal,
untrained task from it (same networks, same initial weights for the same ``seed``). Unknown keys
raise :class:`~probforge.errors.ValidationError` naming them; missing keys take the kind's
defaults (``event_shape`` has none). :func:`default_config` sizes a kind for a data set.

Examples
--------
>>> from generative.registry import build_task, default_config, TASK_KINDS
>>> from generative.data import info
>>> cfg = default_config("vae", info("digits"))
>>> cfg["arch"], cfg["event_shape"]
('conv', [1, 8, 8])
>>> task = build_task(cfg)
>>> build_task(task.config()).config() == task.config()
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probforge.errors import ValidationError

from .autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from .config_schema import DEFAULTS, TASK_KINDS, check_config
from .gan import GAN
from .task import TrainTask
from .tasks import AETask, GANTask, VAETask
from .vae import VAE

__all__ = ["TASK_KINDS", "build_task", "default_config"]

def _resolve(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(config, Mapping):
        raise ValidationError("task config", "must be a dict", found=type(config).__name__)
    check_config(config.get("kind"), config)
    kind = str(config["kind"])
    defaults = DEFAULTS[kind]
    params = {**defaults, **{k: v for k, v in config.items() if k != "kind"}}
    if params["event_shape"] is None:
        raise ValidationError(f"task config of kind '{kind}'", "'event_shape' is required",
                              fix="give the data's event shape, e.g. [1, 28, 28] or [2]")
    if kind in ("cvae", "cgan") and params.get("num_classes") is None:
        raise ValidationError(f"task config of kind '{kind}'", "'num_classes' is required",
                              fix="use a labelled data set")
    return str(kind), params


_ENERGY_KINDS = ("rbm", "grbm", "crbm", "dbn")


def build_task(config: Mapping[str, Any]) -> TrainTask:
    """Build an untrained task from a config (see the module docstring).

    Parameters
    ----------
    config : dict
        ``{"kind": one of TASK_KINDS, ...}``.

    Returns
    -------
    TrainTask
        An :class:`AETask`, :class:`VAETask`, :class:`GANTask`,
        :class:`~generative.energy.rbm_task.RBMTask` or
        :class:`~generative.energy.dbn_task.DBNTask`.
    """
    if isinstance(config, Mapping) and config.get("kind") in _ENERGY_KINDS:
        check_config(config["kind"], config)
        if config["kind"] == "dbn":
            from generative.energy.dbn_task import DBNTask

            return DBNTask.from_config(config)
        from generative.energy.rbm_task import RBMTask

        return RBMTask.from_config(config)
    kind, p = _resolve(config)
    shape = tuple(int(v) for v in p.pop("event_shape"))
    if kind in ("ae", "dae", "sparse-ae"):
        lr = p.pop("lr")
        latent = p.pop("latent_dim")
        cls = {"ae": Autoencoder, "dae": DenoisingAutoencoder,
               "sparse-ae": SparseAutoencoder}[kind]
        return AETask(cls(shape, latent, **p), lr=lr)
    if kind in ("vae", "cvae", "iwae"):
        task_keys = ("lr", "num_samples", "k", "eval_importance_samples")
        t = {k: p.pop(k) for k in task_keys}
        latent = p.pop("latent_dim")
        vae = VAE(shape, latent, **p)
        return VAETask(vae, objective="iwae" if kind == "iwae" else "elbo", **t)
    gan_keys = ("n_critic", "lr", "lr_d", "optimizer", "betas", "clip", "gp_weight")
    t = {k: p.pop(k) for k in gan_keys}
    loss = p.pop("loss", kind)
    latent = p.pop("latent_dim")
    gan = GAN.build(shape, latent, **p)
    return GANTask(gan, loss=loss, kind=kind, **t)


def _energy_config(cfg: dict[str, Any], data_info: Any, size: int) -> dict[str, Any]:
    kind = cfg["kind"]
    name = getattr(data_info, "name", "?")
    binary = getattr(data_info, "binarized", None) is not None
    if kind == "crbm":
        raise ValidationError("default_config", "kind 'crbm' needs whole-number data 0..K-1, "
                              "which no bundled data set is", found=name,
                              fix="build generative.energy.rbm_task.RBMTask.from_config("
                              "{'kind': 'crbm', 'num_categories': K, ...}) in Python")
    if kind in ("rbm", "dbn") and not binary:
        raise ValidationError("default_config", f"kind {kind!r} has binary visible units and "
                              "needs binarised data", found=name,
                              fix="binarise it (--binarize fixed), or use kind 'grbm'")
    small = size <= 64
    if kind == "dbn":
        cfg["hidden"] = [64, 64] if small else [500, 500]
    else:
        cfg["num_hidden"] = 16 if size <= 8 else (64 if small else 256)
    return cfg


def default_config(kind: str, data_info: Any) -> dict[str, Any]:
    """A config of ``kind`` sized for a data set.

    Parameters
    ----------
    kind : str
        One of :data:`TASK_KINDS`.
    data_info : DataInfo-like
        Needs ``name``, ``event_shape``, ``num_classes`` and ``is_image``
        (:class:`generative.data.DataInfo`).

    Returns
    -------
    dict
        Complete config (every key explicit) for :func:`build_task`.
    """
    if kind not in TASK_KINDS:
        raise ValidationError("default_config", f"kind must be one of {sorted(TASK_KINDS)}",
                              found=repr(kind))
    shape = [int(v) for v in data_info.event_shape]
    is_image = bool(getattr(data_info, "is_image", False)) and len(shape) == 3
    num_classes = getattr(data_info, "num_classes", None)
    size = 1
    for s in shape:
        size *= s
    small = size <= 64
    if kind == "dcgan" and not is_image:
        raise ValidationError("default_config", "kind 'dcgan' needs image data",
                              found=getattr(data_info, "name", shape), fix="use kind 'gan'")
    cfg: dict[str, Any] = {"kind": kind, **DEFAULTS[kind], "event_shape": shape}
    if kind in _ENERGY_KINDS:
        return _energy_config(cfg, data_info, size)
    if kind in ("cvae", "cgan"):
        if num_classes is None:
            raise ValidationError("default_config", f"kind '{kind}' needs a labelled data set",
                                  found=getattr(data_info, "name", "?"))
        cfg["num_classes"] = int(num_classes)
    if kind in ("ae", "dae", "sparse-ae"):
        if not is_image:
            cfg.update(latent_dim=min(cfg["latent_dim"], max(1, size - 1)) if size > 1 else 1,
                       hidden=[64, 64], output="linear")
        elif small:
            cfg.update(latent_dim=16 if kind != "sparse-ae" else 32, hidden=[128])
    elif kind in ("vae", "cvae", "iwae"):
        if is_image:
            cfg["arch"] = "conv" if shape[1] == shape[2] and shape[1] % 4 == 0 else "mlp"
            if small:
                cfg.update(latent_dim=8, hidden=[256, 128], channels=[16, 32])
        else:
            cfg.update(likelihood="gaussian", latent_dim=2, hidden=[256, 256],
                       eval_importance_samples=100)
    else:
        if is_image:
            cfg["arch"] = "mlp" if kind == "gan" else "dcgan"
            if kind == "gan":
                cfg["hidden"] = [256, 256]
            if small:
                cfg.update(latent_dim=16, base_channels=32)
        else:
            cfg.update(arch="mlp", latent_dim=2, hidden=[128, 128, 128])
    return cfg
