"""Graphical-model file formats: BIF, XMLBIF and UAI, to and from neutral plain-data classes.

The readers return plain data (:class:`DiscreteNetworkData` for BIF / XMLBIF, :class:`UAIModel`
for UAI) that know nothing of the model classes; the model classes convert from and to these.
Parsers check every declared size before allocating and raise
:class:`probforge.errors.ParseError` (file, line, column, token found, what was expected) on any
malformed input; they never renormalise or otherwise alter the numbers. Writers are lossless
(``repr`` of every float) and atomic (temporary file, ``fsync``, ``os.replace``).

Layouts at a glance
-------------------
* ``DiscreteNetworkData.cpts[v]``: shape ``(*parent_cards, child_card)`` -- parents first, child
  last, parents in ``DiscreteNetworkData.parents[v]`` order.
* ``UAIModel.tables[i]``: shape ``tuple(cards[u] for u in scopes[i])`` -- the file's values in C
  order (last scope variable fastest); in ``BAYES`` files the child is the last scope variable.
* UAI ``PR`` results are **log10** probabilities.

Examples
--------
>>> from pgm.io import read_bif, write_xmlbif, read_xmlbif
>>> from pgm.io.networks import bundled_network_path
>>> asia = read_bif(bundled_network_path("asia"))
>>> asia.cpts["tub"][asia.states["asia"].index("yes")]  # p(tub | asia = yes)
array([0.05, 0.95])
"""

from .bif import parse_bif, read_bif
from .bif_writer import write_bif, write_bif_text
from .models import (
    bn_from_data,
    bn_to_data,
    bundled_network,
    model_from_uai,
    model_to_uai,
    read_network,
    write_network,
)
from .network_data import DEFAULT_MAX_CPT_ENTRIES, DiscreteNetworkData
from .networks import bundled_network_path, bundled_networks
from .pgmpy_interop import from_pgmpy, to_pgmpy
from .uai import (
    DEFAULT_MAX_TABLE_ENTRIES,
    UAIEvidence,
    UAIKind,
    UAIModel,
    UAIResult,
    UAITask,
    format_uai_result,
    parse_uai,
    parse_uai_evidence,
    parse_uai_result,
    parse_uai_results,
    read_uai,
    read_uai_evidence,
    read_uai_result,
    read_uai_results,
    write_uai,
    write_uai_evidence,
    write_uai_evidence_text,
    write_uai_result,
    write_uai_text,
)
from .xmlbif import parse_xmlbif, read_xmlbif, write_xmlbif, write_xmlbif_text

__all__ = [
    "DEFAULT_MAX_CPT_ENTRIES",
    "DEFAULT_MAX_TABLE_ENTRIES",
    "DiscreteNetworkData",
    "UAIEvidence",
    "UAIKind",
    "UAIModel",
    "UAIResult",
    "UAITask",
    "bn_from_data",
    "bn_to_data",
    "bundled_network",
    "bundled_network_path",
    "bundled_networks",
    "format_uai_result",
    "from_pgmpy",
    "model_from_uai",
    "model_to_uai",
    "parse_bif",
    "parse_uai",
    "parse_uai_evidence",
    "parse_uai_result",
    "parse_uai_results",
    "parse_xmlbif",
    "read_bif",
    "read_network",
    "read_uai",
    "read_uai_evidence",
    "read_uai_result",
    "read_uai_results",
    "read_xmlbif",
    "to_pgmpy",
    "write_bif",
    "write_bif_text",
    "write_network",
    "write_uai",
    "write_uai_evidence",
    "write_uai_evidence_text",
    "write_uai_result",
    "write_uai_text",
    "write_xmlbif",
    "write_xmlbif_text",
]
