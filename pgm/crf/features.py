"""Standard word features for part-of-speech tagging with a feature-based CRF.

The features follow the sklearn-crfsuite tutorial (lower-cased word, suffixes, ``isupper`` /
``istitle`` / ``isdigit``, neighbouring words, ``BOS`` / ``EOS`` markers) with the usual POS
additions (prefixes, word shape, hyphen / digit flags, words two positions away). Each token gets a
``dict`` in the format sklearn-crfsuite and :class:`pgm.crf.tagger.CRFTagger` both accept: string
values are indicator features ``name=value``, booleans and numbers are weighted features ``name``
(``False`` / ``0`` contribute nothing).

Examples
--------
>>> from pgm.crf.features import sent2features
>>> feats = sent2features(["The", "cat"])
>>> feats[0]["word.lower()"], feats[0]["BOS"], feats[1]["-1:word.lower()"], feats[1]["EOS"]
('the', True, 'the', True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from probforge.errors import ValidationError
from probforge.validate import check_int

__all__ = ["FeatureDict", "sent2features", "word2features", "word_shape"]

FeatureDict = dict[str, str | bool | float]

_SHAPE_UPPER = re.compile(r"[A-Z]+")
_SHAPE_LOWER = re.compile(r"[a-z]+")
_SHAPE_DIGIT = re.compile(r"[0-9]+")


def word_shape(word: str) -> str:
    """A coarse shape: runs of upper case -> ``A``, lower case -> ``a``, digits -> ``0``.

    >>> word_shape("McDonald's"), word_shape("1990s"), word_shape("U.S.")
    ("AaAa'a", '0a', 'A.A.')
    """
    if not isinstance(word, str):
        raise ValidationError("word", "must be a str", found=repr(word)[:40])
    s = _SHAPE_UPPER.sub("A", word)
    s = _SHAPE_LOWER.sub("a", s)
    return _SHAPE_DIGIT.sub("0", s)


def word2features(sent: Sequence[str], i: int, *, window: int = 2) -> FeatureDict:
    """Features of token ``i`` of ``sent`` (a sequence of word forms).

    Parameters
    ----------
    sent : sequence of str
        The sentence's words.
    i : int
        Token position, ``0 <= i < len(sent)``.
    window : int
        Neighbour words to include on each side (1: the tutorial's; 2: default).

    Returns
    -------
    dict
        Feature name -> str (indicator) / bool / float (weighted).
    """
    _check_sent(sent)
    window = check_int(window, "window", minimum=0)
    i = check_int(i, "i", minimum=0, maximum=len(sent) - 1) if sent else check_int(
        i, "i (the sentence is empty)", minimum=0, maximum=-1)
    return _features(sent, i, window)


def _features(sent: Sequence[str], i: int, window: int) -> FeatureDict:
    """:func:`word2features` of checked arguments."""
    word = sent[i]
    low = word.lower()
    f: FeatureDict = {
        "bias": 1.0,
        "word.lower()": low,
        "word[-1:]": low[-1:],
        "word[-2:]": low[-2:],
        "word[-3:]": low[-3:],
        "word[-4:]": low[-4:],
        "word[:1]": low[:1],
        "word[:2]": low[:2],
        "word[:3]": low[:3],
        "word.shape": word_shape(word),
        "word.isupper()": word.isupper(),
        "word.istitle()": word.istitle(),
        "word.isdigit()": word.isdigit(),
        "word.hasdigit": any(c.isdigit() for c in word),
        "word.hashyphen": "-" in word,
    }
    for d in range(1, window + 1):
        if i - d >= 0:
            w = sent[i - d]
            f[f"-{d}:word.lower()"] = w.lower()
            if d == 1:
                f["-1:word[-3:]"] = w.lower()[-3:]
                f["-1:word.istitle()"] = w.istitle()
                f["-1:word.isupper()"] = w.isupper()
        elif i - d == -1:
            f["BOS"] = True
        if i + d < len(sent):
            w = sent[i + d]
            f[f"+{d}:word.lower()"] = w.lower()
            if d == 1:
                f["+1:word[-3:]"] = w.lower()[-3:]
                f["+1:word.istitle()"] = w.istitle()
                f["+1:word.isupper()"] = w.isupper()
        elif i + d == len(sent):
            f["EOS"] = True
    return f


def sent2features(sent: Sequence[str], *, window: int = 2) -> list[FeatureDict]:
    """Features of every token of ``sent`` (see :func:`word2features`); ``[]`` for an empty
    sentence."""
    _check_sent(sent)
    window = check_int(window, "window", minimum=0)
    return [_features(sent, i, window) for i in range(len(sent))]


def _check_sent(sent: object) -> None:
    """A sentence is a sequence of word strings (a string would be read as its characters)."""
    if isinstance(sent, str | bytes) or not isinstance(sent, Sequence):
        raise ValidationError("sent", "must be a list of words (str)", found=repr(sent)[:40],
                              fix="split the text into words, e.g. text.split()")
    for j, w in enumerate(sent):
        if not isinstance(w, str):
            raise ValidationError(f"sent[{j}]", "must be a word (str)", found=repr(w)[:40])
