"""examples/ch12_rbm_contrastive_divergence.py and ch12_deep_belief_network.py in --smoke mode.

Both scripts run through ``runpy`` with ``--smoke --out tmp_path``; the tests check the printed
key lines, the numbers behind them (parsed from the output) and that the PNG files exist.
Oracles: exact ``log Z`` and exact test log-likelihoods of a 16-hidden-unit RBM by enumeration
(AIS, reverse AIS and RAISE must agree with them within their errors), ``log p(v) <= 0`` for
binary data, and reconstruction errors that fall when a layer is trained.
"""

from __future__ import annotations

import math
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RBM_EXAMPLE = EXAMPLES / "ch12_rbm_contrastive_divergence.py"
DBN_EXAMPLE = EXAMPLES / "ch12_deep_belief_network.py"
PNG = b"\x89PNG\r\n\x1a\n"
NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"


def _run(script: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--out", str(out), *extra])
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)  # the scripts set their own thread count
    return capsys.readouterr().out


def _line(out: str, start: str) -> str:
    """The first printed line whose text (without indentation) starts with ``start``."""
    for line in out.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starting with {start!r} in:\n{out}")


def _numbers(pattern: str, text: str) -> list[float]:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in:\n{text}"
    return [float(v) for v in found.groups()]


def test_rbm_example_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           tmp_path: Path) -> None:
    out = _run(RBM_EXAMPLE, tmp_path, monkeypatch, capsys)
    for tag in ("1. Bernoulli RBMs on binarised digits", "2. Exact check",
                "3. Gaussian-Bernoulli RBM", "parameters and reconstruction errors finite: True"):
        assert tag in out
    for tag in ("cd1", "cd10", "pcd"):
        for kind in ("filters", "samples"):
            assert (tmp_path / f"{kind}_{tag}.png").read_bytes()[:8] == PNG
    assert (tmp_path / "grbm_samples.png").read_bytes()[:8] == PNG

    # section 1: binary data have log p(v) <= 0; a base-rate start and a short run keep every
    # model far above the uniform distribution's -64 log 2 = -44.4 nats
    for label in ("CD-1 RBM", "CD-10 RBM", "PCD RBM"):
        recon, pll, ll, se = _numbers(rf"{NUMBER}\s+{NUMBER}\s+{NUMBER} \+- {NUMBER}$",
                                      _line(out, label))
        assert 0 < recon < 64 and -64 * math.log(2) < pll < 0, label
        assert -64 * math.log(2) < ll < 0 and 0 < se < 0.5, label
    mixture = _numbers(rf"{NUMBER} \(exact\)", _line(out, "mixture of 32 Bernoullis"))[0]
    assert -64 * math.log(2) < mixture < 0

    # section 2 against enumeration. AIS / reverse AIS with 100 chains are z-tested at 3 SE: for
    # a consistent estimator with a reliable SE a false failure has probability about 0.3 % per
    # check (seeds 0-7 give 0.1-2.4 SE). RAISE with 10 chains x 300 temperatures is within
    # 0.015 nats of the exact mean over 20 images for seeds 0-7; 0.1 leaves a wide margin.
    exact = _numbers(rf"= {NUMBER}$", _line(out, "exact log Z"))[0]
    fwd, fwd_se = _numbers(rf"= {NUMBER} \+- {NUMBER}", _line(out, "forward AIS log Z"))
    rev, rev_se = _numbers(rf"= {NUMBER} \+- {NUMBER}", _line(out, "reverse AIS log Z"))
    assert abs(fwd - exact) <= 3 * fwd_se + 1e-4
    assert abs(rev - exact) <= 3 * rev_se + 1e-4
    ll_exact, ll_ais, ll_se = _numbers(rf"exact {NUMBER}, AIS {NUMBER} \+- {NUMBER}",
                                       _line(out, "test log-likelihood: exact"))
    assert ll_exact < 0 and abs(ll_ais - ll_exact) <= 3 * ll_se + 1e-4
    # every image shares log Z, so the AIS figure is off by exactly exact - forward log Z
    assert ll_ais - ll_exact == pytest.approx(exact - fwd, abs=2e-4)
    rows_exact, rows_raise = _numbers(rf"exact {NUMBER}, RAISE \(10 chains\) {NUMBER}",
                                      _line(out, "first 20 test images"))
    assert abs(rows_raise - rows_exact) < 0.1

    # section 3: the Gaussian-Bernoulli RBM's AIS log-density is a finite number
    grbm, indep = _numbers(rf"GRBM {NUMBER} \+- [\d.]+ .*independent Gaussians {NUMBER}",
                           _line(out, "test log-density"))
    assert math.isfinite(grbm) and math.isfinite(indep)


def test_dbn_example_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           tmp_path: Path) -> None:
    out = _run(DBN_EXAMPLE, tmp_path, monkeypatch, capsys)
    for tag in ("1. Greedy layer-wise pre-training of a 64-100-100-50 DBN",
                "classifier 64-100-100-50-10", "2. Samples", "3. Classifier",
                "pre-trained DBN", "random start"):
        assert tag in out
    assert (tmp_path / "dbn_samples.png").read_bytes()[:8] == PNG

    # training the bottom RBM for 10 epochs halves its reconstruction error (15.9 -> 8.0 for
    # seeds 0-7). The upper layers' errors are tiny in a smoke run (their inputs are still close
    # to constant) and may move either way, so only their range is checked.
    rows = re.findall(r"^\s+(\d)\s+(\d+-\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.MULTILINE)
    assert [r[:2] for r in rows] == [("1", "64-100"), ("2", "100-100"), ("3", "100-50")]
    assert float(rows[0][3]) < 0.75 * float(rows[0][2])
    for _, size, before, after in rows:
        width = int(size.split("-")[0])
        assert 0 <= float(after) < width and 0 <= float(before) < width
    grey, data_grey = _numbers(rf"mean grey level {NUMBER} \(training images {NUMBER}\)", out)
    assert 0 < grey < 1 and data_grey == pytest.approx(0.293, abs=1e-3)

    table = re.findall(r"^\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%$", out, re.MULTILINE)
    assert [int(r[0]) for r in table] == [100, 1497]
    for _, pre, scratch in table:
        assert 0 <= float(pre) <= 100 and 0 <= float(scratch) <= 100
