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
    DtypeMismatchError,
    MemoryBudgetExceeded,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.validate import (
    check_choice,
    check_device,
    check_finite,
    check_int,
    check_log_values,
    check_real,
)
from samplers._kernel_utils import check_callable, check_generator_arg

__all__ = [
    "check_transition_matrix",
    "detailed_balance_violation",
    "empirical_transition_matrix",
    "gibbs_transition_matrix",
    "metropolis_hastings_matrix",
    "stationary_distribution",
]


#: Largest number of joint states for which :func:`gibbs_transition_matrix` builds its
#: (K, K) matrices (one per block): 2**13 states are 0.5 GiB per float64 matrix.
MAX_GIBBS_STATES = 2**13


def check_transition_matrix(P: Tensor, atol: float = 1e-8) -> None:
    """Raise unless ``P`` is a finite, floating, square (K >= 1), non-negative and
    row-stochastic tensor."""
    if not isinstance(P, Tensor) or P.dim() != 2 or P.shape[0] != P.shape[1]:
        raise ShapeError("transition matrix", "must be a square (K, K) tensor",
                         found=getattr(P, "shape", type(P).__name__))
    if P.shape[0] == 0:
        raise ShapeError("transition matrix", "needs at least one state", found=tuple(P.shape))
    if not P.is_floating_point():
        raise DtypeMismatchError("transition matrix", "must be a floating-point tensor",
                                 found=P.dtype, fix="use .double()")
    atol = check_real(atol, "check_transition_matrix atol", minimum=0.0)
    check_finite(P, "transition matrix")
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
        If power iteration does not converge in ``max_iter`` steps (e.g. a periodic chain), or
        the eigenvector found cannot be normalised (a reducible chain with several stationary
        distributions: use ``method="power"`` with an ``initial`` distribution).
    """
    check_transition_matrix(P)
    check_choice(method, "stationary_distribution method", ("eig", "power"))
    tol = check_real(tol, "stationary_distribution tol", minimum=0.0, strict_minimum=True)
    max_iter = check_int(max_iter, "stationary_distribution max_iter", minimum=1)
    if initial is not None:
        K0 = P.shape[0]
        if not isinstance(initial, Tensor) or initial.shape != (K0,):
            raise ShapeError("stationary_distribution initial", f"must have shape (K,) = ({K0},)",
                             found=getattr(initial, "shape", type(initial).__name__))
        if not initial.is_floating_point():
            raise DtypeMismatchError("stationary_distribution initial",
                                     "must be a floating-point tensor", found=initial.dtype)
        check_finite(initial, "stationary_distribution initial")
        if bool((initial < 0).any()) or not bool(initial.sum() > 0):
            raise ValidationError("stationary_distribution initial",
                                  "must be non-negative with a positive sum",
                                  found=initial.tolist()[:8])
    if method == "eig":
        vals, vecs = torch.linalg.eig(P.T)
        i = int(torch.argmin((vals - 1).abs()))
        v = vecs[:, i].real.to(P.dtype)
        v = v / v.sum()
        pos: Tensor = v.clamp_min(0)
        out = pos / pos.sum()
        if not bool(torch.isfinite(out).all()):
            raise ConvergenceError(
                "stationary_distribution(method='eig')",
                "the eigenvector of eigenvalue 1 cannot be normalised to a distribution",
                fix="the chain may be reducible (several stationary distributions); use "
                "method='power' with an initial distribution")
        return out
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
    if not isinstance(pi, Tensor) or pi.shape != P.shape[:1]:
        raise ShapeError("detailed_balance_violation", "pi must have shape (K,)",
                         found=tuple(pi.shape) if isinstance(pi, Tensor) else type(pi).__name__)
    if not pi.is_floating_point():
        raise DtypeMismatchError("detailed_balance_violation pi",
                                 "must be a floating-point tensor", found=pi.dtype)
    check_finite(pi, "detailed_balance_violation pi")
    flow = pi[:, None] * P
    return (flow - flow.T).abs().max()


def metropolis_hastings_matrix(Q: Tensor, log_target: Tensor) -> Tensor:
    """The exact MH transition matrix for proposal ``Q`` (row-stochastic) and a discrete target.

    ``P_ij = Q_ij min(1, pi_j Q_ji / (pi_i Q_ij))`` for ``i != j``; the rejected mass stays on
    the diagonal (11.107-11.108). ``log_target`` (K,) may be unnormalised; ``-inf`` marks a
    state of probability zero (never entered), NaN and ``+inf`` are refused.
    """
    check_transition_matrix(Q)
    K = Q.shape[0]
    if not isinstance(log_target, Tensor) or log_target.shape != (K,):
        raise ShapeError("metropolis_hastings_matrix log_target", f"must have shape (K,) = ({K},)",
                         found=getattr(log_target, "shape", type(log_target).__name__))
    if not log_target.is_floating_point():
        raise DtypeMismatchError("metropolis_hastings_matrix log_target",
                                 "must be a floating-point tensor (log-probabilities)",
                                 found=log_target.dtype, fix="use .double()")
    check_log_values(log_target, "metropolis_hastings_matrix log_target",
                     allow_all_neg_inf=False)
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

    Raises
    ------
    ValidationError
        If ``step`` does not return integer states of shape (n,) in ``[0, K)``.
    """
    num_states = check_int(num_states, "empirical_transition_matrix num_states", minimum=1)
    num_samples = check_int(num_samples, "empirical_transition_matrix num_samples", minimum=1)
    check_callable("empirical_transition_matrix", step, "step")
    check_generator_arg(generator, None, "empirical_transition_matrix generator")
    dev = check_device(device, "empirical_transition_matrix device") if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    start = torch.arange(num_states, device=dev).repeat_interleave(num_samples)
    nxt = step(start, generator)
    if not isinstance(nxt, Tensor) or nxt.shape != start.shape:
        raise ShapeError("empirical_transition_matrix: step",
                         f"must return shape ({start.numel()},)",
                         found=getattr(nxt, "shape", type(nxt).__name__))
    if nxt.is_floating_point() or nxt.is_complex() or nxt.dtype == torch.bool:
        raise DtypeMismatchError("empirical_transition_matrix: step",
                                 "must return integer states", found=nxt.dtype)
    if nxt.device != dev:
        nxt = nxt.to(dev)
    if bool(((nxt < 0) | (nxt >= num_states)).any()):
        raise ValidationError("empirical_transition_matrix: step",
                              f"returned states outside [0, {num_states})",
                              found=nxt[(nxt < 0) | (nxt >= num_states)][:5].tolist())
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
    check_choice(scan, "gibbs_transition_matrix scan", ("systematic", "random"))
    if not isinstance(log_joint, Tensor) or log_joint.dim() < 1 or log_joint.numel() == 0:
        raise ShapeError("gibbs_transition_matrix log_joint",
                         "must be a non-empty tensor (c_1, ..., c_n)",
                         found=getattr(log_joint, "shape", type(log_joint).__name__))
    if not log_joint.is_floating_point():
        raise DtypeMismatchError("gibbs_transition_matrix log_joint",
                                 "must be a floating-point tensor (log-probabilities)",
                                 found=log_joint.dtype, fix="use .double()")
    check_log_values(log_joint, "gibbs_transition_matrix log_joint", allow_all_neg_inf=False)
    if isinstance(blocks, str | Tensor) or not isinstance(blocks, list | tuple) or not blocks:
        raise ValidationError("gibbs_transition_matrix blocks",
                              "must be a non-empty list of lists of variable indices",
                              found=repr(blocks)[:60])
    n = log_joint.dim()
    K = log_joint.numel()
    if K > MAX_GIBBS_STATES:
        raise MemoryBudgetExceeded(
            "gibbs_transition_matrix", f"{K} joint states would need (K, K) matrices of "
            f"{K * K * log_joint.element_size() / 2**30:.1f} GiB each (limit "
            f"{MAX_GIBBS_STATES} states)", fix="use a smaller model")
    dev = log_joint.device
    grids = torch.meshgrid(*[torch.arange(c, device=dev) for c in log_joint.shape],
                           indexing="ij")
    states = torch.stack(grids, -1).reshape(K, n)  # joint state k -> its variable values
    zero = torch.zeros((), dtype=log_joint.dtype, device=dev)
    mats = []
    for b in blocks:
        ok = isinstance(b, list | tuple) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in b)
        if not ok or not b or any(not 0 <= i < n for i in b) or len(set(b)) != len(b):
            raise ShapeError("gibbs_transition_matrix",
                             f"each block must list distinct int indices in [0, {n})",
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
