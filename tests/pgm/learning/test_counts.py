"""Family counts and data encoding: hand counts, a row-by-row oracle, and every named error."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.io import bundled_network
from pgm.learning.counts import NetworkStructure, as_structure, encode_data, family_counts
from probforge.errors import (
    CycleError,
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)

STATES = {"rain": ("no", "yes"), "sprinkler": ("off", "on"), "wet": ("dry", "damp", "soaked")}
PARENTS = {"rain": (), "sprinkler": ("rain",), "wet": ("rain", "sprinkler")}
TOY = NetworkStructure(PARENTS, STATES)
# 6 rows of (rain, sprinkler, wet), by state names
ROWS = [
    ("no", "on", "damp"),
    ("no", "on", "soaked"),
    ("no", "off", "dry"),
    ("yes", "off", "soaked"),
    ("yes", "off", "soaked"),
    ("no", "on", "damp"),
]


def toy_frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["rain", "sprinkler", "wet"])


def toy_tensor() -> torch.Tensor:
    order = ("rain", "sprinkler", "wet")
    return torch.tensor([[STATES[v].index(s) for v, s in zip(order, r, strict=True)]
                         for r in ROWS])


def test_hand_counts_toy_table() -> None:
    c = family_counts(TOY, toy_frame())
    assert c["rain"].tolist() == [4.0, 2.0]
    # sprinkler | rain: rain=no -> off 1, on 3; rain=yes -> off 2, on 0
    assert c["sprinkler"].tolist() == [[1.0, 3.0], [2.0, 0.0]]
    expected_wet = torch.zeros(2, 2, 3, dtype=torch.float64)
    expected_wet[0, 1, 1] = 2  # no, on, damp
    expected_wet[0, 1, 2] = 1  # no, on, soaked
    expected_wet[0, 0, 0] = 1  # no, off, dry
    expected_wet[1, 0, 2] = 2  # yes, off, soaked
    assert torch.equal(c["wet"], expected_wet)
    assert all(t.dtype == torch.float64 for t in c.values())


def test_tensor_frame_and_structure_kinds_agree() -> None:
    by_frame = family_counts(TOY, toy_frame())
    by_tensor = family_counts(TOY, toy_tensor())  # default columns: topological order
    by_pair = family_counts((PARENTS, STATES), toy_tensor())
    # a network with the same graph and arbitrary CPD values: only the graph is used
    bn = BayesianNetwork([
        TabularCPD("rain", [0.3, 0.7], states=STATES),
        TabularCPD("sprinkler", [[0.5, 0.5], [0.9, 0.1]], ["rain"], STATES),
        TabularCPD("wet", torch.full((2, 2, 3), 1 / 3), ["rain", "sprinkler"], STATES),
    ])
    by_bn = family_counts(bn, toy_frame())
    # columns in another order, named explicitly
    perm = [2, 0, 1]
    by_perm = family_counts(TOY, toy_tensor()[:, perm], variables=["wet", "rain", "sprinkler"])
    shuffled = family_counts(TOY, toy_frame()[["wet", "sprinkler", "rain"]])
    for other in (by_tensor, by_pair, by_bn, by_perm, shuffled):
        assert other.keys() == by_frame.keys()
        for v in by_frame:
            assert torch.equal(other[v], by_frame[v])


def test_weights_equal_repeated_rows() -> None:
    x = toy_tensor()
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    c = family_counts(TOY, x, weights=w)
    # integer weights: same as repeating rows; the 0.5 row counts half
    rep = torch.repeat_interleave(x[:5], torch.tensor([1, 0, 2, 1, 3]), dim=0)
    c_rep = family_counts(TOY, rep)
    half = family_counts(TOY, x[5:])
    for v in c:
        assert torch.allclose(c[v], c_rep[v] + 0.5 * half[v], rtol=0, atol=1e-15)


def test_counts_equal_row_by_row_oracle_on_alarm() -> None:
    alarm = bundled_network("alarm")
    x = alarm.sample(3000, generator=torch.Generator().manual_seed(5))
    counts = family_counts(alarm, x)
    col = {v: j for j, v in enumerate(alarm.variables)}
    rows = x.tolist()
    for v, ps in alarm.parents.items():
        fam = [col[u] for u in (*ps, v)]
        oracle = Counter(tuple(r[j] for j in fam) for r in rows)
        got = counts[v]
        assert float(got.sum()) == 3000
        nz = torch.nonzero(got).tolist()
        assert {tuple(i): float(got[tuple(i)]) for i in nz} == {
            k: float(n) for k, n in oracle.items()}


def test_family_counts_sum_and_marginals_are_consistent() -> None:
    asia = bundled_network("asia")
    x = asia.sample(500, generator=torch.Generator().manual_seed(0))
    c = family_counts(asia, x)
    # the 'lung' column of either's family (lung, tub, either) equals lung's own counts
    assert torch.equal(c["either"].sum((1, 2)), c["lung"].sum(0))
    assert all(float(t.sum()) == 500 for t in c.values())


def test_encode_frame_maps_names_and_missing() -> None:
    df = pd.DataFrame({"wet": ["soaked", None, np.nan, "dry"], "rain": ["no"] * 4})
    x, cols = encode_data(TOY, df, allow_missing=True, allow_absent=True)
    assert cols == ("wet", "rain")
    assert x.tolist() == [[2, 0], [-1, 0], [-1, 0], [0, 0]]
    cat = df.astype("category")  # categorical dtype works the same (by name)
    assert torch.equal(encode_data(TOY, cat, allow_missing=True, allow_absent=True)[0], x)


# ---- named errors -------------------------------------------------------------------------------
def test_unknown_state_name_names_column_row_and_value() -> None:
    df = toy_frame()
    df.loc[4, "wet"] = "flooded"
    with pytest.raises(UnknownStateError) as err:
        family_counts(TOY, df)
    msg = str(err.value)
    assert "'wet'" in msg and "row 4" in msg and "'flooded'" in msg


def test_integers_in_a_frame_are_not_state_indices() -> None:
    s = NetworkStructure({}, {"a": ("0", "1")})
    with pytest.raises(UnknownStateError, match="never indices"):
        family_counts(s, pd.DataFrame({"a": [0, 1]}))
    # the names themselves work
    assert family_counts(s, pd.DataFrame({"a": ["0", "1", "1"]}))["a"].tolist() == [1.0, 2.0]


def test_unknown_column_raises() -> None:
    df = toy_frame().assign(hail=["no"] * 6)
    with pytest.raises(UnknownVariableError, match="hail"):
        family_counts(TOY, df)
    with pytest.raises(UnknownVariableError, match="hail"):
        family_counts(TOY, toy_tensor(), variables=["rain", "sprinkler", "hail"])


def test_repeated_and_missing_columns_raise() -> None:
    with pytest.raises(UnknownVariableError, match="repeat"):
        family_counts(TOY, toy_tensor(), variables=["rain", "rain", "wet"])
    with pytest.raises(ValidationError, match="no column for variable"):
        family_counts(TOY, toy_frame()[["rain", "wet"]])


def test_float_and_bool_tensors_are_rejected() -> None:
    x = toy_tensor()
    with pytest.raises(ValidationError, match="integer state indices"):
        family_counts(TOY, x.double())
    nan = x.double()
    nan[0, 0] = float("nan")
    with pytest.raises(ValidationError, match="-1 for missing"):
        family_counts(TOY, nan)
    with pytest.raises(ValidationError, match="integer state indices"):
        family_counts(TOY, x.bool())


def test_wrong_shape_raises() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 3\)"):
        family_counts(TOY, toy_tensor()[:, :2])
    with pytest.raises(ShapeError):
        family_counts(TOY, toy_tensor()[0])
    with pytest.raises(ShapeError, match="weights"):
        family_counts(TOY, toy_tensor(), weights=torch.ones(5))


def test_index_out_of_range_and_missing_values_raise() -> None:
    x = toy_tensor()
    x[3, 2] = 3  # wet has 3 states
    with pytest.raises(UnknownStateError, match=r"column 'wet', row 3"):
        family_counts(TOY, x)
    x[3, 2] = -1
    with pytest.raises(ValidationError, match="missing value"):
        family_counts(TOY, x)
    df = toy_frame()
    df.loc[2, "rain"] = None
    with pytest.raises(ValidationError, match=r"column 'rain', row 2.*missing value"):
        family_counts(TOY, df)


def test_bad_weights_raise() -> None:
    with pytest.raises(ValidationError, match=">= 0"):
        family_counts(TOY, toy_tensor(), weights=-torch.ones(6))
    with pytest.raises(NonFiniteError):
        family_counts(TOY, toy_tensor(), weights=torch.full((6,), float("inf")))


def test_bad_structures_raise() -> None:
    with pytest.raises(CycleError):
        as_structure(({"a": ("b",), "b": ("a",)}, {"a": ("0", "1"), "b": ("0", "1")}))
    with pytest.raises(UnknownVariableError, match="'c'"):
        as_structure(({"a": ("c",)}, {"a": ("0", "1")}))
    with pytest.raises(ValidationError, match="repeat"):
        as_structure(({}, {"a": ("x", "x")}))
    with pytest.raises(ValidationError, match="BayesianNetwork or a"):
        as_structure({"a": ()})
    with pytest.raises(ValidationError, match="DataFrame names its variables"):
        encode_data(TOY, toy_frame(), variables=["rain", "sprinkler", "wet"])
