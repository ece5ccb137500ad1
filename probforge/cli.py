"""The ``probforge`` command line.

Subcommands and tour steps are found through the entry-point group ``probforge.commands``: each
layer (``probforge`` itself, ``samplers``, ``pgm``, ``generative``) lists a ``commands`` module
there that may define

- ``register(subparsers)``: add its subcommands to the argparse sub-parser collection;
- ``TOUR_STEPS``: a list of :class:`TourStep`, run in ``order`` by ``probforge tour``.

So this module imports nothing above its own layer. It imports no torch either: the command
modules import their heavy dependencies inside the functions that run a command, so ``probforge
--help`` and ``--version`` answer at once.

Every subcommand follows one argument convention (:mod:`probforge.cli_args`): repeatable flags
accumulate or are refused, values are checked before anything runs. Exit statuses: 0 success;
2 a user mistake (a bad flag or value, a missing file, an input the library refuses: one
``probforge: error:`` line, no traceback); 1 a run that failed on its own (a diverging training
or sampler: one line) or an internal error (a traceback, and a request to report it).

Examples
--------
>>> from probforge.cli import main
>>> main(["--version"])  # doctest: +SKIP
probforge 0.1.0
0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from probforge import __version__
from probforge.cli_args import ArgumentParser, int_at_least
from probforge.errors import ConvergenceError, ProbforgeError, SamplingError, UsageError

__all__ = ["TourStep", "build_parser", "main"]

ENTRY_POINT_GROUP = "probforge.commands"


@dataclass(frozen=True)
class TourStep:
    """One step of ``probforge tour``.

    Attributes
    ----------
    name : str
        Short name, also accepted by ``probforge tour --only NAME``.
    order : int
        Position in the tour (core 0-9, samplers 10-19, pgm 20-29, HMM 30, CRF 35,
        generative 40-49).
    title : str
        One line shown before the step runs.
    run : callable
        ``run(out_dir: Path, seed: int) -> list[str]``: does the work, writes any files under
        ``out_dir`` and returns the lines to print.
    """

    name: str
    order: int
    title: str
    run: Callable[[Path, int], list[str]]


def _command_modules() -> list[ModuleType]:
    modules = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        modules.append(ep.load())
    if not modules:  # not installed (running from a source tree): the core alone
        from probforge import commands

        modules.append(commands)
    return modules


def tour_steps() -> list[TourStep]:
    """Every registered tour step, in tour order."""
    steps: list[TourStep] = []
    for module in _command_modules():
        steps.extend(getattr(module, "TOUR_STEPS", []))
    return sorted(steps, key=lambda s: (s.order, s.name))


def _run_tour(args: argparse.Namespace) -> int:
    steps = tour_steps()
    if args.only:
        known = {s.name for s in steps}
        unknown = sorted(set(args.only) - known)
        if unknown:
            raise UsageError("probforge tour", f"unknown step(s) {', '.join(unknown)}",
                             fix=f"use some of {', '.join(sorted(known))}")
        steps = [s for s in steps if s.name in args.only]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="probforge-tour-"))
    if out.exists() and not out.is_dir():
        raise UsageError("probforge tour --out", "is a file, not a folder", found=str(out))
    out.mkdir(parents=True, exist_ok=True)
    print(f"probforge {__version__} tour: {len(steps)} step(s); outputs under {out}")
    for i, step in enumerate(steps, 1):
        print(f"\n[{i}/{len(steps)}] {step.name}: {step.title}")
        t0 = time.perf_counter()
        step_dir = out / step.name
        step_dir.mkdir(parents=True, exist_ok=True)
        for line in step.run(step_dir, args.seed):
            print(f"  {line}")
        print(f"  ({time.perf_counter() - t0:.2f} s; files in {step_dir})")
    print(f"\nTour finished. Outputs are in {out}")
    return 0


def build_parser() -> ArgumentParser:
    """The argparse parser with every registered subcommand."""
    parser = ArgumentParser(
        prog="probforge",
        description="Graphical models, samplers and deep generative models on torch.",
    )
    parser.add_argument("--version", action="version", version=f"probforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    tour = sub.add_parser("tour", help="a short guided run of every capability")
    tour.add_argument("--out", help="directory for the tour's files (default: a new temp dir)")
    tour.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    tour.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    tour.set_defaults(func=_run_tour)
    for module in _command_modules():
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring).

    User mistakes print one ``probforge: error:`` line on stderr and return 2; an unexpected
    exception prints its traceback and a request to report it, and returns 1.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except (ConvergenceError, SamplingError) as err:  # the run failed; the input was valid
        print(f"probforge: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except ProbforgeError as err:
        print(f"probforge: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
            FileExistsError) as err:  # a path the user gave
        print(f"probforge: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("probforge: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        traceback.print_exc()
        print(f"probforge: internal error: {type(err).__name__}: {_one_line(err)}. This is a "
              f"bug in probforge {__version__}; please report it with the command line and "
              "the traceback above.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
