"""Hopfield networks on binarised digits: Hebbian storage, retrieval, capacity, modern Hopfield.

Implements NNDL section 8.6.1 with ``generative.energy.hopfield``: binarised 8x8 digits (64
units, pixels mapped to -1/+1) are reduced to one majority-vote prototype per class; a few
prototypes that overlap little are stored with the Hebbian rule (8.37) and a zero diagonal
(8.33), corrupted by flipping 10-30 % of their bits, and retrieved with the sign rule (8.32)
asynchronously and synchronously (8.34). Printed: exact-retrieval success, mean overlap, sweeps,
synchronous 2-cycles, and the energy (8.35)-(8.36) along one asynchronous retrieval, which never
increases. The capacity experiment stores random patterns in a network of ``M`` units and shows
retrieval collapse as the load ``N / M`` passes about 0.14. Finally a modern (continuous, softmax)
Hopfield network (Ramsauer et al. 2020, ``xi <- X^T softmax(beta X xi)``) stores all ten
prototypes and hundreds of digit images, far past 0.14 M, and retrieves them from heavily
corrupted or half-erased queries where the classical network fails; its success is compared with
that of a nearest-neighbour memory (the stored pattern closest to the query).

Run ``python examples/ch08_hopfield_network.py`` (a minute or two) or with ``--smoke`` (seconds).
``--out DIR`` writes ``retrieval.png`` (rows: stored, corrupted, asynchronous and synchronous
retrieval), ``modern.png`` and ``capacity.png`` (the latter needs matplotlib).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
from torch import Tensor

from generative.data import load
from generative.energy.hopfield import HopfieldNetwork, capacity_experiment, corrupt
from generative.energy.modern_hopfield import ModernHopfield
from generative.images import make_grid, write_png
from probforge.ops.random import make_generator

#: Side of the digit images (8 x 8 = 64 units).
SIDE = 8
#: Classical capacity of a Hebbian network storing random patterns (Amit et al. 1985).
CAPACITY = 0.138


def digit_patterns() -> tuple[Tensor, Tensor, Tensor]:
    """Binarised training digits as -1/+1 rows (N, 64) float64, labels, class prototypes (10, 64).

    A prototype is the per-pixel majority vote over the class (ties go to +1, "ink").
    """
    digits = load("digits", binarize="fixed")
    assert digits.y is not None
    x = digits.x.reshape(digits.x.shape[0], -1).to(torch.float64) * 2 - 1
    prototypes = torch.stack([torch.where(x[digits.y == c].mean(0) >= 0, 1.0, -1.0)
                              for c in range(10)]).to(torch.float64)
    return x, digits.y, prototypes


def least_overlapping(prototypes: Tensor, k: int) -> list[int]:
    """The ``k`` classes whose prototypes have the smallest largest pairwise |overlap|.

    Digit prototypes share most background pixels (overlaps around 0.5), so a Hebbian network
    stores only a few of them: correlated patterns lower the capacity well below 0.14 M.
    """
    overlap = (prototypes @ prototypes.T / prototypes.shape[1]).abs()
    overlap.fill_diagonal_(0)
    best = min(itertools.combinations(range(prototypes.shape[0]), k),
               key=lambda c: float(overlap[list(c)][:, list(c)].max()))
    return list(best)


def to_image(s: Tensor, scale: int = 4) -> Tensor:
    """-1/+1 rows (n, 64) as (n, 1, 8 scale, 8 scale) images in [0, 1].

    Ink (+1) is black, background (-1) white and an unknown pixel (0) grey.
    """
    img = ((1 - s) / 2).reshape(-1, 1, SIDE, SIDE)
    return img.repeat_interleave(scale, -1).repeat_interleave(scale, -2)


def exact(states: Tensor, targets: Tensor) -> Tensor:
    """Per row: every bit equals the target (bool)."""
    return (states == targets).all(-1)


def classical(prototypes: Tensor, reps: int, g: torch.Generator, out: Path | None) -> None:
    """Section 1: Hebbian storage of digit prototypes; async and sync retrieval; energy."""
    m = prototypes.shape[1]
    classes = least_overlapping(prototypes, 2)
    stored = prototypes[classes]
    n = stored.shape[0]
    net = HopfieldNetwork.hebbian(stored)
    print(f"1. Classical Hopfield network: {m} units, digit prototypes {classes} stored "
          f"(N = {n}, load {n / m:.3f}), {reps} corrupted queries per pattern and level")
    print(f"   {'flipped':>7} {'mode':>5} {'success':>8} {'overlap':>8} {'sweeps':>7} "
          f"{'2-cycles':>8}")
    targets = stored.repeat(reps, 1)
    largest_rise = 0.0
    shown = 4  # corrupted queries per pattern in the picture
    rows = []
    for flip in (0.1, 0.2, 0.3):
        queries = corrupt(targets, flip, generator=g)
        for mode in ("async", "sync"):
            res = net.retrieve(queries, mode=mode, generator=g)
            ok = exact(res.states, targets).double().mean()
            overlap = (res.states * targets).mean(-1).mean()
            print(f"   {flip:>6.0%} {mode:>5} {float(ok):>8.1%} {float(overlap):>8.3f} "
                  f"{float(res.num_sweeps.double().mean()):>7.2f} "
                  f"{int(res.oscillating.sum()):>8d}")
            if mode == "async":
                rise = (res.energies[1:] - res.energies[:-1]).max()
                largest_rise = max(largest_rise, float(rise))
            if flip == 0.3:
                if mode == "async":
                    steps = int(res.num_sweeps[0]) + 1
                    trace = " -> ".join(f"{float(e):.3f}" for e in res.energies[:steps, 0])
                    print(f"   async energy trace (first query, 30% flipped, per sweep): {trace}")
                    rows += [targets[: n * shown], queries[: n * shown]]
                rows.append(res.states[: n * shown])
    print(f"   async energy never increased: {largest_rise <= 1e-12} "
          f"(largest rise between sweeps {largest_rise:.2e})")
    if out is not None:
        write_png(out / "retrieval.png", make_grid(to_image(torch.cat(rows)), nrow=n * shown,
                                                   padding=2, pad_value=0.75))
        print(f"   wrote {out / 'retrieval.png'} (rows: stored, 30% corrupted, async, sync)")
    # Digit prototypes overlap by about 0.5 (shared background), far from random patterns:
    # the Hebbian crosstalk then destroys the memories at loads far below 0.14.
    print("   more prototypes (the least overlapping ones), 20% flipped, async:")
    print(f"   {'N':>4} {'N/M':>6} {'fixed points':>12} {'success':>8}  classes")
    for k in (2, 3, 4, 10):
        chosen = least_overlapping(prototypes, k)
        stored = prototypes[chosen]
        net = HopfieldNetwork.hebbian(stored)
        fixed = exact(net.update(stored, mode="sync"), stored)
        targets = stored.repeat(reps, 1)
        res = net.retrieve(corrupt(targets, 0.2, generator=g), generator=g)
        ok = exact(res.states, targets).double().mean()
        print(f"   {k:>4d} {k / m:>6.3f} {int(fixed.sum()):>9d}/{k:<2d} {float(ok):>8.1%}  "
              f"{chosen}")


def capacity(num_units: int, loads: list[float], trials: int, g: torch.Generator,
             out: Path | None) -> None:
    """Section 2: success against the load N / M for random patterns (10 % flipped bits)."""
    counts = sorted({max(1, round(a * num_units)) for a in loads})
    res = capacity_experiment(num_units, counts, flip_fraction=0.1, trials=trials,
                              generator=g)
    print(f"2. Capacity: random patterns in M = {num_units} units, {trials} networks per load, "
          f"10% flipped bits (theory: collapse near {CAPACITY} M)")
    print(f"   {'N':>4} {'N/M':>6} {'success':>8} {'overlap':>8}")
    for c, a, s, o in zip(res.pattern_counts.tolist(), res.load.tolist(),
                          res.success_rate.tolist(), res.mean_overlap.tolist(), strict=True):
        print(f"   {c:>4d} {a:>6.3f} {s:>8.1%} {o:>8.3f}")
    if out is None:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("   matplotlib is not installed: capacity.png skipped")
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(res.load, res.success_rate, "o-", label="exact retrieval")
    ax.plot(res.load, res.mean_overlap, "s--", label="mean overlap")
    ax.axvline(CAPACITY, color="grey", linestyle=":", label=f"{CAPACITY} M")
    ax.set_xlabel("load N / M")
    ax.set_ylabel("fraction")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"Hopfield capacity, M = {num_units}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "capacity.png", dpi=100)
    plt.close(fig)
    print(f"   wrote {out / 'capacity.png'}")


def modern(prototypes: Tensor, images: Tensor, sizes: list[int], beta: float, queries: int,
           g: torch.Generator, out: Path | None) -> None:
    """Section 3: modern Hopfield retrieval against the classical network, same patterns.

    "nearest" is the stored pattern with the largest inner product with the query (ties go to
    the first), i.e. what a perfect nearest-neighbour memory would return.
    """
    m = prototypes.shape[1]
    print(f"3. Modern Hopfield retrieval (beta = {beta}) against the classical network, same "
          f"stored patterns: exact retrieval success (nearest = nearest stored pattern)")
    print(f"   {'stored':>16} {'N/M':>6} {'query':>12} {'classical':>9} {'modern':>7} "
          f"{'nearest':>7} {'iters':>6}")
    memories = [("10 prototypes", prototypes)]
    for k in sizes:
        distinct = torch.unique(images[:k], dim=0)  # a few binarised digits coincide
        memories.append((f"{distinct.shape[0]} images", distinct))
    largest_rise = 0.0
    picture: list[Tensor] = []
    for name, stored in memories:
        net = ModernHopfield(stored, beta=beta)
        hebb = HopfieldNetwork.hebbian(stored)
        n = stored.shape[0]
        known = torch.ones(m, dtype=torch.bool)
        known[m // 2:] = False  # the lower half of the image is unknown
        for query in ("30% flipped", "half erased"):
            if query == "half erased":
                targets = stored
                q_modern = torch.where(known, stored, 0.0)  # continuous states: 0 = unknown
                q_hebb = torch.where(known, stored, -1.0)  # +-1 states only: erase to blank
            else:
                targets = stored.repeat(-(-queries // n), 1)
                q_modern = q_hebb = corrupt(targets, 0.3, generator=g)
            res = net.retrieve(q_modern, max_iter=100)
            largest_rise = max(largest_rise, float(res.max_energy_increase.max()))
            got = torch.where(res.states >= 0, 1.0, -1.0).to(stored.dtype)
            nearest = stored[(q_modern @ stored.T).argmax(-1)]
            cl = hebb.retrieve(q_hebb, generator=g).states
            print(f"   {name:>16} {n / m:>6.2f} {query:>12} "
                  f"{float(exact(cl, targets).double().mean()):>9.1%} "
                  f"{float(exact(got, targets).double().mean()):>7.1%} "
                  f"{float(exact(nearest, targets).double().mean()):>7.1%} "
                  f"{float(res.num_iterations.double().mean()):>6.1f}")
            if name == "10 prototypes" and query == "half erased":
                picture = [stored, q_modern, got, cl]
    print(f"   modern energy never increased: {largest_rise <= 1e-9} "
          f"(largest rise {largest_rise:.2e})")
    if out is not None:
        grid = make_grid(to_image(torch.cat(picture)), nrow=10, padding=2, pad_value=0.75)
        write_png(out / "modern.png", grid)
        print(f"   wrote {out / 'modern.png'} (rows: stored, half erased (grey = unknown), "
              f"modern, classical)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNG pictures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    g = make_generator(args.seed)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    images, _, prototypes = digit_patterns()
    classical(prototypes, 10 if args.smoke else 200, g, args.out)
    if args.smoke:
        capacity(48, [0.04, 0.14, 0.3], 2, g, args.out)
    else:
        capacity(100, [0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.25, 0.3], 10, g,
                 args.out)
    modern(prototypes, images, [50] if args.smoke else [100, 300, 1000], 4.0,
           50 if args.smoke else 500, g, args.out)


if __name__ == "__main__":
    main()
