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
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

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


def _text_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file (``.gz`` decompressed), decoded one at a time.

    Line ends are those of Python's text mode (``\\n``, ``\\r\\n`` and a lone ``\\r``), but bytes
    that are not UTF-8, and a corrupted gzip stream, raise :class:`ParseError` at their line
    instead of a ``UnicodeDecodeError`` from deep inside the reader.
    """
    name = str(path)
    lineno = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw_lines = iter(fh)
        while True:
            try:
                raw = next(raw_lines)
            except StopIteration:
                return
            except (OSError, EOFError, zlib.error) as err:  # a corrupted .gz stream
                raise ParseError(name, lineno + 1, 1, "", "gzip-compressed CoNLL-U data",
                                 fix=f"the file is damaged ({type(err).__name__}: "
                                 f"{str(err)[:80]}); download it again") from err
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ParseError(name, lineno + 1, err.start + 1,
                                 repr(raw[err.start:err.start + 8])[2:-1], "UTF-8 text",
                                 fix="re-encode the file as UTF-8") from err
            if "\r" in text:  # text mode's universal newlines: \r\n and a lone \r end lines
                pieces = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
                pieces = [q + "\n" for q in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
            else:
                pieces = [text]
            for piece in pieces:
                lineno += 1
                yield piece


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
    if not isinstance(path, str | os.PathLike):
        raise ValidationError("path", "must be a path (str or os.PathLike)",
                              found=type(path).__name__)
    _check_tag_column(tag_column)
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"CoNLL-U file {str(p)!r}", "not found",
                                fix="check the path (UD treebanks: universaldependencies.org)")
    yield from parse_conllu(_text_lines(p), name=str(p), tag_column=tag_column)


def read_conllu(path: str | os.PathLike[str], *, tag_column: str = "upos") -> list[Sentence]:
    """Every sentence of a CoNLL-U file as a list (see :func:`iter_conllu`)."""
    return list(iter_conllu(path, tag_column=tag_column))


def parse_conllu(
    lines: Iterable[str], *, name: str = "<conllu>", tag_column: str = "upos"
) -> Iterator[Sentence]:
    """Parse CoNLL-U text given as an iterable of lines (an open file, ``io.StringIO``, ...).

    Parameters
    ----------
    lines : iterable of str, or str
        The text, line by line (trailing newlines allowed); a single ``str`` is the whole text
        (read as ``io.StringIO(lines)`` reads it, never character by character).
    name : str
        File name used in error messages.
    tag_column : str
        Column holding the tags (see :func:`iter_conllu`).

    Yields
    ------
    Sentence

    Raises
    ------
    ParseError
        On a malformed line: wrong column count, a word ID out of sequence (IDs are compared as
        digit strings, so a huge number is an error, not an overflow), a bad multiword range or
        empty-node ID, a missing word form or tag, a comment inside a sentence, a line that is
        not text.
    """
    _check_tag_column(tag_column)
    if not isinstance(name, str):
        raise ValidationError("name", "must be a str (the file name in messages)",
                              found=type(name).__name__)
    if isinstance(lines, str):
        lines = io.StringIO(lines)
    elif isinstance(lines, bytes | bytearray) or not isinstance(lines, Iterable):
        raise ValidationError("lines", "must be an iterable of str lines (an open text file, "
                              "io.StringIO, a list) or the text as one str",
                              found=type(lines).__name__,
                              fix="decode bytes first, or use read_conllu(path)")
    col = COLUMNS.index(tag_column)
    words: list[str] = []
    tags: list[str] = []
    sent_id: str | None = None
    text: str | None = None
    start = 0
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        if not isinstance(raw, str):
            raise ParseError(name, lineno, 1, repr(raw)[:20], "a line of text (str)",
                             fix="open the file in text mode, or use read_conllu(path)")
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
        if not _is_number(tid) or tid.lstrip("0") != str(len(words) + 1):
            raise ParseError(name, lineno, 1, tid[:40], f"word ID {len(words) + 1}",
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


def _check_tag_column(tag_column: object) -> None:
    if not isinstance(tag_column, str) or tag_column not in COLUMNS or \
            tag_column in ("id", "form"):
        raise ValidationError("tag_column", "must name a CoNLL-U column other than id and form",
                              found=repr(tag_column), fix=f"use one of {COLUMNS[2:]}")


def _is_number(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts superscripts and other scripts' digits,
    which ``int`` then refuses)."""
    return text.isascii() and text.isdigit()


def _less(a: str, b: str) -> bool:
    """``int(a) < int(b)`` for digit strings of any length, without converting them (Python
    refuses to convert more than a few thousand digits)."""
    a, b = a.lstrip("0") or "0", b.lstrip("0") or "0"
    return (len(a), a) < (len(b), b)


def _check_range(tid: str, name: str, lineno: int) -> None:
    a, _, b = tid.partition("-")
    if not (_is_number(a) and _is_number(b) and _less(a, b)):
        raise ParseError(name, lineno, 1, tid[:40], "a multiword-token range like 3-4")


def _check_decimal(tid: str, name: str, lineno: int) -> None:
    a, _, b = tid.partition(".")
    if not (_is_number(a) and _is_number(b)):
        raise ParseError(name, lineno, 1, tid[:40], "an empty-node ID like 8.1")


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
    if root is not None and not isinstance(root, str | os.PathLike):
        raise ValidationError("root", "must be a directory path (str or os.PathLike)",
                              found=type(root).__name__)
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
