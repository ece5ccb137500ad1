"""UAI result files: PR (log10), MAR and MAP solutions, anytime ``-BEGIN-`` blocks."""


from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args

import numpy as np
import numpy.typing as npt

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ParseError,
    ShapeError,
    ValidationError,
)
from probforge.validate import check_int, check_real

from .._source import (
    END_OF_FILE,
    check_text,
    display_name,
    parse_error,
    read_source,
    write_source,
)
from ._common import (
    NUMBER_RE,
    TOKEN_RE,
    FloatArray,
    Tokens,
    UAITask,
    expect_end,
)
from .model import UAIModel


@dataclass(frozen=True, eq=False)
class UAIResult:
    """One solution from a UAI result file.

    Parameters
    ----------
    task : {"PR", "MAR", "MAP", "MPE"}
        ``MPE`` is the older name of ``MAP`` (both mean the most probable full assignment).
    value : float or tuple
        ``PR``: :math:`\\log_{10}` of the partition function / probability of evidence (a float;
        ``-inf`` for probability zero). ``MAR``: one 1-D float64 array of marginal probabilities
        per variable. ``MAP`` / ``MPE``: one value index per variable.

    Examples
    --------
    >>> import math
    >>> from pgm.io import UAIResult
    >>> r = UAIResult("PR", math.log10(0.25))
    >>> round(r.log10_probability, 4)
    -0.6021
    """

    task: UAITask
    value: float | tuple[FloatArray, ...] | tuple[int, ...]

    def __post_init__(self) -> None:
        task = _check_task(self.task)
        value: float | tuple[FloatArray, ...] | tuple[int, ...]
        if task == "PR":
            raw = self.value
            if isinstance(raw, tuple | list) or (isinstance(raw, np.ndarray) and raw.ndim != 0):
                raise ValidationError("PR result", "the value is one number (log10 Pr)",
                                      found=type(raw).__name__)
            if isinstance(raw, np.ndarray):
                raw = raw[()]  # a 0-d array: its scalar
            value = check_real(raw, "PR result (log10 of a probability)", allow_inf=True)
            if value == math.inf:
                raise NonFiniteError(
                    "PR result", "log10 of a probability must be finite or -inf", found=value
                )
        elif task == "MAR":
            arrays: list[FloatArray] = []
            for i, m in enumerate(_items(self.value, "MAR result (one marginal per variable)")):
                try:
                    arr = np.array(m, dtype=None, copy=True)
                except (ValueError, TypeError) as err:
                    raise ShapeError(f"marginal of variable {i}",
                                     "must be a 1-D array of numbers") from err
                if arr.dtype.kind != "f":
                    raise DtypeMismatchError(
                        f"marginal of variable {i}", "must hold floating-point probabilities",
                        found=str(arr.dtype), fix="pass floats, e.g. [1.0, 0.0]",
                    )
                arr = arr.astype(np.float64)
                if arr.ndim != 1 or arr.size < 1:
                    raise ShapeError(f"marginal of variable {i}", "must be a non-empty 1-D array")
                if not np.isfinite(arr).all() or (arr < 0).any():
                    raise ValidationError(
                        f"marginal of variable {i}", "probabilities must be finite and >= 0"
                    )
                arr.setflags(write=False)
                arrays.append(arr)
            value = tuple(arrays)
        else:
            value = tuple(
                check_int(x, f"{task} result: the value of variable {i}", minimum=0)
                for i, x in enumerate(_items(self.value, f"{task} result (one value per "
                                                          "variable)"))
            )
        object.__setattr__(self, "value", value)

    @property
    def log10_probability(self) -> float:
        """``PR``: the base-10 log of the partition function / probability of evidence."""
        self._require("PR")
        return cast(float, self.value)

    @property
    def marginals(self) -> tuple[FloatArray, ...]:
        """``MAR``: one array of marginal probabilities per variable."""
        self._require("MAR")
        return cast(tuple[FloatArray, ...], self.value)

    @property
    def assignment(self) -> tuple[int, ...]:
        """``MAP`` / ``MPE``: the value index of every variable."""
        self._require("MAP", "MPE")
        return cast(tuple[int, ...], self.value)

    def _require(self, *tasks: str) -> None:
        if self.task not in tasks:
            raise ValidationError(
                f"UAI {self.task} result", f"has no {'/'.join(tasks)} value", found=self.task
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UAIResult):
            return NotImplemented
        if self.task != other.task:
            return False
        if self.task == "MAR":
            a = cast(tuple[FloatArray, ...], self.value)
            b = cast(tuple[FloatArray, ...], other.value)
            return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        return self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def _check_task(task: Any) -> UAITask:
    if not isinstance(task, str) or task not in get_args(UAITask):
        raise ValidationError("UAI result", "task must be PR, MAR, MAP or MPE", found=repr(task))
    return cast(UAITask, task)


def _check_optional_model(model: Any) -> UAIModel | None:
    if model is not None and not isinstance(model, UAIModel):
        raise ValidationError("model", "must be a UAIModel or None", found=type(model).__name__)
    return model


def _items(value: Any, subject: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(subject, "must be a sequence", found=type(value).__name__)
    return list(value)


# --------------------------------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------------------------------


def _solution(toks: Tokens, task: UAITask, model: UAIModel | None) -> UAIResult:
    if task == "PR":
        tok, at = toks.take("log10 of the probability (a number)")
        ok = bool(NUMBER_RE.fullmatch(tok)) or tok.lower() in ("-inf", "-infinity")
        if not ok or (math.isinf(float(tok)) and not tok.startswith("-")):
            raise toks.error_at(
                at, tok, "log10 of the probability: a number, or -inf for probability zero"
            )
        return UAIResult("PR", float(tok))
    n_expected = None if model is None else len(model.cards)
    high = None if n_expected is None else n_expected + 1
    n, _ = toks.integer(
        "the number of variables" + ("" if n_expected is None else f" ({n_expected})"),
        low=0 if n_expected is None else n_expected,
        high=high,
    )
    if task == "MAR":
        marginals: list[FloatArray] = []
        for i in range(n):
            model_card = None if model is None else model.cards[i]
            card, _ = toks.integer(
                f"the cardinality of variable {i}"
                + ("" if model_card is None else f" ({model_card})"),
                low=1 if model_card is None else model_card,
                high=None if model_card is None else model_card + 1,
            )
            values: list[float] = []
            for j in range(card):
                tok, at = toks.take(f"marginal probability {j} of variable {i}")
                if not NUMBER_RE.fullmatch(tok) or not 0 <= float(tok) < math.inf:
                    raise toks.error_at(
                        at, tok, f"marginal probability {j} of variable {i}: a number >= 0"
                    )
                values.append(float(tok))
            marginals.append(np.array(values, dtype=np.float64))
        return UAIResult("MAR", tuple(marginals))
    assignment: list[int] = []
    for i in range(n):
        bound = None if model is None else model.cards[i]
        value, _ = toks.integer(
            f"the value of variable {i}" + ("" if bound is None else f" (in [0, {bound}))"),
            high=bound,
        )
        assignment.append(value)
    return UAIResult(task, tuple(assignment))


def parse_uai_results(
    text: str, filename: str = "<string>", *, model: UAIModel | None = None
) -> list[UAIResult]:
    """Parse a UAI result file into one solution per evidence sample.

    The last ``-BEGIN-`` section is the one read. Within it, a UAI 2014+ solution is tried first;
    if it does not account for every token, the UAI 2010 layout (the number of evidence samples,
    then one solution per sample) is used.

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    model : UAIModel, optional
        If given, variable counts, cardinalities and values are checked against it.

    Returns
    -------
    list of UAIResult

    Raises
    ------
    probforge.errors.ParseError
        Malformed file: unknown task, a token that is not a number where one is due, a count
        that disagrees with the data, a negative or non-finite probability, a value out of the
        model's range (with ``model``), tokens left over.
    probforge.errors.ValidationError
        ``text`` is not a ``str``, ``model`` not a :class:`UAIModel`.

    Notes
    -----
    MAR marginals are returned as written: they are not checked to sum to one (solvers round
    them), and nothing is renormalised.

    Examples
    --------
    >>> from pgm.io.uai import parse_uai_results
    >>> [r.log10_probability for r in parse_uai_results("PR\\n2\\n-0.5\\n-1.25\\n")]
    [-0.5, -1.25]
    """
    check_text(text, "UAI result text", "read_uai_results")
    check_text(filename, "filename", "read_uai_results")
    _check_optional_model(model)
    toks = Tokens(text, filename)
    task_tok, task_at = toks.take("the task: PR, MAR, MAP or MPE")
    if task_tok not in get_args(UAITask):
        raise toks.error_at(task_at, task_tok, "the task: PR, MAR, MAP or MPE")
    task = cast(UAITask, task_tok)
    start = toks.last_end
    for m in TOKEN_RE.finditer(text, start):
        if m.group() == "-BEGIN-":
            start = m.end()
    if TOKEN_RE.search(text, start) is None:
        raise parse_error(filename, text, len(text), END_OF_FILE, f"a {task} solution")

    def run(with_count: bool) -> list[UAIResult]:
        toks = Tokens(text, filename, start)
        count = toks.integer("the number of evidence samples")[0] if with_count else 1
        results = [_solution(toks, task, model) for _ in range(count)]
        expect_end(toks, f"the {task} solution" + ("s" if count != 1 else ""))
        return results

    try:
        return run(with_count=False)
    except ParseError as first_error:
        try:
            return run(with_count=True)
        except ParseError:
            raise first_error from None


def parse_uai_result(
    text: str, filename: str = "<string>", *, model: UAIModel | None = None
) -> UAIResult:
    """Parse a UAI result file holding one solution (the usual case since UAI 2012).

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    model : UAIModel, optional
        If given, check the solution against it.

    Returns
    -------
    UAIResult

    Raises
    ------
    probforge.errors.ParseError
        Malformed file, or a UAI 2010 file with solutions for several evidence samples (use
        :func:`parse_uai_results`).

    Examples
    --------
    >>> from pgm.io.uai import parse_uai_result
    >>> parse_uai_result("MAR\\n2 2 0.1 0.9 3 0.2 0.2 0.6\\n").marginals[1]
    array([0.2, 0.2, 0.6])
    >>> parse_uai_result("MPE\\n3 0 1 0\\n").assignment
    (0, 1, 0)
    """
    results = parse_uai_results(text, filename, model=model)
    if len(results) != 1:
        raise parse_error(
            filename,
            text,
            0,
            text.split(maxsplit=1)[0],
            f"a result file with one solution (this one has {len(results)}, one per evidence "
            "sample)",
            fix="use read_uai_results",
        )
    return results[0]


def read_uai_result(path: str | os.PathLike[str], *, model: UAIModel | None = None) -> UAIResult:
    """Read a UAI result file with one solution; see :func:`parse_uai_result`.

    Raises
    ------
    probforge.errors.MissingFileError
        No such file, not a regular file, or unreadable (a ``FileNotFoundError`` too).
    probforge.errors.ParseError
        See :func:`parse_uai_result`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_result
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.PR"
    >>> _ = p.write_text("PR\\n-0.2008\\n")
    >>> read_uai_result(p).log10_probability
    -0.2008
    """
    _check_optional_model(model)
    text = read_source(path, "UAI result file")
    return parse_uai_result(text, display_name(path), model=model)


def read_uai_results(
    path: str | os.PathLike[str], *, model: UAIModel | None = None
) -> list[UAIResult]:
    """Read a UAI result file, one solution per evidence sample; see :func:`parse_uai_results`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_results
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.MPE"
    >>> _ = p.write_text("MPE\\n1\\n2 1 0\\n")   # UAI 2010 layout: one evidence sample
    >>> read_uai_results(p)[0].assignment
    (1, 0)
    """
    _check_optional_model(model)
    text = read_source(path, "UAI result file")
    return parse_uai_results(text, display_name(path), model=model)


def format_uai_result(
    task: UAITask,
    value: float | Sequence[npt.ArrayLike] | Sequence[int] | UAIResult,
    *,
    model: UAIModel | None = None,
) -> str:
    """Format one solution as a UAI 2014+ result file.

    Parameters
    ----------
    task : {"PR", "MAR", "MAP", "MPE"}
        The task line.
    value : float, sequence or UAIResult
        ``PR``: **log10** of the probability (convert a natural log with ``ln_z / math.log(10)``).
        ``MAR``: one probability vector per variable. ``MAP`` / ``MPE``: one value per variable.
    model : UAIModel, optional
        Check the number of variables and the cardinalities against it.

    Returns
    -------
    str

    Examples
    --------
    >>> import math
    >>> from pgm.io.uai import format_uai_result
    >>> format_uai_result("PR", math.log10(0.5))
    'PR\\n-0.3010299956639812\\n'
    >>> format_uai_result("MAR", [[0.25, 0.75], [1.0, 0.0, 0.0]])
    'MAR\\n2 2 0.25 0.75 3 1.0 0.0 0.0\\n'
    """
    task = _check_task(task)
    _check_optional_model(model)
    result = value if isinstance(value, UAIResult) else UAIResult(task, value)  # type: ignore[arg-type]
    if result.task != task:
        raise ValidationError("UAI result", f"task {task!r} given for a {result.task} result")
    if task == "PR":
        body = repr(result.log10_probability)
    elif task == "MAR":
        marginals = result.marginals
        if model is not None and tuple(m.size for m in marginals) != model.cards:
            raise ShapeError(
                "MAR result",
                "one marginal per model variable, of its cardinality",
                found=[m.size for m in marginals],
            )
        parts = [str(len(marginals))]
        for m in marginals:
            parts.append(str(m.size))
            parts.extend(map(repr, m.tolist()))
        body = " ".join(parts)
    else:
        assignment = result.assignment
        if model is not None and (
            len(assignment) != len(model.cards)
            or any(x >= c for x, c in zip(assignment, model.cards, strict=True))
        ):
            raise ValidationError(
                f"{task} result",
                "one value per model variable, within its cardinality",
                found=assignment,
            )
        body = " ".join(map(str, (len(assignment), *assignment)))
    return f"{task}\n{body}\n"


def write_uai_result(
    task: UAITask,
    value: float | Sequence[npt.ArrayLike] | Sequence[int] | UAIResult,
    path: str | os.PathLike[str],
    *,
    model: UAIModel | None = None,
) -> None:
    """Write one solution to a UAI result file, atomically; see :func:`format_uai_result`.

    Note that ``PR`` values are **base-10** logarithms, as the UAI competitions specify.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_result, write_uai_result
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.MAP"
    >>> write_uai_result("MAP", [1, 0, 2], p)
    >>> read_uai_result(p).assignment
    (1, 0, 2)
    """
    text = format_uai_result(task, value, model=model)
    write_source(path, text, "UAI result file", compress_gz=False)
