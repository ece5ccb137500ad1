"""The BIF (Bayesian Interchange Format) text format, as used by the bnlearn repository.

:func:`parse_bif` / :func:`read_bif` turn a BIF text or file into a :class:`DiscreteNetworkData`;
:mod:`pgm.io.bif_writer` does the reverse, losslessly.

Grammar understood (keywords are case-sensitive, as in every bnlearn file)::

    network NAME { property ...; }
    variable NAME { type discrete [ N ] { s1, s2, ..., sN }; property ...; }
    probability ( CHILD ) { table v1, v2, ...; }
    probability ( CHILD | P1, P2 ) { (p1state, p2state) v1, v2, ...; ... default v1, v2, ...; }

* Comments are ``// ...`` to the end of the line and ``/* ... */``. Names (of the network,
  variables and states) are runs of characters other than white space, ``{ } ( ) [ ] , ; | "``
  and the comment openers, so ``5-12``, ``<7.5``, ``Asy/Patch`` and ``Transp.`` are names.
* A ``property`` line keeps its text verbatim (up to the ``;`` that ends it; a ``;`` may appear
  inside a double-quoted string). Network and variable properties are kept for the round trip.
* Values are non-negative decimal numbers (ASCII digits), separated by commas (or white space) and
  ended by ``;``.
* A row ``(s1, s2) v...;`` gives ``p(child | P1=s1, P2=s2)``; ``default v...;`` gives the rows not
  listed; ``table v...;`` gives the whole table with the child's state varying *slowest* (the
  order of a ``(child, *parents)`` C-order array, which for a root node is just its distribution).
* Variables are declared before the probability blocks that use them; every variable needs
  exactly one probability block.

Rows are *not* checked to sum to one and nothing is renormalised: the model classes validate
normalisation (:func:`pgm.io.read_network` raises :class:`~probforge.errors.NormalisationError`
for such a row). Everything else that is wrong raises :class:`~probforge.errors.ParseError` with
the file, line, column, the token found and what was expected -- also a CPT of more than
``max_cpt_entries`` entries or over more than 32 variables, checked before it is allocated.

Examples
--------
>>> from pgm.io import parse_bif, write_bif_text
>>> data = parse_bif('''
... network coin { }
... variable heads { type discrete [ 2 ] { yes, no }; }
... variable bet { type discrete [ 2 ] { win, lose }; }
... probability ( heads ) { table 0.5, 0.5; }
... probability ( bet | heads ) { (yes) 1.0, 0.0; (no) 0.0, 1.0; }
... ''')
>>> data.parents["bet"]
('heads',)
>>> data.cpts["bet"].shape  # (*parent cards, child card)
(2, 2)
>>> parse_bif(write_bif_text(data)) == data
True
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from probforge.errors import (
    ParseError,
)

from ._source import (
    END_OF_FILE,
    MAX_TABLE_AXES,
    bounded_int,
    check_limit,
    check_text,
    display_name,
    parse_error,
    read_source,
)
from .network_data import DEFAULT_MAX_CPT_ENTRIES, DiscreteNetworkData, FloatArray

__all__ = ["parse_bif", "read_bif"]

# WORD_PATTERN and PROPERTY_PATTERN (below) are also used by the writer (pgm.io.bif_writer) to
# refuse names and properties this reader would not read back.

# --------------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------------

_PUNCT = frozenset("{}()[],;|")
_SKIP = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.S)
_WORD_BODY = r"(?:[^\s{}()\[\],;|/\"]|/(?![/*]))+"
_TOKEN = re.compile(r"[{}()\[\],;|]|" + _WORD_BODY)
WORD_PATTERN = re.compile(_WORD_BODY)
# ASCII digits only, and unambiguous: "123" can be matched in one way only. (The former
# r"\d+\.?\d*" matched it in three, so a row of long integers without its ';' made _ROW below
# backtrack exponentially: seven ten-digit numbers took 40 s.)
_NUMBER_BODY = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(r"[+-]?" + _NUMBER_BODY)
# A whole row of unsigned numbers up to its ';' -- the fast path for the bulk of a file.
_ROW = re.compile(r"(\+?" + _NUMBER_BODY + r"(?:(?:\s*,\s*|\s+)\+?" + _NUMBER_BODY + r")*)\s*;")
# A whole row "(s1, s2) v1, v2;" -- the fast path for conditional tables.
_FAST_ROW = re.compile(r"\(([^(){};,]*(?:,[^(){};,]*)*)\)\s*" + _ROW.pattern)
_INTEGER = re.compile(r"[0-9]+")
PROPERTY_PATTERN = re.compile(r'(?:[^;"{}]|"(?:[^"\\]|\\.)*")*', re.S)


class _Lexer:
    """One-token-lookahead tokenizer over the whole text; positions are character offsets."""

    __slots__ = ("end", "filename", "start", "text", "tok")

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.tok: str | None = None  # current token, None at the end of the text
        self.start = 0  # offset of the current token
        self.end = 0  # offset just after it
        self.advance()

    def advance(self, pos: int | None = None) -> None:
        """Move to the token after the current one (or the first token at or after ``pos``)."""
        text = self.text
        start = _SKIP.match(text, self.end if pos is None else pos).end()  # type: ignore[union-attr]
        self.start = start
        if start >= len(text):
            self.tok, self.end = None, start
            return
        m = _TOKEN.match(text, start)
        if m is None:
            if text.startswith("/*", start):
                raise self.error_at(start, "/*", "'*/' closing this comment")
            raise self.error_at(start, text[start], "a name, a number or one of { } ( ) [ ] , ; |")
        self.tok, self.end = m.group(), m.end()

    def error_at(
        self, offset: int, token: str | None, expected: str, *, fix: str | None = None
    ) -> ParseError:
        found = END_OF_FILE if token is None else token
        return parse_error(self.filename, self.text, offset, found, expected, fix=fix)

    def error(self, expected: str, *, fix: str | None = None) -> ParseError:
        """An error at the current token."""
        return self.error_at(self.start, self.tok, expected, fix=fix)

    def expect(self, punct: str, expected: str | None = None) -> int:
        """Consume the punctuation ``punct``; return its offset."""
        if self.tok != punct:
            raise self.error(expected or repr(punct))
        offset = self.start
        self.advance()
        return offset

    def keyword(self, word: str, expected: str | None = None) -> int:
        """Consume the keyword ``word``; return its offset."""
        return self.expect(word, expected)

    def word(self, expected: str) -> tuple[str, int]:
        """Consume a name (or number) token; return it and its offset."""
        tok = self.tok
        if tok is None or tok in _PUNCT:
            raise self.error(expected)
        offset = self.start
        self.advance()
        return tok, offset


# --------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------


class _BifParser:
    def __init__(self, text: str, filename: str, max_cpt_entries: int) -> None:
        self.lex = _Lexer(text, filename)
        self.max_cpt_entries = max_cpt_entries
        self.states: dict[str, tuple[str, ...]] = {}
        self.state_index: dict[str, dict[str, int]] = {}
        self.declared_at: dict[str, int] = {}
        self.properties: dict[str, list[str]] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.cpts: dict[str, FloatArray] = {}
        self.cpt_at: dict[str, int] = {}

    def line_of(self, offset: int) -> int:
        return self.lex.text.count("\n", 0, offset) + 1

    def parse(self) -> DiscreteNetworkData:
        lex = self.lex
        lex.keyword("network", "'network' (a BIF file starts with the network block)")
        name, _ = lex.word("the network name")
        lex.expect("{")
        network_properties: list[str] = []
        while lex.tok == "property":
            network_properties.append(self.property())
        lex.expect("}", "'property' or '}'")
        while lex.tok is not None:
            if lex.tok == "variable":
                self.variable()
            elif lex.tok == "probability":
                self.probability()
            else:
                raise lex.error("'variable', 'probability' or the end of the file")
        for var, offset in self.declared_at.items():
            if var not in self.cpts:
                raise lex.error_at(
                    offset,
                    var,
                    f"a 'probability ( {var} ... )' block for this variable",
                    fix="every variable needs exactly one probability block",
                )
        return DiscreteNetworkData(
            name=name,
            states=self.states,
            parents={v: self.parents[v] for v in self.states},
            cpts={v: self.cpts[v] for v in self.states},
            properties={v: tuple(self.properties.get(v, ())) for v in self.states},
            network_properties=tuple(network_properties),
        )

    # -- blocks ------------------------------------------------------------------------------------

    def property(self) -> str:
        """``property <text> ;`` -- the text is kept verbatim (stripped)."""
        lex = self.lex
        body_start = lex.end
        m = PROPERTY_PATTERN.match(lex.text, body_start)
        stop = m.end() if m else body_start
        if stop >= len(lex.text) or lex.text[stop] != ";":
            token = None if stop >= len(lex.text) else lex.text[stop]
            raise lex.error_at(stop, token, "';' ending the property")
        lex.advance(stop + 1)
        return lex.text[body_start:stop].strip()

    def variable(self) -> None:
        lex = self.lex
        lex.keyword("variable")
        name, name_at = lex.word("a variable name")
        if name in self.states:
            raise lex.error_at(
                name_at,
                name,
                "a new variable name",
                fix=f"{name!r} is already declared on line {self.line_of(self.declared_at[name])}",
            )
        lex.expect("{")
        states: list[str] | None = None
        props: list[str] = []
        while True:
            if lex.tok == "type":
                if states is not None:
                    raise lex.error("'property' or '}' (the states are already declared)")
                states = self.state_declaration(name)
            elif lex.tok == "property":
                props.append(self.property())
            elif lex.tok == "}":
                if states is None:
                    raise lex.error(
                        f"'type discrete [ N ] {{ ... }};' declaring the states of {name!r}"
                    )
                lex.advance()
                break
            else:
                raise lex.error("'type', 'property' or '}'")
        self.states[name] = tuple(states)
        self.state_index[name] = {s: i for i, s in enumerate(states)}
        self.declared_at[name] = name_at
        self.properties[name] = props

    def state_declaration(self, var: str) -> list[str]:
        """``type discrete [ N ] { s1, ..., sN };``"""
        lex = self.lex
        lex.keyword("type")
        kind, kind_at = lex.word("'discrete'")
        if kind != "discrete":
            raise lex.error_at(
                kind_at, kind, "'discrete'", fix="only discrete variables are supported"
            )
        lex.expect("[")
        count_tok, count_at = lex.word("the number of states")
        declared_or_none = bounded_int(count_tok) if _INTEGER.fullmatch(count_tok) else None
        if declared_or_none is None or declared_or_none < 1:
            raise lex.error_at(count_at, count_tok, "a positive whole number of states")
        declared = declared_or_none
        lex.expect("]")
        lex.expect("{")
        states: list[str] = []
        seen: dict[str, int] = {}
        while True:
            state, state_at = lex.word(f"a state name of {var!r}")
            if len(states) == declared:
                raise lex.error_at(
                    state_at, state, f"'}}' ({var!r} is declared with [ {declared} ] states)"
                )
            if state in seen:
                raise lex.error_at(state_at, state, f"a state name not already used by {var!r}")
            seen[state] = len(states)
            states.append(state)
            if lex.tok == ",":
                lex.advance()
            elif lex.tok == "}":
                break
            else:
                raise lex.error("',' or '}'")
        if len(states) != declared:
            raise lex.error(
                f"{declared} states as declared by [ {declared} ], not {len(states)}",
                fix="make the declared count and the state list agree",
            )
        lex.advance()
        lex.expect(";")
        return states

    def declared(self, name: str, offset: int, role: str) -> None:
        if name not in self.states:
            raise self.lex.error_at(
                offset,
                name,
                f"a declared variable as {role}",
                fix="declare every variable in a 'variable' block before the probability blocks "
                "that use it",
            )

    def probability(self) -> None:
        lex = self.lex
        lex.keyword("probability")
        lex.expect("(")
        child, child_at = lex.word("the name of the variable this block defines")
        self.declared(child, child_at, "the child")
        if child in self.cpts:
            raise lex.error_at(
                child_at,
                child,
                "a variable without a probability block",
                fix=f"{child!r} already has one on line {self.line_of(self.cpt_at[child])}",
            )
        parents: list[str] = []
        listed = {child}  # a set: a header with thousands of parents must not be quadratic
        if lex.tok == "|":
            lex.advance()
            while True:
                parent, parent_at = lex.word("a parent variable name")
                self.declared(parent, parent_at, f"a parent of {child!r}")
                if parent in listed:
                    raise lex.error_at(
                        parent_at, parent, f"a parent of {child!r} not listed before (nor itself)"
                    )
                listed.add(parent)
                parents.append(parent)
                if lex.tok == ",":
                    lex.advance()
                elif lex.tok == ")":
                    break
                else:
                    raise lex.error("',' or ')'")
        lex.expect(")", "'|' or ')'" if not parents else "')'")
        block_at = lex.expect("{")

        card = len(self.states[child])
        parent_cards = [len(self.states[p]) for p in parents]
        n_rows = math.prod(parent_cards)
        if n_rows * card > self.max_cpt_entries:
            raise lex.error_at(
                child_at,
                child,
                f"a CPT of at most max_cpt_entries={self.max_cpt_entries} entries "
                f"(this one has {n_rows * card})",
                fix="pass a larger max_cpt_entries if the memory is available",
            )
        if len(parents) >= MAX_TABLE_AXES:
            raise lex.error_at(
                child_at,
                child,
                f"a CPT over at most {MAX_TABLE_AXES} variables (this one has "
                f"{len(parents)} parents)",
            )
        values = np.empty((n_rows, card), dtype=np.float64)
        given = np.zeros(n_rows, dtype=bool)
        n_given = 0
        table_at: int | None = None
        default: list[float] | None = None
        row_index = [self.state_index[p] for p in parents]

        while lex.tok != "}":
            tok = lex.tok
            if tok == "table":
                if table_at is not None or n_given or default is not None:
                    raise lex.error("'}' (a block has either one 'table' or rows/'default')")
                table_at = lex.start
                lex.advance()
                flat = self.numbers(n_rows * card, f"'table' of {child!r} (child slowest)")
                # File order is (child, *parents) in C order; store (*parents, child).
                values[:] = np.asarray(flat, dtype=np.float64).reshape(card, n_rows).T
                given[:] = True
            elif tok == "default":
                if table_at is not None or default is not None:
                    raise lex.error(
                        "'}' or a row (only one 'default' line, and none after 'table')"
                    )
                lex.advance()
                default = self.numbers(card, f"'default' row of {child!r}")
            elif tok == "(":
                if table_at is not None:
                    raise lex.error("'}' (the 'table' already gives every entry)")
                row_at = lex.start
                fast = self.fast_row(row_index, parent_cards, card)
                if fast is not None and not given[fast[0]]:
                    values[fast[0]] = fast[1]
                    given[fast[0]] = True
                    n_given += 1
                    lex.advance(fast[2])
                    continue
                lex.advance()
                index = 0
                for i, parent in enumerate(parents):
                    if i:
                        if lex.tok == ")":
                            raise lex.error(
                                f"',' and a state of {parent!r}: the row needs one state per "
                                f"parent ({', '.join(parents)})"
                            )
                        lex.expect(",", f"',' and a state of {parent!r}")
                    state, state_at = lex.word(f"a state of parent {parent!r}")
                    k = row_index[i].get(state)
                    if k is None:
                        raise lex.error_at(
                            state_at,
                            state,
                            f"a state of parent {parent!r} (one of {_names(self.states[parent])})",
                        )
                    index = index * parent_cards[i] + k
                lex.expect(")", f"')': the row gives one state per parent ({len(parents)})")
                if given[index]:
                    raise lex.error_at(
                        row_at, "(", "a parent configuration not already given in this block"
                    )
                values[index] = self.numbers(card, f"row of {child!r}")
                given[index] = True
                n_given += 1
            elif tok == "property":
                raise lex.error(
                    "'table', 'default', a row or '}'",
                    fix="put properties in the variable block; they are not kept in probability "
                    "blocks",
                )
            else:
                raise lex.error("'table', 'default', a row '( ... )' or '}'")

        if default is not None:
            values[~given] = default
        elif not given.all():
            missing = int(np.flatnonzero(~given)[0])
            config = np.unravel_index(missing, parent_cards) if parents else ()
            names = ", ".join(self.states[p][int(k)] for p, k in zip(parents, config, strict=True))
            raise lex.error(
                f"a row for parent configuration ({names}) of {child!r}, a 'default' row or a "
                "'table' before '}'",
                fix=f"the block starting on line {self.line_of(block_at)} defines "
                f"{int(given.sum())} of {n_rows} rows",
            )
        lex.advance()
        self.parents[child] = tuple(parents)
        self.cpts[child] = values.reshape(*parent_cards, card)
        self.cpt_at[child] = child_at

    def fast_row(
        self, row_index: list[dict[str, int]], parent_cards: list[int], card: int
    ) -> tuple[int, list[float], int] | None:
        """Match a whole well-formed row ``(s1, s2) v1, v2;`` with one regex.

        Returns ``(row number, values, end offset)``, or None when anything is unusual (comments,
        unknown states, wrong counts, ...): the token-by-token path then parses the row and
        reports the exact position of the problem.
        """
        m = _FAST_ROW.match(self.lex.text, self.lex.start)
        if m is None:
            return None
        names = m.group(1).split(",")
        if len(names) != len(row_index):
            if row_index or names != [""]:
                return None
            names = []
        index = 0
        for lookup, n, name in zip(row_index, parent_cards, names, strict=True):
            k = lookup.get(name.strip())
            if k is None:
                return None
            index = index * n + k
        parts = m.group(2).replace(",", " ").split()
        if len(parts) != card:
            return None
        out = [float(x) for x in parts]
        if max(out) > _FLOAT_MAX:
            return None
        return index, out, m.end()

    def numbers(self, count: int, what: str) -> list[float]:
        """Read exactly ``count`` non-negative values and the ``;`` after them."""
        lex = self.lex
        text = lex.text
        if lex.tok is not None and lex.tok not in _PUNCT:
            m = _ROW.match(text, lex.start)
            if m is not None:
                parts = m.group(1).replace(",", " ").split()
                if len(parts) == count:
                    out = [float(x) for x in parts]
                    if max(out) <= _FLOAT_MAX:
                        lex.advance(m.end())
                        return out
        # Slow path: token by token, to report exactly where the row goes wrong.
        out = []
        while True:
            tok = lex.tok
            if tok == ";":
                if len(out) < count:
                    raise lex.error(
                        f"{count} values in the {what}, not {len(out)}",
                    )
                lex.advance()
                return out
            if tok is None or tok in _PUNCT or not _NUMBER.fullmatch(tok):
                raise lex.error(
                    "a probability (a non-negative number)"
                    if not out or tok != ","
                    else "a probability after ','"
                )
            value = float(tok)
            if not value >= 0.0 or math.isinf(value):
                raise lex.error("a probability: a finite, non-negative number")
            if len(out) == count:
                raise lex.error(f"';' after the {count} values of the {what}")
            out.append(value)
            lex.advance()
            if lex.tok == ",":
                lex.advance()
                if lex.tok == ";":
                    raise lex.error("a probability after ','")


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _names(items: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------------
# Public reading API
# --------------------------------------------------------------------------------------------------


def parse_bif(
    text: str, filename: str = "<string>", *, max_cpt_entries: int = DEFAULT_MAX_CPT_ENTRIES
) -> DiscreteNetworkData:
    """Parse BIF text.

    Parameters
    ----------
    text : str
        The file content.
    filename : str, default "<string>"
        Name used in error messages.
    max_cpt_entries : int, default 2**27
        Refuse (with a :class:`~probforge.errors.ParseError`) any CPT with more entries, before
        allocating it. Each CPT is allocated once, when its block starts, and at most this size.

    Returns
    -------
    DiscreteNetworkData
        CPTs of shape ``(*parent_cards, child_card)``, parents in the order of the probability
        block header.

    Raises
    ------
    probforge.errors.ParseError
        For any syntax error, undeclared variable or state, duplicate declaration, state count that
        disagrees with ``[ N ]``, wrong number of values, negative / non-finite value, or a
        variable without a probability block, a CPT over more than ``max_cpt_entries`` entries
        or 32 variables. ``err.file``, ``err.line``, ``err.column``, ``err.token`` and
        ``err.expected`` locate it. Rows that do not sum to one are *not* an error here.
    probforge.errors.ValidationError
        ``text`` is not a ``str``, ``max_cpt_entries`` not an ``int >= 1``.

    Examples
    --------
    >>> from pgm.io import parse_bif
    >>> d = parse_bif("network n { } variable a { type discrete [ 2 ] { t, f }; }"
    ...               " probability ( a ) { table 0.3, 0.7; }")
    >>> d.cpts["a"]
    array([0.3, 0.7])
    """
    check_text(text, "BIF text", "read_bif")
    check_text(filename, "filename", "read_bif")
    limit = check_limit(max_cpt_entries, "max_cpt_entries")
    return _BifParser(text, filename, limit).parse()


def read_bif(
    path: str | os.PathLike[str], *, max_cpt_entries: int = DEFAULT_MAX_CPT_ENTRIES
) -> DiscreteNetworkData:
    """Read a BIF file (plain, or gzip-compressed such as bnlearn's ``.bif.gz``).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_cpt_entries : int, default 2**27
        See :func:`parse_bif`.

    Returns
    -------
    DiscreteNetworkData

    Raises
    ------
    probforge.errors.MissingFileError
        No such file, not a regular file, or unreadable (a ``FileNotFoundError`` too); the
        message names the path.
    probforge.errors.ParseError
        See :func:`parse_bif`; the message starts with ``path:line:column``.

    Examples
    --------
    >>> from pgm.io import read_bif
    >>> from pgm.io.networks import bundled_network_path
    >>> asia = read_bif(bundled_network_path("asia"))
    >>> asia.parents["either"]
    ('lung', 'tub')
    """
    limit = check_limit(max_cpt_entries, "max_cpt_entries")
    text = read_source(path, "BIF file")
    return parse_bif(text, display_name(path), max_cpt_entries=limit)
