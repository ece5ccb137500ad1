"""Semiring contraction on a chain of factors: log Z, marginals, MAP and exact samples.

A chain MRF of T variables with K states (the textbook's (11.73)-(11.80)): log Z is the same
whichever node the messages meet at, and equals brute-force enumeration on a short chain.

Run: python examples/core_contraction.py [--smoke]
"""

from __future__ import annotations

import argparse
import itertools

import torch

from probforge.ops import contract, contract_argmax, contract_sample, make_generator


def chain(t: int, k: int, generator: torch.Generator) -> tuple[list[torch.Tensor], list[tuple]]:
    unary = [torch.randn(k, generator=generator, dtype=torch.float64) for _ in range(t)]
    pair = [torch.randn(k, k, generator=generator, dtype=torch.float64) for _ in range(t - 1)]
    scopes = [(i,) for i in range(t)] + [(i, i + 1) for i in range(t - 1)]
    return unary + pair, scopes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    args = parser.parse_args()
    t, k = (6, 3) if args.smoke else (60, 10)
    g = make_generator(0)
    factors, scopes = chain(t, k, g)
    log_z = contract(factors, scopes)
    print(f"chain of {t} variables with {k} states: log Z = {log_z.item():.6f}")
    # Z "at every node" (11.80): sum over x_t of the product of incoming messages
    per_node = [contract(factors, scopes, [i]).logsumexp(0).item() for i in (0, t // 2, t - 1)]
    print("log Z from the marginal table at nodes 0, T/2, T-1:", [f"{v:.6f}" for v in per_node])
    if t <= 8:
        best = -float("inf")
        for xs in itertools.product(range(k), repeat=t):
            s = sum(f[tuple(xs[v] for v in sc)] for f, sc in zip(factors, scopes, strict=True))
            best = max(best, float(s))
        print(f"brute-force max log-potential = {best:.6f}")
    m = contract_argmax(factors, scopes)
    path = [int(m.assignment[i]) for i in range(t)]
    print(f"MAP value {m.value.item():.6f} at {path[:12]}{'...' if t > 12 else ''}")
    draws = contract_sample(factors, scopes, sample_shape=(1000,), generator=g)
    marg0 = contract(factors, scopes, [0]) - log_z
    freq0 = torch.bincount(draws.assignment[0], minlength=k).double() / 1000
    print("p(x_0) exact  :", [f"{p:.3f}" for p in marg0.exp().tolist()])
    print("p(x_0) sampled:", [f"{p:.3f}" for p in freq0.tolist()])


if __name__ == "__main__":
    main()
