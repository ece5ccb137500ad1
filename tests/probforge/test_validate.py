"""The shared input checks of probforge.validate: what each accepts, refuses and returns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    MissingFileError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.validate import (
    check_choice,
    check_device,
    check_existing_file,
    check_finite,
    check_int,
    check_log_values,
    check_names,
    check_real,
    check_tensor,
)


@given(st.integers(-10**6, 10**6))
def test_check_int_accepts_integers_in_range(n: int) -> None:
    if n >= 0:
        assert check_int(n, "n", minimum=0) == n
    else:
        with pytest.raises(ValidationError, match=r"must be an int >= 0"):
            check_int(n, "n", minimum=0)


@pytest.mark.parametrize("value", [True, False, 2.0, 2.5, "2", None, [2], torch.tensor(2.0),
                                   torch.tensor([2]), math.nan])
def test_check_int_refuses_non_integers(value: object) -> None:
    with pytest.raises(ValidationError, match="must be an int"):
        check_int(value, "num_draws", minimum=0)


def test_check_int_integer_likes_and_fix() -> None:
    assert check_int(np.int64(3), "n") == 3 and check_int(torch.tensor(4), "n") == 4
    with pytest.raises(ValidationError, match="pass a whole number such as 2"):
        check_int(2.0, "n")
    with pytest.raises(ValidationError, match=r"in \[1, 3\]"):
        check_int(4, "n", minimum=1, maximum=3)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_real(x: float) -> None:
    if math.isnan(x) or math.isinf(x):
        with pytest.raises(NonFiniteError):
            check_real(x, "lr")
    elif x <= 0:
        with pytest.raises(ValidationError, match="> 0"):
            check_real(x, "lr", minimum=0.0, strict_minimum=True)
    else:
        assert check_real(x, "lr", minimum=0.0, strict_minimum=True) == x


def test_check_real_types_and_bounds() -> None:
    assert check_real(1, "lr") == 1.0 and isinstance(check_real(1, "lr"), float)
    assert check_real(math.inf, "t", allow_inf=True) == math.inf
    for bad in (True, "1", None, torch.tensor([1.0]), 1j):
        with pytest.raises(ValidationError):
            check_real(bad, "lr")
    with pytest.raises(ValidationError, match=r"in \[0, 1\)"):
        check_real(1.0, "p", minimum=0.0, maximum=1.0, strict_maximum=True)
    assert check_real(torch.tensor(0.5), "p", minimum=0.0, maximum=1.0) == 0.5


def test_check_choice_compares_types() -> None:
    assert check_choice("log", "semiring", ("log", "max")) == "log"
    with pytest.raises(ValidationError, match=r"must be one of \['log', 'max'\]"):
        check_choice("sum", "semiring", ("log", "max"))
    with pytest.raises(ValidationError):
        check_choice(True, "flag", (1, 0))  # True == 1, but a bool is not the int 1


def test_check_names_reads_a_string_as_one_name() -> None:
    assert check_names("RW", "query") == ["RW"]
    assert check_names(("R", "W"), "query") == ["R", "W"]
    assert check_names(iter(["a"]), "query") == ["a"]
    assert check_names([], "query") == []
    with pytest.raises(ValidationError, match="needs at least one name"):
        check_names([], "query", allow_empty=False)
    with pytest.raises(ValidationError, match="'a' is given twice"):
        check_names(["a", "b", "a"], "query")
    for bad in (3, None, b"ab", torch.tensor([1]), ["a", 1], {"smoke": "yes"}):
        with pytest.raises(ValidationError):
            check_names(bad, "query")


def test_check_tensor() -> None:
    x = torch.zeros(3, 2)
    assert check_tensor(x, "x", ndim=2, shape=(None, 2), floating=True, finite=True) is x
    with pytest.raises(ValidationError, match=r"must be a torch\.Tensor"):
        check_tensor([1.0], "x")
    with pytest.raises(ShapeError, match="must have 1 or 3 dimension"):
        check_tensor(x, "x", ndim=(1, 3))
    with pytest.raises(ShapeError, match=r"must have shape \(\*, 3\)"):
        check_tensor(x, "x", shape=(None, 3))
    with pytest.raises(ShapeError, match="at least 3"):
        check_tensor(x, "x", min_ndim=3)
    with pytest.raises(DtypeMismatchError, match="floating-point"):
        check_tensor(torch.zeros(2, dtype=torch.long), "x", floating=True)
    with pytest.raises(DtypeMismatchError, match="integer tensor"):
        check_tensor(torch.zeros(2, dtype=torch.bool), "x", integer=True)
    with pytest.raises(DtypeMismatchError, match="float64"):
        check_tensor(x, "x", dtype=torch.float64)
    with pytest.raises(DeviceMismatchError):
        check_tensor(x, "x", device=torch.device("meta"))
    with pytest.raises(ShapeError, match="must not be empty"):
        check_tensor(torch.zeros(0, 2), "x", nonempty=True)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8))
def test_check_finite_names_the_first_bad_entry(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if not bad:
        assert check_finite(x, "x") is x
        return
    with pytest.raises(NonFiniteError, match=rf"the first at index \({bad[0]},\)"):
        check_finite(x, "x")


def test_check_finite_ignores_integer_tensors() -> None:
    x = torch.arange(3)
    assert check_finite(x, "x") is x


def test_check_device() -> None:
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValidationError, match="is not a torch device"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="CUDA is not available"):
            check_device("cuda")
    else:
        with pytest.raises(ValidationError, match="CUDA device"):
            check_device(f"cuda:{torch.cuda.device_count()}")


def test_check_existing_file(tmp_path: Path) -> None:
    f = tmp_path / "a.bif"
    f.write_text("")
    assert check_existing_file(str(f), "model") == f
    with pytest.raises(MissingFileError, match="file not found") as err:
        check_existing_file(tmp_path / "b.bif", "model")
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(MissingFileError, match="not a regular file"):
        check_existing_file(tmp_path, "model")
    with pytest.raises(ValidationError):
        check_existing_file(3, "model")


def test_check_log_values() -> None:
    x = torch.tensor([0.0, -math.inf, -2.0])
    assert check_log_values(x, "log_p") is x
    assert check_log_values(torch.full((2,), -math.inf), "log_w").isneginf().all()
    with pytest.raises(NonFiniteError, match="every entry is -inf"):
        check_log_values(torch.full((2,), -math.inf), "log_w", allow_all_neg_inf=False)
    for bad in (math.nan, math.inf):
        with pytest.raises(NonFiniteError, match=r"NaN or \+inf entries .* at index \(1,\)"):
            check_log_values(torch.tensor([0.0, bad]), "log_p")
    with pytest.raises(DtypeMismatchError):
        check_log_values(torch.tensor([0, 1]), "log_p")
