"""Finite Markov chains (textbook appendix D.3.1): stationary distributions and detailed balance.

Convention (erratum 10 of the seed notes): transition matrices are **row-stochastic**,
``P[i, j] = P(X_{t+1} = j | X_t = i)``, rows sum to one, and a stationary distribution is a row
vector with ``pi P = pi`` (the textbook's (D.47) ``pi = M pi`` is the column-stochastic
transpose, ``M = P^T``). Detailed balance (D.49) is ``pi_i P_ij = pi_j P_ji``; it makes ``pi``
stationary, while convergence to it from any start also needs irreducibility and aperiodicity.

Examples
--------
>>> import torch
>>> from samplers.markov_chain import stationary_distribution, detailed_balance_violation
>>> P = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64)
>>> pi = stationary_distribution(P)
>>> pi
tensor([0.8333, 0.1667], dtype=torch.float64)
>>> torch.allclose(stationary_distribution(P, method="power"), pi)
True
>>> float(detailed_balance_violation(P, pi)) < 1e-12
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from probforge.errors import (
    ConvergenceError,
    NormalisationError,
    ShapeError,
    ValidationError,
)

__all__ = [
    "check_transition_matrix",
    "detailed_balance_violation",
    "empirical_transition_matrix",
    "gibbs_transition_matrix",
    "metropolis_hastings_matrix",
    "stationary_distribution",
]


def check_transition_matrix(P: Tensor, atol: float = 1e-8) -> None:
    """Raise unless ``P`` is square, non-negative and row-stochastic."""
    if not isinstance(P, Tensor) or P.dim() != 2 or P.shape[0] != P.shape[1]:
        raise ShapeError("transition matrix", "must be a square (K, K) tensor",
                         found=getattr(P, "shape", type(P).__name__))
    if bool((P < 0).any()):
        raise ValidationError("transition matrix", "entries must be >= 0",
                              found=float(P.min()))
    rows = P.sum(-1)
    bad = (rows - 1).abs() > atol
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise NormalisationError(
            "transition matrix", f"row {i} sums to {float(rows[i]):.6g}, not 1 (convention: "
            "row-stochastic, P[i, j] = P(next = j | now = i))",
            fix="normalise the rows, or transpose a column-stochastic matrix")


def stationary_distribution(
    P: Tensor, method: str = "eig", *, tol: float = 1e-12, max_iter: int = 100_000,
    initial: Tensor | None = None,
) -> Tensor:
    """Stationary distribution ``pi`` (K,) of a row-stochastic ``P`` (``pi P = pi``).

    Parameters
    ----------
    P : Tensor (K, K)
    method : {"eig", "power"}
        ``"eig"``: the left eigenvector of eigenvalue 1 (D.47), normalised to sum to one.
        ``"power"``: iterate ``pi <- pi P`` from ``initial`` (uniform by default) until the L1
        change is below ``tol`` (D.48; needs an ergodic, aperiodic chain).

    Raises
    ------
    ConvergenceError
        If power iteration does not converge in ``max_iter`` steps (e.g. a periodic chain).
    """
    check_transition_matrix(P)
    if method == "eig":
        vals, vecs = torch.linalg.eig(P.T)
        i = int(torch.argmin((vals - 1).abs()))
        v = vecs[:, i].real.to(P.dtype)
        v = v / v.sum()
        pos: Tensor = v.clamp_min(0)
        return pos / pos.sum()
    if method != "power":
        raise ValidationError("stationary_distribution", "method must be 'eig' or 'power'",
                              found=repr(method))
    K = P.shape[0]
    pi = (torch.full((K,), 1.0 / K, dtype=P.dtype, device=P.device) if initial is None
          else initial.to(P) / initial.sum())
    for _ in range(max_iter):
        nxt = pi @ P
        if float((nxt - pi).abs().sum()) < tol:
            return nxt
        pi = nxt
    raise ConvergenceError("stationary_distribution(method='power')",
                           f"did not converge to L1 change < {tol} in {max_iter} iterations",
                           fix="the chain may be periodic or reducible; use method='eig'")


def detailed_balance_violation(P: Tensor, pi: Tensor) -> Tensor:
    """``max_ij |pi_i P_ij - pi_j P_ji|``: zero iff ``P`` is reversible with respect to ``pi``."""
    check_transition_matrix(P)
    if pi.shape != P.shape[:1]:
        raise ShapeError("detailed_balance_violation", "pi must have shape (K,)",
                         found=tuple(pi.shape))
    flow = pi[:, None] * P
    return (flow - flow.T).abs().max()


def metropolis_hastings_matrix(Q: Tensor, log_target: Tensor) -> Tensor:
    """The exact MH transition matrix for proposal ``Q`` (row-stochastic) and a discrete target.

    ``P_ij = Q_ij min(1, pi_j Q_ji / (pi_i Q_ij))`` for ``i != j``; the rejected mass stays on
    the diagonal (11.107-11.108). ``log_target`` (K,) may be unnormalised.
    """
    check_transition_matrix(Q)
    lt = log_target.to(Q.dtype)
    log_q = torch.log(Q)
    log_a = (lt[None, :] + log_q.T) - (lt[:, None] + log_q)
    accept = torch.exp(torch.nan_to_num(log_a, nan=-torch.inf).clamp(max=0.0))
    P = Q * accept
    P = P - torch.diag(torch.diagonal(P))
    return P + torch.diag(1 - P.sum(-1))


def empirical_transition_matrix(
    step: Callable[[Tensor, torch.Generator | None], Tensor],
    num_states: int,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Estimate ``P`` of a kernel on states ``0..K-1`` by running one step from each state.

    Parameters
    ----------
    step : callable
        ``step(states (n,) long, generator) -> next states (n,) long``, vectorised.
    num_states : int
        ``K``.
    num_samples : int
        Transitions simulated from every state.

    Returns
    -------
    Tensor (K, K), float64
        Row ``i`` holds the transition frequencies from state ``i``.
    """
    dev = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    start = torch.arange(num_states, device=dev).repeat_interleave(num_samples)
    nxt = step(start, generator)
    counts = torch.zeros(num_states * num_states, dtype=torch.float64, device=dev)
    counts.index_add_(0, start * num_states + nxt.long(),
                      torch.ones_like(start, dtype=torch.float64))
    return counts.reshape(num_states, num_states) / num_samples


def gibbs_transition_matrix(
    log_joint: Tensor, blocks: list[list[int]], scan: str = "systematic"
) -> Tensor:
    """The exact Gibbs transition matrix on the flattened joint state space of a small model.

    A block update ``B`` moves ``x -> x'`` with probability ``p(x'_B | x_{-B})`` when
    ``x'_{-B} = x_{-B}`` (11.124); it satisfies detailed balance (11.125). A systematic sweep is
    the product of the block matrices in order (stationary, generally not reversible); a random
    scan is their average (reversible).

    Parameters
    ----------
    log_joint : Tensor (c_1, ..., c_n)
        Unnormalised log-probabilities of every joint state (``-inf`` allowed, not everywhere
        in a conditional that is reached).
    blocks : list of lists of int
        Variable (dimension) indices of each block.
    scan : {"systematic", "random"}

    Returns
    -------
    Tensor (K, K), ``K = prod c_i``
        Row-stochastic, rows and columns in row-major order of the joint states.

    Examples
    --------
    >>> import torch
    >>> lj = torch.log(torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=torch.float64))
    >>> P = gibbs_transition_matrix(lj, [[0], [1]])
    >>> torch.allclose(lj.exp().reshape(-1) @ P, lj.exp().reshape(-1))
    True
    """
    if scan not in ("systematic", "random"):
        raise ValidationError("gibbs_transition_matrix", "scan must be 'systematic' or 'random'",
                              found=repr(scan))
    n = log_joint.dim()
    K = log_joint.numel()
    dev = log_joint.device
    grids = torch.meshgrid(*[torch.arange(c, device=dev) for c in log_joint.shape],
                           indexing="ij")
    states = torch.stack(grids, -1).reshape(K, n)  # joint state k -> its variable values
    zero = torch.zeros((), dtype=log_joint.dtype, device=dev)
    mats = []
    for b in blocks:
        if not b or any(not 0 <= i < n for i in b):
            raise ShapeError("gibbs_transition_matrix", f"block indices must lie in [0, {n})",
                             found=b)
        cond = log_joint - torch.logsumexp(log_joint, dim=b, keepdim=True)  # log p(x_B | x_-B)
        cond = torch.nan_to_num(cond, nan=-torch.inf).reshape(1, K).exp().expand(K, K)
        rest = [i for i in range(n) if i not in b]
        if rest:
            same_rest = (states[:, None, rest] == states[None, :, rest]).all(-1)
            mats.append(torch.where(same_rest, cond, zero))
        else:
            mats.append(cond)
    if scan == "random":
        return torch.stack(mats).mean(0)
    out = mats[0]
    for m in mats[1:]:
        out = out @ m
    return out
