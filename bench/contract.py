"""Log-semiring contraction: probforge.ops.contract against Pyro's log-space einsum.

Both evaluate the same sum-product over the same log-factors in one process; the ratio is
pyro_time / probforge_time (above 1: probforge faster). Last stdout line: one JSON object.

Run: python bench/contract.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch
from pyro.ops.einsum import contract as pyro_contract

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, load_average

from probforge.ops import contract


def chain(t: int, k: int, batch: tuple[int, ...]) -> tuple[list[torch.Tensor], list[tuple]]:
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(*batch, k, k, generator=g, dtype=torch.float64) for _ in range(t - 1)]
    return fs, [(i, i + 1) for i in range(t - 1)]


def grid(n: int, k: int) -> tuple[list[torch.Tensor], list[tuple]]:
    g = torch.Generator().manual_seed(1)
    scopes = [((i, j), (i, j + 1)) for i in range(n) for j in range(n - 1)]
    scopes += [((i, j), (i + 1, j)) for i in range(n - 1) for j in range(n)]
    fs = [torch.randn(k, k, generator=g, dtype=torch.float64) for _ in scopes]
    return fs, scopes


def equation(scopes: list[tuple], output: tuple = ()) -> str:
    import opt_einsum

    names = {v: opt_einsum.get_symbol(i) for i, v in enumerate(dict.fromkeys(
        v for s in scopes for v in s))}
    return ",".join("".join(names[v] for v in s) for s in scopes) + "->" + "".join(
        names[v] for v in output)


def _pyro(eq: str, fs: list[torch.Tensor]) -> torch.Tensor:
    return pyro_contract(eq, *fs, backend="pyro.ops.einsum.torch_log")


def _pyro_batched(eq: str, fs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [_pyro(eq, [f[b] for f in fs]) for b in range(fs[0].shape[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    torch.set_num_threads(2)
    repeat = 3 if args.quick else 7
    cases = {
        "chain_T100_K32": chain(100, 32, ()),
        "chain_T50_K16_batch256": chain(50, 16, (256,)),
        "grid_8x8_K2": grid(8, 2),
        "grid_5x5_K4": grid(5, 4),
    }
    figures: dict[str, object] = {"load_avg_1m": load_average()}
    for name, (fs, scopes) in cases.items():
        eq = equation(scopes)
        batched = fs[0].dim() > len(scopes[0])
        ours = contract(fs, scopes)
        if batched:  # pyro's einsum has no broadcast batch dims: contract each entry
            run_pyro = functools.partial(_pyro_batched, eq, fs)
            theirs = torch.stack(run_pyro())
        else:
            run_pyro = functools.partial(_pyro, eq, fs)
            theirs = run_pyro()
        err = float((ours - theirs).abs().max())
        t_ours = best_time(functools.partial(contract, fs, scopes, validate=False), repeat)
        t_pyro = best_time(run_pyro, repeat)
        ratio = t_pyro / t_ours
        figures[name] = {"probforge_s": t_ours, "pyro_s": t_pyro, "ratio": ratio,
                         "max_abs_diff": err}
        print(f"{name:26s} probforge {t_ours * 1e3:8.3f} ms  pyro {t_pyro * 1e3:8.3f} ms  "
              f"ratio {ratio:6.2f}x  |diff| {err:.1e}")
    print(f"load average (1 min): {figures['load_avg_1m']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
