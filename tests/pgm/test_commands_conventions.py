"""``probforge infer`` under the command-line convention: flags accumulate or are refused.

The property test draws evidence and queries for the asia network, splits them over repeated
``-e`` / ``-q`` flags in random ways, and checks the printed posteriors against variable
elimination called directly with the whole evidence: a dropped flag would change them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgm.inference import VariableElimination
from pgm.io import bundled_network
from probforge.cli import main
from probforge.errors import ZeroProbabilityEvidence

ASIA = bundled_network("asia")
VE = VariableElimination(ASIA)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("probforge: error: ")


def test_repeated_evidence_flags_accumulate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["infer", "asia", "-e", "smoke=yes", "-e", "dysp=yes", "-q", "lung",
                         "--json"], capsys)
    assert code == 0
    p = json.loads(out)["marginals"]["lung"]["yes"]
    assert abs(p - 0.1483) < 1e-4  # the README's number: both observations are used
    assert json.loads(out)["evidence"] == {"smoke": "yes", "dysp": "yes"}


def test_repeated_query_flags_accumulate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["infer", "asia", "-q", "lung", "-q", "bronc", "tub", "--json"], capsys)
    assert code == 0 and list(json.loads(out)["marginals"]) == ["lung", "bronc", "tub"]


@pytest.mark.parametrize("argv, text", [
    (["-e", "smoke=yes", "smoke=no"], "-e smoke is given twice with different states"),
    (["-e", "smoke=yes", "-e", "smoke=yes"], "-e smoke is given twice"),
    (["--map", "--pr"], "not allowed with argument --map"),
    (["-q", "lung", "-q", "lung"], "-q lung is given twice"),
    (["--pr", "-q", "lung"], "-q does not apply with --pr"),
    (["--json", "--json"], "--json is given twice"),
    (["--order", "min_fill", "--order", "min_weight"], "--order is given twice"),
    (["--order", "fastest"], "invalid choice: 'fastest'"),
    (["--memory-budget", "0"], "must be > 0"),
    (["--evidence-file", "/no/such/file.evid"], "file not found"),
    (["-e", "smoke"], "expected KEY=VALUE"),
    (["-e", "smoke="], "-e smoke= has no state"),
    (["-e", "nosuchvar=yes"], "unknown variable 'nosuchvar'"),
    (["-e", "smoke=maybe"], "has no such state"),
    (["-e", "tub=yes", "either=no"], "the evidence has probability zero"),
])
def test_user_mistakes_exit_2_with_one_line(argv: list[str], text: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["infer", "asia", *argv], capsys)
    assert code == 2 and out == ""
    assert _one_error_line(err) and text in err, err


def test_missing_model_and_uai_result_checks(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["infer", str(tmp_path / "missing.bif")], capsys)
    assert code == 2 and _one_error_line(err) and "file not found" in err
    code, _, err = _run(["infer", "asia", "--uai-result", str(tmp_path / "no" / "a.MAR")],
                        capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = _run(["infer", "asia", "--map", "--uai-result", str(tmp_path / "a.MAR")],
                        capsys)
    assert code == 2 and "names a MAR file but this run computes MAP" in err
    assert not (tmp_path / "a.MAR").exists()


def test_uai_result_refuses_several_evidence_samples(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pgm.io import write_network

    write_network(ASIA, tmp_path / "asia.uai")
    (tmp_path / "asia.uai.evid").write_text("2\n1 2 0\n1 7 0\n")
    code, _, err = _run(["infer", str(tmp_path / "asia.uai"), "--evidence-file",
                         str(tmp_path / "asia.uai.evid"), "--uai-result",
                         str(tmp_path / "asia.uai.MAR")], capsys)
    assert code == 2 and "--evidence-file has 2 samples" in err
    # -e may add to an evidence file, never contradict it silently
    code, _, err = _run(["infer", str(tmp_path / "asia.uai"), "--evidence-file",
                         str(tmp_path / "asia.uai.evid"), "-e", "2=1"], capsys)
    assert code == 2 and "sets 2 differently from sample 0" in err


_STATES = {v: list(ASIA.states[v]) for v in ASIA.variables}


@st.composite
def _evidence_and_flags(draw: st.DrawFn) -> tuple[dict[str, str], list[str], list[str]]:
    names = sorted(_STATES)
    observed = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
    evidence = {v: draw(st.sampled_from(_STATES[v])) for v in observed}
    hidden = [v for v in names if v not in evidence]
    query = draw(st.lists(st.sampled_from(hidden), unique=True, min_size=1, max_size=3))
    argv: list[str] = []
    items = [f"{v}={s}" for v, s in evidence.items()]
    while items:  # split the evidence over -e flags at random points
        k = draw(st.integers(1, len(items)))
        argv += [draw(st.sampled_from(["-e", "--evidence"])), *items[:k]]
        items = items[k:]
    q = list(query)
    while q:
        k = draw(st.integers(1, len(q)))
        argv += [draw(st.sampled_from(["-q", "--query"])), *q[:k]]
        q = q[k:]
    return evidence, query, argv


@settings(max_examples=25)
@given(_evidence_and_flags())
def test_split_flags_give_the_posteriors_of_the_whole_evidence(
        case: tuple[dict[str, str], list[str], list[str]]) -> None:
    evidence, query, argv = case
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["infer", "asia", *argv, "--json"])
    try:
        want = VE.marginals(evidence, variables=query)
    except ZeroProbabilityEvidence:  # impossible evidence: the command refuses it the same way
        assert code == 2, err.getvalue()
        assert err.getvalue().startswith("probforge: error: ") and "probability zero" in \
            err.getvalue()
        return
    assert code == 0, err.getvalue()
    got = json.loads(out.getvalue())
    assert list(got["marginals"]) == query
    for v in query:
        probs = [got["marginals"][v][s] for s in _STATES[v]]
        assert max(abs(a - float(b)) for a, b in zip(probs, want[v], strict=True)) < 1e-12
