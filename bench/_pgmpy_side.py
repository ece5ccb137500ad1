"""pgmpy side of bench/exact_inference.py: adaptive timing, the worker that times pgmpy in a
subprocess (so that a runaway measurement can be killed), and the parent's handle on it.

Protocol: the parent starts ``python bench/exact_inference.py --worker CONFIG_JSON``, writes one
JSON task per line on the worker's stdin and reads ``@@``-prefixed JSON events from its stdout.
Every ``phase`` event carries ``limit_s``, the wall time the coming phase may take; past it the
parent kills the worker (SIGKILL on its pid), records the phase as killed and starts a new one.
The worker caps its own address space (RLIMIT_AS), so pgmpy asking for more memory raises
MemoryError (reported as ``oom``) instead of pushing the machine into swap or the OOM killer,
and runs with PYTHONHASHSEED=0: pgmpy's default triangulation iterates over sets of names, so
its cliques (alarm: 21M to 287M states) otherwise change from run to run.

Run as a script it does nothing (``make bench`` runs every bench/*.py with --quick).
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # for tests.reference.pgmpy_oracle
from _timing import best_time  # noqa: E402

PREFIX = "@@"
EVIDENCE_K = 5
EVIDENCE_SEED = 0
ROWS_SEED = 1


@dataclass
class Timed:
    """Best wall time of ``rounds`` timed calls; ``first`` is what the first call returned."""

    seconds: float
    rounds: int
    first: Any


#: Fast calls get more timed rounds than ``repeat``, up to about this many seconds of calls
#: (at most MAX_ROUNDS): a best-of-3 of a 1 ms call is decided by whichever short burst of load
#: the 2 shared cores see. The same rule applies to pgmpy's calls and probforge's.
FAST_ROUNDS_S, MAX_ROUNDS = 1.0, 25


def adaptive_best(fn: Callable[[], Any], repeat: int, budget_s: float) -> Timed:
    """Best-of-``repeat`` like ``_timing.best_time`` when that fits in ``budget_s`` (more rounds
    for fast calls, see FAST_ROUNDS_S); otherwise as many timed calls as fit after the first,
    and the first call alone (``rounds=1``, includes any warm-up cost) when none does."""
    t0 = time.perf_counter()
    first = fn()
    t1 = time.perf_counter() - t0
    if t1 * (repeat + 2) <= budget_s:  # best_time's own warm-up call, then repeat rounds
        fast = min(MAX_ROUNDS, int(FAST_ROUNDS_S // max(t1, 1e-9)),
                   int(budget_s // max(t1, 1e-9)) - 2)
        rounds = max(repeat, fast)
        return Timed(best_time(fn, rounds), rounds, first)
    rounds = min(repeat, int((budget_s - t1) // max(t1, 1e-9)))
    if rounds < 1:
        return Timed(t1, 1, first)
    best = math.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return Timed(best, rounds, first)


# ----------------------------------------------------------------------------------------------
# Worker (runs in the subprocess)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def _limit_memory(limit_bytes: int) -> None:
    if limit_bytes > 0:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = limit_bytes if hard == resource.RLIM_INFINITY else min(limit_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


class _Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.budget_s = float(config["budget_s"])
        self.hard_s = float(config["hard_s"])
        self.repeat = int(config["repeat"])
        self.models: dict[str, Any] = {}
        self.evidence: dict[str, dict[str, str]] = {}

    def phase(self, task: int, name: str, limit_s: float | None = None) -> None:
        _emit({"ev": "phase", "task": task, "phase": name, "limit_s": limit_s or self.hard_s})

    def model(self, task: int, name: str) -> Any:
        from tests.reference import pgmpy_oracle as po

        if name not in self.models:
            self.models.clear()  # one network at a time: munin1's tables alone take GiBs
            self.phase(task, "load", max(self.hard_s, 180.0))
            t0 = time.perf_counter()
            raw = po.load_example(name, normalize=False)
            load_s = time.perf_counter() - t0
            model = po.normalized(raw)
            self.models[name] = model
            self.evidence[name] = po.random_evidence(model, EVIDENCE_K, EVIDENCE_SEED)
            _emit({"ev": "network", "task": task, "network": name, "load_s": load_s,
                   "n_vars": len(model.nodes()), "evidence": self.evidence[name],
                   "cpd_column_sum_error": po.cpd_normalization_error(raw)})
        return self.models[name]

    def settings(self, network: str) -> dict[str, dict[str, str]]:
        return {"none": {}, f"ev{EVIDENCE_K}": self.evidence[network]}

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        kind, tid = task["kind"], int(task["id"])
        model = self.model(tid, task["network"])
        if kind == "network":
            return {}
        if kind == "ve":
            return self.ve(tid, model, self.settings(task["network"])[task["setting"]])
        if kind == "bp":
            return self.bp(tid, model, task["network"], task["triangulation"])
        if kind == "rows":
            return self.rows(tid, model, task["network"], int(task["n"]), int(task["check_rows"]))
        raise ValueError(f"unknown task kind {kind!r}")

    def ve(self, tid: int, model: Any, evidence: dict[str, str]) -> dict[str, Any]:
        """All single-variable marginals, one VariableElimination.query per variable, in a
        seeded random order; past the budget the sweep stops and is extrapolated."""
        from pgmpy.inference import VariableElimination

        from tests.reference.pgmpy_oracle import _factor_to_dict

        order = sorted(v for v in model.nodes() if v not in evidence)
        random.Random(EVIDENCE_SEED).shuffle(order)
        ve = VariableElimination(model)
        ev = evidence or None

        def query(var: str) -> Any:
            return ve.query([var], evidence=ev, show_progress=False)

        self.phase(tid, "ve:first sweep")
        marginals: dict[str, dict[str, float]] = {}
        spent = 0.0
        for var in order:
            t0 = time.perf_counter()
            phi = query(var)
            dt = time.perf_counter() - t0
            spent += dt
            marginals[var] = _factor_to_dict(phi, var)
            _emit({"ev": "ve_query", "task": tid, "var": var, "s": dt})
            if spent > self.budget_s and len(marginals) < len(order):
                break
        out: dict[str, Any] = {"n_query_vars": len(order), "marginals": marginals}
        if len(marginals) < len(order):
            k = len(marginals)
            out.update(status="extrapolated", subset_size=k, seconds_extrapolated=spent / k *
                       len(order), subset_seconds=spent)
            return out

        def sweep() -> None:
            for var in order:
                query(var)

        rounds = min(self.repeat, int((self.budget_s - spent) // max(spent, 1e-9)))
        if rounds >= 1:
            self.phase(tid, "ve:timed sweeps")
            timed = adaptive_best(sweep, rounds, self.budget_s - spent)
            out.update(status="ok", seconds=timed.seconds, rounds=timed.rounds)
        else:
            out.update(status="ok", seconds=spent, rounds=1)
        return out

    def bp(self, tid: int, model: Any, network: str, triangulation: str) -> dict[str, Any]:
        """Build BeliefPropagation once (timed), then per evidence setting: enter evidence,
        pgmpy's calibrate(), read every marginal off its smallest clique (timed together)."""
        from tests.reference import pgmpy_oracle as po

        out: dict[str, Any] = {"triangulation": triangulation}
        self.phase(tid, "bp:build")
        try:
            t0 = time.perf_counter()
            bp = po.build_belief_propagation(model, triangulation)
            build_s, build_rounds = time.perf_counter() - t0, 1
            out.update(n_cliques=bp.junction_tree.number_of_nodes(),
                       max_clique_states=po.max_clique_states(bp))
            # more rounds only while two trees fit comfortably in memory next to each other
            if out["max_clique_states"] <= 1 << 22 and build_s * (self.repeat + 2) <= self.budget_s:
                build_s = best_time(lambda: po.build_belief_propagation(model, triangulation),
                                    self.repeat)
                build_rounds = self.repeat
        except MemoryError as err:
            return {**out, "status": "oom", "phase": "build", "error": str(err)[:200]}
        home = po.home_cliques(bp)
        out.update(build_s=build_s, build_rounds=build_rounds)
        _emit({"ev": "bp_built", "task": tid, **out})
        for label, evidence in self.settings(network).items():
            self.phase(tid, f"bp:calibrate:{label}")
            try:
                timed = adaptive_best(
                    lambda ev=evidence: po.calibrated_marginals(bp, ev, schedule="pgmpy",
                                                                home=home),
                    self.repeat, self.budget_s)
            except MemoryError as err:
                out[label] = {"status": "oom", "error": str(err)[:200]}
                continue
            out[label] = {"status": "ok", "calibrate_s": timed.seconds, "rounds": timed.rounds,
                          "marginals": timed.first}
            if triangulation == "minfill":  # pgmpy's message update on an exact 2-pass schedule
                self.phase(tid, f"bp:two_pass:{label}")
                try:
                    two = adaptive_best(
                        lambda ev=evidence: po.calibrated_marginals(bp, ev, schedule="two_pass",
                                                                    home=home),
                        self.repeat, self.budget_s)
                except MemoryError:
                    continue
                out[label].update(two_pass_s=two.seconds, two_pass_rounds=two.rounds,
                                  two_pass_vs_calibrate_max_abs_diff=max(
                                      abs(p - timed.first[v][s]) for v, d in two.first.items()
                                      for s, p in d.items()))
        out["status"] = "ok"
        return out

    def rows(self, tid: int, model: Any, network: str, n: int, check_rows: int) -> dict[str, Any]:
        """Evidence rows by ancestral sampling, plus pgmpy VE marginals (and their time) for the
        first ``check_rows`` rows."""
        from tests.reference import pgmpy_oracle as po

        self.phase(tid, "rows")
        variables = sorted(self.evidence[network])
        rows = po.sample_evidence_rows(model, variables, n, ROWS_SEED)
        checks, t0 = [], time.perf_counter()
        for i in range(min(check_rows, n)):
            checks.append(po.pgmpy_marginals(model, {v: rows[v][i] for v in variables}))
        spent = time.perf_counter() - t0
        return {"status": "ok", "variables": variables, "rows": rows, "check_marginals": checks,
                "check_seconds": spent,
                "states": {v: po.state_names(model, v) for v in model.nodes()}}


def worker_main(config_json: str) -> None:
    """Entry point of the worker subprocess: one JSON task per stdin line, events on stdout."""
    config = json.loads(config_json)
    _limit_memory(int(config.get("mem_limit_bytes", 0)))
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    import numpy as np

    np.seterr(all="ignore")
    from tests.reference import pgmpy_oracle  # noqa: F401  (imports pgmpy: seconds)

    worker = _Worker(config)
    _emit({"ev": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            result = worker.run(task)
        except MemoryError as err:
            result = {"status": "oom", "error": str(err)[:200]}
        except Exception as err:  # reported, and the next task goes on
            result = {"status": "error", "error": f"{type(err).__name__}: {err}"[:300]}
        _emit({"ev": "result", "task": task["id"], "data": result})


# ----------------------------------------------------------------------------------------------
# Parent side


@dataclass
class Outcome:
    """What one task produced: the final result, or how it died, with the events seen."""

    result: dict[str, Any] | None
    events: list[dict[str, Any]]
    failure: str | None = None  # "killed in phase X after N s" / "worker died in phase X"


class PgmpyWorker:
    """A restartable pgmpy worker subprocess; ``run(task)`` blocks until the task is done,
    killed (its phase overran ``limit_s``) or the worker died."""

    def __init__(self, script: Path, config: dict[str, Any], start_limit_s: float = 180.0):
        self.script, self.config, self.start_limit_s = script, config, start_limit_s
        self.proc: subprocess.Popen[str] | None = None
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.next_id = 0
        self.starts = 0

    def _reader(self, stream: Iterator[str]) -> None:
        for line in stream:
            if line.startswith(PREFIX):
                self.events.put(json.loads(line[len(PREFIX):]))
        self.events.put(None)

    def _start(self) -> None:
        self.events = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), "--worker", json.dumps(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            bufsize=1, cwd=str(BENCH.parent), env={**os.environ, "PYTHONHASHSEED": "0"})
        self.starts += 1
        assert self.proc.stdout is not None
        threading.Thread(target=self._reader, args=(self.proc.stdout,), daemon=True).start()
        event = self._get(time.monotonic() + self.start_limit_s)
        if event is None or event.get("ev") != "ready":
            self.close()
            raise RuntimeError(f"pgmpy worker did not start: {self.stderr_tail()}")

    def _get(self, deadline: float) -> dict[str, Any] | None:
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return {"ev": "timeout"}

    def stderr_tail(self, n: int = 600) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-n:].strip()

    def run(self, task: dict[str, Any]) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        tid = self.next_id
        self.next_id += 1
        self.proc.stdin.write(json.dumps({**task, "id": tid}) + "\n")
        self.proc.stdin.flush()
        events: list[dict[str, Any]] = []
        phase, limit = "start", float(self.config["hard_s"])
        deadline = time.monotonic() + limit
        while True:
            event = self._get(deadline)
            if event is None:
                self.close()
                return Outcome(None, events, f"pgmpy worker died in phase {phase!r} "
                               f"(stderr: {self.stderr_tail(200)!r})")
            if event.get("ev") == "timeout":
                self.close()
                return Outcome(None, events, f"killed in phase {phase!r} after {limit:.0f} s")
            events.append(event)
            if event.get("ev") == "phase":
                phase, limit = event["phase"], float(event["limit_s"])
                deadline = time.monotonic() + limit
            elif event.get("ev") == "result" and event.get("task") == tid:
                return Outcome(event["data"], events)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()  # only ever the worker this object started
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> PgmpyWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()  # the worker's stdin loop ends
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.close()
        self.stderr.close()


def default_mem_limit_bytes() -> int:
    """Half of the memory available now, at most 8 GiB (other jobs share this machine)."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        available = info.get("MemAvailable", info["MemTotal"])
    except (OSError, KeyError, ValueError):
        return 8 << 30
    return int(min(available // 2, 8 << 30))
