"""Sparse feature encoding for feature-based CRFs: token feature dicts -> index / weight lists.

A token is a ``dict`` (sklearn-crfsuite's format) or a list of feature strings:

- ``{"word.lower()": "the"}`` -> indicator feature ``"word.lower():the"`` with weight 1;
- ``{"bias": 1.0}``, ``{"istitle": True}`` -> feature ``"bias"`` / ``"istitle"`` weighted by the
  value (``False`` and ``0`` are dropped: they contribute nothing);
- ``{"prev": {"w": "a"}}`` -> ``"prev:w:a"`` (nested dicts); ``{"tags": ["x", "y"]}`` ->
  ``"tags:x"``, ``"tags:y"``;
- ``["w=the", "suffix=he"]`` -> each string an indicator feature.

:class:`FeatureEncoder` maps feature strings to columns either through a vocabulary learnt from
training data (unknown features are dropped at prediction time) or by hashing into a fixed number
of buckets (a stable CRC32 hash, so it does not depend on Python's per-process hash seed).
:func:`encode` then packs a corpus as flat ``indices`` / ``weights`` with per-token ``offsets``
(the layout of :func:`torch.nn.functional.embedding_bag`), so the emission scores of every token
are one sparse sum ``E = embedding_bag(indices, W, offsets, per_sample_weights=weights)``.

Examples
--------
>>> from pgm.crf.encoding import FeatureEncoder
>>> enc = FeatureEncoder().fit([[{"w": "a", "bias": 1.0}, {"w": "b", "up": False}]])
>>> enc.features
['w:a', 'bias', 'w:b']
>>> c = enc.encode([[{"w": "b", "new": "x"}]])   # unknown features are dropped
>>> c.indices.tolist(), c.offsets.tolist(), c.lengths.tolist()
([2], [0], [1])
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from probforge.errors import NonFiniteError, ValidationError
from probforge.validate import check_int

__all__ = ["EncodedCorpus", "FeatureEncoder", "Token", "iter_token_features"]

Token = Mapping[str, Any] | Sequence[str]


def iter_token_features(token: Token, prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(feature string, weight)`` pairs of one token (see the module docstring)."""
    if isinstance(token, Mapping):
        for key, value in token.items():
            name = f"{prefix}{key}"
            if isinstance(value, str):
                yield f"{name}:{value}", 1.0
            elif isinstance(value, bool):
                if value:
                    yield name, 1.0
            elif isinstance(value, int | float):
                if not math.isfinite(value):
                    raise NonFiniteError(f"feature {name!r}", "a weighted feature's value must "
                                         "be finite", found=value,
                                         fix="drop the feature or impute a finite value")
                if value != 0:
                    yield name, float(value)
            elif isinstance(value, Mapping):
                yield from iter_token_features(value, f"{name}:")
            elif isinstance(value, list | tuple | set | frozenset):
                for item in value:
                    if not isinstance(item, str):
                        raise ValidationError(f"feature {name!r}", "list items must be strings",
                                              found=repr(item))
                    yield f"{name}:{item}", 1.0
            else:
                raise ValidationError(f"feature {name!r}",
                                      "values must be str, bool, int, float, dict or list of str",
                                      found=type(value).__name__)
    elif isinstance(token, list | tuple):
        for item in token:
            if not isinstance(item, str):
                raise ValidationError("token", "a token given as a list must list feature "
                                      "strings", found=repr(item))
            yield f"{prefix}{item}", 1.0
    else:
        raise ValidationError("token", "must be a dict of features or a list of feature strings",
                              found=type(token).__name__)


def _check_corpus(sentences: Any) -> None:
    """A corpus is an iterable of sentences (not a string or a dict)."""
    if isinstance(sentences, str | bytes | Mapping) or not isinstance(sentences, Iterable):
        raise ValidationError("X", "must be a list of sentences, each a list of tokens",
                              found=type(sentences).__name__)


def _check_sentence(sent: Any) -> None:
    """A sentence is a sequence of tokens (a string would be read character by character)."""
    if isinstance(sent, str | bytes | Mapping) or not isinstance(sent, Sequence):
        raise ValidationError("X", "must be a list of sentences, each a list of tokens",
                              found=f"a {type(sent).__name__} where a sentence was expected")


class EncodedCorpus(NamedTuple):
    """A corpus packed for :func:`torch.nn.functional.embedding_bag`.

    Attributes
    ----------
    indices : Tensor
        ``(nnz,)`` long feature columns of every token, token after token.
    weights : Tensor
        ``(nnz,)`` float64 feature values.
    offsets : Tensor
        ``(N,)`` long start of each token's features in ``indices`` (N tokens in all).
    lengths : Tensor
        ``(S,)`` long tokens per sentence (S sentences; ``lengths.sum() == N``).
    """

    indices: Tensor
    weights: Tensor
    offsets: Tensor
    lengths: Tensor


class FeatureEncoder:
    """Feature strings -> columns, by a learnt vocabulary or by hashing.

    Parameters
    ----------
    hash_buckets : int, optional
        Hash every feature into this many columns (no vocabulary; unseen features still count).
        None (default): learn a vocabulary in :meth:`fit`.
    min_freq : int
        With a vocabulary: keep features seen in at least this many tokens.
    """

    def __init__(self, *, hash_buckets: int | None = None, min_freq: int = 1) -> None:
        if hash_buckets is not None:
            hash_buckets = check_int(hash_buckets, "hash_buckets", minimum=1)
        min_freq = check_int(min_freq, "min_freq", minimum=1)
        self.hash_buckets = hash_buckets
        self.min_freq = min_freq
        self.vocabulary: dict[str, int] = {}

    @property
    def features(self) -> list[str]:
        """The vocabulary's features in column order (empty when hashing)."""
        return list(self.vocabulary)

    @property
    def num_features(self) -> int:
        """Number of columns F."""
        return self.hash_buckets if self.hash_buckets is not None else len(self.vocabulary)

    @classmethod
    def from_features(cls, features: Sequence[str]) -> FeatureEncoder:
        """An encoder with a given vocabulary (column ``i`` = ``features[i]``)."""
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise ValidationError("features", "must be a list of feature strings",
                                  found=type(features).__name__)
        for f in features:
            if not isinstance(f, str):
                raise ValidationError("features", "must be strings", found=repr(f)[:60])
        enc = cls()
        enc.vocabulary = {f: i for i, f in enumerate(features)}
        if len(enc.vocabulary) != len(features):
            raise ValidationError("features", "must be distinct")
        return enc

    def fit(self, sentences: Sequence[Sequence[Token]]) -> FeatureEncoder:
        """Learn the vocabulary (no-op when hashing); return ``self``."""
        _check_corpus(sentences)
        if self.hash_buckets is not None:
            return self
        if self.min_freq == 1:
            vocab: dict[str, int] = {}
            for sent in sentences:
                _check_sentence(sent)
                for tok in sent:
                    for name, _ in iter_token_features(tok):
                        if name not in vocab:
                            vocab[name] = len(vocab)
            self.vocabulary = vocab
        else:
            counts: Counter[str] = Counter()
            for sent in sentences:
                _check_sentence(sent)
                for tok in sent:
                    counts.update({name for name, _ in iter_token_features(tok)})
            kept = [f for f, c in counts.items() if c >= self.min_freq]
            self.vocabulary = {f: i for i, f in enumerate(kept)}
        return self

    def _column(self, name: str) -> int | None:
        if self.hash_buckets is not None:
            return zlib.crc32(name.encode("utf-8")) % self.hash_buckets
        return self.vocabulary.get(name)

    def encode(self, sentences: Sequence[Sequence[Token]]) -> EncodedCorpus:
        """Pack ``sentences`` (lists of tokens) as an :class:`EncodedCorpus`."""
        indices: list[int] = []
        weights: list[float] = []
        offsets: list[int] = []
        lengths: list[int] = []
        hashing = self.hash_buckets is not None
        vocab = self.vocabulary
        _check_corpus(sentences)
        for sent in sentences:
            _check_sentence(sent)
            lengths.append(len(sent))
            for tok in sent:
                offsets.append(len(indices))
                for name, w in iter_token_features(tok):
                    col = self._column(name) if hashing else vocab.get(name)
                    if col is not None:
                        indices.append(col)
                        weights.append(w)
        return EncodedCorpus(
            torch.tensor(indices, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float64),
            torch.tensor(offsets, dtype=torch.long),
            torch.tensor(lengths, dtype=torch.long),
        )
