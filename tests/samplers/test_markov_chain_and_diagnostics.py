"""Appendix D Markov-chain utilities, the exact MH matrix vs the kernel, and the diagnostics."""

from __future__ import annotations

import math

import pytest
import torch

from probforge.errors import ConvergenceError, NormalisationError, ShapeError
from probforge.ops import make_generator
from samplers.diagnostics import check, ess, mcse, rhat
from samplers.markov_chain import (
    detailed_balance_violation,
    empirical_transition_matrix,
    gibbs_transition_matrix,
    metropolis_hastings_matrix,
    stationary_distribution,
)
from samplers.metropolis import MetropolisHastings
from samplers.samples import Samples
from tests.stats import chi_square_gof, seed_for

PI = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64) / 21


def cycle_Q() -> torch.Tensor:
    Q = torch.zeros(6, 6, dtype=torch.float64)
    for i in range(6):
        Q[i, (i + 1) % 6] = 0.7
        Q[i, (i - 1) % 6] = 0.3
    return Q


def test_stationary_distribution_eig_and_power_agree() -> None:
    g = make_generator(0)
    P = torch.rand(5, 5, generator=g, dtype=torch.float64)
    P = P / P.sum(-1, keepdim=True)
    a = stationary_distribution(P)
    b = stationary_distribution(P, method="power")
    assert torch.allclose(a, b, atol=1e-10)
    assert torch.allclose(a @ P, a, atol=1e-12) and math.isclose(float(a.sum()), 1.0)


def test_mh_matrix_satisfies_detailed_balance_and_is_stationary() -> None:
    P = metropolis_hastings_matrix(cycle_Q(), torch.log(PI) + 3.0)  # unnormalised target
    assert float(detailed_balance_violation(P, PI)) < 1e-15
    assert torch.allclose(stationary_distribution(P), PI, atol=1e-12)
    # the Q walk alone is not reversible w.r.t. PI
    assert float(detailed_balance_violation(cycle_Q(), PI)) > 1e-2


def test_the_mh_kernel_realises_the_exact_mh_matrix() -> None:
    """Empirical one-step transition frequencies of MetropolisHastings vs the exact matrix:
    chi-square per row at alpha = 1e-4 / 6 (family 1e-4)."""

    def propose(x: torch.Tensor, g: torch.Generator | None):  # type: ignore[no-untyped-def]
        up = torch.rand(x.shape[0], generator=g, dtype=torch.float64) < 0.7
        y = torch.where(up.unsqueeze(-1), x + 1, x - 1) % 6
        return y, torch.where(up, math.log(0.7 / 0.3), math.log(0.3 / 0.7))

    kernel = MetropolisHastings(propose)

    def logp(x: torch.Tensor) -> torch.Tensor:
        return torch.log(PI)[x[:, 0]]

    def step(states: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        x = states.unsqueeze(-1)
        return kernel.step(kernel.init(x, logp), logp, None, g)[0].position[:, 0]

    n = 20_000
    emp = empirical_transition_matrix(step, 6, n, generator=make_generator(seed_for(1)))
    exact = metropolis_hastings_matrix(cycle_Q(), torch.log(PI))
    for i in range(6):
        chi_square_gof(emp[i] * n, exact[i], alpha=1e-4 / 6)


def test_markov_chain_errors() -> None:
    with pytest.raises(NormalisationError, match="row 0"):
        stationary_distribution(torch.tensor([[0.5, 0.4], [0.5, 0.5]]))
    with pytest.raises(ShapeError):
        stationary_distribution(torch.ones(2, 3) / 3)
    periodic = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ConvergenceError, match="periodic"):
        stationary_distribution(periodic, method="power", initial=torch.tensor([1.0, 0.0]),
                                max_iter=100)
    assert torch.allclose(stationary_distribution(periodic),
                          torch.tensor([0.5, 0.5], dtype=torch.float64))


# diagnostics ----------------------------------------------------------------------------------
def test_diagnostics_quiet_on_good_chains_and_loud_on_bad(
    capsys: pytest.CaptureFixture[str],
) -> None:
    g = make_generator(0)
    good = Samples({"x": torch.randn(4, 1000, 2, generator=g)},
                   {"accept_prob": torch.full((4, 1000), 0.25)}, {"target_accept": 0.234})
    assert check(good) == [] and good.attrs["warnings"] == []
    assert rhat(good)["x"].shape == (2,) and ess(good, "tail")["x"].min() > 400
    assert mcse(good)["x"].max() < 0.05
    # stuck, shifted chains: R-hat, low ESS, divergences, acceptance far from target
    walk = torch.cumsum(torch.randn(4, 200, generator=g), 1) + torch.arange(4.0)[:, None] * 5
    divergent = torch.zeros(4, 200, dtype=torch.bool)
    divergent[1, 3] = True
    bad = Samples({"x": walk},
                  {"accept_prob": torch.full((4, 200), 0.9), "is_divergent": divergent},
                  {"target_accept": 0.234})
    found = check(bad)
    text = " | ".join(found)
    assert "R-hat" in text and "bulk ESS" in text and "divergent" in text and "far from" in text
    assert bad.attrs["warnings"] == found
    err = capsys.readouterr().err
    assert err.count("R-hat") == 1
    check(bad)  # printed once only
    assert capsys.readouterr().err == ""
    idata = bad.to_arviz()
    assert "R-hat" in idata.posterior.attrs["warnings"]


def test_exact_gibbs_matrices_detailed_balance_and_stationarity() -> None:
    """Textbook T17 / (11.125): every block update and the random scan are reversible; the
    systematic sweep is stationary but not reversible."""
    g = make_generator(2)
    log_joint = torch.log(torch.rand(2, 3, 2, generator=g, dtype=torch.float64))
    pi = torch.softmax(log_joint.reshape(-1), 0)
    blocks = [[0], [1], [2]]
    for b in blocks:
        Pb = gibbs_transition_matrix(log_joint, [b])
        assert float(detailed_balance_violation(Pb, pi)) < 1e-15
    sweep = gibbs_transition_matrix(log_joint, blocks)
    rand = gibbs_transition_matrix(log_joint, blocks, scan="random")
    assert torch.allclose(pi @ sweep, pi, atol=1e-14) and torch.allclose(pi @ rand, pi)
    assert float(detailed_balance_violation(rand, pi)) < 1e-15
    assert float(detailed_balance_violation(sweep, pi)) > 1e-4
    assert torch.allclose(stationary_distribution(sweep), pi, atol=1e-10)
    blocked = gibbs_transition_matrix(log_joint, [[0, 1, 2]])  # one block: i.i.d. draws
    assert torch.allclose(blocked, pi.expand(12, 12))
