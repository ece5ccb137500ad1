"""DBNTask: layer schedule, config round trip, and named errors for bad input."""

from __future__ import annotations

import pytest
import torch

from generative.energy.dbn import DBN
from generative.energy.dbn_task import DBNTask
from probforge.errors import ShapeError, ValidationError
from probforge.ops import make_generator


def _task(**extra: object) -> DBNTask:
    return DBNTask.from_config({"kind": "dbn", "event_shape": [1, 3, 3], "hidden": [4, 2],
                                "steps_per_layer": 2, "sample_steps": 3, **extra})


def _x(rows: int = 6) -> torch.Tensor:
    return (torch.rand(rows, 1, 3, 3, generator=make_generator(0)) > 0.5).float()


def test_layers_follow_the_schedule_and_lower_layers_stay_fixed() -> None:
    task = _task(method="pcd", num_chains=5)
    nets = task.networks()
    opts, _ = task.make_optimizers(nets)
    assert [task.layer_at(s) for s in range(6)] == [0, 0, 1, 1, 1, 1]
    bottom = task.dbn.rbms[0].weight.detach().clone()
    for step in range(4):
        terms = task.training_step(nets, opts, (_x(), None), step, make_generator(step))
        assert float(terms["layer"]) == task.layer_at(step)
        if step == 1:
            bottom = task.dbn.rbms[0].weight.detach().clone()
    # steps 2 and 3 train layer 1 only: the bottom layer's weights did not move
    assert torch.equal(task.dbn.rbms[0].weight, bottom)
    assert task.state.chains(1).shape == (5, 4)
    assert DBNTask.from_config(task.config()).config() == task.config()
    ev = task.evaluate(nets, (_x(), None), make_generator(9))
    assert set(ev) == {"recon_error_1", "recon_error_2"}


def test_bad_input_gets_named_errors() -> None:
    task = _task()
    nets = task.networks()
    opts, _ = task.make_optimizers(nets)
    with pytest.raises(ValidationError, match=r"binary|0 or 1"):
        task.training_step(nets, opts, (torch.full((2, 1, 3, 3), 0.5), None), 0, None)
    with pytest.raises(ShapeError):
        task.training_step(nets, opts, (torch.zeros(2, 9), None), 0, None)
    with pytest.raises(ValidationError):
        task.training_step(nets, opts, (torch.zeros(2, 1, 3, 3, dtype=torch.long), None), 0,
                           None)
    with pytest.raises(ValidationError, match=r"NaN|finite|0 or 1"):
        task.training_step(nets, opts, (torch.full((2, 1, 3, 3), float("nan")), None), 0, None)
    with pytest.raises(ValidationError, match="layer1"):
        task.training_step(nets, {"layer0": opts["layer0"]}, (_x(), None), 2, None)
    with pytest.raises(ValidationError, match="'dbn'"):
        task.training_step({"state": nets["state"]}, opts, (_x(), None), 0, None)
    with pytest.raises(ValidationError, match="unconditional"):
        task.sample(nets, 2, None, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValidationError):
        task.sample(nets, 0, None)
    with pytest.raises(ValidationError, match="propagate"):
        _task(propagate="mean")
    with pytest.raises(ValidationError, match="hidden"):
        _task(hidden=[])
    with pytest.raises(ValidationError, match="steps_per_layer"):
        _task(steps_per_layer=0)
    with pytest.raises(ValidationError, match="unknown"):
        _task(layers=[3])
    gauss = DBN.from_layer_sizes([9, 4], visible="gaussian")
    with pytest.raises(ValidationError, match="Bernoulli bottom"):
        DBNTask(gauss, event_shape=[9])
    with pytest.raises(ShapeError, match="visible units"):
        DBNTask(DBN.from_layer_sizes([9, 4]), event_shape=[2, 2])
