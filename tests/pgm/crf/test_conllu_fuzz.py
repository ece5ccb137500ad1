"""Fuzzing the CoNLL-U reader (issue 21): mutated files give a ParseError or a correct result.

A small valid CoNLL-U text (written here; the first sentences of UD English EWT join it when the
treebank is installed) is mutated line by line, column by column and byte by byte: lines
deleted, duplicated, swapped or inserted, columns deleted, duplicated, swapped or replaced (bad
token IDs, ranges, empty nodes, huge numbers, other scripts' digits), bytes that are not UTF-8,
truncation, a damaged gzip stream. Every parse must raise :class:`ParseError` or return
sentences that read back the same after being written out again; never another exception,
never a hang.
"""

from __future__ import annotations

import gzip
import io
import itertools
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgm.crf.conllu import Sentence, parse_conllu, read_conllu
from probforge.errors import DataNotFoundError, ParseError
from tests.robustness import outcome

_SENTENCES = [
    "# sent_id = s1\n# text = The dog barks.\n"
    "1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
    "2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_\n"
    "3\tbarks\tbark\tVERB\tVBZ\t_\t0\troot\t_\tSpaceAfter=No\n"
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n",
    "# sent_id = s2\n"
    "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_\n"
    "2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n"
    "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n"
    "3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_\n",
    "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n",
]


def _seed_text() -> str:
    text = "\n".join(_SENTENCES) + "\n"
    try:  # a few real sentences when the treebank is installed (skipped cleanly otherwise)
        from pgm.crf.conllu import ud_ewt_paths

        path = ud_ewt_paths()["dev"]
    except DataNotFoundError:
        return text
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        head = "".join(itertools.islice(fh, 120))
    return text + head[: head.rfind("\n\n") + 2]


SEED = _seed_text()
SEED_LINES = SEED.split("\n")

_FIELDS = st.one_of(
    st.sampled_from(["", "_", "0", "-", "1-", "-1", "3-2", "2-2", "1-2", "2.x", ".1", "1.1",
                     "01", "²", "١", "1" * 5000, "9" * 30 + "-" + "9" * 31, "NOUN", " ", "#",
                     "\x00", "a\tb", "\ufeff1"]),
    st.text(max_size=8),
)


_ID_LIST = st.sampled_from(["1" * 5000, "0" * 3000 + "1", "²", "١", "٣", "1-" + "9" * 5000,
                            "9" * 5000 + "-1", "1.²", "1-²", "-", ".", "1-2-3", "1..2", "+1",
                            " 1"])
_IDS = st.one_of(_ID_LIST, _ID_LIST, st.from_regex(r"\A[0-9]{1,40}([-.][0-9]{0,40})?\Z"))


def _write(sentences: list[Sentence]) -> str:
    """The sentences as CoNLL-U again (tags in the UPOS column)."""
    out = []
    for s in sentences:
        if s.sent_id is not None:
            out.append(f"# sent_id = {s.sent_id}")
        if s.text is not None:
            out.append(f"# text = {s.text}")
        out += [f"{i}\t{w}\t_\t{t}\t_\t_\t_\t_\t_\t_"
                for i, (w, t) in enumerate(zip(s.words, s.tags, strict=True), 1)]
        out.append("")
    return "\n".join(out) + "\n"


def _same(a: list[Sentence], b: list[Sentence]) -> bool:
    return [(s.words, s.tags, s.sent_id, s.text) for s in a] == \
        [(s.words, s.tags, s.sent_id, s.text) for s in b]


def _parse(text: str) -> list[Sentence]:
    return list(parse_conllu(io.StringIO(text), name="fuzz"))


def _check(text: str) -> None:
    """ParseError or sentences that survive a write / read round trip, within 2 s."""
    t0 = time.perf_counter()
    res = outcome(_parse, text)
    assert time.perf_counter() - t0 < 2.0
    if res.kind == "error":
        assert isinstance(res.error, ParseError), res.error
        return
    for s in res.value:
        assert len(s.words) == len(s.tags) > 0
        assert all(w and "\t" not in w and "\n" not in w for w in s.words)
        assert all(t and t != "_" for t in s.tags)
    assert _same(_parse(_write(res.value)), res.value)


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    lines = list(SEED_LINES)
    # mostly one mutation, so that the parse reaches it (the first error ends the parse)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 4]))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "column", "id",
                                   "id"]))
        i = draw(st.integers(0, len(lines) - 1))
        tokens = [j for j, line in enumerate(lines) if "\t" in line]
        if op in ("id", "column") and tokens:  # a token line
            i = tokens[draw(st.integers(0, len(tokens) - 1))]
        if op == "id":  # the token ID column: numbers, ranges, empty nodes, other scripts
            cols = lines[i].split("\t")
            cols[0] = draw(_IDS)
            lines[i] = "\t".join(cols)
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.one_of(st.text(max_size=30), _FIELDS)))
        else:
            cols = lines[i].split("\t")
            how = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "append"]))
            k = draw(st.integers(0, len(cols) - 1))
            if how == "delete" and len(cols) > 1:
                del cols[k]
            elif how == "duplicate":
                cols.insert(k, cols[k])
            elif how == "swap":
                m = draw(st.integers(0, len(cols) - 1))
                cols[k], cols[m] = cols[m], cols[k]
            elif how == "replace":
                cols[k] = draw(_FIELDS)
            else:
                cols.append(draw(_FIELDS))
            lines[i] = "\t".join(cols)
        if not lines:
            lines = [""]
    return "\n".join(lines)


def test_the_seed_text_parses() -> None:
    sentences = _parse(SEED)
    assert sentences[0].words == ("The", "dog", "barks", ".")
    assert sentences[1].words == ("do", "n't", "go")
    _check(SEED)


@given(mutated_lines())
@settings(max_examples=60)
def test_mutated_lines_and_columns(text: str) -> None:
    _check(text)


@given(st.integers(0, len(SEED)), st.sampled_from(["cut", "cr", "crlf"]))
@settings(max_examples=30)
def test_truncation_and_line_ends(cut: int, how: str) -> None:
    text = SEED[:cut] if how == "cut" else SEED.replace("\n", "\r\n" if how == "crlf" else "\r")
    _check(text)


def test_huge_ids_are_parse_errors_not_overflows() -> None:
    # int() of a 5000-digit ID raised a raw ValueError (Python's digit limit), and
    # str.isdigit() accepts "²", which int() then refuses
    for bad in ("1" * 5000, "²", "١"):
        with pytest.raises(ParseError, match="word ID"):
            _parse(f"{bad}\tw\tw\tX\t_\t_\t_\t_\t_\t_\n")
    with pytest.raises(ParseError, match="range"):
        _parse("1" * 5000 + "-" + "2" * 4999 + "\tw\t_\t_\t_\t_\t_\t_\t_\t_\n")
    with pytest.raises(ParseError, match="text"):  # bytes where lines of text are expected
        list(parse_conllu([b"1\tw\tw\tX\t_\t_\t_\t_\t_\t_\n"]))  # type: ignore[list-item]
    # the whole text as one str is read as text, never character by character
    assert _same(list(parse_conllu(SEED)), _parse(SEED))


@given(st.data())
@settings(max_examples=30)
def test_byte_level_damage_in_files(data: st.DataObject) -> None:
    raw = bytearray(SEED.encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["invalid", "flip", "truncate", "nul"]))
        i = data.draw(st.integers(0, len(raw)))
        if op == "invalid":
            raw[i:i] = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]))
        elif op == "flip" and i < len(raw):
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "truncate":
            del raw[i:]
        else:
            raw[i:i] = b"\x00"
    gz = data.draw(st.booleans())
    cut_gz = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("f.conllu.gz" if gz else "f.conllu")
        payload = gzip.compress(bytes(raw)) if gz else bytes(raw)
        if gz and cut_gz:
            payload = payload[: max(len(payload) // 2, 1)]
        path.write_bytes(payload)
        t0 = time.perf_counter()
        res = outcome(read_conllu, path)
        assert time.perf_counter() - t0 < 2.0
    if res.kind == "error":
        assert isinstance(res.error, ParseError), res.error
        return
    # a file that reads must be valid UTF-8 and read as its text does
    text = bytes(raw).decode("utf-8")
    assert not (gz and cut_gz)
    assert _same(res.value, list(parse_conllu(io.StringIO(text, newline=None))))


def test_invalid_utf8_is_located() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bad.conllu"
        path.write_bytes(SEED.encode() + b"1\tw\xff\tw\tX\t_\t_\t_\t_\t_\t_\n")
        line = SEED.count("\n") + 1
        with pytest.raises(ParseError, match=rf"bad.conllu:{line}:4.*UTF-8"):
            read_conllu(path)
