"""The generative layer's command line: ``probforge train``, checkpoint sampling, tour step.

``probforge train KIND --data NAME --out DIR [--steps N | --epochs E] [--batch-size B]
[--resume] [--seed S] [--config key=value ...]`` builds the task ``KIND`` (``vae``, ``gan``, ...,
see :data:`generative.config_schema.TASK_KINDS`) sized for the data set by
:func:`generative.registry.default_config`, applies the ``--config`` overrides (values are JSON:
``--config latent_dim=8 hidden=[64,64] beta=0.5``; repeated ``--config`` flags accumulate, a key
given twice, an unknown key and a value of the wrong type or range are refused before anything is
loaded) and trains it with :func:`generative.train.fit`, writing checkpoints, logs and sample
grids under ``DIR``. ``--resume`` continues from ``DIR/checkpoint.pt`` with the checkpoint's
configuration.

``probforge sample --checkpoint DIR/checkpoint.pt --n 64 --out grid.png [--seed S]`` rebuilds the
model from a checkpoint and writes a sample grid (or, for 2-D data, a scatter picture; a ``.pt``
output gets the raw tensor). The ``sample`` subcommand belongs to ``samplers``; it reaches
:func:`sample_checkpoint` through the entry-point group ``probforge.checkpoint_samplers``, so
``samplers`` imports nothing from this layer.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any, cast

from generative.config_schema import TASK_KINDS, check_config
from probforge.cli import TourStep
from probforge.cli_args import (
    BooleanFlag,
    assignment,
    assignments,
    device_name,
    int_at_least,
    output_file,
)
from probforge.errors import UsageError, ValidationError

__all__ = ["DATA_SETS", "TOUR_STEPS", "checked_overrides", "parse_overrides", "register",
           "run_train", "sample_checkpoint"]

PROG = "probforge train"
_DTYPES = ("float32", "float64")
#: The names :func:`generative.data.load` knows (a test keeps this equal to ``DATASETS``).
DATA_SETS = ("25gaussians", "8gaussians", "checkerboard", "digits", "fashion-mnist", "moons",
             "rings", "swissroll")
#: Config keys that the command line sets itself.
_RESERVED = {"kind": "the kind is the command's KIND argument",
             "event_shape": "the event shape comes from the data set"}


def _kinds_help() -> str:
    return "model kind: " + "; ".join(f"{k} ({v})" for k, v in TASK_KINDS.items())


def register(subparsers: Any) -> None:
    """Add ``train`` to the ``probforge`` command line."""
    p = subparsers.add_parser(
        "train", help="train a generative model (VAE, GAN, autoencoder, RBM, DBN) on an offline "
        "data set, with checkpoints, logs and PNG sample grids",
        description="Train a deep generative model with generative.train.fit. Resumable: "
        "rerun with --resume to continue from DIR/checkpoint.pt.")
    p.add_argument("kind", metavar="KIND", choices=tuple(TASK_KINDS), help=_kinds_help())
    p.add_argument("--data", required=True, metavar="NAME", choices=DATA_SETS,
                   help=f"data set: {', '.join(DATA_SETS)}")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for checkpoints, logs "
                   "and sample grids")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int_at_least(1),
                        help="training steps in all (default 2000)")
    length.add_argument("--epochs", type=int_at_least(1), help="passes over the training data")
    p.add_argument("--batch-size", type=int_at_least(1), default=64,
                   help="examples per step (default 64)")
    p.add_argument("--resume", action="store_true",
                   help="continue from DIR/checkpoint.pt (same data and batch size)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--config", nargs="+", type=assignment, default=[], metavar="KEY=VALUE",
                   help="override the kind's default configuration (JSON values); repeated "
                   "flags accumulate, each key once")
    p.add_argument("--binarize", choices=("fixed", "stochastic"),
                   help="binarise image data (threshold 0.5, or Bernoulli draws once)")
    p.add_argument("--train-examples", type=int_at_least(1), metavar="N",
                   help="use the first N training examples (toys: draw N points)")
    p.add_argument("--eval-examples", type=int_at_least(1), default=1000, metavar="N",
                   help="held-out (test split) examples per evaluation (default 1000)")
    for name, what in (("eval", "evaluate on the test split"), ("sample", "write a sample grid"),
                       ("checkpoint", "write a checkpoint")):
        p.add_argument(f"--{name}-every", type=int_at_least(0), metavar="N",
                       help=f"{what} every N steps (default: a tenth of the run; 0: only at "
                       "the end)" if name == "checkpoint" else
                       f"{what} every N steps (default: a tenth of the run; 0: never)")
    p.add_argument("--num-samples", type=int_at_least(1), default=64,
                   help="samples per grid (default 64)")
    p.add_argument("--log-every", type=int_at_least(1), default=10,
                   help="copy losses to the host every N steps (default 10)")
    p.add_argument("--device", type=device_name, default="cpu", help="torch device (default cpu)")
    p.add_argument("--dtype", default="float32", choices=_DTYPES)
    p.add_argument("--progress", action=BooleanFlag, default=True,
                   help="show a progress bar (default on)")
    p.set_defaults(func=run_train)


def parse_overrides(items: list[str] | list[tuple[str, str]]) -> dict[str, Any]:
    """``["latent_dim=8", "hidden=[64,64]", "likelihood=gaussian"]`` -> a dict.

    Values are parsed as JSON where they can be (numbers, lists, true/false/null), else kept
    as strings. A key given twice is refused (never last-one-wins). Items may also be
    ``(key, value)`` pairs as :func:`probforge.cli_args.assignment` makes them.

    Examples
    --------
    >>> parse_overrides(["latent_dim=8", "hidden=[64, 64]", "likelihood=gaussian"])
    {'latent_dim': 8, 'hidden': [64, 64], 'likelihood': 'gaussian'}
    """
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, tuple):
            pairs.append(item)
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError("--config", "entries must look like KEY=VALUE",
                             found=repr(item), fix="e.g. --config latent_dim=8")
        pairs.append((key, raw))
    out: dict[str, Any] = {}
    for key, raw in assignments(pairs, PROG, "--config").items():
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def checked_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--config`` overrides of parsed ``probforge train`` arguments, checked.

    Keys given twice, ``kind`` and ``event_shape`` (set by the command), unknown keys and
    values of the wrong type or range raise :class:`~probforge.errors.UsageError`. Neither
    data nor torch is loaded.
    """
    overrides = parse_overrides(args.config)
    for key, why in _RESERVED.items():
        if key in overrides:
            raise UsageError(PROG, f"--config {key} cannot be set: {why}",
                             found=repr(overrides[key]))
    try:
        check_config(args.kind, overrides)
    except ValidationError as err:
        raise UsageError(f"{PROG} {args.kind} --config", err.problem, found=err.found,
                         fix=err.fix) from None
    return overrides


def _every(value: int | None, total: int) -> int:
    return max(1, total // 10) if value is None else value


def run_train(args: argparse.Namespace) -> int:
    """Run ``probforge train``."""
    overrides = checked_overrides(args)
    if args.resume and args.config:
        raise UsageError(PROG, "--config cannot change the configuration of a resumed run",
                         found=args.config, fix="drop --config, or train into a new --out folder")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(PROG, "--out must be a folder", found=str(out))
    import torch

    from generative.checkpoint import (
        check_training_checkpoint,
        checkpoint_config,
        load_checkpoint,
    )
    from generative.data import DataInfo, info, load
    from generative.registry import build_task, default_config
    from generative.train import CHECKPOINT_NAME, fit
    from probforge.validate import check_device

    device = check_device(args.device, "--device")
    dtype = getattr(torch, args.dtype)
    if args.resume:
        ck_path = out / CHECKPOINT_NAME
        if not ck_path.is_file():
            raise UsageError(PROG, "--resume needs a checkpoint to continue from",
                             found=str(ck_path), fix="train without --resume first")
        ck = load_checkpoint(ck_path)
        config = checkpoint_config(ck)
        ck_info = DataInfo.from_dict(check_training_checkpoint(ck, ck_path).meta.get("data"))
        if config.get("kind") != args.kind or ck_info.name != args.data:
            raise ValidationError(
                "probforge train --resume", "the checkpoint is of another model or data set",
                found=(config.get("kind"), ck_info.name), fix=f"run 'probforge train "
                f"{config.get('kind')} --data {ck_info.name} --out {out} --resume'")
    else:
        config = default_config(args.kind, info(args.data, binarize=args.binarize))
        config.update(overrides)
        config["kind"] = args.kind
    task = build_task(config)  # every value is checked before the data are loaded
    data = load(args.data, "train", n=args.train_examples, binarize=args.binarize, dtype=dtype)
    if config["kind"] == "grbm" and not args.resume:
        # Gaussian units train on standardised data; the map is checkpointed with the model
        from generative.energy.standardize import standardize

        task.set_standardizer(standardize(data.x)[1])  # type: ignore[attr-defined]
    n_test = args.eval_examples if data.info.is_image is False else None
    test = load(args.data, "test", n=n_test, binarize=args.binarize, dtype=dtype)
    if args.epochs is not None:
        steps, epochs = None, args.epochs
        total = args.epochs * max(1, len(data) // args.batch_size)
    else:
        steps, epochs = (args.steps if args.steps is not None else 2000), None
        total = steps
    result = fit(
        task, data, steps=steps, epochs=epochs,
        batch_size=args.batch_size, out_dir=out, eval_data=test,
        eval_every=_every(args.eval_every, total), eval_examples=args.eval_examples,
        sample_every=_every(args.sample_every, total),
        checkpoint_every=_every(args.checkpoint_every, total), num_samples=args.num_samples,
        resume=args.resume, seed=args.seed, device=device, dtype=dtype,
        progress=args.progress, log_every=args.log_every)
    last = {k: v for k, v in result.last.items() if k not in ("step", "epoch")}
    print(f"{args.kind} on {args.data}: {result.step} steps "
          f"({result.examples_per_second:,.0f} examples/s); last losses "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
    if result.eval_history:
        ev = {k: v for k, v in result.eval_history[-1].items() if k != "step"}
        print("evaluation (test split): " + ", ".join(f"{k} {v:.4g}" for k, v in ev.items()))
    print(f"wrote {out / CHECKPOINT_NAME}, {out / 'train.csv'}, {out / 'metrics.json'} and "
          f"sample grids in {out / 'samples'}")
    print(f"try: probforge sample --checkpoint {out / CHECKPOINT_NAME} --n 64 --out grid.png")
    return 0


def sample_checkpoint(args: argparse.Namespace) -> int:
    """``probforge sample --checkpoint CKPT --n N --out FILE [--seed S] [--device D]``.

    Rebuilds the task from the checkpoint's configuration, loads its networks and writes ``N``
    samples: a PNG grid for images, a scatter picture for 2-D data, or the tensor itself when
    ``FILE`` ends in ``.pt``.
    """
    import torch

    from generative.checkpoint import restore_task
    from generative.images import save_samples, write_bytes_atomic
    from probforge.ops.random import make_generator
    from probforge.validate import check_device, check_existing_file, check_int

    n = check_int(getattr(args, "n", 64), "--n", minimum=1)
    out = Path(args.out) if getattr(args, "out", None) else \
        Path(args.checkpoint).parent / "samples.png"
    try:
        output_file(".png", ".pt")(str(out))
    except argparse.ArgumentTypeError as err:
        raise UsageError("probforge sample --checkpoint", f"--out: {err}") from None
    device = check_device(getattr(args, "device", "cpu") or "cpu", "--device")
    ck_path = check_existing_file(args.checkpoint, "--checkpoint")
    restored = restore_task(ck_path, device=device)  # every part checked, typed errors
    task, nets, config, info = restored.task, restored.nets, restored.config, restored.data_info
    seed = int(getattr(args, "seed", 0))
    with torch.no_grad():
        samples = task.sample(nets, n, make_generator(seed, device))
    if out.suffix.lower() == ".pt":
        buf = io.BytesIO()
        torch.save(samples.detach().cpu(), buf)
        write_bytes_atomic(out, buf.getvalue())
    else:
        save_samples(out, samples, bounds=None if info.is_image else info.value_range,
                     centres=info.centres())
    print(f"{config.get('kind')} from {ck_path} (step {restored.step}): {n} samples of shape "
          f"{tuple(samples.shape[1:])}, seed {seed} -> wrote {out}")
    return 0


def _generative_tour(out: Path, seed: int) -> list[str]:
    import torch

    from generative.data import info, load
    from generative.metrics import mmd2, mode_coverage
    from generative.registry import build_task, default_config
    from generative.train import fit
    from probforge.ops.random import make_generator

    data = load("8gaussians", "train", n=2048)
    test = load("8gaussians", "test", n=512)
    config = default_config("gan", info("8gaussians"))
    config.update(seed=seed, lr=1e-3)
    task = build_task(config)
    res = fit(task, data, steps=TOUR_STEPS_COUNT, batch_size=128, out_dir=out, eval_data=test,
              eval_every=200, sample_every=200, num_samples=512, seed=seed, log_every=50)
    nets = task.networks()
    with torch.no_grad():
        fake = task.sample(nets, 2000, make_generator(seed + 1))
    centres = data.info.centres()
    std = data.info.mode_std
    assert centres is not None and std is not None
    tight = mode_coverage(fake, centres, std, num_std=3.0)
    loose = mode_coverage(fake, centres, std, num_std=10.0)
    mmd = float(mmd2(fake[:512], test.x))
    last = res.last
    return [
        "A GAN (non-saturating loss, MLP generator and discriminator, Adam lr 1e-3) on the "
        "8-Gaussians toy,",
        f"  {TOUR_STEPS_COUNT} steps of batch 128 through generative.train.fit "
        f"({res.examples_per_second:,.0f} examples/s): d_loss {last.get('d_loss', 0.0):.3f}, "
        f"g_loss {last.get('g_loss', 0.0):.3f}",
        f"  modes covered within 3 / 10 std (std 0.02): {tight.modes_covered}/{tight.num_modes}"
        f" / {loose.modes_covered}/{loose.num_modes}; high-quality fraction "
        f"{tight.high_quality_fraction:.2f}; MMD^2 to held-out data {mmd:.4f}",
        "  (a short run: the modes are found, their widths take thousands of steps)",
        f"wrote {out / 'checkpoint.pt'}, train.csv, metrics.json and "
        f"{out / 'samples' / f'step_{TOUR_STEPS_COUNT:07d}.png'}",
        f"try: probforge sample --checkpoint {out / 'checkpoint.pt'} --n 512 --out gan.png; "
        "probforge train vae --data fashion-mnist --binarize fixed --out vae-run --steps 5000",
    ]


TOUR_STEPS_COUNT = 600
RBM_TOUR_STEPS = 2000


def _energy_tour(out: Path, seed: int) -> list[str]:
    import torch

    from generative.data import info, load
    from generative.energy.partition import ais_log_partition, log_likelihood_estimate
    from generative.energy.rbm_task import RBMTask
    from generative.images import make_grid, write_png
    from generative.registry import build_task, default_config
    from generative.train import fit
    from pgm.learning import fit_bernoulli_mixture
    from probforge.ops.random import make_generator

    data = load("digits", "train", binarize="fixed")
    test = load("digits", "test", binarize="fixed")
    config = default_config("rbm", info("digits", binarize="fixed"))
    config.update(seed=seed, method="cd", lr=0.2, eval_ais_chains=0, sample_steps=500)
    task = cast(RBMTask, build_task(config))
    res = fit(task, data, steps=RBM_TOUR_STEPS, batch_size=100, out_dir=out,
              sample_every=RBM_TOUR_STEPS, num_samples=64, seed=seed, log_every=50)
    rbm = task.rbm
    x_train = data.x.reshape(len(data), -1)
    x_test = test.x.reshape(len(test), -1)
    with torch.no_grad():
        ais = ais_log_partition(rbm, data=x_train, num_chains=200, num_temperatures=3000,
                                generator=make_generator(seed + 1))
        ll = log_likelihood_estimate(rbm, x_test, ais)
    mix = fit_bernoulli_mixture(x_train.double(), 10, beta_prior=(2.0, 2.0),
                                generator=make_generator(seed + 2))
    mix_ll = float(mix.model.log_prob(x_test.double()).mean())
    filters = out / "samples" / f"filters_step_{RBM_TOUR_STEPS:07d}.png"
    samples = out / "samples" / f"step_{RBM_TOUR_STEPS:07d}.png"
    write_png(out / "filters.png", make_grid(task.figures(task.networks())["filters"]))
    return [
        f"A Bernoulli RBM (64 visible, {rbm.num_hidden} hidden) on binarised 8x8 digits, "
        f"CD-1, {RBM_TOUR_STEPS} steps of batch 100 ({res.examples_per_second:,.0f} "
        "examples/s)",
        f"  AIS log Z = {ais.log_z:.2f} +- {ais.log_z_se:.2f} ({ais.num_temperatures} "
        f"temperatures, {ais.log_weights.numel()} chains, ESS {ais.ess:.0f})",
        f"  test log-likelihood {ll.mean:.2f} +- {ll.se:.2f} nats per image; "
        f"a 10-component Bernoulli mixture (EM): {mix_ll:.2f}",
        f"wrote {samples} (samples), {filters} and {out / 'filters.png'} (filters)",
        "try: probforge train rbm --data fashion-mnist --binarize fixed --out rbm-run "
        "--epochs 5; python examples/ch12_rbm_contrastive_divergence.py",
    ]

TOUR_STEPS = [
    TourStep("generative", 40, "train a GAN on the 8-Gaussians toy with the shared training "
             "loop (checkpoints, logs, sample pictures)",
             _generative_tour),
    TourStep("energy", 41, "train an RBM with contrastive divergence (CD-1) and measure "
             "its test log-likelihood by annealed importance sampling", _energy_tour),
]
