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

from .._source import END_OF_FILE, parse_error

#: Largest function table (float64 entries) the parser allocates unless told otherwise (1 GiB).
DEFAULT_MAX_TABLE_ENTRIES = 2**27

UAIKind = Literal["BAYES", "MARKOV"]
UAITask = Literal["PR", "MAR", "MAP", "MPE"]
#: Evidence: one dict per sample, variable index -> observed value index.
UAIEvidence = list[dict[int, int]]

FloatArray = npt.NDArray[np.float64]

_TOKEN = re.compile(r"\S+")
_INT = re.compile(r"\+?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NOT_NUMERIC = re.compile(r"[^\s0-9eE+\-.]")


# --------------------------------------------------------------------------------------------------
# Tokens with positions (used for preambles, evidence and results -- the small parts)
# --------------------------------------------------------------------------------------------------


class _Tokens:
    """Whitespace-separated tokens read one at a time; errors carry line and column."""

    def __init__(self, text: str, filename: str, start: int = 0) -> None:
        self.check_lines = True
        self.text = text
        self.filename = filename
        self._it: Iterator[re.Match[str]] = _TOKEN.finditer(text, start)
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
        if not _INT.fullmatch(tok):
            raise self.error_at(at, tok, expected)
        value = int(tok)
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
