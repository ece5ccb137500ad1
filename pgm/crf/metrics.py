"""Token-level tagging metrics: accuracy and per-tag precision / recall / F1.

Examples
--------
>>> from pgm.crf.metrics import accuracy, per_tag_scores
>>> y_true = [["DET", "NOUN"], ["VERB"]]
>>> y_pred = [["DET", "VERB"], ["VERB"]]
>>> round(accuracy(y_true, y_pred), 4)
0.6667
>>> per_tag_scores(y_true, y_pred)["VERB"]
TagScore(precision=0.5, recall=1.0, f1=0.6666666666666666, support=1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence, Sized
from typing import NamedTuple

from probforge.errors import ShapeError, ValidationError
from probforge.validate import check_int

__all__ = ["TagScore", "accuracy", "classification_report", "per_tag_scores"]


class TagScore(NamedTuple):
    """Precision, recall, F1 and support (number of gold tokens) of one tag."""

    precision: float
    recall: float
    f1: float
    support: int


def _pairs(y_true: Sequence[Sequence[Hashable]], y_pred: Sequence[Sequence[Hashable]]
           ) -> list[tuple[Hashable, Hashable]]:
    for name, ys in (("y_true", y_true), ("y_pred", y_pred)):
        # lists, tuples, numpy arrays (sklearn-crfsuite's predict): anything sized and iterable
        if isinstance(ys, str | bytes) or not isinstance(ys, Sized) \
                or not isinstance(ys, Iterable):
            raise ValidationError(name, "must be a list of tag sequences (one per sentence)",
                                  found=type(ys).__name__)
        for i, sent in enumerate(ys):
            # a string would be compared character by character: refused, never split
            if isinstance(sent, str | bytes) or not isinstance(sent, Sized) \
                    or not isinstance(sent, Iterable):
                raise ValidationError(f"{name}[{i}]", "must be a list of tags",
                                      found=repr(sent)[:40],
                                      fix="split the sentence into its tags, e.g. s.split()")
    if len(y_true) != len(y_pred):
        raise ShapeError("y_pred", "needs one tag sequence per gold sequence",
                         found=f"{len(y_pred)} predicted vs {len(y_true)} gold sequences")
    pairs: list[tuple[Hashable, Hashable]] = []
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t) != len(p):
            raise ShapeError(f"y_pred[{i}]", "must have one tag per gold tag",
                             found=f"{len(p)} predicted vs {len(t)} gold tags")
        pairs.extend(zip(t, p, strict=True))
    return pairs


def accuracy(y_true: Sequence[Sequence[Hashable]], y_pred: Sequence[Sequence[Hashable]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag.

    Parameters
    ----------
    y_true, y_pred : sequence of sequences
        Gold and predicted tags, sentence by sentence, with equal lengths.

    Raises
    ------
    ValidationError
        With no token at all (the accuracy of nothing is undefined), or a sentence given as a
        string.
    ShapeError
        If the numbers of sentences or of tags in a sentence differ.
    """
    pairs = _pairs(y_true, y_pred)
    if not pairs:
        raise ValidationError("accuracy", "needs at least one token", found="0 tokens")
    return sum(t == p for t, p in pairs) / len(pairs)


def per_tag_scores(
    y_true: Sequence[Sequence[Hashable]],
    y_pred: Sequence[Sequence[Hashable]],
    labels: Sequence[Hashable] | None = None,
) -> dict[Hashable, TagScore]:
    """Per-tag precision, recall, F1 and support.

    A tag never predicted has precision 0; a tag never in the gold data (zero support) has
    recall 0, and F1 is 0 where precision and recall are both 0 (as scikit-learn reports them
    with ``zero_division=0``): never NaN. With no token at all the result is empty (``{}``)
    unless ``labels`` are given, which then all score 0 with support 0.

    Parameters
    ----------
    y_true, y_pred : sequence of sequences
        Gold and predicted tags.
    labels : sequence, optional
        Tags to report, in this order (default: every tag seen, sorted by name). A single
        string is one tag; duplicates are refused.

    Returns
    -------
    dict
        tag -> :class:`TagScore`.
    """
    pairs = _pairs(y_true, y_pred)
    try:
        gold = Counter(t for t, _ in pairs)
        pred = Counter(p for _, p in pairs)
    except TypeError as err:
        raise ValidationError("y_true / y_pred", "tags must be hashable (str, int, ...)",
                              found=str(err)) from err
    hit = Counter(t for t, p in pairs if t == p)
    if labels is None:
        labels = sorted(set(gold) | set(pred), key=str)
    elif isinstance(labels, str):
        labels = [labels]
    else:
        if not isinstance(labels, Sequence):
            raise ValidationError("labels", "must be a list of tags", found=type(labels).__name__)
        try:
            distinct = len(set(labels))
        except TypeError as err:
            raise ValidationError("labels", "tags must be hashable", found=str(err)) from err
        if distinct != len(labels):
            raise ValidationError("labels", "must not repeat a tag", found=list(labels)[:10])
    out: dict[Hashable, TagScore] = {}
    for tag in labels:
        p = hit[tag] / pred[tag] if pred[tag] else 0.0
        r = hit[tag] / gold[tag] if gold[tag] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[tag] = TagScore(p, r, f, gold[tag])
    return out


def classification_report(
    y_true: Sequence[Sequence[Hashable]],
    y_pred: Sequence[Sequence[Hashable]],
    labels: Sequence[Hashable] | None = None,
    digits: int = 4,
) -> str:
    """A table of per-tag precision / recall / F1 / support, macro average and accuracy.

    ``digits`` is an int >= 0. With no token at all, raises :class:`ValidationError` (the
    accuracy line is undefined).

    >>> print(classification_report([["A", "B"]], [["A", "A"]], digits=2))
    tag    precision  recall    f1  support
    A           0.50    1.00  0.67        1
    B           0.00    0.00  0.00        1
    macro       0.25    0.50  0.33        2
    accuracy                  0.50        2
    """
    digits = check_int(digits, "digits", minimum=0, maximum=16)
    scores = per_tag_scores(y_true, y_pred, labels)
    width = max([len(str(t)) for t in scores] + [8])
    col = max(digits + 3, 6)
    lines = [f"{'tag':<{width}} {'precision':>{col + 3}} {'recall':>{col}} {'f1':>{col}} "
             f"{'support':>8}"]
    for tag, s in scores.items():
        lines.append(f"{tag!s:<{width}} {s.precision:>{col + 3}.{digits}f} "
                     f"{s.recall:>{col}.{digits}f} {s.f1:>{col}.{digits}f} {s.support:>8d}")
    n = len(scores) or 1
    total = sum(s.support for s in scores.values())
    lines.append(f"{'macro':<{width}} {sum(s.precision for s in scores.values()) / n:>{col + 3}.{digits}f} "  # noqa: E501
                 f"{sum(s.recall for s in scores.values()) / n:>{col}.{digits}f} "
                 f"{sum(s.f1 for s in scores.values()) / n:>{col}.{digits}f} {total:>8d}")
    acc = accuracy(y_true, y_pred)
    lines.append(f"{'accuracy':<{width}} {'':>{col + 3}} {'':>{col}} {acc:>{col}.{digits}f} "
                 f"{len(_pairs(y_true, y_pred)):>8d}")
    return "\n".join(lines)
