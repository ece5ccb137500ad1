"""Shared pieces of the UAI readers and writers: types, limits, token regexes, the token cursor."""


from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

import numpy as np
import numpy.typing as npt

from probforge.errors import (
    ParseError,
)

from .._source import END_OF_FILE, MAX_INT_DIGITS, bounded_int, parse_error

__all__ = [
    "DEFAULT_MAX_TABLE_ENTRIES",
    "INT_RE",
    "NOT_NUMERIC_RE",
    "NUMBER_RE",
    "TOKEN_RE",
    "FloatArray",
    "Tokens",
    "UAIEvidence",
    "UAIKind",
    "UAITask",
    "expect_end",
]

#: Largest function table (float64 entries) the parser allocates unless told otherwise (1 GiB).
DEFAULT_MAX_TABLE_ENTRIES = 2**27

UAIKind = Literal["BAYES", "MARKOV"]
UAITask = Literal["PR", "MAR", "MAP", "MPE"]
#: Evidence: one dict per sample, variable index -> observed value index.
UAIEvidence = list[dict[int, int]]

FloatArray = npt.NDArray[np.float64]

TOKEN_RE = re.compile(r"\S+")
# ASCII digits only (like NOT_NUMERIC_RE), and one way to match each number.
INT_RE = re.compile(r"\+?[0-9]+")
NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NOT_NUMERIC_RE = re.compile(r"[^\s0-9eE+\-.]")


# --------------------------------------------------------------------------------------------------
# Tokens with positions (used for preambles, evidence and results -- the small parts)
# --------------------------------------------------------------------------------------------------


class Tokens:
    """Whitespace-separated tokens read one at a time; errors carry line and column."""

    def __init__(self, text: str, filename: str, start: int = 0) -> None:
        self.check_lines = True
        self.text = text
        self.filename = filename
        self._it: Iterator[re.Match[str]] = TOKEN_RE.finditer(text, start)
        self._peeked: re.Match[str] | None = None
        self.last_end = start  # end offset of the last token taken

    def peek(self) -> re.Match[str] | None:
        if self._peeked is None:
            self._peeked = next(self._it, None)
        return self._peeked

    def take(self, expected: str) -> tuple[str, int]:
        m = self.peek()
        if m is None:
            raise self.error_at(len(self.text), END_OF_FILE, expected)
        self._peeked = None
        self.last_end = m.end()
        return m.group(), m.start()

    def integer(
        self,
        expected: str,
        *,
        low: int = 0,
        high: int | None = None,
        line: str | None = None,
    ) -> tuple[int, int]:
        """Take a whole number in ``[low, high)``; return it and its offset.

        With ``line`` (a description of the current line), the number must be on the line of the
        previous token (checked only for files with line structure).
        """
        if line is not None and self.check_lines:
            m = self.peek()
            if m is not None and "\n" in self.text[self.last_end : m.start()]:
                raise self.error_at(m.start(), m.group(), f"{expected} on {line}")
        tok, at = self.take(expected)
        if not INT_RE.fullmatch(tok):
            raise self.error_at(at, tok, expected)
        value = bounded_int(tok)
        if value is None:
            raise self.error_at(at, tok, f"{expected}, of at most {MAX_INT_DIGITS} digits")
        if value < low or (high is not None and value >= high):
            raise self.error_at(at, tok, expected)
        return value, at

    def error_at(
        self, offset: int, token: str, expected: str, *, fix: str | None = None
    ) -> ParseError:
        return parse_error(self.filename, self.text, offset, token, expected, fix=fix)

    def end_of_line(self, what: str, fix: str | None = None) -> None:
        """Require that the next token (if any) is not on the line of the last one taken."""
        m = self.peek()
        if self.check_lines and m is not None and "\n" not in self.text[self.last_end : m.start()]:
            raise self.error_at(m.start(), m.group(), f"the end of the line after {what}", fix=fix)


def expect_end(toks: Tokens, what: str) -> None:
    """Require that no token is left."""
    m = toks.peek()
    if m is not None:
        raise toks.error_at(m.start(), m.group(), f"the end of the file after {what}")
