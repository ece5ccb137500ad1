"""Mean-field variational inference for discrete models (textbook 11.4).

The approximation is fully factorised, ``q(x) = prod_j q_j(x_j)`` (11.86), over the unobserved
variables of a :class:`~pgm.bayesnet.BayesianNetwork` or :class:`~pgm.markov.MarkovNetwork`
conditioned on evidence. Coordinate ascent (CAVI) sets each factor in turn to its optimum (11.94)

    q_j(x_j) ∝ exp(E_{q_-j}[log p~(x)]) = exp(sum_{f ∋ j} E_{q_{f \\ j}}[log phi_f(x_f)]),

where only the factors containing ``x_j`` matter (erratum 7: the expectation is over every other
variable). The ELBO (11.87)

    ELBO(q) = sum_f E_q[log phi_f] + sum_j H(q_j) <= log Z    (log p(e) for a Bayesian network)

is recorded after every sweep and never decreases: each update maximises it exactly in ``q_j``.

Updates are sequential over variables, as CAVI requires; each one is vectorised over the evidence
rows (a leading batch dimension) and over the variable's factors (one einsum per arity and
argument slot).

Zero potentials (``-inf``, e.g. deterministic CPDs) make ``E_q[log phi] = -inf`` for every state
once ``q`` has full support, so the literal update (11.94) is undefined from a uniform start. They
are treated as the limit ``log phi = -M``, ``M -> inf``: an update keeps only the states of
``x_j`` with the least expected number of violated zero entries and weights those by (11.94).
As soon as ``q`` puts no mass on forbidden configurations (the ELBO is finite) this *is* (11.94),
and a state that some factor forbids given the neighbours' ``q`` gets ``q_j = 0`` exactly.

Examples
--------
>>> import torch
>>> from pgm.markov import ising_grid
>>> from pgm.inference.elimination import VariableElimination
>>> from pgm.inference.meanfield import mean_field
>>> mn = ising_grid(3, 3, coupling=0.1, field=0.2)
>>> res = mean_field(mn)
>>> res.converged, bool(res.elbo <= VariableElimination(mn).log_evidence())
(True, True)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pgm.inference._common import DiscreteModel, check_model
from pgm.inference.loopy_bp import _PaddedFactorGraph
from probforge.errors import ZeroProbabilityEvidence
from probforge.ops import check_generator, finite_shift, logsumexp
from probforge.validate import check_int, check_real

__all__ = ["MeanField", "MeanFieldResult", "mean_field"]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class MeanFieldResult(NamedTuple):
    """Result of mean-field coordinate ascent.

    Attributes
    ----------
    marginals : dict str -> Tensor of shape batch_shape + (card,)
        ``q_j`` of every unobserved variable.
    elbo_history : Tensor, shape (n_iter + 1,) + batch_shape
        ELBO of the initial ``q`` and after every sweep; non-decreasing, and ``<= log Z``
        (``log p(e)`` for a Bayesian network). May start at ``-inf`` when the initial ``q`` puts
        mass on configurations the model forbids.
    converged : bool
        True when no ``q_j`` probability moved by more than ``tol`` in a sweep (every row).
    n_iter : int
        Number of sweeps (one sweep updates every variable once).
    """

    marginals: dict[str, Tensor]
    elbo_history: Tensor
    converged: bool
    n_iter: int

    @property
    def elbo(self) -> Tensor:
        """The final ELBO, shape batch_shape: a lower bound on ``log Z``."""
        return self.elbo_history[-1]


class _Update(NamedTuple):
    """The factors of one variable that share an arity and the variable's argument slot."""

    group: int
    slot: int
    factors: Tensor  # (n,) long: factor indices within the group
    others: Tensor  # (n, arity - 1) long: variable indices of the other slots
    equation: str


class MeanField:
    """Mean-field variational inference by coordinate ascent (CAVI).

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
        Anything with ``variables``, ``states``, ``cards`` and ``factors()``.
    max_iter : int
        Cap on the number of sweeps, an int >= 1.
    tol : float
        Convergence threshold (finite, > 0) on the largest change of a ``q_j`` probability in
        one sweep.

    Evidence with N = 0 rows gives a result with a leading dimension 0 everywhere
    (``elbo_history`` of shape (1, 0), ``converged=True``, ``n_iter=0``).

    Examples
    --------
    >>> from pgm.io import bundled_network
    >>> res = MeanField(bundled_network("asia")).run({"dysp": ["yes", "no"]})
    >>> res.marginals["bronc"].shape, res.elbo_history.shape[1:]
    (torch.Size([2, 2]), torch.Size([2]))
    """

    def __init__(self, model: DiscreteModel, *, max_iter: int = 500, tol: float = 1e-8) -> None:
        check_model(model, "mean field")
        self.model = model
        self.max_iter = check_int(max_iter, "mean field max_iter", minimum=1)
        self.tol = check_real(tol, "mean field tol", minimum=0.0, strict_minimum=True)

    # preparation --------------------------------------------------------------------------------
    @staticmethod
    def _plan(fg: _PaddedFactorGraph) -> list[list[_Update]]:
        """For every variable: its factors grouped by (arity group, slot)."""
        plans: list[list[_Update]] = [[] for _ in fg.variables]
        for gi, g in enumerate(fg.groups):
            vi = g.var_index.cpu()
            for s in range(g.arity):
                col = vi[:, s]
                for v in torch.unique(col).tolist():
                    rows = torch.nonzero(col == v).reshape(-1)
                    others = vi[rows][:, [t for t in range(g.arity) if t != s]]
                    letters = _LETTERS[: g.arity]
                    eq = "...n" + letters + "".join(
                        f",...n{letters[t]}" for t in range(g.arity) if t != s
                    ) + "->...n" + letters[s]
                    plans[v].append(_Update(gi, s, rows.to(fg.device), others.to(fg.device), eq))
        return plans

    @staticmethod
    def _split_tables(fg: _PaddedFactorGraph) -> list[tuple[Tensor, Tensor]]:
        """Per arity group: log-tables with -inf replaced by 0, and the -inf indicator."""
        out = []
        for g in fg.groups:
            forbidden = torch.isneginf(g.tables)
            out.append((g.tables.masked_fill(forbidden, 0.0), forbidden.to(g.tables.dtype)))
        return out

    # the two computations -----------------------------------------------------------------------
    @staticmethod
    def _expected_log_potential(
        fg: _PaddedFactorGraph, split: list[tuple[Tensor, Tensor]], q: Tensor,
        updates: list[_Update],
    ) -> tuple[Tensor, Tensor]:
        """``sum_{f ∋ j} E_{q_{f \\ j}}[log phi_f]`` as a function of ``x_j``, split in two.

        Returns
        -------
        finite : Tensor, batch + (K,)
            The expectation with zero potentials counted as ``log phi = 0``.
        violation : Tensor, batch + (K,)
            Expected number of zero-potential entries hit, ``sum_f q_{f \\ j}(phi_f = 0)``; the
            true expectation is ``-inf`` wherever it is positive.
        """
        nb = len(fg.batch_shape)
        total = torch.zeros((*fg.batch_shape, fg.k), dtype=fg.dtype, device=fg.device)
        viol = torch.zeros_like(total)
        for u in updates:
            finite, forbidden = split[u.group]
            tab = finite.index_select(nb, u.factors)
            forb = forbidden.index_select(nb, u.factors)
            if u.others.shape[1] == 0:  # unary factors
                total = total + tab.sum(nb)
                viol = viol + forb.sum(nb)
                continue
            qs = [q[..., u.others[:, t], :] for t in range(u.others.shape[1])]
            total = total + torch.einsum(u.equation, tab, *qs).sum(nb)
            viol = viol + torch.einsum(u.equation, forb, *qs).sum(nb)
        return total, viol

    @staticmethod
    def _elbo(fg: _PaddedFactorGraph, split: list[tuple[Tensor, Tensor]], q: Tensor) -> Tensor:
        """``sum_f E_q[log phi_f] + sum_j H(q_j)`` (plus fully observed factors), batch shape."""
        total = fg.const.expand(fg.batch_shape).clone()
        for g, (finite, forbidden) in zip(fg.groups, split, strict=True):
            letters = _LETTERS[: g.arity]
            eq = "...n" + letters + "".join(f",...n{c}" for c in letters) + "->..."
            qs = [q[..., g.var_index[:, t], :] for t in range(g.arity)]
            val = torch.einsum(eq, finite, *qs)
            bad = torch.einsum(eq, forbidden, *qs)
            total = total + val.masked_fill(bad > 0, -math.inf)
        pos = q > 0
        logq = torch.log(torch.where(pos, q, torch.ones_like(q)))
        entropy = -(q * logq).sum(dim=(-2, -1))
        return total + entropy

    def _initial(self, fg: _PaddedFactorGraph, generator: torch.Generator | None) -> Tensor:
        valid = torch.isfinite(fg.state_mask)
        shape = (*fg.batch_shape, len(fg.variables), fg.k)
        if generator is None:
            w = valid.to(fg.dtype).expand(shape)
        else:
            check_generator(generator, fg.device)
            u = torch.rand(shape, generator=generator, dtype=fg.dtype, device=fg.device)
            w = (0.05 + u) * valid
        return w / w.sum(-1, keepdim=True)

    @classmethod
    def _update(
        cls, fg: _PaddedFactorGraph, split: list[tuple[Tensor, Tensor]], q: Tensor, j: int,
        updates: list[_Update],
    ) -> Tensor:
        """The CAVI optimum (11.94) for variable ``j``, batch + (K,).

        Zero potentials are the limit ``log phi = -M``, ``M -> inf``: the update keeps the states
        of least expected violation and weights them by ``exp(E[log phi])``. When some state has
        no violation (always, once q puts no mass on forbidden configurations) this is exactly
        (11.94); before that, it moves q towards configurations the model allows.
        """
        finite, viol = cls._expected_log_potential(fg, split, q, updates)
        viol = viol.masked_fill(torch.isneginf(fg.state_mask[j]), math.inf)
        least = viol.amin(-1, keepdim=True)
        allowed = viol <= least * (1.0 + 1e-6)
        logit = finite.masked_fill(~allowed, -math.inf)
        return (logit - finite_shift(logsumexp(logit, -1, keepdim=True))).exp()

    # driver ---------------------------------------------------------------------------------
    def run(
        self,
        evidence: Any = None,
        soft_evidence: Any = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MeanFieldResult:
        """Coordinate ascent until convergence or ``max_iter`` sweeps.

        Parameters
        ----------
        evidence, soft_evidence
            As in :func:`pgm.inference.evidence.resolve_evidence`; N evidence rows give a
            leading batch dimension N everywhere.
        generator : torch.Generator, optional
            Random initial ``q`` drawn from it; uniform ``q`` when None. The global RNG is
            never used.

        Returns
        -------
        MeanFieldResult

        Raises
        ------
        ZeroProbabilityEvidence
            If the final ``q`` still puts mass on configurations of probability zero (ELBO
            ``-inf``): the evidence is impossible, or the zero entries left coordinate ascent no
            fully factorised ``q`` with positive mass from this start.
        """
        fg = _PaddedFactorGraph(self.model, evidence, soft_evidence)
        check_generator(generator, fg.device)  # also when there is nothing to iterate
        where = f"mean field on model {fg.model_name!r}"
        if 0 in fg.batch_shape:  # no evidence rows: empty answers, nothing to iterate
            cards = self.model.cards
            margs = {v: torch.zeros((*fg.batch_shape, cards[v]), dtype=fg.dtype,
                                    device=fg.device)
                     for v in fg.variables if v not in fg.evidence.hard}
            empty = torch.zeros((1, *fg.batch_shape), dtype=fg.dtype, device=fg.device)
            return MeanFieldResult(margs, empty, True, 0)
        split = self._split_tables(fg)
        q = self._initial(fg, generator)
        if not fg.variables:
            elbo = fg.const.expand(fg.batch_shape).clone()
            _raise_if_impossible(elbo, where, "every variable is observed")
            return MeanFieldResult({}, elbo.unsqueeze(0), True, 0)
        plans = self._plan(fg)
        history = [self._elbo(fg, split, q)]
        converged, n_iter = False, 0
        while n_iter < self.max_iter and not converged:
            n_iter += 1
            old = q.clone()
            for j, updates in enumerate(plans):
                q[..., j, :] = self._update(fg, split, q, j, updates)
            history.append(self._elbo(fg, split, q))
            converged = float((q - old).abs().max()) < self.tol
        _raise_if_impossible(history[-1], where, "after the last sweep the ELBO is -inf")
        hidden = [v for v in fg.variables if v not in fg.evidence.hard]
        index = {v: i for i, v in enumerate(fg.variables)}
        marginals = {v: q[..., index[v], : fg.cards[index[v]]].clone() for v in hidden}
        return MeanFieldResult(marginals, torch.stack(history), converged, n_iter)


def _raise_if_impossible(log_norm: Tensor, where: str, what: str) -> None:
    bad = torch.isneginf(log_norm)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(-1)).reshape(-1)[:5].tolist()
        raise ZeroProbabilityEvidence(
            where,
            f"{what} (evidence rows {rows}): q gives positive mass to configurations of "
            "probability zero; the evidence is impossible or the model's zero entries left "
            "coordinate ascent no fully factorised q with positive mass",
            fix="check the evidence, start from another q (generator=...), or use exact "
            "inference",
        )


def mean_field(
    model: DiscreteModel,
    evidence: Any = None,
    soft_evidence: Any = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
) -> MeanFieldResult:
    """Run mean-field coordinate ascent once; see :class:`MeanField`.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
    evidence, soft_evidence
        See :func:`pgm.inference.evidence.resolve_evidence`.
    max_iter, tol
        See :class:`MeanField`.
    generator : torch.Generator, optional
        Random initial ``q`` (else uniform).

    Returns
    -------
    MeanFieldResult

    Examples
    --------
    >>> import torch
    >>> from pgm.factor import Factor
    >>> from pgm.markov import MarkovNetwork
    >>> mn = MarkovNetwork([Factor(["a"], torch.log(torch.tensor([1.0, 3.0])))])
    >>> mean_field(mn).marginals["a"]
    tensor([0.2500, 0.7500])
    """
    return MeanField(model, max_iter=max_iter, tol=tol).run(
        evidence, soft_evidence, generator=generator)
