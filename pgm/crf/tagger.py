"""A feature-based linear-chain CRF tagger with a scikit-learn style API (``fit`` / ``predict``).

Input follows sklearn-crfsuite: ``X`` is a list of sentences, each a list of per-token feature
dicts (or lists of feature strings, see :mod:`pgm.crf.encoding`); ``y`` a list of tag lists.
Each token's emission scores are a sparse sum over its active features,
``e_t = sum_f x_tf W[f]`` with ``W`` ``(F, K)`` (one :func:`~torch.nn.functional.embedding_bag`
over the whole corpus), and a :class:`~pgm.crf.linear_chain.LinearChainCRF` adds start,
transition and end scores. Training minimises (CRFsuite's objective)

    sum_n -log p(y_n | x_n) + c1 * ||theta||_1 + c2 * ||theta||_2^2

over every parameter ``theta`` (feature weights and transition scores), either by full-batch
L-BFGS (OWL-QN when ``c1 > 0``, :mod:`pgm.crf.owlqn`; ``algorithm="lbfgs"``) or by Adam on
minibatches (``algorithm="adam"``; the L1 term by a proximal soft-threshold after each step, the
objective scaled by the number of sentences). Sentences are bucketed by length so padding costs
little. :meth:`CRFTagger.save` writes atomically; :meth:`CRFTagger.load` reads with
``weights_only=True``.

Examples
--------
>>> from pgm.crf.tagger import CRFTagger
>>> X = [[{"w": "the"}, {"w": "dog"}], [{"w": "a"}, {"w": "cat"}, {"w": "runs"}]]
>>> y = [["DET", "NOUN"], ["DET", "NOUN", "VERB"]]
>>> tagger = CRFTagger(c2=0.01, max_iterations=50).fit(X, y)
>>> tagger.predict([[{"w": "the"}, {"w": "cat"}]])
[['DET', 'NOUN']]
>>> round(tagger.predict_marginals([[{"w": "a"}]])[0][0]["DET"], 1)
0.7
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Hashable, Iterable, Sequence, Sized
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pgm.crf.constraints import TransitionConstraints
from pgm.crf.encoding import EncodedCorpus, FeatureEncoder, Token
from pgm.crf.linear_chain import LinearChainCRF
from pgm.crf.owlqn import minimize_owlqn
from pgm.crf.tagger_state import read_tagger_state
from probforge.errors import CheckpointError, ProbforgeError, ShapeError, ValidationError
from probforge.files import atomic_torch_save, load_saved_state, state_digest
from probforge.ops.random import make_generator
from probforge.validate import check_device, check_int, check_real

__all__ = ["CRFTagger", "FitInfo"]

_FORMAT = "probforge.CRFTagger"
_VERSION = 1


class FitInfo(NamedTuple):
    """What :meth:`CRFTagger.fit` did.

    Attributes
    ----------
    algorithm : str
    n_iter : int
        L-BFGS iterations or Adam epochs.
    n_evals : int
        Objective evaluations (L-BFGS) or minibatch steps (Adam).
    objective : float
        Final training objective.
    converged : bool
    seconds : float
        Wall time of the optimisation (feature encoding excluded).
    history : list of float
        Objective per iteration (L-BFGS) or per epoch (Adam).
    """

    algorithm: str
    n_iter: int
    n_evals: int
    objective: float
    converged: bool
    seconds: float
    history: list[float]


class _Batch(NamedTuple):
    sentences: Tensor  # (B,) sentence indices
    rows: Tensor  # (B, T) token rows into the emission matrix; padding -> the zero row
    mask: Tensor  # (B, T) bool
    tags: Tensor | None  # (B, T) long, padding 0


def _length_buckets(lengths: list[int], step_cost: float, max_cells: int) -> list[int]:
    """Split sorted ``lengths`` into contiguous buckets minimising padded cells plus
    ``step_cost`` cells per time step of each bucket (one interpreted chain step), each bucket
    holding at most ``max_cells`` cells when it can. Returns the bucket end indices."""
    n = len(lengths)
    # distinct lengths and where their runs end
    ends = [i + 1 for i in range(n) if i + 1 == n or lengths[i + 1] != lengths[i]]
    best = [0.0] + [math.inf] * len(ends)
    back = [0] * (len(ends) + 1)
    for j in range(1, len(ends) + 1):
        t = lengths[ends[j - 1] - 1]
        for i in range(j - 1, -1, -1):
            start = ends[i - 1] if i else 0
            count = ends[j - 1] - start
            if count * t > max_cells and i < j - 1:
                break
            cost = best[i] + count * t + step_cost * t
            if cost < best[j]:
                best[j], back[j] = cost, i
    cuts: list[int] = []
    j = len(ends)
    while j > 0:
        cuts.append(ends[j - 1])
        j = back[j]
    return cuts[::-1]


def _batches(corpus: EncodedCorpus, tags: Tensor | None, batch_size: int | None,
             max_cells: int, order: Tensor | None = None, step_cost: float = 150.0
             ) -> list[_Batch]:
    """Sentences grouped into batches of similar length (empty sentences are left out).

    With ``batch_size`` None, the sentences are sorted by length and split to minimise padding
    plus per-step overhead (:func:`_length_buckets`); otherwise ``order`` (default: by length)
    is cut into runs of ``batch_size`` sentences.
    """
    lengths = corpus.lengths
    starts = torch.cumsum(lengths, 0) - lengths
    n_tokens = int(lengths.sum())
    idx = torch.argsort(lengths, stable=True) if order is None else order
    idx = idx[lengths[idx] > 0]
    lens = lengths[idx].tolist()
    if batch_size is None:
        cuts = _length_buckets(lens, step_cost, max_cells)
    else:
        cuts = list(range(batch_size, len(lens), batch_size)) + [len(lens)]
    out: list[_Batch] = []
    i = 0
    for j in cuts:
        if j <= i:
            continue
        sel = idx[i:j]
        t = max(lens[i:j])
        ar = torch.arange(t, device=lengths.device)
        mask = ar < lengths[sel][:, None]
        rows = torch.where(mask, starts[sel][:, None] + ar,
                           torch.full_like(mask, n_tokens, dtype=torch.long))
        bt = None if tags is None else torch.cat([tags, tags.new_zeros(1)])[rows]
        out.append(_Batch(sel, rows, mask, bt))
        i = j
    return out


class CRFTagger:
    """Feature-based CRF sequence tagger (``fit`` / ``predict`` / ``predict_marginals``).

    Parameters
    ----------
    algorithm : {"lbfgs", "adam"}
        Full-batch L-BFGS / OWL-QN (default), or Adam on minibatches.
    c1, c2 : float
        L1 and L2 coefficients of the objective (see the module docstring); CRFsuite's names.
    max_iterations : int
        L-BFGS iterations.
    epochs, lr, batch_size : int, float, int
        Adam's passes over the data, learning rate and sentences per minibatch.
    hash_buckets : int, optional
        Hash features into this many columns instead of learning a vocabulary.
    min_freq : int
        Keep features seen in at least this many training tokens (vocabulary only).
    constraints : TransitionConstraints or callable, optional
        Allowed transitions, or ``labels -> TransitionConstraints`` (e.g.
        ``lambda labels: bio_constraints(labels)``), applied once the labels are known.
    dtype : torch.dtype
        Parameter dtype (float64 default; float32 is faster and usually as accurate).
    device : str or torch.device
        Where training and prediction run.
    seed : int
        Seed of Adam's minibatch shuffling (L-BFGS is deterministic).
    max_batch_cells : int
        Most padded (sentence, step) cells per internal batch.
    tol : float
        Stop L-BFGS when the objective improved by less than ``tol`` (relative) over 10
        iterations (CRFsuite's ``delta``); Adam ignores it.

    Attributes
    ----------
    classes_ : list of str
        The labels, in score-column order (sorted).
    encoder_ : FeatureEncoder
    weights_ : Tensor
        ``(F, K)`` feature weights.
    crf_ : LinearChainCRF
        Start / transition / end scores.
    fit_info_ : FitInfo
    """

    def __init__(
        self,
        *,
        algorithm: str = "lbfgs",
        c1: float = 0.0,
        c2: float = 0.1,
        max_iterations: int = 100,
        epochs: int = 10,
        lr: float = 0.05,
        batch_size: int = 32,
        hash_buckets: int | None = None,
        min_freq: int = 1,
        constraints: TransitionConstraints | Callable[[list[str]], TransitionConstraints]
        | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        seed: int = 0,
        max_batch_cells: int = 60_000,
        tol: float = 1e-5,
    ) -> None:
        if not isinstance(algorithm, str) or algorithm not in ("lbfgs", "adam"):
            raise ValidationError("algorithm", "must be 'lbfgs' or 'adam'", found=repr(algorithm))
        c1, c2, lr, tol = (check_real(v, name, minimum=0.0) for name, v in
                           (("c1", c1), ("c2", c2), ("lr", lr), ("tol", tol)))
        max_iterations = check_int(max_iterations, "max_iterations", minimum=0)
        epochs = check_int(epochs, "epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        max_batch_cells = check_int(max_batch_cells, "max_batch_cells", minimum=1)
        if hash_buckets is not None:
            hash_buckets = check_int(hash_buckets, "hash_buckets", minimum=1)
        min_freq = check_int(min_freq, "min_freq", minimum=1)
        seed = check_int(seed, "seed", minimum=0)
        if constraints is not None and not (isinstance(constraints, TransitionConstraints)
                                            or callable(constraints)):
            raise ValidationError("constraints", "must be a TransitionConstraints, a callable "
                                  "labels -> TransitionConstraints, or None",
                                  found=type(constraints).__name__)
        if dtype not in (torch.float32, torch.float64):
            raise ValidationError("dtype", "must be torch.float32 or torch.float64",
                                  found=repr(dtype))
        device = check_device(device, "device")
        self.algorithm = algorithm
        self.c1, self.c2 = float(c1), float(c2)
        self.max_iterations, self.epochs = max_iterations, epochs
        self.lr, self.batch_size = float(lr), batch_size
        self.hash_buckets, self.min_freq = hash_buckets, min_freq
        self.constraints = constraints
        self.dtype = dtype
        self.device = torch.device(device)
        self.seed = seed
        self.max_batch_cells = max_batch_cells
        self.tol = float(tol)
        self.classes_: list[str] = []
        self.encoder_: FeatureEncoder | None = None
        self.weights_: Tensor | None = None
        self.crf_: LinearChainCRF | None = None
        self.fit_info_: FitInfo | None = None

    # ------------------------------------------------------------------------------------------
    # Training

    def fit(
        self,
        X: Sequence[Sequence[Token]],
        y: Sequence[Sequence[Hashable]],
        *,
        callback: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = False,
    ) -> CRFTagger:
        """Learn the features, labels and weights from tagged sentences.

        Parameters
        ----------
        X : list of list of (dict or list of str)
            Token features, sentence by sentence.
        y : list of list of str
            Tags, aligned with ``X``.
        callback : callable, optional
            Called with ``{"iteration", "objective", "seconds"}`` after each L-BFGS iteration
            or Adam epoch.
        progress : bool
            Show a tqdm progress bar.

        Returns
        -------
        CRFTagger
            ``self``.
        """
        self._check_xy(X, y)
        if callback is not None and not callable(callback):
            raise ValidationError("callback", "must be callable or None",
                                  found=type(callback).__name__)
        labels = sorted({str(t) for sent in y for t in sent})
        if not labels:
            raise ValidationError("y", "holds no tags", fix="pass at least one tagged token")
        self.classes_ = labels
        col = {lab: i for i, lab in enumerate(labels)}
        enc = FeatureEncoder(hash_buckets=self.hash_buckets, min_freq=self.min_freq).fit(X)
        corpus = self._to_device(enc.encode(X))
        tags = torch.tensor([col[str(t)] for sent in y for t in sent], dtype=torch.long,
                            device=self.device)
        self.encoder_ = enc
        k = len(labels)
        constraints = self.constraints(labels) if callable(self.constraints) else self.constraints
        if constraints is not None and not isinstance(constraints, TransitionConstraints):
            raise ValidationError("constraints", "the callable must return a "
                                  "TransitionConstraints", found=type(constraints).__name__)
        crf = LinearChainCRF(k, init_scale=0.0, constraints=constraints, dtype=self.dtype,
                             device=self.device)
        weights = nn.Parameter(torch.zeros(enc.num_features, k, dtype=self.dtype,
                                           device=self.device))
        self.weights_, self.crf_ = weights, crf
        params = [weights, crf.start_transitions, crf.transitions, crf.end_transitions]
        t0 = time.perf_counter()
        bar = _progress_bar(progress, self.max_iterations if self.algorithm == "lbfgs"
                            else self.epochs, self.algorithm)

        def report(it: int, obj: float) -> None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(objective=f"{obj:.6g}")
            if callback is not None:
                callback({"iteration": it, "objective": obj,
                          "seconds": time.perf_counter() - t0})

        try:
            if self.algorithm == "lbfgs":
                info = self._fit_lbfgs(corpus, tags, params, report)
            else:
                info = self._fit_adam(corpus, tags, params, report)
        finally:
            if bar is not None:
                bar.close()
        self.fit_info_ = info._replace(seconds=time.perf_counter() - t0)
        weights.requires_grad_(False)
        for p in crf.parameters():
            p.requires_grad_(False)
        return self

    def _nll_sum_backward(self, corpus: EncodedCorpus, batches: list[_Batch],
                          weights: Tensor) -> float:
        """Total NLL; accumulates its gradient into the parameters' ``.grad`` batch by batch
        (so only one batch's autograd graph is alive at a time)."""
        assert self.crf_ is not None
        emissions = self._emissions(corpus, weights)
        leaf = emissions.detach().requires_grad_(True)
        total = 0.0
        for b in batches:
            assert b.tags is not None
            loss = self.crf_.nll(leaf[b.rows], b.tags, b.mask, reduction="sum")
            torch.autograd.backward(loss)
            total += float(loss.detach())
        assert leaf.grad is not None
        torch.autograd.backward(emissions, leaf.grad)
        return total

    def _fit_lbfgs(self, corpus: EncodedCorpus, tags: Tensor, params: list[nn.Parameter],
                   report: Callable[[int, float], None]) -> FitInfo:
        batches = _batches(corpus, tags, None, self.max_batch_cells)
        weights = params[0]
        shapes = [p.shape for p in params]
        sizes = [p.numel() for p in params]

        def fg(x: Tensor) -> tuple[float, Tensor]:
            with torch.no_grad():
                for p, chunk, shape in zip(params, torch.split(x, sizes), shapes, strict=True):
                    p.copy_(chunk.view(shape))
                    p.grad = None
            total = self._nll_sum_backward(corpus, batches, weights)
            grad = torch.cat([p.grad.reshape(-1) if p.grad is not None
                              else torch.zeros_like(p).reshape(-1) for p in params])
            if self.c2 > 0:  # + c2 ||x||^2
                total += self.c2 * float(torch.dot(x, x))
                grad.add_(x.to(grad.dtype), alpha=2 * self.c2)
            return total, grad

        x0 = torch.cat([p.detach().reshape(-1) for p in params])
        res = minimize_owlqn(fg, x0, c1=self.c1, max_iter=self.max_iterations, delta=self.tol,
                             callback=lambda it, f, x: report(it, f))
        with torch.no_grad():
            for p, chunk, shape in zip(params, torch.split(res.x, sizes), shapes, strict=True):
                p.copy_(chunk.view(shape))
                p.grad = None
        return FitInfo("lbfgs", res.n_iter, res.n_evals, res.fun, res.converged, 0.0,
                       res.history)

    def _fit_adam(self, corpus: EncodedCorpus, tags: Tensor, params: list[nn.Parameter],
                  report: Callable[[int, float], None]) -> FitInfo:
        weights = params[0]
        n_sent = int((corpus.lengths > 0).sum())
        opt = torch.optim.Adam(params, lr=self.lr)
        g = make_generator(self.seed)
        history: list[float] = []
        steps = 0
        for epoch in range(1, self.epochs + 1):
            # shuffle, then group into length buckets of batch_size sentences, shuffle buckets
            perm = torch.randperm(len(corpus.lengths), generator=g)
            order = perm[torch.argsort(corpus.lengths[perm].cpu(), stable=True)]
            batches = _batches(corpus, tags, self.batch_size, self.max_batch_cells,
                               order=order.to(corpus.lengths.device))
            total = 0.0
            for bi in torch.randperm(len(batches), generator=g).tolist():
                b = batches[bi]
                assert self.crf_ is not None and b.tags is not None
                opt.zero_grad(set_to_none=True)
                emissions = self._emissions(corpus, weights, rows=b.rows)
                nll = self.crf_.nll(emissions, b.tags, b.mask, reduction="sum")
                frac = len(b.sentences) / n_sent
                loss = nll
                if self.c2 > 0:
                    loss = loss + frac * self.c2 * sum((p * p).sum() for p in params)
                torch.autograd.backward(loss / len(b.sentences))
                opt.step()
                steps += 1
                if self.c1 > 0:
                    thr = self.lr * self.c1 / n_sent
                    with torch.no_grad():
                        for p in params:
                            p.copy_(torch.sign(p) * torch.clamp(p.abs() - thr, min=0.0))
                total += float(loss.detach())
            if self.c1 > 0:
                total += self.c1 * sum(float(p.detach().abs().sum()) for p in params)
            history.append(total)
            report(epoch, total)
        return FitInfo("adam", self.epochs, steps, history[-1] if history else math.nan,
                       True, 0.0, history)

    # ------------------------------------------------------------------------------------------
    # Prediction

    def _emissions(self, corpus: EncodedCorpus, weights: Tensor,
                   rows: Tensor | None = None) -> Tensor:
        """Emission scores ``(N + 1, K)`` of every token plus a zero padding row, or
        ``(B, T, K)`` of the tokens at ``rows`` (padding -> zeros)."""
        n = corpus.offsets.shape[0]
        if rows is None:
            e = F.embedding_bag(corpus.indices, weights, corpus.offsets, mode="sum",
                                per_sample_weights=corpus.weights.to(weights.dtype))
            return torch.cat([e, e.new_zeros(1, e.shape[1])])
        # only the tokens of this batch: gather their feature bags
        flat = rows.reshape(-1)
        valid = flat < n
        tok = flat[valid]
        ends = torch.cat([corpus.offsets[1:], corpus.offsets.new_tensor([len(corpus.indices)])])
        counts = ends[tok] - corpus.offsets[tok]
        starts = corpus.offsets[tok]
        pos = torch.repeat_interleave(starts - torch.cumsum(counts, 0) + counts, counts) + \
            torch.arange(int(counts.sum()), device=counts.device)
        sub_offsets = torch.cumsum(counts, 0) - counts
        e = F.embedding_bag(corpus.indices[pos], weights, sub_offsets, mode="sum",
                            per_sample_weights=corpus.weights[pos].to(weights.dtype))
        out = e.new_zeros(flat.shape[0], e.shape[1])
        out[valid] = e
        return out.view(*rows.shape, e.shape[1])

    def _prepare(self, X: Sequence[Sequence[Token]]) -> tuple[EncodedCorpus, list[_Batch], Tensor]:
        if self.encoder_ is None or self.weights_ is None or self.crf_ is None:
            raise ValidationError("CRFTagger", "is not fitted", fix="call fit(X, y) or load()")
        if isinstance(X, str | dict) or not isinstance(X, Sequence):
            raise ValidationError("X", "must be a list of sentences", found=type(X).__name__)
        corpus = self._to_device(self.encoder_.encode(X))
        batches = _batches(corpus, None, None, self.max_batch_cells)
        return corpus, batches, self._emissions(corpus, self.weights_)

    def predict(self, X: Sequence[Sequence[Token]]) -> list[list[str]]:
        """Viterbi tags of each sentence (lists of label strings)."""
        with torch.no_grad():
            corpus, batches, emissions = self._prepare(X)
            assert self.crf_ is not None
            out: list[list[str]] = [[] for _ in range(len(corpus.lengths))]
            for b in batches:
                path = self.crf_.decode(emissions[b.rows], b.mask).path.tolist()
                for s, row in zip(b.sentences.tolist(), path, strict=True):
                    out[s] = [self.classes_[v] for v in row if v >= 0]
        return out

    def predict_marginals(self, X: Sequence[Sequence[Token]]) -> list[list[dict[str, float]]]:
        """Posterior tag marginals: per sentence, per token, ``{label: probability}``."""
        with torch.no_grad():
            corpus, batches, emissions = self._prepare(X)
            assert self.crf_ is not None
            out: list[list[dict[str, float]]] = [[] for _ in range(len(corpus.lengths))]
            for b in batches:
                marg = self.crf_.marginals(emissions[b.rows], b.mask).tolist()
                for s, rows, n in zip(b.sentences.tolist(), marg, b.mask.sum(-1).tolist(),
                                      strict=True):
                    out[s] = [dict(zip(self.classes_, r, strict=True)) for r in rows[:n]]
        return out

    def score(self, X: Sequence[Sequence[Token]], y: Sequence[Sequence[Hashable]]) -> float:
        """Token accuracy of :meth:`predict` against ``y``."""
        from pgm.crf.metrics import accuracy

        return accuracy([[str(t) for t in s] for s in y], self.predict(X))

    # ------------------------------------------------------------------------------------------
    # Checks and helpers

    def _to_device(self, c: EncodedCorpus) -> EncodedCorpus:
        return EncodedCorpus(*(t.to(self.device) for t in c))

    @staticmethod
    def _check_xy(X: Sequence[Sequence[Token]], y: Sequence[Sequence[Hashable]]) -> None:
        def listlike(v: Any) -> bool:  # lists, tuples, numpy arrays; never a str or a dict
            return not isinstance(v, str | bytes | dict) and isinstance(v, Sized) \
                and isinstance(v, Iterable)

        for name, v in (("X", X), ("y", y)):
            if not listlike(v):
                raise ValidationError(name, "must be a list (one entry per sentence)",
                                      found=type(v).__name__)
        if len(X) != len(y):
            raise ShapeError("y", "needs one tag sequence per sentence of X",
                             found=f"{len(y)} tag sequences vs {len(X)} sentences")
        for i, (xs, ys) in enumerate(zip(X, y, strict=True)):
            if isinstance(ys, str):
                raise ValidationError(f"y[{i}]", "must be a list of tags, not a string",
                                      found=repr(ys[:20]))
            if not listlike(xs):
                raise ValidationError(f"X[{i}]", "must be a list of tokens",
                                      found=type(xs).__name__)
            if not listlike(ys):
                raise ValidationError(f"y[{i}]", "must be a list of tags",
                                      found=type(ys).__name__)
            if len(xs) != len(ys):
                raise ShapeError(f"y[{i}]", f"needs one tag per token of X[{i}]",
                                 found=f"{len(ys)} tags vs {len(xs)} tokens")

    @property
    def num_features(self) -> int:
        """Number of feature columns F (0 before fitting)."""
        return 0 if self.encoder_ is None else self.encoder_.num_features

    def sparsity(self) -> float:
        """Fraction of feature weights exactly zero (L1 makes them sparse)."""
        if self.weights_ is None:
            raise ValidationError("CRFTagger", "is not fitted")
        return float((self.weights_ == 0).double().mean())

    # ------------------------------------------------------------------------------------------
    # Persistence

    def _config(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "c1": self.c1, "c2": self.c2,
                "max_iterations": self.max_iterations, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "hash_buckets": self.hash_buckets,
                "min_freq": self.min_freq, "dtype": str(self.dtype).removeprefix("torch."),
                "seed": self.seed, "max_batch_cells": self.max_batch_cells, "tol": self.tol}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted tagger to ``path`` atomically (temp file + ``os.replace``).

        The file holds a checksum of its content, so :meth:`load` detects a corrupted file
        (a flipped byte in a weight would otherwise load silently as another model).
        """
        if self.encoder_ is None or self.weights_ is None or self.crf_ is None:
            raise ValidationError("CRFTagger", "is not fitted", fix="call fit(X, y) first")
        crf = self.crf_
        state: dict[str, Any] = {
            "format": _FORMAT, "version": _VERSION, "config": self._config(),
            "labels": list(self.classes_),
            "features": self.encoder_.features if self.hash_buckets is None else None,
            "weights": self.weights_.detach().cpu(),
            "start": crf.start_transitions.detach().cpu(),
            "transitions": crf.transitions.detach().cpu(),
            "end": crf.end_transitions.detach().cpu(),
            "constraints": None if crf.allowed_transitions is None else [
                t.cpu() for t in (crf.allowed_start, crf.allowed_transitions, crf.allowed_end)
                if t is not None],
        }
        state["checksum"] = state_digest(state)
        atomic_torch_save(path, state)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
             ) -> CRFTagger:
        """Read a tagger written by :meth:`save` (``torch.load(..., weights_only=True)``).

        Every field is checked before use: its presence, type, dtype (the tagger's own; nothing
        is cast), shape and finiteness, and the checksum where the file has one (files written
        before checksums were added load without it).

        Raises
        ------
        MissingFileError
            If ``path`` does not exist.
        CheckpointError
            If the file cannot be read, is not a CRFTagger file, or any field is missing,
            malformed, inconsistent or corrupted (checksum mismatch).
        """
        device = check_device(device, "device")
        where = f"CRF tagger file {str(path)!r}"
        state = load_saved_state(path, "CRF tagger file", _FORMAT, kind="CRFTagger file",
                                 version=_VERSION,
                                 fix="write it again with CRFTagger.save")
        fields = read_tagger_state(state, where)
        cfg = dict(fields["config"])
        cfg["dtype"] = getattr(torch, cfg["dtype"])
        try:
            tagger = cls(**cfg, device=device)
        except ProbforgeError as err:
            raise CheckpointError(where, "holds an invalid configuration", found=str(err)
                                  ) from err
        labels = fields["labels"]
        k = len(labels)
        w = fields["weights"]
        tagger.classes_ = labels
        if fields["features"] is None:
            tagger.encoder_ = FeatureEncoder(hash_buckets=cfg["hash_buckets"])
        else:
            tagger.encoder_ = FeatureEncoder.from_features(fields["features"])
        if tagger.encoder_.num_features != w.shape[0]:
            raise CheckpointError(where, "feature count does not match the weights",
                                  found=f"{tagger.encoder_.num_features} vs {w.shape[0]}")
        constraints = None
        if fields["constraints"] is not None:
            constraints = TransitionConstraints(*fields["constraints"])
        crf = LinearChainCRF(k, init_scale=0.0, constraints=constraints, dtype=cfg["dtype"],
                             device=tagger.device)
        with torch.no_grad():
            crf.start_transitions.copy_(fields["start"])
            crf.transitions.copy_(fields["transitions"])
            crf.end_transitions.copy_(fields["end"])
        for p in crf.parameters():
            p.requires_grad_(False)
        tagger.crf_ = crf
        tagger.weights_ = w.to(device=tagger.device)
        return tagger


def _progress_bar(show: bool, total: int, desc: str) -> Any:
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"CRF {desc}", unit="it" if desc == "lbfgs" else "epoch")
