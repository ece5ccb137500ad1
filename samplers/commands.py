"""The samplers layer's command line: ``probforge sample`` and its tour step.

``probforge sample TARGET --sampler rwmh --chains 4 --draws 1000 --warmup 1000 --seed 0
[--out run.nc]`` runs a built-in target and prints the ArviZ summary and the diagnostics'
warnings; ``--out`` writes the InferenceData as NetCDF, atomically (a temp file in the same
directory, then a rename).

``probforge sample --checkpoint CKPT --n 64 --out grid.png`` instead samples a trained model:
it is handed to the function registered in the entry-point group
``probforge.checkpoint_samplers`` (``generative`` registers one), so this layer imports nothing
above it.

Built-in targets (:data:`TARGETS`):

- ``gaussian``: a ``--dim``-dimensional Gaussian with covariance ``0.9^|i-j|`` (AR(1)) and
  scales ``1..dim`` (known moments);
- ``banana``: Haario et al.'s twisted Gaussian, ``x1 ~ N(0, 10^2)``,
  ``x2 | x1 ~ N(-0.1 (x1^2 - 100), 1)``;
- ``eight_schools``: the non-centred eight-schools model of posteriordb
  (``../shared/data/posteriordb/eight_schools.json`` when present, else Rubin's 1981 data).

Samplers: ``rwmh`` (random walk with scale and covariance adaptation) and, where their modules
are installed, ``mala``, ``hmc``, ``nuts`` (window adaptation of step size and mass matrix) and
``slice`` (widths adapted to the moves during warmup).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probforge.cli import TourStep
from probforge.cli_args import (
    device_name,
    int_at_least,
    output_file,
    refuse_given,
)
from probforge.errors import UsageError, ValidationError

if TYPE_CHECKING:  # torch is imported when a command runs, not when the parser is built
    import torch
    from torch import Tensor

__all__ = ["SAMPLERS", "TARGETS", "TOUR_STEPS", "build_target", "register", "write_netcdf_atomic"]

#: Where posteriordb data live (the repository's sibling ``shared`` folder), if anywhere.
POSTERIORDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "posteriordb"
#: Rubin (1981): the eight schools' estimated effects and standard errors.
_EIGHT_SCHOOLS = {"J": 8, "y": [28, 8, -3, 7, -1, 1, 18, 12],
                  "sigma": [15, 10, 16, 11, 9, 11, 10, 18]}

TARGETS = ("gaussian", "banana", "eight_schools")
#: Entry-point group of functions ``f(args) -> int`` that sample a trained model's checkpoint.
CHECKPOINT_SAMPLERS = "probforge.checkpoint_samplers"
SAMPLERS = ("rwmh", "mala", "hmc", "nuts", "slice")
PROG = "probforge sample"
#: Options of target runs (refused with --checkpoint) and of checkpoint runs (refused without).
TARGET_OPTIONS = ("sampler", "chains", "draws", "warmup", "thin", "dim", "dtype", "progress")
CHECKPOINT_OPTIONS = ("n",)


def _ar1(dim: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    import torch

    i = torch.arange(dim, device=device)
    corr = 0.9 ** (i[:, None] - i[None, :]).abs().to(dtype)
    scale = torch.arange(1, dim + 1, dtype=dtype, device=device)
    return torch.zeros(dim, dtype=dtype, device=device), corr * scale[:, None] * scale[None, :]


def build_target(name: str, dim: int = 10, dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu") -> tuple[Callable[[Tensor], Tensor], Any]:
    """``(log_density on flat unconstrained x, ParameterSpace)`` of a built-in target.

    ``dtype`` defaults to float64.
    """
    import torch

    from samplers.space import ParameterSpace, Positive, Real

    dtype = torch.float64 if dtype is None else dtype
    dev = torch.device(device)
    if name == "gaussian":
        if dim < 1:
            raise ValidationError("--dim", "must be >= 1", found=dim)
        mean, cov = _ar1(dim, dtype, dev)
        prec = torch.linalg.inv(cov)
        space = ParameterSpace({"x": Real(dim)})

        def gauss(v: dict[str, Tensor]) -> Tensor:
            d = v["x"] - mean
            out: Tensor = -0.5 * ((d @ prec) * d).sum(-1)
            return out

        return space.wrap(gauss), space
    if name == "banana":
        space = ParameterSpace({"x": Real(2)})

        def banana(v: dict[str, Tensor]) -> Tensor:
            x1, x2 = v["x"][:, 0], v["x"][:, 1]
            return -x1**2 / 200 - 0.5 * (x2 + 0.1 * (x1**2 - 100)) ** 2

        return space.wrap(banana), space
    if name == "eight_schools":
        path = POSTERIORDB / "eight_schools.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else _EIGHT_SCHOOLS
        y = torch.tensor(data["y"], dtype=dtype, device=dev)
        sigma = torch.tensor(data["sigma"], dtype=dtype, device=dev)
        space = ParameterSpace({"mu": Real(), "tau": Positive(),
                                "theta_trans": Real(int(data["J"]))})

        def eight(v: dict[str, Tensor]) -> Tensor:
            mu, tau, th = v["mu"], v["tau"], v["theta_trans"]
            lp = -0.5 * (mu / 5) ** 2 - torch.log1p((tau / 5) ** 2) - 0.5 * (th**2).sum(-1)
            mean = mu[:, None] + tau[:, None] * th
            return lp - 0.5 * (((y - mean) / sigma) ** 2).sum(-1)

        return space.wrap(eight), space
    raise ValidationError("probforge sample", "unknown target", found=repr(name),
                          fix=f"use one of {list(TARGETS)}")


def _kernel(name: str) -> tuple[Any, Any]:
    """``(kernel, adaptation)`` for a sampler name."""
    from samplers.adaptation_protocol import ScaleAdaptation
    from samplers.metropolis import RandomWalkMetropolis

    if name == "rwmh":
        return RandomWalkMetropolis(), ScaleAdaptation(adapt_covariance=True)
    try:
        if name == "slice":
            from samplers.slice import SliceSampler, SliceWidthAdaptation

            return SliceSampler(), SliceWidthAdaptation()
        from samplers.adaptation import WindowAdaptation

        if name == "mala":
            from samplers.mala import MALA

            kernel: Any = MALA()
        elif name == "hmc":
            from samplers.hmc import HMC

            kernel = HMC()
        elif name == "nuts":
            from samplers.nuts import NUTS

            kernel = NUTS()
        else:
            raise ValidationError("--sampler", "unknown sampler", found=repr(name),
                                  fix=f"use one of {list(SAMPLERS)}")
        return kernel, WindowAdaptation(kernel=kernel)
    except ImportError as err:
        raise ValidationError("--sampler", f"{name!r} is not available in this installation",
                              found=str(err), fix="use --sampler rwmh") from err


def write_netcdf_atomic(idata: Any, path: Path) -> None:
    """``idata.to_netcdf`` into a temp file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def register(subparsers: Any) -> None:
    """Add ``sample`` to the ``probforge`` command line."""
    p = subparsers.add_parser(
        "sample", help="run an MCMC sampler on a built-in target and print the ArviZ summary",
        description="Run chains of an MCMC sampler on a built-in target; print ArviZ's summary "
        "and diagnostics, optionally save the InferenceData as NetCDF. With --checkpoint, draw "
        "samples from a trained generative model instead (only --n, --out, --seed and "
        "--device apply then).")
    p.add_argument("target", nargs="?", choices=TARGETS,
                   help="built-in target (not with --checkpoint)")
    p.add_argument("--sampler", default="rwmh", choices=SAMPLERS, help="kernel (default rwmh)")
    p.add_argument("--chains", type=int_at_least(1), default=4,
                   help="number of chains (default 4)")
    p.add_argument("--draws", type=int_at_least(1), default=1000, help="kept draws per chain")
    p.add_argument("--warmup", type=int_at_least(0), default=1000,
                   help="warmup steps (discarded)")
    p.add_argument("--thin", type=int_at_least(1), default=1, help="keep every THIN-th state")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--dim", type=int_at_least(1), default=10,
                   help="dimension of the gaussian target (default 10)")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument("--device", type=device_name, default="cpu",
                   help="torch device (default cpu)")
    p.add_argument("--out", help="target runs: write the InferenceData to this .nc file "
                   "(atomically); --checkpoint: the picture (.png) or tensor (.pt) to write")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="sample a trained model's checkpoint instead of a target (handled by the "
                   "package registered in the entry-point group probforge.checkpoint_samplers)")
    p.add_argument("--n", type=int_at_least(1), default=64,
                   help="samples to draw from --checkpoint (default 64); --out names the picture")
    p.set_defaults(func=run_sample)


def _check_out(args: argparse.Namespace, suffixes: tuple[str, ...]) -> None:
    if args.out:
        try:
            output_file(*suffixes)(args.out)
        except argparse.ArgumentTypeError as err:
            raise UsageError(PROG, f"--out: {err}") from None


def _sample_checkpoint(args: argparse.Namespace) -> int:
    """Hand ``--checkpoint`` to the installed checkpoint sampler (e.g. ``generative``)."""
    from importlib.metadata import entry_points

    if args.target is not None:
        raise UsageError(PROG, "give a target or --checkpoint, not both",
                         found=(args.target, args.checkpoint))
    refuse_given(args, PROG, TARGET_OPTIONS, "with --checkpoint (a trained model is sampled "
                 "as it is)")
    _check_out(args, (".png", ".pt"))
    eps = sorted(entry_points(group=CHECKPOINT_SAMPLERS), key=lambda e: e.name)
    if not eps:
        raise ValidationError("--checkpoint", f"no checkpoint sampler is installed (entry-point "
                              f"group {CHECKPOINT_SAMPLERS!r} is empty)",
                              fix="install probforge with its generative package "
                              "(pip install -e .)")
    return int(eps[0].load()(args) or 0)


def run_sample(args: argparse.Namespace) -> int:
    """Run ``probforge sample``."""
    if getattr(args, "checkpoint", None) is not None:
        return _sample_checkpoint(args)
    if args.target is None:
        raise UsageError(PROG, "needs a target or --checkpoint",
                         fix=f"use one of {list(TARGETS)}, or --checkpoint CKPT")
    refuse_given(args, PROG, CHECKPOINT_OPTIONS, "to a target run (it is for --checkpoint)")
    if args.target != "gaussian":
        refuse_given(args, PROG, ["dim"], f"to the {args.target} target (only gaussian has a "
                     "dimension)")
    _check_out(args, (".nc",))
    import torch

    from probforge.ops import make_generator
    from probforge.validate import check_device
    from samplers.diagnostics import check
    from samplers.run import sample

    device = check_device(args.device, "--device")
    dtype = getattr(torch, args.dtype)
    log_density, space = build_target(args.target, args.dim, dtype, device)
    kernel, adaptation = _kernel(args.sampler)
    g = make_generator(args.seed, device)
    x0 = space.initial_position(args.chains, g, dtype=dtype)
    samples = sample(kernel, log_density, x0, num_draws=args.draws, num_warmup=args.warmup,
                     thin=args.thin, adaptation=adaptation, generator=g, space=space,
                     seed=args.seed, progress=args.progress)
    samples.attrs["target"] = args.target
    warnings = check(samples, print_warnings=False)
    print(f"{args.target}: {args.sampler}, {args.chains} chains x {args.draws} draws "
          f"(warmup {args.warmup}, thin {args.thin}, seed {args.seed}, {args.dtype} on {device})")
    print(samples.summary().to_string())
    acc = samples.stats.get("accept_prob")
    if acc is not None:
        print(f"mean acceptance probability {float(acc.double().mean()):.3f}")
    for w in warnings:
        print(f"warning: {w}")
    if args.out:
        write_netcdf_atomic(samples.to_arviz(), Path(args.out))
        print(f"wrote {args.out}")
    return 0


def _samplers_tour(out: Path, seed: int) -> list[str]:
    import torch

    from probforge.ops import make_generator
    from samplers.diagnostics import check
    from samplers.run import sample

    log_density, space = build_target("gaussian", 3)
    kernel, adaptation = _kernel("rwmh")
    g = make_generator(seed)
    s = sample(kernel, log_density, space.initial_position(4, g, dtype=torch.float64),
               num_draws=4000, num_warmup=1000, adaptation=adaptation, generator=g, space=space,
               seed=seed)
    warnings = check(s, print_warnings=False)
    write_netcdf_atomic(s.to_arviz(), out / "rwmh_gaussian.nc")
    table = s.summary(kind="stats").round(3).to_string().splitlines()
    scale = float(s.attrs["params"].scale)
    return [
        "Random-walk Metropolis on a 3-d correlated Gaussian (corr 0.9^|i-j|, sd 1, 2, 3; "
        "exact means 0), 4 chains vectorised,",
        f"  scale and proposal covariance adapted in 1,000 warmup steps (final scale "
        f"{scale:.2f}, mean acceptance {float(s.stats['accept_prob'].mean()):.3f}):",
        *("  " + line for line in table),
        f"  R-hat max {max(float(v.max()) for v in _rhat(s).values()):.3f}; "
        f"{len(warnings)} diagnostic warning(s)",
        f"wrote {out / 'rwmh_gaussian.nc'}; try: probforge sample eight_schools --chains 8",
    ]


def _rhat(s: Any) -> dict[str, Any]:
    from samplers.diagnostics import rhat

    return rhat(s)


TOUR_STEPS = [
    TourStep("samplers", 10, "MCMC on a batched log-density with ArviZ output", _samplers_tour),
]
