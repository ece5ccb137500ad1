"""probforge's side of bench/exact_inference.py: the same networks and tables pgmpy uses.

``load_network`` converts pgmpy's own model (CPD columns renormalised exactly as the pgmpy side
does, so both libraries get identical numbers) with ``pgm.io.from_pgmpy``. ``all_marginals``
builds a junction tree for the evidence pattern and calibrates it, *inside* the timed call (the
conservative figure); ``all_marginals_prebuilt`` reuses the tree, as an application answering
many queries of one evidence pattern would.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pgm.bayesnet import BayesianNetwork
from pgm.inference import JunctionTree
from pgm.io import from_pgmpy
from tests.reference.pgmpy_oracle import load_example

_TREES: dict[tuple[int, frozenset[str]], JunctionTree] = {}


def load_network(name: str) -> BayesianNetwork:
    """The bnlearn network ``name`` as pgmpy ships it (renormalised columns), in probforge."""
    return from_pgmpy(load_example(name))


Marginals = dict[str, dict[str, float]]


def _named(model: BayesianNetwork, margs: Mapping[str, torch.Tensor]) -> Marginals:
    return {v: dict(zip(model.states[v], m.tolist(), strict=True)) for v, m in margs.items()}


def all_marginals(model: BayesianNetwork, evidence: Mapping[str, str]) -> Marginals:
    """Every unobserved variable's posterior; the junction tree is built inside the call."""
    jt = JunctionTree(model, evidence_vars=list(evidence))
    return _named(model, jt.calibrate(dict(evidence)).marginals())


def all_marginals_prebuilt(model: BayesianNetwork, evidence: Mapping[str, str]) -> Marginals:
    """As :func:`all_marginals`, reusing one junction tree per model and evidence pattern."""
    key = (id(model), frozenset(evidence))
    jt = _TREES.get(key)
    if jt is None:
        jt = _TREES[key] = JunctionTree(model, evidence_vars=list(evidence))
    return _named(model, jt.calibrate(dict(evidence)).marginals())


def batched_marginals(model: BayesianNetwork,
                      evidence_rows: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Posteriors for N evidence rows (state names) in one batched calibration: (N, card)."""
    jt = JunctionTree(model, evidence_vars=list(evidence_rows))
    return jt.calibrate({v: list(r) for v, r in evidence_rows.items()}).marginals()
