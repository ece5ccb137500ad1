"""Seed files and mutations for the fuzzers of the pgm.io parsers (test_io_fuzz_parsers.py).

Seeds are valid files: the bundled BIF networks, the same networks written by the XMLBIF and UAI
writers, and small hand-written files covering each layout (comments, properties, ``default``
rows, UAI stream layout, empty scopes, UAI 2010 evidence and result layouts, ``-BEGIN-`` blocks).

:func:`mutated` is a hypothesis strategy that takes one seed and applies one to four mutations on
its *bytes*: delete / duplicate / swap tokens and lines, replace a number by an evil one (huge,
negative, NaN, inf, 1e308, not a number, thousands of digits), replace an integer by a huge
declared size (10**12, 10**15, ...), copy one name over another (duplicate variables and states,
unknown names), truncate, insert random bytes, invalid UTF-8 or structural characters, and
gzip-compress what it has so far (later mutations then corrupt the compressed stream).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from functools import cache

from hypothesis import strategies as st

from pgm.io import (
    bn_from_data,
    bundled_network_path,
    bundled_networks,
    model_to_uai,
    read_bif,
    write_uai_text,
    write_xmlbif_text,
)

__all__ = [
    "BIF_SMALL",
    "EVIDENCE_SEEDS",
    "RESULT_SEEDS",
    "UAI_SMALL",
    "bif_seeds",
    "mutated",
    "uai_seeds",
    "xmlbif_seeds",
]

BIF_SMALL = [
    """/* block comment
   over lines */ network test-net.1 {
  property author = someone ;
  property "quoted ; semicolon" ;
}
variable Age { // trailing comment
  type discrete [ 3 ] { <5, 5-12, 12+ };
  property position = (1, 2);
}
variable Lung.Patch/x {
  type discrete[2]{Asy/Patch,Transp.};
}
variable C {
  type discrete [ 2 ] { 0, 1 };
}
probability ( Age ) { table 0.2, 0.3, 0.5; }
probability ( Lung.Patch/x | Age ) {
  (12+) 0.5 0.5;
  default 0.25, 0.75;
  (<5) 1e-1, 9.0E-1;
}
probability ( C | Age, Lung.Patch/x ) {
  table 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
        0.9, 0.8, 0.7, 0.6, 0.5, 0.4;
}
""",
    "network coin { }\nvariable heads { type discrete [ 2 ] { yes, no }; }\n"
    "variable bet { type discrete [ 2 ] { win, lose }; }\n"
    "probability ( heads ) { table 0.5, 0.5; }\n"
    "probability ( bet | heads ) { (yes) 1.0, 0.0; (no) 0.0, 1.0; }\n",
    "network empty { }\n",
]

UAI_SMALL = [
    """MARKOV
3
2 2 3
3
1 0
2 0 1
2 1 2

2
 0.436 0.564

4
 0.128 0.872
 0.920 0.080

6
 0.210 0.333 0.457
 0.811 0.000 0.189
""",
    "MARKOV 2 2 3 1 2 0 1 6 1 2 3 4 5 6",  # stream layout, no lines
    "BAYES\n2\n2 3\n2\n1 0\n2 0 1\n2  0.4 0.6\n6  0.2 0.3 0.5\n   0.1 0.1 0.8\n",
    "MARKOV\n2\n2 2\n2\n0\n1 1\n\n1\n 2.5\n\n2\n 1.0 3.0\n",  # an empty scope
    "BAYES\n0\n\n0\n",
]

EVIDENCE_SEEDS = [
    "2 1 0 2 1\n",
    "0\n",
    "2\n1 0 1\n2 0 0 1 1\n",
    "1\n1 0 1\n",
    "3\n 0 1\n 1 0\n 2 1\n",  # one sample spread over lines
]

RESULT_SEEDS = [
    "PR\n-0.2008\n",
    "PR\n-inf\n",
    "MAR\n2 2 0.1 0.9 3 0.2 0.2 0.6\n",
    "MPE\n3 0 1 0\n",
    "MAP\n1\n2 1 0\n",
    "PR\n2\n-0.5\n-1.25\n",
    "MAR\n-BEGIN-\n1 2 0.5 0.5\n-BEGIN-\n1 2 0.25 0.75\n",
]


@cache
def bif_seeds() -> tuple[str, ...]:
    """The bundled networks' files and the small BIF files."""
    texts = [bundled_network_path(n).read_text() for n in bundled_networks()]
    return (*texts, *BIF_SMALL)


@cache
def xmlbif_seeds() -> tuple[str, ...]:
    """The bundled networks as written by the XMLBIF writer, and two hand-written files."""
    texts = [write_xmlbif_text(read_bif(bundled_network_path(n))) for n in bundled_networks()]
    texts.append(
        '<?xml version="1.0"?>\n<BIF VERSION="0.3"><NETWORK><NAME>n</NAME><PROPERTY/>\n'
        '<VARIABLE TYPE="nature"><NAME>a</NAME><OUTCOME>t</OUTCOME><OUTCOME>f</OUTCOME>'
        "<PROPERTY>position = (1, 2)</PROPERTY></VARIABLE>\n"
        '<VARIABLE TYPE="nature"><NAME>b &amp; c</NAME><OUTCOME>x</OUTCOME></VARIABLE>\n'
        "<PROBABILITY><FOR>a</FOR><TABLE>0.3 0.7</TABLE></PROBABILITY>\n"
        "<DEFINITION><FOR>b &amp; c</FOR><GIVEN>a</GIVEN><TABLE>1.0 1.0</TABLE></DEFINITION>\n"
        "</NETWORK></BIF>\n"
    )
    texts.append("<BIF><NETWORK><NAME>empty</NAME></NETWORK></BIF>")
    return tuple(texts)


@cache
def uai_seeds() -> tuple[str, ...]:
    """The bundled networks as UAI ``BAYES`` files, and the small UAI files."""
    texts = []
    for n in bundled_networks():
        model, _ = model_to_uai(bn_from_data(read_bif(bundled_network_path(n))))
        texts.append(write_uai_text(model))
    return (*texts, *UAI_SMALL)


# --------------------------------------------------------------------------------------------------
# mutations
# --------------------------------------------------------------------------------------------------

# Tokens: runs of characters that are neither white space nor one of the delimiters the formats
# use. Numbers are the tokens that look like one.
_WORD = re.compile(rb"[^\s{}()\[\],;|<>/=\"&]+")
_NUMBERISH = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(rb"[0-9]+")

EVIL_NUMBERS = [
    b"0", b"1", b"2", b"3", b"-1", b"-0", b"-0.5", b"0.5", b"1.0000001", b"1e308", b"1e309",
    b"-1e309", b"1.7976931348623157e308", b"5e-324", b"1e-400", b"nan", b"NaN", b"-nan", b"inf",
    b"-inf", b"Infinity", b"+inf", b"abc", b"0x10", b"1_000", b"+1", b"--1", b"1.2.3", b"1e",
    b"e5", b".", b"+", b"", b"\xd9\xa1", b"\xef\xbc\x91", b"9" * 5000, b"0" * 5000 + b"1",
]  # fmt: skip
HUGE_SIZES = [
    b"1000000000000", b"1000000000000000", b"2147483648", b"4294967296", b"134217729",
    b"9223372036854775808", b"1000000000000000000", b"99999999999999999999", b"9" * 5000,
]  # fmt: skip
INSERTS = [
    b"{", b"}", b"(", b")", b";", b",", b"|", b"[", b"]", b"<", b">", b"</", b"/>", b"/*", b"*/",
    b"//", b'"', b"&", b"&#13;", b"&#0;", b"&bogus;", b'<!ENTITY x "y">', b"<![CDATA[x]]>",
    b"<!DOCTYPE BIF>", b"<?xml version='1.0' encoding='latin-1'?>", b"-BEGIN-", b"\n", b"\r",
    b"\t", b"\x00", b"\x0c", b"\xc2\x85", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xff", b"\xc3",
    b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x1f\x8b", b"network", b"variable", b"probability",
    b"table", b"default", b"property", b"type discrete [ 2 ] { a, a };", b"BAYES", b"MARKOV",
    b"<VARIABLE>", b"<OUTCOME>a</OUTCOME>", b"<GIVEN>a</GIVEN>", b"<TABLE>", b"</TABLE>",
]  # fmt: skip


def _spans(pattern: re.Pattern[bytes], data: bytes) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(data)]


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


Mutation = Callable[[st.DrawFn, bytes], bytes]


def _pick(draw: st.DrawFn, n: int) -> int:
    return draw(st.integers(0, 10**6)) % n


def _delete_token(draw: st.DrawFn, data: bytes) -> bytes:
    spans = _spans(_WORD, data)
    if not spans:
        return data
    a, b = spans[_pick(draw, len(spans))]
    return data[:a] + data[b:]


def _duplicate_token(draw: st.DrawFn, data: bytes) -> bytes:
    spans = _spans(_WORD, data)
    if not spans:
        return data
    a, b = spans[_pick(draw, len(spans))]
    return data[:b] + b" " + data[a:b] + data[b:]


def _swap_tokens(draw: st.DrawFn, data: bytes) -> bytes:
    spans = _spans(_WORD, data)
    if len(spans) < 2:
        return data
    i, j = sorted((_pick(draw, len(spans)), _pick(draw, len(spans))))
    if i == j:
        return data
    (a, b), (c, d) = spans[i], spans[j]
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def _copy_name(draw: st.DrawFn, data: bytes) -> bytes:
    """Copy one name over another: duplicate variables or states, unknown or mixed-up names."""
    spans = [s for s in _spans(_WORD, data) if not _NUMBERISH.fullmatch(data[s[0] : s[1]])]
    if len(spans) < 2:
        return data
    a, b = spans[_pick(draw, len(spans))]
    c, d = spans[_pick(draw, len(spans))]
    return data[:a] + data[c:d] + data[b:]


def _delete_line(draw: st.DrawFn, data: bytes) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    del lines[_pick(draw, len(lines))]
    return b"".join(lines)


def _duplicate_line(draw: st.DrawFn, data: bytes) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    i = _pick(draw, len(lines))
    lines.insert(i, lines[i])
    return b"".join(lines)


def _swap_lines(draw: st.DrawFn, data: bytes) -> bytes:
    lines = _lines(data)
    if len(lines) < 2:
        return data
    i, j = _pick(draw, len(lines)), _pick(draw, len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _evil_number(draw: st.DrawFn, data: bytes) -> bytes:
    spans = [s for s in _spans(_WORD, data) if _NUMBERISH.fullmatch(data[s[0] : s[1]])]
    if not spans:
        return data
    a, b = spans[_pick(draw, len(spans))]
    return data[:a] + draw(st.sampled_from(EVIL_NUMBERS)) + data[b:]


def _huge_size(draw: st.DrawFn, data: bytes) -> bytes:
    """A whole number (a count, a cardinality, an index) becomes a huge declared size."""
    spans = [s for s in _spans(_WORD, data) if _INTEGER.fullmatch(data[s[0] : s[1]])]
    if not spans:
        return data
    a, b = spans[_pick(draw, len(spans))]
    return data[:a] + draw(st.sampled_from(HUGE_SIZES)) + data[b:]


def _truncate(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: _pick(draw, len(data) + 1)]


def _insert_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    at = _pick(draw, len(data) + 1)
    return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]


def _insert_special(draw: st.DrawFn, data: bytes) -> bytes:
    at = _pick(draw, len(data) + 1)
    return data[:at] + draw(st.sampled_from(INSERTS)) + data[at:]


def _flip_byte(draw: st.DrawFn, data: bytes) -> bytes:
    if not data:
        return data
    at = _pick(draw, len(data))
    return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]


def _gzip(draw: st.DrawFn, data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


MUTATIONS: list[Mutation] = [
    _delete_token, _duplicate_token, _swap_tokens, _copy_name, _delete_line, _duplicate_line,
    _swap_lines, _evil_number, _evil_number, _huge_size, _truncate, _insert_bytes,
    _insert_special, _insert_special, _flip_byte, _gzip,
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, seeds: tuple[str, ...], max_mutations: int = 4) -> bytes:
    """One seed file (as UTF-8 bytes) after 1 to ``max_mutations`` random mutations."""
    data = draw(st.sampled_from(seeds)).encode("utf-8")
    for _ in range(draw(st.integers(1, max_mutations))):
        data = draw(st.sampled_from(MUTATIONS))(draw, data)
    return data
