"""L-BFGS with an optional L1 term by OWL-QN (Andrew & Gao, 2007), on one flat parameter tensor.

Minimises ``F(w) = f(w) + c1 * ||w||_1`` for a smooth ``f`` given as ``w -> (f(w), grad f(w))``.
With ``c1 = 0`` it is plain L-BFGS with a backtracking (Armijo) line search. With ``c1 > 0`` it
follows OWL-QN: the L-BFGS direction is computed from the pseudo-gradient of ``F``, restricted to
the orthant the step starts in, and every trial point is projected back onto that orthant, so
weights reach exactly zero (sparse models, as CRFsuite's ``c1``).

Examples
--------
>>> import torch
>>> from pgm.crf.owlqn import minimize_owlqn
>>> target = torch.tensor([3.0, -0.05, 1.0], dtype=torch.float64)
>>> def fg(w):
...     return float(((w - target) ** 2).sum()), 2 * (w - target)
>>> res = minimize_owlqn(fg, torch.zeros(3, dtype=torch.float64), c1=0.2)
>>> res.x  # soft-thresholded at c1 / 2 = 0.1: the small weight is exactly zero
tensor([2.9000, 0.0000, 0.9000], dtype=torch.float64)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from probforge.errors import ConvergenceError, ShapeError, ValidationError
from probforge.validate import check_int, check_real, check_tensor

__all__ = ["OWLQNResult", "minimize_owlqn"]


class OWLQNResult(NamedTuple):
    """Result of :func:`minimize_owlqn`.

    Attributes
    ----------
    x : Tensor
        The minimiser found (flat, like ``x0``).
    fun : float
        ``F(x) = f(x) + c1 * ||x||_1``.
    n_iter : int
        Iterations (accepted steps) taken.
    n_evals : int
        Evaluations of ``f``.
    converged : bool
        True if a tolerance was met (False: stopped at ``max_iter`` or on a failed line search).
    history : list of float
        ``F`` after each iteration (index 0: at ``x0``).
    """

    x: Tensor
    fun: float
    n_iter: int
    n_evals: int
    converged: bool
    history: list[float]


def _pseudo_gradient(x: Tensor, g: Tensor, c1: float) -> Tensor:
    if c1 == 0.0:
        return g
    right = g + c1  # derivative for moving up from zero
    left = g - c1  # ... moving down
    at_zero = torch.where(right < 0, right, torch.where(left > 0, left, torch.zeros_like(g)))
    return torch.where(x > 0, right, torch.where(x < 0, left, at_zero))


def minimize_owlqn(
    fg: Callable[[Tensor], tuple[float, Tensor]],
    x0: Tensor,
    *,
    c1: float = 0.0,
    max_iter: int = 100,
    history_size: int = 10,
    gtol: float = 1e-5,
    delta: float = 1e-5,
    period: int = 10,
    max_linesearch: int = 20,
    callback: Callable[[int, float, Tensor], None] | None = None,
) -> OWLQNResult:
    """Minimise ``f(x) + c1 * ||x||_1`` by L-BFGS / OWL-QN.

    Parameters
    ----------
    fg : callable
        ``x -> (f(x), grad f(x))`` for the smooth part (``x`` flat; do not mutate it).
    x0 : Tensor
        Flat start point (not modified).
    c1 : float
        L1 coefficient (>= 0).
    max_iter : int
        Most iterations.
    history_size : int
        Correction pairs kept (CRFsuite: 6; 10 here).
    gtol : float
        Stop when ``||pseudo-gradient|| <= gtol * max(1, ||x||)``.
    delta, period : float, int
        Stop when ``F`` improved by less than ``delta`` (relative) over the last ``period``
        iterations (CRFsuite's criterion).
    max_linesearch : int
        Most backtracking halvings per iteration.
    callback : callable, optional
        ``callback(iteration, F, x)`` after each iteration.

    Returns
    -------
    OWLQNResult
    """
    if not callable(fg):
        raise ValidationError("minimize_owlqn fg", "must be a callable x -> (f(x), grad)",
                              found=type(fg).__name__)
    c1 = check_real(c1, "minimize_owlqn c1", minimum=0.0)
    check_tensor(x0, "minimize_owlqn x0", floating=True, finite=True)
    if x0.dim() != 1:
        raise ValidationError("minimize_owlqn x0", "must be a flat (1-d) tensor",
                              found=tuple(x0.shape))
    max_iter = check_int(max_iter, "minimize_owlqn max_iter", minimum=0)
    history_size = check_int(history_size, "minimize_owlqn history_size", minimum=1)
    gtol = check_real(gtol, "minimize_owlqn gtol", minimum=0.0)
    delta = check_real(delta, "minimize_owlqn delta", minimum=0.0)
    period = check_int(period, "minimize_owlqn period", minimum=1)
    max_linesearch = check_int(max_linesearch, "minimize_owlqn max_linesearch", minimum=1)
    if callback is not None and not callable(callback):
        raise ValidationError("minimize_owlqn callback", "must be callable or None",
                              found=type(callback).__name__)

    def evaluate(x: Tensor) -> tuple[float, Tensor]:
        out = fg(x)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Tensor)):
            raise ValidationError("minimize_owlqn fg", "must return (float, gradient tensor)",
                                  found=type(out).__name__)
        f, g = out
        if tuple(g.shape) != tuple(x.shape):
            raise ShapeError("minimize_owlqn fg", "must return a gradient shaped like x",
                             found=f"{tuple(g.shape)} vs {tuple(x.shape)}")
        try:
            return float(f), g
        except (TypeError, ValueError) as err:
            raise ValidationError("minimize_owlqn fg", "must return a number as f(x)",
                                  found=repr(f)[:40]) from err

    x = x0.detach().clone()
    f, g = evaluate(x)
    n_evals = 1
    big_f = f + c1 * float(x.abs().sum())
    history = [big_f]
    if not math.isfinite(big_f) or not bool(torch.isfinite(g).all()):
        raise ConvergenceError("minimize_owlqn", "objective or gradient not finite at the start",
                               found=big_f)
    s_list: list[Tensor] = []
    y_list: list[Tensor] = []
    rho_list: list[float] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        pg = _pseudo_gradient(x, g, c1)
        if float(pg.norm()) <= gtol * max(1.0, float(x.norm())):
            converged = True
            it -= 1
            break
        # two-loop recursion: d = -H pg
        q = pg.clone()
        alphas = []
        for s, y, rho in zip(reversed(s_list), reversed(y_list), reversed(rho_list),
                             strict=True):
            a = rho * float(torch.dot(s, q))
            alphas.append(a)
            q.add_(y, alpha=-a)
        if s_list:  # sy > 0 was checked when the pair was stored, so y.y > 0 too
            gamma = float(torch.dot(s_list[-1], y_list[-1])) / float(torch.dot(y_list[-1],
                                                                              y_list[-1]))
            q.mul_(gamma)
        for s, y, rho, a in zip(s_list, y_list, rho_list, reversed(alphas), strict=True):
            b = rho * float(torch.dot(y, q))
            q.add_(s, alpha=a - b)
        d = -q
        if c1 > 0:
            d = torch.where(d * pg < 0, d, torch.zeros_like(d))
            orthant = torch.where(x != 0, torch.sign(x), -torch.sign(pg))
        slope = float(torch.dot(pg, d))
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_list.clear()
            y_list.clear()
            rho_list.clear()
            d = -pg
            slope = float(torch.dot(pg, d))
        step = 1.0 if s_list else 1.0 / max(float(pg.norm()), 1e-12)
        accepted = False
        for _ in range(max_linesearch):
            x_new = x + step * d
            if c1 > 0:
                x_new = torch.where(torch.sign(x_new) == orthant, x_new, torch.zeros_like(x_new))
            f_new, g_new = evaluate(x_new)
            n_evals += 1
            big_new = f_new + c1 * float(x_new.abs().sum())
            # a NaN / inf objective or gradient at a trial point is a failed trial: shrink
            if math.isfinite(big_new) and bool(torch.isfinite(g_new).all()) \
                    and big_new <= big_f + 1e-4 * float(torch.dot(pg, x_new - x)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            break
        s_vec, y_vec = x_new - x, g_new - g
        sy = float(torch.dot(s_vec, y_vec))
        if sy > 1e-10 * float(torch.dot(y_vec, y_vec)):
            s_list.append(s_vec)
            y_list.append(y_vec)
            rho_list.append(1.0 / sy)
            if len(s_list) > history_size:
                s_list.pop(0)
                y_list.pop(0)
                rho_list.pop(0)
        x, f, g, big_f = x_new, f_new, g_new, big_new
        history.append(big_f)
        if callback is not None:
            callback(it, big_f, x)
        if len(history) > period:
            ref = history[-1 - period]
            if (ref - big_f) / max(abs(big_f), 1e-12) < delta:
                converged = True
                break
    return OWLQNResult(x, big_f, it, n_evals, converged, history)
