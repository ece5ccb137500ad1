"""The shared tensor core: semirings, contraction, log-space primitives, randomness, devices.

Variable elimination, junction trees, HMMs and CRFs are all clients of :func:`contract`.
"""

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
    "ContractionCost",
    "Semiring",
    "Traceback",
    "available_devices",
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
    "split",
    "to_like",
    "uniform",
]
