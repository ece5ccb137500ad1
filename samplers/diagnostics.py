"""Convergence diagnostics through ArviZ: R-hat, bulk / tail ESS, MCSE, and warnings.

:func:`check` applies the usual rules (Vehtari et al. 2021, Stan's defaults) and returns the
warnings, also storing them in ``samples.attrs["warnings"]`` and printing them once per
``Samples`` object (to stderr):

- rank-normalised split R-hat ``>= 1.01``;
- bulk ESS ``< 100 * chains`` (and tail ESS likewise);
- any divergent transition (``is_divergent`` stat);
- mean acceptance probability far from the target (``|mean - target| > tolerance``) when a
  target is known (``attrs["target_accept"]`` or the ``target_accept`` argument).

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from samplers.samples import Samples
>>> from samplers.diagnostics import check, rhat
>>> g = make_generator(0)
>>> s = Samples({"x": torch.randn(4, 500, 2, generator=g)})   # i.i.d.: perfect chains
>>> rhat(s)["x"].shape, check(s, print_warnings=False)
((2,), [])
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from samplers.samples import Samples, import_arviz

__all__ = ["RHAT_THRESHOLD", "check", "ess", "mcse", "rhat", "summary"]

#: R-hat at or above this is flagged (Vehtari et al. 2021).
RHAT_THRESHOLD = 1.01
#: Bulk / tail ESS below this many per chain is flagged.
ESS_PER_CHAIN = 100


def _per_variable(samples: Samples, fn: Any, **kwargs: Any) -> dict[str, np.ndarray]:
    idata = samples.to_arviz()
    ds = fn(idata, **kwargs)
    return {k: np.asarray(ds[k].values) for k in samples.draws}


def rhat(samples: Samples) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat per variable element (``arviz.rhat``)."""
    return _per_variable(samples, import_arviz().rhat)


def ess(samples: Samples, method: str = "bulk") -> dict[str, np.ndarray]:
    """Effective sample size per variable element (``arviz.ess``; ``method`` "bulk", "tail",
    "mean", ...)."""
    return _per_variable(samples, import_arviz().ess, method=method)


def mcse(samples: Samples, method: str = "mean") -> dict[str, np.ndarray]:
    """Monte Carlo standard error per variable element (``arviz.mcse``; "mean" or "sd")."""
    return _per_variable(samples, import_arviz().mcse, method=method)


def summary(samples: Samples, **kwargs: Any) -> Any:
    """``arviz.summary`` (a pandas DataFrame)."""
    return samples.summary(**kwargs)


def _worst(values: dict[str, np.ndarray], highest: bool) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for k, v in values.items():
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        x = float(v.max() if highest else v.min())
        if best is None or (x > best[1] if highest else x < best[1]):
            best = (k, x)
    return best


def check(
    samples: Samples,
    *,
    target_accept: float | None = None,
    accept_tolerance: float = 0.15,
    print_warnings: bool = True,
) -> list[str]:
    """Diagnose ``samples``; return warnings, store them in ``attrs["warnings"]``, print once.

    Parameters
    ----------
    samples : Samples
    target_accept : float, optional
        Acceptance-probability target; default ``samples.attrs.get("target_accept")``.
    accept_tolerance : float
        Flag a mean acceptance probability further than this from the target.
    print_warnings : bool
        Print the warnings to stderr (only the first time this ``Samples`` is checked).

    Returns
    -------
    list of str
    """
    out: list[str] = []
    chains = samples.num_chains
    if chains >= 2 and samples.num_draws >= 4:
        worst = _worst(rhat(samples), highest=True)
        if worst is not None and worst[1] >= RHAT_THRESHOLD:
            out.append(f"R-hat of {worst[0]!r} is {worst[1]:.3f} >= {RHAT_THRESHOLD}: the chains "
                       "have not mixed; run longer or reparameterise")
    if samples.num_draws >= 4:
        need = ESS_PER_CHAIN * chains
        for method in ("bulk", "tail"):
            low = _worst(ess(samples, method=method), highest=False)
            if low is not None and low[1] < need:
                out.append(f"{method} ESS of {low[0]!r} is {low[1]:.0f} < {need} "
                           f"({ESS_PER_CHAIN} per chain): estimates are noisy; draw more")
    div = samples.stats.get("is_divergent")
    if div is not None:
        n_div = int(div.sum())
        if n_div:
            out.append(f"{n_div} divergent transition(s) of {div.numel()}: the sampler could not "
                       "follow the posterior's geometry; raise target_accept or reparameterise")
    target = target_accept if target_accept is not None else samples.attrs.get("target_accept")
    acc = samples.stats.get("accept_prob")
    if target is not None and acc is not None:
        mean = float(acc.to(torch.float64).mean())
        if abs(mean - float(target)) > accept_tolerance:
            out.append(f"mean acceptance probability {mean:.3f} is far from the target "
                       f"{float(target):.3f}: the step size / scale is poorly tuned; "
                       "use a longer warmup")
    samples.attrs["warnings"] = list(out)
    if print_warnings and out and not samples.attrs.get("_warnings_printed"):
        for line in out:
            print(f"warning: {line}", file=sys.stderr)
        samples.attrs["_warnings_printed"] = True
    return out
