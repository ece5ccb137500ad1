"""XMLBIF 0.3 reading and writing (pgm.io.xmlbif), checked against pgmpy's XMLBIFWriter."""

from __future__ import annotations

import doctest
import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest

import pgm.io.xmlbif
from pgm.io import (
    DiscreteNetworkData,
    bundled_network_path,
    parse_bif,
    parse_xmlbif,
    read_bif,
    read_xmlbif,
    write_xmlbif,
    write_xmlbif_text,
)
from probforge.errors import ParseError, ValidationError

ASIA_XML = """<?xml version="1.0"?>
<!-- hand-written in the JavaBayes style, with a DTD -->
<!DOCTYPE BIF [
  <!ELEMENT BIF ( NETWORK )*>
  <!ATTLIST BIF VERSION CDATA #REQUIRED>
]>
<BIF VERSION="0.3">
<NETWORK>
<NAME>asia</NAME>
<PROPERTY>source = Lauritzen &amp; Spiegelhalter</PROPERTY>
<VARIABLE TYPE="nature">
  <NAME>asia</NAME><OUTCOME>yes</OUTCOME><OUTCOME>no</OUTCOME>
  <PROPERTY>position = (10, 20)</PROPERTY>
</VARIABLE>
<VARIABLE TYPE="nature">
  <NAME>tub</NAME><OUTCOME>yes</OUTCOME><OUTCOME>no</OUTCOME>
</VARIABLE>
<DEFINITION>
  <FOR>tub</FOR>
  <GIVEN>asia</GIVEN>
  <TABLE>
    0.05 0.95
    0.01 0.99
  </TABLE>
</DEFINITION>
<PROBABILITY>
  <FOR>asia</FOR>
  <TABLE>0.01 0.99</TABLE>
</PROBABILITY>
</NETWORK>
</BIF>
"""


def test_hand_written_file_child_varies_fastest() -> None:
    d = parse_xmlbif(ASIA_XML)
    assert d.name == "asia"
    assert d.network_properties == ("source = Lauritzen & Spiegelhalter",)
    assert d.properties == {"asia": ("position = (10, 20)",), "tub": ()}
    assert d.variables == ("asia", "tub")  # declaration order, not definition order
    np.testing.assert_array_equal(d.cpts["asia"], [0.01, 0.99])
    # for each parent state, the child's distribution
    np.testing.assert_array_equal(d.cpts["tub"], [[0.05, 0.95], [0.01, 0.99]])
    assert parse_xmlbif(write_xmlbif_text(d)) == d


@pytest.mark.parametrize("name", ["asia", "sprinkler", "alarm"])
def test_round_trip_bundled_networks(name: str, tmp_path: Path) -> None:
    data = read_bif(bundled_network_path(name))
    assert parse_xmlbif(write_xmlbif_text(data)) == data
    for file_name in ("net.xml", "net.xml.gz"):
        path = tmp_path / file_name
        write_xmlbif(data, path)
        assert read_xmlbif(path) == data
    assert gzip.decompress((tmp_path / "net.xml.gz").read_bytes()).startswith(b"<?xml")


def test_round_trip_full_precision_and_escaping() -> None:
    rng = np.random.default_rng(3)
    states = {"a<b": ("x & y", "<7.5", "z z"), "c": ("0", "1")}
    cpts = {"a<b": rng.dirichlet(np.ones(3)), "c": rng.dirichlet(np.ones(2), size=3)}
    cpts["c"][1] = [5e-324, 1.0]
    data = DiscreteNetworkData(
        "n & m", states, {"a<b": (), "c": ("a<b",)}, cpts, {"c": ('say "hi" > there',)}
    )
    assert parse_xmlbif(write_xmlbif_text(data)) == data
    for bad in (" padded", "tab\t", "line\rfeed", "bell\x07"):
        with pytest.raises(ValidationError, match="XMLBIF"):
            write_xmlbif_text(DiscreteNetworkData(bad, {"v": ("a",)}, {"v": ()}, {"v": np.ones(1)}))


def test_reads_pgmpy_xmlbif_writer_output(tmp_path: Path) -> None:
    pytest.importorskip("pgmpy")
    from pgmpy.readwrite import XMLBIFWriter
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_example_model("asia")
    path = tmp_path / "asia_pgmpy.xml"
    XMLBIFWriter(model).write(str(path))
    ours = read_xmlbif(path)
    asia = read_bif(bundled_network_path("asia"))
    assert set(ours.variables) == set(asia.variables)
    for var in asia.variables:
        assert ours.states[var] == asia.states[var]
        assert ours.parents[var] == asia.parents[var]
        np.testing.assert_array_equal(ours.cpts[var], asia.cpts[var], err_msg=var)
        # and against pgmpy's in-memory CPDs: (child, *evidence) vs ours (*parents, child)
        cpd = model.get_cpds(var)
        assert tuple(cpd.variables[1:]) == ours.parents[var]
        np.testing.assert_array_equal(np.moveaxis(ours.cpts[var], -1, 0), cpd.values)
    # pgmpy writes an empty <PROPERTY/> per variable: kept, as an empty property
    assert ours.properties["asia"] == ("",)


def xml_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_xmlbif(text, "asia.xml")
    err = info.value
    assert err.file == "asia.xml" and str(err).startswith(f"asia.xml:{err.line}:{err.column}: ")
    return err


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "token", "expected"),
    [
        ("<NAME>asia</NAME>\n<PROPERTY>", "<NAME>asia</NAM>\n<PROPERTY>", 9, 13, "NAM>",
         "well-formed XML (mismatched tag)"),
        ("<GIVEN>asia</GIVEN>", "<GIVEN>asai</GIVEN>", 20, 3, "asai",
         "a declared variable as a parent of 'tub'"),
        ("<FOR>tub</FOR>", "<FOR>tbu</FOR>", 19, 3, "tbu", "a declared variable in <FOR>"),
        ("0.01 0.99\n  </TABLE>", "0.01 0.99 0.5\n  </TABLE>", 23, 15, "0.5",
         "the end of the table of 'tub' after 4 values"),
        ("0.01 0.99\n  </TABLE>", "0.01\n  </TABLE>", 21, 3, "<TABLE>",
         "4 values in the table of 'tub', not 3"),
        ("0.01 0.99\n  </TABLE>", "-0.01 0.99\n  </TABLE>", 23, 5, "-0.01",
         "a finite, non-negative number"),
        ("0.05 0.95", "0.05 NaN", 22, 10, "NaN", "a finite, non-negative number"),
        ("<NAME>tub</NAME>", "<NAME>asia</NAME>", 16, 3, "asia", "a new variable name"),
        ("<OUTCOME>no</OUTCOME>\n</VARIABLE>", "<OUTCOME>yes</OUTCOME>\n</VARIABLE>", 16, 41,
         "yes", "an outcome not already listed"),
        ('<VARIABLE TYPE="nature">\n  <NAME>tub', '<VARIABLE TYPE="decision">\n  <NAME>tub',
         15, 1, 'TYPE="decision"', 'TYPE="nature"'),
        ("<PROBABILITY>\n  <FOR>asia</FOR>\n  <TABLE>0.01 0.99</TABLE>\n</PROBABILITY>", "",
         11, 1, "asia", "a <DEFINITION> with <FOR>asia</FOR>"),
        ("<PROBABILITY>\n  <FOR>asia</FOR>", "<PROBABILITY>\n  <FOR>tub</FOR>", 27, 3, "tub",
         "a variable without a definition"),
        ("<GIVEN>asia</GIVEN>", "<GIVEN>asia</GIVEN><GIVEN>tub</GIVEN>", 20, 22, "tub",
         "not listed before (nor itself)"),
        ("<TABLE>0.01 0.99</TABLE>", "<TABLE>0.01 0.99</TABLE><TABLE>1 0</TABLE>", 28, 27,
         "<TABLE>", "only one <TABLE>"),
        ("<FOR>tub</FOR>", "<FOR>tub</FOR><COLOR>red</COLOR>", 19, 17, "<COLOR>",
         "one of <FOR>, <GIVEN>, <TABLE> inside <DEFINITION>"),
        ("<NAME>asia</NAME>\n<PROPERTY>", "<PROPERTY>", 8, 1, "<NETWORK>",
         "a <NAME> element inside <NETWORK>"),
        ("<BIF VERSION=\"0.3\">", "<BIF VERSION=\"0.3\"><NETWORK><NAME>x</NAME></NETWORK>", 8,
         1, "<NETWORK>", "only one <NETWORK>"),  # the second one
    ],
)  # fmt: skip
def test_errors_locate_the_problem(
    old: str, new: str, line: int, column: int, token: str, expected: str
) -> None:
    assert old in ASIA_XML
    err = xml_error(ASIA_XML.replace(old, new, 1))
    assert (err.line, err.column, err.token) == (line, column, token), str(err)
    assert expected in err.expected, str(err)


def test_structural_and_security_errors() -> None:
    err = xml_error("<NETWORK/>")
    assert (err.line, err.column, err.token) == (1, 1, "<NETWORK>")
    err = xml_error("")
    assert "well-formed XML" in err.expected
    bomb = '<?xml version="1.0"?><!DOCTYPE BIF [<!ENTITY a "aaaaaaaaaa">]><BIF>&a;</BIF>'
    err = xml_error(bomb)
    assert "no entity declaration" in err.expected
    big = ASIA_XML.replace("<TABLE>0.01 0.99</TABLE>", "<TABLE>0.01 0.99</TABLE>")
    with pytest.raises(ParseError, match="max_cpt_entries=3"):
        parse_xmlbif(big, max_cpt_entries=3)


def test_same_data_as_bif() -> None:
    bif_text = bundled_network_path("asia").read_text()
    data = parse_bif(bif_text)
    xml = write_xmlbif_text(data)
    assert xml.count("<DEFINITION>") == 8
    assert "<TABLE>0.9 0.1 0.8 0.2 0.7 0.3 0.1 0.9</TABLE>" in xml  # dysp | bronc, either
    assert parse_xmlbif(xml.encode("utf-8")) == data


def test_module_examples_run() -> None:
    result = doctest.testmod(pgm.io.xmlbif, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 3
