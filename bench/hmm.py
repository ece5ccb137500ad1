"""HMM inference and learning: probforge against hmmlearn and pomegranate, in one process.

For categorical (8 symbols) and diagonal-Gaussian (2 features) HMMs with K states, on one long
sequence and on a batch of equal-length sequences, four operations are timed:

- ``forward``: log-likelihood of the data (hmmlearn ``score``, pomegranate
  ``log_probability``, probforge ``log_likelihood``);
- ``fb``: posterior state marginals (hmmlearn ``predict_proba``, pomegranate
  ``forward_backward``, probforge ``posterior``);
- ``viterbi``: the best path (hmmlearn ``decode``, pomegranate ``viterbi``, probforge ``viterbi``);
- ``em``: one Baum-Welch iteration from the same parameters (hmmlearn ``fit`` with ``n_iter=1``,
  ``init_params=""``; pomegranate ``fit`` with ``max_iter=1``; probforge ``baum_welch_step``).

hmmlearn gets the sequences concatenated with ``lengths``; pomegranate and probforge a
``(n, T, ...)`` tensor. Everything runs in float64 on CPU (pomegranate in float32, its default;
probforge is also timed in float32, the ``probforge32`` row and ``pomegranate32`` ratios, the
like-for-like comparison with pomegranate; pomegranate's ``viterbi`` and ``fit`` are reported as
they are; its Gaussian ``viterbi`` is skipped when ``T * K > 50,000``, where it runs for
minutes). probforge's log-likelihood is checked against hmmlearn's (relative 1e-6; a failure
is printed with ``!!!``). Ratios are peer time / probforge time (above 1: probforge faster).
With a CUDA device, probforge is also timed there (``*_cuda`` figures). Times are best-of-N
wall seconds, by one rule for every library: at least N timed calls after a warm-up, and more
for fast calls, until about a second of calls has been timed (at most 25), so a short burst
of load on the two shared cores cannot set a figure by itself; calls over a second get one
timed call after the warm-up. The load average is recorded (other jobs inflate every figure).

Run: python bench/hmm.py [--quick] [--no-pomegranate]
  --quick: K in {4, 16}, one sequence of T = 10,000 and 20 sequences of 500; N = 2
           (about a minute on 2 cores).
  full:    K in {4, 16, 64}, one sequence of T = 100,000 and 100 sequences of 1,000; N = 3
           (several minutes: hmmlearn at K = 64 and pomegranate's Python loop over time dominate).
Last stdout line: one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import load_average
from pgm.hmm import (
    CategoricalEmission,
    GaussianEmission,
    HiddenMarkovModel,
    baum_welch_step,
    log_likelihood,
    posterior,
    viterbi,
)

F64 = torch.float64
OPS = ("forward", "fb", "viterbi", "em")
POM_VITERBI_MAX = 50_000  # T * K above which pomegranate's Gaussian Viterbi is not timed


SPAN = 1.0  # seconds of timed calls to aim for when calls are fast
MAX_REPEAT = 25


def timed(fn: Callable[[], object], repeat: int, slow: float = 1.0) -> float:
    """Best wall time of a warm-up call and at least ``repeat`` more (up to
    :data:`MAX_REPEAT`, as many as fit in :data:`SPAN` seconds); only one more when the
    warm-up took over ``slow`` seconds, and none when it took over 5 s."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > 5.0:
        return first
    n = 1 if first > slow else max(repeat, min(MAX_REPEAT, int(SPAN / max(first, 1e-6))))
    best = first
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_model(family: str, K: int, gen: torch.Generator) -> HiddenMarkovModel:
    init = torch.softmax(torch.randn(K, generator=gen, dtype=F64), -1)
    trans = torch.softmax(torch.randn(K, K, generator=gen, dtype=F64) + 3 * torch.eye(K), -1)
    if family == "categorical":
        em = CategoricalEmission(torch.log_softmax(torch.randn(K, 8, generator=gen, dtype=F64), -1))
    else:
        em = GaussianEmission(torch.randn(K, 2, generator=gen, dtype=F64) * 2,
                              0.5 + torch.rand(K, 2, generator=gen, dtype=F64), "diag")
    return HiddenMarkovModel.from_probs(init, trans, em)


def hmmlearn_model(model: HiddenMarkovModel, family: str):  # type: ignore[no-untyped-def]
    from hmmlearn import hmm as hl

    K = model.n_states
    if family == "categorical":
        m = hl.CategoricalHMM(K, init_params="", params="ste", n_iter=1, implementation="log")
        m.emissionprob_ = model.emission.log_probs.exp().numpy()
        m.n_features = m.emissionprob_.shape[1]
    else:
        m = hl.GaussianHMM(K, covariance_type="diag", init_params="", params="stmc", n_iter=1,
                           implementation="log")
        m.means_ = model.emission.means.numpy()
        m.covars_ = model.emission.covars.numpy()
    m.startprob_ = model.initial_probs.numpy()
    m.transmat_ = model.transition_probs.numpy()
    return m


def pomegranate_model(model: HiddenMarkovModel, family: str):  # type: ignore[no-untyped-def]
    from pomegranate.distributions import Categorical, Normal
    from pomegranate.hmm import DenseHMM

    K = model.n_states
    if family == "categorical":
        probs = model.emission.log_probs.exp().float()
        dists = [Categorical(probs=probs[k : k + 1]) for k in range(K)]
    else:
        em = model.emission
        dists = [Normal(means=em.means[k].float(), covs=em.covars[k].float(),
                        covariance_type="diag") for k in range(K)]
    return DenseHMM(dists, edges=model.transition_probs.float(),
                    starts=model.initial_probs.float(), max_iter=1, verbose=False)


def probforge_ops(model: HiddenMarkovModel, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The four timed operations of probforge on ``model`` and ``x``."""
    return {
        "forward": lambda: log_likelihood(model, x),
        "fb": lambda: posterior(model, x),
        "viterbi": lambda: viterbi(model, x),
        "em": lambda: baum_welch_step(model, x),
    }


def bench_config(family: str, K: int, n: int, T: int, repeat: int, use_pom: bool,
                 seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    model = make_model(family, K, gen)
    x = model.sample(T, n_sequences=n, generator=gen).observations
    fig: dict = {"family": family, "K": K, "n_sequences": n, "T": T}
    # probforge
    ours = probforge_ops(model, x)
    for op, fn in ours.items():
        fig[f"probforge_{op}_s"] = timed(fn, repeat)
    # float32, pomegranate's dtype: the like-for-like comparison with it
    m32 = model.to(torch.float32)
    x32 = x.float() if family != "categorical" else x
    for op, fn in probforge_ops(m32, x32).items():
        fig[f"probforge32_{op}_s"] = timed(fn, repeat)
    if torch.cuda.is_available():
        mc, xc = model.to(device="cuda"), x.cuda()
        for op, fn in probforge_ops(mc, xc).items():
            def sync(fn: Callable[[], object] = fn) -> None:
                fn()
                torch.cuda.synchronize()
            fig[f"probforge_{op}_cuda_s"] = timed(sync, repeat)
    # hmmlearn
    try:
        ref = hmmlearn_model(model, family)
        X = x.reshape(n * T, -1).numpy()
        if family == "categorical":
            X = X.astype(np.int64)
        lengths = [T] * n

        def hl_em() -> None:
            m = hmmlearn_model(model, family)
            m.fit(X, lengths)

        peer = {
            "forward": lambda: ref.score(X, lengths),
            "fb": lambda: ref.predict_proba(X, lengths),
            "viterbi": lambda: ref.decode(X, lengths),
            "em": hl_em,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for op, fn in peer.items():
                fig[f"hmmlearn_{op}_s"] = timed(fn, repeat)
                fig[f"ratio_hmmlearn_{op}"] = fig[f"hmmlearn_{op}_s"] / fig[f"probforge_{op}_s"]
            want = float(ref.score(X, lengths))
        got = float(log_likelihood(model, x).sum())
        rel = abs(got - want) / abs(want)
        fig["loglik_rel_diff_vs_hmmlearn"] = rel
        if not rel <= 1e-6:
            print(f"  !!! {family} K={K}: log-likelihood differs from hmmlearn by {rel:.2e}")
    except ImportError as err:
        fig["hmmlearn"] = f"not installed ({err})"
    # pomegranate
    if use_pom:
        try:
            pom = pomegranate_model(model, family)
            xp = x.float() if family != "categorical" else x[..., None]

            def pom_em() -> None:
                m = pomegranate_model(model, family)
                m.fit(xp)

            peer = {
                "forward": lambda: pom.log_probability(xp),
                "fb": lambda: pom.forward_backward(xp),
                "viterbi": lambda: pom.viterbi(xp),
                "em": pom_em,
            }
            for op, fn in peer.items():
                if op == "viterbi" and family == "gaussian" and T * K > POM_VITERBI_MAX:
                    # pomegranate 1.x's Gaussian Viterbi takes ~80 s at K = 16, T = 10,000
                    fig["pomegranate_viterbi_s"] = "skipped (too slow)"
                    continue
                # the same rule as probforge and hmmlearn (its single calls vary by 2x)
                fig[f"pomegranate_{op}_s"] = timed(fn, repeat)
                fig[f"ratio_pomegranate_{op}"] = (fig[f"pomegranate_{op}_s"]
                                                  / fig[f"probforge_{op}_s"])
                fig[f"ratio_pomegranate32_{op}"] = (fig[f"pomegranate_{op}_s"]
                                                    / fig[f"probforge32_{op}_s"])
        except ImportError as err:
            fig["pomegranate"] = f"not installed ({err})"
    return fig


def _fmt(v: object) -> str:
    return f"{v:8.4f}" if isinstance(v, float) else f"{'-':>8s}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-pomegranate", action="store_true")
    args = ap.parse_args()
    if args.quick:
        ks, shapes, repeat = (4, 16), ((1, 10_000), (20, 500)), 2
    else:
        ks, shapes, repeat = (4, 16, 64), ((1, 100_000), (100, 1_000)), 3
    figures: dict = {"mode": "quick" if args.quick else "full", "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "load_avg_1m_start": load_average(),
                     "cuda": torch.cuda.is_available(), "configs": []}
    print(f"HMM bench ({figures['mode']}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {figures['load_avg_1m_start']:.2f}")
    header = "  ".join(f"{op:>8s}" for op in OPS)
    for family in ("categorical", "gaussian"):
        for K in ks:
            for n, T in shapes:
                fig = bench_config(family, K, n, T, repeat, not args.no_pomegranate,
                                   seed=1000 * K + n)
                figures["configs"].append(fig)
                print(f"\n{family} K={K} {n}x{T}   {header}")
                for who in ("probforge", "probforge32", "hmmlearn", "pomegranate"):
                    row = "  ".join(_fmt(fig.get(f"{who}_{op}_s")) for op in OPS)
                    print(f"  {who:12s} s  {row}")
                for who in ("hmmlearn", "pomegranate", "pomegranate32"):
                    row = "  ".join(_fmt(fig.get(f"ratio_{who}_{op}")) for op in OPS)
                    print(f"  x vs {who:11s} {row}")
                if figures["cuda"]:
                    row = "  ".join(_fmt(fig.get(f"probforge_{op}_cuda_s")) for op in OPS)
                    print(f"  {'cuda':12s} s  {row}")
    figures["load_avg_1m_end"] = load_average()
    ratios = [c.get(f"ratio_hmmlearn_{op}") for c in figures["configs"] for op in OPS]
    ratios = [r for r in ratios if isinstance(r, float) and r > 0]
    if ratios:
        figures["geomean_ratio_hmmlearn"] = math.exp(sum(math.log(r) for r in ratios)
                                                     / len(ratios))
    print(f"\nload average (1 min): {figures['load_avg_1m_start']:.2f} at start, "
          f"{figures['load_avg_1m_end']:.2f} at end; pid {os.getpid()}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
