"""generative.config_schema: the task kinds' keys, their types and ranges, checked without torch."""

from __future__ import annotations

import math

import pytest

from generative.config_schema import DEFAULTS, KEY_RULES, TASK_KINDS, check_config
from probforge.errors import ValidationError


def test_every_default_satisfies_its_rule() -> None:
    assert set(DEFAULTS) == set(TASK_KINDS)
    for kind, defaults in DEFAULTS.items():
        config = {k: v for k, v in defaults.items() if k != "event_shape"}
        assert check_config(kind, config) == config
        assert check_config(kind, {**config, "event_shape": [1, 8, 8], "kind": kind})


@pytest.mark.parametrize("kind, config, text", [
    ("vea", {}, "'kind' must be one of"),
    (None, {}, "'kind' must be one of"),
    ("vae", [("latent_dim", 2)], "must be a dict"),
    ("vae", {"kind": "gan"}, "contradicts the kind"),
    ("vae", {"latent_dim": 0}, "'latent_dim' must be an int >= 1"),
    ("vae", {"latent_dim": True}, "'latent_dim' must be an int >= 1"),
    ("vae", {"latent_dim": 2.0}, "'latent_dim' must be an int >= 1"),
    ("vae", {"lr": 0}, "'lr' must be a finite number > 0"),
    ("vae", {"lr": math.nan}, "'lr' must be a finite number > 0"),
    ("vae", {"lr": None}, "'lr' must be a finite number > 0"),
    ("vae", {"hidden": "256"}, "'hidden' must be a list of ints"),
    ("vae", {"channels": []}, "'channels' must be a list of ints >= 1 (at least one)"),
    ("vae", {"gaussian_std": -1.0}, "'gaussian_std' must be 'learned' or a number > 0"),
    ("vae", {"event_shape": [0]}, "'event_shape' must be a list of ints >= 1"),
    ("dae", {"mask_ratio": 1.0}, "'mask_ratio' must be a finite number >= 0 and < 1"),
    ("sparse-ae", {"target": 1}, "'target' must be a number in (0, 1)"),
    ("gan", {"betas": [0.5]}, "'betas' must be null or a list of two numbers"),
    ("gan", {"n_critic": 0}, "'n_critic' must be an int >= 1 or null"),
    ("ae", {"tied": 1}, "'tied' must be true or false"),
    ("ae", {"beta": 1.0}, "unknown key(s) 'beta'"),
])
def test_bad_configs_are_refused_with_the_rule(kind: object, config: object, text: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_config(kind, config)  # type: ignore[arg-type]
    assert text in str(err.value)


def test_gan_kinds_take_a_null_learning_rate() -> None:
    assert check_config("wgan-gp", {"lr": None, "lr_d": None})["lr"] is None
    assert set(KEY_RULES) >= {k for d in DEFAULTS.values() for k in d}
