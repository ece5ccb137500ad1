"""The XMLBIF 0.3 format (JavaBayes, Weka, pgmpy), to and from :class:`DiscreteNetworkData`.

Structure read and written::

    <BIF VERSION="0.3">
    <NETWORK>
      <NAME>asia</NAME>
      <PROPERTY>...</PROPERTY>                    (optional, any number)
      <VARIABLE TYPE="nature">
        <NAME>tub</NAME>
        <OUTCOME>yes</OUTCOME> <OUTCOME>no</OUTCOME>
        <PROPERTY>position = (10, 20)</PROPERTY>   (optional)
      </VARIABLE>
      <DEFINITION>                                 (<PROBABILITY> is accepted as a synonym)
        <FOR>tub</FOR>
        <GIVEN>asia</GIVEN>                        (one per parent, in table order)
        <TABLE>0.05 0.95 0.01 0.99</TABLE>
      </DEFINITION>
    </NETWORK>
    </BIF>

**TABLE order**: for each parent configuration (last ``GIVEN`` varying fastest) the child's
distribution, i.e. the child varies fastest -- exactly the C-order flattening of
``DiscreteNetworkData.cpts[v]`` (shape ``(*parent_cards, child_card)``). In the example,
``p(tub=yes | asia=yes) = 0.05`` and ``p(tub=yes | asia=no) = 0.01``.

Names, outcomes and properties are taken with surrounding white space stripped; an empty
``<PROPERTY/>`` (as pgmpy writes) is kept as an empty property. Only ``TYPE="nature"`` variables
are supported. The file is parsed with the standard library's expat parser, which gives every
element its line and column, so structural errors are reported as
:class:`~probforge.errors.ParseError` with a position too; entity declarations are refused
(no entity-expansion attacks), external entities are never fetched.

Examples
--------
>>> from pgm.io import parse_xmlbif, write_xmlbif_text
>>> d = parse_xmlbif('''<BIF VERSION="0.3"><NETWORK><NAME>n</NAME>
... <VARIABLE TYPE="nature"><NAME>a</NAME><OUTCOME>t</OUTCOME><OUTCOME>f</OUTCOME></VARIABLE>
... <DEFINITION><FOR>a</FOR><TABLE>0.3 0.7</TABLE></DEFINITION>
... </NETWORK></BIF>''')
>>> d.cpts["a"]
array([0.3, 0.7])
>>> parse_xmlbif(write_xmlbif_text(d)) == d
True
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import numpy.typing as npt

from probforge.errors import ParseError, ValidationError

from ._source import (
    END_OF_FILE,
    MAX_TABLE_AXES,
    check_limit,
    check_text,
    display_name,
    read_bytes,
    write_source,
)
from .network_data import DEFAULT_MAX_CPT_ENTRIES, DiscreteNetworkData

__all__ = ["parse_xmlbif", "read_xmlbif", "write_xmlbif", "write_xmlbif_text"]

# ASCII digits only, one way to match each number.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TOKEN = re.compile(r"\S+")
# Characters XML 1.0 cannot carry (and \r, which XML normalises to \n; lone surrogates, which no
# UTF-8 file holds). The reader refuses names and properties holding one (only "&#13;" can bring
# one in), so whatever it returns, the writer writes back.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class _Element:
    """An XML element with the position of its start tag and of its first text."""

    tag: str
    attrs: dict[str, str]
    line: int
    column: int
    children: list[_Element] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    text_line: int = 0
    text_column: int = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _Builder:
    """Build an :class:`_Element` tree with positions from expat callbacks."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.data
        self.parser.EntityDeclHandler = self.entity
        self.stack: list[_Element] = []
        self.root: _Element | None = None

    def position(self) -> tuple[int, int]:
        return self.parser.CurrentLineNumber, self.parser.CurrentColumnNumber + 1

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        line, column = self.position()
        element = _Element(tag, attrs, line, column)
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            element = self.stack[-1]
            if not element.parts:
                element.text_line, element.text_column = self.position()
            element.parts.append(text)

    def entity(self, name: str, *args: object) -> None:
        line, column = self.position()
        raise ParseError(
            self.filename,
            line,
            column,
            name,
            "no entity declaration",
            fix="XMLBIF needs no entities; remove the <!ENTITY> declarations",
        )

    def build(self, data: str | bytes) -> _Element:
        if isinstance(data, str):
            bad = _SURROGATE.search(data)
            if bad is not None:  # expat would fail to encode it (a raw UnicodeEncodeError)
                line = data.count("\n", 0, bad.start()) + 1
                column = bad.start() - (data.rfind("\n", 0, bad.start()) + 1) + 1
                raise ParseError(self.filename, line, column, ascii(bad.group()),
                                 "text without lone surrogate code points")
        try:
            self.parser.Parse(data, True)
        except LookupError as err:  # <?xml encoding="no-such-codec"?>
            raise ParseError(
                self.filename, 1, 1, "<?xml", f"an XML declaration with a known encoding ({err})",
                fix="re-encode the file as UTF-8",
            ) from err
        except expat.ExpatError as err:
            line, column = err.lineno, err.offset + 1
            raise ParseError(
                self.filename,
                line,
                column,
                _excerpt(data, line, column),
                f"well-formed XML ({expat.ErrorString(err.code)})",
            ) from err
        if self.root is None:  # pragma: no cover - expat reports "no element found" first
            raise ParseError(self.filename, 1, 1, END_OF_FILE, "an XML document")
        return self.root


_SURROGATE = re.compile("[\ud800-\udfff]")


def _excerpt(data: str | bytes, line: int, column: int) -> str:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return END_OF_FILE
    rest = lines[line - 1][column - 1 :]
    m = _TOKEN.match(rest)
    return m.group() if m else (rest[:1] or "<end of line>")


class _XmlbifReader:
    def __init__(self, filename: str, max_cpt_entries: int) -> None:
        self.filename = filename
        self.max_cpt_entries = max_cpt_entries

    def fail(
        self, element: _Element, token: str, expected: str, *, fix: str | None = None
    ) -> NoReturn:
        raise ParseError(self.filename, element.line, element.column, token, expected, fix=fix)

    def fail_text(self, element: _Element, offset: int, token: str, expected: str) -> NoReturn:
        """An error at character ``offset`` of the element's text."""
        text = element.text
        line = element.text_line + text.count("\n", 0, offset)
        last_nl = text.rfind("\n", 0, offset)
        column = (element.text_column + offset) if last_nl < 0 else offset - last_nl
        raise ParseError(self.filename, line, column, token, expected)

    def only(self, element: _Element, allowed: set[str], where: str) -> None:
        for child in element.children:
            if child.tag not in allowed:
                self.fail(child, f"<{child.tag}>", f"one of {_tags(allowed)} inside {where}")

    def single(self, element: _Element, tag: str, where: str) -> _Element:
        found = [c for c in element.children if c.tag == tag]
        if not found:
            self.fail(element, f"<{element.tag}>", f"a <{tag}> element inside {where}")
        if len(found) > 1:
            self.fail(found[1], f"<{tag}>", f"only one <{tag}> inside {where}")
        return found[0]

    def name(self, element: _Element, what: str) -> str:
        if element.children:
            child = element.children[0]
            self.fail(child, f"<{child.tag}>", f"plain text as {what}")
        text = element.text.strip()
        if not text:
            self.fail(element, f"<{element.tag}>", f"a non-empty {what}")
        return self.plain(element, text, what)

    def plain(self, element: _Element, text: str, what: str) -> str:
        """``text``, unless it holds a character the writer could not write back (a carriage
        return given as ``&#13;``)."""
        bad = _NOT_XML.search(text)
        if bad is not None:
            self.fail(element, ascii(bad.group()), f"{what} without control characters or "
                      "carriage returns")
        return text

    def read(self, root: _Element) -> DiscreteNetworkData:
        if root.tag != "BIF":
            self.fail(root, f"<{root.tag}>", "the root element <BIF>")
        self.only(root, {"NETWORK"}, "<BIF>")
        network = self.single(root, "NETWORK", "<BIF>")
        self.only(
            network, {"NAME", "PROPERTY", "VARIABLE", "DEFINITION", "PROBABILITY"}, "<NETWORK>"
        )
        net_name = self.name(self.single(network, "NAME", "<NETWORK>"), "network name")
        net_props = tuple(
            self.plain(c, c.text.strip(), "a network property")
            for c in network.children
            if c.tag == "PROPERTY"
        )

        states: dict[str, tuple[str, ...]] = {}
        properties: dict[str, tuple[str, ...]] = {}
        declared: dict[str, _Element] = {}
        for var in (c for c in network.children if c.tag == "VARIABLE"):
            kind = var.attrs.get("TYPE", "nature")
            if kind != "nature":
                self.fail(
                    var,
                    f'TYPE="{kind}"',
                    'TYPE="nature"',
                    fix="decision and utility variables are not supported",
                )
            self.only(var, {"NAME", "OUTCOME", "PROPERTY"}, "<VARIABLE>")
            name_el = self.single(var, "NAME", "<VARIABLE>")
            name = self.name(name_el, "variable name")
            if name in states:
                self.fail(
                    name_el,
                    name,
                    f"a new variable name ({name!r} is already declared on line "
                    f"{declared[name].line})",
                )
            outcomes: list[str] = []
            seen: set[str] = set()  # a set: thousands of outcomes must not be quadratic
            for out in (c for c in var.children if c.tag == "OUTCOME"):
                state = self.name(out, f"outcome of {name!r}")
                if state in seen:
                    self.fail(out, state, f"an outcome not already listed for {name!r}")
                seen.add(state)
                outcomes.append(state)
            if not outcomes:
                self.fail(var, "</VARIABLE>", f"at least one <OUTCOME> for {name!r}")
            states[name] = tuple(outcomes)
            properties[name] = tuple(
                self.plain(c, c.text.strip(), f"a property of {name!r}")
                for c in var.children
                if c.tag == "PROPERTY"
            )
            declared[name] = var

        parents: dict[str, tuple[str, ...]] = {}
        cpts: dict[str, npt.NDArray[np.float64]] = {}
        defined: dict[str, _Element] = {}
        for definition in (c for c in network.children if c.tag in ("DEFINITION", "PROBABILITY")):
            where = f"<{definition.tag}>"
            self.only(definition, {"FOR", "GIVEN", "TABLE"}, where)
            for_el = self.single(definition, "FOR", where)
            child = self.name(for_el, "variable name in <FOR>")
            if child not in states:
                self.fail(for_el, child, "a declared variable in <FOR>")
            if child in defined:
                self.fail(
                    for_el,
                    child,
                    f"a variable without a definition ({child!r} has one on line "
                    f"{defined[child].line})",
                )
            given: list[str] = []
            listed = {child}
            for g in (c for c in definition.children if c.tag == "GIVEN"):
                parent = self.name(g, "parent name in <GIVEN>")
                if parent not in states:
                    self.fail(g, parent, f"a declared variable as a parent of {child!r}")
                if parent in listed:
                    self.fail(g, parent, f"a parent of {child!r} not listed before (nor itself)")
                listed.add(parent)
                given.append(parent)
            table_el = self.single(definition, "TABLE", where)
            shape = (*(len(states[p]) for p in given), len(states[child]))
            size = math.prod(shape)
            if size > self.max_cpt_entries:
                self.fail(
                    table_el,
                    "<TABLE>",
                    f"a CPT of at most max_cpt_entries={self.max_cpt_entries} entries "
                    f"(this one has {size})",
                )
            if len(shape) > MAX_TABLE_AXES:
                self.fail(
                    table_el,
                    "<TABLE>",
                    f"a CPT over at most {MAX_TABLE_AXES} variables (this one has "
                    f"{len(given)} parents)",
                )
            cpts[child] = self.table(table_el, size, child).reshape(shape)
            parents[child] = tuple(given)
            defined[child] = definition
        for name, var in declared.items():
            if name not in defined:
                self.fail(var, name, f"a <DEFINITION> with <FOR>{name}</FOR>")
        return DiscreteNetworkData(
            name=net_name,
            states=states,
            parents={v: parents[v] for v in states},
            cpts={v: cpts[v] for v in states},
            properties=properties,
            network_properties=net_props,
        )

    def table(self, element: _Element, size: int, child: str) -> npt.NDArray[np.float64]:
        if element.children:
            first = element.children[0]
            self.fail(first, f"<{first.tag}>", "numbers only inside <TABLE>")
        text = element.text
        words = text.split()
        if len(words) != size:
            if len(words) > size:
                extra = list(_TOKEN.finditer(text))[size]
                self.fail_text(
                    element,
                    extra.start(),
                    extra.group(),
                    f"the end of the table of {child!r} after {size} values",
                )
            self.fail(
                element, "<TABLE>", f"{size} values in the table of {child!r}, not {len(words)}"
            )
        try:
            values = np.fromiter(map(float, words), dtype=np.float64, count=size)
            good = bool(np.isfinite(values).all() and (values >= 0).all())
        except ValueError:
            good = False
        if not good or not all(_NUMBER.fullmatch(w) for w in words):
            for m in _TOKEN.finditer(text):
                word = m.group()
                if not _NUMBER.fullmatch(word) or not 0 <= float(word) < math.inf:
                    self.fail_text(
                        element,
                        m.start(),
                        word,
                        f"a probability of {child!r}: a finite, non-negative number",
                    )
            raise AssertionError("unreachable: a bad value was detected but not found")
        return values


def _tags(tags: set[str]) -> str:
    return ", ".join(f"<{t}>" for t in sorted(tags))


def parse_xmlbif(
    text: str | bytes,
    filename: str = "<string>",
    *,
    max_cpt_entries: int = DEFAULT_MAX_CPT_ENTRIES,
) -> DiscreteNetworkData:
    """Parse an XMLBIF 0.3 document.

    Parameters
    ----------
    text : str or bytes
        The document. Pass ``bytes`` to let the XML declaration choose the encoding.
    filename : str, default "<string>"
        Name used in error messages.
    max_cpt_entries : int, default 2**27
        Refuse any CPT with more entries, before allocating it.

    Returns
    -------
    DiscreteNetworkData
        CPTs of shape ``(*parent_cards, child_card)``, parents in ``<GIVEN>`` order.

    Raises
    ------
    probforge.errors.ParseError
        Malformed XML (position from expat), an unknown encoding, entity declarations,
        unexpected or missing elements, undeclared or duplicate variables / outcomes, a table
        with the wrong number of values, a negative or non-finite value, a variable without a
        definition, a CPT of more than ``max_cpt_entries`` entries or over more than 32
        variables. Rows that do not sum to one are *not* an error here (see
        :func:`pgm.io.read_network`).
    probforge.errors.ValidationError
        ``text`` is neither ``str`` nor ``bytes``, ``max_cpt_entries`` not an ``int >= 1``.

    Examples
    --------
    >>> from pgm.io import parse_xmlbif
    >>> parse_xmlbif("<BIF><NETWORK><NAME>n</NAME></NETWORK></BIF>").variables
    ()
    """
    if not isinstance(text, str | bytes):
        raise ValidationError("XMLBIF text", "must be a str or bytes", found=type(text).__name__,
                              fix="or read the file with read_xmlbif(path)")
    check_text(filename, "filename", "read_xmlbif")
    limit = check_limit(max_cpt_entries, "max_cpt_entries")
    root = _Builder(filename).build(text)
    return _XmlbifReader(filename, limit).read(root)


def read_xmlbif(
    path: str | os.PathLike[str], *, max_cpt_entries: int = DEFAULT_MAX_CPT_ENTRIES
) -> DiscreteNetworkData:
    """Read an XMLBIF file (plain or gzip-compressed).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_cpt_entries : int, default 2**27
        See :func:`parse_xmlbif`.

    Returns
    -------
    DiscreteNetworkData

    Raises
    ------
    probforge.errors.MissingFileError
        No such file, not a regular file, or unreadable (a ``FileNotFoundError`` too).
    probforge.errors.ParseError
        See :func:`parse_xmlbif`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_bif, read_xmlbif, write_xmlbif
    >>> from pgm.io.networks import bundled_network_path
    >>> asia = read_bif(bundled_network_path("asia"))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "asia.xml"
    >>> write_xmlbif(asia, p)
    >>> read_xmlbif(p) == asia
    True
    """
    limit = check_limit(max_cpt_entries, "max_cpt_entries")
    data = read_bytes(path, "XMLBIF file")
    return parse_xmlbif(data, display_name(path), max_cpt_entries=limit)


def _check_text(value: str, what: str) -> str:
    if value != value.strip() or _NOT_XML.search(value):
        raise ValidationError(
            what,
            "cannot be written to XMLBIF unchanged: no leading/trailing white space, no "
            "control characters or carriage returns",
            found=repr(value),
        )
    return escape(value)


def _check_name(value: str, what: str) -> str:
    if not value:
        raise ValidationError(what, "cannot be written to XMLBIF: a name must not be empty")
    return _check_text(value, what)


def write_xmlbif_text(data: DiscreteNetworkData) -> str:
    """Return ``data`` as an XMLBIF 0.3 document (full float64 precision).

    Parameters
    ----------
    data : DiscreteNetworkData

    Returns
    -------
    str
        A document with ``parse_xmlbif(text) == data``.

    Raises
    ------
    probforge.errors.ValidationError
        A name, outcome or property that XML cannot carry unchanged (surrounding white space,
        control characters), or ``data`` is not a :class:`DiscreteNetworkData`.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import DiscreteNetworkData
    >>> from pgm.io.xmlbif import write_xmlbif_text
    >>> d = DiscreteNetworkData("n", {"a": ("t", "f")}, {"a": ()}, {"a": np.array([0.25, 0.75])})
    >>> "<TABLE>0.25 0.75</TABLE>" in write_xmlbif_text(d)
    True
    """
    if not isinstance(data, DiscreteNetworkData):
        raise ValidationError("data", "must be a DiscreteNetworkData", found=type(data).__name__,
                              fix="convert a BayesianNetwork with pgm.io.bn_to_data")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<BIF VERSION=" + quoteattr("0.3") + ">",
        "<NETWORK>",
        f"  <NAME>{_check_name(data.name, 'network name')}</NAME>",
    ]
    out.extend(
        f"  <PROPERTY>{_check_text(p, 'network property')}</PROPERTY>"
        for p in data.network_properties
    )
    for var, states in data.states.items():
        out.append('  <VARIABLE TYPE="nature">')
        out.append(f"    <NAME>{_check_name(var, 'variable name')}</NAME>")
        out.extend(
            f"    <OUTCOME>{_check_name(s, f'outcome of {var!r}')}</OUTCOME>" for s in states
        )
        out.extend(
            f"    <PROPERTY>{_check_text(p, f'property of {var!r}')}</PROPERTY>"
            for p in data.properties.get(var, ())
        )
        out.append("  </VARIABLE>")
    for var in data.states:
        out.append("  <DEFINITION>")
        out.append(f"    <FOR>{_check_name(var, 'variable name')}</FOR>")
        out.extend(f"    <GIVEN>{_check_name(p, 'parent name')}</GIVEN>" for p in data.parents[var])
        values = " ".join(map(repr, data.cpts[var].ravel().tolist()))
        out.append(f"    <TABLE>{values}</TABLE>")
        out.append("  </DEFINITION>")
    out.extend(["</NETWORK>", "</BIF>"])
    return "\n".join(out) + "\n"


def write_xmlbif(data: DiscreteNetworkData, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to an XMLBIF file, atomically (UTF-8; ``.gz`` names are compressed).

    Parameters
    ----------
    data : DiscreteNetworkData
    path : str or os.PathLike
        Destination (its directory must exist).

    Raises
    ------
    probforge.errors.ValidationError
        See :func:`write_xmlbif_text`; also ``path`` not a path, or a directory.
    probforge.errors.MissingFileError
        The destination's directory does not exist (checked before anything is written).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_bif, write_xmlbif
    >>> from pgm.io.networks import bundled_network_path
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sprinkler.xml"
    >>> write_xmlbif(read_bif(bundled_network_path("sprinkler")), p)
    >>> p.read_text().count("<VARIABLE")
    4
    """
    text = write_xmlbif_text(data)
    write_source(path, text, "XMLBIF file")
