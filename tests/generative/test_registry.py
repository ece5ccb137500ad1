"""generative.registry: every kind builds, configs round-trip, bad configs raise named errors."""

from __future__ import annotations

import json

import pytest
import torch

from generative.registry import TASK_KINDS, build_task, default_config
from generative.task import TrainTask
from probforge.errors import ValidationError
from probforge.ops.random import make_generator


def _infos() -> list[object]:
    from generative.data import info

    return [info("digits"), info("8gaussians"), info("fashion-mnist", binarize="fixed"),
            info("digits", binarize="fixed")]


@pytest.mark.parametrize("kind", sorted(TASK_KINDS))
def test_every_kind_builds_round_trips_and_trains_one_step(kind: str) -> None:
    for data_info in _infos():
        if kind == "dcgan" and not data_info.is_image:  # type: ignore[attr-defined]
            with pytest.raises(ValidationError, match="image"):
                default_config(kind, data_info)
            continue
        binary = getattr(data_info, "binarized", None) is not None
        if kind == "crbm" or (kind in ("rbm", "dbn") and not binary):
            # binary units need binarised data; no bundled set holds whole-number categories
            with pytest.raises(ValidationError, match=r"binar|whole-number"):
                default_config(kind, data_info)
            continue
        cfg = default_config(kind, data_info)
        json.dumps(cfg)  # JSON-serialisable
        task = build_task(cfg)
        assert isinstance(task, TrainTask)
        cfg2 = task.config()
        assert cfg2["kind"] == kind
        again = build_task(json.loads(json.dumps(cfg2)))
        assert again.config() == cfg2
        # equal untrained networks (same seed)
        for (n1, a), (n2, b) in zip(task.networks().items(), again.networks().items(),
                                    strict=True):
            assert n1 == n2
            assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                         b.state_dict().values(), strict=True))
        if getattr(data_info, "name", "") != "digits":
            continue
        nets = task.networks()
        opts, _ = task.make_optimizers(nets)
        x = (torch.rand(8, 1, 8, 8, generator=make_generator(0)) > 0.5).float()
        y = torch.arange(8) % 10
        terms = task.training_step(nets, opts, (x, y), 0, make_generator(1))
        assert terms and all(torch.isfinite(v) and v.numel() == 1 for v in terms.values())
        s = task.sample(nets, 4, make_generator(2))
        assert s.shape == (4, 1, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1
        figures = task.evaluate(nets, (x, y), make_generator(3))
        assert figures and all(isinstance(v, float) for v in figures.values())


def test_unknown_and_missing_keys_are_named() -> None:
    with pytest.raises(ValidationError, match="'latent_dims'"):
        build_task({"kind": "vae", "event_shape": [4], "latent_dims": 3})
    with pytest.raises(ValidationError, match="'loss'"):
        build_task({"kind": "wgan", "event_shape": [2], "loss": "minimax"})
    with pytest.raises(ValidationError, match="event_shape"):
        build_task({"kind": "ae"})
    with pytest.raises(ValidationError, match="kind"):
        build_task({"kind": "flow", "event_shape": [2]})
    with pytest.raises(ValidationError, match="num_classes"):
        build_task({"kind": "cgan", "event_shape": [2]})
    with pytest.raises(ValidationError, match="labelled"):
        default_config("cvae", type("Info", (), {"name": "x", "event_shape": (2,),
                                                 "num_classes": None, "is_image": False})())


def test_default_configs_size_models_for_the_data() -> None:
    from generative.data import info

    assert default_config("vae", info("8gaussians"))["likelihood"] == "gaussian"
    assert default_config("vae", info("fashion-mnist"))["arch"] == "conv"
    assert default_config("dcgan", info("digits"))["arch"] == "dcgan"
    assert default_config("wgan-gp", info("digits"))["norm"] == "layer"
    assert default_config("cgan", info("digits"))["num_classes"] == 10
    t = build_task(default_config("wgan", info("8gaussians")))
    assert t.config()["optimizer"] == "rmsprop" and t.config()["n_critic"] == 5
    assert build_task(default_config("iwae", info("digits"))).config()["kind"] == "iwae"


def test_fit_trains_registry_tasks() -> None:
    fit = pytest.importorskip("generative.train").fit
    from generative.data import load

    ds = load("8gaussians", "train", n=512)
    for kind in ("vae", "wgan-gp"):
        task = build_task(default_config(kind, ds.info))
        res = fit(task, ds, steps=10, batch_size=64, seed=0, eval_every=10, eval_examples=128)
        assert res.status == "completed" and res.step == 10
        assert res.eval_history and all(k in res.eval_history[-1] for k in ("step",))
