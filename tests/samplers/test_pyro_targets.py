"""Log-densities from Pyro models: equal to Pyro's own potential energy, in every vectorisation."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.mcmc.util import initialize_model

from probforge.errors import ValidationError
from probforge.ops import make_generator
from samplers.adaptation_protocol import ScaleAdaptation
from samplers.metropolis import RandomWalkMetropolis
from samplers.run import sample
from samplers.targets import from_pyro_model
from tests.stats import mcse_z_test, seed_for

Y = torch.tensor([28.0, 8, -3, 7, -1, 1, 18, 12], dtype=torch.float64)
SIGMA = torch.tensor([15.0, 10, 16, 11, 9, 11, 10, 18], dtype=torch.float64)


def eight_schools(y: torch.Tensor, sigma: torch.Tensor) -> None:
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(torch.tensor(5.0, dtype=y.dtype)))
    with pyro.plate("J", len(y)):
        theta = pyro.sample("theta_trans", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 1.0))
        pyro.sample("obs", dist.Normal(mu + tau * theta, sigma), obs=y)


def mixture_weights(counts: torch.Tensor) -> None:
    w = pyro.sample("w", dist.Dirichlet(torch.ones(3, dtype=counts.dtype)))
    s = pyro.sample("s", dist.Gamma(torch.tensor(2.0, dtype=counts.dtype), 1.0))
    pyro.sample("obs", dist.Multinomial(int(counts.sum()), w), obs=counts)
    pyro.sample("noise", dist.Normal(torch.tensor(0.0, dtype=counts.dtype), s),
                obs=torch.tensor(0.3, dtype=counts.dtype))


def pyro_reference(model, args, space, x):  # type: ignore[no-untyped-def]
    _, potential, _, _ = initialize_model(model, model_args=args)
    parts = space.split(x)
    return torch.stack([-potential({k: v[i] for k, v in parts.items()})
                        for i in range(x.shape[0])])


@pytest.mark.parametrize("mode", ["plate", "vmap", "loop"])
def test_matches_pyro_potential(mode: str) -> None:
    state = torch.get_rng_state()
    logp, space = from_pyro_model(eight_schools, Y, SIGMA, vectorize=mode)
    assert space.names == ["mu", "tau", "theta_trans"] and space.size == 10
    x = space.initial_position(5, make_generator(0), dtype=torch.float64)
    ours = logp(x)
    assert torch.equal(state, torch.get_rng_state())  # (Pyro's initialize_model draws from it)
    assert torch.allclose(ours, pyro_reference(eight_schools, (Y, SIGMA), space, x))
    counts = torch.tensor([3.0, 5.0, 2.0], dtype=torch.float64)
    if mode == "vmap":  # Multinomial.log_prob indexes with a boolean mask, which vmap refuses
        with pytest.raises(ValidationError, match="vmap"):
            from_pyro_model(mixture_weights, counts, vectorize=mode)
        return
    logp2, space2 = from_pyro_model(mixture_weights, counts, vectorize=mode)
    assert space2.shapes == {"w": (3,), "s": ()} and space2.size == 3
    x2 = space2.initial_position(4, make_generator(1), dtype=torch.float64)
    assert torch.allclose(logp2(x2), pyro_reference(mixture_weights, (counts,), space2, x2))


def test_undeclared_batch_dims_are_caught_and_discrete_sites_refused() -> None:
    def unplated(y: torch.Tensor) -> None:  # batch dim of theta not declared by a plate
        theta = pyro.sample("theta", dist.Normal(torch.zeros(3), 1.0))
        pyro.sample("obs", dist.Normal(theta, 1.0).to_event(1), obs=y)

    with pytest.raises(ValidationError, match=r"pyro\.plate|per-chain"):
        from_pyro_model(unplated, torch.zeros(3))
    logp, space = from_pyro_model(unplated, torch.zeros(3), vectorize="loop")
    assert logp(space.initial_position(2, make_generator(0))).shape == (2,)

    def discrete() -> None:
        pyro.sample("k", dist.Categorical(torch.ones(3) / 3))

    with pytest.raises(ValidationError, match="discrete"):
        from_pyro_model(discrete)
    with pytest.raises(ValidationError, match="vectorize"):
        from_pyro_model(eight_schools, Y, SIGMA, vectorize="threads")


def test_sampling_a_conjugate_pyro_model() -> None:
    """y_i ~ N(mu, 1), mu ~ N(0, 10^2): posterior N(sum y / (n + 0.01), 1 / (n + 0.01)).
    MCSE z-tests on the mean and variance at family alpha = 1e-3."""
    y = torch.tensor([0.5, 1.7, 0.9, 1.2, 2.1], dtype=torch.float64)

    def model(y: torch.Tensor) -> None:
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 10.0))
        with pyro.plate("n", len(y)):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    logp, space = from_pyro_model(model, y)
    g = make_generator(seed_for(4))
    s = sample(RandomWalkMetropolis(), logp, space.initial_position(8, g, dtype=torch.float64),
               num_draws=2000, num_warmup=500, adaptation=ScaleAdaptation(), generator=g,
               space=space)
    prec = len(y) + 0.01
    mean, var = float(y.sum()) / prec, 1 / prec
    mcse_z_test(s["mu"], mean, 1e-3, num_tests=2)
    mcse_z_test((s["mu"] - mean) ** 2, var, 1e-3, num_tests=2)
