"""Convergence and monotonicity bookkeeping for expectation-maximisation.

EM never decreases the log marginal likelihood (textbook 11.45):
``log p(x; θ_{t+1}) >= ELBO(q_{t+1}, x; θ_{t+1}) >= ELBO(q_{t+1}, x; θ_t) = log p(x; θ_t)``.
:class:`EMMonitor` records the objective after every iteration, stops on a small improvement or
after ``max_iter`` iterations, and raises :class:`~probforge.errors.ConvergenceError` when the
objective goes down by more than rounding can explain, which is always a bug (in an E-step, an
M-step, or a caller passing the wrong quantity). It knows nothing of the model, so the Gaussian and
Bernoulli mixtures, HMM Baum-Welch and Bayesian-network EM can all share it.

Examples
--------
>>> from pgm.learning.em_monitor import EMMonitor
>>> m = EMMonitor(tol=1e-3, max_iter=10)
>>> for ll in [-10.0, -5.0, -4.9995]:
...     done = m.update(ll)
>>> m.history, m.converged, m.n_iter, done
([-10.0, -5.0, -4.9995], True, 2, True)
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from probforge.errors import ConvergenceError, ValidationError
from probforge.validate import check_int, check_real

__all__ = ["EMMonitor"]


class EMMonitor:
    """Track an EM objective per iteration; detect convergence and assert monotonicity.

    The first value passed to :meth:`update` is the objective of the initial parameters
    (iteration 0); each later value is the objective after one more E-step/M-step pair, so
    ``n_iter == len(history) - 1`` is the number of completed EM iterations.

    Parameters
    ----------
    tol : float, default 1e-3
        Convergence threshold: the monitor reports convergence when the latest improvement
        ``history[-1] - history[-2]`` is below ``tol`` (in the units of the values passed; callers
        that pass a total over ``N`` data points and want a per-sample threshold pass ``tol * N``).
    max_iter : int, default 100
        Stop (without convergence) once ``n_iter >= max_iter``.
    decrease_rtol : float, default 1e-9
        Allowed decrease, relative to the magnitude ``max(|old|, |new|, 1)``. A larger drop raises
        :class:`~probforge.errors.ConvergenceError`. Rounding in a sum of ``N`` float64 terms is far
        below 1e-9 relative; float32 callers should pass about ``1e3 * torch.finfo(float32).eps``.
    name : str, default "EM"
        Names the procedure in error messages (e.g. ``"fit_gmm"``, ``"Baum-Welch"``).

    Attributes
    ----------
    history : list of float
        Objective values, one per call of :meth:`update`.
    converged : bool
        True once an improvement fell below ``tol``.
    """

    def __init__(
        self,
        *,
        tol: float = 1e-3,
        max_iter: int = 100,
        decrease_rtol: float = 1e-9,
        name: str = "EM",
    ) -> None:
        if not isinstance(name, str):
            raise ValidationError("EMMonitor", "name must be a str", found=repr(name))
        self.tol = check_real(tol, f"{name}: tol", minimum=0.0)
        self.max_iter = check_int(max_iter, f"{name}: max_iter", minimum=0)
        self.decrease_rtol = check_real(decrease_rtol, f"{name}: decrease_rtol", minimum=0.0)
        self.name = name
        self.history: list[float] = []
        self.converged = False

    @property
    def n_iter(self) -> int:
        """Completed EM iterations: ``len(history) - 1`` (0 before the first update)."""
        return max(len(self.history) - 1, 0)

    @property
    def done(self) -> bool:
        """True when converged or when ``max_iter`` iterations have been completed."""
        return self.converged or (len(self.history) > 0 and self.n_iter >= self.max_iter)

    @property
    def improvement(self) -> float:
        """The latest change ``history[-1] - history[-2]`` (``inf`` before two updates)."""
        if len(self.history) < 2:
            return math.inf
        return self.history[-1] - self.history[-2]

    def update(self, value: float | Tensor) -> bool:
        """Record the objective of the current parameters and return :attr:`done`.

        Parameters
        ----------
        value : float or 0-d Tensor
            The total log marginal likelihood (or, for MAP-EM, log likelihood plus log prior) of
            the parameters at this iteration. A tensor is read once with ``float()``.

        Returns
        -------
        bool
            Whether the caller should stop.

        Raises
        ------
        ConvergenceError
            If ``value`` is NaN or ``+inf``, is ``-inf`` twice in a row, or is lower than the
            previous value by more than ``decrease_rtol * max(|old|, |new|, 1)``.
        """
        it = len(self.history)
        if isinstance(value, bool) or not isinstance(value, numbers.Real | Tensor) or (
                isinstance(value, Tensor) and (value.numel() != 1 or value.dtype == torch.bool
                                               or value.is_complex())):
            raise ValidationError(f"{self.name} iteration {it}", "the objective must be a real "
                                  "number or a one-element tensor", found=repr(value)[:60])
        new = float(value)
        if math.isnan(new) or new == math.inf:
            raise ConvergenceError(
                f"{self.name} iteration {it}",
                "the log-likelihood is not finite",
                found=new,
                fix="check the inputs for extreme values and increase the regularisation",
            )
        if not self.history:
            self.history.append(new)
            return self.done
        old = self.history[-1]
        if new == -math.inf:
            raise ConvergenceError(
                f"{self.name} iteration {it}",
                f"the log-likelihood fell from {old!r} to -inf (EM never decreases it, 11.45)",
                fix="check the E- and M-steps; use a prior to keep parameters off the boundary",
            )
        if old == -math.inf:  # any finite value improves on zero likelihood
            self.history.append(new)
            return self.done
        slack = self.decrease_rtol * max(abs(old), abs(new), 1.0)
        if new < old - slack:
            raise ConvergenceError(
                f"{self.name} iteration {it}",
                f"the log-likelihood decreased from {old!r} to {new!r} "
                f"(by {old - new:.3g}, more than the allowed {slack:.3g}); "
                "EM never decreases it (11.45)",
                fix="this is a bug in the E- or M-step, or the values passed are not the "
                "objective that EM maximises",
            )
        self.history.append(new)
        if new - old < self.tol:
            self.converged = True
        return self.done

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else None
        return (
            f"EMMonitor(name={self.name!r}, n_iter={self.n_iter}, last={last!r}, "
            f"converged={self.converged}, tol={self.tol}, max_iter={self.max_iter})"
        )
