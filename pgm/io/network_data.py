"""A discrete Bayesian network as plain data: what the file readers (BIF, XMLBIF, UAI) produce
and the writers take, independent of any model class.

Examples
--------
>>> import numpy as np
>>> from pgm.io.network_data import DiscreteNetworkData
>>> d = DiscreteNetworkData(name="coin", states={"heads": ("yes", "no")}, parents={"heads": ()},
...                         cpts={"heads": np.array([0.5, 0.5])})
>>> d
DiscreteNetworkData(name='coin', variables=1, edges=0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
)
from probforge.validate import check_names

__all__ = ["DEFAULT_MAX_CPT_ENTRIES", "DiscreteNetworkData"]

#: Largest CPT (number of float64 entries) a parser allocates unless told otherwise: 2**27 entries
#: take 1 GiB.
DEFAULT_MAX_CPT_ENTRIES = 2**27

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class DiscreteNetworkData:
    """A discrete Bayesian network as plain data, independent of any model class.

    Parameters
    ----------
    name : str
        Network name.
    states : dict of str to tuple of str
        Variable -> its state names, in file order; the dict's order is the variables' file order.
    parents : dict of str to tuple of str
        Variable -> its parents, in the order of the CPT's leading axes (``()`` for a root).
    cpts : dict of str to numpy.ndarray
        Variable -> float64 array of shape ``(*parent_cards, child_card)``: parents first, child
        last, so ``cpts[v][i, j, :]`` is ``p(v | parent0 = i, parent1 = j)``. Values must be finite
        and non-negative; rows are *not* required to sum to one here.
    properties : dict of str to tuple of str, optional
        Variable -> its ``property`` lines (verbatim text). Missing variables get ``()``.
    network_properties : tuple of str, optional
        The network block's ``property`` lines.

    Notes
    -----
    Names (of the network, variables, states) must be strings: nothing is converted with
    ``str``. A string where a sequence of names is expected is one name (``parents={"wet":
    "rain"}`` means the parent ``rain``), never its characters. CPTs must hold floating-point
    numbers (an integer array is refused, not cast). A network without variables is allowed.

    The instance is immutable: the dicts are copied, the arrays copied to read-only float64.
    ``==`` compares everything, including the order of the variables, bit-exactly (CPTs with
    :func:`numpy.array_equal`). Instances are not hashable.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm.io import DiscreteNetworkData
    >>> d = DiscreteNetworkData(
    ...     name="tiny",
    ...     states={"rain": ("yes", "no"), "wet": ("yes", "no")},
    ...     parents={"rain": (), "wet": ("rain",)},
    ...     cpts={"rain": np.array([0.2, 0.8]), "wet": np.array([[0.9, 0.1], [0.05, 0.95]])},
    ... )
    >>> d.cpts["wet"][d.states["rain"].index("no")]  # p(wet | rain = no)
    array([0.05, 0.95])
    """

    name: str
    states: dict[str, tuple[str, ...]]
    parents: dict[str, tuple[str, ...]]
    cpts: dict[str, FloatArray]
    properties: dict[str, tuple[str, ...]] = field(default_factory=dict)
    network_properties: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValidationError("network name", "must be a str", found=type(self.name).__name__)
        for label in ("states", "parents", "cpts", "properties"):
            if not isinstance(getattr(self, label), Mapping):
                raise ValidationError(
                    f"{label} of network {self.name!r}", "must be a dict keyed by variable name",
                    found=type(getattr(self, label)).__name__,
                )
        states: dict[str, tuple[str, ...]] = {}
        for var, ss in self.states.items():
            if not isinstance(var, str):
                raise ValidationError(f"network {self.name!r}", "variable names must be str",
                                      found=repr(var))
            names = tuple(_names(ss, f"states of {var!r}"))
            if not names:
                raise ShapeError(f"variable {var!r}", "has no states", fix="give it >= 1 state")
            if len(set(names)) != len(names):
                dup = sorted(s for s, n in Counter(names).items() if n > 1)
                raise ValidationError(f"variable {var!r}", "state names repeat", found=dup)
            states[var] = names
        for label, mapping in (("parents", self.parents), ("cpts", self.cpts)):
            extra = [v for v in mapping if v not in states]
            if extra:
                raise UnknownVariableError(
                    f"{label} of network {self.name!r}",
                    "names variables that have no states",
                    found=extra,
                    fix="declare their states in `states`",
                )
        parents: dict[str, tuple[str, ...]] = {}
        cpts: dict[str, FloatArray] = {}
        for var in states:
            if var not in self.parents:
                raise ShapeError(
                    f"network {self.name!r}",
                    f"variable {var!r} has no entry in `parents`",
                    fix="give roots an empty tuple",
                )
            # check_names: a str is one parent, never its characters
            pa = tuple(check_names(self.parents[var], f"parents of {var!r}"))
            for p in pa:
                if p not in states:
                    raise UnknownVariableError(f"parents of {var!r}", "unknown parent", found=p)
            if var in pa or len(set(pa)) != len(pa):
                raise ValidationError(
                    f"parents of {var!r}",
                    "a variable appears twice (or is its own parent)",
                    found=pa,
                )
            parents[var] = pa
            if var not in self.cpts:
                raise ShapeError(f"network {self.name!r}", f"variable {var!r} has no CPT")
            table = _float_array(self.cpts[var], f"CPT of {var!r}")
            shape = (*(len(states[p]) for p in pa), len(states[var]))
            if table.shape != shape:
                raise ShapeError(
                    f"CPT of {var!r}",
                    f"shape must be (*parent cards, child card) = {shape}",
                    found=table.shape,
                )
            if not np.isfinite(table).all():
                raise NonFiniteError(f"CPT of {var!r}", "values must be finite")
            if (table < 0).any():
                raise ValidationError(
                    f"CPT of {var!r}", "probabilities must be >= 0", found=float(table.min())
                )
            table.setflags(write=False)
            cpts[var] = table
        extra = [v for v in self.properties if v not in states]
        if extra:
            raise UnknownVariableError("properties", "names unknown variables", found=extra)
        properties = {
            v: tuple(_names(self.properties.get(v, ()), f"properties of {v!r}"))
            for v in states
        }
        network_properties = tuple(_names(self.network_properties, "network properties"))
        object.__setattr__(self, "states", states)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "cpts", cpts)
        object.__setattr__(self, "properties", properties)
        object.__setattr__(self, "network_properties", network_properties)

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names in file order."""
        return tuple(self.states)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DiscreteNetworkData):
            return NotImplemented
        return (
            self.name == other.name
            and list(self.states.items()) == list(other.states.items())
            and self.parents == other.parents
            and self.properties == other.properties
            and self.network_properties == other.network_properties
            and all(np.array_equal(self.cpts[v], other.cpts[v]) for v in self.states)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        edges = sum(len(p) for p in self.parents.values())
        return (
            f"DiscreteNetworkData(name={self.name!r}, variables={len(self.states)}, edges={edges})"
        )


def _names(value: Any, subject: str) -> list[str]:
    """A sequence of strings (state names, parents, properties); one ``str`` is refused here
    because a tuple of states given as ``"ab"`` is ambiguous (parents handle it apart)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError(subject, "must be a tuple or list of str",
                              found=repr(value) if isinstance(value, str) else type(value).__name__,
                              fix="wrap a single name in a tuple: ('yes',)")
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise ValidationError(subject, "must hold str (nothing is converted)",
                                  found=repr(item))
    return out


def _float_array(value: Any, subject: str) -> FloatArray:
    """A float64 copy of a table of floats; integer and bool arrays are refused, not cast."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nesting
        raise ShapeError(subject, "must be a rectangular array of numbers",
                         found=type(value).__name__) from err
    if arr.dtype.kind != "f":
        raise DtypeMismatchError(subject, "must hold floating-point probabilities",
                                 found=str(arr.dtype),
                                 fix="pass floats, e.g. np.array([0.5, 0.5])")
    return np.array(arr, dtype=np.float64, copy=True)
