"""BIF reading and writing (pgm.io.bif), the bundled networks and atomic writes.

pgmpy serves as the oracle for the 24 bnlearn networks it ships: states, parents and CPT values
must agree exactly (both parse the same decimal strings with ``float``).
"""

from __future__ import annotations

import doctest
import gzip
import importlib
import importlib.resources
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from pgm.io import (
    DiscreteNetworkData,
    bundled_network_path,
    bundled_networks,
    parse_bif,
    read_bif,
    write_bif,
    write_bif_text,
)
from probforge.errors import DataNotFoundError, ParseError, ShapeError, ValidationError

PGMPY_MODELS: Path | None
try:
    import pgmpy as _pgmpy

    PGMPY_MODELS = Path(_pgmpy.__file__).parent / "utils" / "example_models"
except ImportError:  # pragma: no cover - pgmpy is a bench extra
    PGMPY_MODELS = None

NETWORKS_24 = [
    "alarm", "andes", "asia", "barley", "cancer", "child", "diabetes", "earthquake",
    "hailfinder", "hepar2", "insurance", "link", "mildew", "munin", "munin1", "munin2",
    "munin3", "munin4", "pathfinder", "pigs", "sachs", "survey", "water", "win95pts",
]  # fmt: skip
# pgmpy's own reader needs 1-3 s even for a tiny network (and up to 15 s for the big ones), so
# only these are compared by default; `-m slow` compares all 24.
PGMPY_FAST = {"alarm", "asia"}
# Files over 1 MB of text: round-tripped only with `-m slow` (all 24 are parsed by default).
BIG = {"barley", "diabetes", "mildew", "munin", "munin2", "munin3", "munin4", "pathfinder"}

needs_pgmpy = pytest.mark.skipif(PGMPY_MODELS is None, reason="pgmpy (bench extra) not installed")


def pgmpy_file(name: str) -> Path:
    assert PGMPY_MODELS is not None
    return PGMPY_MODELS / f"{name}.bif.gz"


def asia_text() -> str:
    return bundled_network_path("asia").read_text()


def p(data: DiscreteNetworkData, child: str, child_state: str, **parents: str) -> float:
    """p(child = child_state | parents) looked up by state names."""
    index = tuple(data.states[q].index(parents[q]) for q in data.parents[child])
    return float(data.cpts[child][(*index, data.states[child].index(child_state))])


# --------------------------------------------------------------------------------------------------
# bundled networks
# --------------------------------------------------------------------------------------------------


def test_bundled_networks_are_listed_and_found() -> None:
    assert bundled_networks() == ["alarm", "asia", "sprinkler"]
    for name in bundled_networks():
        path = bundled_network_path(name)
        assert path.is_file() and path.suffix == ".bif"
        # Installed as package data: importlib.resources sees the same file.
        resource = importlib.resources.files("pgm.io.networks").joinpath(f"{name}.bif")
        assert resource.is_file()
        assert resource.read_text() == path.read_text()


def test_unknown_bundled_network_lists_the_available_ones() -> None:
    with pytest.raises(DataNotFoundError) as info:
        bundled_network_path("asai")
    assert "asia" in str(info.value) and "sprinkler" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(DataNotFoundError):
        bundled_network_path("../io/networks/asia")


def test_bundled_asia_has_the_textbook_cpts() -> None:
    asia = read_bif(bundled_network_path("asia"))
    assert asia.variables == ("asia", "tub", "smoke", "lung", "bronc", "either", "xray", "dysp")
    assert p(asia, "asia", "yes") == 0.01
    assert p(asia, "tub", "yes", asia="yes") == 0.05
    assert p(asia, "tub", "yes", asia="no") == 0.01
    assert p(asia, "smoke", "yes") == 0.5
    assert p(asia, "lung", "yes", smoke="yes") == 0.1
    assert p(asia, "lung", "yes", smoke="no") == 0.01
    assert p(asia, "bronc", "yes", smoke="yes") == 0.6
    assert p(asia, "bronc", "yes", smoke="no") == 0.3
    for lung in ("yes", "no"):
        for tub in ("yes", "no"):
            either = 1.0 if "yes" in (lung, tub) else 0.0  # either = tub OR lung
            assert p(asia, "either", "yes", lung=lung, tub=tub) == either
    assert p(asia, "xray", "yes", either="yes") == 0.98
    assert p(asia, "xray", "yes", either="no") == 0.05
    assert p(asia, "dysp", "yes", bronc="yes", either="yes") == 0.9
    assert p(asia, "dysp", "yes", bronc="no", either="yes") == 0.7
    assert p(asia, "dysp", "yes", bronc="yes", either="no") == 0.8
    assert p(asia, "dysp", "yes", bronc="no", either="no") == 0.1


def test_bundled_sprinkler_has_murphys_cpts() -> None:
    s = read_bif(bundled_network_path("sprinkler"))
    assert s.parents == {
        "cloudy": (),
        "sprinkler": ("cloudy",),
        "rain": ("cloudy",),
        "wetgrass": ("sprinkler", "rain"),
    }
    assert p(s, "cloudy", "yes") == 0.5
    assert p(s, "sprinkler", "yes", cloudy="yes") == 0.1
    assert p(s, "sprinkler", "yes", cloudy="no") == 0.5
    assert p(s, "rain", "yes", cloudy="yes") == 0.8
    assert p(s, "rain", "yes", cloudy="no") == 0.2
    assert p(s, "wetgrass", "yes", sprinkler="yes", rain="yes") == 0.99
    assert p(s, "wetgrass", "yes", sprinkler="yes", rain="no") == 0.9
    assert p(s, "wetgrass", "yes", sprinkler="no", rain="yes") == 0.9
    assert p(s, "wetgrass", "yes", sprinkler="no", rain="no") == 0.0


@needs_pgmpy
@pytest.mark.parametrize("name", ["asia", "alarm"])
def test_bundled_files_are_the_bnlearn_text_unchanged(name: str) -> None:
    original = gzip.decompress(pgmpy_file(name).read_bytes()).decode()
    assert bundled_network_path(name).read_text() == original


def test_bundled_alarm_shape() -> None:
    alarm = read_bif(bundled_network_path("alarm"))
    assert len(alarm.variables) == 37
    assert sum(len(ps) for ps in alarm.parents.values()) == 46
    assert alarm.parents["CO"] == ("HR", "STROKEVOLUME")
    assert alarm.cpts["CO"].shape == (3, 3, 3)
    assert p(alarm, "HR", "HIGH", CATECHOL="HIGH") == 0.90


# --------------------------------------------------------------------------------------------------
# the 24 bnlearn networks, against pgmpy
# --------------------------------------------------------------------------------------------------


@needs_pgmpy
def test_all_24_pgmpy_networks_parse() -> None:
    assert PGMPY_MODELS is not None
    shipped = sorted(f.name[: -len(".bif.gz")] for f in PGMPY_MODELS.glob("*.bif.gz"))
    assert shipped == NETWORKS_24
    for name in NETWORKS_24:
        data = read_bif(pgmpy_file(name))
        assert data.variables, name
        for var in data.variables:
            assert data.cpts[var].shape == (
                *(len(data.states[q]) for q in data.parents[var]),
                len(data.states[var]),
            )


def assert_matches_pgmpy(ours: DiscreteNetworkData, name: str) -> None:
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_example_model(name)
    assert set(model.nodes()) == set(ours.variables)
    for cpd in model.get_cpds():
        var = cpd.variable
        evidence = list(cpd.variables[1:])
        assert sorted(evidence) == sorted(ours.parents[var]), var
        for v in (var, *evidence):
            assert tuple(cpd.state_names[v]) == ours.states[v], (var, v)
        # pgmpy: values shape (child, *evidence cards), evidence in cpd.variables[1:] order.
        # ours: (*parents, child), parents in ours.parents[var] order.
        order = [ours.parents[var].index(e) for e in evidence]
        expected = np.transpose(ours.cpts[var], (len(order), *order))
        np.testing.assert_array_equal(np.asarray(cpd.values), expected, err_msg=f"{name}:{var}")


@needs_pgmpy
@pytest.mark.parametrize(
    "name",
    [n if n in PGMPY_FAST else pytest.param(n, marks=pytest.mark.slow) for n in NETWORKS_24],
)
def test_network_matches_pgmpy(name: str) -> None:
    assert_matches_pgmpy(read_bif(pgmpy_file(name)), name)


@needs_pgmpy
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in NETWORKS_24],
)
def test_network_round_trips(name: str) -> None:
    data = read_bif(pgmpy_file(name))
    assert parse_bif(write_bif_text(data)) == data


# --------------------------------------------------------------------------------------------------
# grammar
# --------------------------------------------------------------------------------------------------

GRAMMAR = """/* block comment
   over lines */ network test-net.1 {
  property author = someone ;
  property "quoted ; semicolon" ;
}
variable Age { // trailing comment
  type discrete [ 3 ] { <5, 5-12, 12+ };
  property position = (1, 2);
}
variable Lung.Patch/x {
  type discrete[2]{Asy/Patch,Transp.};
}
variable C {
  type discrete [ 2 ] { 0, 1 };
}
probability ( Age ) { table 0.2, 0.3, 0.5; }
probability ( Lung.Patch/x | Age ) {
  (12+) 0.5 0.5;
  default 0.25, 0.75;
  (<5) 1e-1, 9.0E-1;
}
probability ( C | Age, Lung.Patch/x ) {
  table 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,   // C = 0 for (Age, Lung) in C order
        0.9, 0.8, 0.7, 0.6, 0.5, 0.4;   // C = 1
}
"""


def test_grammar_features() -> None:
    d = parse_bif(GRAMMAR)
    assert d.name == "test-net.1"
    assert d.network_properties == ("author = someone", '"quoted ; semicolon"')
    assert d.states["Age"] == ("<5", "5-12", "12+")
    assert d.states["Lung.Patch/x"] == ("Asy/Patch", "Transp.")
    assert d.properties == {"Age": ("position = (1, 2)",), "Lung.Patch/x": (), "C": ()}
    np.testing.assert_array_equal(d.cpts["Age"], [0.2, 0.3, 0.5])
    # explicit rows win, the default fills the rest, white space separates values too
    np.testing.assert_array_equal(d.cpts["Lung.Patch/x"], [[0.1, 0.9], [0.25, 0.75], [0.5, 0.5]])
    # a conditional 'table' lists the child slowest: (child, *parents) in C order
    assert d.cpts["C"].shape == (3, 2, 2)
    np.testing.assert_array_equal(d.cpts["C"][..., 0], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    np.testing.assert_array_equal(d.cpts["C"][2, 1], [0.6, 0.4])
    assert parse_bif(write_bif_text(d)) == d


def test_rows_in_any_order_fill_by_state_name() -> None:
    text = asia_text()
    block = "  (yes, yes) 0.9, 0.1;\n  (no, yes) 0.7, 0.3;\n  (yes, no) 0.8, 0.2;\n"
    assert block in text
    shuffled = text.replace(block, "  (yes, no) 0.8, 0.2;\n  (yes, yes) 0.9, 0.1;\n"
                            "  (no, yes) 0.7, 0.3;\n")  # fmt: skip
    assert parse_bif(shuffled) == parse_bif(text)


def test_rows_are_not_renormalised() -> None:
    text = asia_text().replace("(yes) 0.05, 0.95;", "(yes) 0.5, 0.95;")
    assert p(parse_bif(text), "tub", "yes", asia="yes") == 0.5


def test_gzip_and_path_types(tmp_path: Path) -> None:
    gz = tmp_path / "asia.bif.gz"
    gz.write_bytes(gzip.compress(asia_text().encode()))
    expected = parse_bif(asia_text())
    assert read_bif(gz) == expected
    assert read_bif(str(gz)) == expected
    write_bif(expected, tmp_path / "copy.bif.gz")
    assert (tmp_path / "copy.bif.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert read_bif(tmp_path / "copy.bif.gz") == expected


def test_crlf_and_byte_order_mark(tmp_path: Path) -> None:
    text = asia_text()
    path = tmp_path / "dos.bif"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert read_bif(path) == parse_bif(text)


def test_undecodable_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.bif"
    path.write_bytes(asia_text().replace("yes", "y\xe9s", 1).encode("latin-1"))
    with pytest.raises(ParseError, match="UTF-8") as info:
        read_bif(path)
    assert (info.value.line, info.value.column) == (4, 26)  # the byte after "y"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ParseError, match="gzip"):
        read_bif(path)


# --------------------------------------------------------------------------------------------------
# errors: every one a ParseError with file, line, column, token and expectation
# --------------------------------------------------------------------------------------------------


def parse_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_bif(text, "asia.bif")
    err = info.value
    assert err.file == "asia.bif"
    assert str(err).startswith(f"asia.bif:{err.line}:{err.column}: expected ")
    assert repr(err.token) in str(err)
    return err


def edit(old: str, new: str, count: int = 1) -> str:
    text = asia_text()
    assert old in text
    return text.replace(old, new, count)


@pytest.mark.parametrize(
    ("text", "line", "column", "token", "expected"),
    [
        # missing brace after a variable name
        (edit("variable tub {", "variable tub"), 7, 3, "type", "'{'"),
        # missing closing brace of a probability block: the next block starts inside it
        (edit("  (no) 0.01, 0.99;\n}", "  (no) 0.01, 0.99;"), 33, 1, "probability", "'table'"),
        # unknown parent
        (edit("probability ( tub | asia )", "probability ( tub | asai )"), 30, 21, "asai",
         "a declared variable as a parent of 'tub'"),
        # unknown child
        (edit("probability ( asia )", "probability ( Asia )"), 27, 15, "Asia",
         "a declared variable as the child"),
        # too many values in a row
        (edit("(yes) 0.05, 0.95;", "(yes) 0.05, 0.95, 0.1;"), 31, 21, "0.1",
         "';' after the 2 values"),
        # too few values in a row
        (edit("(yes) 0.05, 0.95;", "(yes) 0.05;"), 31, 13, ";", "2 values in the row"),
        # a state that the parent does not have
        (edit("(yes) 0.05, 0.95;", "(maybe) 0.05, 0.95;"), 31, 4, "maybe",
         "a state of parent 'asia' (one of yes, no)"),
        # duplicate variable
        (edit("variable tub {", "variable asia {"), 6, 10, "asia", "a new variable name"),
        # [ N ] disagrees with the state list, both ways
        (edit("variable tub {\n  type discrete [ 2 ]", "variable tub {\n  type discrete [ 3 ]"),
         7, 33, "}", "3 states as declared by [ 3 ]"),
        (edit("variable tub {\n  type discrete [ 2 ]", "variable tub {\n  type discrete [ 1 ]"),
         7, 30, "no", "'}' ('tub' is declared with [ 1 ] states)"),
        (edit("[ 2 ] { yes, no };\n}\nvariable tub", "[ 0 ] { yes, no };\n}\nvariable tub"),
         4, 19, "0", "a positive whole number of states"),
        # a table with the wrong number of values
        (edit("table 0.01, 0.99;", "table 0.01, 0.99, 0.3;"), 28, 21, "0.3",
         "';' after the 2 values of the 'table'"),
        (edit("table 0.01, 0.99;", "table 0.01;"), 28, 13, ";", "2 values in the 'table'"),
        # negative / NaN / infinite / malformed values
        (edit("table 0.01, 0.99;", "table -0.01, 0.99;"), 28, 9, "-0.01", "non-negative"),
        (edit("table 0.01, 0.99;", "table nan, 0.99;"), 28, 9, "nan", "a probability"),
        (edit("table 0.01, 0.99;", "table 0.01, 1e999;"), 28, 15, "1e999", "finite"),
        (edit("table 0.01, 0.99;", "table 0.01, 0.99,;"), 28, 20, ";", "a probability after ','"),
        (edit("table 0.01, 0.99;", "table 0_01, 0.99;"), 28, 9, "0_01", "a probability"),
        # a variable without a probability block
        (edit("probability ( dysp | bronc, either ) {", "probability ( dysp | bronc, either ) {", 1)
         .split("probability ( dysp")[0], 24, 10, "dysp", "a 'probability ( dysp ... )' block"),
        # two blocks for one variable
        (asia_text() + "probability ( asia ) { table 0.5, 0.5; }\n", 61, 15, "asia",
         "a variable without a probability block"),
        # a parent configuration given twice, or missing
        (edit("(no) 0.01, 0.99;", "(yes) 0.01, 0.99;"), 32, 3, "(",
         "a parent configuration not already given"),
        (edit("  (no) 0.01, 0.99;\n", ""), 32, 1, "}", "a row for parent configuration (no)"),
        # wrong number of parent states in a row
        (edit("(yes) 0.05, 0.95;", "(yes, no) 0.05, 0.95;"), 31, 7, ",", "')'"),
        (edit("(yes, yes) 0.9, 0.1;", "(yes) 0.9, 0.1;"), 56, 7, ")",
         "',' and a state of 'either'"),
        # a parent listed twice, a variable its own parent
        (edit("( tub | asia )", "( tub | asia, asia )"), 30, 27, "asia", "not listed before"),
        (edit("( tub | asia )", "( tub | tub )"), 30, 21, "tub", "not listed before"),
        # lexical problems
        (asia_text() + "/* unterminated", 61, 1, "/*", "'*/' closing this comment"),
        (edit("network unknown", 'network "unknown"'), 1, 9, '"', "a name"),
        (edit("network unknown {", "network unknown"), 2, 1, "}", "'{'"),
        ("", 1, 1, "<end of file>", "'network'"),
        (edit("type discrete", "type continuous"), 4, 8, "continuous", "'discrete'"),
        (edit("  type discrete [ 2 ] { yes, no };\n}\nvariable tub", "}\nvariable tub"), 4, 1,
         "}", "'type discrete [ N ]"),
        (edit("table 0.01, 0.99;\n}", "table 0.01, 0.99;\n  property x;\n}"), 29, 3,
         "property", "'table', 'default', a row or '}'"),
        (edit("table 0.01, 0.99;", "table 0.01, 0.99; default 0.5, 0.5;"), 28, 21, "default",
         "none after 'table'"),
        (edit("network unknown {\n}", "network unknown {\n  property oops\n}"), 3, 1, "}",
         "';' ending the property"),
    ],
)  # fmt: skip
def test_parse_errors_locate_the_problem(
    text: str, line: int, column: int, token: str, expected: str
) -> None:
    err = parse_error(text)
    assert (err.line, err.column, err.token) == (line, column, token), str(err)
    assert expected in err.expected, str(err)


def test_parse_error_is_a_value_error_and_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bif"
    bad.write_text(edit("(yes) 0.05, 0.95;", "(yes) 0.05, 0.95, 0.1;"))
    with pytest.raises(ValueError, match=r"bad\.bif:31:21: expected ';' after the 2 values"):
        read_bif(bad)


def test_table_size_is_checked_before_allocating() -> None:
    # 40 binary parents: 2**41 entries would be 16 TiB; refused before any allocation.
    decls = "".join(f"variable p{i} {{ type discrete [ 2 ] {{ a, b }}; }}\n" for i in range(40))
    header = ", ".join(f"p{i}" for i in range(40))
    text = f"network big {{ }}\n{decls}variable c {{ type discrete [ 2 ] {{ a, b }}; }}\n"
    text += f"probability ( c | {header} ) {{ default 0.5, 0.5; }}\n"
    err = parse_error(text)
    assert err.token == "c" and "max_cpt_entries" in err.expected
    small = parse_bif(
        "network n { } variable a { type discrete [ 2 ] { x, y }; }"
        " probability ( a ) { table 0.5, 0.5; }",
        max_cpt_entries=2,
    )
    assert small.cpts["a"].shape == (2,)
    with pytest.raises(ParseError, match="max_cpt_entries=1 "):
        parse_bif(
            "network n { } variable a { type discrete [ 2 ] { x, y }; }"
            " probability ( a ) { table 0.5, 0.5; }",
            max_cpt_entries=1,
        )


def test_huge_declared_state_count_does_not_allocate() -> None:
    err = parse_error(edit("[ 2 ] { yes, no };\n}\nvariable tub", "[ 999999999999 ] { yes, no };"
                           "\n}\nvariable tub"))  # fmt: skip
    assert "999999999999 states" in err.expected


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------


def test_write_round_trips_full_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    states = {"a": ("x", "y", "z"), "b": ("0", "1"), "c": ("lo", "mid-1", "hi.2", "<7.5")}
    parents = {"a": (), "b": ("a",), "c": ("b", "a")}
    cpts = {}
    for v, ps in parents.items():
        table = rng.dirichlet(np.ones(len(states[v])), size=[len(states[q]) for q in ps])
        cpts[v] = table.reshape(*(len(states[q]) for q in ps), len(states[v]))
    cpts["c"][0, 0] = [1e-300, 5e-324, 0.0, 1.0]
    data = DiscreteNetworkData(
        "rand", states, parents, cpts, {"a": ("weight = 3",)}, ("software = probforge",)
    )
    text = write_bif_text(data)
    assert parse_bif(text) == data
    path = tmp_path / "rand.bif"
    write_bif(data, path)
    assert read_bif(path) == data
    assert path.read_text() == text


def test_write_refuses_names_bif_cannot_hold() -> None:
    for bad in ("two words", "a,b", "x;", "p(q)", "", 'say"hi"', "a//b", "a/*b"):
        data = DiscreteNetworkData("n", {"v": (bad, "ok")}, {"v": ()}, {"v": np.array([0.5, 0.5])})
        with pytest.raises(ValidationError, match="cannot be written to BIF"):
            write_bif_text(data)
    data = DiscreteNetworkData(
        "n", {"v": ("a", "b")}, {"v": ()}, {"v": np.array([0.5, 0.5])}, {"v": ("x; y",)}
    )
    with pytest.raises(ValidationError, match="property"):
        write_bif_text(data)


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "asia.bif"
    path.write_text("old content")
    os.chmod(path, 0o640)
    asia = parse_bif(asia_text())
    write_bif(asia, path)
    assert read_bif(path) == asia
    assert (path.stat().st_mode & 0o777) == 0o640  # permissions of the replaced file kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asia.bif"]  # no temporary left

    # A failure while writing leaves the old file untouched and no temporary behind.
    atomic = importlib.import_module("probforge.files")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    before = path.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        write_bif(parse_bif(GRAMMAR), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asia.bif"]


# --------------------------------------------------------------------------------------------------
# the data class
# --------------------------------------------------------------------------------------------------


def test_data_class_validates_and_freezes() -> None:
    good = {"v": np.array([0.5, 0.5])}
    with pytest.raises(ShapeError, match="shape"):
        DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ()}, {"v": np.ones(3) / 3})
    with pytest.raises(ValidationError, match=">= 0"):
        DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ()}, {"v": np.array([-0.5, 1.5])})
    with pytest.raises(ValidationError, match="finite"):
        DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ()}, {"v": np.array([np.nan, 1.0])})
    with pytest.raises(KeyError):
        DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ("w",)}, good)
    with pytest.raises(ShapeError, match="parents"):
        DiscreteNetworkData("n", {"v": ("a", "b")}, {}, good)
    with pytest.raises(ValidationError, match="repeat"):
        DiscreteNetworkData("n", {"v": ("a", "a")}, {"v": ()}, good)
    d = DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ()}, good)
    assert d.properties == {"v": ()}
    assert d.cpts["v"].dtype == np.float64 and not d.cpts["v"].flags.writeable
    good["v"][0] = 0.9  # the instance holds its own copy
    assert d.cpts["v"][0] == 0.5
    with pytest.raises(AttributeError):
        d.name = "m"  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(d)
    assert d != DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ()}, {"v": np.array([0.4, 0.6])})
    assert "variables=1" in repr(d)


def test_module_examples_run() -> None:
    for name in ("pgm.io", "pgm.io.bif", "pgm.io._source", "pgm.io.networks"):
        module = importlib.import_module(name)
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, name
