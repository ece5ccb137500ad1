"""Writing the BIF text format (the reverse of :mod:`pgm.io.bif`), losslessly: values are written
with ``repr``, so a round trip keeps every float64 bit.

Names and property lines that BIF cannot hold raise :class:`~probforge.errors.ValidationError`
instead of writing a file the reader would reject; files are written atomically.

Examples
--------
>>> import numpy as np
>>> from pgm.io import DiscreteNetworkData, parse_bif
>>> from pgm.io.bif_writer import write_bif_text
>>> d = DiscreteNetworkData(name="coin", states={"heads": ("yes", "no")}, parents={"heads": ()},
...                         cpts={"heads": np.array([0.5, 0.5])})
>>> parse_bif(write_bif_text(d)) == d
True
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from probforge.errors import ValidationError

from ._source import write_source
from .bif import PROPERTY_PATTERN, WORD_PATTERN
from .network_data import DiscreteNetworkData

__all__ = ["write_bif", "write_bif_text"]


def _check_name(name: str, what: str) -> str:
    if not WORD_PATTERN.fullmatch(name):
        raise ValidationError(
            what,
            "cannot be written to BIF: a name must be non-empty and free of white space, "
            '{ } ( ) [ ] , ; | " and of // or /*',
            found=repr(name),
            fix="rename it",
        )
    return name


def _check_property(text: str, what: str) -> str:
    m = PROPERTY_PATTERN.fullmatch(text)
    if m is None or text != text.strip():
        raise ValidationError(
            what,
            "cannot be written to BIF: a property must have no leading/trailing white space and "
            "no ; { or } outside a double-quoted string",
            found=repr(text),
        )
    return text


def _format_values(values: Any) -> str:
    return ", ".join(map(repr, np.asarray(values, dtype=np.float64).tolist()))


def write_bif_text(data: DiscreteNetworkData) -> str:
    """Return ``data`` as BIF text (bnlearn layout, full float64 precision).

    Root nodes are written as ``table`` lines, other nodes as one row per parent configuration
    (the last parent varying fastest).

    Parameters
    ----------
    data : DiscreteNetworkData

    Returns
    -------
    str
        Text such that ``parse_bif(write_bif_text(data)) == data``.

    Raises
    ------
    probforge.errors.ValidationError
        A name or property cannot be represented in BIF (white space, delimiters, ...), or
        ``data`` is not a :class:`DiscreteNetworkData`.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import DiscreteNetworkData, write_bif_text
    >>> d = DiscreteNetworkData("n", {"a": ("t", "f")}, {"a": ()}, {"a": np.array([0.25, 0.75])})
    >>> print(write_bif_text(d))
    network n {
    }
    variable a {
      type discrete [ 2 ] { t, f };
    }
    probability ( a ) {
      table 0.25, 0.75;
    }
    <BLANKLINE>
    """
    if not isinstance(data, DiscreteNetworkData):
        raise ValidationError("data", "must be a DiscreteNetworkData", found=type(data).__name__,
                              fix="convert a BayesianNetwork with pgm.io.bn_to_data")
    out: list[str] = [f"network {_check_name(data.name, 'network name')} {{\n"]
    out.extend(
        f"  property {_check_property(p, 'network property')};\n" for p in data.network_properties
    )
    out.append("}\n")
    for var, states in data.states.items():
        _check_name(var, f"variable name {var!r}")
        names = ", ".join(_check_name(s, f"state of {var!r}") for s in states)
        out.append(f"variable {var} {{\n  type discrete [ {len(states)} ] {{ {names} }};\n")
        out.extend(
            f"  property {_check_property(p, f'property of {var!r}')};\n"
            for p in data.properties.get(var, ())
        )
        out.append("}\n")
    for var in data.states:
        parents = data.parents[var]
        table = data.cpts[var]
        if not parents:
            out.append(f"probability ( {var} ) {{\n  table {_format_values(table)};\n}}\n")
            continue
        out.append(f"probability ( {var} | {', '.join(parents)} ) {{\n")
        rows = table.reshape(-1, table.shape[-1])
        for index, row in zip(np.ndindex(*table.shape[:-1]), rows, strict=True):
            config = ", ".join(data.states[p][k] for p, k in zip(parents, index, strict=True))
            out.append(f"  ({config}) {_format_values(row)};\n")
        out.append("}\n")
    return "".join(out)


def write_bif(data: DiscreteNetworkData, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to a BIF file, atomically; a name ending in ``.gz`` is gzip-compressed.

    Parameters
    ----------
    data : DiscreteNetworkData
    path : str or os.PathLike
        Destination (its directory must exist).

    Raises
    ------
    probforge.errors.ValidationError
        See :func:`write_bif_text`; also ``path`` not a path, or a directory.
    probforge.errors.MissingFileError
        The destination's directory does not exist (checked before anything is written).
    probforge.errors.FileWriteError
        The write itself failed (permissions, full disk; also an ``OSError``); an existing file
        is left untouched.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from pgm.io import read_bif, write_bif
    >>> from pgm.io.networks import bundled_network_path
    >>> asia = read_bif(bundled_network_path("asia"))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "asia.bif.gz"
    >>> write_bif(asia, out)
    >>> read_bif(out) == asia
    True
    """
    text = write_bif_text(data)
    write_source(path, text, "BIF file")
