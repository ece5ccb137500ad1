"""The CoNLL-U reader: comments, multiword tokens, empty nodes, gz files, located parse errors."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from pgm.crf.conllu import iter_conllu, parse_conllu, read_conllu, ud_ewt_paths
from probforge.errors import DataNotFoundError, ParseError, ValidationError


def row(*cols: str) -> str:
    return "\t".join(cols) + "\n"


def word(i: str, form: str, upos: str, xpos: str = "X") -> str:
    return row(i, form, form.lower(), upos, xpos, "_", "0", "root", "_", "_")


SAMPLE = (
    "# newdoc id = d1\n"
    "# sent_id = s1\n"
    "# text = I don't know.\n"
    + word("1", "I", "PRON", "PRP")
    + row("2-3", "don't", "_", "_", "_", "_", "_", "_", "_", "_")
    + word("2", "do", "AUX", "VBP")
    + word("3", "n't", "PART", "RB")
    + word("4", "know", "VERB", "VB")
    + word("4.1", "known", "VERB", "VBN")  # an empty node (enhanced UD): skipped
    + word("5", ".", "PUNCT", ".")
    + "\n"
    + "# sent_id = s2\n"
    + word("1", "Yes", "INTJ", "UH")
    + "\n\n"  # extra blank lines are fine
    + word("1", "Last", "ADJ", "JJ")  # no trailing blank line at end of file
)


def test_parse_sample() -> None:
    sents = list(parse_conllu(io.StringIO(SAMPLE)))
    assert len(sents) == 3
    s1, s2, s3 = sents
    assert s1.words == ("I", "do", "n't", "know", ".")
    assert s1.tags == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert (s1.sent_id, s1.text, s1.line) == ("s1", "I don't know.", 1)
    assert s2.words == ("Yes",) and s2.sent_id == "s2"
    assert s3.words == ("Last",) and s3.sent_id is None
    xpos = list(parse_conllu(io.StringIO(SAMPLE), tag_column="xpos"))
    assert xpos[0].tags == ("PRP", "VBP", "RB", "VB", ".")


def test_files_plain_and_gz(tmp_path: Path) -> None:
    plain = tmp_path / "a.conllu"
    plain.write_text(SAMPLE, encoding="utf-8")
    gz = tmp_path / "a.conllu.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write(SAMPLE)
    assert read_conllu(plain) == read_conllu(gz)
    assert next(iter_conllu(gz)).words[0] == "I"
    with pytest.raises(DataNotFoundError, match="not found"):
        read_conllu(tmp_path / "missing.conllu")


@pytest.mark.parametrize(
    ("text", "line", "column", "expected"),
    [
        (word("1", "a", "X") + "2\tb\tb\tX\n", 2, 8, "10 tab-separated columns"),
        (word("1", "a", "X") + word("3", "b", "X"), 2, 1, "word ID 2"),
        (word("x", "a", "X"), 1, 1, "word ID 1"),
        (word("1", "a", "X") + word("2", "b", "_"), 2, 7, "a tag in column 4"),
        (row("1-x", *["_"] * 9), 1, 1, "multiword-token range"),
        (row("1.x", *["_"] * 9), 1, 1, "empty-node ID"),
        (word("1", "a", "X") + "# late comment\n", 2, 1, "a token line or a blank line"),
        ("# only a comment\n\n", 2, 1, "token lines"),
    ],
)
def test_parse_errors_are_located(text: str, line: int, column: int, expected: str) -> None:
    with pytest.raises(ParseError, match=expected) as info:
        list(parse_conllu(io.StringIO(text), name="bad.conllu"))
    err = info.value
    assert (err.file, err.line, err.column) == ("bad.conllu", line, column)
    assert f"bad.conllu:{line}:{column}" in str(err)


def test_bad_tag_column() -> None:
    with pytest.raises(ValidationError, match="tag_column"):
        list(parse_conllu(io.StringIO(SAMPLE), tag_column="form"))


def test_missing_treebank_raises(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="UD English EWT"):
        ud_ewt_paths(tmp_path)


def test_ud_ewt_if_present() -> None:
    try:
        paths = ud_ewt_paths()
    except DataNotFoundError:
        pytest.skip("UD English EWT not installed")
    dev = read_conllu(paths["dev"])
    assert len(dev) == 2001
    tags = {t for s in dev for t in s.tags}
    assert len(tags) == 17 and "NOUN" in tags and "_" not in tags
    assert all(len(s.words) == len(s.tags) > 0 for s in dev)
