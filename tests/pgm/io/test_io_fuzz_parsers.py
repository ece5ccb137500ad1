"""Fuzzers for the five file parsers of pgm.io: BIF, XMLBIF, UAI model, UAI evidence, UAI result.

Each fuzzer takes valid files (``_io_fuzz_corpus``: the bundled networks, the same networks written
by our writers, small hand-written files), mutates their bytes (tokens and lines deleted,
duplicated, swapped; numbers made huge, negative, NaN, inf, 1e308 or not numbers at all; names
copied over names; truncation; random bytes, invalid UTF-8, gzip) and reads the result from a
file. What must happen:

* the reader raises :class:`~probforge.errors.ParseError` -- the parsers' one error class for a
  file that is not a valid file of its format, with a line and a column -- or
* it returns data that is sound: finite, non-negative numbers, and writing it back with our writer
  and parsing that gives the same data (bit for bit);
* and, at the model level (``bn_from_data`` / ``model_from_uai``, what ``read_network`` does), a
  well-formed file whose numbers are not a valid model raises the model's own error --
  :class:`~probforge.errors.NormalisationError` for a CPT row that does not sum to one,
  :class:`~probforge.errors.CycleError` for a directed cycle -- or gives a model whose CPD rows
  all sum to one within ``atol`` and that holds no NaN;
* never another exception, never more than ``TIME_LIMIT_S`` per file, and never a peak of traced
  memory (``tracemalloc``: Python and numpy allocations) above ``MEMORY_LIMIT``: the files are
  read with a small ``max_cpt_entries`` / ``max_table_entries`` so that any allocation made
  before a declared size is checked stands out.

The default suite runs few examples per parser (``FAST``); the ``slow`` versions run at least 300
each (1000 and randomised with ``PROBFORGE_HYPOTHESIS=thorough``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import DEFAULT_ATOL
from pgm.io import (
    DiscreteNetworkData,
    UAIModel,
    bn_from_data,
    bn_to_data,
    format_uai_result,
    model_from_uai,
    parse_bif,
    parse_uai,
    parse_uai_evidence,
    parse_uai_result,
    parse_xmlbif,
    read_bif,
    read_uai,
    read_uai_evidence,
    read_uai_results,
    read_xmlbif,
    write_bif_text,
    write_uai_evidence_text,
    write_uai_text,
    write_xmlbif_text,
)
from pgm.markov import MarkovNetwork
from probforge.errors import CycleError, NormalisationError, ParseError, ValidationError
from tests.pgm.io._io_fuzz_corpus import (
    EVIDENCE_SEEDS,
    RESULT_SEEDS,
    bif_seeds,
    mutated,
    uai_seeds,
    xmlbif_seeds,
)
from tests.robustness import Outcome, outcome

#: Seconds one file may take to read (the seeds take milliseconds).
TIME_LIMIT_S = 2.0
#: Table-size limit the fuzzers read with (the seeds' largest table has 108 entries).
MAX_ENTRIES = 2**12
#: Peak traced memory one read may use: the seeds are at most ~30 kB of text.
MEMORY_LIMIT = 24 * 2**20

FAST = settings()  # the profile's examples (30 in CI): about 1 s per parser
SLOW = settings(max_examples=max(300, settings().max_examples))

# One scratch file per parser, rewritten for every example (hypothesis does not mix with pytest's
# function-scoped tmp_path); removed at exit.
_WORK = Path(tempfile.mkdtemp(prefix="probforge-io-fuzz-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)


def read_limited(read: Callable[..., Any], payload: bytes, suffix: str, **kwargs: Any) -> Outcome:
    """Write ``payload`` to a file and read it: a ParseError or a value, in time and memory."""
    path = _WORK / f"fuzz{suffix}"
    path.write_bytes(payload)
    start = time.perf_counter()
    result = outcome(read, path, allow_inf=True, **kwargs)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"reading took {elapsed:.2f} s: {payload[:200]!r}"
    # Memory in a second read: tracing slows Python down about tenfold.
    tracemalloc.start()
    try:
        outcome(read, path, allow_inf=True, **kwargs)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"reading peaked at {peak / 2**20:.1f} MiB: {payload[:200]!r}"
    if result.kind == "error":
        err = result.error
        assert isinstance(err, ParseError), f"{type(err).__name__} is not a ParseError: {err}"
        assert err.line >= 1 and err.column >= 1, str(err)
        assert str(path) in str(err), str(err)  # the message starts with the file's name
    return result


def _check_arrays(arrays: Any) -> None:
    for a in arrays:
        assert a.dtype == np.float64
        assert np.isfinite(a).all() and (a >= 0).all(), a


def check_bayes_model(model: Any) -> None:
    """A model-level outcome: NormalisationError / CycleError, or rows that sum to one."""
    if isinstance(model, Outcome):
        if model.kind == "error":
            assert isinstance(model.error, NormalisationError | CycleError), repr(model.error)
            return
        model = model.value
    assert isinstance(model, BayesianNetwork)
    for v in model.variables:
        probs = model.cpd(v).probs
        assert not bool(torch.isnan(probs).any())
        assert float((probs.sum(-1) - 1).abs().max()) <= DEFAULT_ATOL


# --------------------------------------------------------------------------------------------------
# BIF
# --------------------------------------------------------------------------------------------------


def check_bif(payload: bytes) -> None:
    result = read_limited(read_bif, payload, ".bif", max_cpt_entries=MAX_ENTRIES)
    if result.kind == "error":
        return
    data = result.value
    assert isinstance(data, DiscreteNetworkData)
    _check_arrays(data.cpts.values())
    assert all(a.size <= MAX_ENTRIES for a in data.cpts.values())
    assert parse_bif(write_bif_text(data), max_cpt_entries=MAX_ENTRIES) == data
    model = outcome(bn_from_data, data)
    check_bayes_model(model)
    if model.kind == "value":  # back to plain data: the same numbers (exp(log p): to 1 ulp)
        back = bn_to_data(model.value)
        assert back.parents == data.parents and back.states == data.states
        for v in data.variables:
            np.testing.assert_allclose(back.cpts[v], data.cpts[v], rtol=1e-12, atol=0)


@FAST
@given(mutated(bif_seeds()))
def test_fuzz_bif(payload: bytes) -> None:
    check_bif(payload)


@pytest.mark.slow
@SLOW
@given(mutated(bif_seeds(), max_mutations=6))
def test_fuzz_bif_long(payload: bytes) -> None:
    check_bif(payload)


# --------------------------------------------------------------------------------------------------
# XMLBIF
# --------------------------------------------------------------------------------------------------


def check_xmlbif(payload: bytes) -> None:
    result = read_limited(read_xmlbif, payload, ".xml", max_cpt_entries=MAX_ENTRIES)
    if result.kind == "error":
        return
    data = result.value
    assert isinstance(data, DiscreteNetworkData)
    _check_arrays(data.cpts.values())
    assert parse_xmlbif(write_xmlbif_text(data), max_cpt_entries=MAX_ENTRIES) == data
    check_bayes_model(outcome(bn_from_data, data))


@FAST
@given(mutated(xmlbif_seeds()))
def test_fuzz_xmlbif(payload: bytes) -> None:
    check_xmlbif(payload)


@pytest.mark.slow
@SLOW
@given(mutated(xmlbif_seeds(), max_mutations=6))
def test_fuzz_xmlbif_long(payload: bytes) -> None:
    check_xmlbif(payload)


# --------------------------------------------------------------------------------------------------
# UAI model
# --------------------------------------------------------------------------------------------------


def check_uai(payload: bytes) -> None:
    result = read_limited(read_uai, payload, ".uai", max_table_entries=MAX_ENTRIES)
    if result.kind == "error":
        return
    m = result.value
    assert isinstance(m, UAIModel)
    _check_arrays(m.tables)
    assert all(c <= MAX_ENTRIES for c in m.cards)
    assert parse_uai(write_uai_text(m), max_table_entries=MAX_ENTRIES) == m
    model = outcome(model_from_uai, m, max_table_entries=MAX_ENTRIES, allow_inf=True)
    if m.kind == "BAYES":
        check_bayes_model(model)
    elif model.kind == "error":  # a Markov network needs a factor: an empty file has none
        assert type(model.error) is ValidationError and not m.cards, repr(model.error)
    else:
        assert isinstance(model.value, MarkovNetwork)
        assert set(model.value.variables) == {str(i) for i in range(len(m.cards))}


@FAST
@given(mutated(uai_seeds()))
def test_fuzz_uai_model(payload: bytes) -> None:
    check_uai(payload)


@pytest.mark.slow
@SLOW
@given(mutated(uai_seeds(), max_mutations=6))
def test_fuzz_uai_model_long(payload: bytes) -> None:
    check_uai(payload)


# --------------------------------------------------------------------------------------------------
# UAI evidence and results
# --------------------------------------------------------------------------------------------------


def _asia_uai() -> UAIModel:
    return parse_uai(uai_seeds()[1])  # asia (the seeds are in bundled_networks() order)


def check_evidence(payload: bytes, with_model: bool) -> None:
    model = _asia_uai() if with_model else None
    result = read_limited(read_uai_evidence, payload, ".evid", model=model)
    if result.kind == "error":
        return
    samples = result.value
    assert isinstance(samples, list) and samples
    for sample in samples:
        for var, value in sample.items():
            assert var >= 0 and value >= 0
            if model is not None:
                assert var < len(model.cards) and value < model.cards[var]
    assert parse_uai_evidence(write_uai_evidence_text(samples), model=model) == samples


@FAST
@given(mutated(tuple(EVIDENCE_SEEDS)), st.booleans())
def test_fuzz_uai_evidence(payload: bytes, with_model: bool) -> None:
    check_evidence(payload, with_model)


@pytest.mark.slow
@SLOW
@given(mutated(tuple(EVIDENCE_SEEDS), max_mutations=6), st.booleans())
def test_fuzz_uai_evidence_long(payload: bytes, with_model: bool) -> None:
    check_evidence(payload, with_model)


def check_results(payload: bytes) -> None:
    result = read_limited(read_uai_results, payload, ".MAR")
    if result.kind == "error":
        return
    solutions = result.value
    assert isinstance(solutions, list) and solutions
    for r in solutions:
        if r.task == "MAR":
            _check_arrays(r.marginals)
        elif r.task == "PR":
            assert r.log10_probability < float("inf")
        # One solution per file, in the UAI 2014 layout: the same solution back.
        assert parse_uai_result(format_uai_result(r.task, r)) == r


@FAST
@given(mutated(tuple(RESULT_SEEDS)))
def test_fuzz_uai_result(payload: bytes) -> None:
    check_results(payload)


@pytest.mark.slow
@SLOW
@given(mutated(tuple(RESULT_SEEDS), max_mutations=6))
def test_fuzz_uai_result_long(payload: bytes) -> None:
    check_results(payload)
