"""A CoNLL-U reader for sequence tagging (words and one tag column per sentence).

CoNLL-U (https://universaldependencies.org/format.html) holds one token per line in ten
tab-separated columns ``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC``; ``#`` lines are
comments and a blank line ends a sentence. For tagging, this reader keeps the syntactic words:

- multiword-token lines (ID a range such as ``1-2``, e.g. "don't" over "do" + "n't") are skipped,
  their words follow on their own lines;
- empty nodes (ID a decimal such as ``8.1``, enhanced dependencies) are skipped;
- word IDs must run 1, 2, 3, ... within each sentence.

Files ending in ``.gz`` are decompressed on the fly. A malformed line raises
:class:`~probforge.errors.ParseError` with the file, line and column.

The UD English EWT treebank lives outside the repository; :func:`ud_ewt_paths` finds it (see
its docstring for the search order) and raises :class:`~probforge.errors.DataNotFoundError` when
it is absent, so callers can skip cleanly.

Examples
--------
>>> import io
>>> from pgm.crf.conllu import parse_conllu
>>> text = ("# sent_id = s1\\n"
...         "1-2\\tdon't\\t_\\t_\\t_\\t_\\t_\\t_\\t_\\t_\\n"
...         "1\\tdo\\tdo\\tAUX\\tVBP\\t_\\t0\\troot\\t_\\t_\\n"
...         "2\\tn't\\tnot\\tPART\\tRB\\t_\\t1\\tadvmod\\t_\\t_\\n")
>>> [s] = parse_conllu(io.StringIO(text), name="inline")
>>> s.words, s.tags, s.sent_id
(('do', "n't"), ('AUX', 'PART'), 's1')
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

from probforge.errors import DataNotFoundError, ParseError, ValidationError

__all__ = [
    "COLUMNS",
    "Sentence",
    "iter_conllu",
    "parse_conllu",
    "read_conllu",
    "ud_ewt_paths",
]

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


class Sentence(NamedTuple):
    """One sentence: its words and their tags (the chosen column), plus metadata.

    Attributes
    ----------
    words : tuple of str
        Word forms (column FORM), one per syntactic word.
    tags : tuple of str
        The tag column (UPOS by default), aligned with ``words``.
    sent_id : str or None
        The ``# sent_id = ...`` comment, if any.
    text : str or None
        The ``# text = ...`` comment, if any.
    line : int
        1-based line number of the sentence's first line (comments included) in its file.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    sent_id: str | None = None
    text: str | None = None
    line: int = 0


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # closed by the caller's with


def iter_conllu(path: str | os.PathLike[str], *, tag_column: str = "upos") -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file (``.gz`` allowed), one at a time.

    Parameters
    ----------
    path : str or PathLike
        The file.
    tag_column : str
        Which column holds the tags: ``"upos"`` (default), ``"xpos"``, ``"deprel"``, ... (any of
        :data:`COLUMNS` except ``"id"`` and ``"form"``).

    Yields
    ------
    Sentence

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    ParseError
        On a malformed line (wrong column count, bad ID, missing word form or tag).
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"CoNLL-U file {str(p)!r}", "not found",
                                fix="check the path (UD treebanks: universaldependencies.org)")
    with _open_text(p) as fh:
        yield from parse_conllu(fh, name=str(p), tag_column=tag_column)


def read_conllu(path: str | os.PathLike[str], *, tag_column: str = "upos") -> list[Sentence]:
    """Every sentence of a CoNLL-U file as a list (see :func:`iter_conllu`)."""
    return list(iter_conllu(path, tag_column=tag_column))


def parse_conllu(
    lines: Iterable[str], *, name: str = "<conllu>", tag_column: str = "upos"
) -> Iterator[Sentence]:
    """Parse CoNLL-U text given as an iterable of lines (an open file, ``io.StringIO``, ...).

    Parameters
    ----------
    lines : iterable of str
        The text, line by line (trailing newlines allowed).
    name : str
        File name used in error messages.
    tag_column : str
        Column holding the tags (see :func:`iter_conllu`).

    Yields
    ------
    Sentence
    """
    if tag_column not in COLUMNS or tag_column in ("id", "form"):
        raise ValidationError("tag_column", "must name a CoNLL-U column other than id and form",
                              found=repr(tag_column), fix=f"use one of {COLUMNS[2:]}")
    col = COLUMNS.index(tag_column)
    words: list[str] = []
    tags: list[str] = []
    sent_id: str | None = None
    text: str | None = None
    start = 0
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if words:
                yield Sentence(tuple(words), tuple(tags), sent_id, text, start)
            elif start:  # comments with no token lines
                raise ParseError(name, lineno, 1, "", "token lines before the blank line",
                                 fix="remove the dangling comments or add the sentence")
            words, tags, sent_id, text, start = [], [], None, None, 0
            continue
        if not start:
            start = lineno
        if line.startswith("#"):
            if words:
                raise ParseError(name, lineno, 1, line[:20], "a token line or a blank line",
                                 fix="comments come before a sentence's first token")
            key, sep, value = line[1:].partition("=")
            if sep and key.strip() == "sent_id":
                sent_id = value.strip()
            elif sep and key.strip() == "text":
                text = value.strip()
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            column = len(line) + 1 if len(fields) < 10 else _column_of(fields, 10)
            raise ParseError(name, lineno, column, line[:40],
                             f"10 tab-separated columns, got {len(fields)}",
                             fix="separate columns with single tabs")
        tid = fields[0]
        if "-" in tid:
            _check_range(tid, name, lineno)
            continue
        if "." in tid:
            _check_decimal(tid, name, lineno)
            continue
        if not tid.isdigit() or int(tid) != len(words) + 1:
            raise ParseError(name, lineno, 1, tid, f"word ID {len(words) + 1}",
                             fix="number the words of each sentence 1, 2, 3, ...")
        form, tag = fields[1], fields[col]
        if not form:
            raise ParseError(name, lineno, _column_of(fields, 1), form, "a word form (FORM)")
        if not tag or tag == "_":
            raise ParseError(name, lineno, _column_of(fields, col), tag,
                             f"a tag in column {col + 1} ({tag_column.upper()})",
                             fix="tag every word, or choose another tag_column")
        words.append(form)
        tags.append(tag)
    if words:
        yield Sentence(tuple(words), tuple(tags), sent_id, text, start)
    elif start:
        raise ParseError(name, lineno, 1, "", "token lines after the comments")


def _column_of(fields: list[str], index: int) -> int:
    """1-based character column where field ``index`` starts."""
    return sum(len(f) + 1 for f in fields[:index]) + 1


def _check_range(tid: str, name: str, lineno: int) -> None:
    a, _, b = tid.partition("-")
    if not (a.isdigit() and b.isdigit() and int(a) < int(b)):
        raise ParseError(name, lineno, 1, tid, "a multiword-token range like 3-4")


def _check_decimal(tid: str, name: str, lineno: int) -> None:
    a, _, b = tid.partition(".")
    if not (a.isdigit() and b.isdigit()):
        raise ParseError(name, lineno, 1, tid, "an empty-node ID like 8.1")


def ud_ewt_paths(root: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Paths of the UD English EWT train / dev / test files.

    Parameters
    ----------
    root : str or PathLike, optional
        Directory holding ``en_ewt-ud-{train,dev,test}.conllu[.gz]``. Default: the environment
        variable ``PROBFORGE_UD_EWT`` if set, else ``<repository>/../shared/data/ud-english-ewt``,
        else ``/work/shared/data/ud-english-ewt``.

    Returns
    -------
    dict
        ``{"train": Path, "dev": Path, "test": Path}``.

    Raises
    ------
    DataNotFoundError
        If any of the three files is missing.
    """
    if root is not None:
        candidates = [Path(root)]
    elif os.environ.get("PROBFORGE_UD_EWT"):
        candidates = [Path(os.environ["PROBFORGE_UD_EWT"])]
    else:
        repo = Path(__file__).resolve().parents[2]
        candidates = [repo.parent / "shared" / "data" / "ud-english-ewt",
                      Path("/work/shared/data/ud-english-ewt")]
    for d in candidates:
        found: dict[str, Path] = {}
        for split in ("train", "dev", "test"):
            for suffix in (".conllu.gz", ".conllu"):
                p = d / f"en_ewt-ud-{split}{suffix}"
                if p.is_file():
                    found[split] = p
                    break
        if len(found) == 3:
            return found
    raise DataNotFoundError(
        "UD English EWT", "en_ewt-ud-{train,dev,test}.conllu[.gz] not found",
        found=", ".join(str(c) for c in candidates),
        fix="download UD_English-EWT from universaldependencies.org and pass its directory "
            "(or set PROBFORGE_UD_EWT)")
