"""Sufficient statistics of discrete Bayesian networks: data encoding and family counts.

For complete data the log-likelihood of a Bayesian network decouples over families (textbook
11.27-11.29), and its sufficient statistics are the *family counts*
``N[v][j, k] = #{n : x_pa(v)^(n) = j, x_v^(n) = k}`` (weighted, if rows carry weights). This module
turns user data into state indices and computes those counts with one ``bincount`` per family on
a linear index: no Python loop over rows.

Data come in two forms:

* a LongTensor of shape (N, k) of state indices whose columns are named by ``variables`` (default:
  every variable of the structure in its topological order, the layout of
  :meth:`BayesianNetwork.sample`); -1 marks a missing value where missing values are allowed;
* a pandas DataFrame whose columns are variable names and whose cells are STATE NAMES (``None`` /
  NaN for a missing value where allowed). Names are looked up by name only: an unknown name raises
  :class:`~probforge.errors.UnknownStateError` naming the column, the row and the value; an integer
  is never taken as an index of a state.

A *structure* is a :class:`~pgm.bayesnet.BayesianNetwork` (only its graph and state names are used)
or a :class:`NetworkStructure` ``(parents, states)`` (a plain ``(parents, states)`` pair works too).

Examples
--------
>>> import torch
>>> from pgm.learning.counts import NetworkStructure, family_counts
>>> s = NetworkStructure({"rain": (), "wet": ("rain",)},
...                      {"rain": ("no", "yes"), "wet": ("no", "yes")})
>>> x = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 1]])  # columns: rain, wet
>>> family_counts(s, x)["wet"]  # rows: rain; columns: wet
tensor([[2., 1.],
        [0., 1.]], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pgm.bayesnet import BayesianNetwork
from pgm.graph import topological_order
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)

__all__ = [
    "NetworkStructure",
    "StructureLike",
    "as_structure",
    "check_weights",
    "counts_from_indices",
    "encode_data",
    "family_counts",
    "family_index",
]


class NetworkStructure(NamedTuple):
    """The graph and state names of a discrete Bayesian network, without parameters.

    Attributes
    ----------
    parents : dict str -> tuple of str
        ``node -> parents``, in the order of the CPD table's leading axes. A node of ``states``
        missing here is a root.
    states : dict str -> tuple of str
        State names of every node.

    Examples
    --------
    >>> s = NetworkStructure({"b": ("a",)}, {"a": ("0", "1"), "b": ("x", "y", "z")})
    >>> as_structure(s).variables, as_structure(s).cards
    (('a', 'b'), {'a': 2, 'b': 3})
    """

    parents: Mapping[str, Sequence[str]]
    states: Mapping[str, Sequence[str]]

    @property
    def variables(self) -> tuple[str, ...]:
        """Nodes in topological order (parents first; stable in the order of ``states``)."""
        return tuple(topological_order(
            {v: tuple(self.parents.get(v, ())) for v in self.states}))

    @property
    def cards(self) -> dict[str, int]:
        """Number of states of every node."""
        return {v: len(s) for v, s in self.states.items()}


StructureLike = BayesianNetwork | NetworkStructure | tuple[Mapping[str, Sequence[str]],
                                                           Mapping[str, Sequence[str]]]
"""What the learning functions accept as a structure."""


def as_structure(structure: StructureLike | Any) -> NetworkStructure:
    """Check a structure and return it as a :class:`NetworkStructure` in topological order.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
        For a network only the graph and the state names are used, never the CPD values.

    Returns
    -------
    NetworkStructure
        ``parents`` and ``states`` as dicts of tuples with keys in topological order.

    Raises
    ------
    UnknownVariableError
        A parent (or a ``parents`` key) that has no state names.
    CycleError
        The graph has a directed cycle.
    ValidationError
        Empty or repeated state names, a node among its own parents, or a wrong type.

    Examples
    --------
    >>> from pgm.io import bundled_network
    >>> as_structure(bundled_network("asia")).parents["either"]
    ('lung', 'tub')
    """
    if isinstance(structure, BayesianNetwork):
        return NetworkStructure(structure.parents, structure.states)
    if not (isinstance(structure, tuple) and len(structure) == 2
            and isinstance(structure[0], Mapping) and isinstance(structure[1], Mapping)):
        raise ValidationError(
            "structure", "must be a BayesianNetwork or a (parents, states) pair of mappings",
            found=type(structure).__name__, fix="pass NetworkStructure(parents, states)",
        )
    parents_in, states_in = structure
    states: dict[str, tuple[str, ...]] = {}
    for v, names in states_in.items():
        if isinstance(names, str):
            raise ValidationError(f"states of {v!r}", "must be a sequence of state names, "
                                  "not one string", found=repr(names))
        t = tuple(names)
        if not all(isinstance(n, str) for n in t):
            raise ValidationError(f"states of {v!r}", "state names must be strings", found=t,
                                  fix="name the states, e.g. tuple(str(i) for i in range(card))")
        if not t:
            raise ValidationError(f"states of {v!r}", "must name at least one state")
        if len(set(t)) != len(t):
            raise ValidationError(f"states of {v!r}", "state names repeat", found=t)
        states[str(v)] = t
    for v in parents_in:
        if v not in states:
            raise UnknownVariableError("structure", f"gives parents of {v!r}, which has no "
                                       "state names", fix=f"add {v!r} to the states mapping")
    parents: dict[str, tuple[str, ...]] = {}
    for v in states:
        ps = parents_in.get(v, ())
        if isinstance(ps, str):
            raise ValidationError(f"parents of {v!r}", "must be a sequence of node names, "
                                  "not one string", found=repr(ps))
        ps = tuple(ps)
        if v in ps or len(set(ps)) != len(ps):
            raise ValidationError(f"parents of {v!r}", "repeat or include the node itself",
                                  found=ps)
        for p in ps:
            if p not in states:
                raise UnknownVariableError(f"parents of {v!r}", f"name {p!r}, which has no "
                                           "state names", fix=f"add {p!r} to the states mapping")
        parents[v] = ps
    order = topological_order(parents)  # raises CycleError
    return NetworkStructure({v: parents[v] for v in order}, {v: states[v] for v in order})


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "iloc") and hasattr(data, "index")


def encode_data(
    structure: StructureLike,
    data: Any,
    *,
    variables: Sequence[str] | None = None,
    allow_missing: bool = False,
    allow_absent: bool = False,
    device: torch.device | str | None = None,
) -> tuple[Tensor, tuple[str, ...]]:
    """Data as a LongTensor of state indices, with the names of its columns.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
    data : LongTensor of shape (N, k) or pandas.DataFrame
        State indices with columns named by ``variables``, or a DataFrame of state names.
    variables : str or sequence of str, optional
        Column names of a tensor (default: all of the structure's variables, topological order);
        one string is one column name. Not allowed with a DataFrame (its column labels name the
        variables).
    allow_missing : bool
        Accept missing values (-1 in a tensor, ``None``/NaN in a DataFrame); they come back as -1.
    allow_absent : bool
        Accept data that lack some variables of the structure (latent variables).
    device : torch.device, optional
        Where a DataFrame's indices go (default: the structure's device for a network, else CPU).
        A tensor stays where it is.

    Returns
    -------
    x : LongTensor, shape (N, k)
        State indices (-1 where missing).
    columns : tuple of str
        The variable of each column of ``x``.

    Raises
    ------
    ValidationError
        Floating-point or boolean tensors (missing values are -1, not NaN), missing values or absent
        variables where they are not allowed.
    ShapeError
        A tensor that is not 2-D or whose width differs from ``len(variables)``.
    UnknownVariableError
        A column that names no variable of the structure (or a repeated column).
    UnknownStateError
        An index out of range, or a state name that the variable does not have (naming the
        column, the row and the value).

    Examples
    --------
    >>> import pandas as pd
    >>> s = NetworkStructure({}, {"rain": ("no", "yes")})
    >>> encode_data(s, pd.DataFrame({"rain": ["yes", None, "no"]}), allow_missing=True)
    (tensor([[ 1],
            [-1],
            [ 0]]), ('rain',))
    """
    st = as_structure(structure)
    if _is_dataframe(data):
        if variables is not None:
            raise ValidationError("data", "a DataFrame names its variables by its columns; "
                                  "'variables' is for tensors only", fix="drop 'variables'")
        if device is None and isinstance(structure, BayesianNetwork):
            device = structure.device
        x, cols = _encode_frame(st, data, allow_missing)
        x = x.to(device)
    else:
        if isinstance(data, Tensor):
            t = data
        elif hasattr(data, "__array__") and hasattr(data, "dtype"):  # numpy array
            t = torch.as_tensor(data)
        else:
            raise ValidationError("data", "must be a LongTensor of state indices or a pandas "
                                  "DataFrame of state names", found=type(data).__name__)
        cols = _column_names(st, variables)
        x = _encode_tensor(st, t, cols, allow_missing)
    _check_columns(st, cols, allow_absent)
    return x, cols


def _column_names(st: NetworkStructure, variables: Any) -> tuple[str, ...]:
    """Column names of a data tensor: one str is one name (repeats are reported later, naming
    the columns)."""
    if variables is None:
        return st.variables
    if isinstance(variables, str):
        return (variables,)
    if isinstance(variables, bytes | Tensor) or not isinstance(variables, Sequence):
        raise ValidationError("variables", "must be a column name (str) or a sequence of names",
                              found=type(variables).__name__)
    out = tuple(variables)
    for c in out:
        if not isinstance(c, str):
            raise ValidationError("variables", "column names must be strings", found=repr(c))
    return out


def _check_columns(st: NetworkStructure, cols: tuple[str, ...], allow_absent: bool) -> None:
    unknown = [c for c in cols if c not in st.states]
    if unknown:
        raise UnknownVariableError(
            "data", f"column(s) {unknown} name no variable of the structure",
            fix=f"use the structure's variables {list(st.variables)[:10]}"
                f"{'...' if len(st.states) > 10 else ''}, or drop those columns")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise UnknownVariableError("data", "columns repeat", found=dup)
    present = set(cols)
    absent = [v for v in st.variables if v not in present]
    if absent and not allow_absent:
        raise ValidationError(
            "data", f"has no column for variable(s) {absent}",
            fix="add the columns, or use fit_em, which treats absent variables as latent")


def _encode_tensor(st: NetworkStructure, t: Tensor, cols: tuple[str, ...],
                   allow_missing: bool) -> Tensor:
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValidationError(
            "data", "a data tensor must hold integer state indices",
            found=t.dtype, fix="use a LongTensor with -1 for missing values (not NaN), or a "
            "DataFrame of state names")
    if t.dim() != 2 or t.shape[1] != len(cols):
        raise ShapeError("data", f"a data tensor must have shape (N, {len(cols)}), one column "
                         f"per variable of {list(cols)[:10]}", found=tuple(t.shape),
                         fix="pass 'variables' to name the columns")
    _check_columns(st, cols, True)
    t = t.long()
    cards = torch.tensor([len(st.states[c]) for c in cols], device=t.device)
    low = -1 if allow_missing else 0
    bad = (t < low) | (t >= cards)
    if bool(bad.any()):
        row, j = (int(i) for i in torch.nonzero(bad)[0])
        val = int(t[row, j])
        if val == -1:
            raise ValidationError(
                f"data column {cols[j]!r}, row {row}", "has a missing value (-1)",
                fix="use fit_em for data with missing values, or drop incomplete rows")
        raise UnknownStateError(
            f"data column {cols[j]!r}, row {row}",
            f"state index out of range [{low}, {len(st.states[cols[j]])})", found=val,
            fix=f"states are {list(st.states[cols[j]])}" + ("; -1 marks a missing value"
                                                            if allow_missing else ""))
    return t


def _encode_frame(st: NetworkStructure, df: Any, allow_missing: bool
                  ) -> tuple[Tensor, tuple[str, ...]]:
    import pandas as pd

    cols = tuple(df.columns)
    for c in cols:
        if not isinstance(c, str):
            raise UnknownVariableError("data", "DataFrame column labels must be variable names",
                                       found=repr(c))
    _check_columns(st, cols, True)
    codes = []
    for c in cols:
        series = df[c]
        names = st.states[c]
        lookup = pd.Index(list(names), dtype=object)  # exact lookup by name, -1 if absent
        code = torch.as_tensor(lookup.get_indexer(series.to_numpy(dtype=object)).astype("int64"))
        missing = torch.tensor(series.isna().to_numpy(dtype=bool))
        unknown = (code < 0) & ~missing
        if bool(unknown.any()):
            pos = int(torch.nonzero(unknown)[0])
            raise UnknownStateError(
                f"data column {c!r}, row {pos} (index {df.index[pos]!r})",
                "has no such state name", found=repr(series.iloc[pos]),
                fix=f"use one of {list(names)} (state names, never indices)")
        if bool(missing.any()) and not allow_missing:
            pos = int(torch.nonzero(missing)[0])
            raise ValidationError(
                f"data column {c!r}, row {pos} (index {df.index[pos]!r})",
                "has a missing value", found=repr(series.iloc[pos]),
                fix="use fit_em for data with missing values, or drop incomplete rows")
        codes.append(code)
    n = len(df.index)
    x = torch.stack(codes, dim=1) if codes else torch.empty((n, 0), dtype=torch.long)
    return x, cols


def family_index(x: Tensor, columns: Sequence[int], cards: Sequence[int]) -> Tensor:
    """Row-major linear index of the states in ``columns`` of ``x`` (last column fastest).

    Parameters
    ----------
    x : LongTensor, shape (N, k)
    columns : sequence of int
        Columns of ``x`` (a family: parents then child).
    cards : sequence of int
        Their cardinalities.

    Returns
    -------
    LongTensor, shape (N,)
        ``sum_i x[:, columns[i]] * prod(cards[i+1:])``.

    Examples
    --------
    >>> import torch
    >>> family_index(torch.tensor([[1, 2], [0, 1]]), [0, 1], [2, 3])
    tensor([5, 1])
    """
    idx = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for j, c in zip(columns, cards, strict=True):
        idx = idx * c + x[:, j]
    return idx


def check_weights(weights: Tensor | None, n: int, device: torch.device) -> Tensor | None:
    """Check row weights: shape (n,), finite, >= 0; returned as a float tensor on ``device``.

    ``weights`` is a floating-point tensor (an integer or bool tensor is refused, not cast) or
    a sequence of numbers (converted to float64).
    """
    if weights is None:
        return None
    if isinstance(weights, Tensor):
        if not weights.is_floating_point():
            raise DtypeMismatchError("weights", "must be a floating-point tensor",
                                     found=weights.dtype, fix="convert with .double()")
        w = weights
    else:
        try:
            w = torch.as_tensor(weights, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError("weights", "must be a tensor or a sequence of numbers",
                                  found=type(weights).__name__) from err
    if w.shape != (n,):
        raise ShapeError("weights", f"must have shape ({n},), one per data row",
                         found=tuple(w.shape))
    if not bool(torch.isfinite(w).all()):
        raise NonFiniteError("weights", "must be finite")
    if bool((w < 0).any()):
        raise ValidationError("weights", "must be >= 0", found=float(w.min()))
    return w.to(device)


def family_counts(
    structure: StructureLike,
    data: Any,
    weights: Tensor | None = None,
    *,
    variables: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """Family counts of complete data: one table per variable, parents first, child last.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
        Only the graph and the state names are used.
    data : LongTensor of shape (N, k) or pandas.DataFrame
        Complete data, see :func:`encode_data`; every variable of the structure must be present.
    weights : Tensor, shape (N,), optional
        Non-negative row weights (default 1 each).
    variables : str or sequence of str, optional
        Column names of a tensor (default: the structure's variables in topological order).
    dtype : torch.dtype
        Floating dtype of the counts (float64 keeps integer counts exact up to 2^53).

    Zero data rows give all-zero counts (the empty sum).

    Returns
    -------
    dict str -> Tensor of shape (*parent_cards, card)
        ``counts[v][j..., k]``: total weight of the rows with parents in configuration ``j...``
        and ``v`` in state ``k``; keys in topological order, tensors on the data's device.

    Raises
    ------
    ValidationError, ShapeError, UnknownVariableError, UnknownStateError
        See :func:`encode_data` (missing values and absent variables are errors here).

    Examples
    --------
    >>> import pandas as pd
    >>> s = NetworkStructure({"wet": ("rain",)}, {"rain": ("no", "yes"), "wet": ("no", "yes")})
    >>> df = pd.DataFrame({"wet": ["no", "yes", "yes"], "rain": ["no", "no", "yes"]})
    >>> family_counts(s, df)["wet"].tolist()
    [[1.0, 1.0], [0.0, 1.0]]
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError("family_counts dtype", "must be a floating-point torch.dtype",
                              found=repr(dtype))
    st = as_structure(structure)
    x, cols = encode_data(structure, data, variables=variables)
    w = check_weights(weights, x.shape[0], x.device)
    return counts_from_indices(st, x, cols, w, dtype=dtype)


def counts_from_indices(
    st: NetworkStructure,
    x: Tensor,
    cols: Sequence[str],
    weights: Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """:func:`family_counts` on already encoded, complete indices ``x`` (N, k) named by ``cols``."""
    col = {v: j for j, v in enumerate(cols)}
    w = None if weights is None else weights.to(dtype)
    out: dict[str, Tensor] = {}
    for v, ps in st.parents.items():
        fam = (*ps, v)
        cards = [len(st.states[u]) for u in fam]
        size = 1
        for c in cards:
            size *= c
        idx = family_index(x, [col[u] for u in fam], cards)
        counts = torch.bincount(idx, weights=w, minlength=size)
        out[v] = counts.to(dtype).reshape(cards)
    return out
