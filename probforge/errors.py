"""The probforge exception hierarchy (DESIGN.md section 5).

Every error derives from :class:`ProbforgeError` *and* from the builtin a caller would catch
(``ValueError``, ``KeyError``, ...), so ``except ValueError`` keeps working. A message names the
object concerned, the value found, the rule broken and, where one exists, a remedy; the helper
:func:`describe` builds such messages in one house style.

Examples
--------
>>> from probforge.errors import ShapeError
>>> try:
...     raise ShapeError("factor 'f'", "'A' has 3 states here, 2 elsewhere", fix="make them equal")
... except ValueError as err:
...     print(err)
factor 'f': 'A' has 3 states here, 2 elsewhere. Fix: make them equal.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CheckpointError",
    "ConvergenceError",
    "CycleError",
    "DataNotFoundError",
    "DeviceMismatchError",
    "DtypeMismatchError",
    "FileWriteError",
    "MemoryBudgetExceeded",
    "MissingDependencyError",
    "MissingFileError",
    "NonFiniteError",
    "NormalisationError",
    "ParseError",
    "ProbforgeError",
    "SamplingError",
    "ShapeError",
    "UnknownStateError",
    "UnknownVariableError",
    "UsageError",
    "ValidationError",
    "ZeroProbabilityEvidence",
    "describe",
]


def describe(subject: str, problem: str, *, found: Any = None, fix: str | None = None) -> str:
    """Compose an error message: ``"<subject>: <problem> (found <found>). Fix: <fix>."``."""
    msg = f"{subject}: {problem}" if subject else problem
    if found is not None:
        msg += f" (found {found})"
    msg = msg.rstrip(".") + "."
    if fix:
        msg += f" Fix: {fix.rstrip('.')}."
    return msg


class ProbforgeError(Exception):
    """Base class of every error raised by probforge.

    Parameters
    ----------
    subject : str
        The object concerned ("factor 'f'", "node 'xray'", "file asia.bif:12:5").
    problem : str
        The rule that was broken, in words.
    found : object, optional
        The offending value.
    fix : str, optional
        How to fix it.
    """

    def __init__(
        self, subject: str, problem: str = "", *, found: Any = None, fix: str | None = None
    ) -> None:
        self.subject = subject
        self.problem = problem
        self.found = found
        self.fix = fix
        text = describe(subject, problem, found=found, fix=fix) if problem else subject
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ValidationError(ProbforgeError, ValueError):
    """An input broke a documented rule (shape, range, normalisation, ...)."""


class ShapeError(ValidationError):
    """Tensor shapes or cardinalities do not agree."""


class NonFiniteError(ValidationError):
    """NaN (or +inf where a log-probability is expected) found in an input."""


class NormalisationError(ValidationError):
    """A distribution (CPD row, transition row, ...) does not sum to one within tolerance."""


class CycleError(ValidationError):
    """A directed graph that must be acyclic has a cycle; the message lists it edge by edge."""


class UnknownVariableError(ProbforgeError, KeyError):
    """A variable name that the model does not have."""


class UnknownStateError(ProbforgeError, KeyError):
    """A state name that the variable does not have."""


class ZeroProbabilityEvidence(ProbforgeError, ValueError):
    """The evidence has probability zero under the model, so conditionals are undefined."""


class ParseError(ProbforgeError, ValueError):
    """A model or data file could not be parsed.

    Attributes ``file``, ``line``, ``column``, ``token`` and ``expected`` locate the problem.
    """

    def __init__(
        self,
        file: str,
        line: int,
        column: int,
        token: str,
        expected: str,
        *,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.token = token
        self.expected = expected
        super().__init__(
            f"{file}:{line}:{column}", f"expected {expected}", found=repr(token), fix=fix
        )


class DeviceMismatchError(ValidationError):
    """Tensors that must share a device do not."""


class DtypeMismatchError(ValidationError):
    """Tensors that must share a dtype do not."""


class MemoryBudgetExceeded(ProbforgeError, MemoryError):
    """An exact computation would exceed the memory budget; the message gives the estimate."""


class SamplingError(ProbforgeError, RuntimeError):
    """A sampler could not produce what was asked (e.g. too many rejected proposals)."""


class ConvergenceError(ProbforgeError, RuntimeError):
    """An iterative method diverged or produced non-finite values."""


class CheckpointError(ProbforgeError, RuntimeError):
    """A checkpoint could not be written or read back."""


class DataNotFoundError(ProbforgeError, FileNotFoundError):
    """A data set is not installed; the message names the package or path that provides it."""


class MissingDependencyError(ProbforgeError, ImportError):
    """An optional dependency is needed for this feature and is not installed."""


class MissingFileError(ProbforgeError, FileNotFoundError):
    """A file the caller named (a model, an evidence file, a checkpoint) does not exist."""


class UsageError(ValidationError):
    """A command-line argument broke its command's rules (the ``probforge`` command exits 2)."""


class FileWriteError(ProbforgeError, OSError):
    """A file could not be written (permissions, a full disk, ...); the old file is untouched."""
