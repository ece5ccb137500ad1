"""The task kinds, their default configurations and the type and range of every config key.

A config is a flat JSON-able dict ``{"kind": ..., <model keys>, <optimisation keys>}`` (see
:mod:`generative.registry`). This module holds what can be checked without building anything,
and imports neither torch nor the models, so ``probforge train`` checks ``--config`` before
loading data or torch: :func:`check_config` refuses unknown keys and values of the wrong type or
out of range, naming the key, the value, the rule and the kind's keys. Which strings a model
accepts (``likelihood``, ``arch``, ...) is checked by the model itself when it is built.

Examples
--------
>>> from generative.config_schema import check_config
>>> check_config("vae", {"latent_dim": 8, "lr": 1})["lr"]
1
>>> try:
...     check_config("vae", {"latent_dim": "abc"})
... except ValueError as err:
...     print(err)
task config of kind 'vae': key 'latent_dim' must be an int >= 1 (found 'abc').
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from probforge.errors import ValidationError

__all__ = ["DEFAULTS", "KEY_RULES", "TASK_KINDS", "check_config"]

#: Kind -> one-line help (``probforge train --help`` lists them).
TASK_KINDS: dict[str, str] = {
    "ae": "autoencoder: squared error, optional tied weights and weight decay (NNDL 9.1)",
    "dae": "denoising autoencoder: masking ratio and/or Gaussian input noise",
    "sparse-ae": "sparse autoencoder: KL penalty to a target mean activation (rho* = 0.05)",
    "vae": "variational autoencoder (ELBO; beta-VAE with beta != 1)",
    "cvae": "conditional VAE (labels enter encoder and decoder)",
    "iwae": "VAE trained on the importance-weighted bound with k samples",
    "gan": "GAN with the non-saturating (or minimax / label-swap) loss, MLP networks",
    "dcgan": "DCGAN: convolutional GAN following the five architecture rules",
    "wgan": "Wasserstein GAN: weight clipping c = 0.01, RMSProp, 5 critic steps",
    "wgan-gp": "Wasserstein GAN with gradient penalty (lambda = 10)",
    "lsgan": "least-squares GAN",
    "cgan": "conditional GAN (labels enter generator and discriminator)",
    "rbm": "Bernoulli-Bernoulli RBM trained by CD-k / PCD / PT (binary data: --binarize)",
    "grbm": "Gaussian-Bernoulli RBM on standardised real data (fixed or learned sigma)",
    "crbm": "RBM with categorical (softmax) visible units (whole-number data 0..K-1)",
    "dbn": "deep belief network pre-trained greedily, layer by layer (binary data)",
}

_AE: dict[str, Any] = {"event_shape": None, "latent_dim": 32, "hidden": [256], "tied": False,
                       "activation": "relu", "output": "sigmoid", "weight_decay": 0.0,
                       "seed": 0, "lr": 1e-3}
_VAE: dict[str, Any] = {"event_shape": None, "latent_dim": 16, "likelihood": "bernoulli",
                        "arch": "mlp", "hidden": [512, 256], "channels": [32, 64],
                        "num_classes": None, "beta": 1.0, "gaussian_std": "learned",
                        "num_categories": None, "seed": 0, "lr": 1e-3, "num_samples": 1,
                        "k": 5, "eval_importance_samples": 100}
_GAN: dict[str, Any] = {"event_shape": None, "latent_dim": 64, "arch": "mlp",
                        "hidden": [128, 128], "base_channels": 64, "num_classes": None,
                        "norm": "batch", "prior": "normal", "seed": 0, "n_critic": None,
                        "lr": None, "lr_d": None, "optimizer": None, "betas": None,
                        "clip": 0.01, "gp_weight": 10.0}

_RBM: dict[str, Any] = {
    "event_shape": None, "num_hidden": 256, "weight_std": 0.01, "seed": 0,
    "method": "pcd", "k": 1, "statistics": "probabilities", "lr": 0.05, "momentum": 0.5,
    "weight_decay": 1e-4, "sparsity_target": None, "sparsity_cost": 0.0, "num_chains": 100,
    "num_replicas": 5, "eval_ais_chains": 100, "eval_ais_temperatures": 1000,
    "sample_steps": 1000,
}
_DBN: dict[str, Any] = {
    "event_shape": None, "hidden": [500, 500], "steps_per_layer": 1000,
    "propagate": "probabilities", "method": "cd", "k": 1, "statistics": "probabilities",
    "lr": 0.05, "momentum": 0.5, "weight_decay": 1e-4, "num_chains": 100, "num_replicas": 5,
    "sample_steps": 1000, "seed": 0, "weight_std": 0.01,
}

#: Kind -> its complete default config (``event_shape`` has no default: it comes from the data).
DEFAULTS: dict[str, dict[str, Any]] = {
    "ae": {**_AE, "code_activation": "linear"},
    "dae": {**_AE, "code_activation": "linear", "mask_ratio": 0.25, "noise_std": 0.0},
    "sparse-ae": {**_AE, "latent_dim": 64, "target": 0.05, "sparsity_weight": 1.0},
    "vae": dict(_VAE),
    "cvae": dict(_VAE),
    "iwae": dict(_VAE),
    "gan": {**_GAN, "loss": "non-saturating"},
    "dcgan": {**_GAN, "arch": "dcgan", "loss": "non-saturating"},
    "cgan": {**_GAN, "loss": "non-saturating"},
    "wgan": dict(_GAN),
    "wgan-gp": {**_GAN, "norm": "layer"},
    "lsgan": dict(_GAN),
    "rbm": dict(_RBM),
    # Gaussian units: CD-1 and a small rate (Hinton's practical guide, section 13.2)
    "grbm": {**_RBM, "method": "cd", "lr": 0.005, "learn_sigma": False, "min_sigma": 0.01},
    "crbm": {**_RBM, "num_categories": None},
    "dbn": dict(_DBN),
}

Rule = tuple[str, Callable[[Any], bool]]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(minimum: int) -> Rule:
    return f"must be an int >= {minimum}", lambda v: _is_int(v) and v >= minimum


def _real(minimum: float, *, strict: bool = False, below: float | None = None) -> Rule:
    text = f"must be a finite number {'>' if strict else '>='} {minimum:g}"
    if below is not None:
        text += f" and < {below:g}"
    return text, lambda v: _is_real(v) and (v > minimum if strict else v >= minimum) and (
        below is None or v < below)


def _optional(rule: Rule) -> Rule:
    text, ok = rule
    return f"{text} or null", lambda v: v is None or ok(v)


def _int_list(minimum: int, *, nonempty: bool = False) -> Rule:
    return (f"must be a list of ints >= {minimum}" + (" (at least one)" if nonempty else ""),
            lambda v: isinstance(v, list | tuple) and (bool(v) or not nonempty)
            and all(_is_int(x) and x >= minimum for x in v))


_STR: Rule = ("must be a string", lambda v: isinstance(v, str))
_BOOL: Rule = ("must be true or false", lambda v: isinstance(v, bool))

#: Key -> (rule in words, predicate). Every key of :data:`DEFAULTS` has one.
KEY_RULES: dict[str, Rule] = {
    "event_shape": _int_list(1, nonempty=True),
    "latent_dim": _int(1),
    "hidden": _int_list(1),
    "tied": _BOOL,
    "activation": _STR,
    "code_activation": _STR,
    "output": _STR,
    "weight_decay": _real(0.0),
    "seed": _int(0),
    "lr": _real(0.0, strict=True),
    "mask_ratio": _real(0.0, below=1.0),
    "noise_std": _real(0.0),
    "target": ("must be a number in (0, 1)", lambda v: _is_real(v) and 0 < v < 1),
    "sparsity_weight": _real(0.0),
    "likelihood": _STR,
    "arch": _STR,
    "channels": _int_list(1, nonempty=True),
    "num_classes": _optional(_int(2)),
    "beta": _real(0.0),
    "gaussian_std": ("must be 'learned' or a number > 0",
                     lambda v: v == "learned" or (_is_real(v) and v > 0)),
    "num_categories": _optional(_int(2)),
    "num_samples": _int(1),
    "k": _int(1),
    "eval_importance_samples": _int(0),
    "base_channels": _int(1),
    "norm": _STR,
    "prior": _STR,
    "n_critic": _optional(_int(1)),
    "lr_d": _optional(_real(0.0, strict=True)),
    "optimizer": _optional(_STR),
    "betas": ("must be null or a list of two numbers in [0, 1)",
              lambda v: v is None or (isinstance(v, list | tuple) and len(v) == 2
                                      and all(_is_real(b) and 0 <= b < 1 for b in v))),
    "clip": _real(0.0, strict=True),
    "gp_weight": _real(0.0),
    "loss": _STR,
    "num_hidden": _int(1),
    "weight_std": _real(0.0),
    "method": ("must be 'cd', 'pcd' or 'pt'", lambda v: v in ("cd", "pcd", "pt")),
    "statistics": ("must be 'probabilities' or 'samples'",
                   lambda v: v in ("probabilities", "samples")),
    "momentum": _real(0.0, below=1.0),
    "sparsity_target": ("must be null or a number in (0, 1)",
                        lambda v: v is None or (_is_real(v) and 0 < v < 1)),
    "sparsity_cost": _real(0.0),
    "num_chains": _int(1),
    "num_replicas": _int(2),
    "eval_ais_chains": _int(0),
    "eval_ais_temperatures": _int(1),
    "sample_steps": _int(1),
    "learn_sigma": _BOOL,
    "min_sigma": _real(0.0, strict=True),
    "steps_per_layer": _int(1),
    "propagate": ("must be 'probabilities' or 'samples'",
                  lambda v: v in ("probabilities", "samples")),
}
# The GAN kinds' learning rate may be null (the loss's published default).
_GAN_KINDS = ("gan", "dcgan", "cgan", "wgan", "wgan-gp", "lsgan")
_GAN_LR: Rule = _optional(_real(0.0, strict=True))


def check_config(kind: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """Check the keys and values of a (partial) config of ``kind``; return it as a new dict.

    Parameters
    ----------
    kind : str
        One of :data:`TASK_KINDS`.
    config : mapping
        Some or all of the kind's keys (``"kind"`` may be present and must equal ``kind``).

    Raises
    ------
    ValidationError
        For an unknown kind, an unknown key, or a value of the wrong type or out of range.
    """
    if kind not in TASK_KINDS:
        raise ValidationError("task config", f"'kind' must be one of {sorted(TASK_KINDS)}",
                              found=repr(kind))
    if not isinstance(config, Mapping):
        raise ValidationError("task config", "must be a dict", found=type(config).__name__)
    subject = f"task config of kind '{kind}'"
    defaults = DEFAULTS[kind]
    if "kind" in config and config["kind"] != kind:
        raise ValidationError(subject, "'kind' contradicts the kind being built",
                              found=repr(config["kind"]))
    unknown = sorted(str(k) for k in config if k != "kind" and k not in defaults)
    if unknown:
        raise ValidationError(subject, f"unknown key(s) {', '.join(map(repr, unknown))}",
                              fix=f"use only {', '.join(sorted(defaults))}")
    for key, value in config.items():
        if key == "kind":
            continue
        text, ok = _GAN_LR if (key == "lr" and kind in _GAN_KINDS) else KEY_RULES[key]
        if not (value is None and key == "event_shape") and not ok(value):
            raise ValidationError(subject, f"key {key!r} {text}", found=repr(value))
    return dict(config)
