"""Allowed-transition constraints for linear-chain CRFs (BIO / IOB2, BIOES / BILOU, custom).

A :class:`TransitionConstraints` says which tag may start a sequence, which may follow which, and
which may end a sequence. :class:`~pgm.crf.linear_chain.LinearChainCRF` turns every forbidden
entry into a ``-inf`` score, so forbidden paths have probability exactly zero: they are never
decoded or sampled and get zero marginal mass.

Examples
--------
>>> from pgm.crf.constraints import bio_constraints
>>> c = bio_constraints(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
>>> c.start.tolist()  # a sequence cannot start inside an entity
[True, True, False, True, False]
>>> c.transitions[3].tolist()  # after B-LOC: anything but I-PER
[True, True, False, True, True]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.errors import ShapeError, ValidationError
from probforge.validate import check_int, check_names

__all__ = ["TransitionConstraints", "allowed_transitions", "bio_constraints"]


class TransitionConstraints(NamedTuple):
    """Boolean masks of allowed starts, transitions and ends.

    Attributes
    ----------
    start : Tensor
        ``(K,)`` bool: tag ``j`` may be the first tag.
    transitions : Tensor
        ``(K, K)`` bool: ``transitions[i, j]`` allows tag ``j`` right after tag ``i``.
    end : Tensor
        ``(K,)`` bool: tag ``i`` may be the last tag.
    """

    start: Tensor
    transitions: Tensor
    end: Tensor

    @property
    def num_tags(self) -> int:
        """Number of tags K."""
        return int(self.transitions.shape[0])

    def validate(self, num_tags: int | None = None) -> TransitionConstraints:
        """Check shapes and dtypes (and K if given); return ``self``."""
        for name, t in zip(("start", "transitions", "end"), self, strict=True):
            if not isinstance(t, Tensor):
                raise ValidationError(f"TransitionConstraints.{name}", "must be a bool tensor",
                                      found=type(t).__name__)
        k = self.transitions.shape[0] if self.transitions.dim() == 2 else -1
        if self.transitions.shape != (k, k) or self.start.shape != (k,) or \
                self.end.shape != (k,):
            raise ShapeError("TransitionConstraints",
                             "needs start (K,), transitions (K, K) and end (K,)",
                             found=f"{tuple(self.start.shape)}, {tuple(self.transitions.shape)}, "
                                   f"{tuple(self.end.shape)}")
        for name, t in zip(("start", "transitions", "end"), self, strict=True):
            if t.dtype != torch.bool:
                raise ValidationError(f"TransitionConstraints.{name}", "must be a bool tensor",
                                      found=t.dtype, fix="use tensor.bool()")
        if num_tags is not None and k != num_tags:
            raise ShapeError("TransitionConstraints", f"is for {k} tags, the CRF has {num_tags}")
        if k == 0:
            raise ShapeError("TransitionConstraints", "needs at least one tag",
                             found=tuple(self.transitions.shape))
        return self


def allowed_transitions(
    num_tags: int,
    pairs: Iterable[tuple[int, int]] | None = None,
    *,
    start: Iterable[int] | None = None,
    end: Iterable[int] | None = None,
) -> TransitionConstraints:
    """Constraints from explicit lists of allowed pairs / start tags / end tags.

    Parameters
    ----------
    num_tags : int
        K.
    pairs : iterable of (int, int), optional
        Allowed transitions ``(i, j)``; None allows all.
    start, end : iterable of int, optional
        Allowed first / last tags; None allows all.

    >>> allowed_transitions(2, [(0, 1), (1, 1)], start=[0]).transitions.tolist()
    [[False, True], [False, True]]
    """
    num_tags = check_int(num_tags, "num_tags", minimum=1)

    def mask1(idx: Iterable[int] | None, what: str) -> Tensor:
        if idx is None:
            return torch.ones(num_tags, dtype=torch.bool)
        if isinstance(idx, str) or not isinstance(idx, Iterable):
            raise ValidationError(f"allowed_transitions {what}", "must be a list of tag indices",
                                  found=repr(idx)[:40])
        m = torch.zeros(num_tags, dtype=torch.bool)
        for i in idx:
            _check_index(i, num_tags, what)
            m[i] = True
        return m

    if pairs is None:
        trans = torch.ones(num_tags, num_tags, dtype=torch.bool)
    else:
        if isinstance(pairs, str) or not isinstance(pairs, Iterable):
            raise ValidationError("allowed_transitions pairs", "must be a list of (i, j) pairs",
                                  found=repr(pairs)[:40])
        trans = torch.zeros(num_tags, num_tags, dtype=torch.bool)
        for pair in pairs:
            if isinstance(pair, str) or not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValidationError("allowed_transitions pairs", "must be (i, j) pairs of tag "
                                      "indices", found=repr(pair)[:40])
            i, j = pair
            _check_index(i, num_tags, "pairs")
            _check_index(j, num_tags, "pairs")
            trans[i, j] = True
    return TransitionConstraints(mask1(start, "start"), trans, mask1(end, "end"))


def _check_index(i: int, k: int, what: str) -> None:
    check_int(i, f"allowed_transitions {what}", minimum=0, maximum=k - 1)


def _split(label: str, scheme: str, outside: str) -> tuple[str, str]:
    if label == outside:
        return "O", ""
    prefix, sep, kind = label.partition("-")
    prefixes = {"BIO": "BI", "BIOES": "BIES", "BILOU": "BILU"}[scheme]
    if not sep or len(prefix) != 1 or prefix not in prefixes or not kind:
        raise ValidationError(f"label {label!r}", f"is not a {scheme} label",
                              fix=f"use {outside!r} or P-TYPE with P in {list(prefixes)}")
    return prefix, kind


def bio_constraints(
    labels: Sequence[str], scheme: str = "BIO", *, outside: str = "O"
) -> TransitionConstraints:
    """The allowed transitions of a chunk-tagging scheme.

    Parameters
    ----------
    labels : sequence of str
        The K tag names in index order, e.g. ``["O", "B-PER", "I-PER"]`` (distinct; a single
        string is one label, never its characters).
    scheme : {"BIO", "BIOES", "BILOU"}
        ``"BIO"`` (IOB2): ``I-X`` only after ``B-X`` or ``I-X``, never first.
        ``"BIOES"`` / ``"BILOU"`` (``L`` = ``E``, ``U`` = ``S``): ``B-X`` and ``I-X`` are followed
        by ``I-X`` or ``E-X``; ``O``, ``E-*``, ``S-*`` are followed by ``O``, ``B-*``, ``S-*``; a
        sequence starts with ``O``, ``B-*`` or ``S-*`` and ends with ``O``, ``E-*`` or ``S-*``.
    outside : str
        The outside tag's name.

    Returns
    -------
    TransitionConstraints
    """
    labels = check_names(labels, "labels", allow_empty=False)
    if not isinstance(outside, str):
        raise ValidationError("outside", "must be a tag name (str)", found=repr(outside))
    if not isinstance(scheme, str):
        raise ValidationError("scheme", "must be a str", found=repr(scheme),
                              fix="use 'BIO', 'BIOES' or 'BILOU'")
    scheme = scheme.upper()
    if scheme not in ("BIO", "IOB2", "BIOES", "BILOU"):
        raise ValidationError("scheme", "unknown tagging scheme", found=repr(scheme),
                              fix="use 'BIO', 'BIOES' or 'BILOU'")
    scheme = "BIO" if scheme == "IOB2" else scheme
    parts = [_split(lab, scheme, outside) for lab in labels]
    if scheme == "BILOU":
        parts = [({"L": "E", "U": "S"}.get(p, p), k) for p, k in parts]
    k = len(labels)
    trans = torch.zeros(k, k, dtype=torch.bool)
    start = torch.zeros(k, dtype=torch.bool)
    end = torch.zeros(k, dtype=torch.bool)
    for j, (pj, kj) in enumerate(parts):
        if scheme == "BIO":
            start[j] = pj != "I"
            end[j] = True
        else:
            start[j] = pj in ("O", "B", "S")
            end[j] = pj in ("O", "E", "S")
        for i, (pi, ki) in enumerate(parts):
            if scheme == "BIO":
                ok = pj != "I" or (pi in ("B", "I") and ki == kj)
            elif pi in ("B", "I"):
                ok = pj in ("I", "E") and ki == kj
            else:
                ok = pj in ("O", "B", "S")
            trans[i, j] = ok
    return TransitionConstraints(start, trans, end)
