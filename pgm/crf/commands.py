"""``probforge tag`` (train and evaluate a CRF or BiLSTM-CRF tagger) and the ``crf`` tour step.

``probforge tag [--train F] [--dev F] [--test F] [--model crf|bilstm] [--epochs N] ...`` reads
CoNLL-U files (default: the UD English EWT treebank, found by
:func:`pgm.crf.conllu.ud_ewt_paths`), trains with a progress bar, and prints the accuracy and
per-tag precision / recall / F1 on the test file (``--json`` for one JSON object instead).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from probforge.cli import TourStep
from probforge.cli_args import (
    existing_file,
    given,
    int_at_least,
    output_file,
    real_at_least,
    refuse_given,
)
from probforge.errors import UsageError

PROG = "probforge tag"

__all__ = ["TOUR_STEPS", "register", "run_tag"]


def register(subparsers: Any) -> None:
    """Add ``tag`` to the ``probforge`` command line."""
    p = subparsers.add_parser(
        "tag",
        help="train and evaluate a CRF / BiLSTM-CRF sequence tagger on CoNLL-U data",
        description="Train a feature-based CRF (or a BiLSTM-CRF) tagger on CoNLL-U files and "
        "print accuracy and per-tag precision/recall/F1 on the test file. Without --train/"
        "--dev/--test the UD English EWT treebank is used (see --data).",
    )
    p.add_argument("--train", type=existing_file,
                   help="training CoNLL-U file (.conllu or .conllu.gz)")
    p.add_argument("--dev", type=existing_file,
                   help="development CoNLL-U file (model selection for bilstm)")
    p.add_argument("--test", type=existing_file, help="test CoNLL-U file")
    p.add_argument("--data", help="directory with en_ewt-ud-{train,dev,test}.conllu[.gz] "
                   "(default: $PROBFORGE_UD_EWT or ../shared/data/ud-english-ewt)")
    p.add_argument("--model", choices=["crf", "bilstm"], default="crf",
                   help="feature CRF (default) or BiLSTM-CRF")
    p.add_argument("--column", default="upos", help="tag column (default upos)")
    p.add_argument("--epochs", type=int_at_least(1), default=None,
                   help="bilstm, or crf with --algorithm adam: passes over the data (default 8)")
    p.add_argument("--max-iterations", type=int_at_least(1), default=100,
                   help="crf with --algorithm lbfgs: iterations (default 100)")
    p.add_argument("--algorithm", choices=["lbfgs", "adam"], default="lbfgs",
                   help="crf optimiser (default lbfgs)")
    p.add_argument("--c1", type=real_at_least(0.0), default=0.0,
                   help="crf L1 coefficient (default 0)")
    p.add_argument("--c2", type=real_at_least(0.0), default=0.1,
                   help="crf L2 coefficient (default 0.1)")
    p.add_argument("--limit", type=int_at_least(1), default=None,
                   help="use only the first N training sentences")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--save", type=output_file(), help="write the trained model here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_tag)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse options that the chosen model or optimiser would ignore."""
    if args.model == "bilstm":
        refuse_given(args, PROG, ["algorithm", "c1", "c2", "max_iterations"],
                     "to --model bilstm (they configure the feature CRF)")
    elif args.algorithm == "lbfgs":
        refuse_given(args, PROG, ["epochs"], "to the crf with L-BFGS (use --max-iterations)")
    else:
        refuse_given(args, PROG, ["max_iterations"], "to the crf with Adam (use --epochs)")


def _paths(args: argparse.Namespace) -> dict[str, Path]:
    from pgm.crf.conllu import ud_ewt_paths

    given_files = {k: getattr(args, k) for k in ("train", "dev", "test")}
    if all(v is None for v in given_files.values()):
        return ud_ewt_paths(args.data)
    if given(args, "data"):
        raise UsageError(PROG, "--data cannot be combined with --train/--dev/--test",
                         fix="give the files, or the treebank folder, not both")
    if given_files["train"] is None or given_files["test"] is None:
        raise UsageError(PROG, "needs --train and --test (--dev optional), or none of them to "
                         "use UD English EWT")
    return {k: Path(v) for k, v in given_files.items() if v is not None}


def run_tag(args: argparse.Namespace) -> int:
    """Run ``probforge tag``."""
    import torch

    from pgm.crf.conllu import read_conllu
    from pgm.crf.metrics import accuracy, classification_report, per_tag_scores

    _check_args(args)
    paths = _paths(args)
    data = {k: read_conllu(p, tag_column=args.column) for k, p in paths.items()}
    train = data["train"][: args.limit] if args.limit else data["train"]
    test = data["test"]
    dev = data.get("dev")
    say = (lambda *a: None) if args.json else print
    say(f"train {len(train)} sentences, test {len(test)}"
        + (f", dev {len(dev)}" if dev else ""))
    t0 = time.perf_counter()
    if args.model == "crf":
        from pgm.crf.features import sent2features
        from pgm.crf.tagger import CRFTagger

        tagger = CRFTagger(algorithm=args.algorithm, c1=args.c1, c2=args.c2,
                           max_iterations=args.max_iterations, epochs=args.epochs or 8,
                           dtype=torch.float32, seed=args.seed)
        tagger.fit([sent2features(s.words) for s in train], [list(s.tags) for s in train],
                   progress=not args.no_progress and not args.json)
        train_s = time.perf_counter() - t0
        pred = tagger.predict([sent2features(s.words) for s in test])
        dev_acc = (accuracy([list(s.tags) for s in dev],
                            tagger.predict([sent2features(s.words) for s in dev]))
                   if dev else None)
        model: Any = tagger
    else:
        from pgm.crf.bilstm import BiLSTMCRF, TokenVocab, train_bilstm_crf
        from probforge.ops.random import make_generator

        words = [list(s.words) for s in train]
        labels = sorted({t for s in train for t in s.tags})
        net = BiLSTMCRF(TokenVocab.build(words), labels, generator=make_generator(args.seed))
        train_bilstm_crf(net, words, [list(s.tags) for s in train],
                         dev=([list(s.words) for s in dev], [list(s.tags) for s in dev])
                         if dev else None, epochs=args.epochs or 8,
                         generator=make_generator(args.seed + 1),
                         progress=not args.no_progress and not args.json,
                         callback=lambda r: say(f"epoch {r['epoch']}: loss {r['loss']:.4f}"
                                                + (f", dev accuracy {r['dev_accuracy']:.4f}"
                                                   if "dev_accuracy" in r else "")))
        train_s = time.perf_counter() - t0
        pred = net.predict([list(s.words) for s in test])
        dev_acc = (accuracy([list(s.tags) for s in dev],
                            net.predict([list(s.words) for s in dev])) if dev else None)
        model = net
    gold = [list(s.tags) for s in test]
    acc = accuracy(gold, pred)
    if args.save:
        model.save(args.save)
    if args.json:
        scores = per_tag_scores(gold, pred)
        print(json.dumps({"model": args.model, "train_sentences": len(train),
                          "train_seconds": train_s, "test_accuracy": acc,
                          "dev_accuracy": dev_acc,
                          "per_tag": {str(k): v._asdict() for k, v in scores.items()}}))
        return 0
    print(f"trained in {train_s:.1f} s")
    if dev_acc is not None:
        print(f"dev accuracy  {dev_acc:.4f}")
    print(f"test accuracy {acc:.4f}\n")
    print(classification_report(gold, pred))
    if args.save:
        print(f"\nmodel written to {args.save}")
    return 0


# ----------------------------------------------------------------------------------------------
# tour


_TOUR_TRAIN = [
    ("the dog runs", "DET NOUN VERB"), ("a cat sleeps", "DET NOUN VERB"),
    ("the big dog sleeps", "DET ADJ NOUN VERB"), ("dogs run fast", "NOUN VERB ADV"),
    ("a small cat runs fast", "DET ADJ NOUN VERB ADV"), ("the cat runs", "DET NOUN VERB"),
    ("big dogs sleep", "ADJ NOUN VERB"), ("the small dog runs", "DET ADJ NOUN VERB"),
]


def _tour(out_dir: Path, seed: int) -> list[str]:
    import torch

    from pgm.crf.constraints import bio_constraints
    from pgm.crf.features import sent2features
    from pgm.crf.linear_chain import LinearChainCRF
    from pgm.crf.tagger import CRFTagger
    from probforge.ops.random import make_generator

    lines: list[str] = []
    words = [w.split() for w, _ in _TOUR_TRAIN]
    tags = [t.split() for _, t in _TOUR_TRAIN]
    tagger = CRFTagger(c2=0.05, max_iterations=60).fit([sent2features(w) for w in words], tags)
    test = "a big cat runs fast".split()
    pred = tagger.predict([sent2features(test)])[0]
    marg = tagger.predict_marginals([sent2features(test)])[0]
    lines.append(f"feature CRF trained on {len(words)} sentences "
                 f"({tagger.num_features} features)")
    lines.append("  " + " ".join(f"{w}/{t}({m[t]:.2f})" for w, t, m in
                                 zip(test, pred, marg, strict=True)))
    path = out_dir / "tagger.pt"
    tagger.save(path)
    lines.append(f"saved to {path.name}; reloaded predicts the same: "
                 f"{CRFTagger.load(path).predict([sent2features(test)])[0] == pred}")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    g = make_generator(seed)
    crf = LinearChainCRF(5, constraints=bio_constraints(labels), init_scale=1.0, generator=g,
                         dtype=torch.float64)
    e = torch.randn(1, 6, 5, generator=g, dtype=torch.float64) * 2
    with torch.no_grad():
        best = crf.kbest(e, 3)
        entropy = float(crf.entropy(e)[0])
        draw = crf.sample(e, generator=g)[0, 0].tolist()
    lines.append("BIO-constrained LinearChainCRF on random emissions: 3 best paths")
    for s, p in zip(best.score[0].tolist(), best.path[0].tolist(), strict=True):
        lines.append(f"  {s:8.3f}  {' '.join(labels[i] for i in p)}")
    lines.append(f"entropy {entropy:.3f} nats; a sample: " + " ".join(labels[i] for i in draw))
    return lines


TOUR_STEPS: list[TourStep] = [
    TourStep("crf", 35, "conditional random fields: a feature CRF tagger and a constrained "
             "linear-chain CRF", _tour),
]
