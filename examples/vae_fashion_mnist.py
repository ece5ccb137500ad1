"""A VAE on binarised Fashion-MNIST: training, test NLL by importance sampling, latent pictures.

1. A convolutional VAE (Bernoulli likelihood, 16-d latent) is trained with
   ``generative.train.fit`` on Fashion-MNIST thresholded at 0.5.
2. On test images: the ELBO, the IWAE bound with k = 50 and the importance-sampled
   log-likelihood with k = 1000 (NLL in nats; the encoder is the proposal, draws are chunked).
   The three are ordered ELBO <= IWAE_50 <= log p(x) up to Monte Carlo error.
3. With ``--out DIR``: ``samples.png`` (prior samples), ``interpolation.png`` (decoded latent path
   between two test images) and ``latent_map.png`` (a 2-D latent VAE's decoded grid at Gaussian
   quantiles, NNDL Fig. 13.6b), plus the training logs and checkpoint written by ``fit``.

Needs the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).
Run ``python examples/vae_fashion_mnist.py`` (a few minutes on CPU) or with ``--smoke`` (seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from generative.data import load
from generative.images import make_grid, write_png
from generative.registry import build_task, default_config
from generative.tasks import VAETask
from generative.train import fit
from generative.vae import VAE
from probforge.ops.random import make_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and pictures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_train, n_test, steps, k_nll = (60000, 500, args.steps, 1000)
    if args.smoke:
        n_train, n_test, steps, k_nll = 512, 16, 20, 1000

    train = load("fashion-mnist", "train", n=n_train, binarize="fixed")
    test = load("fashion-mnist", "test", n=n_test, binarize="fixed")
    cfg = default_config("vae", train.info)
    cfg.update(latent_dim=16, eval_importance_samples=0)
    if args.smoke:
        cfg.update(channels=[8, 16])
    task = build_task(cfg)
    assert isinstance(task, VAETask)
    print(f"1. training a {cfg['arch']} VAE ({cfg['likelihood']} likelihood, latent "
          f"{cfg['latent_dim']}) for {steps} steps on {len(train)} images")
    res = fit(task, train, steps=steps, batch_size=128, seed=args.seed, out_dir=args.out,
              sample_every=steps if args.out else 0, progress=not args.smoke)
    last = res.history[-1]
    print(f"   last step: loss {last['loss']:.2f}, recon {last['recon']:.2f}, kl "
          f"{last['kl']:.2f}; {res.examples_per_second:.0f} images/s")

    vae = task.model.eval()
    g = make_generator(args.seed + 1)
    with torch.no_grad():
        elbo = vae.elbo(test.x, generator=g).mean().item()
        iwae = vae.iwae_bound(test.x, k=50, generator=g).mean().item()
        est = vae.log_marginal(test.x, num_samples=k_nll, chunk_size=100, generator=g)
    print(f"2. test ({len(test)} images): ELBO {elbo:.2f}, IWAE_50 {iwae:.2f}, "
          f"log p(x) ~ {est.log_likelihood.mean().item():.2f} (k = {k_nll}); "
          f"NLL {-est.log_likelihood.mean().item():.2f} nats, "
          f"mean ESS {est.ess.mean().item():.1f}")

    if args.out is not None:
        samples = vae.sample(64, generator=g)
        write_png(args.out / "samples.png", make_grid(samples, nrow=8))
        path = vae.interpolate(test.x[0], test.x[1], steps=11)
        write_png(args.out / "interpolation.png", make_grid(path, nrow=11))
        vae2 = VAE(train.info.event_shape, 2, arch="conv", channels=[8, 16] if args.smoke
                   else [32, 64])
        fit(VAETask(vae2, eval_importance_samples=0), train, steps=max(steps // 2, 10),
            batch_size=128, seed=args.seed)
        grid = vae2.eval().latent_map(15, as_grid=False)
        write_png(args.out / "latent_map.png", make_grid(grid, nrow=15))
        print(f"3. pictures in {args.out}")


if __name__ == "__main__":
    main()
