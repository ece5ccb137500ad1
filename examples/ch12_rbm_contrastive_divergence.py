"""Restricted Boltzmann machines trained by CD-1, CD-k and PCD, judged by their real log-likelihood.

Implements NNDL section 12.2 (Algorithm 12.1) and DL7 section 7.2 (7.1-7.14, 7.16-7.20) with
``generative.energy``. A Bernoulli RBM has the energy ``E(v, h) = -a^T v - b^T h - v^T W h``
(12.28, DL7 7.2), factorised conditionals ``p(h = 1 | v) = sigmoid(W^T v + b)`` and
``p(v = 1 | h) = sigmoid(W h + a)`` (12.48-12.49, DL7 7.12-7.14), and a log-likelihood gradient
that is a data term minus a model term (12.51-12.53, DL7 7.7-7.10). The model term needs samples
of the RBM: CD-k (Algorithm 12.1 with k = 1; DL7's CD-K) runs k block-Gibbs steps from the
data, persistent CD (PCD, Tieleman 2008) keeps its chains between updates.

1. Three RBMs are trained on binarised digits (``--fashion``: binarised Fashion-MNIST) with
   CD-1, CD-10 and PCD, the same epochs and rates. For each, on the test images: the
   mean-field reconstruction error (DL7 Algorithm 7.1's monitor), the pseudo-log-likelihood
   ``sum_i log p(v_i | v_-i)`` (on the scale of ``log p(v)``, not scaled by the number of
   features), and the real test log-likelihood ``-F(v) - log Z`` with ``log Z`` from annealed
   importance sampling (Salakhutdinov & Murray 2008) +- its standard error, next to the exact
   test log-likelihood of a mixture of as many multivariate Bernoullis as the RBMs have hidden
   units (``pgm.learning``, about the same number of parameters). Filters and samples are
   written as PNG grids.
2. A small RBM (16 hidden units) is trained so that ``log Z`` can be computed exactly by
   enumerating its 2^16 hidden states: the exact value is compared with forward AIS (a
   stochastic lower bound), reverse AIS from exact samples (a stochastic upper bound) and, per
   test image, RAISE (a conservative estimate that needs no ``log Z``).
3. A Gaussian-Bernoulli RBM (12.57, DL7 7.16-7.19: ``p(v | h) = N(a + sigma W h, sigma^2)``,
   unit ``sigma``) is trained by CD-1 on standardised grey-level digits; it stays finite, and
   its AIS test log-density is compared with independent Gaussians fitted to the same pixels.

Run ``python examples/ch12_rbm_contrastive_divergence.py`` (about a minute on 2 cores; with
``--fashion`` a few minutes) or with ``--smoke`` (seconds). ``--out DIR`` writes
``filters_<method>.png``, ``samples_<method>.png`` and ``grbm_samples.png``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import Tensor

from generative.data import load
from generative.energy.contrastive import train_rbm
from generative.energy.partition import (
    ais_log_partition,
    exact_samples,
    log_likelihood_estimate,
    raise_log_likelihood,
    reverse_ais_log_partition,
)
from generative.energy.rbm import RBM, BernoulliRBM, GaussianBernoulliRBM
from generative.energy.rbm_task import filter_images
from generative.energy.standardize import standardize
from generative.images import make_grid, write_png
from pgm.learning.bernoulli_mixture import fit_bernoulli_mixture
from probforge.ops.random import make_generator

#: (label, file tag, method, k) of the three estimators of section 1.
METHODS = (("CD-1", "cd1", "cd", 1), ("CD-10", "cd10", "cd", 10), ("PCD", "pcd", "pcd", 1))


def images(rbm: RBM, h: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Visible means ``E[v | h]`` as images ``(n, *shape)``."""
    with torch.no_grad():
        return rbm.visible_mean(h).reshape(h.shape[0], *shape)


def save_grid(out: Path | None, name: str, pictures: Tensor) -> None:
    if out is not None:
        write_png(out / name, make_grid(pictures.clamp(0.0, 1.0), nrow=8))


def bernoulli_rbms(args: argparse.Namespace, g: torch.Generator) -> None:
    """Section 1: CD-1, CD-10 and PCD against a mixture of Bernoullis."""
    name = "fashion-mnist" if args.fashion else "digits"
    if args.smoke:
        n_train, n_test = (2000, 200) if args.fashion else (None, None)
        epochs, hidden, temps, steps = 2, 32, 100, 20
    else:
        n_train, n_test = (20000, 2000) if args.fashion else (None, None)
        epochs, hidden, temps, steps = (10, 128, 2000, 1000) if args.fashion else \
            (300, 64, 2000, 1000)
    if args.epochs is not None:
        epochs = args.epochs
    train_set = load(name, "train", n=n_train, binarize="fixed")
    shape = train_set.info.event_shape
    train = train_set.x.flatten(1)
    test = load(name, "test", n=n_test, binarize="fixed").x.flatten(1)
    d = train.shape[1]
    print(f"1. Bernoulli RBMs on binarised {name}: {train.shape[0]} training and "
          f"{test.shape[0]} test images of {d} pixels, {hidden} hidden units, {epochs} epochs, "
          "batch 100, lr 0.05, momentum 0.5")
    print(f"   AIS: base-rate model from the training data, 100 chains x {temps} temperatures")
    print(f"   {'model':>24} {'train s':>8} {'recon error':>11} {'pseudo-LL':>10} "
          f"{'test log-likelihood':>20}")
    for label, tag, method, k in METHODS:
        rbm = BernoulliRBM(d, hidden, generator=make_generator(args.seed))
        t0 = time.perf_counter()
        train_rbm(rbm, train, method=method, k=k, epochs=epochs, batch_size=100, lr=0.05,
                  momentum=0.5, weight_decay=1e-4, generator=g)
        secs = time.perf_counter() - t0
        with torch.no_grad():
            recon = float(rbm.reconstruction_error(test).mean())
            pll = float(rbm.pseudo_log_likelihood(test).mean())
        est = ais_log_partition(rbm, data=train, num_chains=100, num_temperatures=temps,
                                generator=g)
        ll = log_likelihood_estimate(rbm, test, est)
        print(f"   {label + ' RBM':>24} {secs:>8.1f} {recon:>11.2f} {pll:>10.2f} "
              f"{ll.mean:>11.2f} +- {ll.se:.2f}")
        save_grid(args.out, f"filters_{tag}.png", filter_images(rbm, shape))
        _, h = rbm.sample(64, steps, generator=g)
        save_grid(args.out, f"samples_{tag}.png", images(rbm, h, shape))
    t0 = time.perf_counter()
    mix = fit_bernoulli_mixture(train, hidden, init="random", beta_prior=(2.0, 2.0),
                                max_iter=30 if args.smoke else 100, generator=g)
    secs = time.perf_counter() - t0
    mix_ll = float(mix.model.log_prob(test).mean())
    print(f"   {f'mixture of {hidden} Bernoullis':>24} {secs:>8.1f} {'':>11} {'':>10} "
          f"{mix_ll:>11.2f} (exact)")
    print("   (log-likelihoods in nats per image, +- the AIS standard error; the pseudo-"
          "log-likelihood is not a likelihood)")


def exact_check(args: argparse.Namespace, g: torch.Generator) -> None:
    """Section 2: exact log Z of a 16-hidden-unit RBM against AIS, reverse AIS and RAISE."""
    train = load("digits", "train", binarize="fixed", dtype=torch.float64).x.flatten(1)
    test = load("digits", "test", binarize="fixed", dtype=torch.float64).x.flatten(1)
    epochs, temps = (5, 300) if args.smoke else (100, 3000)
    rbm = BernoulliRBM(64, 16, dtype=torch.float64, generator=make_generator(args.seed))
    train_rbm(rbm, train, method="pcd", epochs=epochs, batch_size=100, lr=0.05, generator=g)
    with torch.no_grad():
        log_z = float(rbm.exact_log_partition())
        exact_ll = float(rbm.log_prob(test, log_z).mean())
    fwd = ais_log_partition(rbm, data=train, num_chains=100, num_temperatures=temps,
                            generator=g)
    start, _ = exact_samples(rbm, 100, generator=g)
    rev = reverse_ais_log_partition(rbm, start, data=train, num_temperatures=temps,
                                    generator=g)
    rows = test[:20]
    raise_ll = raise_log_likelihood(rbm, rows, data=train, num_chains=10,
                                    num_temperatures=temps, generator=g)
    with torch.no_grad():
        exact_rows = rbm.log_prob(rows, log_z)
    ais_ll = log_likelihood_estimate(rbm, test, fwd)
    print(f"2. Exact check: an RBM with 64 visible and 16 hidden units, PCD for {epochs} epochs "
          "(float64)")
    print(f"   exact log Z (2^16 hidden states enumerated)  = {log_z:.4f}")
    print(f"   forward AIS log Z (lower bound on average)   = {fwd.log_z:.4f} +- "
          f"{fwd.log_z_se:.4f}  ({abs(fwd.log_z - log_z) / fwd.log_z_se:.1f} SE from exact)")
    print(f"   reverse AIS log Z from 100 exact samples     = {rev.log_z:.4f} +- "
          f"{rev.log_z_se:.4f}  ({abs(rev.log_z - log_z) / rev.log_z_se:.1f} SE from exact)")
    print(f"   within 3 SE of exact: forward {abs(fwd.log_z - log_z) <= 3 * fwd.log_z_se}, "
          f"reverse {abs(rev.log_z - log_z) <= 3 * rev.log_z_se}; forward <= exact <= reverse "
          f"(true on average, not in every run): {fwd.log_z <= log_z <= rev.log_z}")
    print(f"   test log-likelihood: exact {exact_ll:.4f}, AIS {ais_ll.mean:.4f} +- "
          f"{ais_ll.se:.4f} nats")
    print(f"   first 20 test images: exact {float(exact_rows.mean()):.4f}, RAISE (10 chains) "
          f"{float(raise_ll.mean()):.4f}; max |RAISE - exact| per image "
          f"{float((raise_ll - exact_rows).abs().max()):.4f}")


def gaussian_rbm(args: argparse.Namespace, g: torch.Generator) -> None:
    """Section 3: a Gaussian-Bernoulli RBM on standardised grey-level digits."""
    x_train = load("digits", "train").x.flatten(1)
    x_test = load("digits", "test").x.flatten(1)
    z_train, st = standardize(x_train)
    z_test = st.transform(x_test)
    epochs, temps, steps = (3, 100, 20) if args.smoke else (100, 2000, 1000)
    rbm = GaussianBernoulliRBM(64, 64, sigma=1.0, generator=make_generator(args.seed))
    res = train_rbm(rbm, z_train, method="cd", k=1, epochs=epochs, batch_size=100, lr=0.005,
                    momentum=0.5, weight_decay=1e-4, generator=g)
    finite = all(bool(torch.isfinite(p).all()) for p in rbm.parameters()) and \
        all(math.isfinite(e) for e in res.history)
    est = ais_log_partition(rbm, data=z_train, num_chains=100, num_temperatures=temps,
                            generator=g)
    log_det = float(st.log_abs_det)
    ll = log_likelihood_estimate(rbm, z_test, est)
    # independent Gaussians with the training means and variances (constant pixels: variance 1)
    indep = float((-0.5 * (z_test.double() ** 2 + math.log(2 * math.pi))).sum(-1).mean())
    print(f"3. Gaussian-Bernoulli RBM (64 hidden units, sigma = 1) on standardised grey-level "
          f"digits, CD-1 for {epochs} epochs, lr 0.005")
    print(f"   parameters and reconstruction errors finite: {finite}; reconstruction error "
          f"{res.history[0]:.2f} after epoch 1 -> {res.history[-1]:.2f} after epoch {epochs} "
          "(standardised units)")
    print(f"   test log-density (pixel units, nats per image): GRBM {ll.mean - log_det:.2f} +- "
          f"{ll.se:.2f} (AIS, {temps} temperatures), independent Gaussians "
          f"{indep - log_det:.2f} (exact)")
    _, h = rbm.sample(64, steps, generator=g)
    with torch.no_grad():
        means = st.inverse(rbm.visible_mean(h))
    save_grid(args.out, "grbm_samples.png", means.reshape(-1, 1, 8, 8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--fashion", action="store_true",
                        help="section 1 on binarised Fashion-MNIST instead of digits")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of section 1")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNG grids")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: small matrices, and on a busy machine "
                        "more threads oversubscribe the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    g = make_generator(args.seed)
    bernoulli_rbms(args, g)
    exact_check(args, g)
    gaussian_rbm(args, g)


if __name__ == "__main__":
    main()
