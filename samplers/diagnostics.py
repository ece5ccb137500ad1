"""Convergence diagnostics through ArviZ: R-hat, bulk / tail ESS, MCSE, and warnings.

:func:`check` applies the usual rules (Vehtari et al. 2021, Stan's defaults) and returns the
warnings, also storing them in ``samples.attrs["warnings"]`` and printing them once per
``Samples`` object (to stderr):

- rank-normalised split R-hat ``>= 1.01``;
- bulk ESS ``< 100 * chains`` (and tail ESS likewise);
- any divergent transition (``is_divergent`` stat);
- mean acceptance probability far from the target (``|mean - target| > tolerance``) when a
  target is known (``attrs["target_accept"]`` or the ``target_accept`` argument);
- chains that never moved (an ``is_accepted`` stat that is False for every draw of every
  chain).

Sizes: R-hat (split, rank-normalised) needs at least 2 chains and 4 draws per chain, ESS and
MCSE at least 4 draws per chain. :func:`rhat`, :func:`ess` and :func:`mcse` raise
:class:`~probforge.errors.ValidationError` below that (R-hat of a single chain is undefined
here, as in ArviZ); :func:`check` skips those diagnostics and says so in a warning. A value
that is still undefined (an element whose draws are one constant in every chain, for which
R-hat is 0 / 0; any NaN ArviZ returns) raises :class:`~probforge.errors.NonFiniteError` naming
the variable and element, never a NaN. Draws must be finite (:class:`Samples` checks it).

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
import warnings
from typing import Any

import numpy as np
import torch

from probforge.errors import NonFiniteError, UnknownVariableError, ValidationError
from probforge.validate import check_choice, check_names, check_real
from samplers.samples import Samples, import_arviz

__all__ = ["RHAT_THRESHOLD", "check", "ess", "mcse", "rhat", "summary"]

#: R-hat at or above this is flagged (Vehtari et al. 2021).
RHAT_THRESHOLD = 1.01
#: Bulk / tail ESS below this many per chain is flagged.
ESS_PER_CHAIN = 100


#: ESS methods that need no extra argument (``arviz.ess``).
ESS_METHODS = ("bulk", "tail", "mean", "sd", "median", "mad", "folded", "identity")
#: MCSE methods (``arviz.mcse``; "sd" is computed here, see :func:`mcse`).
MCSE_METHODS = ("mean", "sd", "median")
MIN_DRAWS = 4


def _selected(who: str, samples: Any, var_names: Any, min_chains: int) -> Samples:
    """``samples`` restricted to ``var_names``, after checking its type and sizes."""
    if not isinstance(samples, Samples):
        raise ValidationError(f"{who} samples", "must be a Samples", found=type(samples).__name__,
                              fix="build one with samplers.Samples({'x': draws}) or sample(...)")
    if samples.num_chains < min_chains or samples.num_draws < MIN_DRAWS:
        need = f"at least {min_chains} chain(s) and {MIN_DRAWS} draws per chain"
        raise ValidationError(
            who, f"needs {need}" + (" (R-hat compares chains: with one chain it is undefined)"
                                    if min_chains > 1 else ""),
            found=f"{samples.num_chains} chain(s) x {samples.num_draws} draw(s)",
            fix="run more chains / draws; check() skips the diagnostics that cannot be computed")
    if var_names is None:
        return samples
    names = check_names(var_names, f"{who} var_names", allow_empty=False)
    for name in names:
        if name not in samples.draws:
            raise UnknownVariableError(f"{who} var_names", f"has no variable {name!r}",
                                       fix=f"use some of {list(samples.draws)}")
    return Samples({k: samples.draws[k] for k in names}, {}, dict(samples.attrs))


def _raw(samples: Samples, fn: Any, **kwargs: Any) -> dict[str, np.ndarray]:
    idata = Samples(samples.draws, {}, {}).to_arviz()
    # ArviZ warns (0 / 0) where a value is undefined; such values are reported by _defined.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = fn(idata, **kwargs)
    return {k: np.asarray(ds[k].values) for k in samples.draws}


def _defined(who: str, values: dict[str, np.ndarray], samples: Samples) -> dict[str, np.ndarray]:
    """Raise :class:`NonFiniteError` on the first NaN, naming the variable and element."""
    for k, v in values.items():
        bad = np.isnan(v)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0]) if v.ndim else ()
            where: tuple[Any, ...] = (slice(None), slice(None), *idx)
            x = samples.draws[k].detach()[where]
            constant = bool((x == x.reshape(-1)[0]).all())
            why = ("its draws are one constant in every chain (did the chains move?)"
                   if constant else "ArviZ could not compute it")
            raise NonFiniteError(
                f"{who} of {k!r}" + (f" element {idx}" if idx else ""),
                f"is undefined: {why}",
                fix="leave constant variables out with var_names=[...]")
    return values


def rhat(samples: Samples, var_names: str | list[str] | None = None) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat per variable element (``arviz.rhat``).

    Needs at least 2 chains and 4 draws per chain (R-hat of one chain is undefined:
    :class:`~probforge.errors.ValidationError`). An element whose draws are the same constant
    in every chain has no defined R-hat (0 / 0): :class:`~probforge.errors.NonFiniteError`
    names it; pass ``var_names`` to leave such variables out.

    Parameters
    ----------
    samples : Samples
    var_names : str or list of str, optional
        Variables to diagnose (a string is one name); default all.
    """
    s = _selected("rhat", samples, var_names, 2)
    return _defined("R-hat", _raw(s, import_arviz().rhat), s)


def ess(samples: Samples, method: str = "bulk",
        var_names: str | list[str] | None = None) -> dict[str, np.ndarray]:
    """Effective sample size per variable element (``arviz.ess``; ``method`` one of
    :data:`ESS_METHODS`). Needs at least 4 draws per chain; NaN is never returned (see the
    module notes)."""
    check_choice(method, "ess method", ESS_METHODS)
    s = _selected("ess", samples, var_names, 1)
    return _defined("ESS", _raw(s, import_arviz().ess, method=method), s)


def mcse(samples: Samples, method: str = "mean",
         var_names: str | list[str] | None = None) -> dict[str, np.ndarray]:
    """Monte Carlo standard error per variable element (``arviz.mcse``; ``method`` one of
    :data:`MCSE_METHODS`). Needs at least 4 draws per chain.

    ``"sd"`` follows ArviZ's formula (Vehtari et al. 2021) computed here,
    ``sqrt(Var[(x - mean)^2] / ESS_mean((x - mean)^2) / (4 Var[x]))``, because ArviZ 0.23's own
    numba path fails with NumPy 2; it is undefined (``NonFiniteError``) for a constant element.
    """
    check_choice(method, "mcse method", MCSE_METHODS)
    s = _selected("mcse", samples, var_names, 1)
    if method != "sd":
        return _defined("MCSE", _raw(s, import_arviz().mcse, method=method), s)
    centred = {}
    for k, v in s.draws.items():
        x = v.detach().to(torch.float64).cpu()
        centred[k] = (x - x.mean((0, 1))) ** 2
    sq = Samples(centred)
    ess_sq = _raw(sq, import_arviz().ess, method="mean")
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, c2 in centred.items():
            c = c2.numpy()
            evar = c.mean((0, 1))
            varvar = ((c**2).mean((0, 1)) - evar**2) / ess_sq[k]
            out[k] = np.sqrt(varvar / evar / 4)
    return _defined("MCSE", out, s)


def summary(samples: Samples, **kwargs: Any) -> Any:
    """``arviz.summary`` (a pandas DataFrame)."""
    return samples.summary(**kwargs)


def _all_rhat(samples: Samples) -> dict[str, np.ndarray]:
    """R-hat with NaN (undefined) elements left in, for :func:`check` to skip."""
    return _raw(samples, import_arviz().rhat)


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
        Elements whose R-hat or ESS is undefined (constant draws) are skipped; too few
        chains / draws for R-hat or ESS gives a warning saying what was not checked.
    """
    if not isinstance(samples, Samples):
        raise ValidationError("check samples", "must be a Samples", found=type(samples).__name__)
    if target_accept is not None:
        target_accept = check_real(target_accept, "check target_accept", minimum=0.0,
                                   maximum=1.0)
    accept_tolerance = check_real(accept_tolerance, "check accept_tolerance", minimum=0.0)
    if not isinstance(print_warnings, bool):
        raise ValidationError("check print_warnings", "must be a bool",
                              found=type(print_warnings).__name__)
    out: list[str] = []
    chains = samples.num_chains
    if samples.num_draws < MIN_DRAWS:
        out.append(f"only {samples.num_draws} draw(s) per chain: R-hat and ESS need at least "
                   f"{MIN_DRAWS}, so convergence was not checked; draw more")
    elif chains < 2:
        out.append("only 1 chain: R-hat needs at least 2, so mixing between chains was not "
                   "checked; run several chains")
    if chains >= 2 and samples.num_draws >= MIN_DRAWS:
        worst = _worst(_all_rhat(samples), highest=True)
        if worst is not None and worst[1] >= RHAT_THRESHOLD:
            out.append(f"R-hat of {worst[0]!r} is {worst[1]:.3f} >= {RHAT_THRESHOLD}: the chains "
                       "have not mixed; run longer or reparameterise")
    if samples.num_draws >= MIN_DRAWS:
        need = ESS_PER_CHAIN * chains
        for method in ("bulk", "tail"):
            low = _worst(_raw(samples, import_arviz().ess, method=method), highest=False)
            if low is not None and low[1] < need:
                out.append(f"{method} ESS of {low[0]!r} is {low[1]:.0f} < {need} "
                           f"({ESS_PER_CHAIN} per chain): estimates are noisy; draw more")
    moved = samples.stats.get("is_accepted")
    if moved is not None and moved.dtype == torch.bool and not bool(moved.any()):
        out.append("no chain accepted a single move: the draws are the starting points; check "
                   "the log-density and the step size / scale")
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
