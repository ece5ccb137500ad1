"""Gibbs sampling on discrete networks against exact inference.

False-failure rates: each marginal test is a chi-square family at alpha = 1e-4 (Bonferroni over
its variables); each one-step invariance test has alpha = 1e-4.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from pgm.inference import VariableElimination
from pgm.inference.gibbs_sampling import GibbsSampler
from pgm.io import bundled_network
from pgm.markov import ising_grid
from probforge.errors import UnknownVariableError, ValidationError
from probforge.ops import make_generator
from tests.stats import chi_square_gof, seed_for


def final_states_chi_square(model, evidence, scan, chains, warmup, seed):  # type: ignore[no-untyped-def]
    """Independent draws: the last state of each of many chains after a fixed burn-in."""
    gs = GibbsSampler(model, evidence, scan=scan)
    s = gs.run(chains, 1, num_warmup=warmup, generator=make_generator(seed_for(seed)))
    exact = VariableElimination(model).marginals(evidence)
    for v, p in exact.items():
        counts = torch.bincount(s[v][:, -1], minlength=len(p))
        chi_square_gof(counts, p, alpha=1e-4 / len(exact))
    for v, st in (evidence or {}).items():
        assert bool((s[v] == model.states[v].index(st)).all())
    return gs, s


@pytest.mark.parametrize(("evidence", "scan"), [
    ({}, "systematic"),
    ({"dysp": "yes"}, "systematic"),
    ({"smoke": "yes", "dysp": "yes"}, "colour"),
    ({"xray": "yes"}, "random"),
])
def test_asia_marginals_match_variable_elimination(evidence: dict[str, str], scan: str) -> None:
    asia = bundled_network("asia")
    warmup = 150 if scan == "random" else 40
    final_states_chi_square(asia, evidence, scan, 3000, warmup, seed=len(evidence))


def test_auto_blocks_fix_the_reducible_single_site_chain() -> None:
    """either = tub OR lung: single-site Gibbs can never change 'either'."""
    asia = bundled_network("asia")
    single = GibbsSampler(asia, blocks="single")
    assert ["either"] in single.blocks
    s = single.run(200, 100, num_warmup=0, seed=0)
    assert bool((s["either"] == s["either"][:, :1]).all())  # frozen in every chain
    auto = GibbsSampler(asia)
    assert ["tub", "lung", "either"] in auto.blocks
    s = auto.run(200, 100, num_warmup=0, seed=0)
    assert bool((s["either"] != s["either"][:, :1]).any())


def sprinkler_joint(bn) -> torch.Tensor:  # type: ignore[no-untyped-def]
    rows = torch.tensor(list(itertools.product(range(2), repeat=4)))
    return bn.log_prob(rows).exp()


@pytest.mark.parametrize("scan", ["systematic", "random", "colour"])
def test_one_step_invariance_on_sprinkler(scan: str) -> None:
    bn = bundled_network("sprinkler")
    gs = GibbsSampler(bn, scan=scan)
    g = make_generator(seed_for(7))
    x0 = bn.sample(40_000, generator=g)  # exact draws (ancestral), columns in variable order
    kernel = gs.kernel
    state, _ = kernel.step(kernel.init(x0, gs.log_density), gs.log_density, None, g)
    x = state.position
    cells = x[:, 0] * 8 + x[:, 1] * 4 + x[:, 2] * 2 + x[:, 3]
    chi_square_gof(torch.bincount(cells, minlength=16), sprinkler_joint(bn), alpha=1e-4)
    assert torch.allclose(state.log_density, bn.log_prob(x))


def test_ising_checkerboard_matches_exact_pair_marginals() -> None:
    mn = ising_grid(3, 3, coupling=0.4, field=0.1)
    gs = GibbsSampler(mn, scan="checkerboard")
    assert len(gs.colours) == 2  # the two checkerboard colours
    s = gs.run(3000, 1, num_warmup=60, generator=make_generator(seed_for(3)))
    ve = VariableElimination(mn)
    pairs = [("x0_0", "x0_1"), ("x1_1", "x2_1")]
    for a, b in pairs:
        exact = ve.query([a, b]).probs().reshape(-1)
        counts = torch.bincount(s[a][:, -1] * 2 + s[b][:, -1], minlength=4)
        chi_square_gof(counts, exact, alpha=1e-4 / len(pairs))


def test_reproducible_and_errors() -> None:
    asia = bundled_network("asia")
    gs = GibbsSampler(asia, {"dysp": "yes"})
    state = torch.get_rng_state()
    a = gs.run(20, 10, num_warmup=5, seed=3)
    b = gs.run(20, 10, num_warmup=5, generator=make_generator(3))
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a[v], b[v]) for v in asia.variables)
    assert a.attrs["evidence"] == "dysp=yes" and a.attrs["sampler"] == "gibbs"
    assert set(a.to_arviz().posterior.data_vars) == set(asia.variables)
    with pytest.raises(UnknownVariableError, match="'cough'"):
        GibbsSampler(asia, {"cough": "yes"})
    with pytest.raises(ValidationError, match="exactly once"):
        GibbsSampler(asia, blocks=[["asia"], ["smoke"]])
    with pytest.raises(ValidationError, match="scan"):
        GibbsSampler(asia, scan="diagonal")


@pytest.mark.cuda
def test_cuda_gibbs_matches_exact_marginals() -> None:
    asia = bundled_network("asia").to("cuda")
    gs = GibbsSampler(asia, {"dysp": "yes"})
    s = gs.run(3000, 1, num_warmup=40, generator=make_generator(seed_for(1), "cuda"))
    assert s["lung"].device.type == "cuda"
    exact = VariableElimination(bundled_network("asia")).marginals({"dysp": "yes"})
    for v, p in exact.items():
        chi_square_gof(torch.bincount(s[v][:, -1].cpu(), minlength=len(p)), p, 1e-4 / len(exact))
