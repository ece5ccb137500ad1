"""The shared tensor core: semirings, contraction, log-space primitives, randomness, devices.

Variable elimination and junction trees are clients of :func:`contract`; HMMs and linear-chain
CRFs of its chain-structured counterpart, :mod:`probforge.ops.chain`.
"""

from probforge.ops.chain import (
    ChainMarginals,
    ChainPath,
    chain_backward,
    chain_entropy,
    chain_forward,
    chain_kbest,
    chain_log_partition,
    chain_log_partition_indexed,
    chain_log_partition_streamed,
    chain_marginals,
    chain_sample,
    chain_viterbi,
)
from probforge.ops.contract import (
    ContractionCost,
    Traceback,
    contract,
    contract_argmax,
    contract_sample,
    contraction_cost,
    contraction_path,
)
from probforge.ops.device import available_devices, common_device_dtype, to_like
from probforge.ops.random import (
    check_generator,
    make_generator,
    normal,
    random_seed,
    sample_distribution,
    split,
    uniform,
)
from probforge.ops.semiring import LOG, MAX, SAMPLE, Semiring, get_semiring, gumbel
from probforge.ops.special import (
    finite_shift,
    log1mexp,
    logaddexp,
    logmatmulexp,
    logsumexp,
    safe_log,
)

__all__ = [
    "LOG",
    "MAX",
    "SAMPLE",
    "ChainMarginals",
    "ChainPath",
    "ContractionCost",
    "Semiring",
    "Traceback",
    "available_devices",
    "chain_backward",
    "chain_entropy",
    "chain_forward",
    "chain_kbest",
    "chain_log_partition",
    "chain_log_partition_indexed",
    "chain_log_partition_streamed",
    "chain_marginals",
    "chain_sample",
    "chain_viterbi",
    "check_generator",
    "common_device_dtype",
    "contract",
    "contract_argmax",
    "contract_sample",
    "contraction_cost",
    "contraction_path",
    "finite_shift",
    "get_semiring",
    "gumbel",
    "log1mexp",
    "logaddexp",
    "logmatmulexp",
    "logsumexp",
    "make_generator",
    "normal",
    "random_seed",
    "safe_log",
    "sample_distribution",
    "split",
    "to_like",
    "uniform",
]
