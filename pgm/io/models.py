"""Between file data and model objects: read and write BIF, XMLBIF and UAI as models.

:func:`read_network` picks the format by extension (``.bif``, ``.bif.gz``, ``.xml``,
``.xmlbif``, ``.uai``) and returns a :class:`~pgm.bayesnet.BayesianNetwork` (BIF, XMLBIF, UAI
``BAYES``) or a :class:`~pgm.markov.MarkovNetwork` (UAI ``MARKOV``); :func:`write_network` does the
reverse. :func:`bundled_network` loads a network shipped with probforge (asia, alarm, sprinkler)
or, when pgmpy is installed, one of the bnlearn networks pgmpy ships.

Which error for which fault: a file that cannot be read is a
:class:`~probforge.errors.MissingFileError` (also a ``FileNotFoundError``); a file that breaks its
format's grammar or a size limit is a :class:`~probforge.errors.ParseError`; a well-formed file
whose numbers are not a valid model raises the model's own error -- a CPT row that does not sum to
one within ``atol`` a :class:`~probforge.errors.NormalisationError`, a directed cycle a
:class:`~probforge.errors.CycleError` (both :class:`~probforge.errors.ValidationError`). Nothing
is renormalised.

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
from pgm.io._source import check_limit, check_output_path
from pgm.io.bif import read_bif
from pgm.io.bif_writer import write_bif
from pgm.io.network_data import DiscreteNetworkData
from pgm.io.networks import bundled_network_path
from pgm.io.uai import DEFAULT_MAX_TABLE_ENTRIES, UAIModel, read_uai, write_uai
from pgm.io.xmlbif import read_xmlbif, write_xmlbif
from pgm.markov import MarkovNetwork
from probforge.errors import DataNotFoundError, NonFiniteError, ValidationError
from probforge.validate import check_real

__all__ = [
    "bn_from_data",
    "bn_to_data",
    "bundled_network",
    "model_from_uai",
    "model_to_uai",
    "read_network",
    "write_network",
]


#: File suffixes :func:`read_network` and :func:`write_network` know, and the format of each.
SUFFIXES = ((".bif.gz", "bif"), (".bif", "bif"), (".xmlbif", "xmlbif"), (".xml", "xmlbif"),
            (".uai", "uai"))


def _check_dtype(dtype: Any) -> torch.dtype:
    """A floating torch dtype: tables of probabilities are never stored as integers."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError("dtype", "must be a floating torch dtype", found=repr(dtype),
                              fix="use torch.float64 (the default) or torch.float32")
    return dtype


def _check_atol(atol: Any) -> float:
    # A NaN tolerance would let every row pass the normalisation check.
    return check_real(atol, "atol", minimum=0.0)


def _check_tensor_fits(t: torch.Tensor, subject: str) -> torch.Tensor:
    """Refuse values that overflow to inf in ``t``'s dtype (1e300 in float32, say)."""
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteError(subject, f"has values too large for {t.dtype}",
                             fix="use dtype=torch.float64")
    return t


def bn_from_data(
    data: DiscreteNetworkData, *, dtype: torch.dtype = torch.float64, atol: float = DEFAULT_ATOL
) -> BayesianNetwork:
    """Build (and so validate) a BayesianNetwork from parsed BIF/XMLBIF data.

    Parameters
    ----------
    data : DiscreteNetworkData
        As returned by :func:`~pgm.io.read_bif` / :func:`~pgm.io.read_xmlbif`.
    dtype : torch.dtype, default torch.float64
        A floating dtype for the CPDs.
    atol : float, default 1e-6
        Each CPT row must sum to one within this tolerance (>= 0).

    Returns
    -------
    BayesianNetwork
        An empty network (no nodes) for data without variables.

    Raises
    ------
    probforge.errors.NormalisationError
        A row does not sum to one within ``atol`` (nothing is renormalised).
    probforge.errors.CycleError
        The parents form a directed cycle.
    probforge.errors.ValidationError
        ``data`` is not a DiscreteNetworkData, ``dtype`` not floating, ``atol`` negative / NaN.

    Examples
    --------
    >>> from pgm.io import bn_from_data, read_bif
    >>> from pgm.io.networks import bundled_network_path
    >>> bn_from_data(read_bif(bundled_network_path("sprinkler"))).parents["wetgrass"]
    ('sprinkler', 'rain')
    """
    if not isinstance(data, DiscreteNetworkData):
        raise ValidationError("data", "must be a DiscreteNetworkData", found=type(data).__name__,
                              fix="read it with read_bif / read_xmlbif")
    dtype = _check_dtype(dtype)
    atol = _check_atol(atol)
    cpds = []
    for v, ps in data.parents.items():
        states = {u: data.states[u] for u in (*ps, v)}
        cpds.append(TabularCPD(v, torch.tensor(np.asarray(data.cpts[v]), dtype=dtype), ps,
                               states, atol=atol))
    return BayesianNetwork(cpds, name=data.name)


def bn_to_data(bn: BayesianNetwork) -> DiscreteNetworkData:
    """The network as plain data for the BIF / XMLBIF writers.

    Parameters
    ----------
    bn : BayesianNetwork

    Returns
    -------
    DiscreteNetworkData
        CPTs as float64 arrays; an unnamed network is named ``"network"``.

    Raises
    ------
    probforge.errors.ValidationError
        ``bn`` is not a BayesianNetwork.
    """
    _check_model(bn, "bn", BayesianNetwork)
    return DiscreteNetworkData(
        name=bn.name or "network",
        states=bn.states,
        parents=bn.parents,
        cpts={v: bn.cpd(v).probs.detach().cpu().double().numpy() for v in bn.variables},
    )


def model_from_uai(
    m: UAIModel, *, dtype: torch.dtype = torch.float64, atol: float = DEFAULT_ATOL, name: str = "",
    max_table_entries: int = DEFAULT_MAX_TABLE_ENTRIES,
) -> BayesianNetwork | MarkovNetwork:
    """A UAI ``BAYES`` model as a BayesianNetwork (child = last scope variable), ``MARKOV`` as a
    MarkovNetwork. Variables are named ``"0"``, ``"1"``, ... after their UAI index.

    Parameters
    ----------
    m : UAIModel
    dtype : torch.dtype, default torch.float64
        A floating dtype.
    atol : float, default 1e-6
        ``BAYES``: each CPT row must sum to one within this tolerance.
    name : str, default ""
        The model's name.
    max_table_entries : int, default 2**27
        A ``MARKOV`` variable in no function becomes a uniform factor of its cardinality; a
        cardinality above this limit is refused before anything is allocated.

    Returns
    -------
    BayesianNetwork or MarkovNetwork
        An empty ``BAYES`` model gives an empty BayesianNetwork.

    Raises
    ------
    probforge.errors.NormalisationError
        ``BAYES``: a CPT row does not sum to one within ``atol``.
    probforge.errors.CycleError
        ``BAYES``: the CPTs form a directed cycle.
    probforge.errors.NonFiniteError
        A value overflows ``dtype`` (e.g. 1e300 in float32).
    probforge.errors.ValidationError
        Bad arguments; a ``MARKOV`` model without variables (a Markov network needs a factor).
    """
    if not isinstance(m, UAIModel):
        raise ValidationError("m", "must be a UAIModel", found=type(m).__name__,
                              fix="read it with read_uai")
    dtype = _check_dtype(dtype)
    atol = _check_atol(atol)
    if not isinstance(name, str):
        raise ValidationError("name", "must be a str", found=type(name).__name__)
    limit = check_limit(max_table_entries, "max_table_entries")
    names = [str(i) for i in range(len(m.cards))]
    if m.kind == "BAYES":
        cpds = [TabularCPD(names[s[-1]], torch.tensor(t, dtype=dtype),
                           [names[i] for i in s[:-1]], atol=atol)
                for s, t in zip(m.scopes, m.tables, strict=True)]
        return BayesianNetwork(cpds, name=name)
    covered = {i for s in m.scopes for i in s}
    for i, c in enumerate(m.cards):
        if i not in covered and c > limit:
            raise ValidationError(
                f"variable {i} of the UAI model",
                f"has more states than max_table_entries={limit} (it is in no function, so it "
                "would become a uniform factor of that size)",
                found=c, fix="pass a larger max_table_entries if the memory is available",
            )
    factors = []
    for f, (s, t) in enumerate(zip(m.scopes, m.tables, strict=True)):
        values = _check_tensor_fits(torch.tensor(t, dtype=dtype), f"table of function {f}")
        factors.append(Factor.from_probs([names[i] for i in s], values))
    for i, c in enumerate(m.cards):  # variables in no function still exist (uniform)
        if i not in covered:
            factors.append(Factor([names[i]], torch.zeros(c, dtype=dtype)))
    return MarkovNetwork(factors, name=name)


def model_to_uai(model: BayesianNetwork | MarkovNetwork) -> tuple[UAIModel, list[str]]:
    """The model in UAI form and the variable names in UAI index order.

    Raises
    ------
    probforge.errors.ValidationError
        ``model`` is neither a BayesianNetwork nor a MarkovNetwork.
    """
    _check_model(model, "model", (BayesianNetwork, MarkovNetwork))
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


def _check_model(model: Any, subject: str, kinds: type | tuple[type, ...]) -> Any:
    if not isinstance(model, kinds):
        want = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise ValidationError(subject, f"must be a {want}", found=type(model).__name__)
    return model


def _kind(path: Any) -> tuple[Path, str]:
    if not isinstance(path, str | os.PathLike):
        raise ValidationError("path", "must be a path (str or os.PathLike)",
                              found=type(path).__name__)
    p = Path(path)
    name = p.name.lower()
    for ext, kind in SUFFIXES:
        if name.endswith(ext):
            return p, kind
    known = ", ".join(ext for ext, _ in SUFFIXES)
    raise ValidationError(
        f"file {str(p)!r}", f"has an unknown extension: the known ones are {known}",
        found=repr("".join(p.suffixes) or name),
        fix=f"rename the file to end in one of {known}",
    )


def read_network(
    path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float64,
    atol: float = DEFAULT_ATOL,
) -> BayesianNetwork | MarkovNetwork:
    """Read a model file; the format follows the extension.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.bif``, ``.bif.gz``, ``.xml``, ``.xmlbif`` or ``.uai`` file (gzip-compressed content
        is detected whatever the name).
    dtype : torch.dtype, default torch.float64
        A floating dtype for the tables.
    atol : float, default 1e-6
        Each CPT row must sum to one within this tolerance.

    Returns
    -------
    BayesianNetwork or MarkovNetwork

    Raises
    ------
    probforge.errors.ValidationError
        An unknown extension (the message lists the known ones), bad ``dtype`` / ``atol``.
    probforge.errors.MissingFileError
        No such file, a directory, an unreadable file (a ``FileNotFoundError`` too).
    probforge.errors.ParseError
        The file breaks its format's grammar or a size limit.
    probforge.errors.NormalisationError, probforge.errors.CycleError
        The file is well formed but its numbers are not a valid model (see the module notes).

    Examples
    --------
    >>> from pgm.io import read_network
    >>> from pgm.io.networks import bundled_network_path
    >>> read_network(bundled_network_path("asia")).cards["lung"]
    2
    """
    p, kind = _kind(path)
    dtype = _check_dtype(dtype)
    atol = _check_atol(atol)
    if kind == "bif":
        return bn_from_data(read_bif(p), dtype=dtype, atol=atol)
    if kind == "xmlbif":
        return bn_from_data(read_xmlbif(p), dtype=dtype, atol=atol)
    return model_from_uai(read_uai(p), dtype=dtype, atol=atol, name=p.stem)


def write_network(model: BayesianNetwork | MarkovNetwork, path: str | os.PathLike[str]) -> None:
    """Write a model file (atomically); the format follows the extension.

    Parameters
    ----------
    model : BayesianNetwork or MarkovNetwork
        A Markov network can only be written as ``.uai``. An empty BayesianNetwork is written
        as a file without variables (and reads back as one).
    path : str or os.PathLike
        Destination; its directory must exist.

    Raises
    ------
    probforge.errors.ValidationError
        Unknown extension, a model of another type, a Markov network to BIF/XMLBIF, names the
        format cannot hold (white space or delimiters in BIF, control characters in XMLBIF).
    probforge.errors.MissingFileError
        The destination's directory does not exist (checked before anything is written).
    """
    p, kind = _kind(path)
    _check_model(model, "model", (BayesianNetwork, MarkovNetwork))
    check_output_path(p, f"{kind.upper()} file")
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
    dtype : torch.dtype, default torch.float64
        A floating dtype.

    Raises
    ------
    probforge.errors.DataNotFoundError
        No network of that name (the message lists the bundled ones).
    probforge.errors.ValidationError
        ``name`` is not a non-empty str, ``dtype`` not floating.
    """
    if not isinstance(name, str) or not name:
        raise ValidationError("network name", "must be a non-empty str", found=repr(name),
                              fix="e.g. bundled_network('asia')")
    dtype = _check_dtype(dtype)
    try:
        return read_network(bundled_network_path(name), dtype=dtype)
    except DataNotFoundError as err:
        try:
            import pgmpy
        except ImportError:
            raise err from None
        gz = Path(pgmpy.__file__).parent / "utils" / "example_models" / f"{name}.bif.gz"
        if "/" in name or "\\" in name or not gz.is_file():  # no path outside that folder
            raise DataNotFoundError(
                f"network {name!r}", "is neither bundled with probforge nor shipped by pgmpy",
                fix=f"{err.fix}; or a bnlearn name pgmpy ships",
            ) from None
        return read_network(gz, dtype=dtype)
