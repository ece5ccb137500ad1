"""Tests for the generic EM monitor: history, convergence, and the monotonicity assertion."""

from __future__ import annotations

import math

import pytest
import torch

from pgm.learning import EMMonitor
from probforge.errors import ConvergenceError, ValidationError


def test_records_history_and_converges_on_small_improvement() -> None:
    m = EMMonitor(tol=1e-3, max_iter=10)
    assert not m.done and m.n_iter == 0 and m.history == []
    assert m.update(-10.0) is False
    assert m.update(-5.0) is False
    assert not m.converged
    assert m.update(-4.9995) is True
    assert m.history == [-10.0, -5.0, -4.9995]
    assert m.converged and m.n_iter == 2
    assert m.improvement == pytest.approx(0.0005)


def test_stops_at_max_iter_without_converging() -> None:
    m = EMMonitor(tol=1e-6, max_iter=3)
    values = [-10.0, -9.0, -8.0, -7.0]
    flags = [m.update(v) for v in values]
    assert flags == [False, False, False, True]
    assert not m.converged and m.n_iter == 3


def test_max_iter_zero_is_done_after_initial_value() -> None:
    m = EMMonitor(max_iter=0)
    assert m.update(-1.0) is True
    assert m.n_iter == 0 and not m.converged


def test_decrease_raises_naming_iteration_and_both_values() -> None:
    m = EMMonitor(tol=1e-9, max_iter=10, name="toy-EM")
    m.update(-10.0)
    m.update(-5.0)
    with pytest.raises(ConvergenceError) as info:
        m.update(-5.5)
    msg = str(info.value)
    assert "toy-EM iteration 2" in msg
    assert "-5.0" in msg and "-5.5" in msg
    assert m.history == [-10.0, -5.0]  # the bad value is not recorded


def test_decrease_within_relative_tolerance_counts_as_converged() -> None:
    m = EMMonitor(tol=1e-3, decrease_rtol=1e-9)
    m.update(-1e6)
    # A drop of 1e-4 on a magnitude of 1e6 is 1e-10 relative: rounding, not a bug.
    assert m.update(-1e6 - 1e-4) is True
    assert m.converged
    m2 = EMMonitor(tol=1e-3, decrease_rtol=1e-9)
    m2.update(-1e6)
    with pytest.raises(ConvergenceError):
        m2.update(-1e6 - 1e-2)  # 1e-8 relative: too large


def test_tensor_values_and_minus_inf_start() -> None:
    m = EMMonitor(tol=1e-6)
    m.update(torch.tensor(-math.inf, dtype=torch.float64))
    m.update(torch.tensor(-3.0, dtype=torch.float64))
    assert m.history == [-math.inf, -3.0]
    assert not m.converged


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_plus_inf_raises(bad: float) -> None:
    m = EMMonitor()
    m.update(-1.0)
    with pytest.raises(ConvergenceError, match="not finite"):
        m.update(bad)


def test_fall_to_minus_inf_raises() -> None:
    m = EMMonitor()
    m.update(-1.0)
    with pytest.raises(ConvergenceError, match="-inf"):
        m.update(-math.inf)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"tol": -1.0}, "tol"), ({"max_iter": -1}, "max_iter"), ({"max_iter": 2.5}, "max_iter"),
     ({"decrease_rtol": math.nan}, "decrease_rtol")],
)
def test_bad_arguments_raise_validation_error(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        EMMonitor(**kwargs)  # type: ignore[arg-type]
