"""A BiLSTM-CRF part-of-speech tagger on UD English EWT (words, affixes and shapes; no pretrained
embeddings).

The network (:class:`pgm.crf.bilstm.BiLSTMCRF`) embeds each token from its lower-cased word,
prefixes and suffixes of length 1-3 and a coarse shape, runs a bidirectional LSTM over the ragged
batch and puts a :class:`pgm.crf.LinearChainCRF` on top; training maximises the exact sequence
likelihood with Adam, keeping the epoch with the best development accuracy, and decoding is
Viterbi. The script prints the per-epoch loss and development accuracy, then test accuracy and the
per-tag precision / recall / F1.

The treebank is read from ``--data`` (default: ``$PROBFORGE_UD_EWT`` or
``../shared/data/ud-english-ewt``); without it the script says so and exits.

Run ``python examples/bilstm_crf.py`` (full data, 8 epochs: several minutes on 2 CPU cores), or
``--smoke`` for a small slice in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

from pgm.crf import accuracy, classification_report, read_conllu, ud_ewt_paths
from pgm.crf.bilstm import BiLSTMCRF, TokenVocab, train_bilstm_crf
from probforge.errors import DataNotFoundError
from probforge.ops.random import make_generator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small, fast run for CI")
    parser.add_argument("--data", help="directory of en_ewt-ud-*.conllu[.gz]")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 8; smoke 1)")
    parser.add_argument("--hidden", type=int, default=None, help="LSTM size per direction")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--save", help="write the trained model here")
    args = parser.parse_args(argv)
    try:
        paths = ud_ewt_paths(args.data)
    except DataNotFoundError as err:
        print(f"UD English EWT is not available, nothing to do: {err}")
        return 0
    train, dev, test = (read_conllu(paths[k]) for k in ("train", "dev", "test"))
    if args.smoke:
        train, dev, test = train[:200], dev[:100], test[:100]
    epochs = args.epochs if args.epochs is not None else (1 if args.smoke else 8)
    hidden = args.hidden or (32 if args.smoke else 128)
    words = [list(s.words) for s in train]
    labels = sorted({t for s in train for t in s.tags} | {t for s in dev for t in s.tags})
    model = BiLSTMCRF(TokenVocab.build(words), labels, hidden=hidden,
                      word_dim=32 if args.smoke else 100, generator=make_generator(args.seed))
    print(f"UD English EWT: {len(train)} training sentences; {len(model.vocab.words)} words in "
          f"the vocabulary; BiLSTM {hidden} per direction; {epochs} epoch(s)")
    t0 = time.perf_counter()
    train_bilstm_crf(
        model, words, [list(s.tags) for s in train],
        dev=([list(s.words) for s in dev], [list(s.tags) for s in dev]), epochs=epochs,
        generator=make_generator(args.seed + 1), progress=not args.smoke,
        callback=lambda r: print(f"epoch {r['epoch']}: loss {r['loss']:.4f}, dev accuracy "
                                 f"{r['dev_accuracy']:.4f} ({r['seconds']:.1f} s)"))
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    gold = [list(s.tags) for s in test]
    pred = model.predict([list(s.words) for s in test])
    print(f"BiLSTM-CRF test accuracy {accuracy(gold, pred):.4f}\n")
    print(classification_report(gold, pred))
    if args.save:
        model.save(args.save)
        print(f"\nmodel written to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
