"""One argument-parsing convention for every ``probforge`` subcommand (DESIGN.md section 4).

- A flag that takes several values (``nargs="+"``) **accumulates** when repeated:
  ``-e smoke=yes -e dysp=yes`` is ``-e smoke=yes dysp=yes``.
- Any other flag given twice is **refused** (``--steps 5 --steps 6``, ``--json --json``,
  ``--progress --no-progress``): nothing is half-ignored.
- Values are checked when parsed, before anything runs (:func:`int_at_least`,
  :func:`real_at_least`, :func:`existing_file`, :func:`output_file`, :func:`device_name`,
  :func:`assignment`).
- Options that do not apply to the chosen mode are refused (:func:`refuse_given`); the parser
  remembers which options the user typed (:func:`given`), so an option typed with its default
  value is still seen.
- Every user mistake raises :class:`probforge.errors.UsageError`; ``probforge`` prints it as one
  ``probforge: error:`` line and exits 2.

This module imports neither torch nor any model package: ``probforge --help`` stays fast.

Examples
--------
>>> from probforge.cli_args import ArgumentParser, int_at_least
>>> p = ArgumentParser(prog="demo")
>>> _ = p.add_argument("-e", nargs="+", default=[])
>>> _ = p.add_argument("--steps", type=int_at_least(1))
>>> p.parse_args(["-e", "a=1", "-e", "b=2", "--steps", "3"]).e
['a=1', 'b=2']
>>> try:
...     p.parse_args(["--steps", "3", "--steps", "4"])
... except ValueError as err:
...     print(err)
demo: --steps is given twice. Fix: give it once.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from probforge.errors import UsageError

__all__ = [
    "ArgumentParser",
    "BooleanFlag",
    "assignment",
    "assignments",
    "device_name",
    "existing_file",
    "given",
    "int_at_least",
    "output_file",
    "real_at_least",
    "refuse_given",
    "refuse_together",
]

_GIVEN = "_given_options"


def _record(parser: argparse.ArgumentParser, namespace: argparse.Namespace, dest: str,
            option: str | None, once: bool) -> None:
    seen: dict[str, str] = namespace.__dict__.setdefault(_GIVEN, {})
    if once and dest in seen:
        first, now = seen[dest], option or dest
        what = f"{now} is given twice" if first == now else f"{first} and {now} are both given"
        raise UsageError(parser.prog, what, fix="give it once")
    seen[dest] = option or dest


class _Store(argparse._StoreAction):
    """``store``: refused when repeated; with ``nargs="+"`` / ``"*"`` it accumulates instead."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        many = self.nargs in ("+", "*")
        again = given(namespace, self.dest)
        _record(parser, namespace, self.dest, option_string,
                once=option_string is not None and not many)
        if many and again:  # the first occurrence replaces the default, later ones extend it
            values = list(getattr(namespace, self.dest)) + list(values)
        super().__call__(parser, namespace, values, option_string)


class _ConstOnce(argparse._StoreConstAction):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _record(parser, namespace, self.dest, option_string, once=True)
        super().__call__(parser, namespace, values, option_string)


class _TrueOnce(_ConstOnce):
    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = False,
                 required: bool = False, help: str | None = None) -> None:
        super().__init__(option_strings, dest, const=True, default=default, required=required,
                         help=help)


class _FalseOnce(_ConstOnce):
    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = True,
                 required: bool = False, help: str | None = None) -> None:
        super().__init__(option_strings, dest, const=False, default=default, required=required,
                         help=help)


class _BooleanOnce(argparse.BooleanOptionalAction):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _record(parser, namespace, self.dest, option_string, once=True)
        super().__call__(parser, namespace, values, option_string)


class _Accumulate(_Store):
    """``extend``: every occurrence adds its values (the first replaces the default)."""

    def __init__(self, option_strings: Sequence[str], dest: str, nargs: Any = "+",
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the probforge convention (see the module docstring).

    The conventions live in the parser's action registry, so argument groups, mutually
    exclusive groups and sub-parsers (``add_subparsers().add_parser``) follow them too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in (None, "store"):
            self.register("action", name, _Store)
        self.register("action", "store_true", _TrueOnce)
        self.register("action", "store_false", _FalseOnce)
        self.register("action", "extend", _Accumulate)

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` instead of printing usage and exiting."""
        raise UsageError(self.prog, message.replace("\n", " "),
                         fix=f"see '{self.prog} --help'")


#: ``--flag / --no-flag`` under the convention (``--progress --no-progress`` is refused).
BooleanFlag = _BooleanOnce


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the user typed the option whose destination is ``dest``."""
    return dest in getattr(args, _GIVEN, {})


def _options(args: argparse.Namespace, dests: Iterable[str]) -> list[str]:
    seen: dict[str, str] = getattr(args, _GIVEN, {})
    return [seen[d] for d in dests if d in seen]


def refuse_given(args: argparse.Namespace, prog: str, dests: Iterable[str], why: str) -> None:
    """Raise :class:`UsageError` if any of the options ``dests`` was typed; ``why`` says why.

    Examples
    --------
    ``refuse_given(args, "probforge sample", ["sampler", "chains"], "with --checkpoint")``
    refuses ``--sampler`` and ``--chains`` when a checkpoint is sampled.
    """
    typed = _options(args, dests)
    if typed:
        raise UsageError(prog, f"{', '.join(typed)} do{'es' if len(typed) == 1 else ''} not "
                         f"apply {why}", fix=f"drop {', '.join(typed)}")


def refuse_together(args: argparse.Namespace, prog: str, first: str, second: str) -> None:
    """Raise :class:`UsageError` if both options ``first`` and ``second`` were typed."""
    typed = _options(args, (first, second))
    if len(typed) == 2:
        raise UsageError(prog, f"{typed[0]} and {typed[1]} cannot be used together",
                         fix="choose one")


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a decimal integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}")
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, found {value}")
        return value

    parse.__name__ = "int"
    return parse


def real_at_least(minimum: float, *, strict: bool = False,
                  maximum: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number ``> minimum`` (``strict``) or ``>= minimum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, found {text!r}")
        if value < minimum or (strict and value == minimum) or (
                maximum is not None and value > maximum):
            bound = f"{'>' if strict else '>='} {minimum:g}"
            if maximum is not None:
                bound += f" and <= {maximum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, found {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def existing_file(text: str) -> str:
    """An argparse ``type`` for a path to an existing regular file."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a regular file: {text}")
    return text


def output_file(*suffixes: str) -> Callable[[str], str]:
    """An argparse ``type`` for a file to write: one of ``suffixes``, in an existing folder."""

    def parse(text: str) -> str:
        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{text!r} must end in {' or '.join(suffixes)} (the format is chosen by the "
                "suffix)")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise argparse.ArgumentTypeError(f"folder {str(parent)!r} does not exist")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder")
        return text

    parse.__name__ = "output file"
    return parse


_DEVICE = re.compile(r"(cpu|cuda(:\d+)?|mps)")


def device_name(text: str) -> str:
    """An argparse ``type`` for a torch device name (``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    Whether the device exists is checked when the command starts
    (:func:`probforge.validate.check_device`), since that needs torch.
    """
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, found {text!r}")
    return text


def assignment(text: str) -> tuple[str, str]:
    """An argparse ``type`` for ``KEY=VALUE`` (the key non-empty; the value may be empty)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, found {text!r}")
    return key.strip(), value


def assignments(pairs: Iterable[tuple[str, str]], prog: str, flag: str) -> dict[str, str]:
    """``[(key, value), ...]`` as a dict; a key given twice is refused (never last-one-wins)."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            what = "given twice" if out[key] == value else \
                f"given twice with different values ({out[key]!r} and {value!r})"
            raise UsageError(prog, f"{flag} {key} is {what}", fix=f"give {key} once")
        out[key] = value
    return out
