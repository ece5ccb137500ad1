"""A BiLSTM-CRF tagger: word + affix + shape embeddings, a bidirectional LSTM, a linear-chain CRF.

Each token is embedded from its lower-cased word (rare words map to ``<unk>``; during training
words are also dropped to ``<unk>`` at random so the unknown embedding is learnt), its prefixes
and suffixes of length 1-3 and a coarse shape (capitalisation, digits, punctuation). A
bidirectional LSTM over the packed (ragged) batch produces emission scores and a
:class:`~pgm.crf.linear_chain.LinearChainCRF` models the tag sequence, so training maximises the
exact sequence likelihood and decoding is Viterbi.

:func:`train_bilstm_crf` trains with Adam on length-bucketed minibatches (keeping the weights that
score best on a development set, if one is given); :meth:`BiLSTMCRF.save` writes atomically and
:meth:`BiLSTMCRF.load` reads with ``weights_only=True``.

Examples
--------
>>> from pgm.crf.bilstm import BiLSTMCRF, TokenVocab, train_bilstm_crf
>>> from probforge.ops.random import make_generator
>>> words = [["the", "dog", "runs"], ["a", "cat", "sleeps"], ["the", "cat", "runs"]]
>>> tags = [["DET", "NOUN", "VERB"]] * 3
>>> model = BiLSTMCRF(TokenVocab.build(words, min_freq=1), ["DET", "NOUN", "VERB"],
...                   word_dim=16, affix_dim=4, hidden=16, generator=make_generator(0))
>>> history = train_bilstm_crf(model, words, tags, epochs=30, lr=0.05, generator=make_generator(1))
>>> model.predict([["a", "dog", "sleeps"]])
[['DET', 'NOUN', 'VERB']]
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pgm.crf.constraints import TransitionConstraints
from pgm.crf.linear_chain import LinearChainCRF
from probforge.errors import CheckpointError, ProbforgeError, ShapeError, ValidationError
from probforge.files import atomic_torch_save, load_saved_state, state_digest
from probforge.ops.random import make_generator, random_seed
from probforge.validate import (
    check_device,
    check_int,
    check_names,
    check_real,
)

__all__ = ["BiLSTMCRF", "TokenBatch", "TokenVocab", "train_bilstm_crf"]

PAD, UNK = 0, 1
_AFFIXES = ("p1", "p2", "p3", "s1", "s2", "s3")
_FORMAT = "probforge.BiLSTMCRF"


def _shape(word: str) -> str:
    if word.isdigit():
        return "digit"
    if any(c.isdigit() for c in word):
        return "hasdigit"
    if not any(c.isalnum() for c in word):
        return "punct"
    if word.isupper():
        return "upper"
    if word.istitle():
        return "title"
    if word.islower():
        return "lower"
    return "mixed" + ("-" if "-" in word else "")


def _affix(word: str, kind: str) -> str:
    n = int(kind[1])
    return word[:n] if kind[0] == "p" else word[-n:]


_CONFIG_KEYS = frozenset({"word_dim", "affix_dim", "shape_dim", "hidden", "layers", "dropout",
                          "word_dropout"})


def _check_sentences(sentences: Any, subject: str) -> None:
    """A list of sentences, each a list of strings (a string is never split into characters)."""
    if isinstance(sentences, str | bytes) or not isinstance(sentences, Sequence):
        raise ValidationError(subject, "must be a list of sentences (lists of str)",
                              found=type(sentences).__name__)
    for i, sent in enumerate(sentences):
        if isinstance(sent, str | bytes) or not isinstance(sent, Sequence):
            raise ValidationError(f"{subject}[{i}]", "must be a list of str, not a "
                                  f"{type(sent).__name__}", found=repr(sent)[:40],
                                  fix="split it into words, e.g. text.split()")
        for w in sent:
            if not isinstance(w, str):
                raise ValidationError(f"{subject}[{i}]", "must hold strings",
                                      found=repr(w)[:40])


class TokenBatch(NamedTuple):
    """A padded batch of encoded sentences.

    Attributes
    ----------
    words : Tensor
        ``(B, T)`` word ids (``0`` = padding).
    affixes : Tensor
        ``(B, T, 6)`` ids of prefixes 1-3 and suffixes 1-3.
    shapes : Tensor
        ``(B, T)`` shape ids.
    mask : Tensor
        ``(B, T)`` bool, left-aligned.
    """

    words: Tensor
    affixes: Tensor
    shapes: Tensor
    mask: Tensor


class TokenVocab:
    """Word, affix and shape vocabularies (id 0 = padding, 1 = unknown).

    Parameters
    ----------
    words, affixes, shapes : list of str
        Entries from id 2 on (word and affix entries are lower-case).
    """

    def __init__(self, words: Sequence[str], affixes: Sequence[str], shapes: Sequence[str]
                 ) -> None:
        for what, entries in (("words", words), ("affixes", affixes), ("shapes", shapes)):
            check_names(entries, f"TokenVocab {what}")
        self.words = list(words)
        self.affixes = list(affixes)
        self.shapes = list(shapes)
        self._w = {w: i + 2 for i, w in enumerate(self.words)}
        self._a = {a: i + 2 for i, a in enumerate(self.affixes)}
        self._s = {s: i + 2 for i, s in enumerate(self.shapes)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], *, min_freq: int = 2,
              affix_min_freq: int = 2) -> TokenVocab:
        """Vocabularies from training sentences (words seen at least ``min_freq`` times)."""
        min_freq = check_int(min_freq, "min_freq", minimum=1)
        affix_min_freq = check_int(affix_min_freq, "affix_min_freq", minimum=1)
        _check_sentences(sentences, "sentences")
        wc: Counter[str] = Counter()
        ac: Counter[str] = Counter()
        shapes: set[str] = set()
        for sent in sentences:
            for w in sent:
                low = w.lower()
                wc[low] += 1
                ac.update(f"{k}:{_affix(low, k)}" for k in _AFFIXES)
                shapes.add(_shape(w))
        return cls([w for w, c in wc.items() if c >= min_freq],
                   [a for a, c in ac.items() if c >= affix_min_freq], sorted(shapes))

    def sizes(self) -> tuple[int, int, int]:
        """Number of ids (padding and unknown included) of words, affixes and shapes."""
        return len(self.words) + 2, len(self.affixes) + 2, len(self.shapes) + 2

    def encode(self, sentences: Sequence[Sequence[str]], device: torch.device | str = "cpu"
               ) -> TokenBatch:
        """Pad and encode sentences (each a non-empty list of word strings)."""
        _check_sentences(sentences, "sentences")
        if not sentences:
            raise ValidationError("sentences", "must hold at least one sentence")
        t = max(len(s) for s in sentences)
        if t == 0 or any(len(s) == 0 for s in sentences):
            raise ValidationError("sentences", "must not be empty", fix="drop empty sentences")
        b = len(sentences)
        words = torch.zeros(b, t, dtype=torch.long)
        affixes = torch.zeros(b, t, len(_AFFIXES), dtype=torch.long)
        shapes = torch.zeros(b, t, dtype=torch.long)
        for i, sent in enumerate(sentences):
            if isinstance(sent, str):
                raise ValidationError(f"sentences[{i}]", "must be a list of words, not a string")
            lows = [w.lower() for w in sent]
            words[i, :len(sent)] = torch.tensor([self._w.get(w, UNK) for w in lows])
            affixes[i, :len(sent)] = torch.tensor(
                [[self._a.get(f"{k}:{_affix(w, k)}", UNK) for k in _AFFIXES] for w in lows])
            shapes[i, :len(sent)] = torch.tensor([self._s.get(_shape(w), UNK) for w in sent])
        mask = words != PAD
        dev = check_device(device, "device")
        return TokenBatch(words.to(dev), affixes.to(dev), shapes.to(dev), mask.to(dev))


class BiLSTMCRF(nn.Module):
    """BiLSTM emissions + linear-chain CRF.

    Parameters
    ----------
    vocab : TokenVocab
    labels : list of str
        Tag names (K = ``len(labels)``), in score-column order.
    word_dim, affix_dim, shape_dim : int
        Embedding sizes.
    hidden : int
        LSTM hidden size per direction.
    layers : int
        LSTM layers.
    dropout : float
        Dropout on the embeddings and the LSTM output.
    word_dropout : float
        Probability of replacing a known word by ``<unk>`` in training.
    constraints : TransitionConstraints, optional
        Allowed transitions of the CRF.
    generator : torch.Generator, optional
        Draws the initial weights (the global RNG is not touched when given).
    """

    def __init__(
        self,
        vocab: TokenVocab,
        labels: Sequence[str],
        *,
        word_dim: int = 100,
        affix_dim: int = 24,
        shape_dim: int = 8,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.33,
        word_dropout: float = 0.05,
        constraints: TransitionConstraints | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(vocab, TokenVocab):
            raise ValidationError("vocab", "must be a TokenVocab", found=type(vocab).__name__)
        if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) < 1 \
                or not all(isinstance(v, str) for v in labels) or len(set(labels)) != len(labels):
            raise ValidationError("labels", "must be a non-empty list of distinct tags (str)",
                                  found=repr(labels)[:60])
        for name, v in (("dropout", dropout), ("word_dropout", word_dropout)):
            check_real(v, name, minimum=0.0, maximum=1.0, strict_maximum=True)
        for name, n in (("word_dim", word_dim), ("affix_dim", affix_dim),
                        ("shape_dim", shape_dim), ("hidden", hidden), ("layers", layers)):
            check_int(n, name, minimum=1)
        self.vocab = vocab
        self.labels = list(labels)
        self.config = {"word_dim": word_dim, "affix_dim": affix_dim, "shape_dim": shape_dim,
                       "hidden": hidden, "layers": layers, "dropout": dropout,
                       "word_dropout": word_dropout}
        nw, na, ns = vocab.sizes()
        # torch's layers draw their default initialisation from the global RNG; build them in a
        # forked RNG (restored afterwards) and re-draw every weight from ``generator``
        with torch.random.fork_rng(devices=[]):
            self.word_emb = nn.Embedding(nw, word_dim, padding_idx=PAD)
            self.affix_emb = nn.Embedding(na, affix_dim, padding_idx=PAD)
            self.shape_emb = nn.Embedding(ns, shape_dim, padding_idx=PAD)
            d_in = word_dim + len(_AFFIXES) * affix_dim + shape_dim
            self.lstm = nn.LSTM(d_in, hidden, num_layers=layers, bidirectional=True,
                                batch_first=True, dropout=dropout if layers > 1 else 0.0)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(2 * hidden, len(self.labels))
        self.crf = LinearChainCRF(len(self.labels), constraints=constraints,
                                  generator=generator)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw the network weights (embeddings N(0, 0.1), LSTM / linear uniform)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("crf."):
                    continue
                if name.endswith("_emb.weight"):
                    p.copy_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
                    p[PAD].zero_()
                else:
                    bound = 1.0 / math.sqrt(p.shape[-1]) if p.dim() > 1 else 0.05
                    u = torch.rand(p.shape, generator=generator, dtype=p.dtype)
                    p.copy_((2 * u - 1) * bound)

    def emissions(self, batch: TokenBatch, *, generator: torch.Generator | None = None
                  ) -> Tensor:
        """Emission scores ``(B, T, K)`` (zero at padded steps)."""
        words = batch.words
        if self.training and self.config["word_dropout"] > 0:
            u = torch.rand(words.shape, generator=generator, device=words.device)
            words = torch.where((u < self.config["word_dropout"]) & (words > UNK),
                                torch.full_like(words, UNK), words)
        x = torch.cat([self.word_emb(words), self.affix_emb(batch.affixes).flatten(2),
                       self.shape_emb(batch.shapes)], -1)
        x = self.drop(x)
        lengths = batch.mask.sum(-1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=words.shape[1])
        scores: Tensor = self.out(self.drop(h))
        return scores

    def nll(self, batch: TokenBatch, tags: Tensor, *, reduction: str = "mean",
            generator: torch.Generator | None = None) -> Tensor:
        """Negative log-likelihood of ``tags`` ``(B, T)`` (see LinearChainCRF.nll)."""
        e = self.emissions(batch, generator=generator)
        return self.crf.nll(e, tags, batch.mask, reduction=reduction)

    def tag_ids(self, tags: Sequence[Sequence[str]], t: int) -> Tensor:
        """Tag strings -> ``(B, T)`` ids (padding 0)."""
        _check_sentences(tags, "tags")
        t = check_int(t, "t", minimum=0)
        col = {lab: i for i, lab in enumerate(self.labels)}
        out = torch.zeros(len(tags), t, dtype=torch.long)
        for i, sent in enumerate(tags):
            if len(sent) > t:
                raise ShapeError(f"tags[{i}]", f"has more than t = {t} tags", found=len(sent))
            for j, tag in enumerate(sent):
                if tag not in col:
                    raise ValidationError(f"tag {tag!r} (sentence {i})",
                                          "is not one of the model's labels",
                                          fix=f"use one of {self.labels}")
                out[i, j] = col[tag]
        return out

    @torch.no_grad()
    def predict(self, sentences: Sequence[Sequence[str]], *, batch_size: int = 256
                ) -> list[list[str]]:
        """Viterbi tags of each sentence (lists of words); empty sentences get ``[]``."""
        _check_sentences(sentences, "sentences")
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        was = self.training
        self.eval()
        out: list[list[str]] = [[] for _ in sentences]
        order = sorted((i for i, s in enumerate(sentences) if len(s)),
                       key=lambda i: len(sentences[i]))
        dev = self.out.weight.device
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            batch = self.vocab.encode([sentences[i] for i in idx], dev)
            for i, row in zip(idx, self.crf.decode_lists(self.emissions(batch), batch.mask),
                              strict=True):
                out[i] = [self.labels[v] for v in row]
        self.train(was)
        return out

    # ------------------------------------------------------------------------------------------
    # persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model atomically (temp file + ``os.replace``)."""
        state = {"format": _FORMAT, "version": 1, "labels": self.labels, "config": self.config,
                 "vocab": {"words": self.vocab.words, "affixes": self.vocab.affixes,
                           "shapes": self.vocab.shapes},
                 "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}
        state["checksum"] = state_digest(state)  # load() detects a damaged file
        atomic_torch_save(path, state)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
             ) -> BiLSTMCRF:
        """Read a model written by :meth:`save` (``weights_only=True``).

        Raises
        ------
        MissingFileError
            If ``path`` does not exist.
        CheckpointError
            If the file cannot be read, its checksum does not match, or any field is missing,
            malformed, non-finite or inconsistent with the configuration.
        """
        device = check_device(device, "device")
        where = f"BiLSTM-CRF file {str(path)!r}"
        state = load_saved_state(path, "BiLSTM-CRF file", _FORMAT, kind="BiLSTMCRF file",
                                 fix="write it again with BiLSTMCRF.save")
        v, cfg, sd = state.get("vocab"), state.get("config"), state.get("state_dict")
        if not (isinstance(v, dict) and set(v) >= {"words", "affixes", "shapes"}
                and isinstance(cfg, dict) and set(cfg) <= _CONFIG_KEYS
                and isinstance(sd, dict) and "labels" in state):
            raise CheckpointError(where, "lacks a field or holds one of the wrong type",
                                  found=sorted(map(str, state)))
        for key, t in sd.items():
            if not isinstance(t, Tensor) or (t.is_floating_point()
                                             and not bool(torch.isfinite(t).all())):
                raise CheckpointError(f"{where}: state_dict[{key!r}]",
                                      "must be a finite tensor")
        try:
            model = cls(TokenVocab(v["words"], v["affixes"], v["shapes"]), state["labels"],
                        **cfg, generator=make_generator(0))
        except ProbforgeError as err:
            raise CheckpointError(where, "holds an invalid configuration", found=str(err)
                                  ) from err
        try:
            model.load_state_dict(sd)
        except RuntimeError as err:
            raise CheckpointError(where, "does not match its own configuration",
                                  found=str(err)[:200]) from err
        return model.to(device)


def train_bilstm_crf(
    model: BiLSTMCRF,
    words: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]],
    *,
    dev: tuple[Sequence[Sequence[str]], Sequence[Sequence[str]]] | None = None,
    epochs: int = 10,
    lr: float = 2e-3,
    batch_size: int = 32,
    clip: float = 5.0,
    generator: torch.Generator | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train ``model`` in place with Adam on length-bucketed minibatches.

    Parameters
    ----------
    model : BiLSTMCRF
    words, tags : list of list of str
        Training sentences and their tags (empty sentences are skipped).
    dev : (words, tags), optional
        Development data: its accuracy is reported each epoch and the best epoch's weights are
        kept.
    epochs, lr, batch_size, clip : int, float, int, float
        Passes, Adam learning rate, sentences per batch, gradient-norm clip.
    generator : torch.Generator, optional
        Shuffling, word dropout and dropout masks come from it (dropout through a forked RNG
        seeded from it; the global RNG state is restored afterwards).
    callback : callable, optional
        Called with each epoch's record.
    progress : bool
        Show a tqdm progress bar over minibatches.

    Returns
    -------
    list of dict
        Per epoch: ``epoch``, ``loss`` (mean NLL per sentence), ``seconds`` and, with ``dev``,
        ``dev_accuracy``.
    """
    if not isinstance(model, BiLSTMCRF):
        raise ValidationError("model", "must be a BiLSTMCRF", found=type(model).__name__)
    _check_sentences(words, "words")
    _check_sentences(tags, "tags")
    epochs = check_int(epochs, "epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_real(lr, "lr", minimum=0.0, strict_minimum=True)
    clip = check_real(clip, "clip", minimum=0.0, strict_minimum=True)
    if callback is not None and not callable(callback):
        raise ValidationError("callback", "must be callable or None",
                              found=type(callback).__name__)
    if dev is not None and not (isinstance(dev, tuple) and len(dev) == 2):
        raise ValidationError("dev", "must be a (words, tags) pair", found=type(dev).__name__)
    if len(words) != len(tags):
        raise ShapeError("tags", "needs one tag list per sentence",
                         found=f"{len(tags)} vs {len(words)}")
    for i, (w, t) in enumerate(zip(words, tags, strict=True)):
        if len(w) != len(t):
            raise ShapeError(f"tags[{i}]", "needs one tag per word",
                             found=f"{len(t)} tags vs {len(w)} words")
    if epochs > 0 and not any(len(w) for w in words):
        raise ValidationError("words", "holds no non-empty sentence to train on",
                              found=f"{len(words)} sentences",
                              fix="pass at least one tagged sentence")
    g = generator if generator is not None else make_generator(random_seed(None))
    dev_device = model.out.weight.device
    idx = [i for i, w in enumerate(words) if len(w)]
    idx.sort(key=lambda i: len(words[i]))
    chunks = [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    encoded = []
    for c in chunks:
        b = model.vocab.encode([words[i] for i in c], dev_device)
        encoded.append((b, model.tag_ids([tags[i] for i in c], b.words.shape[1]).to(dev_device)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Tensor]] | None = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs * len(encoded), desc="BiLSTM-CRF", unit="batch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_seed(g))  # dropout draws from the (forked) global RNG
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            total, n = 0.0, 0
            for k in torch.randperm(len(encoded), generator=g).tolist():
                b, y = encoded[k]
                opt.zero_grad(set_to_none=True)
                loss = model.nll(b, y, reduction="sum", generator=g)
                (loss / b.words.shape[0]).backward()
                nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                total += float(loss.detach())
                n += b.words.shape[0]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{total / n:.3f}")
            rec: dict[str, Any] = {"epoch": epoch, "loss": total / max(n, 1),
                                   "seconds": time.perf_counter() - t0}
            if dev is not None:
                from pgm.crf.metrics import accuracy

                rec["dev_accuracy"] = accuracy(dev[1], model.predict(dev[0]))
                if best is None or rec["dev_accuracy"] > best[0]:
                    best = (rec["dev_accuracy"],
                            {k: v.detach().clone() for k, v in model.state_dict().items()})
            history.append(rec)
            if callback is not None:
                callback(rec)
    if bar is not None:
        bar.close()
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return history
