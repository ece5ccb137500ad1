"""Random small discrete models for oracle tests (deterministic given a seed)."""

from __future__ import annotations

import math

import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.factor import Factor
from pgm.markov import MarkovNetwork


def random_bn(seed: int, n_min: int = 2, n_max: int = 16, max_joint: int = 2**15,
              p_zero: float = 0.15, dtype: torch.dtype = torch.float64) -> BayesianNetwork:
    """Random DAG (<= 3 parents, chosen among earlier nodes), cards 2-3 with the joint size
    capped, Dirichlet CPT rows with some exact zeros (deterministic entries)."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(n_min, n_max + 1, (1,), generator=g))
    cards: list[int] = []
    for _ in range(n):
        c = int(torch.randint(2, 4, (1,), generator=g))
        if math.prod(cards) * c > max_joint:
            c = 2 if math.prod(cards) * 2 <= max_joint else 1
        cards.append(max(c, 1))
    names = [f"v{i}" for i in range(n)]
    cpds = []
    for i in range(n):
        k = int(torch.randint(0, min(3, i) + 1, (1,), generator=g))
        parents = [names[int(j)] for j in torch.randperm(i, generator=g)[:k]] if i else []
        shape = tuple(cards[names.index(p)] for p in parents) + (cards[i],)
        raw = -torch.log(torch.rand(shape, generator=g, dtype=torch.float64))  # Dirichlet(1) rows
        zero = torch.rand(shape, generator=g, dtype=torch.float64) < p_zero
        keep_one = torch.nn.functional.one_hot(raw.argmax(-1), cards[i]).bool()
        raw = torch.where(zero & ~keep_one, torch.zeros_like(raw), raw)
        probs = raw / raw.sum(-1, keepdim=True)
        states = {names[i]: [f"s{j}" for j in range(cards[i])]}
        for p in parents:
            states[p] = [f"s{j}" for j in range(cards[names.index(p)])]
        cpds.append(TabularCPD(names[i], probs.to(dtype), parents, states))
    return BayesianNetwork(cpds, name=f"random_bn_{seed}")


def random_mrf(seed: int, n_min: int = 2, n_max: int = 12, max_joint: int = 2**14,
               dtype: torch.dtype = torch.float64) -> MarkovNetwork:
    """Random pairwise + triple factors, with some -inf (hard constraint) entries."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(n_min, n_max + 1, (1,), generator=g))
    cards: list[int] = []
    for _ in range(n):
        c = int(torch.randint(2, 4, (1,), generator=g))
        cards.append(c if math.prod(cards) * c <= max_joint else 1)
    names = [f"u{i}" for i in range(n)]
    factors = [Factor([v], torch.randn(cards[i], generator=g, dtype=torch.float64).to(dtype))
               for i, v in enumerate(names)]
    m = int(torch.randint(n - 1, 2 * n + 1, (1,), generator=g))
    for _ in range(m):
        k = int(torch.randint(2, 4, (1,), generator=g))
        idx = torch.randperm(n, generator=g)[: min(k, n)].tolist()
        shape = tuple(cards[i] for i in idx)
        t = torch.randn(shape, generator=g, dtype=torch.float64)
        t = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.1,
                        torch.tensor(-math.inf, dtype=torch.float64), t)
        factors.append(Factor([names[i] for i in idx], t.to(dtype)))
    return MarkovNetwork(factors, name=f"random_mrf_{seed}")
