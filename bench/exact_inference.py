"""Exact inference on bnlearn networks: all single-variable marginals, pgmpy against probforge.

What is compared, per network and evidence setting ("none", and "ev5": 5 variables with states
from one ancestral sample, ``random_evidence(model, 5, seed=0)`` in tests/reference/pgmpy_oracle):

- ``pgmpy_ve_s``: pgmpy ``VariableElimination.query([v], evidence)`` for every non-evidence
  variable in turn (a full sweep; pgmpy prunes barren nodes and contracts with opt_einsum).
- ``pgmpy_bp_minfill_*``: pgmpy ``BeliefPropagation`` on a junction tree triangulated along a
  greedy min-fill order. ``..._build_s`` (per network): order + ``to_junction_tree`` +
  ``BeliefPropagation(jt)``; ``..._calibrate_s``: enter the evidence (zero the other states in
  one clique), pgmpy's ``calibrate()``, read every marginal off a clique belief;
  ``pgmpy_bp_minfill_s`` = build + calibrate (construction inside the measurement).
  ``..._two_pass_calibrate_s``: the same calibration with pgmpy's message update driven by an
  exact collect/distribute schedule (pgmpy's ``calibrate()`` re-checks convergence of every
  edge after every clique, which dominates its cost): pgmpy's BP at its best, for reference.
- ``pgmpy_bp_default_*``: the same with ``BeliefPropagation(model)`` as shipped (pgmpy's H6
  triangulation: hundreds of TiB on hepar2, ~1 min to calibrate alarm). Full mode only.
- ``probforge``: ``all_marginals(model, evidence)`` on ``load_network(name)`` (load timed
  separately) from the hook module ``bench/_probforge_side.py``;
  also ``all_marginals_prebuilt`` (same signature, may reuse structures between calls; one
  untimed warm-up call builds them) when the hook has it. They return the library's own
  result; the hook's ``named_marginals(model, result)``, if any, turns it into
  ``{var: {state: p}}`` after the timing (pgmpy's query times exclude the same conversion of
  its factors). Every answer is checked against pgmpy to 1e-9 (max abs diff over every
  marginal; a failure is printed with ``!!!`` and recorded in the JSON), with ratios pgmpy
  time / probforge time (above 1: probforge faster). With no hook the figures are pgmpy-only
  and ``"probforge": null``.
- "batched evidence on alarm": if the hook has ``batched_marginals(model, rows)``, 10,000 rows of
  evidence on the same 5 variables (ancestral samples), reported as rows per second; the first
  3 rows are checked against pgmpy VE (answer as ``{var: (N, card)}`` in ``model.states`` order,
  or ``{var: {state: (N,)}}``).

pgmpy runs on CPD columns renormalised to sum to 1 (the bnlearn files are off by up to 3e-7,
which moves VE's pruned answers and BP's unpruned ones apart by ~1e-8); probforge's loader must
normalise the same way to pass the 1e-9 check. pgmpy runs in a worker subprocess, one
measurement at a time, never concurrently with probforge's: each measurement gets a time budget
(best-of-N within it; past it a VE sweep stops and is EXTRAPOLATED linearly from the variables
done, reported as ``pgmpy_ve_s_extrapolated`` with ``pgmpy_ve_subset_size``), a hard wall limit
(the worker is killed; the figure is a lower bound) and an address-space cap (MemoryError is
reported as ``oom``). Times are best-of-N wall seconds (N at least the --repeat rounds; fast
calls get more rounds, up to about 1 s of calls or 25 rounds, on both sides); the load average
is recorded (2 cores: other jobs inflate every figure). Last stdout line: one JSON object with
all figures.

Run: python bench/exact_inference.py [--quick] [--networks alarm,child] [--strict]
  --quick: alarm, child, insurance, hepar2, win95pts; best of 3, 5 s budget, 30 s hard limit,
           no default-BP: about 40 s with pgmpy alone on the 2-core machine (load average 4).
  full:    12 networks (adds water, mildew, hailfinder, barley, pathfinder, andes, munin1);
           best of 5, 60 s budget, 600 s hard limit per measurement, default-BP included:
           about 20 minutes with pgmpy alone (18 min measured at load average 4; pgmpy's load
           and import are ~1 min of it). Known pgmpy outcomes: default-BP is oom (PiB-sized
           cliques) everywhere but child, insurance and possibly alarm, and fails on andes
           (disconnected moral graph); munin1's min-fill BP is oom under the 8 GiB cap.
  --strict: exit 1 when probforge disagrees with pgmpy or fails.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _pgmpy_side import (
    EVIDENCE_K,
    Outcome,
    PgmpyWorker,
    adaptive_best,
    default_mem_limit_bytes,
    worker_main,
)
from _timing import load_average

# probforge's side lives in bench/_probforge_side.py
HOOKS = ("_probforge_side",)
_hook: Any = None
HOOK_NAME: str | None = None
_errors: list[str] = []
for _name in HOOKS:
    try:
        _hook = importlib.import_module(_name)
        HOOK_NAME = _name
        break
    except ImportError as _err:
        _errors.append(f"{_name}: {type(_err).__name__}: {_err}")
HOOK_ERROR: str | None = None if _hook is not None else "; ".join(_errors)
all_marginals: Callable[[Any, dict[str, str]], Any] | None = getattr(_hook, "all_marginals", None)
load_network: Callable[[str], Any] | None = getattr(_hook, "load_network", None)
all_marginals_prebuilt: Callable[[Any, dict[str, str]], Any] | None = getattr(
    _hook, "all_marginals_prebuilt", None)
# Turns the library's own result into ``{var: {state: p}}`` after the timing, as the pgmpy side
# converts its DiscreteFactors after timing each query.
named_marginals: Callable[[Any, Any], Any] = getattr(
    _hook, "named_marginals", lambda model, result: result)
if _hook is not None and (all_marginals is None or load_network is None):
    HOOK_ERROR = f"{HOOK_NAME} lacks all_marginals/load_network"
    _hook = all_marginals = load_network = all_marginals_prebuilt = None

FULL = ["alarm", "child", "insurance", "hepar2", "win95pts", "water", "mildew", "hailfinder",
        "barley", "pathfinder", "andes", "munin1"]
QUICK = ["alarm", "child", "insurance", "hepar2", "win95pts"]
TOL = 1e-9
BATCH_NETWORK, BATCH_ROWS, BATCH_CHECK_ROWS = "alarm", 10_000, 3
EV_LABEL = f"ev{EVIDENCE_K}"
SETTINGS = ["none", EV_LABEL]

Marginals = dict[str, dict[str, float]]


# ----------------------------------------------------------------------------------------------
# Comparing marginals


def compare(ours: Any, ref: Mapping[str, Mapping[str, float]], evidence: Mapping[str, str],
            states: Mapping[str, list[str]] | None = None) -> tuple[float, list[str]]:
    """Max abs difference of ``ours`` against ``ref`` over every variable and state of ``ref``,
    and the problems (missing variables or states, observed variables not a point mass)."""
    problems: list[str] = []
    if not isinstance(ours, Mapping):
        return float("inf"), [f"all_marginals returned {type(ours).__name__}, not a dict"]
    worst = 0.0
    for var, dist in ref.items():
        got = ours.get(var)
        if not isinstance(got, Mapping):
            problems.append(f"{var}: missing" if got is None else f"{var}: not a dict")
            continue
        if set(map(str, got)) != set(dist):
            problems.append(f"{var}: states {sorted(map(str, got))} != {sorted(dist)}")
            continue
        got_s = {str(k): float(v) for k, v in got.items()}
        worst = max(worst, max(abs(got_s[s] - p) for s, p in dist.items()))
    for var, state in evidence.items():  # if ours reports observed variables: point masses
        got = ours.get(var)
        if isinstance(got, Mapping):
            for s, p in got.items():
                worst = max(worst, abs(float(p) - (1.0 if str(s) == state else 0.0)))
    return worst, problems


def _max_diff(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]]) -> float:
    common = set(a) & set(b)
    return max((abs(a[v][s] - b[v][s]) for v in common for s in a[v]), default=float("nan"))


# ----------------------------------------------------------------------------------------------
# pgmpy measurements (through the worker)


def _failure(outcome: Outcome) -> str | None:
    if outcome.failure:
        return outcome.failure
    assert outcome.result is not None
    status = outcome.result.get("status", "ok")
    return None if status == "ok" or status == "extrapolated" else (
        f"{status}: {outcome.result.get('error', '')}".rstrip(": "))


def pgmpy_ve(worker: PgmpyWorker, network: str, label: str) -> tuple[dict[str, Any], Marginals]:
    out = worker.run({"kind": "ve", "network": network, "setting": label})
    fig: dict[str, Any] = {"pgmpy_ve_s": None}
    failed = _failure(out)
    if failed is None:
        assert out.result is not None
        res = out.result
        fig["pgmpy_ve_status"] = res["status"]
        fig["n_query_vars"] = res["n_query_vars"]
        if res["status"] == "ok":
            fig["pgmpy_ve_s"], fig["pgmpy_ve_rounds"] = res["seconds"], res["rounds"]
        else:
            fig["pgmpy_ve_s_extrapolated"] = res["seconds_extrapolated"]
            fig["pgmpy_ve_subset_size"] = res["subset_size"]
        return fig, res["marginals"]
    fig["pgmpy_ve_status"] = failed
    queries = [e["s"] for e in out.events if e.get("ev") == "ve_query"]
    if out.failure and queries:  # killed mid-sweep: extrapolate from the queries that finished
        fig["pgmpy_ve_s_extrapolated"] = sum(queries) / len(queries) * _n_query_vars(
            worker, network, label)
        fig["pgmpy_ve_subset_size"] = len(queries)
    return fig, {}


_NETWORK_INFO: dict[str, dict[str, Any]] = {}


def _n_query_vars(worker: PgmpyWorker, network: str, label: str) -> int:
    info = _NETWORK_INFO[network]
    return int(info["n_vars"]) - (len(info["evidence"]) if label != "none" else 0)


def pgmpy_bp(worker: PgmpyWorker, network: str, tri: str, name: str
             ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Marginals]]:
    """Network-level figures (build), per-setting figures (calibrate) and marginals."""
    out = worker.run({"kind": "bp", "network": network, "triangulation": tri})
    res = dict(out.result or {})
    if out.failure:  # salvage what was reported before the kill
        built = next((e for e in out.events if e.get("ev") == "bp_built"), None)
        res = {**(built or {}), "status": "killed"}
    net: dict[str, Any] = {f"{name}_build_s": res.get("build_s"),
                           f"{name}_build_rounds": res.get("build_rounds"),
                           f"{name}_max_clique_states": res.get("max_clique_states"),
                           f"{name}_n_cliques": res.get("n_cliques")}
    failed = _failure(out)
    if res.get("build_s") is None:
        net[f"{name}_status"] = failed or "no build"
    per: dict[str, dict[str, Any]] = {}
    marg: dict[str, Marginals] = {}
    phases = [e["phase"] for e in out.events if e.get("ev") == "phase"]
    for label in SETTINGS:
        r = res.get(label)
        fig: dict[str, Any] = {f"{name}_calibrate_s": None, f"{name}_s": None}
        if isinstance(r, dict) and r.get("status") == "ok":
            fig[f"{name}_calibrate_s"] = r["calibrate_s"]
            fig[f"{name}_rounds"] = r["rounds"]
            fig[f"{name}_s"] = res["build_s"] + r["calibrate_s"]
            if "two_pass_s" in r:
                fig[f"{name}_two_pass_calibrate_s"] = r["two_pass_s"]
                fig[f"{name}_two_pass_vs_calibrate_max_abs_diff"] = r[
                    "two_pass_vs_calibrate_max_abs_diff"]
            marg[label] = r["marginals"]
        elif isinstance(r, dict):
            fig[f"{name}_status"] = f"{r['status']}: {r.get('error', '')}".rstrip(": ")
        elif out.failure and phases and phases[-1] == f"bp:calibrate:{label}":
            fig[f"{name}_status"] = out.failure
            fig[f"{name}_calibrate_s_lower_bound"] = worker.config["hard_s"]
        else:
            fig[f"{name}_status"] = "not run" + (f" ({failed})" if failed else "")
        per[label] = fig
    if out.failure and phases and phases[-1] == "bp:build":
        net[f"{name}_build_s_lower_bound"] = worker.config["hard_s"]
    return net, per, marg


# ----------------------------------------------------------------------------------------------
# probforge measurements (in this process, never concurrently with the worker)


def _check(ours: Any, evidence: dict[str, str], ve: Marginals, bp: Marginals,
           n_query_vars: int) -> dict[str, Any]:
    """Agreement figures of one probforge answer against pgmpy's VE and BP marginals."""
    fig: dict[str, Any] = {}
    problems: list[str] = []
    for tag, ref in (("ve", ve), ("bp", bp)):
        if ref:
            fig[f"max_abs_diff_vs_pgmpy_{tag}"], found = compare(ours, ref, evidence)
            fig[f"checked_vars_{tag}"] = len(ref)
            problems += [x for x in found if x not in problems]
    diffs = [fig[k] for k in ("max_abs_diff_vs_pgmpy_ve", "max_abs_diff_vs_pgmpy_bp") if k in fig]
    fig["max_abs_diff"] = max(diffs) if diffs else None
    covered = max(len(ve), len(bp))
    if covered < n_query_vars:
        problems.append(f"only {covered} of {n_query_vars} variables had a pgmpy reference")
    fig["agree"] = bool(diffs) and max(diffs) <= TOL and not any(
        "missing" in p or "states" in p or "not a" in p for p in problems)
    if problems:
        fig["problems"] = problems[:10]
    return fig


def probforge_setting(model: Any, evidence: dict[str, str], ve: Marginals, bp: Marginals,
                      n_query_vars: int, repeat: int, budget: float) -> dict[str, Any]:
    """Time ``all_marginals`` (and ``all_marginals_prebuilt`` when the hook has it) and check
    both against pgmpy."""
    assert all_marginals is not None
    fig: dict[str, Any] = {}
    for suffix, fn in (("", all_marginals), ("_prebuilt", all_marginals_prebuilt)):
        if fn is None:
            continue
        try:
            if suffix:  # prebuilt: the structures reused between calls are built untimed
                fn(model, dict(evidence))
            timed = adaptive_best(lambda f=fn: f(model, dict(evidence)), repeat, budget)
        except Exception as err:  # reported as a failure, the bench goes on
            fig.update({f"error{suffix}": f"{type(err).__name__}: {err}"[:300], "agree": False})
            continue
        fig[f"s{suffix}"], fig[f"rounds{suffix}"] = timed.seconds, timed.rounds
        checked = _check(named_marginals(model, timed.first), evidence, ve, bp, n_query_vars)
        if suffix:
            fig[f"max_abs_diff{suffix}"] = checked["max_abs_diff"]
            fig["agree"] = fig.get("agree", True) and checked["agree"]
            if "problems" in checked:
                fig[f"problems{suffix}"] = checked["problems"]
        else:
            fig.update({**checked, "agree": fig.get("agree", True) and checked["agree"]})
    return fig


def add_ratios(fig: dict[str, Any]) -> None:
    """pgmpy time / probforge time (above 1: probforge faster), per pgmpy method."""
    pf = fig.get("probforge") or {}
    for suffix in ("", "_prebuilt"):
        ours = pf.get(f"s{suffix}")
        if not ours:
            continue
        if fig.get("pgmpy_ve_s") is not None:
            pf[f"ratio_ve{suffix}"] = fig["pgmpy_ve_s"] / ours
        elif fig.get("pgmpy_ve_s_extrapolated") is not None:
            pf[f"ratio_ve_extrapolated{suffix}"] = fig["pgmpy_ve_s_extrapolated"] / ours
        for name in ("pgmpy_bp_minfill", "pgmpy_bp_default"):
            if fig.get(f"{name}_s") is not None:
                short = name.removeprefix("pgmpy_")
                pf[f"ratio_{short}_total{suffix}"] = fig[f"{name}_s"] / ours
                pf[f"ratio_{short}_calibrate{suffix}"] = fig[f"{name}_calibrate_s"] / ours


# ----------------------------------------------------------------------------------------------
# Reporting


def _s(x: float | None, lower: float | None = None, extrap: bool = False) -> str:
    if x is None:
        return f">{lower:.0f}" if lower is not None else "-"
    text = f"{x:.4f}" if x < 10 else f"{x:.1f}"
    return text + ("~" if extrap else "")


def print_setting(network: str, label: str, fig: dict[str, Any], net: dict[str, Any]) -> None:
    ve = _s(fig.get("pgmpy_ve_s"))
    if fig.get("pgmpy_ve_s") is not None:
        ve += f" s ({fig.get('pgmpy_ve_rounds')} rounds)"
    elif fig.get("pgmpy_ve_s_extrapolated") is not None:
        ve = (f"{fig['pgmpy_ve_s_extrapolated']:.3f} s EXTRAPOLATED from "
              f"{fig['pgmpy_ve_subset_size']}/{fig.get('n_query_vars', '?')} variables")
    else:
        ve += f" ({fig.get('pgmpy_ve_status')})"
    parts = [f"pgmpy VE {ve}"]
    for name, title in (("pgmpy_bp_minfill", "BP(min-fill)"), ("pgmpy_bp_default",
                                                                 "BP(pgmpy default)")):
        if (f"{name}_build_s" not in net and f"{name}_status" not in net) or str(
                net.get(f"{name}_status", "")).startswith("skipped"):
            continue
        build = _s(net.get(f"{name}_build_s"), net.get(f"{name}_build_s_lower_bound"))
        cal = _s(fig.get(f"{name}_calibrate_s"), fig.get(f"{name}_calibrate_s_lower_bound"))
        text = f"{title} build {build} + calibrate {cal} s"
        if fig.get(f"{name}_two_pass_calibrate_s") is not None:
            text += f" (2-pass {_s(fig[f'{name}_two_pass_calibrate_s'])} s)"
        status = net.get(f"{name}_status") or fig.get(f"{name}_status")
        if status:
            text += f" [{status[:60]}]"
        parts.append(text)
    if fig.get("pgmpy_bp_vs_ve_max_abs_diff") is not None:
        parts.append(f"|BP-VE| {fig['pgmpy_bp_vs_ve_max_abs_diff']:.1e}")
    pf = fig.get("probforge")
    if pf is None:
        parts.append("probforge n/a")
    elif "error" in pf:
        parts.append(f"probforge FAILED: {pf['error']}")
    else:
        for suffix, title in (("", "probforge"), ("_prebuilt", "probforge prebuilt")):
            if pf.get(f"s{suffix}") is None:
                continue
            ratios = ", ".join(f"{k.removeprefix('ratio_').removesuffix(suffix)} {v:.2f}x"
                               for k, v in pf.items() if k.startswith("ratio_")
                               and k.endswith("_prebuilt") == bool(suffix))
            diff = pf.get(f"max_abs_diff{suffix}")
            parts.append(f"{title} {_s(pf[f's{suffix}'])} s ({ratios}) |diff| "
                         f"{'n/a' if diff is None else f'{diff:.1e}'}")
        if pf.get("error_prebuilt"):
            parts.append(f"probforge prebuilt FAILED: {pf['error_prebuilt']}")
    print(f"  {network:10s} {label:5s} " + " | ".join(parts), flush=True)
    if pf is not None and not pf.get("agree", False):
        why = [pf.get(k) for k in ("error", "error_prebuilt", "problems", "problems_prebuilt")
               if pf.get(k)] or [pf.get("max_abs_diff"), pf.get("max_abs_diff_prebuilt")]
        print(f"  !!! {network}/{label}: probforge check FAILED (tolerance {TOL:g}): {why}",
              flush=True)


def summary_table(figures: dict[str, Any]) -> None:
    print("\nsummary (seconds; ~ = extrapolated, >N = killed at the hard limit, - = n/a; "
          "VE/pf, BPmf/pf: pgmpy VE sweep, pgmpy min-fill BP build+calibrate over probforge)")
    print(f"{'network':10s} {'evid':5s} {'pgmpy VE':>10s} {'BP-mf build':>11s} "
          f"{'BP-mf calib':>11s} {'BP-def total':>12s} {'probforge':>10s} {'pf prebuilt':>11s} "
          f"{'VE/pf':>7s} {'BPmf/pf':>7s} {'|diff|':>8s}")
    for network, net in figures["networks"].items():
        for label in SETTINGS:
            fig = net.get(label)
            if not isinstance(fig, dict):
                continue
            ve = fig.get("pgmpy_ve_s")
            ve_text = _s(ve) if ve is not None else _s(fig.get("pgmpy_ve_s_extrapolated"),
                                                       extrap=True)
            pf = fig.get("probforge") or {}
            r_ve = pf.get("ratio_ve", pf.get("ratio_ve_extrapolated"))
            r_bp = pf.get("ratio_bp_minfill_total")
            diff = pf.get("max_abs_diff")
            print(f"{network:10s} {label:5s} {ve_text:>10s} "
                  f"{_s(net.get('pgmpy_bp_minfill_build_s'), net.get('pgmpy_bp_minfill_build_s_lower_bound')):>11s} "  # noqa: E501
                  f"{_s(fig.get('pgmpy_bp_minfill_calibrate_s'), fig.get('pgmpy_bp_minfill_calibrate_s_lower_bound')):>11s} "  # noqa: E501
                  f"{_s(fig.get('pgmpy_bp_default_s'), fig.get('pgmpy_bp_default_calibrate_s_lower_bound')):>12s} "  # noqa: E501
                  f"{_s(pf.get('s')):>10s} {_s(pf.get('s_prebuilt')):>11s} "
                  f"{'-' if r_ve is None else f'{r_ve:.2f}':>7s} "
                  f"{'-' if r_bp is None else f'{r_bp:.2f}':>7s} "
                  f"{'-' if diff is None else f'{diff:.0e}':>8s}")


# ----------------------------------------------------------------------------------------------
# Main


def run_network(worker: PgmpyWorker, network: str, args: argparse.Namespace,
                our_models: dict[str, Any]) -> dict[str, Any]:
    out = worker.run({"kind": "network", "network": network})
    info = next((e for e in out.events if e.get("ev") == "network"), None)
    if info is None:
        return {"status": _failure(out) or "network not loaded"}
    _NETWORK_INFO[network] = info
    evidence = {"none": {}, EV_LABEL: info["evidence"]}
    net: dict[str, Any] = {"n_vars": info["n_vars"], "evidence": info["evidence"],
                           "pgmpy_load_s": info["load_s"],
                           "cpd_column_sum_error": info["cpd_column_sum_error"],
                           "load_avg_1m": load_average()}
    print(f"{network}: {info['n_vars']} variables, pgmpy load {info['load_s']:.1f} s, "
          f"CPD columns off by {info['cpd_column_sum_error']:.1e} (renormalised); "
          f"{EV_LABEL} = {info['evidence']}" + ("" if args.default_bp else
                                                "; BP(pgmpy default) skipped"), flush=True)
    figs: dict[str, dict[str, Any]] = {}
    ve_marg: dict[str, Marginals] = {}
    for label in SETTINGS:
        figs[label], ve_marg[label] = pgmpy_ve(worker, network, label)
    bp_marg: dict[str, Marginals] = {}
    variants = [("minfill", "pgmpy_bp_minfill")]
    if args.default_bp:
        variants.append(("pgmpy", "pgmpy_bp_default"))
    else:
        net["pgmpy_bp_default_status"] = "skipped (--default-bp runs it)"
    for tri, name in variants:
        net_part, per, marg = pgmpy_bp(worker, network, tri, name)
        net.update(net_part)
        for label in SETTINGS:
            figs[label].update(per[label])
        if tri == "minfill":
            bp_marg = marg
    for label in SETTINGS:
        if ve_marg[label] and bp_marg.get(label):
            figs[label]["pgmpy_bp_vs_ve_max_abs_diff"] = _max_diff(ve_marg[label],
                                                                   bp_marg[label])
        figs[label]["probforge"] = None
    if load_network is not None:
        try:
            t0 = time.perf_counter()
            our_models[network] = load_network(network)
            net["probforge_load_s"] = time.perf_counter() - t0
        except Exception as err:
            net["probforge_load_error"] = f"{type(err).__name__}: {err}"[:300]
        for label in SETTINGS:
            if network not in our_models:
                figs[label]["probforge"] = {"error": net["probforge_load_error"], "agree": False}
                continue
            ve = ve_marg[label]
            n_query = info["n_vars"] - len(evidence[label])
            figs[label]["probforge"] = probforge_setting(
                our_models[network], evidence[label], ve, bp_marg.get(label, {}), n_query,
                args.repeat, args.budget)
            add_ratios(figs[label])
    for label in SETTINGS:
        print_setting(network, label, figs[label], net)
        net[label] = figs[label]
    return net


def _batched_row(out: Mapping[str, Any], i: int, states: Mapping[str, Any]) -> Marginals:
    """Row ``i`` of a batched answer: ``{var: {state: (N,) vector}}`` or ``{var: (N, card)}``
    with columns in ``states[var]`` order."""
    row: Marginals = {}
    for var, value in out.items():
        if isinstance(value, Mapping):
            row[var] = {str(s): float(p[i]) for s, p in value.items()}
        else:
            names = list(states[var])
            vec = value[i]
            if len(vec) != len(names):
                raise ValueError(f"{var}: {len(vec)} columns for {len(names)} states")
            row[var] = {str(n): float(vec[j]) for j, n in enumerate(names)}
    return row


def batched_section(worker: PgmpyWorker, args: argparse.Namespace,
                    our_models: dict[str, Any]) -> dict[str, Any] | None:
    batched: Callable[..., Any] | None = getattr(_hook, "batched_marginals", None)
    print(f"\nbatched evidence on {BATCH_NETWORK}: ", end="")
    if batched is None:
        why = "no probforge hook" if _hook is None else "hook has no batched_marginals"
        print(f"skipped ({why})")
        return None
    out = worker.run({"kind": "rows", "network": BATCH_NETWORK, "n": BATCH_ROWS,
                      "check_rows": BATCH_CHECK_ROWS})
    failed = _failure(out)
    if failed or out.result is None:
        print(f"skipped (pgmpy could not draw the rows: {failed})")
        return {"status": f"rows not drawn: {failed}"}
    res = out.result
    rows: dict[str, list[str]] = res["rows"]
    fig: dict[str, Any] = {"rows": BATCH_ROWS, "evidence_variables": res["variables"],
                           "load_avg_1m": load_average()}
    try:
        assert load_network is not None
        model = our_models.get(BATCH_NETWORK) or load_network(BATCH_NETWORK)
        timed = adaptive_best(lambda: batched(model, rows), args.repeat, args.budget)
    except Exception as err:
        fig.update(error=f"{type(err).__name__}: {err}"[:300], agree=False)
        print(f"FAILED: {fig['error']}")
        return fig
    fig.update(probforge_s=timed.seconds, rounds=timed.rounds,
               probforge_rows_per_s=BATCH_ROWS / timed.seconds,
               pgmpy_ve_rows_per_s_extrapolated=BATCH_CHECK_ROWS / res["check_seconds"],
               pgmpy_ve_rows_subset_size=BATCH_CHECK_ROWS)
    worst, problems = 0.0, []
    our_states = getattr(model, "states", None)
    states = our_states if isinstance(our_states, Mapping) else res["states"]
    for i, ref in enumerate(res["check_marginals"]):
        try:
            row = _batched_row(timed.first, i, states)
        except Exception as err:  # neither {var: {state: (N,)}} nor {var: (N, card)}
            problems.append(f"cannot read row {i}: {type(err).__name__}: {err}"[:200])
            break
        d, p = compare(row, ref, {v: rows[v][i] for v in res["variables"]})
        worst, problems = max(worst, d), problems + p
    fig.update(max_abs_diff_checked_rows=worst, checked_rows=BATCH_CHECK_ROWS,
               agree=worst <= TOL and not problems)
    if problems:
        fig["problems"] = problems[:10]
    print(f"probforge {fig['probforge_rows_per_s']:.0f} rows/s ({timed.seconds:.3f} s for "
          f"{BATCH_ROWS} rows, {timed.rounds} rounds); pgmpy VE "
          f"~{fig['pgmpy_ve_rows_per_s_extrapolated']:.1f} rows/s (EXTRAPOLATED from "
          f"{BATCH_CHECK_ROWS} rows); |diff| on {BATCH_CHECK_ROWS} rows {worst:.1e}")
    if not fig["agree"]:
        print(f"!!! batched marginals DISAGREE with pgmpy: {problems or worst}")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 small networks, short caps")
    parser.add_argument("--networks", help="comma-separated subset (default: by mode)")
    parser.add_argument("--budget", type=float, help="seconds per measurement for best-of-N")
    parser.add_argument("--hard-limit", type=float, help="kill a pgmpy phase after this long")
    parser.add_argument("--repeat", type=int, help="best-of-N rounds")
    parser.add_argument("--mem-limit-gib", type=float, help="pgmpy worker address-space cap")
    parser.add_argument("--default-bp", action=argparse.BooleanOptionalAction, default=None,
                        help="also time BeliefPropagation(model) as shipped (default: full)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any disagreement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker_main(args.worker)
        return
    torch.set_num_threads(2)
    quick = args.quick
    networks = args.networks.split(",") if args.networks else (QUICK if quick else FULL)
    args.budget = args.budget or (5.0 if quick else 60.0)
    args.hard_limit = args.hard_limit or (30.0 if quick else 600.0)
    args.repeat = args.repeat or (3 if quick else 5)
    args.default_bp = (not quick) if args.default_bp is None else args.default_bp
    mem = int(args.mem_limit_gib * (1 << 30)) if args.mem_limit_gib else default_mem_limit_bytes()
    t_start = time.perf_counter()
    figures: dict[str, Any] = {
        "mode": "quick" if quick else "full", "load_avg_1m": load_average(),
        "load_avg_start": list(os.getloadavg()), "torch_threads": torch.get_num_threads(),
        "pgmpy_version": importlib.metadata.version("pgmpy"), "tolerance": TOL,
        "caps": {"budget_s": args.budget, "hard_limit_s": args.hard_limit,
                 "repeat": args.repeat, "mem_limit_gib": round(mem / (1 << 30), 2)},
        "probforge": None, "networks": {}, "batched_alarm": None}
    if HOOK_ERROR is not None:
        print(f"no probforge hook ({HOOK_ERROR}): pgmpy-only figures, \"probforge\": null")
    else:
        figures["probforge"] = {"hook": HOOK_NAME, "all_agree": True,
                                "all_marginals_prebuilt": all_marginals_prebuilt is not None,
                                "batched_marginals": hasattr(_hook, "batched_marginals")}
        print(f"probforge through {HOOK_NAME}: all_marginals"
              + (", all_marginals_prebuilt" if all_marginals_prebuilt else "")
              + (", batched_marginals" if hasattr(_hook, "batched_marginals") else ""))
    print(f"mode {figures['mode']}: budget {args.budget:g} s, hard limit {args.hard_limit:g} s, "
          f"best of {args.repeat}, pgmpy memory cap {mem / (1 << 30):.1f} GiB; "
          f"load average {figures['load_avg_1m']:.2f}", flush=True)
    config = {"budget_s": args.budget, "hard_s": args.hard_limit, "repeat": args.repeat,
              "mem_limit_bytes": mem}
    our_models: dict[str, Any] = {}
    with PgmpyWorker(Path(__file__).resolve(), config) as worker:
        for network in networks:
            figures["networks"][network] = run_network(worker, network, args, our_models)
        if figures["probforge"] is not None:
            figures["batched_alarm"] = batched_section(worker, args, our_models)
        else:
            print(f"\nbatched evidence on {BATCH_NETWORK}: skipped (no probforge hook)")
        figures["pgmpy_worker_starts"] = worker.starts
    summary_table(figures)
    failures = []
    if figures["probforge"] is not None:
        for network, net in figures["networks"].items():
            for label in SETTINGS:
                pf = (net.get(label) or {}).get("probforge")
                if pf is not None and not pf.get("agree", False):
                    failures.append(f"{network}/{label}")
        batch = figures["batched_alarm"]
        if batch is not None and not batch.get("agree", True):
            failures.append("batched_alarm")
        figures["probforge"]["all_agree"] = not failures
        figures["probforge"]["failures"] = failures
        print("probforge agrees with pgmpy everywhere (tolerance 1e-9)" if not failures else
              f"!!! probforge DISAGREES with pgmpy on: {', '.join(failures)}")
    figures["load_avg_1m_end"] = load_average()
    figures["wall_s"] = time.perf_counter() - t_start
    print(f"load average (1 min): {figures['load_avg_1m']:.2f} at start, "
          f"{figures['load_avg_1m_end']:.2f} at end; wall {figures['wall_s']:.0f} s")
    print(json.dumps(figures))
    if args.strict and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
