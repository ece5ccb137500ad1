"""UAI model files (``.uai``): the :class:`UAIModel` data class, reader and writer."""


from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, cast, get_args

import numpy as np

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.validate import check_int

from .._source import (
    END_OF_FILE,
    MAX_TABLE_AXES,
    bounded_int,
    check_limit,
    check_text,
    display_name,
    read_source,
    write_source,
)
from ._common import (
    DEFAULT_MAX_TABLE_ENTRIES,
    INT_RE,
    NOT_NUMERIC_RE,
    NUMBER_RE,
    TOKEN_RE,
    FloatArray,
    Tokens,
    UAIKind,
)

# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UAIModel:
    """A model in UAI form: variables are indices ``0 .. n-1``, functions are dense tables.

    Parameters
    ----------
    kind : {"BAYES", "MARKOV"}
        ``BAYES``: every function is a CPT whose child is the *last* scope variable, and every
        variable is the child of exactly one function. ``MARKOV``: non-negative potentials.
    cards : tuple of int
        Cardinality of each variable (>= 1).
    scopes : tuple of tuple of int
        Variables of each function, in table-axis order (no repeats).
    tables : tuple of numpy.ndarray
        Table ``i`` has shape ``tuple(cards[v] for v in scopes[i])``; stored as read-only float64.
        The UAI file lists its entries in C order (last scope variable fastest).

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import UAIModel
    >>> m = UAIModel("BAYES", (2, 2), ((0,), (0, 1)),
    ...              (np.array([0.3, 0.7]), np.array([[0.9, 0.1], [0.2, 0.8]])))
    >>> m.tables[1][1]  # p(x1 | x0 = 1)
    array([0.2, 0.8])
    """

    kind: UAIKind
    cards: tuple[int, ...]
    scopes: tuple[tuple[int, ...], ...]
    tables: tuple[FloatArray, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in get_args(UAIKind):
            raise ValidationError("UAI model", "kind must be 'BAYES' or 'MARKOV'",
                                  found=repr(self.kind))
        raw_cards = _sequence(self.cards, "cards of the UAI model")
        for c in raw_cards:
            check_int(c, "cardinality in the UAI model")
        cards = tuple(int(c) for c in raw_cards)
        if any(c < 1 for c in cards):
            raise ShapeError("UAI model", "every cardinality must be >= 1", found=cards)
        scopes = tuple(
            tuple(check_int(v, f"scope of function {i}") for v in _sequence(s, f"scope {i}"))
            for i, s in enumerate(_sequence(self.scopes, "scopes of the UAI model"))
        )
        raw_tables = _sequence(self.tables, "tables of the UAI model")
        if len(raw_tables) != len(scopes):
            raise ShapeError(
                "UAI model",
                f"one table per scope is needed ({len(scopes)} scopes)",
                found=f"{len(raw_tables)} tables",
            )
        tables: list[FloatArray] = []
        for i, (scope, table) in enumerate(zip(scopes, raw_tables, strict=True)):
            if any(not 0 <= v < len(cards) for v in scope) or len(set(scope)) != len(scope):
                raise ValidationError(
                    f"scope of function {i}",
                    f"indices must be distinct and in [0, {len(cards)})",
                    found=scope,
                )
            arr = _float_table(table, f"table of function {i}")
            shape = tuple(cards[v] for v in scope)
            if arr.shape != shape:
                raise ShapeError(
                    f"table of function {i}",
                    "shape must be the cardinalities of its scope, in scope order",
                    found=f"{arr.shape}, expected {shape}",
                )
            if not np.isfinite(arr).all():
                raise NonFiniteError(f"table of function {i}", "values must be finite")
            if (arr < 0).any():
                raise ValidationError(
                    f"table of function {i}", "values must be >= 0", found=float(arr.min())
                )
            arr.setflags(write=False)
            tables.append(arr)
        if self.kind == "BAYES":
            children = [s[-1] if s else None for s in scopes]
            if None in children:
                raise ValidationError("BAYES model", "a CPT has an empty scope")
            if sorted(cast(list[int], children)) != list(range(len(cards))):
                raise ValidationError(
                    "BAYES model",
                    "every variable must be the child (last scope variable) of exactly one CPT",
                    found=f"children {children}",
                )
        object.__setattr__(self, "cards", cards)
        object.__setattr__(self, "scopes", scopes)
        object.__setattr__(self, "tables", tuple(tables))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UAIModel):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.cards == other.cards
            and self.scopes == other.scopes
            and all(np.array_equal(a, b) for a, b in zip(self.tables, other.tables, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"UAIModel(kind={self.kind!r}, variables={len(self.cards)}, "
            f"functions={len(self.scopes)})"
        )


def _sequence(value: Any, subject: str) -> tuple[Any, ...]:
    """``value`` as a tuple, if it is a sequence (not a string, a mapping or a bare number)."""
    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
        raise ValidationError(subject, "must be a sequence (tuple or list)",
                              found=type(value).__name__)
    return tuple(value)


def _float_table(table: Any, subject: str) -> FloatArray:
    """A float64 copy of a table of real numbers; integer / bool / object tables are refused (a
    table of probabilities or potentials is never silently cast from integers)."""
    try:
        arr = np.asarray(table)
    except (ValueError, TypeError) as err:  # ragged nesting
        raise ShapeError(subject, "must be a rectangular array of numbers",
                         found=type(table).__name__) from err
    if arr.dtype.kind not in "f":
        raise DtypeMismatchError(
            subject, "must hold floating-point numbers", found=str(arr.dtype),
            fix="pass a float array, e.g. np.asarray(table, dtype=float), after checking it",
        )
    return np.array(arr, dtype=np.float64, copy=True)


# --------------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------------


def parse_uai(
    text: str, filename: str = "<string>", *, max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES
) -> UAIModel:
    """Parse the text of a UAI model file.

    Parameters
    ----------
    text : str
        File content.
    filename : str, default "<string>"
        Name used in error messages.
    max_table_entries : int, default 2**27
        Refuse any function table with more entries, and any variable with more states, before
        allocating anything.

    Returns
    -------
    UAIModel
        Tables reshaped in C order: ``tables[i].shape == tuple(cards[v] for v in scopes[i])``.

    Raises
    ------
    probforge.errors.ParseError
        Unknown network type; a count that disagrees with what follows (cardinalities on the
        cardinality line, scope sizes, table sizes not equal to the product of the scope's
        cardinalities, too few values); an index out of range; a repeated scope variable; a
        negative, NaN or infinite value; anything after the last table; a table of more than
        ``max_table_entries`` entries or over more than 32 variables, a cardinality above
        ``max_table_entries``, a whole number of more than 18 digits. In a ``BAYES`` file, also
        a variable that is not the child (last scope variable) of exactly one CPT. CPT rows that
        do not sum to one are *not* an error here (see :func:`pgm.io.model_from_uai`).
    probforge.errors.ValidationError
        ``text`` is not a ``str``, ``max_table_entries`` not an ``int >= 1``.

    Examples
    --------
    >>> from pgm.io import parse_uai
    >>> m = parse_uai('''BAYES
    ... 2
    ... 2 3
    ... 2
    ... 1 0
    ... 2 0 1
    ... 2  0.4 0.6
    ... 6  0.2 0.3 0.5
    ...    0.1 0.1 0.8''')
    >>> m.tables[1][0]  # p(x1 | x0 = 0): the child is the last scope variable
    array([0.2, 0.3, 0.5])
    """
    check_text(text, "UAI model text", "read_uai")
    check_text(filename, "filename", "read_uai")
    max_table_entries = check_limit(max_table_entries, "max_table_entries")
    toks = Tokens(text, filename)
    kind_tok, kind_at = toks.take("'BAYES' or 'MARKOV'")
    if kind_tok not in ("BAYES", "MARKOV"):
        raise toks.error_at(
            kind_at,
            kind_tok,
            "'BAYES' or 'MARKOV'",
            fix="the first line of a UAI model file names the network type",
        )
    kind = cast(UAIKind, kind_tok)
    # A file that puts its type on a line of its own follows the line layout of the preamble, and
    # a line holding more numbers than its count announces is reported right there. A file
    # without line structure is read as a plain stream of numbers.
    nxt = toks.peek()
    toks.check_lines = nxt is None or "\n" in text[toks.last_end : nxt.start()]
    n_vars, _ = toks.integer("the number of variables (a whole number >= 0)")
    toks.end_of_line("the number of variables")
    cards: list[int] = []
    for i in range(n_vars):
        # A variable with more states than a table may hold could never get a table, and
        # model_from_uai would allocate a uniform factor of that size: refuse it here.
        card, card_at = toks.integer(
            f"the cardinality of variable {i} (a whole number >= 1)",
            low=1,
            line=f"the cardinality line ({n_vars} variables declared)" if i else None,
        )
        if card > max_table_entries:
            raise toks.error_at(
                card_at,
                str(card),
                f"a cardinality of at most max_table_entries={max_table_entries} (variable {i})",
                fix="pass a larger max_table_entries if the memory is available",
            )
        cards.append(card)
    toks.end_of_line(
        f"{n_vars} cardinalities",
        fix="the cardinality line must hold exactly as many values as the variable count says",
    )
    n_funcs, _ = toks.integer("the number of functions (a whole number >= 0)")
    toks.end_of_line("the number of functions")
    scopes: list[tuple[int, ...]] = []
    children: dict[int, int] = {}
    max_size = min(n_vars, MAX_TABLE_AXES)
    for f in range(n_funcs):
        size, _ = toks.integer(
            # at most the number of variables, and at most MAX_TABLE_AXES
            f"the scope size of function {f} (a whole number <= {max_size})",
            low=1 if kind == "BAYES" else 0,
            high=max_size + 1,
        )
        scope: list[int] = []
        in_scope: set[int] = set()
        for j in range(size):
            v, v_at = toks.integer(
                f"variable {j} of the scope of function {f} (an index in [0, {n_vars}))",
                high=n_vars,
                line=f"the scope line of function {f} (its size is {size})",
            )
            if v in in_scope:
                raise toks.error_at(
                    v_at, str(v), f"a variable not already in the scope of function {f}"
                )
            in_scope.add(v)
            scope.append(v)
        toks.end_of_line(
            f"the {size} variables of the scope of function {f}",
            fix="each scope line holds its size and exactly that many variable indices",
        )
        if kind == "BAYES":
            child = scope[-1]
            if child in children:
                raise toks.error_at(
                    v_at,
                    str(child),
                    f"a child variable (last of the scope) without a CPT yet; variable {child} "
                    f"is already the child of function {children[child]}",
                )
            children[child] = f
        scopes.append(tuple(scope))
    if kind == "BAYES" and len(children) != n_vars:
        missing = next(v for v in range(n_vars) if v not in children)
        m = toks.peek()
        at, tok = (m.start(), m.group()) if m is not None else (len(text), END_OF_FILE)
        raise toks.error_at(
            at,
            tok,
            f"a CPT for every variable: variable {missing} is not the last (child) variable of "
            "any scope",
        )

    # Function tables: the bulk of the file, read with str.split for speed. Positions are
    # recovered (by rescanning) only when an error is reported.
    nxt = toks.peek()
    data_start = len(text) if nxt is None else nxt.start()
    words = text[data_start:].split()
    bad = NOT_NUMERIC_RE.search(text, data_start)
    bad_word = len(words)  # index of the first word holding a non-numeric character
    if bad is not None:
        word_start = bad.start()
        while word_start > data_start and not text[word_start - 1].isspace():
            word_start -= 1
        bad_word = len(text[data_start:word_start].split())

    def word_offset(k: int) -> int:
        for i, m in enumerate(TOKEN_RE.finditer(text, data_start)):
            if i == k:
                return m.start()
        return len(text)  # pragma: no cover - callers pass valid indices

    tables: list[FloatArray] = []
    pos = 0
    for f, scope_t in enumerate(scopes):
        shape = tuple(cards[v] for v in scope_t)
        expected = math.prod(shape)
        what = (
            f"the number of entries of function {f}: {expected}, the product of the "
            f"cardinalities {list(shape)} of its scope {list(scope_t)}"
        )
        if pos >= len(words):
            raise toks.error_at(len(text), END_OF_FILE, what)
        tok = words[pos]
        # The limit first, whatever the count says: the scopes alone fix the size.
        if expected > max_table_entries:
            raise toks.error_at(
                word_offset(pos),
                tok,
                f"a table of at most max_table_entries={max_table_entries} entries (function "
                f"{f} has {expected}: the product of the cardinalities {list(shape)})",
                fix="pass a larger max_table_entries if the memory is available",
            )
        if not INT_RE.fullmatch(tok) or bounded_int(tok) != expected:
            raise toks.error_at(word_offset(pos), tok, what)
        pos += 1
        chunk = words[pos : pos + expected]
        if len(chunk) < expected:
            raise toks.error_at(
                len(text),
                END_OF_FILE,
                f"{expected} values for function {f}, not {len(chunk)}",
            )
        if pos <= bad_word < pos + expected:
            _raise_bad_value(toks, chunk, pos, word_offset, f)
        try:
            values = np.fromiter(map(float, chunk), dtype=np.float64, count=expected)
        except ValueError:
            _raise_bad_value(toks, chunk, pos, word_offset, f)
        if not (np.isfinite(values).all() and (values >= 0).all()):
            _raise_bad_value(toks, chunk, pos, word_offset, f)
        tables.append(values.reshape(shape))
        pos += expected
    if pos < len(words):
        raise toks.error_at(
            word_offset(pos),
            words[pos],
            f"the end of the file after the {n_funcs} function tables",
        )
    return UAIModel(kind, tuple(cards), tuple(scopes), tuple(tables))


def _raise_bad_value(
    toks: Tokens, chunk: list[str], pos: int, offsets: Callable[[int], int], f: int
) -> NoReturn:
    for j, tok in enumerate(chunk):
        ok = bool(NUMBER_RE.fullmatch(tok))
        if ok:
            value = float(tok)
            ok = math.isfinite(value) and value >= 0
        if not ok:
            raise toks.error_at(
                offsets(pos + j),
                tok,
                f"entry {j} of function {f}: a finite, non-negative number",
            )
    raise AssertionError("no bad value found")  # pragma: no cover


def read_uai(
    path: str | os.PathLike[str], *, max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES
) -> UAIModel:
    """Read a UAI model file (plain or gzip-compressed).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.uai`` file.
    max_table_entries : int, default 2**27
        See :func:`parse_uai`.

    Returns
    -------
    UAIModel

    Raises
    ------
    probforge.errors.MissingFileError
        No such file, not a regular file, or unreadable (a ``FileNotFoundError`` too).
    probforge.errors.ParseError
        See :func:`parse_uai`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_uai
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai"
    >>> _ = p.write_text("MARKOV\\n1\\n2\\n1\\n1 0\\n\\n2\\n 1.5 0.5\\n")
    >>> read_uai(p).tables[0]
    array([1.5, 0.5])
    """
    limit = check_limit(max_table_entries, "max_table_entries")
    text = read_source(path, "UAI model file")
    return parse_uai(text, display_name(path), max_table_entries=limit)


def write_uai_text(model: UAIModel) -> str:
    """Return ``model`` in UAI model format (values with ``repr``: no precision is lost).

    Parameters
    ----------
    model : UAIModel

    Returns
    -------
    str
        Text with ``parse_uai(text) == model``; each table is written one row (last axis) per line.

    Raises
    ------
    probforge.errors.ValidationError
        ``model`` is not a :class:`UAIModel`.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import UAIModel, write_uai_text
    >>> print(write_uai_text(UAIModel("MARKOV", (2,), ((0,),), (np.array([1.0, 3.0]),))))
    MARKOV
    1
    2
    1
    1 0
    <BLANKLINE>
    2
     1.0 3.0
    <BLANKLINE>
    """
    _check_model(model, "model")
    out = [
        model.kind,
        str(len(model.cards)),
        " ".join(map(str, model.cards)),
        str(len(model.scopes)),
    ]
    out.extend(" ".join(map(str, (len(s), *s))) for s in model.scopes)
    for table in model.tables:
        out.append("")
        out.append(str(table.size))
        rows = table.reshape(-1, table.shape[-1]) if table.ndim else table.reshape(1, 1)
        out.extend(" " + " ".join(map(repr, row)) for row in rows.tolist())
    return "\n".join(out) + "\n"


def write_uai(model: UAIModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to a UAI model file, atomically.

    Parameters
    ----------
    model : UAIModel
    path : str or os.PathLike
        Destination (its directory must exist).

    Raises
    ------
    probforge.errors.MissingFileError
        The destination's directory does not exist (checked before anything is written).
    probforge.errors.ValidationError
        ``model`` is not a :class:`UAIModel`, ``path`` is not a path or is a directory.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from pgm.io import UAIModel, read_uai, write_uai
    >>> m = UAIModel("MARKOV", (2, 2), ((0, 1),), (np.array([[1.0, 2.0], [3.0, 4.0]]),))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.uai"
    >>> write_uai(m, p)
    >>> read_uai(p) == m
    True
    """
    text = write_uai_text(model)
    write_source(path, text, "UAI model file", compress_gz=False)


def _check_model(model: Any, subject: str) -> UAIModel:
    if not isinstance(model, UAIModel):
        raise ValidationError(subject, "must be a UAIModel", found=type(model).__name__,
                              fix="build one with UAIModel(...) or pgm.io.model_to_uai(model)")
    return model
