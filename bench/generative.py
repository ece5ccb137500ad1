"""Deep generative models: VAE test NLL, GAN/VAE mode coverage, training-loop throughput.

What is measured (all in one process; CPU unless ``--device`` says otherwise):

1. **VAE on binarised Fashion-MNIST** (threshold 0.5): an MLP VAE (784-512-256-16, Bernoulli
   likelihood) trained with ``generative.train.fit``, then on test images the ELBO, the IWAE
   bound (k = 50) and the importance-sampled log-likelihood with **k = 1000** draws per image
   (encoder as proposal, chunks of 100): ``vae_test_nll_k1000`` in nats (lower is better).
   Skipped (``null``) when Fashion-MNIST is not installed.
2. **8 Gaussians** (std 0.02 on a ring of radius 2): a non-saturating GAN (MLP 128x3, 2-D latent,
   Adam 2e-4 / beta1 0.5, batch 256) and a VAE (MLP 256x2, 2-D latent, Gaussian likelihood with
   learned scale, Adam 1e-3), both from ``default_config``; from 2,000 samples:
   modes covered (goal 8/8), share of high-quality samples (within 3 std of a mode), mode-histogram
   KL to uniform, and the unbiased MMD^2 (median-heuristic RBF kernels, scales 0.5/1/2) to 2,000
   held-out points.
3. **Throughput** (images or points per second): the same model on the same data with the same
   batch size, trained by ``fit`` (its own ``examples_per_second``: time inside the training
   loop, logging and RNG bookkeeping included) and by a plain PyTorch loop (random minibatch by
   index, ``zero_grad``, the model's loss, ``backward``, ``step``). Best of 3 runs each, after a
   warm-up. ``*_ratio`` = fit / plain (goal >= 0.9, i.e. within 10 %).

The load average is recorded: on the shared 2-core machine timings are fragile; re-run on an idle
one before drawing conclusions.

Run: python bench/generative.py [--quick] [--device cpu]
  --quick: VAE 300 steps (batch 128), NLL on 100 test images; toys 2,000 steps; throughput
           100 steps x 3. 3 minutes measured with one thread on the shared 2-core machine at
           load average 4.5 (the toys take 2 x 50 s of it); less on idle cores.
  full:    VAE 20 epochs (9,360 steps), NLL on the first 2,000 test images; toys 10,000 steps;
           throughput 300 steps x 3. About 30-60 minutes on 2 cores.
Last stdout line: one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import load_average
from generative.data import load
from generative.gan import mode_collapse_diagnostics
from generative.metrics import mmd2
from generative.registry import build_task, default_config
from generative.tasks import GANTask, VAETask
from generative.train import fit
from generative.vae import VAE
from probforge.errors import DataNotFoundError
from probforge.ops.random import make_generator


def _vae_task(seed: int = 0) -> VAETask:
    return VAETask(VAE((1, 28, 28), 16, hidden=(512, 256), seed=seed), lr=1e-3,
                   eval_importance_samples=0)


def vae_fashion(steps: int, n_test: int, device: str) -> dict[str, Any]:
    try:
        train = load("fashion-mnist", "train", binarize="fixed", device=device)
        test = load("fashion-mnist", "test", n=n_test, binarize="fixed", device=device)
    except DataNotFoundError as err:
        print(f"1. VAE on Fashion-MNIST: skipped ({err})")
        return {"vae_test_nll_k1000": None}
    task = _vae_task()
    t0 = time.perf_counter()
    res = fit(task, train, steps=steps, batch_size=128, seed=0)
    train_s = time.perf_counter() - t0
    vae = task.model.eval()
    g = make_generator(1, device)
    t0 = time.perf_counter()
    with torch.no_grad():
        elbo = vae.elbo(test.x, generator=g).mean().item()
        iwae = vae.iwae_bound(test.x, k=50, generator=g).mean().item()
        est = vae.log_marginal(test.x, num_samples=1000, chunk_size=100, generator=g)
    eval_s = time.perf_counter() - t0
    nll = -est.log_likelihood.mean().item()
    print(f"1. VAE (MLP, latent 16) on binarised Fashion-MNIST, {steps} steps "
          f"({train_s:.1f} s): test ELBO {elbo:.2f}, IWAE_50 {iwae:.2f}, "
          f"NLL (k = 1000, {n_test} images) {nll:.2f} nats ({eval_s:.1f} s)")
    return {"vae_steps": steps, "vae_test_elbo": elbo, "vae_test_iwae_k50": iwae,
            "vae_test_nll_k1000": nll, "vae_test_images": n_test,
            "vae_nll_mean_ess": est.ess.mean().item(), "vae_train_s": train_s,
            "vae_fit_images_per_s": res.examples_per_second}


def toys(steps: int, device: str) -> dict[str, Any]:
    train = load("8gaussians", "train", device=device)
    test = load("8gaussians", "test", device=device)
    centres, std = train.info.centres(device=device), train.info.mode_std
    assert centres is not None and std is not None
    out: dict[str, Any] = {"toy_steps": steps}
    for kind in ("gan", "vae"):
        task = build_task(default_config(kind, train.info))
        t0 = time.perf_counter()
        fit(task, train, steps=steps, batch_size=256, seed=0)
        secs = time.perf_counter() - t0
        samples = task.sample(task.networks(), 2000, make_generator(2, device))
        d = mode_collapse_diagnostics(samples, centres, std)
        m = mmd2(samples, test.x).item()
        print(f"2. {kind.upper()} on 8 Gaussians ({steps} steps, {secs:.1f} s): modes "
              f"{int(d['modes_covered'])}/8, "
              f"high quality {100 * d['high_quality_fraction']:.1f} %, "
              f"mode KL {d['mode_kl']:.3f}, MMD^2 {m:.5f}")
        key = f"toy_{kind}"
        out.update({f"{key}_modes_covered": int(d["modes_covered"]),
                    f"{key}_high_quality_fraction": d["high_quality_fraction"],
                    f"{key}_mode_kl": None if math.isnan(d["mode_kl"]) else d["mode_kl"],
                    f"{key}_mmd2": m, f"{key}_train_s": secs})
    return out


def _plain_loop(model: torch.nn.Module, step_fn: Any, x: torch.Tensor, steps: int,
                batch: int) -> float:
    g = torch.Generator(x.device).manual_seed(0)
    t0 = time.perf_counter()
    for i in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g, device=x.device)
        step_fn(x[idx], i, g)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return steps * batch / (time.perf_counter() - t0)


def throughput(steps: int, device: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        data = load("fashion-mnist", "train", n=20000, binarize="fixed", device=device)
    except DataNotFoundError:
        data = None
    toy = load("8gaussians", "train", device=device)
    cases: list[tuple[str, Any, int]] = []
    if data is not None:
        cases.append(("vae_fashion", data, 128))
    cases.append(("gan_toy", toy, 256))
    for name, ds, batch in cases:
        ours, plain = [], []
        for rep in range(4):  # the first round is a warm-up
            if name == "vae_fashion":
                task: Any = _vae_task()
                vae = task.model.to(device)
                opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

                def step_fn(xb: torch.Tensor, i: int, g: torch.Generator,
                            vae: VAE = vae, opt: torch.optim.Optimizer = opt) -> None:
                    loss, _ = vae.loss(xb, generator=g)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                model = vae
            else:
                cfg = default_config("gan", toy.info)
                task = build_task(cfg)
                assert isinstance(task, GANTask)
                gan = task.gan.to(device)
                opts = {"g": torch.optim.Adam(gan.generator.parameters(), 2e-4, betas=(0.5, 0.999)),
                        "d": torch.optim.Adam(gan.discriminator.parameters(), 2e-4,
                                              betas=(0.5, 0.999))}
                from generative.gan import train_step

                def step_fn(xb: torch.Tensor, i: int, g: torch.Generator, gan: Any = gan,
                            opts: Any = opts) -> None:
                    train_step(gan, opts, xb, None, i, generator=g)
                model = gan
            p = _plain_loop(model, step_fn, ds.x, steps, batch)
            fresh = _vae_task() if name == "vae_fashion" else build_task(
                default_config("gan", toy.info))
            res = fit(fresh, ds, steps=steps, batch_size=batch, seed=0, log_every=50)
            if rep:
                plain.append(p)
                ours.append(res.examples_per_second)
        best_ours, best_plain = max(ours), max(plain)
        ratio = best_ours / best_plain
        print(f"3. throughput {name}: fit {best_ours:.0f}/s, plain loop {best_plain:.0f}/s, "
              f"ratio {ratio:.3f} (goal >= 0.9)")
        out.update({f"{name}_fit_per_s": best_ours, f"{name}_plain_per_s": best_plain,
                    f"{name}_ratio": ratio})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.quick:
        vae_steps, n_test, toy_steps, tp_steps = 300, 100, 2000, 100
    else:
        vae_steps, n_test, toy_steps, tp_steps = 9360, 2000, 10000, 300
    t0 = time.perf_counter()
    figures: dict[str, Any] = {"mode": "quick" if args.quick else "full", "device": args.device,
                               "torch": torch.__version__, "threads": torch.get_num_threads(),
                               "load_average_start": load_average(),
                               "cpu_count": os.cpu_count()}
    figures.update(vae_fashion(vae_steps, n_test, args.device))
    figures.update(toys(toy_steps, args.device))
    figures.update(throughput(tp_steps, args.device))
    figures["load_average_end"] = load_average()
    figures["total_s"] = time.perf_counter() - t0
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
