"""Between file data and model objects: read and write BIF, XMLBIF and UAI as models.

:func:`read_network` picks the format by extension (``.bif``, ``.bif.gz``, ``.xml``,
``.xmlbif``, ``.uai``) and returns a :class:`~pgm.bayesnet.BayesianNetwork` (BIF, XMLBIF, UAI
``BAYES``) or a :class:`~pgm.markov.MarkovNetwork` (UAI ``MARKOV``); :func:`write_network` does the
reverse. :func:`bundled_network` loads a network shipped with probforge (asia, alarm, sprinkler)
or, when pgmpy is installed, one of the bnlearn networks pgmpy ships.

Examples
--------
>>> from pgm.io import bundled_network
>>> asia = bundled_network("asia")
>>> asia.parents["either"]
('lung', 'tub')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import DEFAULT_ATOL, TabularCPD
from pgm.factor import Factor
from pgm.io.bif import read_bif
from pgm.io.bif_writer import write_bif
from pgm.io.network_data import DiscreteNetworkData
from pgm.io.networks import bundled_network_path
from pgm.io.uai import UAIModel, read_uai, write_uai
from pgm.io.xmlbif import read_xmlbif, write_xmlbif
from pgm.markov import MarkovNetwork
from probforge.errors import DataNotFoundError, ValidationError

__all__ = [
    "bn_from_data",
    "bn_to_data",
    "bundled_network",
    "model_from_uai",
    "model_to_uai",
    "read_network",
    "write_network",
]


def bn_from_data(
    data: DiscreteNetworkData, *, dtype: torch.dtype = torch.float64, atol: float = DEFAULT_ATOL
) -> BayesianNetwork:
    """Build (and so validate) a BayesianNetwork from parsed BIF/XMLBIF data."""
    cpds = []
    for v, ps in data.parents.items():
        states = {u: data.states[u] for u in (*ps, v)}
        cpds.append(TabularCPD(v, torch.tensor(np.asarray(data.cpts[v]), dtype=dtype), ps,
                               states, atol=atol))
    return BayesianNetwork(cpds, name=data.name)


def bn_to_data(bn: BayesianNetwork) -> DiscreteNetworkData:
    """The network as plain data for the BIF / XMLBIF writers."""
    return DiscreteNetworkData(
        name=bn.name or "network",
        states=bn.states,
        parents=bn.parents,
        cpts={v: bn.cpd(v).probs.detach().cpu().double().numpy() for v in bn.variables},
    )


def model_from_uai(
    m: UAIModel, *, dtype: torch.dtype = torch.float64, atol: float = DEFAULT_ATOL, name: str = ""
) -> BayesianNetwork | MarkovNetwork:
    """A UAI ``BAYES`` model as a BayesianNetwork (child = last scope variable), ``MARKOV`` as a
    MarkovNetwork. Variables are named ``"0"``, ``"1"``, ... after their UAI index."""
    names = [str(i) for i in range(len(m.cards))]
    if m.kind == "BAYES":
        cpds = [TabularCPD(names[s[-1]], torch.tensor(t, dtype=dtype),
                           [names[i] for i in s[:-1]], atol=atol)
                for s, t in zip(m.scopes, m.tables, strict=True)]
        return BayesianNetwork(cpds, name=name)
    factors = []
    for s, t in zip(m.scopes, m.tables, strict=True):
        factors.append(Factor.from_probs([names[i] for i in s], torch.tensor(t, dtype=dtype)))
    covered = {i for s in m.scopes for i in s}
    for i, c in enumerate(m.cards):  # variables in no function still exist (uniform)
        if i not in covered:
            factors.append(Factor([names[i]], torch.zeros(c, dtype=dtype)))
    return MarkovNetwork(factors, name=name)


def model_to_uai(model: BayesianNetwork | MarkovNetwork) -> tuple[UAIModel, list[str]]:
    """The model in UAI form and the variable names in UAI index order."""
    names = list(model.variables)
    index = {v: i for i, v in enumerate(names)}
    cards = tuple(model.cards[v] for v in names)
    if isinstance(model, BayesianNetwork):
        scopes = tuple(tuple(index[u] for u in model.cpd(v).scope) for v in names)
        tables = tuple(model.cpd(v).probs.detach().cpu().double().numpy() for v in names)
        return UAIModel("BAYES", cards, scopes, tables), names
    facs = model.factors()
    return UAIModel(
        "MARKOV", cards, tuple(tuple(index[u] for u in f.variables) for f in facs),
        tuple(f.probs().detach().cpu().double().numpy() for f in facs),
    ), names


def _kind(path: Path) -> str:
    name = path.name.lower()
    for ext, kind in ((".bif.gz", "bif"), (".bif", "bif"), (".xmlbif", "xmlbif"),
                      (".xml", "xmlbif"), (".uai", "uai")):
        if name.endswith(ext):
            return kind
    raise ValidationError(
        f"file {str(path)!r}", "has an unknown extension",
        fix="use .bif, .bif.gz, .xml, .xmlbif or .uai",
    )


def read_network(
    path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float64,
    atol: float = DEFAULT_ATOL,
) -> BayesianNetwork | MarkovNetwork:
    """Read a model file; the format follows the extension."""
    p = Path(path)
    kind = _kind(p)
    if kind == "bif":
        return bn_from_data(read_bif(p), dtype=dtype, atol=atol)
    if kind == "xmlbif":
        return bn_from_data(read_xmlbif(p), dtype=dtype, atol=atol)
    return model_from_uai(read_uai(p), dtype=dtype, atol=atol, name=p.stem)


def write_network(model: BayesianNetwork | MarkovNetwork, path: str | os.PathLike[str]) -> None:
    """Write a model file (atomically); the format follows the extension."""
    p = Path(path)
    kind = _kind(p)
    if kind == "uai":
        write_uai(model_to_uai(model)[0], p)
        return
    if not isinstance(model, BayesianNetwork):
        raise ValidationError(f"file {str(p)!r}", f"{kind.upper()} holds Bayesian networks only",
                              found=type(model).__name__, fix="write a Markov network as .uai")
    (write_bif if kind == "bif" else write_xmlbif)(bn_to_data(model), p)


def bundled_network(name: str, *, dtype: torch.dtype = torch.float64) -> Any:
    """A network shipped with probforge, else one of the bnlearn networks shipped with pgmpy.

    Parameters
    ----------
    name : str
        ``"asia"``, ``"alarm"``, ``"sprinkler"``; with pgmpy installed also ``"child"``,
        ``"insurance"``, ``"hepar2"``, ``"win95pts"``, ``"munin1"``, ... (read offline from its
        ``utils/example_models/*.bif.gz``).
    """
    try:
        return read_network(bundled_network_path(name), dtype=dtype)
    except DataNotFoundError as err:
        try:
            import pgmpy
        except ImportError:
            raise err from None
        gz = Path(pgmpy.__file__).parent / "utils" / "example_models" / f"{name}.bif.gz"
        if not gz.is_file():
            raise DataNotFoundError(
                f"network {name!r}", "is neither bundled with probforge nor shipped by pgmpy",
                fix=f"{err.fix}; or a bnlearn name pgmpy ships",
            ) from None
        return read_network(gz, dtype=dtype)
