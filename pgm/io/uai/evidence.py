"""UAI evidence files (``.evid``): one or several samples of observed variables."""


from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from probforge.errors import (
    ParseError,
    ValidationError,
)
from probforge.validate import check_int

from .._source import (
    END_OF_FILE,
    bounded_int,
    check_text,
    display_name,
    parse_error,
    read_source,
    write_source,
)
from ._common import (
    INT_RE,
    TOKEN_RE,
    Tokens,
    UAIEvidence,
    expect_end,
)
from .model import UAIModel

# --------------------------------------------------------------------------------------------------
# Evidence files
# --------------------------------------------------------------------------------------------------


def _check_against_model(
    toks: Tokens, model: UAIModel | None, var: int, var_at: int, value: int, value_at: int
) -> None:
    if model is None:
        return
    n = len(model.cards)
    if var >= n:
        raise toks.error_at(var_at, str(var), f"a variable index in [0, {n})")
    if value >= model.cards[var]:
        raise toks.error_at(
            value_at, str(value), f"a value of variable {var} in [0, {model.cards[var]})"
        )


def _evidence_sample(toks: Tokens, model: UAIModel | None, label: str) -> dict[int, int]:
    count, _ = toks.integer(f"the number of observed variables{label}")
    sample: dict[int, int] = {}
    for _i in range(count):
        var, var_at = toks.integer(f"an observed variable index{label}")
        value, value_at = toks.integer(f"the observed value of variable {var}{label}")
        if var in sample:
            raise toks.error_at(var_at, str(var), f"a variable not observed already{label}")
        _check_against_model(toks, model, var, var_at, value, value_at)
        sample[var] = value
    return sample


def parse_uai_evidence(
    text: str, filename: str = "<string>", *, model: UAIModel | None = None
) -> UAIEvidence:
    """Parse an evidence file in either UAI layout.

    Layout detection: the file is read as **one sample** (``n v1 x1 ... vn xn``, UAI 2008 and
    2012+) when its first line holds exactly ``1 + 2 n`` numbers, ``n`` being the first number;
    otherwise as **several samples** (UAI 2010: ``N``, then ``N`` groups ``n v1 x1 ...``), and if
    that fails but the whole file holds ``1 + 2 n`` numbers, as one sample spread over lines.
    (So a file containing just ``0`` is one sample with no evidence, ``[{}]``.)

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    model : UAIModel, optional
        If given, indices and values are checked against its cardinalities.

    Returns
    -------
    list of dict of int to int
        One dict per sample: variable index -> observed value index.

    Raises
    ------
    probforge.errors.ParseError
        A token is not a whole number (ASCII digits, at most 18 of them), a count disagrees with
        the data, a variable is observed twice in a sample, or (with ``model``) an index or value
        is out of range.
    probforge.errors.ValidationError
        ``text`` is not a ``str``, ``model`` not a :class:`UAIModel`.

    Notes
    -----
    An empty evidence file (no token at all) is a :class:`~probforge.errors.ParseError`: "no
    evidence" is written ``0``.

    Examples
    --------
    >>> from pgm.io import parse_uai_evidence
    >>> parse_uai_evidence("2 1 0 2 1")            # one sample, UAI 2014
    [{1: 0, 2: 1}]
    >>> parse_uai_evidence("2\\n1 0 1\\n2 0 0 1 1\\n")  # two samples, UAI 2010
    [{0: 1}, {0: 0, 1: 1}]
    """
    check_text(text, "UAI evidence text", "read_uai_evidence")
    check_text(filename, "filename", "read_uai_evidence")
    _check_optional_model(model)
    first = TOKEN_RE.search(text)
    if first is None:
        raise parse_error(
            filename, text, len(text), END_OF_FILE, "the number of observed variables"
        )
    line_end = text.find("\n", first.start())
    first_line = text[first.start() : len(text) if line_end < 0 else line_end].split()
    lead = first_line[0]
    count = bounded_int(lead) if INT_RE.fullmatch(lead) else None
    n = -1 if count is None else count

    def single() -> UAIEvidence:
        toks = Tokens(text, filename)
        sample = _evidence_sample(toks, model, "")
        expect_end(toks, "the evidence sample")
        return [sample]

    if n >= 0 and len(first_line) == 1 + 2 * n:
        return single()
    toks = Tokens(text, filename)
    try:
        n_samples, _ = toks.integer("the number of evidence samples")
        samples = [_evidence_sample(toks, model, f" (sample {k})") for k in range(n_samples)]
        expect_end(toks, f"{n_samples} evidence samples")
    except ParseError:
        if n >= 0 and len(text.split()) == 1 + 2 * n:
            return single()
        raise
    return samples


def read_uai_evidence(
    path: str | os.PathLike[str], *, model: UAIModel | None = None
) -> UAIEvidence:
    """Read a UAI evidence file (``.evid``); see :func:`parse_uai_evidence` for the layouts.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    model : UAIModel, optional
        Check indices and values against it.

    Returns
    -------
    list of dict of int to int

    Raises
    ------
    probforge.errors.MissingFileError
        No such file, not a regular file, or unreadable (a ``FileNotFoundError`` too).
    probforge.errors.ParseError
        See :func:`parse_uai_evidence`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_evidence
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> _ = p.write_text("1 0 1\\n")
    >>> read_uai_evidence(p)
    [{0: 1}]
    """
    _check_optional_model(model)
    text = read_source(path, "UAI evidence file")
    return parse_uai_evidence(text, display_name(path), model=model)


def _check_optional_model(model: object) -> UAIModel | None:
    if model is not None and not isinstance(model, UAIModel):
        raise ValidationError("model", "must be a UAIModel or None", found=type(model).__name__)
    return model


def _normalise_evidence(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]], model: UAIModel | None
) -> UAIEvidence:
    _check_optional_model(model)
    if isinstance(evidence, Mapping):
        samples: list[Any] = [evidence]
    elif isinstance(evidence, str | bytes) or not isinstance(evidence, Iterable):
        raise ValidationError(
            "evidence", "must be a mapping {variable index: value index} or a list of them",
            found=type(evidence).__name__,
        )
    else:
        samples = list(evidence)
    out: UAIEvidence = []
    for k, sample in enumerate(samples):
        if not isinstance(sample, Mapping):
            raise ValidationError(
                f"evidence sample {k}", "must be a mapping {variable index: value index}",
                found=type(sample).__name__,
            )
        clean: dict[int, int] = {}
        for var, value in sample.items():
            v, x = _index(var, k, (var, value)), _index(value, k, (var, value))
            if model is not None and (v >= len(model.cards) or x >= model.cards[v]):
                raise ValidationError(
                    f"evidence sample {k}",
                    "variable or value out of the model's range",
                    found=(var, value),
                )
            clean[v] = x
        out.append(clean)
    return out


def _index(x: Any, k: int, pair: tuple[Any, Any]) -> int:
    """A variable or value index: an int >= 0 (a bool or a float such as 1.0 is refused)."""
    try:
        return check_int(x, "index", minimum=0)
    except ValidationError:
        raise ValidationError(
            f"evidence sample {k}",
            "indices and values must be whole numbers >= 0 (ints, not bools or floats)",
            found=pair,
        ) from None


def write_uai_evidence_text(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]],
    *,
    layout: Literal["auto", "single", "multi"] = "auto",
    model: UAIModel | None = None,
) -> str:
    """Format evidence as a UAI evidence file.

    Parameters
    ----------
    evidence : mapping or sequence of mappings
        One sample (variable index -> value index) or several.
    layout : {"auto", "single", "multi"}, default "auto"
        ``"single"``: the one-line UAI 2008/2012+ layout (exactly one sample). ``"multi"``: the
        UAI 2010 layout with the sample count first. ``"auto"``: single for one sample, multi
        otherwise.
    model : UAIModel, optional
        Check indices and values against it.

    Returns
    -------
    str

    Raises
    ------
    probforge.errors.ValidationError
        Negative or non-integer entries (bools and floats are refused), out-of-range values
        (with ``model``), ``"single"`` with other than one sample, or no sample at all (which no
        layout can express unambiguously).

    Examples
    --------
    >>> from pgm.io.uai import write_uai_evidence_text
    >>> write_uai_evidence_text({1: 0, 2: 1})
    '2 1 0 2 1\\n'
    >>> write_uai_evidence_text([{0: 1}, {}])
    '2\\n1 0 1\\n0\\n'
    """
    samples = _normalise_evidence(evidence, model)
    if not samples:
        raise ValidationError(
            "evidence", "there is no sample to write", fix="pass [{}] for 'no evidence'"
        )
    if not isinstance(layout, str) or layout not in ("auto", "single", "multi"):
        raise ValidationError("layout", "must be 'auto', 'single' or 'multi'",
                              found=repr(layout))
    if layout == "single" and len(samples) != 1:
        raise ValidationError(
            "evidence", "the single layout holds exactly one sample", found=len(samples)
        )
    lines = [" ".join(map(str, [len(s), *(x for kv in s.items() for x in kv)])) for s in samples]
    if layout == "multi" or (layout == "auto" and len(samples) > 1):
        lines.insert(0, str(len(samples)))
    return "\n".join(lines) + "\n"


def write_uai_evidence(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]],
    path: str | os.PathLike[str],
    *,
    layout: Literal["auto", "single", "multi"] = "auto",
    model: UAIModel | None = None,
) -> None:
    """Write a UAI evidence file atomically; see :func:`write_uai_evidence_text`.

    Raises
    ------
    probforge.errors.MissingFileError
        The destination's directory does not exist (checked before anything is written).
    probforge.errors.ValidationError
        See :func:`write_uai_evidence_text`; also ``path`` not a path, or a directory.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_evidence, write_uai_evidence
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> write_uai_evidence([{0: 1}, {1: 0}], p)
    >>> read_uai_evidence(p)
    [{0: 1}, {1: 0}]
    """
    text = write_uai_evidence_text(evidence, layout=layout, model=model)
    write_source(path, text, "UAI evidence file", compress_gz=False)
