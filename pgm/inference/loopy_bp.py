"""Loopy belief propagation on the factor graph of a discrete model, in log space.

Sum-product (marginals and the Bethe estimate of log Z) and max-product (max-marginals and a
decoded assignment) run on the factor graph of any :class:`~pgm.bayesnet.BayesianNetwork` or
:class:`~pgm.markov.MarkovNetwork` after conditioning on hard / soft / batched evidence. The
schedule is synchronous ("flooding"): every iteration recomputes all variable-to-factor messages
from the previous factor-to-variable messages, then all factor-to-variable messages.

Messages are vectorised. All variables are padded to the largest cardinality ``K`` (padded states
carry ``-inf``), factors are grouped by arity into tensors of shape ``batch + (n, K, ..., K)``, and
messages live in one tensor of shape ``batch + (E, K)`` over the ``E`` (factor, variable) edges.
The variable side forms every "all incoming messages but one" product from exclusive prefix and
suffix sums (never ``a - a``, so ``-inf`` never produces NaN); the factor side reduces each arity
group with one log-sum-exp (or max) per argument slot. Evidence rows are a leading batch
dimension, never a Python loop.

On a tree the messages are exact after as many iterations as the tree's diameter and the Bethe
free energy equals ``-log Z``; on loopy graphs both are approximations, and the result says
whether the messages converged (textbook 11.3, "loopy belief propagation"). The textbook's own
chain algorithm, forward and backward messages and ``Z`` at any node (11.73)-(11.80), is
:func:`chain_belief_propagation`.

Examples
--------
>>> import torch
>>> from pgm.markov import ising_grid
>>> from pgm.inference.elimination import VariableElimination
>>> from pgm.inference.loopy_bp import loopy_belief_propagation
>>> mn = ising_grid(3, 3, coupling=0.1, field=0.1)
>>> res = loopy_belief_propagation(mn)
>>> res.converged
True
>>> exact = VariableElimination(mn).marginals()
>>> bool(max((res.marginals[v] - exact[v]).abs().max() for v in exact) < 1e-3)
True
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from pgm.inference._common import DiscreteModel, check_model
from pgm.inference.evidence import Evidence, apply_evidence, resolve_evidence
from probforge.errors import (
    ConvergenceError,
    DeviceMismatchError,
    DtypeMismatchError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import check_generator, finite_shift, logaddexp, logmatmulexp, logsumexp
from probforge.validate import check_int, check_log_values, check_real

__all__ = [
    "ChainBPResult",
    "LoopyBPResult",
    "LoopyBeliefPropagation",
    "chain_belief_propagation",
    "loopy_belief_propagation",
]

_SEMIRINGS = ("sum", "max")


class LoopyBPResult(NamedTuple):
    """Result of loopy belief propagation.

    Attributes
    ----------
    marginals : dict str -> Tensor of shape batch_shape + (card,)
        Beliefs of every unobserved variable, normalised to sum to one. Sum-product: approximate
        marginals (exact on trees). Max-product: max-marginals, rescaled to sum to one.
    converged : bool
        True when the largest change of any message (in probability) fell below ``tol`` in every
        evidence row before ``max_iter`` iterations. On loopy graphs False is common for strong
        or frustrated couplings: the beliefs are then the last iterate, not a fixed point.
    n_iter : int
        Iterations run (one iteration updates every message once).
    max_residual : Tensor, shape batch_shape
        Largest absolute change of a message probability in the last iteration, per evidence row.
    bethe_log_z : Tensor of shape batch_shape, or None
        Sum-product: the Bethe approximation of ``log Z`` (``log p(e)`` for a Bayesian network),
        ``-F_Bethe`` evaluated at the final beliefs; exact on trees. None for max-product.
    assignment : dict str -> LongTensor of shape batch_shape, or None
        Max-product: the state maximising each variable's max-marginal (the MAP assignment on a
        tree with a unique maximum). None for sum-product.
    """

    marginals: dict[str, Tensor]
    converged: bool
    n_iter: int
    max_residual: Tensor
    bethe_log_z: Tensor | None
    assignment: dict[str, Tensor] | None

    @property
    def bethe_free_energy(self) -> Tensor | None:
        """``F_Bethe = -bethe_log_z`` (sum-product only), shape batch_shape."""
        return None if self.bethe_log_z is None else -self.bethe_log_z


class _Group(NamedTuple):
    """Factors of one arity: padded log-tables and the variable index of every argument slot."""

    arity: int
    tables: Tensor  # batch + (n, K, ..., K), -inf at padded states
    var_index: Tensor  # (n, arity) long
    offset: int  # first edge id; edge of factor i, slot s is offset + i * arity + s


class _PaddedFactorGraph:
    """The evidence-reduced factor graph of a model, padded for vectorised message passing.

    Attributes
    ----------
    variables : list of str
        Variables that remain in some factor's scope (unobserved, or observed in only some rows).
    cards : list of int
    k : int
        Largest cardinality; every state axis is padded to it.
    batch_shape : tuple
    const : Tensor, shape batch_shape
        Sum of the log-values of factors left with an empty scope (fully observed).
    groups : list of _Group
    n_edges : int
    edge_var : LongTensor (E,)
        Variable of every edge.
    var_slots : LongTensor (V, D)
        Edges of every variable, padded with ``E`` (an extra all-zero message row).
    slot_of_edge : LongTensor (E,)
        Position ``v * D + j`` of each edge in ``var_slots``.
    degree : LongTensor (V,)
        Number of factors on each variable.
    state_mask : Tensor (V, K)
        0 for real states, -inf for padding.
    """

    def __init__(
        self,
        model: DiscreteModel,
        evidence: Any,
        soft_evidence: Any,
    ) -> None:
        factors = model.factors()
        self.dtype = factors[0].log_values.dtype
        self.device = factors[0].log_values.device
        self.model_name = str(getattr(model, "name", ""))
        self.evidence: Evidence = resolve_evidence(
            model.states, evidence, soft_evidence, dtype=self.dtype, device=self.device
        )
        tables, scopes = apply_evidence(factors, self.evidence)
        batch = tuple(self.evidence.batch_shape)
        self.batch_shape = batch
        in_scope = {v for s in scopes for v in s}
        self.variables = [v for v in model.variables if v in in_scope]
        index = {v: i for i, v in enumerate(self.variables)}
        all_cards = model.cards
        self.model_cards = all_cards
        self.cards = [all_cards[v] for v in self.variables]
        self.k = max(self.cards, default=1)
        k = self.k
        self.const = torch.zeros(batch, dtype=self.dtype, device=self.device)
        by_arity: dict[int, list[tuple[Tensor, tuple[str, ...]]]] = {}
        for t, scope in zip(tables, scopes, strict=True):
            if not scope:
                self.const = self.const + t
                continue
            by_arity.setdefault(len(scope), []).append((t, scope))
        self.groups: list[_Group] = []
        offset = 0
        for a in sorted(by_arity):
            padded = []
            for t, _scope in by_arity[a]:
                cards = tuple(t.shape[t.dim() - a:])
                t = t.expand(*batch, *cards)
                pad: list[int] = []
                for c in reversed(cards):
                    pad += [0, k - c]
                padded.append(F.pad(t, pad, value=-math.inf) if any(pad) else t)
            stacked = torch.stack(padded, dim=len(batch))
            var_index = torch.tensor([[index[v] for v in s] for _, s in by_arity[a]],
                                     dtype=torch.long, device=self.device)
            self.groups.append(_Group(a, stacked, var_index, offset))
            offset += var_index.numel()
        self.n_edges = offset
        n_vars = len(self.variables)
        if self.groups:
            self.edge_var = torch.cat([g.var_index.reshape(-1) for g in self.groups])
        else:
            self.edge_var = torch.zeros(0, dtype=torch.long, device=self.device)
        self.degree = torch.bincount(self.edge_var, minlength=n_vars)
        d_max = int(self.degree.max()) if n_vars else 0
        order = torch.argsort(self.edge_var, stable=True)
        start = torch.cumsum(self.degree, 0) - self.degree
        rank = torch.empty_like(self.edge_var)
        rank[order] = torch.arange(self.n_edges, device=self.device) - start[self.edge_var[order]]
        self.var_slots = torch.full((n_vars, d_max), self.n_edges, dtype=torch.long,
                                    device=self.device)
        self.var_slots[self.edge_var, rank] = torch.arange(self.n_edges, device=self.device)
        self.slot_of_edge = self.edge_var * d_max + rank
        self.d_max = d_max
        self.is_forest = self._count_components() == n_vars + self.n_factors - self.n_edges
        card_t = torch.tensor(self.cards, dtype=torch.long, device=self.device)
        valid = torch.arange(k, device=self.device)[None, :] < card_t[:, None]
        self.state_mask = torch.zeros((), dtype=self.dtype, device=self.device).masked_fill(
            ~valid, -math.inf)

    @property
    def n_factors(self) -> int:
        """Number of factors with a non-empty scope."""
        return sum(int(g.var_index.shape[0]) for g in self.groups)

    def _count_components(self) -> int:
        """Connected components of the bipartite variable-factor graph (union-find)."""
        n_vars = len(self.variables)
        parent = list(range(n_vars + self.n_factors))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        node = n_vars
        for g in self.groups:
            for row in g.var_index.tolist():
                for v in row:
                    ra, rb = find(node), find(v)
                    if ra != rb:
                        parent[ra] = rb
                node += 1
        return sum(1 for a in range(len(parent)) if find(a) == a)

    # shared pieces ------------------------------------------------------------------------------
    def incoming_sums(self, m_f2v: Tensor) -> tuple[Tensor, Tensor]:
        """Variable-to-factor messages (unnormalised) and every variable's total log-belief.

        Parameters
        ----------
        m_f2v : Tensor, shape batch + (E, K)

        Returns
        -------
        m_v2f : Tensor, shape batch + (E, K)
            Sum over the variable's other incoming messages, for every edge.
        belief : Tensor, shape batch + (V, K)
            Sum of all incoming messages (unnormalised log-belief).
        """
        nb = len(self.batch_shape)
        zero_row = torch.zeros((*self.batch_shape, 1, self.k), dtype=self.dtype,
                               device=self.device)
        inc = torch.cat([m_f2v, zero_row], dim=nb)[..., self.var_slots, :]  # batch+(V, D, K)
        csum = inc.cumsum(-2)
        belief = csum[..., -1, :] + self.state_mask
        zeros = torch.zeros_like(inc[..., :1, :])
        prefix = torch.cat([zeros, csum[..., :-1, :]], dim=-2)
        rsum = inc.flip(-2).cumsum(-2).flip(-2)
        suffix = torch.cat([rsum[..., 1:, :], zeros], dim=-2)
        cav = prefix + suffix + self.state_mask[:, None, :]
        flat = cav.reshape(*self.batch_shape, -1, self.k)
        return flat[..., self.slot_of_edge, :], belief

    def group_messages(self, g: _Group, m_v2f: Tensor) -> Tensor:
        """The variable-to-factor messages of one arity group, shape batch + (n, arity, K)."""
        n = g.var_index.shape[0]
        block = m_v2f[..., g.offset: g.offset + n * g.arity, :]
        return block.reshape(*self.batch_shape, n, g.arity, self.k)

    def broadcast_slot(self, msg: Tensor, slot: int, arity: int) -> Tensor:
        """``msg`` (batch + (n, K)) viewed to broadcast against a table on argument ``slot``."""
        shape = [1] * arity
        shape[slot] = self.k
        return msg.reshape(*msg.shape[:-1], *shape)


def _normalise(logm: Tensor) -> Tensor:
    """Log-normalise over the last axis; an all ``-inf`` row stays ``-inf`` (no NaN)."""
    return logm - finite_shift(logsumexp(logm, -1, keepdim=True))


def _check_options(semiring: Any, damping: Any, max_iter: Any, tol: Any
                   ) -> tuple[str, float, int, float]:
    """The options as (semiring, damping in [0, 1), max_iter >= 1, finite tol > 0)."""
    if semiring not in _SEMIRINGS:
        raise ValidationError("loopy belief propagation", "semiring must be 'sum' or 'max'",
                              found=repr(semiring), fix="use semiring='sum' or 'max'")
    if isinstance(damping, bool) or not isinstance(damping, numbers.Real | Tensor) or not (
            0.0 <= float(damping) < 1.0):
        raise ValidationError(
            "loopy belief propagation", "damping must be a number in [0, 1)",
            found=repr(damping),
            fix="use 0 for none, about 0.5 to stabilise oscillating messages")
    damping = check_real(damping, "loopy belief propagation damping")
    max_iter = check_int(max_iter, "loopy belief propagation max_iter", minimum=1)
    tol = check_real(tol, "loopy belief propagation tol", minimum=0.0, strict_minimum=True)
    return semiring, damping, max_iter, tol


class LoopyBeliefPropagation:
    """Loopy belief propagation (sum-product or max-product) with a flooding schedule.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
        Anything with ``variables``, ``states``, ``cards`` and ``factors()``.
    semiring : {"sum", "max"}
        Sum-product (marginals, Bethe log Z) or max-product (max-marginals, decoding).
    damping : float in [0, 1)
        Each new message is ``(1 - damping) * new + damping * old`` (in probability).
    max_iter : int
        Iteration cap, an int >= 1.
    tol : float
        Convergence threshold (finite, > 0) on the largest change of a message probability. On
        a tree (a forest factor graph) without damping the run instead continues until the
        messages stop changing (to rounding), which takes at most the graph's diameter in
        iterations and makes the result exact.

    Evidence with N = 0 rows gives a result with a leading dimension 0 everywhere
    (``converged=True``, ``n_iter=0``): there is nothing to iterate on.

    Examples
    --------
    >>> import torch
    >>> from pgm.markov import ising_grid
    >>> bp = LoopyBeliefPropagation(ising_grid(2, 3, coupling=0.3), damping=0.2)
    >>> res = bp.run(evidence={"x0_0": ["-1", "+1"]})  # two evidence rows at once
    >>> res.marginals["x1_2"].shape, res.bethe_log_z.shape
    (torch.Size([2, 2]), torch.Size([2]))
    """

    def __init__(
        self,
        model: DiscreteModel,
        *,
        semiring: str = "sum",
        damping: float = 0.0,
        max_iter: int = 200,
        tol: float = 1e-8,
    ) -> None:
        check_model(model, "loopy belief propagation")
        semiring, damping, max_iter, tol = _check_options(semiring, damping, max_iter, tol)
        self.model = model
        self.semiring = semiring
        self.damping = damping
        self.max_iter = max_iter
        self.tol = tol

    def _factor_to_var(self, fg: _PaddedFactorGraph, m_v2f: Tensor) -> Tensor:
        nb = len(fg.batch_shape)
        pieces = []
        for g in fg.groups:
            if g.arity == 1:
                pieces.append(g.tables)
                continue
            inm = fg.group_messages(g, m_v2f)
            outs = []
            for s in range(g.arity):
                acc = g.tables
                for t in range(g.arity):
                    if t != s:
                        acc = acc + fg.broadcast_slot(inm[..., t, :], t, g.arity)
                dims = tuple(nb + 1 + t for t in range(g.arity) if t != s)
                outs.append(logsumexp(acc, dims) if self.semiring == "sum"
                            else acc.amax(dim=dims))
            pieces.append(torch.stack(outs, dim=-2).reshape(*fg.batch_shape, -1, fg.k))
        return torch.cat(pieces, dim=nb)

    def _initial(self, fg: _PaddedFactorGraph, generator: torch.Generator | None) -> Tensor:
        mask = fg.state_mask[fg.edge_var]  # (E, K)
        shape = (*fg.batch_shape, fg.n_edges, fg.k)
        if generator is None:
            m = mask.expand(shape)
        else:
            check_generator(generator, fg.device)
            u = torch.rand(shape, generator=generator, dtype=fg.dtype, device=fg.device)
            m = torch.log(0.5 + u) + mask
        return _normalise(m)

    def run(
        self,
        evidence: Any = None,
        soft_evidence: Any = None,
        *,
        generator: torch.Generator | None = None,
    ) -> LoopyBPResult:
        """Pass messages until convergence or ``max_iter``.

        Parameters
        ----------
        evidence, soft_evidence
            Hard evidence (state names or indices; lists / LongTensors of N rows give a leading
            batch dimension) and soft evidence, as in
            :func:`pgm.inference.evidence.resolve_evidence`.
        generator : torch.Generator, optional
            If given, the messages start at random positive values drawn from it (to probe for
            other fixed points); otherwise they start uniform. The global RNG is never used.

        Returns
        -------
        LoopyBPResult
            With N = 0 evidence rows: every tensor has leading dimension 0, ``converged`` is
            True and ``n_iter`` 0.

        Raises
        ------
        ZeroProbabilityEvidence
            If the evidence is impossible (or the messages reach a state where every value of
            some variable has zero belief, which deterministic factors can cause on loopy graphs).
        ConvergenceError
            If the messages become NaN (never expected; a guard against silent garbage).
        """
        fg = _PaddedFactorGraph(self.model, evidence, soft_evidence)
        check_generator(generator, fg.device)  # also when there is nothing to iterate
        hidden = [v for v in fg.variables if v not in fg.evidence.hard]
        where = f"loopy BP on model {fg.model_name!r}"
        if 0 in fg.batch_shape:  # no evidence rows: empty answers, nothing to iterate
            cards = fg.model_cards
            empty = torch.zeros(fg.batch_shape, dtype=fg.dtype, device=fg.device)
            margs = {v: torch.zeros((*fg.batch_shape, cards[v]), dtype=fg.dtype,
                                    device=fg.device) for v in hidden}
            if self.semiring == "max":
                best = {v: torch.zeros(fg.batch_shape, dtype=torch.long, device=fg.device)
                        for v in hidden}
                return LoopyBPResult(margs, True, 0, empty, None, best)
            return LoopyBPResult(margs, True, 0, empty, empty.clone(), None)
        if not fg.variables:
            _raise_if_impossible(fg.const, fg, where)
            empty = torch.zeros(fg.batch_shape, dtype=fg.dtype, device=fg.device)
            bethe = fg.const if self.semiring == "sum" else None
            return LoopyBPResult({}, True, 0, empty, bethe,
                                 {} if self.semiring == "max" else None)
        m = self._initial(fg, generator)
        log_keep = math.log(self.damping) if self.damping > 0 else 0.0
        log_new = math.log1p(-self.damping)
        # On a forest the messages become exact after at most diameter iterations and then stop
        # changing; without damping, wait for that rather than stopping at tol.
        eps = torch.finfo(fg.dtype).eps
        threshold = min(self.tol, 8 * eps) if fg.is_forest and self.damping == 0 else self.tol
        converged, n_iter = False, 0
        residual = torch.full(fg.batch_shape, math.inf, dtype=fg.dtype, device=fg.device)
        for n_iter in range(1, self.max_iter + 1):
            m_v2f, _ = fg.incoming_sums(m)
            new = _normalise(self._factor_to_var(fg, _normalise(m_v2f)))
            if self.damping > 0:
                new = logaddexp(new + log_new, m + log_keep)
            residual = (new.exp() - m.exp()).abs().amax(dim=(-2, -1))
            m = new
            worst = float(residual.max())
            if math.isnan(worst):
                raise ConvergenceError(where, "messages became NaN", found=f"iteration {n_iter}")
            if worst <= threshold:
                converged = True
                break
        m_v2f, belief = fg.incoming_sums(m)
        log_norm = logsumexp(belief, -1, keepdim=True)
        _raise_if_impossible(log_norm.squeeze(-1).amin(-1) + fg.const, fg, where)
        log_b = belief - log_norm
        index = {v: i for i, v in enumerate(fg.variables)}
        marginals = {v: log_b[..., index[v], : fg.cards[index[v]]].exp() for v in hidden}
        if self.semiring == "max":
            assignment = {v: marginals[v].argmax(-1) for v in hidden}
            return LoopyBPResult(marginals, converged, n_iter, residual, None, assignment)
        bethe = _bethe_log_z(fg, _normalise(m_v2f), log_b)
        _raise_if_impossible(bethe, fg, where)
        return LoopyBPResult(marginals, converged, n_iter, residual, bethe, None)


def _raise_if_impossible(log_z: Tensor, fg: _PaddedFactorGraph, where: str) -> None:
    bad = torch.isneginf(log_z)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(-1)).reshape(-1)[:5].tolist()
        raise ZeroProbabilityEvidence(
            where,
            f"every state of some variable has zero belief in evidence rows {rows} of "
            f"{int(bad.numel())}: the evidence has probability zero, or loopy BP's messages "
            "contradict the model's deterministic (zero) entries",
            fix="check the evidence; for models with hard constraints use exact inference",
        )


def _plogp_sum(log_p: Tensor, log_q: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``sum p * log_q`` over ``dims`` with ``0 * anything = 0`` and no NaN.

    ``log_q`` must be finite wherever ``p = exp(log_p) > 0``.
    """
    pos = torch.isfinite(log_p)
    zero = torch.zeros((), dtype=log_p.dtype, device=log_p.device)
    p = torch.where(pos, log_p, zero).exp() * pos
    out: Tensor = (p * torch.where(pos, log_q, zero)).sum(dim=dims)
    return out


def _bethe_log_z(fg: _PaddedFactorGraph, m_v2f: Tensor, log_b: Tensor) -> Tensor:
    """``-F_Bethe = sum_f E_bf[log psi_f] + sum_f H(b_f) - sum_v (d_v - 1) H(b_v)``."""
    nb = len(fg.batch_shape)
    total = fg.const.expand(fg.batch_shape).clone()
    for g in fg.groups:
        inm = fg.group_messages(g, m_v2f)
        acc = g.tables
        for s in range(g.arity):
            acc = acc + fg.broadcast_slot(inm[..., s, :], s, g.arity)
        dims = tuple(nb + 1 + t for t in range(g.arity))
        log_bf = acc - finite_shift(logsumexp(acc, dims, keepdim=True))
        # sum_x b_f(x) (log psi_f(x) - log b_f(x)); psi_f > 0 wherever b_f > 0
        total = total + _plogp_sum(log_bf, g.tables - torch.where(
            torch.isfinite(log_bf), log_bf, torch.zeros_like(log_bf)), dims).sum(-1)
    neg_h = _plogp_sum(log_b, log_b, (-1,))  # batch + (V,)
    return total + (neg_h * (fg.degree - 1).to(log_b.dtype)).sum(-1)


def loopy_belief_propagation(
    model: DiscreteModel,
    evidence: Any = None,
    soft_evidence: Any = None,
    *,
    semiring: str = "sum",
    damping: float = 0.0,
    max_iter: int = 200,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
) -> LoopyBPResult:
    """Run loopy belief propagation once; see :class:`LoopyBeliefPropagation`.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence, soft_evidence
        See :func:`pgm.inference.evidence.resolve_evidence`.
    semiring, damping, max_iter, tol
        See :class:`LoopyBeliefPropagation`.
    generator : torch.Generator, optional
        Random initial messages (else uniform).

    Returns
    -------
    LoopyBPResult

    Examples
    --------
    >>> from pgm.io import bundled_network
    >>> res = loopy_belief_propagation(bundled_network("asia"), {"smoke": "yes"})
    >>> res.converged, res.marginals["lung"].shape
    (True, torch.Size([2]))
    """
    bp = LoopyBeliefPropagation(model, semiring=semiring, damping=damping, max_iter=max_iter,
                                tol=tol)
    return bp.run(evidence, soft_evidence, generator=generator)


# the textbook's chain algorithm (11.73)-(11.80) ---------------------------------------------------
class ChainBPResult(NamedTuple):
    """Messages, partition function and marginals of a chain MRF (textbook 11.73-11.80).

    Attributes
    ----------
    forward : Tensor, shape batch + (T, K)
        ``log mu_{t-1,t}(x_t)`` (11.78); ``mu_{0,1} = 1`` (erratum 6: the text's "t = 1..T-1"
        means the messages into nodes 2..T, the boundary message being one).
    backward : Tensor, shape batch + (T, K)
        ``log mu_{t+1,t}(x_t)`` (11.79); ``mu_{T+1,T} = 1``.
    log_z_per_node : Tensor, shape batch + (T,)
        ``log Z`` computed at every node by (11.80); all equal up to rounding.
    marginals : Tensor, shape batch + (T, K)
        ``p(x_t)`` by (11.77).
    """

    forward: Tensor
    backward: Tensor
    log_z_per_node: Tensor
    marginals: Tensor

    @property
    def log_z(self) -> Tensor:
        """``log Z`` (from node 1), shape batch."""
        return self.log_z_per_node[..., 0]


def chain_belief_propagation(
    log_potentials: Tensor, log_unary: Tensor | None = None
) -> ChainBPResult:
    """Sum-product on a chain ``p(x) = prod_t phi(x_t, x_{t+1}) / Z`` (textbook 11.73-11.80).

    Parameters
    ----------
    log_potentials : Tensor, shape batch + (T - 1, K, K)
        ``log phi_t(x_t, x_{t+1})``, a floating-point tensor; ``-inf`` is a zero potential,
        NaN and ``+inf`` are refused. ``T >= 2`` and ``K >= 1``. An empty batch (a batch
        dimension of size 0) gives empty results.
    log_unary : Tensor, shape batch + (T, K), optional
        Node potentials ``log psi_t(x_t)`` (absent from the textbook's chain; zero by default):
        a floating-point tensor of the same dtype and device, no NaN or ``+inf``.

    Returns
    -------
    ChainBPResult

    Raises
    ------
    ZeroProbabilityEvidence
        If every configuration has zero potential (``Z = 0``).

    Examples
    --------
    >>> import torch
    >>> phi = torch.log(torch.tensor([[[2.0, 1.0], [1.0, 2.0]]] * 3, dtype=torch.float64))
    >>> res = chain_belief_propagation(phi)   # T = 4 binary variables
    >>> res.log_z_per_node.exp()              # Z from (11.80) at every node
    tensor([54., 54., 54., 54.], dtype=torch.float64)
    """
    lp = log_potentials
    if not isinstance(lp, Tensor) or not lp.is_floating_point() or lp.dim() < 3 \
            or lp.shape[-1] != lp.shape[-2] or lp.shape[-3] < 1 or lp.shape[-1] < 1:
        raise ShapeError(
            "chain_belief_propagation", "log_potentials must be a float tensor of shape "
            "batch + (T - 1, K, K) with T >= 2",
            found=tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__,
        )
    check_log_values(lp, "chain_belief_propagation log_potentials")
    t_len, k = lp.shape[-3] + 1, lp.shape[-1]
    batch = lp.shape[:-3]
    if log_unary is None:
        u = torch.zeros((*batch, t_len, k), dtype=lp.dtype, device=lp.device)
    else:
        if not isinstance(log_unary, Tensor):
            raise ValidationError("chain_belief_propagation", "log_unary must be a torch.Tensor",
                                  found=type(log_unary).__name__)
        if log_unary.dtype != lp.dtype:
            raise DtypeMismatchError("chain_belief_propagation", "log_unary must have the dtype "
                                     "of log_potentials", found=f"{log_unary.dtype} vs "
                                     f"{lp.dtype}", fix=f"convert with .to({lp.dtype})")
        if log_unary.device != lp.device:
            raise DeviceMismatchError("chain_belief_propagation", "log_unary must be on the "
                                      "device of log_potentials",
                                      found=f"{log_unary.device} vs {lp.device}")
        if log_unary.dim() < 2 or log_unary.shape[-2:] != (t_len, k):
            raise ShapeError("chain_belief_propagation", f"log_unary needs shape batch + "
                             f"({t_len}, {k})", found=tuple(log_unary.shape))
        check_log_values(log_unary, "chain_belief_propagation log_unary")
        u = log_unary
        try:
            batch = torch.Size(torch.broadcast_shapes(batch, u.shape[:-2]))  # type: ignore[no-untyped-call]
        except RuntimeError as err:
            raise ShapeError("chain_belief_propagation", "the batch shapes of log_potentials "
                             "and log_unary do not broadcast",
                             found=f"{tuple(batch)} vs {tuple(u.shape[:-2])}") from err
        u = u.expand(*batch, t_len, k)
        lp = lp.expand(*batch, t_len - 1, k, k)
    one = torch.zeros((*batch, k), dtype=lp.dtype, device=lp.device)
    fwd = [one]
    for t in range(t_len - 1):  # (11.78)
        prev = (fwd[t] + u[..., t, :]).unsqueeze(-2)
        fwd.append(logmatmulexp(prev, lp[..., t, :, :]).squeeze(-2))
    bwd = [one] * t_len
    for t in range(t_len - 2, -1, -1):  # (11.79)
        nxt = (bwd[t + 1] + u[..., t + 1, :]).unsqueeze(-1)
        bwd[t] = logmatmulexp(lp[..., t, :, :], nxt).squeeze(-1)
    forward, backward = torch.stack(fwd, -2), torch.stack(bwd, -2)
    joint = forward + backward + u
    log_z = logsumexp(joint, -1)  # (11.80) at every node
    if bool(torch.isneginf(log_z).any()):
        raise ZeroProbabilityEvidence("chain_belief_propagation",
                                      "every configuration has zero potential (Z = 0)")
    return ChainBPResult(forward, backward, log_z, (joint - log_z.unsqueeze(-1)).exp())
