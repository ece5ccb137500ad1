"""fit under torch.distributed: two gloo processes with DistributedDataParallel.

With deterministic per-example losses averaged over a batch, data-parallel training on two
shards of ``B`` examples equals single-process training on the ``2B`` examples of the same
epoch order (gradients are averaged across ranks), up to float64 rounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch._dynamo  # DDP imports it on construction: once here, not in every fork

from generative.data import load
from generative.train import fit
from samplers.distributed import launch
from tests.generative._gen_toy_tasks import RegressionTask, TwoNetTask

F64 = torch.float64
STEPS, BATCH = 9, 8


def _task(call: str) -> RegressionTask:
    return RegressionTask(dropout=0.0, noise=0.0, lr=0.05, call=call)


def _params(task: RegressionTask) -> list[torch.Tensor]:
    return [p.detach().clone() for p in task.net.parameters()]


def worker(rank: int, world_size: int, out: str, call: str) -> dict[str, Any]:
    data = load("moons", n=100, dtype=F64)
    # Rank 1 gets its own folder: it must write nothing there.
    folder = Path(out) / ("run" if rank == 0 else "rank1")
    task = _task(call)
    res = fit(task, data, steps=STEPS, batch_size=BATCH, out_dir=folder, checkpoint_every=4,
              seed=11, log_every=2)
    # Resume: 5 steps, stop, continue to STEPS in the same process group.
    half = _task(call)
    fit(half, data, steps=5, batch_size=BATCH, out_dir=Path(out) / "half", seed=11)
    again = _task(call)
    resumed = fit(again, data, steps=STEPS, batch_size=BATCH, out_dir=Path(out) / "half",
                  seed=11, resume=True)
    return {"history": res.history, "params": _params(task), "resumed": resumed.history,
            "resumed_params": _params(again)}


@pytest.mark.parametrize("call", ["forward", "method", "submodule"])
def test_two_gloo_ranks_equal_one_process_with_the_double_batch(tmp_path: Path,
                                                                call: str) -> None:
    got = launch(worker, 2, str(tmp_path), call, start_method="fork")
    single_task = _task(call)
    single = fit(single_task, load("moons", n=100, dtype=F64), steps=STEPS,
                 batch_size=2 * BATCH, seed=11)
    assert len(got["history"]) == STEPS
    for a, b in zip(got["history"], single.history, strict=True):
        assert a["step"] == b["step"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-10, abs=1e-12)
    for p, q in zip(got["params"], _params(single_task), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    # Resuming under DDP continues exactly.
    assert got["resumed"] == got["history"]
    for p, q in zip(got["params"], got["resumed_params"], strict=True):
        assert torch.equal(p, q)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert (tmp_path / "run" / "train.csv").is_file()
    assert not (tmp_path / "rank1").exists()


def bypass_worker(rank: int, world_size: int) -> str:
    task = _task("forward")
    real_step = task.training_step

    def bypassing(nets, opts, batch, step, g):  # type: ignore[no-untyped-def]
        return real_step({"net": nets["net"].module}, opts, batch, step, g)

    task.training_step = bypassing  # type: ignore[method-assign]
    try:
        fit(task, load("moons", n=100, dtype=F64), steps=3, batch_size=BATCH, seed=1)
    except ValueError as err:
        return str(err)
    return "no error"


def gan_worker(rank: int, world_size: int) -> int:
    res = fit(TwoNetTask(k=2), load("8gaussians", n=64), steps=4, batch_size=8, seed=2)
    return len(res.history)


def registry_worker(rank: int, world_size: int, kind: str) -> int:
    from generative.data import info
    from generative.registry import build_task, default_config

    task = build_task(default_config(kind, info("moons")))
    res = fit(task, load("moons", n=64), steps=3, batch_size=8, seed=3)
    return len(res.history)


@pytest.mark.parametrize("kind", ["ae", "vae", "iwae", "gan"])
def test_registry_tasks_stay_in_sync_under_ddp(kind: str) -> None:
    # fit checks that parameters agree across ranks; a task calling its model around the DDP
    # wrapper would raise "parameters differ between ranks" here.
    assert launch(registry_worker, 2, kind, start_method="fork") == 3


def test_a_task_bypassing_ddp_is_caught() -> None:
    message = launch(bypass_worker, 2, start_method="fork")
    assert "differ between ranks" in message and "'net'" in message


def test_two_network_alternating_task_runs_under_ddp() -> None:
    assert launch(gan_worker, 2, start_method="fork") == 4


_TORCHRUN_SCRIPT = """
import json, sys
import torch
from generative.data import load
from generative.train import fit
from tests.generative._gen_toy_tasks import RegressionTask
res = fit(RegressionTask(dropout=0.0, noise=0.0, lr=0.05, call="method"),
          load("moons", n=100, dtype=torch.float64), steps=6, batch_size=8, seed=11,
          out_dir=sys.argv[1])
print("RESULT", json.dumps(res.history))
"""


@pytest.mark.slow
def test_torchrun_launch(tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2``: fit joins the process group from the environment."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "train.py"
    script.write_text(_TORCHRUN_SCRIPT)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", str(script),
                           str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=300, cwd=root, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert len(lines) == 2  # both ranks return the same averaged history
    got = [json.loads(ln.split(" ", 1)[1]) for ln in lines]
    assert got[0] == got[1]
    single = fit(_task("method"), load("moons", n=100, dtype=F64), steps=6, batch_size=16,
                 seed=11)
    for a, b in zip(got[0], single.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-10)
    assert (tmp_path / "out" / "checkpoint.pt").is_file()
