"""Semiring inference on chains: the shared core of hidden Markov models and linear-chain CRFs.

A chain over ``T`` discrete variables ``y_0 .. y_{T-1}``, each with ``K`` states, has the
unnormalised log-density

``score(y) = sum_t unary[t, y_t] + sum_{t<T-1} pair[t, y_t, y_{t+1}]``

and partition function ``log Z = logsumexp_y score(y)``. An HMM passes ``unary[0] = log pi +
log p(x_0 | y_0)``, ``unary[t] = log p(x_t | y_t)`` and ``pair = log A``; a CRF passes its
emission scores (with start/end scores folded in) and transition scores.

Shapes: ``...`` are batch dimensions (possibly none); ``unary`` is ``(..., T, K)``; ``pair`` is
``(..., T-1, K, K)`` or broadcastable to it: ``(K, K)`` is one matrix for every step and every
sequence, a time dimension of 1 is shared over time, and its batch dimensions broadcast to those of
``unary``. A three-dimensional ``pair`` is read as ``(T-1 or 1, K, K)``; give per-sequence shared
matrices as ``(B, 1, K, K)``. ``-inf`` entries are forbidden states or transitions.
``lengths`` (a LongTensor of the batch shape, ``1 <= lengths <= T``) marks steps
``t >= lengths[b]`` as padding: they are ignored exactly and may hold any value, even NaN.

Every function works on normalised messages (each forward/backward message is shifted to
``logsumexp = 0`` and the shift kept apart), so float32 stays accurate on very long chains, and
every quantity (marginals, Viterbi score, log Z) is assembled from local, per-step terms.
The sequential ``log Z`` runs the same recursion in the probability domain (each step one
``(B, K) @ (K, K)`` matmul, normalised to sum 1, the logs of the normalisers summed), with its
gradient, the posterior marginals, from the matching scaled backward recursion; wherever a
normaliser is too small for that to be exact it falls back to the log-space recursion.

Two methods compute the messages: ``"sequential"``, the textbook recursion (one step per time
step, batched over sequences), and ``"parallel"``, a log-depth associative scan over the ``K x K``
step matrices (``O(T K^3)`` work in ``2 log2 T`` batched levels), which is much faster for long
chains with few states. ``"auto"`` picks from the shapes. Both are tested equal to each other and
to enumeration of all ``K^T`` paths. On CPU, with numba installed, ``"auto"`` and
``"sequential"`` run the sequential recursions (scaled forward and backward, Viterbi) as compiled
kernels (:mod:`probforge.ops.chain.native`), tested equal to the torch recursions.

Sequences whose every path is forbidden have ``log Z = -inf``: :func:`chain_log_partition`,
:func:`chain_forward` and :func:`chain_backward` return it; the functions that need a posterior
(:func:`chain_marginals`, :func:`chain_viterbi`, :func:`chain_sample`, :func:`chain_entropy`)
raise :class:`~probforge.errors.ZeroProbabilityEvidence` naming the batch index, and
:func:`chain_kbest` returns ``-inf`` scores and ``-1`` paths for the missing paths.

Examples
--------
>>> import torch
>>> from probforge.ops.chain import chain_log_partition, chain_marginals, chain_viterbi
>>> unary = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64))
>>> pair = torch.log(torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=torch.float64))
>>> chain_log_partition(unary, pair).exp()
tensor(0.1990, dtype=torch.float64)
>>> chain_marginals(unary, pair).unary[1]
tensor([0.3367, 0.6633], dtype=torch.float64)
>>> chain_viterbi(unary, pair).path
tensor([0, 1, 1])
"""

from probforge.ops.chain._base import ChainMarginals, ChainPath, choose_method
from probforge.ops.chain.decode import chain_kbest, chain_viterbi
from probforge.ops.chain.indexed import chain_log_partition_indexed
from probforge.ops.chain.marginals import chain_entropy, chain_marginals
from probforge.ops.chain.messages import chain_backward, chain_forward
from probforge.ops.chain.partition import chain_log_partition
from probforge.ops.chain.sample import chain_sample
from probforge.ops.chain.streamed import chain_log_partition_streamed

__all__ = [
    "ChainMarginals",
    "ChainPath",
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
    "choose_method",
]
