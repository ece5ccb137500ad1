"""Linear-chain CRFs: probforge against pytorch-crf (layer) and sklearn-crfsuite (feature CRF).

What is compared, in one process:

1. Layer (float32, CPU, batch 64, T in {50, 200}, K in {10, 20, 50}, every sequence full length,
   pytorch-crf's default initialisation copied into ours with ``LinearChainCRF.from_torchcrf``):
   - ``nll``: negative log-likelihood summed over the batch, forward + backward (gradients of the
     emissions and of the CRF parameters): pytorch-crf ``-crf(emissions, tags, mask)`` against
     ``LinearChainCRF.nll(..., reduction="sum")``;
   - ``viterbi``: decoding the batch: pytorch-crf ``decode`` (lists) against ``decode`` (a
     padded tensor) under ``torch.no_grad()``.
   Figures are best-of-N wall seconds (bench/_timing.best_time); ratios are pytorch-crf / ours
   (above 1: probforge faster). Agreement is checked on every shape: |NLL difference| relative to
   the NLL and the fraction of identical decoded paths.
2. Feature CRF on UD English EWT (skipped when the treebank is absent): the same per-token
   feature dicts (``pgm.crf.features.sent2features``) and the same objective (summed NLL +
   c2 ||w||^2, c2 = 0.1, L-BFGS) for ``CRFTagger`` (float32) and ``sklearn_crfsuite.CRF``; training
   wall time (feature encoding included on both sides), test UPOS accuracy and
   ``train_time_ratio`` = ours / sklearn-crfsuite (below 1: probforge faster). In full mode both
   run 100 iterations on the whole training set, and ours also reports ``seconds_to_goal``: the
   training time (evaluation excluded) after which test accuracy first reached the 93.5% goal,
   checked every 10 iterations. ``--quick`` uses 1,000 training sentences, 500 test sentences
   and 30 iterations (a ratio only, no accuracy goal).

Threads: ``torch.set_num_threads(--threads)``, default 2 (the target machine's cores). The
1-minute load average is recorded at the start and end: on a busy 2-core machine every figure is
fragile. Last stdout line: one JSON object with all figures.

Run: python bench/crf.py [--quick] [--threads N] [--data DIR] [--skip-ewt]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
_spec = importlib.util.spec_from_file_location("_timing", _HERE / "_timing.py")
assert _spec is not None and _spec.loader is not None
_timing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_timing)
best_time = _timing.best_time
load_average = _timing.load_average

from pgm.crf import (  # noqa: E402
    CRFTagger,
    LinearChainCRF,
    accuracy,
    read_conllu,
    sent2features,
    ud_ewt_paths,
)
from probforge.errors import DataNotFoundError  # noqa: E402

BATCH = 64
SHAPES = [(t, k) for t in (50, 200) for k in (10, 20, 50)]
GOAL = 0.935


def _nll_step(crf: Any, e: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
              peer: bool) -> None:
    """One forward + backward of the summed NLL (emission and parameter gradients)."""
    crf.zero_grad(set_to_none=True)
    e.grad = None
    loss = -crf(e, tags, mask) if peer else crf.nll(e, tags, mask, reduction="sum")
    torch.autograd.backward(loss)


def _decode(crf: Any, e: torch.Tensor, mask: torch.Tensor) -> None:
    """Viterbi decoding of the batch (pytorch-crf: lists; ours: a padded tensor)."""
    with torch.no_grad():
        crf.decode(e, mask)


def layer_section(repeat: int, min_time: float) -> dict[str, Any]:
    try:
        import torchcrf
    except ImportError:
        print("pytorch-crf (torchcrf) is not installed: layer figures are probforge-only")
        torchcrf = None
    out: dict[str, Any] = {}
    print(f"\n1. layer: batch {BATCH}, float32, forward+backward NLL and Viterbi "
          f"(ratios pytorch-crf / probforge; above 1: probforge faster)")
    for t, k in SHAPES:
        g = torch.Generator().manual_seed(1000 * t + k)
        emissions = torch.randn(BATCH, t, k, generator=g)
        tags = torch.randint(0, k, (BATCH, t), generator=g)
        mask = torch.ones(BATCH, t, dtype=torch.bool)
        torch.manual_seed(t * k)
        ref = torchcrf.CRF(k, batch_first=True) if torchcrf is not None else None
        ours = LinearChainCRF.from_torchcrf(ref) if ref is not None else LinearChainCRF(k)
        e1 = emissions.clone().requires_grad_(True)
        e2 = emissions.clone().requires_grad_(True)
        fig: dict[str, Any] = {
            "ours_nll_s": best_time(partial(_nll_step, ours, e2, tags, mask, False),
                                    repeat, min_time),
            "ours_viterbi_s": best_time(partial(_decode, ours, emissions, mask),
                                        repeat, min_time),
        }
        if ref is not None:
            fig["torchcrf_nll_s"] = best_time(partial(_nll_step, ref, e1, tags, mask, True),
                                              repeat, min_time)
            fig["torchcrf_viterbi_s"] = best_time(partial(_decode, ref, emissions, mask),
                                                  repeat, min_time)
            fig["nll_ratio"] = fig["torchcrf_nll_s"] / fig["ours_nll_s"]
            fig["viterbi_ratio"] = fig["torchcrf_viterbi_s"] / fig["ours_viterbi_s"]
            with torch.no_grad():
                a = float(-ref(emissions, tags, mask))
                b = float(ours.nll(emissions, tags, mask, reduction="sum"))
                fig["nll_rel_diff"] = abs(a - b) / abs(a)
                same = [x == y for x, y in zip(ref.decode(emissions, mask),
                                               ours.decode_lists(emissions, mask), strict=True)]
                fig["same_paths"] = sum(same) / len(same)
            print(f"  T={t:3d} K={k:2d}  NLL f+b: pytorch-crf {fig['torchcrf_nll_s'] * 1e3:8.2f} "
                  f"ms, probforge {fig['ours_nll_s'] * 1e3:8.2f} ms ({fig['nll_ratio']:5.2f}x) | "
                  f"Viterbi: {fig['torchcrf_viterbi_s'] * 1e3:8.2f} ms vs "
                  f"{fig['ours_viterbi_s'] * 1e3:8.2f} ms ({fig['viterbi_ratio']:5.2f}x) | "
                  f"rel NLL diff {fig['nll_rel_diff']:.1e}, same paths {fig['same_paths']:.0%}",
                  flush=True)
        else:
            print(f"  T={t:3d} K={k:2d}  NLL f+b {fig['ours_nll_s'] * 1e3:.2f} ms, Viterbi "
                  f"{fig['ours_viterbi_s'] * 1e3:.2f} ms", flush=True)
        out[f"T{t}_K{k}"] = fig
    return out


def ewt_section(quick: bool, data: str | None) -> dict[str, Any] | None:
    try:
        paths = ud_ewt_paths(data)
    except DataNotFoundError as err:
        print(f"\n2. feature CRF on UD EWT: skipped ({err})")
        return None
    train, test = read_conllu(paths["train"]), read_conllu(paths["test"])
    iters = 30 if quick else 100
    if quick:
        train, test = train[:1000], test[:500]
    y_train = [list(s.tags) for s in train]
    y_test = [list(s.tags) for s in test]
    print(f"\n2. feature CRF on UD EWT: {len(train)} training / {len(test)} test sentences, "
          f"{iters} L-BFGS iterations, c2 = 0.1 (same features and objective on both sides)")
    fig: dict[str, Any] = {"train_sentences": len(train), "test_sentences": len(test),
                           "iterations": iters, "goal": GOAL}
    x_test = [sent2features(s.words) for s in test]

    # probforge (feature extraction + encoding inside the timing, as for crfsuite)
    checkpoints: list[tuple[int, float, float]] = []  # (iteration, train seconds, accuracy)
    eval_s = 0.0
    tagger: CRFTagger | None = None

    def on_iter(info: dict[str, Any]) -> None:
        nonlocal eval_s
        if quick or info["iteration"] % 10:
            return
        t0 = time.perf_counter()
        assert tagger is not None
        # the weights are in place after each accepted L-BFGS step
        acc = accuracy(y_test, tagger.predict(x_test))
        eval_s += time.perf_counter() - t0
        checkpoints.append((info["iteration"], info["seconds"] - eval_s, acc))

    t0 = time.perf_counter()
    tagger = CRFTagger(c2=0.1, max_iterations=iters, dtype=torch.float32)
    tagger.fit([sent2features(s.words) for s in train], y_train, callback=on_iter)
    ours_s = time.perf_counter() - t0 - eval_s
    ours_acc = accuracy(y_test, tagger.predict(x_test))
    fig["ours_train_s"] = ours_s
    fig["ours_accuracy"] = ours_acc
    fig["ours_features"] = tagger.num_features
    if not quick:
        fig["ours_checkpoints"] = checkpoints
        reached = [s for _, s, a in checkpoints if a >= GOAL]
        fig["ours_seconds_to_goal"] = reached[0] if reached else None
    print(f"  probforge CRFTagger:  {ours_s:7.1f} s, accuracy {ours_acc:.4f}", flush=True)
    try:
        import sklearn_crfsuite
    except ImportError:
        print("  sklearn-crfsuite is not installed: no ratio")
        return fig
    t0 = time.perf_counter()
    ref = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.0, c2=0.1, max_iterations=iters,
                               all_possible_transitions=True)
    ref.fit([sent2features(s.words) for s in train], y_train)
    ref_s = time.perf_counter() - t0
    ref_acc = accuracy(y_test, ref.predict(x_test))
    fig["crfsuite_train_s"] = ref_s
    fig["crfsuite_accuracy"] = ref_acc
    fig["train_time_ratio"] = ours_s / ref_s
    print(f"  sklearn-crfsuite:     {ref_s:7.1f} s, accuracy {ref_acc:.4f}  "
          f"(time ratio ours/crfsuite {ours_s / ref_s:.2f})", flush=True)
    if not quick:
        fig["ours_meets_goal"] = ours_acc >= GOAL
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 2 minutes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--data", help="UD English EWT directory")
    parser.add_argument("--skip-ewt", action="store_true", help="layer figures only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    figures: dict[str, Any] = {"bench": "crf", "quick": args.quick, "threads": args.threads,
                               "torch": torch.__version__, "load_avg_1m_start": load_average()}
    t0 = time.perf_counter()
    repeat, min_time = (3, 0.05) if args.quick else (5, 0.2)
    figures["layer"] = layer_section(repeat, min_time)
    ratios = [v for f in figures["layer"].values() for k, v in f.items() if k.endswith("ratio")]
    if ratios:
        figures["min_layer_ratio"] = min(ratios)
    figures["ewt"] = None if args.skip_ewt else ewt_section(args.quick, args.data)
    figures["load_avg_1m_end"] = load_average()
    figures["seconds"] = time.perf_counter() - t0
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
