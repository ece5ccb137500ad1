"""Command-line subcommands and `probforge tour` steps of `generative` (being built)."""

from __future__ import annotations

from typing import Any

from probforge.cli import TourStep

__all__ = ["TOUR_STEPS", "register"]


def register(subparsers: Any) -> None:
    """Add this package's subcommands to the ``probforge`` command line (none yet)."""


TOUR_STEPS: list[TourStep] = []
