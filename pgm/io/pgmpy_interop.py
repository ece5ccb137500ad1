"""Conversion to and from pgmpy's ``DiscreteBayesianNetwork`` (pgmpy is optional).

pgmpy stores a CPD as ``values`` of shape ``(child_card, *parent_cards)`` with the evidence in
``cpd.variables[1:]`` order; probforge stores ``(*parent_cards, child_card)``. State names are
kept, so queries by name agree between the two libraries.

Examples
--------
>>> from pgm.io import bundled_network, to_pgmpy, from_pgmpy
>>> asia = bundled_network("asia")
>>> back = from_pgmpy(to_pgmpy(asia))
>>> back.parents == asia.parents
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import DEFAULT_ATOL, TabularCPD
from probforge.errors import MissingDependencyError, ValidationError
from probforge.validate import check_real

__all__ = ["from_pgmpy", "to_pgmpy"]


def _pgmpy() -> Any:
    try:
        import pgmpy.factors.discrete as factors
        import pgmpy.models as models
    except ImportError:
        raise MissingDependencyError(
            "pgmpy interop", "needs pgmpy", fix="pip install 'probforge[bench]' (pgmpy<1.3)"
        ) from None
    return models, factors


def from_pgmpy(
    model: Any, *, dtype: torch.dtype = torch.float64, atol: float = DEFAULT_ATOL
) -> BayesianNetwork:
    """A probforge BayesianNetwork with the same graph, state names and CPD values.

    Parameters
    ----------
    model : pgmpy DiscreteBayesianNetwork
        Every node must have a CPD (a node without one is refused, not dropped).
    dtype : torch.dtype, default torch.float64
        A floating dtype.
    atol : float, default 1e-6
        Each CPT row must sum to one within this tolerance.

    Raises
    ------
    probforge.errors.ValidationError
        ``model`` is not a pgmpy Bayesian network, a node has no CPD, bad ``dtype`` / ``atol``.
    probforge.errors.NormalisationError
        A CPD row does not sum to one within ``atol``.
    """
    if not callable(getattr(model, "get_cpds", None)) or not callable(
            getattr(model, "nodes", None)):
        raise ValidationError("model", "must be a pgmpy Bayesian network (with get_cpds())",
                              found=type(model).__name__)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError("dtype", "must be a floating torch dtype", found=repr(dtype))
    atol = check_real(atol, "atol", minimum=0.0)
    with_cpd = {cpd.variables[0] for cpd in model.get_cpds()}
    missing = [str(v) for v in model.nodes() if v not in with_cpd]
    if missing:
        raise ValidationError("pgmpy model", "every node needs a CPD", found=missing,
                              fix="add the CPDs with model.add_cpds(...)")
    cpds = []
    for cpd in model.get_cpds():
        child, parents = cpd.variables[0], list(cpd.variables[1:])
        values = np.asarray(cpd.get_values(), dtype=np.float64)  # (card, prod parent cards)
        cards = [int(c) for c in cpd.cardinality]
        table = values.reshape(cards).transpose(list(range(1, len(cards))) + [0])
        states = {v: tuple(str(s) for s in cpd.state_names[v]) for v in cpd.variables}
        cpds.append(TabularCPD(child, torch.tensor(np.ascontiguousarray(table), dtype=dtype),
                               parents, states, atol=atol))
    return BayesianNetwork(cpds, name=str(getattr(model, "name", "") or ""))


def to_pgmpy(bn: BayesianNetwork) -> Any:
    """A pgmpy ``DiscreteBayesianNetwork`` with the same graph, state names and CPD values.

    Raises
    ------
    probforge.errors.ValidationError
        ``bn`` is not a BayesianNetwork.
    probforge.errors.MissingDependencyError
        pgmpy is not installed.
    """
    if not isinstance(bn, BayesianNetwork):
        raise ValidationError("bn", "must be a BayesianNetwork", found=type(bn).__name__)
    models, factors = _pgmpy()
    cls = getattr(models, "DiscreteBayesianNetwork", None) or models.BayesianNetwork
    out = cls(bn.edges)
    out.add_nodes_from(bn.variables)
    cpds = []
    for v in bn.variables:
        c = bn.cpd(v)
        table = c.probs.detach().cpu().double().numpy()
        nd = table.ndim
        values = table.transpose([nd - 1, *range(nd - 1)]).reshape(table.shape[-1], -1)
        cpds.append(factors.TabularCPD(
            v, table.shape[-1], values, evidence=list(c.parents) or None,
            evidence_card=[bn.cards[p] for p in c.parents] or None,
            state_names={u: list(bn.states[u]) for u in c.scope},
        ))
    out.add_cpds(*cpds)
    return out
