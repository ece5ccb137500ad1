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
from probforge.errors import MissingDependencyError

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
    """A probforge BayesianNetwork with the same graph, state names and CPD values."""
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
    """A pgmpy ``DiscreteBayesianNetwork`` with the same graph, state names and CPD values."""
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
