"""Input checks of the public functions of pgm.io: files that cannot be read, unknown suffixes,
declared sizes checked before allocation, bad arguments to the readers, writers, data classes and
converters -- each a typed error from probforge.errors or a sound answer (issue 21).

The first half holds one test per problem found (each fails on the code before the checks); the
second half generates bad and edge inputs with hypothesis and asserts, through
``tests.robustness.outcome``, a typed error or an answer that is right (it round-trips, it is what
was given -- nothing coerced).
"""

from __future__ import annotations

import gzip
import math
import pathlib
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import pgm.io
from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.factor import Factor
from pgm.io import (
    DiscreteNetworkData,
    UAIModel,
    bn_from_data,
    bn_to_data,
    bundled_network,
    bundled_network_path,
    format_uai_result,
    from_pgmpy,
    model_from_uai,
    model_to_uai,
    parse_bif,
    parse_uai,
    parse_uai_evidence,
    parse_uai_result,
    parse_xmlbif,
    read_bif,
    read_network,
    read_uai,
    read_uai_evidence,
    read_uai_result,
    read_uai_results,
    read_xmlbif,
    write_bif,
    write_bif_text,
    write_network,
    write_uai,
    write_uai_evidence,
    write_uai_evidence_text,
    write_uai_result,
    write_uai_text,
    write_xmlbif,
    write_xmlbif_text,
)
from pgm.markov import MarkovNetwork
from probforge.errors import (
    DtypeMismatchError,
    MissingFileError,
    NonFiniteError,
    NormalisationError,
    ParseError,
    ProbforgeError,
    ValidationError,
)
from tests.robustness import outcome

# The same functions, untyped: the tests below pass what the annotations forbid, on purpose.
io: Any = pgm.io

# --------------------------------------------------------------------------------------------------
# files that cannot be read
# --------------------------------------------------------------------------------------------------

READERS: dict[str, tuple[Callable[..., Any], str]] = {
    "read_network .bif": (read_network, ".bif"),
    "read_network .xml": (read_network, ".xml"),
    "read_network .uai": (read_network, ".uai"),
    "read_bif": (read_bif, ".bif"),
    "read_xmlbif": (read_xmlbif, ".xml"),
    "read_uai": (read_uai, ".uai"),
    "read_uai_evidence": (read_uai_evidence, ".evid"),
    "read_uai_result": (read_uai_result, ".MAR"),
    "read_uai_results": (read_uai_results, ".MAR"),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", ["missing", "directory", "unreadable"])
def test_a_file_that_cannot_be_read_is_a_missing_file_error(
    reader: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read, suffix = READERS[reader]
    path = tmp_path / f"model{suffix}"
    if case == "directory":
        path.mkdir()
    elif case == "unreadable":  # (chmod 000 does not stop root, so the read itself fails)
        path.write_text("anything")

        def refuse(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    with pytest.raises(MissingFileError) as info:
        read(path)
    assert isinstance(info.value, FileNotFoundError)  # `except FileNotFoundError` still works
    assert str(path) in str(info.value)


def test_read_network_of_a_missing_file_names_it() -> None:
    with pytest.raises(MissingFileError, match=r"missing\.bif"):
        read_network("missing.bif")


def test_unknown_suffix_is_named_and_the_known_ones_listed(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("network n { }")
    for call in (lambda: read_network(path), lambda: write_network(bundled_network("asia"), path)):
        with pytest.raises(ValidationError) as info:
            call()
        text = str(info.value)
        assert "'.txt'" in text
        for known in (".bif", ".bif.gz", ".xml", ".xmlbif", ".uai"):
            assert known in text


@pytest.mark.parametrize("bad", [42, None, b"asia.bif", ["asia.bif"]])
def test_a_path_must_be_a_path(bad: Any) -> None:
    for read in (read_network, read_bif, read_xmlbif, read_uai, read_uai_evidence,
                 read_uai_result):
        with pytest.raises(ValidationError):
            read(bad)


def test_writing_into_a_missing_directory_or_onto_a_directory(tmp_path: Path) -> None:
    asia = bundled_network("asia")
    data = bn_to_data(asia)
    uai, _ = model_to_uai(asia)
    missing = tmp_path / "no" / "such" / "dir"
    writers: list[Callable[[Path], None]] = [
        lambda p: write_network(asia, p.with_suffix(".bif")),
        lambda p: write_network(asia, p.with_suffix(".uai")),
        lambda p: write_bif(data, p),
        lambda p: write_xmlbif(data, p),
        lambda p: write_uai(uai, p),
        lambda p: write_uai_evidence({0: 1}, p),
        lambda p: write_uai_result("PR", -0.5, p),
    ]
    for write in writers:
        with pytest.raises(MissingFileError, match="folder does not exist"):
            write(missing / "out.bif")
        target = tmp_path / "taken.bif"
        target.mkdir(exist_ok=True)
        (tmp_path / "taken.uai").mkdir(exist_ok=True)
        with pytest.raises(ValidationError, match="is a folder, not a file"):
            write(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.bif", "taken.uai"]


def test_gzip_with_a_corrupt_deflate_stream_is_a_parse_error(tmp_path: Path) -> None:
    packed = gzip.compress(b"network n { }", mtime=0)
    # 0xff opens a final block of the reserved type 3: zlib.error "invalid block type".
    path = tmp_path / "bad.bif.gz"
    path.write_bytes(packed[:10] + b"\xff\xff\xff" + packed[-8:])
    for read in (read_bif, read_xmlbif, read_uai, read_uai_evidence, read_uai_result,
                 read_network):
        with pytest.raises(ParseError, match="gzip"):
            read(path)


# --------------------------------------------------------------------------------------------------
# sizes declared in files: checked before anything is allocated, and no hang
# --------------------------------------------------------------------------------------------------


def bounded_error(call: Callable[[], Any], seconds: float = 2.0, mib: float = 16.0) -> Any:
    """The error ``call()`` raises; it must come within ``seconds`` and with a peak of traced
    memory below ``mib`` (measured in a second run: tracing slows Python down tenfold)."""
    start = time.perf_counter()
    result = outcome(call)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    try:
        outcome(call)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < mib * 2**20, f"peaked at {peak / 2**20:.1f} MiB"
    assert result.kind == "error", f"no error: {result.value!r}"
    return result.error


def _bif_with_parents(n: int, card: int) -> str:
    states = ", ".join(f"s{k}" for k in range(card))
    decls = "".join(
        f"variable p{i} {{ type discrete [ {card} ] {{ {states} }}; }}\n" for i in range(n)
    )
    roots = "".join(
        f"probability ( p{i} ) {{ table {', '.join(['1.0'] + ['0.0'] * (card - 1))}; }}\n"
        for i in range(n)
    )
    header = ", ".join(f"p{i}" for i in range(n))
    return (f"network big {{ }}\n{decls}variable c {{ type discrete [ 2 ] {{ a, b }}; }}\n{roots}"
            f"probability ( c | {header} ) {{ default 0.5, 0.5; }}\n")


BIG = "9" * 5000  # more digits than Python's int() converts at all


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        # a variable with 10**12 states declared (two listed)
        (parse_bif, "network n { } variable a { type discrete [ 1000000000000 ] { t, f }; }",
         "not 2"),
        (parse_bif, f"network n {{ }} variable a {{ type discrete [ {BIG} ] {{ t, f }}; }}",
         "positive whole number"),
        # a CPT of 2**40 entries declared through 40 parents, filled by one default row
        (parse_bif, _bif_with_parents(40, 2), "max_cpt_entries"),
        # 70 parents of one state: a table of 2 entries over 71 axes (more than numpy holds)
        (parse_bif, _bif_with_parents(70, 1), "at most 32 variables"),
        # a row of long whole numbers without its ';': the row regex used to backtrack
        # exponentially (7 such numbers: 40 s)
        (parse_bif, "network n { } variable a { type discrete [ 2 ] { t, f }; } "
         "variable b { type discrete [ 9 ] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }; } "
         "probability ( a ) { table 0.5, 0.5; } probability ( b | a ) { (t) "
         + "1111111111 " * 6 + "x", "a probability"),
        (parse_uai, "MARKOV 1 1000000000000 0", "max_table_entries"),
        (parse_uai, f"MARKOV 1 {BIG} 0", "18 digits"),
        (parse_uai, f"MARKOV 1 2 1 1 0 {BIG} 0.5 0.5", "number of entries"),
        # a table of 10**15 entries (three variables of 10**5 states)
        (parse_uai, "MARKOV 3 100000 100000 100000 1 3 0 1 2 1000000000000000 0.5",
         "max_table_entries"),
        # a scope of 100 variables of one state: a 1-entry table over 100 axes
        (parse_uai, "MARKOV 100 " + "1 " * 100 + "1 100 " + " ".join(map(str, range(100)))
         + " 1 1.0", "scope size"),
        (parse_uai_evidence, f"1 0 {BIG}", "18 digits"),
        (parse_uai_evidence, "1000000000000 0 1", "observed"),
        (parse_uai_result, f"MAP 1 {BIG}", "18 digits"),
        (parse_uai_result, "MAR 1 1000000000000 0.5", "marginal probability"),
        (parse_uai_result, "MAR 1000000000000 2 0.5 0.5", "cardinality"),
    ],
)
def test_declared_sizes_are_refused_before_allocating(
    parse: Callable[[str], Any], text: str, expected: str
) -> None:
    err = bounded_error(lambda: parse(text))
    assert isinstance(err, ParseError) and re.search(expected, str(err)), repr(err)


def test_a_scope_over_thousands_of_variables_is_refused_at_once() -> None:
    n = 5_000  # each index was looked up in a list (quadratic), then numpy refused 5000 axes
    uai = f"MARKOV\n{n}\n{'1 ' * n}\n1\n{n} {' '.join(map(str, range(n)))}\n1 1.0\n"
    err = bounded_error(lambda: parse_uai(uai))
    assert isinstance(err, ParseError) and "scope size" in str(err)


def test_markov_variable_in_no_function_is_checked_before_allocating() -> None:
    huge = UAIModel("MARKOV", (10**12,), (), ())
    err = bounded_error(lambda: model_from_uai(huge))
    assert isinstance(err, ValidationError) and "max_table_entries" in str(err)


def test_xml_text_that_expat_cannot_take_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="surrogate"):
        parse_xmlbif("<BIF><NETWORK><NAME>\udc80</NAME></NETWORK></BIF>")
    with pytest.raises(ParseError, match="encoding"):
        parse_xmlbif(b'<?xml version="1.0" encoding="no-such-codec"?><BIF/>')
    # a carriage return given as a character reference: the writer could not write it back
    with pytest.raises(ParseError, match="carriage"):
        parse_xmlbif("<BIF><NETWORK><NAME>a&#13;b</NAME></NETWORK></BIF>")


def test_billion_laughs_is_refused_at_once() -> None:
    lol = '<!DOCTYPE BIF [<!ENTITY a "lol">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    ) + "]><BIF><NETWORK><NAME>&j;</NAME></NETWORK></BIF>"
    err = bounded_error(lambda: parse_xmlbif(lol))
    assert isinstance(err, ParseError) and "entity" in str(err)


def test_model_level_errors_of_read_network(tmp_path: Path) -> None:
    path = tmp_path / "n.bif"
    path.write_text("network n { } variable a { type discrete [ 2 ] { t, f }; }"
                    " probability ( a ) { table 0.5, 0.4; }")
    with pytest.raises(NormalisationError, match=r"0\.9"):  # never renormalised
        read_network(path)
    assert parse_bif(path.read_text()).cpts["a"].tolist() == [0.5, 0.4]  # data as written
    (tmp_path / "m.uai").write_text("MARKOV\n1\n2\n1\n1 0\n2\n 1e300 1e300\n")
    with pytest.raises(NonFiniteError, match="float32"):
        read_network(tmp_path / "m.uai", dtype=torch.float32)
    assert isinstance(read_network(tmp_path / "m.uai"), MarkovNetwork)


# --------------------------------------------------------------------------------------------------
# arguments of the readers, converters and writers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: io.parse_bif(b"network n { }"),
        lambda: io.parse_uai(None),
        lambda: io.parse_uai_evidence(b"0"),
        lambda: io.parse_uai_results(3),
        lambda: io.parse_xmlbif(["<BIF/>"]),
        lambda: io.parse_bif("network n { }", max_cpt_entries=0),
        lambda: io.parse_bif("network n { }", max_cpt_entries=True),
        lambda: io.parse_uai("MARKOV 0 0", max_table_entries=2.5),
        lambda: io.parse_xmlbif("<BIF/>", max_cpt_entries=-1),
        lambda: io.parse_uai_evidence("0", model="asia"),
        lambda: io.bn_from_data("asia"),
        lambda: io.bn_from_data(bn_to_data(bundled_network("sprinkler")), dtype=torch.int64),
        lambda: io.bn_from_data(bn_to_data(bundled_network("sprinkler")), atol=math.nan),
        lambda: io.bn_to_data(model_to_uai(bundled_network("sprinkler"))[0]),
        lambda: io.model_from_uai(bn_to_data(bundled_network("sprinkler"))),
        lambda: io.model_to_uai("asia"),
        lambda: io.read_network(bundled_network_path("asia"), atol=-1.0),
        lambda: io.read_network(bundled_network_path("asia"), dtype="float64"),
        lambda: io.write_network("asia", "x.bif"),
        lambda: io.write_bif_text(bundled_network("sprinkler")),
        lambda: io.write_xmlbif_text({"name": "n"}),
        lambda: io.write_uai_text(bn_to_data(bundled_network("sprinkler"))),
        lambda: io.bundled_network(123),
        lambda: io.bundled_network(""),
        lambda: io.from_pgmpy(object()),
        lambda: io.to_pgmpy("asia"),
        lambda: io.format_uai_result("PR", "abc"),
        lambda: io.format_uai_result("PR", math.inf),
        lambda: io.format_uai_result("PR", [[], [0.0]]),  # ragged: numpy itself fails on it
        lambda: io.format_uai_result("MAP", [1.0, 0]),
        lambda: io.format_uai_result("MAP", [True, 0]),
        lambda: io.format_uai_result("MAR", [[1, 0]]),
        lambda: io.format_uai_result("MAR", 0.5),
        lambda: io.format_uai_result(["PR"], 0.5),
        lambda: io.write_uai_evidence_text({"a": 1}),
        lambda: io.write_uai_evidence_text({True: 1}),
        lambda: io.write_uai_evidence_text(5),
        lambda: io.write_uai_evidence_text([{0: 1}, "x"]),
        lambda: io.write_uai_evidence_text({0: 1}, layout=["single"]),
        lambda: io.UAIModel("MARKOV", (2, True), ((0,),), (np.ones(2),)),
        lambda: io.UAIModel("MARKOV", "22", ((0,),), (np.ones(2),)),
        lambda: io.UAIModel("MARKOV", (2,), ((0,),), (np.array([1, 1]),)),
        lambda: io.UAIModel("MARKOV", (2,), ((0,),), ([[1.0], [1.0, 2.0]],)),
        lambda: io.UAIModel(["MARKOV"], (2,), ((0,),), (np.ones(2),)),
        lambda: io.UAIResult("MAR", [["a", "b"]]),
    ],
)
def test_bad_arguments_are_typed_errors(call: Callable[[], Any]) -> None:
    assert outcome(call).kind == "error"


def test_data_class_takes_names_as_given() -> None:
    half = np.array([0.5, 0.5])
    table = np.array([[0.9, 0.1], [0.2, 0.8]])
    # a str where the parents are expected is one parent, never its characters
    d = io.DiscreteNetworkData("n", {"rain": ("y", "n"), "wet": ("y", "n")},
                            {"rain": (), "wet": "rain"}, {"rain": half, "wet": table})
    assert d.parents["wet"] == ("rain",)
    with pytest.raises(DtypeMismatchError):  # an integer table is refused, not cast
        io.DiscreteNetworkData("n", {"v": ("a", "b")}, {"v": ()}, {"v": np.array([1, 0])})
    with pytest.raises(ValidationError):  # "ab" is not the states ("a", "b")
        io.DiscreteNetworkData("n", {"v": "ab"}, {"v": ()}, {"v": half})
    with pytest.raises(ValidationError):  # state names are not converted with str()
        io.DiscreteNetworkData("n", {"v": (0, 1)}, {"v": ()}, {"v": half})
    with pytest.raises(ValidationError):
        io.DiscreteNetworkData(None, {"v": ("a", "b")}, {"v": ()}, {"v": half})
    with pytest.raises(ValidationError):
        io.DiscreteNetworkData("n", [("v", ("a", "b"))], {"v": ()}, {"v": half})


@pytest.mark.slow  # importing pgmpy takes seconds
def test_from_pgmpy_refuses_a_node_without_cpd() -> None:
    pytest.importorskip("pgmpy")
    from pgmpy.factors.discrete import TabularCPD as PgmpyCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([("a", "b")])
    model.add_node("lonely")
    model.add_cpds(PgmpyCPD("a", 2, [[0.5], [0.5]]),
                   PgmpyCPD("b", 2, [[0.9, 0.2], [0.1, 0.8]], evidence=["a"], evidence_card=[2]))
    with pytest.raises(ValidationError, match="lonely"):  # it used to be dropped silently
        from_pgmpy(model)


def test_empty_networks_round_trip(tmp_path: Path) -> None:
    empty = BayesianNetwork([], name="empty")
    for suffix in (".bif", ".xml", ".uai", ".bif.gz"):
        path = tmp_path / f"empty{suffix}"
        write_network(empty, path)
        back = read_network(path)
        assert isinstance(back, BayesianNetwork) and back.variables == ()
    assert parse_uai(write_uai_text(UAIModel("MARKOV", (), (), ()))).cards == ()
    with pytest.raises(ValidationError, match="at least one factor"):
        model_from_uai(UAIModel("MARKOV", (), (), ()))  # documented: a Markov net needs one


def test_markov_network_is_written_as_uai_only(tmp_path: Path) -> None:
    mn = MarkovNetwork([Factor(["a", "b"], torch.zeros(2, 3, dtype=torch.float64))])
    for suffix in (".bif", ".xml"):
        with pytest.raises(ValidationError, match="Bayesian networks only"):
            write_network(mn, tmp_path / f"m{suffix}")
    write_network(mn, tmp_path / "m.uai")
    back = read_network(tmp_path / "m.uai")
    assert isinstance(back, MarkovNetwork) and back.cards == {"0": 2, "1": 3}


# --------------------------------------------------------------------------------------------------
# property tests
# --------------------------------------------------------------------------------------------------

NAMES = st.text(min_size=0, max_size=8)
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=6),
    st.binary(max_size=6), st.lists(st.integers(0, 2), max_size=3),
)


@given(st.one_of(ANYTHING, st.text(max_size=12).map(lambda s: s + ".bif"),
                 st.sampled_from(["a" * 300 + ".bif", "a\x00.bif", ".", "/", ""])))
def test_readers_take_any_path_argument(path: Any) -> None:
    for read in (read_network, read_bif, read_uai_evidence):
        result = outcome(read, path)
        if result.kind == "error":
            assert isinstance(result.error, ValidationError | MissingFileError | ParseError)


@given(st.tuples(NAMES, NAMES, NAMES, NAMES), st.sampled_from(["bif", "xmlbif"]))
def test_writers_refuse_or_round_trip_any_names(names: tuple[str, ...], fmt: str) -> None:
    """Names with spaces, quotes, delimiters, control characters: refused by the writer with a
    ValidationError, or written and read back unchanged."""
    net, var, s0, s1 = names
    built = outcome(DiscreteNetworkData, net, {var: (s0, s1)}, {var: ()},
                    {var: np.array([0.25, 0.75])})
    if built.kind == "error":  # empty state list, repeated states
        assert isinstance(built.error, ValidationError)
        return
    data = built.value
    write, parse = (
        (write_bif_text, parse_bif) if fmt == "bif" else (write_xmlbif_text, parse_xmlbif)
    )
    text = outcome(write, data)
    if text.kind == "error":
        assert type(text.error) is ValidationError and "cannot be written" in str(text.error)
        return
    assert parse(text.value) == data


CPT_VALUES = st.one_of(
    st.floats(0, 1), st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 1e308, 5e-324]),
)


@given(
    st.lists(CPT_VALUES, min_size=2, max_size=2),
    st.sampled_from([np.float64, np.float32, np.int64, np.bool_, object]),
    st.one_of(st.sampled_from([torch.float64, torch.float32, torch.float16, torch.int64, None]),
              st.just("float64")),
    st.one_of(st.floats(allow_nan=True), st.integers(-1, 1), st.booleans(), st.none()),
)
def test_data_to_model_checks_values_dtype_and_tolerance(
    values: list[float], np_dtype: Any, dtype: Any, atol: Any
) -> None:
    if np_dtype in (np.float64, np.float32):
        with np.errstate(over="ignore"):  # 1e308 is inf in float32: refused below
            table = np.array(values, dtype=np_dtype)
    elif np_dtype is object:
        table = np.array(values, dtype=object)
    else:  # an integer or bool table that would be a fine distribution as floats
        table = np.array([1, 0], dtype=np_dtype)
    data = outcome(DiscreteNetworkData, "n", {"v": ("a", "b")}, {"v": ()}, {"v": table})
    if data.kind == "error":
        return
    assert np_dtype in (np.float64, np.float32)  # integer, bool and object tables are refused
    assert all(math.isfinite(x) and x >= 0 for x in table.tolist())
    np.testing.assert_array_equal(data.value.cpts["v"], table.astype(np.float64))
    bn = outcome(bn_from_data, data.value, dtype=dtype, atol=atol)
    if bn.kind == "error":
        return
    assert isinstance(dtype, torch.dtype) and dtype.is_floating_point
    assert isinstance(atol, int | float) and not isinstance(atol, bool) and atol >= 0
    probs = bn.value.cpd("v").probs
    assert probs.dtype == dtype and float((probs.sum() - 1).abs()) <= atol


@given(
    st.one_of(st.dictionaries(st.one_of(st.integers(-1, 5), st.booleans(), st.floats(0, 3),
                                        st.text(max_size=2)),
                              st.one_of(st.integers(-1, 5), st.booleans(), st.floats(0, 3)),
                              max_size=3),
              st.lists(st.dictionaries(st.integers(0, 5), st.integers(0, 3), max_size=3),
                       max_size=3),
              ANYTHING),
    st.sampled_from(["auto", "single", "multi", "both", None]),
)
def test_evidence_writer_refuses_or_round_trips(evidence: Any, layout: Any) -> None:
    text = outcome(write_uai_evidence_text, evidence, layout=layout)
    if text.kind == "error":
        assert isinstance(text.error, ValidationError)
        return
    samples = [evidence] if isinstance(evidence, dict) else evidence
    for sample in samples:  # only ints (not bools, not floats) got through
        assert all(type(k) is int and type(v) is int for k, v in sample.items())
    assert parse_uai_evidence(text.value) == [dict(s) for s in samples]


@given(
    st.sampled_from(["PR", "MAR", "MAP", "MPE", "pr", "", None]),
    st.one_of(
        st.floats(allow_nan=True), st.integers(-5, 5), st.booleans(), st.text(max_size=3),
        st.lists(st.integers(-1, 3), max_size=3), st.lists(st.floats(-1, 1), max_size=3),
        st.lists(st.lists(st.floats(allow_nan=True), min_size=0, max_size=3), max_size=3),
    ),
)
def test_result_formatter_refuses_or_round_trips(task: Any, value: Any) -> None:
    text = outcome(format_uai_result, task, value, allow_inf=True)
    if text.kind == "error":
        assert isinstance(text.error, ValidationError)
        return
    result = parse_uai_result(text.value)
    assert result.task == task
    if task == "PR":
        assert not isinstance(value, bool) and result.log10_probability == value
    elif task == "MAR":
        assert [m.tolist() for m in result.marginals] == value
    else:
        assert list(result.assignment) == value


@given(
    st.sampled_from(["BAYES", "MARKOV"]),
    st.lists(st.one_of(st.integers(0, 3), st.booleans()), min_size=0, max_size=3),
    st.lists(st.lists(st.integers(-1, 3), max_size=3), max_size=3),
    st.sampled_from([np.float64, np.int64]),
    st.floats(0, 2),
)
def test_uai_model_class_refuses_or_round_trips(
    kind: str, cards: list[Any], scopes: list[list[int]], np_dtype: Any, fill: float
) -> None:
    tables = []
    for s in scopes:
        shape = tuple(int(cards[v]) if 0 <= v < len(cards) else 1 for v in s)
        tables.append(np.full(shape, fill, dtype=np_dtype))
    made = outcome(UAIModel, kind, tuple(cards), tuple(map(tuple, scopes)), tuple(tables))
    if made.kind == "error":
        return
    m = made.value
    assert (np_dtype is np.float64 or not scopes) and not any(isinstance(c, bool) for c in cards)
    assert m.cards == tuple(cards) and m.scopes == tuple(map(tuple, scopes))
    assert parse_uai(write_uai_text(m)) == m
    model = outcome(model_from_uai, m, allow_inf=True)
    if model.kind == "error":
        assert isinstance(model.error, ValidationError)
        return
    if kind == "BAYES":
        for v in model.value.variables:
            assert float((model.value.cpd(v).probs.sum(-1) - 1).abs().max()) <= 1e-6


@pytest.mark.parametrize("suffix", [".bif", ".xml", ".uai", ".bif.gz", ".xmlbif"])
def test_models_round_trip_through_every_format(suffix: str, tmp_path: Path) -> None:
    table = np.random.default_rng(5).dirichlet(np.ones(3), size=2)
    rain = torch.tensor([0.3, 0.7], dtype=torch.float64)
    bn = BayesianNetwork([
        TabularCPD("rain", rain, states={"rain": ("y", "n")}),
        TabularCPD("wet", torch.tensor(table), ["rain"],
                   {"rain": ("y", "n"), "wet": ("dry", "damp", "soaked")}),
    ], name="tiny")
    path = tmp_path / f"tiny{suffix}"
    write_network(bn, path)
    back = read_network(path)
    assert isinstance(back, BayesianNetwork)
    names = {"rain": "0", "wet": "1"} if suffix == ".uai" else {"rain": "rain", "wet": "wet"}
    for v in ("rain", "wet"):
        np.testing.assert_allclose(back.cpd(names[v]).probs.numpy(), bn.cpd(v).probs.numpy(),
                                   rtol=1e-15, atol=0)


def test_every_error_here_is_a_probforge_error() -> None:
    assert issubclass(MissingFileError, ProbforgeError) and issubclass(ParseError, ProbforgeError)


def test_gzip_bomb_is_refused_before_it_fills_memory(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    from pgm.io import _source, read_bif

    path = tmp_path / "bomb.bif.gz"
    path.write_bytes(gzip.compress(b"network x { }\n" + b" " * 10**6))
    monkeypatch.setattr(_source, "MAX_DECOMPRESSED_BYTES", 10**5)
    with pytest.raises(ParseError, match="expand to at most 100000 bytes"):
        read_bif(path)
    monkeypatch.setattr(_source, "MAX_DECOMPRESSED_BYTES", 2 * 10**6)
    assert read_bif(path).variables == ()
    two = tmp_path / "two.bif.gz"  # several gzip members are one stream, as gzip reads them
    two.write_bytes(gzip.compress(b"network x { }\n") + gzip.compress(b"\n"))
    assert read_bif(two).variables == ()
