"""Deep belief networks: greedy layer-wise pre-training, generation and fine-tuning a classifier.

Implements NNDL section 12.3 (Algorithm 12.2) and DL7 section 7.2 (Algorithm 7.1) with
``generative.energy.dbn``. A DBN over layers ``v, h^(1), ..., h^(L)`` has the joint
``p(v, h^(1..L)) = p(v | h^(1)) prod_l p(h^(l) | h^(l+1)) p(h^(L-1), h^(L))`` (12.60-12.61,
DL7 7.15): an RBM on the top two layers and directed sigmoid layers
``p(h^(l) = 1 | h^(l+1)) = sigmoid(a^(l) + W^(l) h^(l+1))`` below (12.62). The USTC slides'
network 784-1000-1000-500-10 is scaled down: 64-100-100-50-10 on 8x8 digits (``--fashion``:
784-250-250-125-10 on 10,000 Fashion-MNIST images).

1. Greedy pre-training (Algorithm 12.2, Hinton et al. 2006): RBM 1 is trained by CD-1 on the
   binarised images, the images are pushed up through it (``p(h = 1 | v)``), RBM 2 is trained on
   those activations, and so on. Printed per layer: the mean-field reconstruction error
   ``||x - E[x | h = p(h | x)]||^2`` of the layer's own training data before and after its
   training (DL7 Algorithm 7.1's monitor).
2. Generation (NNDL 12.3.1): block Gibbs in the top RBM, then one ancestral pass down through the
   sigmoid layers; the samples' means are written as a PNG grid, and their average grey level is
   compared with the data's.
3. Discriminative fine-tuning (NNDL 12.3.2.2, DL7 7.2): the recognition weights ``W^(l)T`` and
   hidden biases initialise a sigmoid network with a new softmax layer on top, trained by
   backpropagation; the same architecture from a random start is trained with the same
   optimiser, rate, batch size and epochs. Test accuracies are printed side by side for a small
   labelled subset and for all labels (pre-training helps most when labels are few: Larochelle
   et al. 2007); the pre-training itself uses the unlabelled training images.

Run ``python examples/ch12_deep_belief_network.py`` (under a minute on 2 cores; with
``--fashion`` a few minutes) or with ``--smoke`` (seconds). ``--out DIR`` writes
``dbn_samples.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from generative.data import load
from generative.energy.dbn import accuracy, finetune, pretrain_dbn, train_classifier_from_scratch
from generative.images import make_grid, write_png
from probforge.ops.random import make_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--fashion", action="store_true",
                        help="binarised Fashion-MNIST (10,000 training images) instead of digits")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNG grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: small matrices, and on a busy machine "
                        "more threads oversubscribe the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    g = make_generator(args.seed)

    name = "fashion-mnist" if args.fashion else "digits"
    if args.fashion:
        sizes = [784, 250, 250, 125]
        n_train, n_test = (1000, 200) if args.smoke else (10000, 2000)
        pre_epochs, tune_epochs, few = (1, 2, 100) if args.smoke else (10, 20, 500)
    else:
        sizes = [64, 100, 100, 50]
        n_train, n_test = None, None
        pre_epochs, tune_epochs, few = (10, 3, 100) if args.smoke else (100, 50, 150)
    gibbs_steps = 20 if args.smoke else 1000
    train = load(name, "train", n=n_train, binarize="fixed")
    test = load(name, "test", n=n_test, binarize="fixed")
    assert train.y is not None and test.y is not None
    x, y = train.x.flatten(1), train.y
    x_test, y_test = test.x.flatten(1), test.y
    shape = train.info.event_shape

    # 1. greedy layer-wise pre-training
    t0 = time.perf_counter()
    pre = pretrain_dbn(sizes, x, method="cd", k=1, epochs=pre_epochs, batch_size=100, lr=0.05,
                       momentum=0.5, weight_decay=1e-4, generator=g)
    secs = time.perf_counter() - t0
    dbn = pre.dbn
    arch = "-".join(map(str, [*sizes, 10]))
    print(f"1. Greedy layer-wise pre-training of a {'-'.join(map(str, sizes))} DBN on "
          f"binarised {name} ({x.shape[0]} images; classifier {arch}): CD-1, {pre_epochs} "
          f"epochs per layer, batch 100, lr 0.05 ({secs:.1f} s)")
    print(f"   {'layer':>5} {'RBM':>9} {'recon error before':>19} {'after':>8}")
    for i, (before, after) in enumerate(zip(pre.reconstruction_error_before,
                                            pre.reconstruction_error_after, strict=True)):
        print(f"   {i + 1:>5} {f'{sizes[i]}-{sizes[i + 1]}':>9} {before:>19.3f} {after:>8.3f}")

    # 2. generation: top-level Gibbs, then a down pass
    samples = dbn.sample(64, gibbs_steps, generator=g)
    print(f"2. Samples: {gibbs_steps} Gibbs steps in the top RBM, then the down pass: mean grey "
          f"level {float(samples.mean()):.3f} (training images {float(x.mean()):.3f})")
    if args.out is not None:
        write_png(args.out / "dbn_samples.png",
                  make_grid(samples.reshape(-1, *shape).clamp(0.0, 1.0), nrow=8))

    # 3. fine-tuning with and without pre-training: same architecture and budget
    print(f"3. Classifier {arch}, Adam lr 1e-3, batch 32, {tune_epochs} epochs (test accuracy on "
          f"{x_test.shape[0]} images)")
    print(f"   {'labelled images':>15} {'pre-trained DBN':>16} {'random start':>13}")
    for n_labels in (few, x.shape[0]):
        xs, ys = x[:n_labels], y[:n_labels]
        net = dbn.to_classifier(10, generator=make_generator(args.seed + 1))
        finetune(net, xs, ys, epochs=tune_epochs, lr=1e-3, batch_size=32,
                 generator=make_generator(args.seed + 2))
        scratch, _ = train_classifier_from_scratch(
            sizes, 10, xs, ys, epochs=tune_epochs, lr=1e-3, batch_size=32,
            generator=make_generator(args.seed + 2))
        print(f"   {n_labels:>15} {accuracy(net, x_test, y_test):>16.1%} "
              f"{accuracy(scratch, x_test, y_test):>13.1%}")


if __name__ == "__main__":
    main()
