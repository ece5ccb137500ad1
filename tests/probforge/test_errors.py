"""The error hierarchy: builtin bases and message format."""

from __future__ import annotations

import pytest

from probforge import errors


def test_every_error_is_a_probforge_error_and_a_builtin() -> None:
    builtin = {
        errors.ValidationError: ValueError, errors.ShapeError: ValueError,
        errors.NonFiniteError: ValueError, errors.NormalisationError: ValueError,
        errors.CycleError: ValueError, errors.UnknownVariableError: KeyError,
        errors.UnknownStateError: KeyError, errors.ZeroProbabilityEvidence: ValueError,
        errors.ParseError: ValueError, errors.DeviceMismatchError: ValueError,
        errors.DtypeMismatchError: ValueError, errors.MemoryBudgetExceeded: MemoryError,
        errors.SamplingError: RuntimeError, errors.ConvergenceError: RuntimeError,
        errors.CheckpointError: RuntimeError, errors.DataNotFoundError: FileNotFoundError,
        errors.MissingDependencyError: ImportError,
    }
    for cls, base in builtin.items():
        assert issubclass(cls, errors.ProbforgeError) and issubclass(cls, base)
    assert set(errors.__all__) >= {c.__name__ for c in builtin}


def test_message_names_subject_value_rule_and_fix() -> None:
    err = errors.UnknownVariableError("network 'asia'", "no variable 'lungs'", found="'lungs'",
                                      fix="use one of ['lung', 'tub']")
    # KeyError's str() would normally quote; ours prints the message as is.
    assert str(err) == ("network 'asia': no variable 'lungs' (found 'lungs'). "
                        "Fix: use one of ['lung', 'tub'].")
    assert err.subject == "network 'asia'" and err.found == "'lungs'"


def test_parse_error_fields() -> None:
    err = errors.ParseError("asia.bif", 12, 5, "}", "';'")
    assert (err.file, err.line, err.column, err.token, err.expected) == (
        "asia.bif", 12, 5, "}", "';'")
    assert str(err) == "asia.bif:12:5: expected ';' (found '}')."
    with pytest.raises(ValueError):
        raise err
