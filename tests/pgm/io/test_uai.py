"""UAI model, evidence and result files (pgm.io.uai)."""

from __future__ import annotations

import doctest
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

import pgm.io.uai
import pgm.io.uai.evidence
import pgm.io.uai.model
import pgm.io.uai.result
from pgm.io import (
    UAIModel,
    UAIResult,
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
from probforge.errors import ParseError, ShapeError, ValidationError

# The example of the UAI format description: X, Y, Z with cardinalities 2, 2, 3.
EXAMPLE = """MARKOV
3
2 2 3
3
1 0
2 0 1
2 1 2

2
 0.436 0.564

4
 0.128 0.872
 0.920 0.080

6
 0.210 0.333 0.457
 0.811 0.000 0.189
"""


def random_model(kind: str, seed: int) -> UAIModel:
    rng = np.random.default_rng(seed)
    cards = tuple(int(c) for c in rng.integers(1, 5, size=6))
    scopes: list[tuple[int, ...]] = []
    if kind == "BAYES":
        for child in rng.permutation(6):
            others = [v for v in range(6) if v != child]
            parents = rng.choice(others, size=rng.integers(0, 3), replace=False)
            scopes.append((*map(int, parents), int(child)))
    else:
        scopes = [tuple(map(int, rng.choice(6, size=k, replace=False))) for k in (0, 1, 2, 3, 3)]
    tables = []
    for scope in scopes:
        shape = tuple(cards[v] for v in scope)
        t = rng.random(shape)
        tables.append(t / t.sum(axis=-1, keepdims=True) if kind == "BAYES" else t * 10)
    return UAIModel(kind, cards, tuple(scopes), tuple(tables))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# model files
# --------------------------------------------------------------------------------------------------


def test_value_order_last_scope_variable_fastest() -> None:
    # scope (1, 0): variable 1 (2 states) is the first axis, variable 0 (3 states) the second.
    text = "MARKOV\n2\n3 2\n1\n2 1 0\n6\n1 2 3 4 5 6\n"
    m = parse_uai(text)
    t = m.tables[0]
    assert t.shape == (2, 3)  # (cards[1], cards[0]): scope order, not variable order
    # entry k of the file is the assignment (x1, x0) = divmod(k, 3): x0 changes fastest
    assert t[0, 0] == 1 and t[0, 1] == 2 and t[0, 2] == 3
    assert t[1, 0] == 4 and t[1, 1] == 5 and t[1, 2] == 6
    np.testing.assert_array_equal(t, [[1, 2, 3], [4, 5, 6]])


def test_format_description_example() -> None:
    m = parse_uai(EXAMPLE, "example.uai")
    assert m.kind == "MARKOV" and m.cards == (2, 2, 3)
    assert m.scopes == ((0,), (0, 1), (1, 2))
    np.testing.assert_array_equal(m.tables[1], [[0.128, 0.872], [0.920, 0.080]])
    assert m.tables[2][1, 2] == 0.189  # Y = 1, Z = 2
    assert parse_uai(write_uai_text(m)) == m


def test_bayes_child_is_the_last_scope_variable() -> None:
    text = "BAYES\n2\n2 3\n2\n2 0 1\n1 0\n6\n0.2 0.3 0.5\n0.1 0.1 0.8\n2\n0.4 0.6\n"
    m = parse_uai(text)
    # table 0 is p(x1 | x0): rows over the last axis (the child) sum to one
    np.testing.assert_allclose(m.tables[0].sum(axis=-1), 1.0)
    np.testing.assert_array_equal(m.tables[0][1], [0.1, 0.1, 0.8])


@pytest.mark.parametrize("kind", ["BAYES", "MARKOV"])
@pytest.mark.parametrize("seed", range(4))
def test_round_trip(kind: str, seed: int, tmp_path: Path) -> None:
    m = random_model(kind, seed)
    assert parse_uai(write_uai_text(m)) == m
    path = tmp_path / "m.uai"
    write_uai(m, path)
    assert read_uai(path) == m
    gz = tmp_path / "m.uai.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_uai(gz) == m


def test_layout_without_line_structure_is_read_as_a_stream() -> None:
    flat = " ".join(EXAMPLE.split())
    assert parse_uai(flat) == parse_uai(EXAMPLE)


def test_constant_function_with_empty_scope() -> None:
    m = parse_uai("MARKOV\n1\n2\n2\n0\n1 0\n1\n 2.5\n2\n 1 1\n")
    assert m.scopes[0] == () and m.tables[0].shape == () and float(m.tables[0]) == 2.5
    assert parse_uai(write_uai_text(m)) == m


def uai_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_uai(text, "m.uai")
    err = info.value
    assert err.file == "m.uai" and str(err).startswith(f"m.uai:{err.line}:{err.column}: ")
    return err


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "token", "expected"),
    [
        ("MARKOV", "markov", 1, 1, "markov", "'BAYES' or 'MARKOV'"),
        ("\n3\n2 2 3", "\n3 4\n2 2 3", 2, 3, "4", "end of the line after the number of var"),
        ("\n3\n2 2 3", "\nthree\n2 2 3", 2, 1, "three", "the number of variables"),
        ("2 2 3\n", "2 2 3 4\n", 3, 7, "4", "end of the line after 3 cardinalities"),
        ("2 2 3\n", "2 2\n", 4, 1, "3", "cardinality of variable 2 (a whole number >= 1) on"),
        ("2 2 3\n", "2 0 3\n", 3, 3, "0", "cardinality of variable 1"),
        ("2 1 2\n", "2 1 3\n", 7, 5, "3", "an index in [0, 3)"),
        ("2 1 2\n", "2 1 2 0\n", 7, 7, "0", "after the 2 variables of the scope"),
        ("2 1 2\n", "3 1 2\n", 9, 1, "2", "on the scope line of function 2"),
        ("2 1 2\n", "2 1 1\n", 7, 5, "1", "a variable not already in the scope"),
        ("2 1 2\n", "4 1 2 0 1\n", 7, 1, "4", "scope size of function 2 (a whole number <= 3)"),
        ("\n4\n", "\n5\n", 12, 1, "5", "product of the cardinalities [2, 2]"),
        ("\n4\n", "\n1000000000000\n", 12, 1, "1000000000000", "entries of function 1: 4"),
        ("0.920 0.080", "0.920 -0.080", 14, 8, "-0.080", "entry 3 of function 1"),
        ("0.920 0.080", "0.920 nan", 14, 8, "nan", "finite, non-negative"),
        ("0.920 0.080", "0.920 inf", 14, 8, "inf", "finite, non-negative"),
        ("0.920 0.080", "0.920 1e999", 14, 8, "1e999", "finite, non-negative"),
        ("0.920 0.080", "0.920 0_080", 14, 8, "0_080", "finite, non-negative"),
        ("0.920 0.080", "0.920 0.0.8", 14, 8, "0.0.8", "finite, non-negative"),
        (" 0.811 0.000 0.189\n", " 0.811 0.000\n", 19, 1, "<end of file>", "6 values"),
        (" 0.811 0.000 0.189\n", " 0.811 0.000 0.189 7\n", 18, 20, "7", "end of the file"),
    ],
)
def test_model_errors_locate_the_problem(
    old: str, new: str, line: int, column: int, token: str, expected: str
) -> None:
    assert old in EXAMPLE
    err = uai_error(EXAMPLE.replace(old, new, 1))
    assert (err.line, err.column, err.token) == (line, column, token), str(err)
    assert expected in err.expected, str(err)


def test_bayes_structure_errors() -> None:
    err = uai_error("BAYES\n2\n2 2\n2\n1 0\n1 0\n2 0.5 0.5\n2 0.5 0.5\n")
    assert (err.line, err.column, err.token) == (6, 3, "0") and "already the child" in err.expected
    err = uai_error("BAYES\n2\n2 2\n1\n1 0\n2 0.5 0.5\n")
    assert "variable 1 is not the last" in err.expected
    err = uai_error("BAYES\n1\n2\n1\n0\n1 0.5\n")
    assert (err.line, err.column) == (5, 1) and "scope size" in err.expected


def test_declared_sizes_are_checked_before_allocating() -> None:
    # A consistent but enormous table is refused by max_table_entries, before reading values.
    text = "MARKOV\n2\n1000000 1000000\n1\n2 0 1\n1000000000000\n0.5\n"
    err = uai_error(text)
    assert err.token == "1000000000000" and "max_table_entries" in err.expected
    # Huge counts with nothing behind them fail at the end of the file, allocating nothing.
    err = uai_error("MARKOV\n1000000000000\n2 2\n")
    assert err.token == "<end of file>"
    err = uai_error("MARKOV\n1\n2\n1000000000000\n1 0\n")
    assert err.token == "<end of file>"
    assert parse_uai(EXAMPLE, max_table_entries=6) == parse_uai(EXAMPLE)
    with pytest.raises(ParseError, match="max_table_entries=5"):
        parse_uai(EXAMPLE, max_table_entries=5)


def test_model_class_validates() -> None:
    with pytest.raises(ShapeError):
        UAIModel("MARKOV", (2, 3), ((0, 1),), (np.ones((3, 2)),))
    with pytest.raises(ValidationError, match="distinct"):
        UAIModel("MARKOV", (2,), ((0, 0),), (np.ones((2, 2)),))
    with pytest.raises(ValidationError, match="child"):
        UAIModel("BAYES", (2, 2), ((0,),), (np.ones(2),))
    with pytest.raises(ValidationError, match=">= 0"):
        UAIModel("MARKOV", (2,), ((0,),), (np.array([1.0, -1.0]),))
    with pytest.raises(ValidationError, match="kind"):
        UAIModel("CSP", (2,), ((0,),), (np.ones(2),))  # type: ignore[arg-type]
    m = parse_uai(EXAMPLE)
    assert not m.tables[0].flags.writeable
    assert "functions=3" in repr(m)


# --------------------------------------------------------------------------------------------------
# evidence
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "samples"),
    [
        ("2 1 0 2 1\n", [{1: 0, 2: 1}]),  # UAI 2008 / 2012+: one line
        ("0\n", [{}]),  # no evidence
        ("2\n1 0 1\n2 0 0 1 1\n", [{0: 1}, {0: 0, 1: 1}]),  # UAI 2010: count first
        ("1\n1 0 1\n", [{0: 1}]),  # UAI 2010 with one sample
        ("1\n0\n", [{}]),  # UAI 2010, one sample without evidence
        ("2\n1 0\n2 1\n", [{1: 0, 2: 1}]),  # one sample spread over lines
        ("  3 0 1\n  1 1 2 0 \n", [{0: 1, 1: 1, 2: 0}]),
    ],
)
def test_evidence_layouts(text: str, samples: list[dict[int, int]]) -> None:
    assert parse_uai_evidence(text) == samples


def test_evidence_round_trip_and_layout_choice(tmp_path: Path) -> None:
    one = {2: 1, 0: 0}
    assert write_uai_evidence_text(one) == "2 2 1 0 0\n"
    assert write_uai_evidence_text([one]) == "2 2 1 0 0\n"
    assert write_uai_evidence_text([one], layout="multi") == "1\n2 2 1 0 0\n"
    assert write_uai_evidence_text([one, {}]) == "2\n2 2 1 0 0\n0\n"
    for evidence, layout in [([one], "auto"), ([one], "multi"), ([one, {}, {1: 1}], "auto"),
                             ([{}], "single"), ([{}], "multi")]:  # fmt: skip
        path = tmp_path / "e.evid"
        write_uai_evidence(evidence, path, layout=layout)  # type: ignore[arg-type]
        assert read_uai_evidence(path) == evidence, (evidence, layout)
    with pytest.raises(ValidationError, match="no sample"):
        write_uai_evidence_text([])
    with pytest.raises(ValidationError, match="exactly one"):
        write_uai_evidence_text([one, one], layout="single")
    with pytest.raises(ValidationError, match="whole numbers"):
        write_uai_evidence_text({0: -1})
    with pytest.raises(ValidationError, match="range"):
        write_uai_evidence_text({2: 3}, model=parse_uai(EXAMPLE))


def test_evidence_errors() -> None:
    model = parse_uai(EXAMPLE)
    with pytest.raises(ParseError) as info:
        parse_uai_evidence("2 1 0 1 1\n", "e.evid")
    assert (info.value.line, info.value.column, info.value.token) == (1, 7, "1")
    assert "not observed already" in info.value.expected
    with pytest.raises(ParseError) as info:
        parse_uai_evidence("1 3 0\n", "e.evid", model=model)
    assert (info.value.column, info.value.token) == (3, "3")
    with pytest.raises(ParseError) as info:
        parse_uai_evidence("1 2 3\n", "e.evid", model=model)
    assert (info.value.column, info.value.token) == (5, "3") and "[0, 3)" in info.value.expected
    with pytest.raises(ParseError) as info:
        parse_uai_evidence("2\n1 0 1\n", "e.evid")
    assert info.value.token == "<end of file>" and "sample 1" in info.value.expected
    with pytest.raises(ParseError) as info:
        parse_uai_evidence("1 0 x\n", "e.evid")
    assert info.value.token == "x"
    with pytest.raises(ParseError):
        parse_uai_evidence("", "e.evid")


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


def test_pr_results_are_log10(tmp_path: Path) -> None:
    z = 0.0123
    path = tmp_path / "m.uai.PR"
    write_uai_result("PR", math.log10(z), path)
    assert path.read_text() == f"PR\n{math.log10(z)!r}\n"
    r = read_uai_result(path)
    assert r.task == "PR" and 10**r.log10_probability == pytest.approx(z, rel=1e-15)
    assert parse_uai_result("PR\n-0.2008\n").log10_probability == -0.2008
    assert parse_uai_result("PR\n-inf\n").log10_probability == -math.inf  # probability zero
    for bad in ("PR\ninf\n", "PR\nnan\n", "PR\n\n"):
        with pytest.raises(ParseError):
            parse_uai_result(bad)
    with pytest.raises(ValidationError):
        UAIResult("PR", math.nan)


def test_mar_and_map_results_round_trip(tmp_path: Path) -> None:
    model = parse_uai(EXAMPLE)
    marginals = [np.array([0.25, 0.75]), np.array([0.5, 0.5]), np.array([0.1, 0.2, 0.7])]
    text = format_uai_result("MAR", marginals, model=model)
    assert text == "MAR\n3 2 0.25 0.75 2 0.5 0.5 3 0.1 0.2 0.7\n"
    path = tmp_path / "m.uai.MAR"
    write_uai_result("MAR", marginals, path, model=model)
    r = read_uai_result(path, model=model)
    assert all(np.array_equal(a, b) for a, b in zip(r.marginals, marginals, strict=True))
    write_uai_result("MAP", [1, 0, 2], path, model=model)
    assert path.read_text() == "MAP\n3 1 0 2\n"
    assert read_uai_result(path, model=model).assignment == (1, 0, 2)
    assert parse_uai_result("MPE\n3 0 1 0\n").assignment == (0, 1, 0)
    with pytest.raises(ShapeError):
        format_uai_result("MAR", marginals[:2], model=model)
    with pytest.raises(ValidationError):
        format_uai_result("MAP", [1, 0, 3], model=model)
    with pytest.raises(ValidationError):
        UAIResult("PR", 1.0).marginals  # noqa: B018


def test_result_layouts() -> None:
    # anytime solvers: the last -BEGIN- section counts
    assert parse_uai_result("MAP\n3 0 1 0\n-BEGIN-\n3 1 1 1\n").assignment == (1, 1, 1)
    # UAI 2010: the number of evidence samples first
    rs = parse_uai_results("MPE\n2\n2 0 1\n2 1 1\n")
    assert [r.assignment for r in rs] == [(0, 1), (1, 1)]
    assert parse_uai_result("PR\n1\n-0.5\n").log10_probability == -0.5
    mar = parse_uai_result("MAR\n1\n2 2 0.1 0.9 1 1.0\n")
    assert [m.tolist() for m in mar.marginals] == [[0.1, 0.9], [1.0]]
    with pytest.raises(ParseError, match="read_uai_results"):
        parse_uai_result("PR\n2\n-0.5\n-0.7\n")


def test_result_errors(tmp_path: Path) -> None:
    model = parse_uai(EXAMPLE)
    cases = [
        ("BEL\n0.5\n", None, 1, 1, "BEL", "the task"),
        ("MAR\n3 2 0.5 0.5 2 0.5 0.5 2 0.5 0.5\n", model, 2, 23, "2", "cardinality of variable 2"),
        ("MAR\n2 2 0.5 0.5 2 0.5 0.5\n", model, 2, 1, "2", "number of variables (3)"),
        ("MAR\n1 2 0.5 -0.5\n", None, 2, 9, "-0.5", "a number >= 0"),
        ("MAP\n3 0 1 3\n", model, 2, 7, "3", "value of variable 2 (in [0, 3))"),
        ("MAP\n3 0 1\n", None, 3, 1, "<end of file>", "value of variable 2"),
        ("MAP\n", None, 2, 1, "<end of file>", "a MAP solution"),
    ]
    for text, m, line, column, token, expected in cases:
        path = tmp_path / "r.txt"
        path.write_text(text)
        with pytest.raises(ParseError) as info:
            read_uai_results(path, model=m)
        err = info.value
        assert err.file == str(path)
        assert (err.line, err.column, err.token) == (line, column, token), str(err)
        assert expected in err.expected, str(err)


def test_module_examples_run() -> None:
    attempted = 0
    for module in (pgm.io.uai, pgm.io.uai.model, pgm.io.uai.evidence, pgm.io.uai.result):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted > 10
