"""RBMs against scikit-learn's BernoulliRBM: epoch time and AIS test log-likelihood.

What is measured (one process, CPU, scikit-learn in the same run):

1. **Epoch time** on binarised digits (1,497 x 64, ``generative.data.load("digits",
   binarize="fixed")`` flattened) and binarised Fashion-MNIST (60,000 x 784, threshold 0.5), with
   64 / 256 / 500 hidden units and batch size 100 for both libraries. Ours: one call of
   ``generative.energy.contrastive.train_rbm(rbm, x, method=..., epochs=1, batch_size=100,
   lr=0.05, momentum=0, weight_decay=0)`` on float32 tensors, CD-1 and PCD (100 persistent
   chains): what a user calls, with its data check, shuffling and end-of-epoch reconstruction
   error included. scikit-learn: ``BernoulliRBM(n_components=M, batch_size=100, n_iter=1,
   learning_rate=0.05).fit(X)`` on the same data as a float64 NumPy array (the same plain-SGD
   update; scikit-learn has PCD only, so both our epochs are compared with its epoch). After one
   warm-up call each (on 1,000 rows for Fashion-MNIST), rounds interleave the three so that a
   burst of load hits all alike, and each keeps its best round: digits 5 rounds of at least
   50 ms, Fashion-MNIST 3 rounds of one full epoch. ``ratio = sklearn / ours`` (goal >= 3).
2. **Test log-likelihood** (nats per image) on binarised Fashion-MNIST (train 60,000, test
   10,000) and on digits (train 1,497, test 300), all models with 64 hidden units, trained with
   batch size 100: our PCD, CD-1 and CD-10 RBMs (``train_rbm``, lr 0.05, momentum 0.5, weight
   decay 1e-4, the same number of epochs), scikit-learn's BernoulliRBM (PCD, learning rate 0.1,
   i.e. our step size ``lr / (1 - momentum)``) given as many epochs as fit into our PCD model's
   training time (at least one; time-matched), converted with
   ``generative.energy.sklearn_rbm.from_sklearn``, and a mixture of 64 multivariate Bernoullis
   (``pgm.learning.fit_bernoulli_mixture``, Beta(2, 2) prior, initialised at 64 random
   training images shrunk towards 0.5; about the RBMs' number of parameters) whose test
   log-likelihood is exact. Every RBM's ``log Z`` is estimated by the same forward AIS
   (``ais_log_partition``: base-rate model from the training data, 100 chains, Salakhutdinov &
   Murray's 14,500 temperatures), and the figure is ``mean(-F(v_test)) - log Z_hat`` +-
   the AIS standard error. For our PCD model two checks follow: reverse AIS from the persistent
   chains after 1,000 more Gibbs steps (approximate samples, so an approximate stochastic upper
   bound on ``log Z``; the forward estimate is a stochastic lower bound) and RAISE on the first
   50 test images (10 chains, 2,000 temperatures; a conservative per-image estimate that needs
   no ``log Z``), next to the AIS figure on the same images. The table's AIS ESS is the
   effective number of AIS chains (of 100): when it is a few, one chain dominates ``log Z_hat``
   and its standard error is not reliable. Goal: ours (PCD) at least as high
   as scikit-learn's on Fashion-MNIST (on digits when Fashion-MNIST is not installed).

Threads: ``torch.set_num_threads(T)`` and NumPy's BLAS limited to ``T`` threads with
threadpoolctl; ``T = --threads`` (default 2: the machine's 2 cores) for the timing part and
``--quality-threads`` (default 1) for the quality part, whose 64-unit models are too small to
gain from a second thread, and where both libraries on one thread keep the time-matching fair
when other processes share the cores. The 1-minute load average is recorded at the start and
the end: on the shared 2-core machine the timings are fragile. With two torch threads and
other processes busy on both cores, our digits epochs were seen to take 1.3 s instead of 10 ms
(torch's threads waiting for each other), while scikit-learn's stayed near 15 ms; re-run on
idle cores before drawing conclusions.

Run: python bench/rbm.py [--quick] [--threads 2] [--quality-threads 1] [--part all|timing|quality]
  --quick: Fashion-MNIST timing on its first 6,000 rows; quality trained on 6,000
           rows for 3 epochs, digits 30 epochs, test on 1,000 (digits 300) images, AIS with
           500 temperatures, RAISE on 20 images (5 chains, 300 temperatures), mixture EM at
           most 30 iterations. About 2 minutes on 2 cores.
  full:    as described above; Fashion-MNIST models 10 epochs, digits 200 epochs, mixture EM
           at most 100 iterations. About 10-15 minutes on 2 cores.
Fashion-MNIST figures are null when it is not installed; scikit-learn figures are null without
scikit-learn. Last stdout line: one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import load_average
from generative.data import load
from generative.energy.contrastive import train_rbm
from generative.energy.partition import (
    ais_log_partition,
    log_likelihood_estimate,
    raise_log_likelihood,
    reverse_ais_log_partition,
)
from generative.energy.rbm import BernoulliRBM
from generative.energy.sklearn_rbm import from_sklearn
from pgm.learning.bernoulli_mixture import BernoulliMixture, fit_bernoulli_mixture
from probforge.errors import DataNotFoundError, MissingDependencyError
from probforge.ops.random import make_generator

BATCH = 100
#: Plain SGD for the timing runs (scikit-learn's update): same rate, no momentum or decay.
TIME_LR = 0.05
#: Hidden units of the quality comparison.
QUALITY_HIDDEN = 64
#: Our training options in the quality comparison (train_rbm's defaults).
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.5, 1e-4
#: CD-k's k in the quality comparison.
CD_K = 10


def _sklearn() -> Any:
    """scikit-learn's BernoulliRBM class, or None when scikit-learn is missing."""
    try:
        from sklearn.neural_network import BernoulliRBM as SkBernoulliRBM
    except ImportError:
        return None
    return SkBernoulliRBM


@contextlib.contextmanager
def _blas_threads(n: int) -> Iterator[None]:
    """Limit NumPy's (and any other loaded) BLAS to ``n`` threads, when threadpoolctl exists."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n):
        yield


def _flat(name: str, split: str, n: int | None = None) -> Tensor | None:
    try:
        ds = load(name, split, n=n, binarize="fixed")
    except (DataNotFoundError, MissingDependencyError) as err:
        print(f"  {name} {split}: skipped ({err})")
        return None
    return ds.x.flatten(1).contiguous()


# ---------------------------------------------------------------------------- 1. timing
def _seconds_per_call(fn: Callable[[], object], min_time: float) -> float:
    """Mean wall time of ``fn`` over as many calls as fill ``min_time`` (at least one)."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1e3 * seconds


def _epoch_times(x: Tensor, m: int, big: bool, repeat: int) -> dict[str, float | None]:
    """Best seconds per epoch of our CD-1 and PCD and of scikit-learn, on ``x``.

    The rounds interleave the three (ours CD-1, ours PCD, scikit-learn, then again), so a
    burst of load on the shared machine hits all of them alike; each takes its best round.
    Every function is warmed up once first (on 1,000 rows for Fashion-MNIST).
    """
    d = x.shape[1]
    fns: dict[str, Callable[[Any], object]] = {}
    for method in ("cd", "pcd"):
        rbm = BernoulliRBM(d, m, generator=make_generator(0))
        g = make_generator(1)

        def ours(rows: Tensor, rbm: BernoulliRBM = rbm, method: str = method,
                 g: torch.Generator = g) -> None:
            train_rbm(rbm, rows, method=method, k=1, epochs=1, batch_size=BATCH, lr=TIME_LR,
                      momentum=0.0, weight_decay=0.0, generator=g)

        fns[method] = ours
    data: dict[str, Any] = {"cd": x, "pcd": x}
    sk_cls = _sklearn()
    if sk_cls is not None:
        data["sklearn"] = x.double().numpy()

        def theirs(rows: Any) -> None:
            sk_cls(n_components=m, batch_size=BATCH, n_iter=1, learning_rate=TIME_LR,
                   random_state=0).fit(rows)

        fns["sklearn"] = theirs
    for name, fn in fns.items():
        fn(data[name][:1000] if big else data[name])
    best = dict.fromkeys(fns, math.inf)
    # Fashion-MNIST: one epoch per round; digits: each round loops for 50 ms
    min_time = 0.0 if big else 0.05
    for _ in range(repeat):
        for name, fn in fns.items():
            secs = _seconds_per_call(functools.partial(fn, data[name]), min_time)
            best[name] = min(best[name], secs)
    return {"cd": best["cd"], "pcd": best["pcd"], "sklearn": best.get("sklearn")}


def timing(quick: bool) -> dict[str, Any]:
    print("1. Epoch time, batch size 100 (ms per epoch; ratio = sklearn / ours, goal >= 3)")
    print(f"{'data':>14} {'rows':>6} {'D':>4} {'M':>4} {'CD-1':>9} {'PCD':>9} {'sklearn':>9}"
          f" {'sk/CD-1':>8} {'sk/PCD':>7}")
    out: dict[str, Any] = {}
    fashion_rows = 6000 if quick else None
    sets = (("digits", _flat("digits", "train"), False),
            ("fashion", _flat("fashion-mnist", "train", fashion_rows), True))
    ratios: list[float] = []
    for key, x, big in sets:
        for m in (64, 256, 500):
            tag = f"{key}_h{m}"
            if x is None:
                out.update({f"time_{tag}_{s}_ms": None for s in ("cd1", "pcd", "sklearn")})
                out.update({f"ratio_{tag}_{s}": None for s in ("cd1", "pcd")})
                continue
            t = _epoch_times(x, m, big, 3 if big else 5)
            ms = {s: _ms(t[k]) for s, k in (("cd1", "cd"), ("pcd", "pcd"),
                                             ("sklearn", "sklearn"))}
            rat: dict[str, float | None] = {}
            for s in ("cd1", "pcd"):
                sk, ours = ms["sklearn"], ms[s]
                rat[s] = None if sk is None or ours is None else sk / ours
                if rat[s] is not None:
                    ratios.append(rat[s])  # type: ignore[arg-type]
            out.update({f"time_{tag}_{s}_ms": v for s, v in ms.items()})
            out.update({f"ratio_{tag}_{s}": v for s, v in rat.items()})

            def fmt(v: float | None, spec: str) -> str:
                return "n/a" if v is None else format(v, spec)

            print(f"{('fashion-mnist' if key == 'fashion' else key):>14} {x.shape[0]:>6} "
                  f"{x.shape[1]:>4} {m:>4} {fmt(ms['cd1'], '9.1f')} {fmt(ms['pcd'], '9.1f')} "
                  f"{fmt(ms['sklearn'], '9.1f'):>9} {fmt(rat['cd1'], '8.2f'):>8} "
                  f"{fmt(rat['pcd'], '7.2f'):>7}")
        out[f"time_{key}_rows"] = None if x is None else x.shape[0]
    out["ratio_min"] = min(ratios) if ratios else None
    out["ratio_goal_met"] = None if not ratios else min(ratios) >= 3.0
    return out


# ---------------------------------------------------------------------------- 2. quality
def _mixture_ll(train: Tensor, test: Tensor, k: int, max_iter: int, seed: int) -> tuple[
        float, float, float]:
    """Exact mean test log-likelihood of a Bernoulli mixture, its data SE and the fit seconds.

    Initialised at ``k`` random training rows shrunk towards 0.5 (cheaper than the library's
    k-means start on 60,000 x 784 rows, and as good here).
    """
    g = make_generator(seed)
    rows = train[torch.randperm(train.shape[0], generator=g)[:k]]
    init = BernoulliMixture(torch.full((k,), 1.0 / k, dtype=train.dtype), rows * 0.8 + 0.1)
    t0 = time.perf_counter()
    res = fit_bernoulli_mixture(train, k, init=init, beta_prior=(2.0, 2.0), max_iter=max_iter,
                                generator=g)
    secs = time.perf_counter() - t0
    ll = res.model.log_prob(test).double()
    return float(ll.mean()), float(ll.std() / math.sqrt(ll.shape[0])), secs


def _ais_ll(rbm: BernoulliRBM, train: Tensor, test: Tensor, chains: int, temps: int,
            seed: int) -> tuple[Any, Any]:
    est = ais_log_partition(rbm, data=train, num_chains=chains, num_temperatures=temps,
                            generator=make_generator(seed))
    return est, log_likelihood_estimate(rbm, test, est)


def quality(name: str, train: Tensor, test: Tensor, epochs: int, settings: dict[str, int],
            ) -> dict[str, Any]:
    """Train and evaluate every model on one data set; figures keyed ``ll_<name>_<model>``."""
    m = QUALITY_HIDDEN
    d = train.shape[1]
    chains, temps = settings["ais_chains"], settings["ais_temperatures"]
    key = "fashion" if name == "fashion-mnist" else name
    out: dict[str, Any] = {f"quality_{key}_train_rows": train.shape[0],
                           f"quality_{key}_test_rows": test.shape[0],
                           f"quality_{key}_epochs": epochs}
    print(f"\n2. {name}: {m} hidden units, train {train.shape[0]} x {d}, test {test.shape[0]}; "
          f"AIS {chains} chains x {temps} temperatures (mean test log-likelihood, nats per "
          "image, +- AIS standard error)")
    print(f"{'model':>34} {'epochs':>6} {'train s':>8} {'log Z':>10} {'test LL':>18} "
          f"{'AIS ESS':>8}")
    rows: list[tuple[str, str, int, float, BernoulliRBM]] = []
    pcd_chains: Tensor | None = None
    for label, tag, method, k in (("PCD (ours)", "pcd", "pcd", 1),
                                  ("CD-1 (ours)", "cd1", "cd", 1),
                                  (f"CD-{CD_K} (ours)", f"cd{CD_K}", "cd", CD_K)):
        rbm = BernoulliRBM(d, m, generator=make_generator(0))
        t0 = time.perf_counter()
        res = train_rbm(rbm, train, method=method, k=k, epochs=epochs, batch_size=BATCH, lr=LR,
                        momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, generator=make_generator(1))
        secs = time.perf_counter() - t0
        if method == "pcd":
            pcd_chains = res.chains
        rows.append((label, tag, epochs, secs, rbm))
    sk_cls = _sklearn()
    if sk_cls is not None:
        xn = train.double().numpy()
        budget = rows[0][3]
        t0 = time.perf_counter()
        sk_cls(n_components=m, batch_size=BATCH, n_iter=1, learning_rate=LR / (1 - MOMENTUM),
               random_state=0).fit(xn)
        one = time.perf_counter() - t0
        sk_epochs = max(1, round(budget / one))
        t0 = time.perf_counter()
        sk = sk_cls(n_components=m, batch_size=BATCH, n_iter=sk_epochs,
                    learning_rate=LR / (1 - MOMENTUM), random_state=0).fit(xn)
        secs = time.perf_counter() - t0
        rows.append(("sklearn BernoulliRBM (time-matched)", "sklearn", sk_epochs, secs,
                     from_sklearn(sk, dtype=train.dtype)))
    else:
        print(f"{'sklearn BernoulliRBM':>34} skipped (scikit-learn is not installed)")
        out.update({f"ll_{key}_sklearn": None, f"ll_{key}_sklearn_se": None})
    for label, tag, ep, secs, rbm in rows:
        est, ll = _ais_ll(rbm, train, test, chains, temps, seed=2)
        print(f"{label:>34} {ep:>6} {secs:>8.1f} {est.log_z:>10.2f} "
              f"{ll.mean:>10.2f} +- {ll.se:<5.2f} {est.ess:>8.1f}")
        out.update({f"ll_{key}_{tag}": ll.mean, f"ll_{key}_{tag}_se": ll.se,
                    f"ll_{key}_{tag}_data_se": ll.data_se, f"log_z_{key}_{tag}": est.log_z,
                    f"train_s_{key}_{tag}": secs, f"epochs_{key}_{tag}": ep,
                    f"ais_ess_{key}_{tag}": est.ess})
    mix, mix_se, mix_s = _mixture_ll(train, test, m, settings["mixture_iter"], seed=3)
    print(f"{f'Bernoulli mixture, K = {m} (exact)':>34} {'EM':>6} {mix_s:>8.1f} {'':>10} "
          f"{mix:>10.2f} +- 0 (exact)")
    out.update({f"ll_{key}_mixture": mix, f"ll_{key}_mixture_data_se": mix_se,
                f"train_s_{key}_mixture": mix_s})
    # checks of the PCD figure: reverse AIS (approximate upper bound) and RAISE
    pcd = rows[0][4]
    assert pcd_chains is not None
    t0 = time.perf_counter()
    start, _ = pcd.sample(pcd_chains.shape[0], 1000, init=pcd_chains,
                          generator=make_generator(4))
    rev = reverse_ais_log_partition(pcd, start, data=train, num_temperatures=temps,
                                    generator=make_generator(5))
    fwd = out[f"log_z_{key}_pcd"]
    n_raise = settings["raise_rows"]
    raise_rows = raise_log_likelihood(pcd, test[:n_raise], data=train,
                                      num_chains=settings["raise_chains"],
                                      num_temperatures=settings["raise_temperatures"],
                                      generator=make_generator(6))
    ais_rows = log_likelihood_estimate(pcd, test[:n_raise], fwd).mean
    check_s = time.perf_counter() - t0
    ordered = fwd <= rev.log_z
    print(f"  PCD checks ({check_s:.1f} s): log Z by forward AIS {fwd:.2f} (a stochastic lower "
          f"bound), by reverse AIS from 1000-step Gibbs samples {rev.log_z:.2f} +- "
          f"{rev.log_z_se:.2f} (an approximate upper bound): ordered {ordered}; first "
          f"{n_raise} test images: AIS {ais_rows:.2f}, RAISE {float(raise_rows.mean()):.2f} "
          f"({settings['raise_chains']} chains x {settings['raise_temperatures']} "
          "temperatures)")
    out.update({f"log_z_{key}_pcd_reverse": rev.log_z,
                f"log_z_{key}_pcd_reverse_se": rev.log_z_se,
                f"log_z_{key}_pcd_ordered": ordered,
                f"ll_{key}_pcd_raise_rows": n_raise,
                f"ll_{key}_pcd_raise": float(raise_rows.mean()),
                f"ll_{key}_pcd_ais_same_rows": ais_rows})
    sk_ll = out.get(f"ll_{key}_sklearn")
    if sk_ll is not None:
        diff = out[f"ll_{key}_pcd"] - sk_ll
        se = math.hypot(out[f"ll_{key}_pcd_se"], out[f"ll_{key}_sklearn_se"])
        out[f"ll_{key}_pcd_minus_sklearn"] = diff
        print(f"  PCD (ours) - sklearn: {diff:+.2f} +- {se:.2f} nats (goal >= 0)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="threads of the timing part")
    parser.add_argument("--quality-threads", type=int, default=1,
                        help="threads of the quality part (training, AIS)")
    parser.add_argument("--part", choices=("all", "timing", "quality"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    figures: dict[str, Any] = {"mode": "quick" if args.quick else "full",
                               "torch": torch.__version__, "threads": args.threads,
                               "quality_threads": args.quality_threads,
                               "cpu_count": os.cpu_count(),
                               "load_average_start": load_average()}
    sk_cls = _sklearn()
    if sk_cls is not None:
        import sklearn
        figures["sklearn"] = sklearn.__version__
    else:
        figures["sklearn"] = None
        print("scikit-learn is not installed: its figures are null")
    print(f"threads: torch and NumPy BLAS {args.threads} for the timing, "
          f"{args.quality_threads} for the quality comparison; load average "
          f"{figures['load_average_start']:.2f} at the start")
    with _blas_threads(args.threads):
        if args.part in ("all", "timing"):
            figures.update(timing(args.quick))
        if args.part in ("all", "quality"):
            torch.set_num_threads(args.quality_threads)
            if args.quick:
                settings = {"ais_chains": 100, "ais_temperatures": 500, "raise_rows": 20,
                            "raise_chains": 5, "raise_temperatures": 300, "mixture_iter": 30}
                fashion_n, test_n, fashion_epochs, digits_epochs = 6000, 1000, 3, 30
            else:
                settings = {"ais_chains": 100, "ais_temperatures": 14500, "raise_rows": 50,
                            "raise_chains": 10, "raise_temperatures": 2000,
                            "mixture_iter": 100}
                fashion_n, test_n, fashion_epochs, digits_epochs = None, None, 10, 200
            digits = (_flat("digits", "train"), _flat("digits", "test"))
            fashion = (_flat("fashion-mnist", "train", fashion_n),
                       _flat("fashion-mnist", "test", test_n))
            quality_set = "digits"
            if fashion[0] is not None and fashion[1] is not None:
                with _blas_threads(args.quality_threads):
                    figures.update(quality("fashion-mnist", fashion[0], fashion[1],
                                           fashion_epochs, settings))
                quality_set = "fashion"
            else:
                figures.update({"ll_fashion_pcd": None, "ll_fashion_sklearn": None,
                                "ll_fashion_mixture": None})
            assert digits[0] is not None and digits[1] is not None
            with _blas_threads(args.quality_threads):
                figures.update(quality("digits", digits[0], digits[1], digits_epochs,
                                       settings))
            figures["quality_dataset"] = quality_set
            diff = figures.get(f"ll_{quality_set}_pcd_minus_sklearn")
            figures["quality_goal_met"] = None if diff is None else diff >= 0
    figures["load_average_end"] = load_average()
    figures["total_s"] = time.perf_counter() - t0
    print(f"load average {figures['load_average_start']:.2f} at the start, "
          f"{figures['load_average_end']:.2f} at the end; {figures['total_s']:.0f} s in all")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
