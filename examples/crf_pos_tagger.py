"""Part-of-speech tagging of UD English EWT with a feature CRF, side by side with sklearn-crfsuite.

Both taggers get exactly the same per-token feature dicts (:func:`pgm.crf.features.sent2features`:
lower-cased word, prefixes / suffixes, shape, case and digit flags, words within two positions,
BOS / EOS) and the same objective (summed NLL + c1 |w|_1 + c2 |w|^2, L-BFGS). The script prints
training time, test UPOS accuracy of both, and probforge's per-tag precision / recall / F1.

The treebank is read from ``--data`` (default: ``$PROBFORGE_UD_EWT`` or
``../shared/data/ud-english-ewt``); it is never copied into the repository. Without it the script
says so and exits.

Run ``python examples/crf_pos_tagger.py`` (full data, 100 L-BFGS iterations: a few minutes), or
``--smoke`` for a small slice in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from pgm.crf import (
    CRFTagger,
    accuracy,
    classification_report,
    read_conllu,
    sent2features,
    ud_ewt_paths,
)
from probforge.errors import DataNotFoundError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small, fast run for CI")
    parser.add_argument("--data", help="directory of en_ewt-ud-*.conllu[.gz]")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="L-BFGS iterations (default 100; smoke 10)")
    parser.add_argument("--c1", type=float, default=0.0, help="L1 coefficient (default 0)")
    parser.add_argument("--c2", type=float, default=0.1, help="L2 coefficient (default 0.1)")
    parser.add_argument("--no-peer", action="store_true", help="skip sklearn-crfsuite")
    args = parser.parse_args(argv)
    try:
        paths = ud_ewt_paths(args.data)
    except DataNotFoundError as err:
        print(f"UD English EWT is not available, nothing to do: {err}")
        return 0
    train, test = read_conllu(paths["train"]), read_conllu(paths["test"])
    iters = args.max_iterations or (10 if args.smoke else 100)
    if args.smoke:
        train, test = train[:150], test[:100]
    x_train = [sent2features(s.words) for s in train]
    y_train = [list(s.tags) for s in train]
    x_test = [sent2features(s.words) for s in test]
    y_test = [list(s.tags) for s in test]
    print(f"UD English EWT: {len(train)} training sentences, {len(test)} test sentences, "
          f"{sum(len(s) for s in y_train)} training tokens; {iters} L-BFGS iterations, "
          f"c1={args.c1}, c2={args.c2}")

    t0 = time.perf_counter()
    tagger = CRFTagger(c1=args.c1, c2=args.c2, max_iterations=iters, dtype=torch.float32)
    tagger.fit(x_train, y_train, progress=not args.smoke)
    ours_s = time.perf_counter() - t0
    pred = tagger.predict(x_test)
    ours_acc = accuracy(y_test, pred)
    print(f"probforge CRFTagger:  accuracy {ours_acc:.4f}  trained in {ours_s:.1f} s "
          f"({tagger.num_features} features)")

    if not args.no_peer:
        try:
            import sklearn_crfsuite
        except ImportError:
            print("sklearn-crfsuite is not installed; no side-by-side figure")
        else:
            t0 = time.perf_counter()
            ref = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=args.c1, c2=args.c2,
                                       max_iterations=iters, all_possible_transitions=True)
            ref.fit(x_train, y_train)
            ref_s = time.perf_counter() - t0
            ref_acc = accuracy(y_test, ref.predict(x_test))
            print(f"sklearn-crfsuite:     accuracy {ref_acc:.4f}  trained in {ref_s:.1f} s")
    print()
    print(classification_report(y_test, pred))
    return 0


if __name__ == "__main__":
    sys.exit(main())
