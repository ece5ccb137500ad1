"""UAI evidence files (``.evid``): one or several samples of observed variables."""


from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

from probforge.errors import (
    ParseError,
    ValidationError,
)
from probforge.files import atomic_write_text

from .._source import END_OF_FILE, display_name, parse_error, read_source
from ._common import (
    _INT,
    _TOKEN,
    UAIEvidence,
    _Tokens,
)
from .model import UAIModel

# --------------------------------------------------------------------------------------------------
# Evidence files
# --------------------------------------------------------------------------------------------------


def _check_against_model(
    toks: _Tokens, model: UAIModel | None, var: int, var_at: int, value: int, value_at: int
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


def _evidence_sample(toks: _Tokens, model: UAIModel | None, label: str) -> dict[int, int]:
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


def _expect_end(toks: _Tokens, what: str) -> None:
    m = toks.peek()
    if m is not None:
        raise toks.error_at(m.start(), m.group(), f"the end of the file after {what}")


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
        A token is not a whole number, a count disagrees with the data, a variable is observed
        twice in a sample, or (with ``model``) an index or value is out of range.

    Examples
    --------
    >>> from pgm.io import parse_uai_evidence
    >>> parse_uai_evidence("2 1 0 2 1")            # one sample, UAI 2014
    [{1: 0, 2: 1}]
    >>> parse_uai_evidence("2\\n1 0 1\\n2 0 0 1 1\\n")  # two samples, UAI 2010
    [{0: 1}, {0: 0, 1: 1}]
    """
    first = _TOKEN.search(text)
    if first is None:
        raise parse_error(
            filename, text, len(text), END_OF_FILE, "the number of observed variables"
        )
    line_end = text.find("\n", first.start())
    first_line = text[first.start() : len(text) if line_end < 0 else line_end].split()
    lead = first_line[0]
    n = int(lead) if _INT.fullmatch(lead) else -1

    def single() -> UAIEvidence:
        toks = _Tokens(text, filename)
        sample = _evidence_sample(toks, model, "")
        _expect_end(toks, "the evidence sample")
        return [sample]

    if n >= 0 and len(first_line) == 1 + 2 * n:
        return single()
    toks = _Tokens(text, filename)
    try:
        n_samples, _ = toks.integer("the number of evidence samples")
        samples = [_evidence_sample(toks, model, f" (sample {k})") for k in range(n_samples)]
        _expect_end(toks, f"{n_samples} evidence samples")
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

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_evidence
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> _ = p.write_text("1 0 1\\n")
    >>> read_uai_evidence(p)
    [{0: 1}]
    """
    return parse_uai_evidence(read_source(path), display_name(path), model=model)


def _normalise_evidence(
    evidence: Mapping[int, int] | Sequence[Mapping[int, int]], model: UAIModel | None
) -> UAIEvidence:
    samples = [evidence] if isinstance(evidence, Mapping) else list(evidence)
    out: UAIEvidence = []
    for k, sample in enumerate(samples):
        clean: dict[int, int] = {}
        for var, value in sample.items():
            v, x = int(var), int(value)
            if v != var or x != value or v < 0 or x < 0:
                raise ValidationError(
                    f"evidence sample {k}",
                    "indices and values must be whole numbers >= 0",
                    found=(var, value),
                )
            if model is not None and (v >= len(model.cards) or x >= model.cards[v]):
                raise ValidationError(
                    f"evidence sample {k}",
                    "variable or value out of the model's range",
                    found=(var, value),
                )
            clean[v] = x
        out.append(clean)
    return out


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
        Negative or non-integer entries, out-of-range values (with ``model``), ``"single"`` with
        other than one sample, or no sample at all (which no layout can express unambiguously).

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
    if layout not in ("auto", "single", "multi"):
        raise ValidationError("layout", "must be 'auto', 'single' or 'multi'", found=layout)
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

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai_evidence, write_uai_evidence
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> write_uai_evidence([{0: 1}, {1: 0}], p)
    >>> read_uai_evidence(p)
    [{0: 1}, {1: 0}]
    """
    atomic_write_text(path, write_uai_evidence_text(evidence, layout=layout, model=model))
