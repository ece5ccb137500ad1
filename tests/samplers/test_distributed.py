"""Two gloo processes: the gathered chains equal single-process runs with the per-rank seeds."""

from __future__ import annotations

import pytest
import torch

from samplers.adaptation_protocol import ScaleAdaptation
from samplers.distributed import launch, rank_generator, sample_distributed
from samplers.metropolis import RandomWalkMetropolis
from samplers.run import sample
from samplers.samples import Samples, concat

SEED = 123
CHAINS_PER_RANK = 3


def logp(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - 1.0) ** 2).sum(-1)


def start(rank: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(CHAINS_PER_RANK, 2, generator=g, dtype=torch.float64)


def worker(rank: int, world_size: int) -> Samples | None:
    return sample_distributed(RandomWalkMetropolis(), logp, start, seed=SEED, num_draws=40,
                              num_warmup=30, adaptation=ScaleAdaptation())


def test_two_gloo_processes_equal_the_single_process_runs() -> None:
    gathered = launch(worker, 2, start_method="fork")  # fast start; spawn is tested as slow
    assert isinstance(gathered, Samples)
    assert gathered.num_chains == 2 * CHAINS_PER_RANK and gathered.num_draws == 40
    assert gathered.attrs["world_size"] == 2 and gathered.attrs["rank_chains"] == [3, 3]
    parts = []
    for rank in range(2):
        g = rank_generator(SEED, rank, 2)
        parts.append(sample(RandomWalkMetropolis(), logp, start(rank, g), num_draws=40,
                            num_warmup=30, adaptation=ScaleAdaptation(), generator=g))
    single = concat(parts)
    assert torch.equal(gathered["x"], single["x"])
    for k in single.stats:
        assert torch.equal(gathered.stats[k], single.stats[k])
    idata = gathered.to_arviz()
    assert dict(idata.posterior.sizes)["chain"] == 6


@pytest.mark.slow
def test_two_spawned_processes() -> None:
    """The same with spawn, the safe default start method (slower: each rank imports torch)."""
    gathered = launch(worker, 2)
    g = rank_generator(SEED, 1, 2)
    one = sample(RandomWalkMetropolis(), logp, start(1, g), num_draws=40, num_warmup=30,
                 adaptation=ScaleAdaptation(), generator=g)
    assert torch.equal(gathered["x"][CHAINS_PER_RANK:], one["x"])
