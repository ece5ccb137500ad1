"""Loopy belief propagation: exact on trees and chains, close on weak loops, honest otherwise.

Oracles: VariableElimination (exact marginals and log Z), brute-force enumeration for the
textbook's chain algorithm (11.73)-(11.80), and a naive edge-by-edge reference implementation of
the same flooding schedule (dicts and Python loops) for the vectorised message passing on loopy
graphs.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.factor import Factor
from pgm.inference.elimination import VariableElimination
from pgm.inference.loopy_bp import (
    LoopyBeliefPropagation,
    chain_belief_propagation,
    loopy_belief_propagation,
)
from pgm.io import bundled_network
from pgm.markov import MarkovNetwork, ising_grid
from probforge.errors import (
    ShapeError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import finite_shift, logsumexp

TOL = 1e-10


def random_tree_mrf(seed: int, n: int = 12, p_zero: float = 0.1) -> MarkovNetwork:
    """A random factor-graph tree: unary factors plus pairwise and triple factors, each joining
    one existing variable to one or two new ones; cards 2-4; some zero (-inf) entries."""
    g = torch.Generator().manual_seed(seed)
    cards = [int(torch.randint(2, 5, (1,), generator=g)) for _ in range(n)]
    names = [f"t{i}" for i in range(n)]
    facs = [Factor([names[i]], torch.randn(cards[i], generator=g, dtype=torch.float64))
            for i in range(n)]
    made = 1
    while made < n:
        parent = int(torch.randint(0, made, (1,), generator=g))
        k = min(int(torch.randint(1, 3, (1,), generator=g)), n - made)
        idx = [parent, *range(made, made + k)]
        made += k
        shape = tuple(cards[i] for i in idx)
        t = 1.5 * torch.randn(shape, generator=g, dtype=torch.float64)
        t = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < p_zero,
                        torch.tensor(-math.inf, dtype=torch.float64), t)
        perm = torch.randperm(len(idx), generator=g).tolist()
        facs.append(Factor([names[idx[j]] for j in perm], t.permute(perm)))
    return MarkovNetwork(facs, name=f"tree_{seed}")


def random_loopy_mrf(seed: int, n: int = 7) -> MarkovNetwork:
    """Random positive pairwise and triple factors with loops, cards 2-3."""
    g = torch.Generator().manual_seed(seed)
    cards = [int(torch.randint(2, 4, (1,), generator=g)) for _ in range(n)]
    names = [f"u{i}" for i in range(n)]
    facs = [Factor([v], 0.5 * torch.randn(cards[i], generator=g, dtype=torch.float64))
            for i, v in enumerate(names)]
    for _ in range(2 * n):
        k = int(torch.randint(2, 4, (1,), generator=g))
        idx = torch.randperm(n, generator=g)[:k].tolist()
        t = 0.7 * torch.randn(tuple(cards[i] for i in idx), generator=g, dtype=torch.float64)
        facs.append(Factor([names[i] for i in idx], t))
    return MarkovNetwork(facs, name=f"loopy_{seed}")


def random_polytree_bn(seed: int, n: int = 9) -> BayesianNetwork:
    """Each node has at most one parent (so the factor graph is a tree); some zero entries."""
    g = torch.Generator().manual_seed(seed)
    cards = [int(torch.randint(2, 4, (1,), generator=g)) for _ in range(n)]
    names = [f"b{i}" for i in range(n)]
    cpds = []
    for i in range(n):
        parents = [names[int(torch.randint(0, i, (1,), generator=g))]] if i else []
        shape = tuple(cards[names.index(p)] for p in parents) + (cards[i],)
        raw = -torch.log(torch.rand(shape, generator=g, dtype=torch.float64))
        zero = torch.rand(shape, generator=g, dtype=torch.float64) < 0.15
        keep = torch.nn.functional.one_hot(raw.argmax(-1), cards[i]).bool()
        raw = torch.where(zero & ~keep, torch.zeros_like(raw), raw)
        cpds.append(TabularCPD(names[i], raw / raw.sum(-1, keepdim=True), parents))
    return BayesianNetwork(cpds, name=f"polytree_{seed}")


def max_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[v] - b[v].to(a[v].dtype)).abs().max()) for v in a)


def naive_flooding_bp(model: MarkovNetwork, n_iter: int, damping: float) -> dict[str, torch.Tensor]:
    """Edge-by-edge reference: the same schedule, normalisation and damping, no vectorisation."""
    facs = model.factors()
    cards = model.cards
    edges = [(i, v) for i, f in enumerate(facs) for v in f.variables]
    f2v = {e: torch.full((cards[e[1]],), -math.log(cards[e[1]]), dtype=torch.float64)
           for e in edges}

    def norm(x: torch.Tensor) -> torch.Tensor:
        return x - finite_shift(logsumexp(x, -1, keepdim=True))

    for _ in range(n_iter):
        v2f = {}
        for (i, v) in edges:
            s = torch.zeros(cards[v], dtype=torch.float64)
            for (j, u) in edges:
                if u == v and j != i:
                    s = s + f2v[(j, u)]
            v2f[(i, v)] = norm(s)
        new = {}
        for i, f in enumerate(facs):
            for d, v in enumerate(f.variables):
                acc = f.log_values
                for d2, u in enumerate(f.variables):
                    if u != v:
                        shape = [1] * len(f.variables)
                        shape[d2] = cards[u]
                        acc = acc + v2f[(i, u)].reshape(shape)
                dims = tuple(k for k in range(len(f.variables)) if k != d)
                out = norm(logsumexp(acc, dims) if dims else acc)
                if damping:
                    out = torch.log((1 - damping) * out.exp() + damping * f2v[(i, v)].exp())
                new[(i, v)] = out
        f2v = new
    beliefs = {}
    for v in model.variables:
        s = sum((f2v[e] for e in edges if e[1] == v), torch.zeros(cards[v], dtype=torch.float64))
        beliefs[v] = norm(s).exp()
    return beliefs


# --- trees and chains: exact -------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_exact_on_random_tree_mrfs(seed: int) -> None:
    mn = random_tree_mrf(seed)
    ve = VariableElimination(mn)
    res = loopy_belief_propagation(mn)
    assert res.converged and res.n_iter <= len(mn.variables) + 1
    assert max_error(res.marginals, ve.marginals()) < TOL
    assert res.bethe_log_z is not None
    assert abs(float(res.bethe_log_z - ve.log_evidence())) < TOL


@pytest.mark.parametrize("seed", range(4))
def test_exact_on_polytree_bn_with_batched_hard_partial_and_soft_evidence(seed: int) -> None:
    bn = random_polytree_bn(seed)
    g = torch.Generator().manual_seed(seed)
    x = bn.sample(6, generator=g)  # rows of positive probability
    obs = x[:, 2].clone()
    obs[::3] = -1  # unobserved in some rows
    evidence = {"b1": x[:, 1], "b2": obs}
    card5 = bn.cards["b5"]
    soft = {"b5": torch.rand(6, card5, generator=g, dtype=torch.float64) + 0.1}
    ve = VariableElimination(bn)
    res = loopy_belief_propagation(bn, evidence, soft)
    exact = ve.marginals(evidence, soft)
    assert res.converged
    assert res.marginals["b0"].shape == (6, bn.cards["b0"])
    assert max_error(res.marginals, exact) < TOL
    assert res.bethe_log_z is not None
    torch.testing.assert_close(res.bethe_log_z, ve.log_evidence(evidence, soft), atol=TOL,
                               rtol=0)


def chain_mrf(t: int, k: int, seed: int) -> tuple[torch.Tensor, MarkovNetwork]:
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(t - 1, k, k, generator=g, dtype=torch.float64)
    lp[0, 0, 1] = -math.inf  # a zero potential
    names = [f"c{i}" for i in range(t)]
    return lp, MarkovNetwork([Factor([names[i], names[i + 1]], lp[i]) for i in range(t - 1)])


def test_textbook_chain_z_is_identical_at_every_node() -> None:
    lp, mn = chain_mrf(30, 4, seed=0)
    res = chain_belief_propagation(lp)
    ve = VariableElimination(mn)
    log_z = ve.log_evidence()
    # (11.80): Z = sum_x mu_{t-1,t}(x) mu_{t+1,t}(x), the same at every node t
    assert res.log_z_per_node.shape == (30,)
    assert float((res.log_z_per_node - res.log_z_per_node[0]).abs().max()) < 1e-12
    assert abs(float(res.log_z - log_z)) < TOL
    exact = ve.marginals()
    for i in range(30):
        torch.testing.assert_close(res.marginals[i], exact[f"c{i}"], atol=TOL, rtol=0)
    # boundary messages are one (erratum 6)
    assert float(res.forward[0].abs().max()) == 0.0 and float(res.backward[-1].abs().max()) == 0.0
    # the general loopy BP on the same chain is exact too
    lbp = loopy_belief_propagation(mn)
    assert lbp.converged and max_error(lbp.marginals, exact) < TOL
    assert lbp.bethe_log_z is not None and abs(float(lbp.bethe_log_z - log_z)) < TOL


def test_textbook_chain_against_brute_force_with_unary_and_batch() -> None:
    g = torch.Generator().manual_seed(3)
    lp = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)  # batch 2, T = 5, K = 3
    un = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    res = chain_belief_propagation(lp, un)
    for b in range(2):
        logs = []
        for xs in itertools.product(range(3), repeat=5):
            s = sum(float(un[b, t, xs[t]]) for t in range(5))
            s += sum(float(lp[b, t, xs[t], xs[t + 1]]) for t in range(4))
            logs.append((xs, s))
        log_z = torch.logsumexp(torch.tensor([s for _, s in logs], dtype=torch.float64), 0)
        assert torch.allclose(res.log_z_per_node[b], log_z.expand(5), atol=1e-12, rtol=0)
        p1 = torch.zeros(3, dtype=torch.float64)
        for xs, s in logs:
            p1[xs[1]] += math.exp(s - float(log_z))
        torch.testing.assert_close(res.marginals[b, 1], p1, atol=1e-12, rtol=0)


def test_chain_errors() -> None:
    with pytest.raises(ShapeError):
        chain_belief_propagation(torch.zeros(3, 2, 3))
    with pytest.raises(ZeroProbabilityEvidence):
        chain_belief_propagation(torch.full((2, 2, 2), -math.inf))


@pytest.mark.parametrize("seed", range(6))
def test_max_product_on_trees_finds_the_map(seed: int) -> None:
    mn = random_tree_mrf(seed, p_zero=0.0)
    res = loopy_belief_propagation(mn, semiring="max")
    assert res.converged and res.bethe_log_z is None and res.assignment is not None
    best = VariableElimination(mn).map_query()
    assert {v: int(t) for v, t in res.assignment.items()} == \
        {v: int(t) for v, t in best.indices.items()}


# --- loopy graphs --------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "damping"), [(0, 0.0), (1, 0.3), (2, 0.0)])
def test_vectorised_messages_equal_naive_reference_on_loopy_graphs(seed: int,
                                                                   damping: float) -> None:
    mn = random_loopy_mrf(seed)
    res = LoopyBeliefPropagation(mn, damping=damping, max_iter=15, tol=1e-300).run()
    assert res.n_iter == 15 and not res.converged
    assert max_error(res.marginals, naive_flooding_bp(mn, 15, damping)) < TOL


def test_weakly_coupled_ising_is_close_to_exact() -> None:
    g = torch.Generator().manual_seed(0)
    field = 0.3 * torch.randn(4, 4, generator=g, dtype=torch.float64)
    for coupling, tol_marg, tol_z in [(0.05, 1e-4, 1e-3), (0.1, 1e-3, 5e-3), (0.2, 1e-2, 5e-2)]:
        mn = ising_grid(4, 4, coupling=coupling, field=field)
        ve = VariableElimination(mn)
        res = loopy_belief_propagation(mn)
        assert res.converged
        assert max_error(res.marginals, ve.marginals()) < tol_marg
        assert res.bethe_log_z is not None
        assert abs(float(res.bethe_log_z - ve.log_evidence())) < tol_z


def test_asia_is_exact_where_evidence_cuts_the_loop_and_close_elsewhere() -> None:
    asia = bundled_network("asia")
    ve = VariableElimination(asia)
    ev = {"smoke": "yes", "dysp": "yes"}  # observing smoke leaves a tree
    res = loopy_belief_propagation(asia, ev)
    assert res.converged and max_error(res.marginals, ve.marginals(ev)) < TOL
    res = loopy_belief_propagation(asia)
    assert res.converged and max_error(res.marginals, ve.marginals()) < 0.01


def test_reports_non_convergence_instead_of_returning_silently() -> None:
    # antiferromagnetic grid: flooding BP oscillates between two message states
    mn = ising_grid(4, 4, coupling=-1.0, field=0.1)
    res = loopy_belief_propagation(mn, max_iter=100)
    assert not res.converged and res.n_iter == 100 and float(res.max_residual) > 0.1
    damped = loopy_belief_propagation(mn, max_iter=500, damping=0.5)
    assert damped.converged and float(damped.max_residual) < 1e-8
    # strongly coupled spin glass (frustrated loops): damping does not rescue it
    g = torch.Generator().manual_seed(1)
    spins = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    facs = [Factor([f"x{i}_{j}"], 0.3 * float(torch.randn((), generator=g)) * spins)
            for i in range(4) for j in range(4)]
    for i in range(4):
        for j in range(4):
            for a, b in ((i, j + 1), (i + 1, j)):
                if a < 4 and b < 4:
                    jj = 3.0 * torch.randn((), generator=g, dtype=torch.float64)
                    facs.append(Factor([f"x{i}_{j}", f"x{a}_{b}"],
                                       jj * spins[:, None] * spins[None, :]))
    glass = MarkovNetwork(facs)
    for d in (0.0, 0.5):
        res = loopy_belief_propagation(glass, max_iter=200, damping=d)
        assert not res.converged and res.n_iter == 200


# --- contracts: dtype, randomness, inputs, errors ------------------------------------------------
def test_float32_follows_the_model() -> None:
    mn = ising_grid(3, 3, coupling=0.1, field=0.2, dtype=torch.float32)
    res = loopy_belief_propagation(mn, tol=1e-6)
    assert res.converged and res.marginals["x0_0"].dtype == torch.float32
    exact = VariableElimination(mn.to(torch.float64)).marginals()
    assert max_error(res.marginals, exact) < 1e-3


def test_random_initial_messages_use_only_the_generator() -> None:
    mn = random_tree_mrf(5)
    state = torch.random.get_rng_state()
    a = loopy_belief_propagation(mn, generator=torch.Generator().manual_seed(7))
    b = loopy_belief_propagation(mn, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.n_iter == b.n_iter and max_error(a.marginals, b.marginals) == 0.0
    assert max_error(a.marginals, VariableElimination(mn).marginals()) < TOL


def test_inputs_are_not_mutated() -> None:
    mn = random_loopy_mrf(3)
    before = [f.log_values.clone() for f in mn.factors()]
    ev = {"u0": torch.tensor([0, 1, -1])}
    ev_before = ev["u0"].clone()
    loopy_belief_propagation(mn, ev, damping=0.2)
    assert all(torch.equal(a, f.log_values) for a, f in zip(before, mn.factors(), strict=True))
    assert torch.equal(ev["u0"], ev_before)


def test_bad_options_and_evidence_raise_named_errors() -> None:
    mn = ising_grid(2, 2)
    for kwargs in ({"damping": 1.0}, {"damping": -0.1}, {"semiring": "min"},
                   {"max_iter": 0}, {"tol": 0.0}):
        with pytest.raises(ValidationError):
            LoopyBeliefPropagation(mn, **kwargs)
    with pytest.raises(UnknownVariableError):
        loopy_belief_propagation(mn, {"nope": 0})
    bn = BayesianNetwork([TabularCPD("a", [1.0, 0.0]),
                          TabularCPD("b", [[0.5, 0.5], [0.5, 0.5]], parents=["a"])])
    with pytest.raises(ZeroProbabilityEvidence):
        loopy_belief_propagation(bn, {"a": 1})


def test_fully_observed_model_returns_log_evidence() -> None:
    bn = BayesianNetwork([TabularCPD("a", [0.3, 0.7]),
                          TabularCPD("b", [[0.9, 0.1], [0.2, 0.8]], parents=["a"])])
    res = loopy_belief_propagation(bn, {"a": [0, 1], "b": [1, 1]})
    assert res.marginals == {} and res.converged and res.bethe_log_z is not None
    assert res.bethe_log_z.dtype == bn.dtype
    torch.testing.assert_close(res.bethe_log_z.exp(), torch.tensor([0.03, 0.56], dtype=bn.dtype))


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    mn = ising_grid(5, 5, coupling=0.2, field=0.1)
    ev = {"x0_0": torch.tensor([0, 1, 1])}
    cpu = loopy_belief_propagation(mn, ev)
    gpu = loopy_belief_propagation(mn.to("cuda"), {"x0_0": ev["x0_0"].cuda()})
    assert gpu.marginals["x2_2"].is_cuda and gpu.n_iter == cpu.n_iter
    assert max_error({v: t.cpu() for v, t in gpu.marginals.items()}, cpu.marginals) < 1e-12


@pytest.mark.slow
def test_exact_on_many_trees_and_a_long_chain() -> None:
    for seed in range(8, 60):
        mn = random_tree_mrf(seed, n=20)
        ve = VariableElimination(mn)
        res = loopy_belief_propagation(mn)
        assert res.converged and max_error(res.marginals, ve.marginals()) < TOL
        assert res.bethe_log_z is not None
        assert abs(float(res.bethe_log_z - ve.log_evidence())) < TOL
    lp, mn = chain_mrf(300, 3, seed=1)
    res = loopy_belief_propagation(mn, max_iter=400)  # flooding needs ~T iterations on a chain
    exact = chain_belief_propagation(lp)
    assert res.converged and res.bethe_log_z is not None
    assert abs(float(res.bethe_log_z - exact.log_z)) < 1e-9
    for i in range(300):
        torch.testing.assert_close(res.marginals[f"c{i}"], exact.marginals[i], atol=TOL, rtol=0)
