"""RBMTask on the shared loop: configs, exact resume with persistent chains, NaN stops, samples,
filters, evaluation figures against exact oracles, and named errors for bad input."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from generative.checkpoint import load_checkpoint
from generative.data import load
from generative.energy.rbm import BernoulliRBM, CategoricalRBM, GaussianBernoulliRBM
from generative.energy.rbm_task import RBM_DEFAULTS, RBMState, RBMTask, filter_images
from generative.energy.standardize import standardize
from generative.task import TrainTask
from generative.train import fit
from probforge.errors import ConvergenceError, NonFiniteError, ShapeError, ValidationError
from probforge.ops import make_generator
from tests.stats import seed_for

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The tensors are tiny: one intra-op thread avoids oversubscribing a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _binary(n=96, shape=(1, 3, 3), seed=0):
    g = make_generator(seed)
    protos = (torch.rand(2, *shape, generator=g) < 0.5).float()
    which = torch.randint(2, (n,), generator=g)
    flips = (torch.rand(n, *shape, generator=g) < 0.1).float()
    return (protos[which] + flips) % 2


def _task(**cfg):
    base = {"kind": "rbm", "event_shape": [1, 3, 3], "num_hidden": 4, "num_chains": 8,
            "eval_ais_chains": 0, "sample_steps": 5}
    return RBMTask.from_config({**base, **cfg})


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize("kind", ("rbm", "grbm", "crbm"))
def test_config_round_trip_and_keys(kind):
    cfg = {**RBMTask.default_config(kind), "event_shape": [2, 3]}
    if kind == "crbm":
        cfg["num_categories"] = 4
    task = RBMTask.from_config(cfg)
    assert isinstance(task, TrainTask)
    out = task.config()
    assert set(out) == {"kind", *RBM_DEFAULTS[kind]}
    assert out == cfg
    assert RBMTask.from_config(out).config() == out
    again = RBMTask.from_config(out)  # same seed, same initial weights
    assert torch.equal(again.rbm.weight, task.rbm.weight)
    rbm = task.rbm
    assert isinstance(rbm, {"rbm": BernoulliRBM, "grbm": GaussianBernoulliRBM,
                            "crbm": CategoricalRBM}[kind])
    assert rbm.num_visible == 6 and task.kind() == kind
    nets = task.networks()
    assert set(nets) == {"rbm", "state"} and isinstance(nets["state"], RBMState)
    assert not list(nets["state"].parameters())


def test_chain_buffers_follow_the_method():
    assert _task(method="cd").state.chains.shape == (0, 9)
    assert _task(method="pcd").state.chains.shape == (8, 9)
    assert _task(method="pt", num_replicas=3).state.chains.shape == (3, 8, 9)


# ---------------------------------------------------------------------------- fit
@pytest.mark.parametrize("method", ("pcd", "pt"))
def test_resume_continues_exactly_with_the_persistent_chains(tmp_path: Path, method):
    """20 steps straight vs 7 steps, stop, resume to 20: same losses, parameters, chains and
    momentum buffers, bit for bit (CPU)."""
    x = _binary()
    kw = dict(batch_size=16, seed=5, checkpoint_every=5, log_every=3)
    full_task = _task(method=method, num_replicas=3)
    full = fit(full_task, x, steps=20, out_dir=tmp_path / "full", **kw)
    fit(_task(method=method, num_replicas=3), x, steps=7, out_dir=tmp_path / "split", **kw)
    again = _task(method=method, num_replicas=3)
    resumed = fit(again, x, steps=20, out_dir=tmp_path / "split", resume=True, **kw)
    assert [r for r in full.history] == [r for r in resumed.history]
    for (name, a), b in zip(full_task.rbm.state_dict().items(),
                            again.rbm.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(full_task.state.chains, again.state.chains)
    assert not torch.equal(full_task.state.chains, torch.zeros_like(again.state.chains))
    if method == "pt":
        assert "swap_rate" in full.history[-1]


def test_cd_fit_writes_samples_and_filters(tmp_path: Path):
    x = _binary()
    task = _task(method="cd", k=2)
    res = fit(task, x, steps=12, batch_size=16, out_dir=tmp_path, sample_every=6, num_samples=9)
    assert res.status == "completed"
    for name in ("step_0000006.png", "filters_step_0000012.png"):
        assert (tmp_path / "samples" / name).read_bytes()[:4] == b"\x89PNG"


def test_gaussian_rbm_with_learned_sigma_trains_stably_through_fit():
    """A learned-sigma GRBM on standardised digits for 300 steps: finite parameters, sigma at
    or above its floor, the exact log-likelihood (2^16 hidden states, data units) improves by
    more than 5 nats per example, samples are images in [0, 1]."""
    ds = load("digits", "train")
    _, st = standardize(ds.x)
    task = RBMTask.from_config({"kind": "grbm", "event_shape": [1, 8, 8], "num_hidden": 16,
                                "learn_sigma": True, "min_sigma": 0.05, "lr": 0.005,
                                "eval_ais_chains": 0, "sample_steps": 20})
    task.set_standardizer(st)
    before = task.evaluate(task.networks(), (ds.x[:300], None), make_generator(0))
    res = fit(task, ds.x, steps=300, batch_size=64, seed=seed_for(0), eval_every=300,
              eval_examples=300)
    assert res.status == "completed"
    rbm = task.rbm
    assert all(bool(torch.isfinite(p.detach()).all()) for p in rbm.parameters())
    assert float(rbm.sigma.detach().min()) >= 0.05
    after = res.eval_history[-1]
    assert after["log_likelihood"] > before["log_likelihood"] + 5, (before, after)
    assert after["recon_error"] < before["recon_error"]
    s = task.sample(task.networks(), 6, make_generator(1))
    assert s.shape == (6, 1, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1


def test_a_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    """An absurd learning rate makes the GRBM diverge: fit stops at the first non-finite loss,
    and the last checkpoint before it holds finite weights."""
    g = make_generator(0)
    x = torch.randn(256, 6, generator=g) * torch.tensor([1.0, 2, 3, 0.5, 1, 1]) + 3
    _, st = standardize(x)
    task = RBMTask.from_config({"kind": "grbm", "event_shape": [6], "num_hidden": 8,
                                "learn_sigma": True, "lr": 1.0, "momentum": 0.9,
                                "method": "cd", "eval_ais_chains": 0})
    task.set_standardizer(st)
    with pytest.raises(ConvergenceError) as info:
        fit(task, x, steps=200, batch_size=32, seed=0, out_dir=tmp_path, checkpoint_every=1)
    err = info.value
    assert err.checkpoint is not None and err.step > 1
    ck = load_checkpoint(err.checkpoint)
    assert ck["step"] == err.step - 1
    for net in ck["nets"].values():
        for t in net.values():
            assert bool(torch.isfinite(t).all())


# ---------------------------------------------------------------------------- sample / evaluate
def _brute_pll(rbm, v):
    """sum_i log p(v_i | v_-i) from free energies of the flipped vectors."""
    out = torch.zeros(v.shape[0], dtype=v.dtype)
    with torch.no_grad():
        f = -rbm.free_energy(v)
        for i in range(v.shape[1]):
            w = v.clone()
            w[:, i] = 1 - w[:, i]
            out += f - torch.logaddexp(f, -rbm.free_energy(w))
    return out


def test_evaluate_figures_against_exact_oracles():
    """recon error and pseudo-likelihood (summed over all 9 units) by brute force; the exact
    log-likelihood from enumeration; AIS within 4 standard errors plus 0.05 nats of it (the
    AIS estimate is a stochastic lower bound; false-failure rate below 1e-4)."""
    x = _binary(n=64).double()
    task = _task(eval_ais_chains=200, eval_ais_temperatures=300)
    res = fit(task, x, steps=30, batch_size=16, seed=1, dtype=F64)
    assert res.status == "completed"
    nets = task.networks()
    rbm = task.rbm
    v = x.reshape(64, 9)
    g = make_generator(seed_for(2))
    out = task.evaluate(nets, (x[:32], None), g)
    assert set(out) == {"recon_error", "pseudo_log_likelihood", "log_likelihood", "ais_log_z",
                        "ais_log_z_se", "ais_log_likelihood"}
    with torch.no_grad():
        assert math.isclose(out["recon_error"], float(rbm.reconstruction_error(v[:32]).mean()),
                            rel_tol=1e-12)
        assert math.isclose(out["pseudo_log_likelihood"], float(_brute_pll(rbm, v[:32]).mean()),
                            rel_tol=1e-10)
        assert math.isclose(out["log_likelihood"], float(rbm.log_prob(v[:32]).mean()),
                            rel_tol=1e-10)
    assert abs(out["ais_log_likelihood"] - out["log_likelihood"]) < 4 * out["ais_log_z_se"] + 0.05
    # the second batch of the same evaluation reuses the AIS estimate
    out2 = task.evaluate(nets, (x[32:], None), g)
    assert out2["ais_log_z"] == out["ais_log_z"]


def test_gaussian_evaluation_is_in_data_units():
    x = torch.randn(40, 3, generator=make_generator(0), dtype=F64) * 5 + 2
    z, st = standardize(x)
    task = RBMTask.from_config({"kind": "grbm", "event_shape": [3], "num_hidden": 3,
                                "eval_ais_chains": 0, "sample_steps": 3})
    task.rbm.to(F64)
    task.state.to(F64)
    task.set_standardizer(st)
    out = task.evaluate(task.networks(), (x, None), make_generator(1))
    assert "pseudo_log_likelihood" not in out
    with torch.no_grad():
        want = float(task.rbm.log_prob(z).mean()) - float(st.std.log().sum())
    assert math.isclose(out["log_likelihood"], want, rel_tol=1e-12)
    s = task.sample(task.networks(), 500, make_generator(2))
    assert s.shape == (500, 3)
    # an untrained GRBM (tiny weights) samples about N(a, 1) in z: mean 2 in data units
    assert abs(float(s.mean(0)[0]) - 2.0) < 1.0


def test_categorical_task_samples_and_filters():
    g = make_generator(3)
    x = torch.randint(4, (48, 2, 3), generator=g).double()
    task = RBMTask.from_config({"kind": "crbm", "event_shape": [2, 3], "num_categories": 4,
                                "num_hidden": 5, "num_chains": 6, "eval_ais_chains": 0,
                                "sample_steps": 4})
    res = fit(task, x, steps=6, batch_size=12, seed=0, dtype=F64)
    assert res.status == "completed"
    s = task.sample(task.networks(), 7, make_generator(4))
    assert s.shape == (7, 2, 3) and float(s.min()) >= 0 and float(s.max()) <= 1
    figs = task.figures(task.networks())
    assert figs["filters"].shape == (5, 1, 2, 3)
    out = task.evaluate(task.networks(), (x, None), make_generator(5))
    assert math.isfinite(out["pseudo_log_likelihood"]) and "log_likelihood" in out


def test_filters(tmp_path: Path):
    rbm = BernoulliRBM(64, 7, weight_std=1.0)
    tiles = filter_images(rbm, (1, 8, 8))
    assert tiles.shape == (7, 1, 8, 8)
    assert torch.allclose(tiles.amin((1, 2, 3)), torch.zeros(7))
    assert torch.allclose(tiles.amax((1, 2, 3)), torch.ones(7))
    w = rbm.weight.detach()[:, 2]
    assert torch.allclose(tiles[2].reshape(-1), (w - w.min()) / (w.max() - w.min()))
    assert filter_images(BernoulliRBM(10, 2)).shape == (2, 1, 1, 10)
    task = _task()
    task.save_filters(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------- bad input
def _step(task, x, step=0):
    nets = task.networks()
    opts, _ = task.make_optimizers(nets)
    return task.training_step(nets, opts, (x, None), step, make_generator(0))


def test_training_step_terms_and_chains():
    task = _task(method="pcd")
    terms = _step(task, _binary(n=16))
    assert set(terms) == {"recon_error", "free_energy_gap"}
    assert all(t.dim() == 0 and not t.requires_grad for t in terms.values())
    assert task.state.chains.abs().sum() > 0


BAD = [
    ("non-binary data", ValidationError, lambda: _step(_task(), torch.full((4, 1, 3, 3), 0.5))),
    ("wrong event shape", ShapeError, lambda: _step(_task(), torch.zeros(4, 9))),
    ("integer data", ValueError, lambda: _step(_task(), torch.zeros(4, 1, 3, 3,
                                                                    dtype=torch.long))),
    ("NaN for Gaussian units", NonFiniteError,
     lambda: _step(RBMTask.from_config({"kind": "grbm", "event_shape": [3]}),
                   torch.tensor([[0.0, float("nan"), 1.0]]))),
    ("non-integer categories", ValidationError,
     lambda: _step(RBMTask.from_config({"kind": "crbm", "event_shape": [3],
                                        "num_categories": 3}), torch.tensor([[0.0, 1.5, 2.0]]))),
    ("category out of range", ValidationError,
     lambda: _step(RBMTask.from_config({"kind": "crbm", "event_shape": [3],
                                        "num_categories": 3}), torch.tensor([[0.0, 3.0, 2.0]]))),
    ("labels for an RBM", ValidationError,
     lambda: _task().sample(_task().networks(), 2, None, torch.zeros(2, dtype=torch.long))),
    ("unknown config key", ValidationError, lambda: _task(hidden=[4])),
    ("unknown kind", ValidationError, lambda: RBMTask.from_config({"kind": "dbm"})),
    ("missing event shape", ValidationError, lambda: RBMTask.from_config({"kind": "rbm"})),
    ("crbm without categories", ValidationError,
     lambda: RBMTask.from_config({"kind": "crbm", "event_shape": [3]})),
    ("bad method", ValidationError, lambda: _task(method="cd-1")),
    ("bad statistics", ValidationError, lambda: _task(statistics="means")),
    ("k = 0", ValidationError, lambda: _task(k=0)),
    ("negative lr", ValidationError, lambda: _task(lr=-1.0)),
    ("momentum 1", ValidationError, lambda: _task(momentum=1.0)),
    ("one replica", ValidationError, lambda: _task(method="pt", num_replicas=1)),
    ("event shape of another size", ShapeError,
     lambda: RBMTask(BernoulliRBM(5, 2), event_shape=(2, 3))),
    ("standardiser for binary units", ValidationError,
     lambda: _task().set_standardizer(standardize(torch.randn(5, 1, 3, 3))[1])),
    ("standardiser of another shape", ShapeError,
     lambda: RBMTask.from_config({"kind": "grbm", "event_shape": [3]}).set_standardizer(
         standardize(torch.randn(5, 4))[1])),
    ("not an RBM", ValidationError, lambda: RBMTask(torch.nn.Linear(2, 2))),
    ("nets without the state", ValidationError,
     lambda: _task().training_step({"rbm": _task().rbm}, {}, (_binary(4), None), 0, None)),
]


@pytest.mark.parametrize(("what", "error", "call"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_named_errors(what, error, call):
    with pytest.raises(error):
        call()
