"""Log-linear (maximum-entropy) models and conditional maxent / softmax regression.

A :class:`LogLinearModel` over discrete variables has feature functions ``f_k`` given as tables
over a scope of variables (``f_k(x_c)``, any real values) and weights ``theta``:

    log p(x; theta) = sum_k theta_k f_k(x_{c_k}) - log Z(theta)            (11.21)-(11.22)

so it is a Markov network with log-potentials ``sum_k theta_k f_k`` per scope. ``log Z`` is exact by
:class:`~pgm.inference.elimination.VariableElimination`, and the model expectations of the
features are its gradient, ``d log Z / d theta_k = E_p[f_k]`` (11.34)-(11.35), taken by autograd
through the contraction. :func:`fit_loglinear` maximises the average log-likelihood minus an L2
penalty by L-BFGS or plain gradient ascent; the gradient is empirical minus model expectations
(11.37), so at the (unregularised) optimum the moments match.

:class:`MaxEntClassifier` is the conditional version (11.23), ``p(y | x) ∝ exp(theta^T f(x, y))``
with ``f(x, y) = e_y ⊗ (x, 1)`` — the same ``f`` in the normaliser ``Z(x)`` (erratum 3: the text's
``f_y`` there is a typo) — i.e. multinomial logistic (softmax) regression.

Examples
--------
>>> import torch
>>> from pgm.loglinear import LogLinearModel, fit_loglinear
>>> agree = torch.eye(2, dtype=torch.float64)            # f(a, b) = [a == b]
>>> model = LogLinearModel({"a": 2, "b": 2}, [(("a", "b"), agree), (("a",), torch.tensor(
...     [0.0, 1.0], dtype=torch.float64))])
>>> data = torch.tensor([[0, 0], [1, 1], [1, 1], [0, 1]])
>>> fit = fit_loglinear(model, data)
>>> fit.converged, torch.allclose(fit.model.expected_features(),
...                               model.empirical_features(data), atol=1e-6)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pgm.bayesnet import assignment_tensor
from pgm.factor import Factor, check_state_names, default_states
from pgm.inference.elimination import VariableElimination
from pgm.markov import MarkovNetwork
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownStateError,
    UnknownVariableError,
    ValidationError,
)
from probforge.ops import logsumexp
from probforge.validate import check_int, check_names, check_real


def _float_tensor(value: Any, subject: str) -> Tensor:
    """A floating-point tensor from a tensor (integer tensors refused, not cast) or numbers."""
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise DtypeMismatchError(subject, "must be a floating-point tensor", found=value.dtype,
                                     fix="convert with .double()")
        return value
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValidationError(subject, "must be a tensor or nested sequences of numbers",
                              found=type(value).__name__) from err
    if t.is_complex() or t.dtype == torch.bool:
        raise ValidationError(subject, "must hold real numbers", found=t.dtype)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())

__all__ = ["LogLinearFit", "LogLinearModel", "MaxEntClassifier", "fit_loglinear"]


class LogLinearModel:
    """A log-linear model over discrete variables with tabular feature functions.

    Parameters
    ----------
    states : mapping str -> int or sequence of str
        Every variable with its number of states (an int >= 1) or its state names.
    features : sequence of (scope, table)
        Feature ``k`` is a finite real-valued table of shape ``tuple(card(v) for v in scope)``
        (a floating-point tensor, or nested sequences of numbers; an integer tensor is
        refused): ``f_k(x_scope) = table[x_scope]``. A scope given as one string is one
        variable. Indicator features give the classic maxent model.
    weights : Tensor of shape (K,), optional
        ``theta`` (finite); zeros by default (the uniform distribution).
    name : str
        Optional name.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> m = LogLinearModel({"a": 2}, [(("a",), torch.tensor([0.0, 1.0]))],
    ...                    weights=torch.tensor([math.log(3.0)]))
    >>> m.to_markov_network().log_prob({"a": 1}).exp()
    tensor([0.7500])
    """

    def __init__(
        self,
        states: Mapping[str, int | Sequence[str]],
        features: Sequence[tuple[Sequence[str], Tensor]],
        weights: Tensor | None = None,
        *,
        name: str = "",
    ) -> None:
        if not isinstance(name, str):
            raise ValidationError("LogLinearModel", "name must be a str", found=repr(name))
        self.name = name
        if not isinstance(states, Mapping):
            raise ValidationError(f"log-linear model {name!r}", "states must be a mapping "
                                  "variable -> number of states or state names",
                                  found=type(states).__name__)
        st: dict[str, tuple[str, ...]] = {}
        for v, s in states.items():
            if not isinstance(v, str):
                raise ValidationError(f"log-linear model {name!r}", "variable names must be "
                                      "strings", found=repr(v))
            if isinstance(s, int) and not isinstance(s, bool):
                if s < 1:
                    raise ValidationError(f"log-linear model {name!r}",
                                          f"variable {v!r} needs at least one state", found=s)
                st[v] = default_states(s)
            elif isinstance(s, Sequence) and not isinstance(s, str):
                st[v] = check_state_names([str(x) for x in s], f"states of {v!r}")
                if not st[v]:
                    raise ValidationError(f"log-linear model {name!r}",
                                          f"variable {v!r} needs at least one state", found=s)
            else:
                raise ValidationError(f"states of {v!r}", "must be a number of states (int "
                                      ">= 1) or a sequence of state names", found=repr(s))
        if not st:
            raise ValidationError(f"log-linear model {name!r}", "needs at least one variable")
        self._states = st
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise ValidationError(f"log-linear model {name!r}", "features must be a sequence "
                                  "of (scope, table) pairs", found=type(features).__name__)
        if not features:
            raise ValidationError(f"log-linear model {name!r}", "needs at least one feature")
        scopes: list[tuple[str, ...]] = []
        tables: list[Tensor] = []
        for k, item in enumerate(features):
            try:
                scope, table = item
            except (TypeError, ValueError):
                raise ValidationError(f"feature {k}", "must be a (scope, table) pair",
                                      found=type(item).__name__) from None
            if not isinstance(scope, str):
                scope = tuple(scope) if isinstance(scope, Sequence) else scope
                if isinstance(scope, tuple) and len(set(scope)) != len(scope):
                    raise ShapeError(f"feature {k}", "scope repeats a variable", found=scope)
            scope = tuple(check_names(scope, f"feature {k} scope"))
            for v in scope:
                if v not in st:
                    raise UnknownVariableError(f"feature {k}", f"names unknown variable {v!r}",
                                               fix=f"use one of {list(st)}")
            if len(set(scope)) != len(scope):
                raise ShapeError(f"feature {k}", "scope repeats a variable", found=scope)
            t = _float_tensor(table, f"feature {k} over {scope}")
            want = tuple(len(st[v]) for v in scope)
            if tuple(t.shape) != want:
                raise ShapeError(f"feature {k} over {scope}",
                                 f"table must have shape {want}", found=tuple(t.shape))
            if not bool(torch.isfinite(t).all()):
                raise NonFiniteError(f"feature {k} over {scope}",
                                     "feature values must be finite")
            scopes.append(scope)
            tables.append(t)
        dtype = tables[0].dtype
        device = tables[0].device
        self._scopes = scopes
        self._tables = [t.to(dtype=dtype, device=device) for t in tables]
        # features sharing a scope are stacked: one log-potential per distinct scope
        groups: dict[tuple[str, ...], list[int]] = {}
        for k, s in enumerate(scopes):
            groups.setdefault(s, []).append(k)
        self._groups = [(s, torch.tensor(ks, device=device),
                         torch.stack([self._tables[k] for k in ks]))
                        for s, ks in groups.items()]
        n = len(scopes)
        if weights is None:
            w = torch.zeros(n, dtype=dtype, device=device)
        else:
            w = _float_tensor(weights, f"log-linear model {name!r} weights").to(
                dtype=dtype, device=device)
            if w.shape != (n,):
                raise ShapeError(f"log-linear model {name!r}", f"needs {n} weights",
                                 found=tuple(w.shape))
            if not bool(torch.isfinite(w).all()):
                raise NonFiniteError(f"log-linear model {name!r}", "weights must be finite")
        self._weights = w

    # properties ---------------------------------------------------------------------------------
    @property
    def variables(self) -> tuple[str, ...]:
        """Variables, in the order of the data columns."""
        return tuple(self._states)

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        """State names of every variable."""
        return dict(self._states)

    @property
    def cards(self) -> dict[str, int]:
        """Number of states of every variable."""
        return {v: len(s) for v, s in self._states.items()}

    @property
    def weights(self) -> Tensor:
        """``theta``, shape (K,) (a copy)."""
        return self._weights.clone()

    @property
    def num_features(self) -> int:
        """``K``."""
        return len(self._scopes)

    @property
    def feature_scopes(self) -> list[tuple[str, ...]]:
        """Scope of every feature."""
        return list(self._scopes)

    def with_weights(self, weights: Tensor) -> LogLinearModel:
        """The same features with other weights (this model is not changed)."""
        return LogLinearModel(self._states, list(zip(self._scopes, self._tables, strict=True)),
                              weights, name=self.name)

    # the distribution ---------------------------------------------------------------------------
    def _theta(self, weights: Tensor | None) -> Tensor:
        if weights is None:
            return self._weights
        if not isinstance(weights, Tensor) or not weights.is_floating_point():
            raise DtypeMismatchError(f"log-linear model {self.name!r} weights",
                                     "must be a floating-point tensor",
                                     found=weights.dtype if isinstance(weights, Tensor)
                                     else type(weights).__name__)
        if weights.shape != self._weights.shape:
            raise ShapeError(f"log-linear model {self.name!r}",
                             f"needs {self.num_features} weights", found=tuple(weights.shape))
        return weights

    def log_potentials(self, weights: Tensor | None = None) -> list[Factor]:
        """One factor ``sum_k theta_k f_k`` per distinct scope, plus a zero factor per variable.

        Parameters
        ----------
        weights : Tensor (K,), optional
            Defaults to the model's; may require grad (the factors then do too).
        """
        theta = self._theta(weights)
        dt, dev = self._weights.dtype, self._weights.device
        out = [Factor([v], torch.zeros(len(s), dtype=dt, device=dev), {v: s})
               for v, s in self._states.items()]
        for scope, idx, stack in self._groups:
            table = torch.tensordot(theta[idx], stack, dims=1)
            out.append(Factor(scope, table, {v: self._states[v] for v in scope}))
        return out

    def to_markov_network(self, weights: Tensor | None = None) -> MarkovNetwork:
        """The model as a :class:`~pgm.markov.MarkovNetwork` (log-potentials of 11.21)."""
        return MarkovNetwork(self.log_potentials(weights), name=self.name)

    def log_partition(self, weights: Tensor | None = None) -> Tensor:
        """``log Z(theta)`` by variable elimination, shape ()."""
        ve = VariableElimination(self.to_markov_network(weights))
        out: Tensor = ve.log_evidence()
        return out

    def expected_features(self, weights: Tensor | None = None) -> Tensor:
        """Model expectations ``E_p[f_k]`` = ``d log Z / d theta_k`` (11.35), shape (K,)."""
        theta = self._theta(weights).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            log_z = self.log_partition(theta)
            (grad,) = torch.autograd.grad(log_z, theta)
        return grad

    def feature_values(self, data: Mapping[str, Any] | Tensor) -> Tensor:
        """``f_k(x^(n))`` for every row, shape (N, K).

        Parameters
        ----------
        data : LongTensor (N, V) or mapping
            Full assignments, columns in :attr:`variables` order (see
            :func:`pgm.bayesnet.assignment_tensor`).
        """
        x = assignment_tensor(self.variables, self._states, data, self._weights.device)
        col = {v: j for j, v in enumerate(self.variables)}
        cols = [t[tuple(x[:, col[v]] for v in s)] for s, t in
                zip(self._scopes, self._tables, strict=True)]
        return torch.stack(cols, dim=1)

    def empirical_features(self, data: Mapping[str, Any] | Tensor) -> Tensor:
        """Empirical expectations ``E_p~[f_k]`` (11.37), shape (K,).

        Raises
        ------
        ValidationError
            For zero data rows: the average over no data is undefined (never NaN).
        """
        values = self.feature_values(data)
        if values.shape[0] == 0:
            raise ValidationError(f"data for log-linear model {self.name!r}",
                                  "has no rows: the empirical expectation is undefined",
                                  fix="pass at least one data row")
        return values.mean(0)

    def log_prob(self, data: Mapping[str, Any] | Tensor,
                 weights: Tensor | None = None) -> Tensor:
        """``log p(x; theta)`` (11.22) of full assignments, shape (N,)."""
        theta = self._theta(weights)
        return self.feature_values(data) @ theta - self.log_partition(theta)

    def log_likelihood(self, data: Mapping[str, Any] | Tensor, weights: Tensor | None = None,
                       l2: float = 0.0) -> Tensor:
        """Average log-likelihood (11.31) minus ``l2 / 2 * ||theta||^2``, shape ().

        ``l2`` is a finite number >= 0; the data need at least one row.
        """
        l2 = check_real(l2, "log_likelihood l2", minimum=0.0)
        theta = self._theta(weights)
        ll = self.empirical_features(data) @ theta - self.log_partition(theta)
        return ll - 0.5 * l2 * (theta * theta).sum()

    def gradient(self, data: Mapping[str, Any] | Tensor, weights: Tensor | None = None,
                 l2: float = 0.0) -> Tensor:
        """Gradient of :meth:`log_likelihood`: ``E_p~[f] - E_p[f] - l2 * theta`` (11.37)."""
        l2 = check_real(l2, "gradient l2", minimum=0.0)
        theta = self._theta(weights).detach()
        return self.empirical_features(data) - self.expected_features(theta) - l2 * theta

    def __repr__(self) -> str:
        return (f"LogLinearModel({self.name!r}, {len(self._states)} variables, "
                f"{self.num_features} features)")


class LogLinearFit(NamedTuple):
    """Result of :func:`fit_loglinear`.

    Attributes
    ----------
    model : LogLinearModel
        The input model with the fitted weights.
    log_likelihood : Tensor, shape ()
        Final objective: average log-likelihood minus the L2 penalty.
    grad_norm : float
        Largest absolute entry of the final gradient (11.37).
    converged : bool
        ``grad_norm < tol``.
    n_iter : int
        Optimiser iterations (gradient steps, or L-BFGS function evaluations).
    """

    model: LogLinearModel
    log_likelihood: Tensor
    grad_norm: float
    converged: bool
    n_iter: int


def fit_loglinear(
    model: LogLinearModel,
    data: Mapping[str, Any] | Tensor,
    *,
    l2: float = 0.0,
    method: str = "lbfgs",
    max_iter: int = 500,
    tol: float = 1e-7,
    lr: float = 1.0,
) -> LogLinearFit:
    """Maximum-likelihood (or L2-regularised MAP) weights of a log-linear model.

    Maximises ``L(theta) = E_p~[theta^T f] - log Z(theta) - l2 / 2 ||theta||^2`` (11.31); its
    gradient is ``E_p~[f] - E_p[f] - l2 theta`` (11.37), with ``E_p[f]`` exact by variable
    elimination. Without regularisation the optimum matches moments, ``E_p[f] = E_p~[f]``.

    Parameters
    ----------
    model : LogLinearModel
        Features and starting weights (not modified).
    data : LongTensor (N, V) or mapping
        Fully observed training rows, columns in ``model.variables`` order.
    l2 : float
        L2 penalty strength (finite, >= 0). With ``l2 = 0`` the MLE exists only if no feature's
        empirical mean lies on the boundary of what the model can reach (e.g. an indicator of a
        configuration that never occurs drives its weight to ``-inf``).
    method : {"lbfgs", "gradient"}
        L-BFGS with a strong Wolfe line search, or gradient ascent with step ``lr``.
    max_iter : int
        Iteration cap, an int >= 1.
    tol : float
        Stop when every gradient entry is below ``tol`` (finite, > 0) in absolute value.
    lr : float
        Step size of gradient ascent (finite, > 0; ignored by L-BFGS).

    Zero data rows are refused (the average log-likelihood of no data is undefined).

    Returns
    -------
    LogLinearFit

    Examples
    --------
    >>> import torch
    >>> m = LogLinearModel({"a": 3}, [(("a",), torch.eye(3, dtype=torch.float64)[i])
    ...                               for i in range(3)])
    >>> fit = fit_loglinear(m, torch.tensor([[0], [1], [1], [2]]), l2=0.0)
    >>> fit.model.to_markov_network().log_prob(torch.tensor([[0], [1], [2]])).exp()
    tensor([0.2500, 0.5000, 0.2500], dtype=torch.float64)
    """
    if not isinstance(model, LogLinearModel):
        raise ValidationError("fit_loglinear", "needs a LogLinearModel",
                              found=type(model).__name__)
    if method not in ("lbfgs", "gradient"):
        raise ValidationError("fit_loglinear", "method must be 'lbfgs' or 'gradient'",
                              found=repr(method))
    l2 = check_real(l2, "fit_loglinear l2", minimum=0.0)
    max_iter = check_int(max_iter, "fit_loglinear max_iter", minimum=1)
    tol = check_real(tol, "fit_loglinear tol", minimum=0.0, strict_minimum=True)
    lr = check_real(lr, "fit_loglinear lr", minimum=0.0, strict_minimum=True)
    emp = model.empirical_features(data)
    theta = model.weights.clone()
    n_iter = 0

    def objective(t: Tensor) -> Tensor:
        return emp @ t - model.log_partition(t) - 0.5 * l2 * (t * t).sum()

    if method == "gradient":
        grad = model.gradient(data, theta, l2)
        while n_iter < max_iter and float(grad.abs().max()) >= tol:
            theta = theta + lr * grad
            grad = emp - model.expected_features(theta) - l2 * theta
            n_iter += 1
    else:
        param = theta.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([param], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                                tolerance_change=0.0, history_size=20,
                                line_search_fn="strong_wolfe")
        evals = [0]

        def closure() -> float:
            with torch.enable_grad():
                loss = -objective(param)
                (param.grad,) = torch.autograd.grad(loss, [param])
            evals[0] += 1
            return float(loss.detach())

        opt.step(closure)  # type: ignore[no-untyped-call]
        theta = param.detach().clone()
        n_iter = evals[0]
    grad = emp - model.expected_features(theta) - l2 * theta
    g = float(grad.abs().max())
    fitted = model.with_weights(theta)
    with torch.no_grad():
        value = objective(theta)
    return LogLinearFit(fitted, value, g, g < tol, n_iter)


class MaxEntClassifier:
    """Conditional maximum entropy = softmax (multinomial logistic) regression (11.23).

    ``p(y | x) = exp(theta^T f(x, y)) / Z(x)``, ``Z(x) = sum_y' exp(theta^T f(x, y'))`` with the
    joint feature ``f(x, y) = e_y ⊗ (x, 1)``, so ``theta^T f(x, y) = W_y . x + b_y``. Fitted by
    L-BFGS on the average negative log-likelihood plus ``l2 / 2 * ||W||^2`` (the intercepts are not
    penalised). scikit-learn's ``LogisticRegression(C=C)`` minimises the same objective with
    ``l2 = 1 / (C * N)`` for ``N`` training rows.

    Parameters
    ----------
    l2 : float, default 0
        L2 penalty on the weights ``W`` (not on ``b``), finite and >= 0. 0 gives the MLE, which
        is finite only if the classes are not separable.
    max_iter : int
        L-BFGS iteration cap, an int >= 1.
    tol : float
        Convergence threshold (finite, > 0) on the largest gradient entry.

    ``X`` is a finite floating-point tensor (an integer tensor is refused; array-likes of
    numbers are converted to float64); fitting needs at least two classes among the labels.
    Predicting on zero rows gives a (0, C) result.

    Attributes
    ----------
    classes_ : Tensor (C,)
    coef_ : Tensor (C, D)
    intercept_ : Tensor (C,)
    converged_ : bool
    n_iter_ : int

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    >>> clf = MaxEntClassifier(l2=0.1).fit(X, torch.tensor([0, 0, 1, 1]))
    >>> clf.predict(torch.tensor([[0.2], [2.8]], dtype=torch.float64))
    tensor([0, 1])
    """

    classes_: Tensor
    coef_: Tensor
    intercept_: Tensor
    converged_: bool
    n_iter_: int

    def __init__(self, *, l2: float = 0.0, max_iter: int = 1000, tol: float = 1e-8) -> None:
        self.l2 = check_real(l2, "MaxEntClassifier l2", minimum=0.0)
        self.max_iter = check_int(max_iter, "MaxEntClassifier max_iter", minimum=1)
        self.tol = check_real(tol, "MaxEntClassifier tol", minimum=0.0, strict_minimum=True)

    @staticmethod
    def _x(X: Any, d: int | None) -> Tensor:
        if isinstance(X, Tensor) and not X.is_floating_point():
            raise DtypeMismatchError("MaxEntClassifier: X", "must be a floating-point tensor",
                                     found=X.dtype, fix="convert with .double()")
        try:
            x = torch.as_tensor(X)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError("MaxEntClassifier: X", "must be a tensor or an array-like of "
                                  "numbers", found=type(X).__name__) from err
        if x.is_complex() or x.dtype == torch.bool:
            raise ValidationError("MaxEntClassifier: X", "must hold real numbers", found=x.dtype)
        if not x.is_floating_point():
            x = x.to(torch.float64)
        if x.dim() != 2 or (d is not None and x.shape[1] != d):
            raise ShapeError("MaxEntClassifier: X",
                             f"must have shape (N, {d if d is not None else 'D'})",
                             found=tuple(x.shape))
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteError("MaxEntClassifier: X", "contains NaN or inf")
        return x

    def joint_features(self, X: Any, y: Any) -> Tensor:
        """``f(x, y) = e_y ⊗ (x, 1)``, shape (N, C * (D + 1)); ``theta = [W | b]`` flattened."""
        self._check_fitted()
        x = self._x(X, self.coef_.shape[1])
        yt = self._labels(y, x.shape[0]).to(x.device)
        yi = torch.searchsorted(self.classes_, yt).clamp_max(self.classes_.shape[0] - 1)
        unknown = self.classes_[yi] != yt
        if bool(unknown.any()):
            i = int(torch.nonzero(unknown)[0])
            raise UnknownStateError(f"MaxEntClassifier: y[{i}]", "is not a class seen in fit",
                                    found=yt[i].item(), fix=f"use one of {self.classes_.tolist()}")
        phi = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        onehot = torch.nn.functional.one_hot(yi, self.classes_.shape[0]).to(x.dtype)
        return (onehot[:, :, None] * phi[:, None, :]).reshape(x.shape[0], -1)

    def fit(self, X: Any, y: Any) -> MaxEntClassifier:
        """Fit ``W`` and ``b`` by L-BFGS; returns ``self``.

        Parameters
        ----------
        X : Tensor (N, D)
        y : LongTensor (N,)
            Integer class labels (at least two distinct).
        """
        x = self._x(X, None)
        n, d = x.shape
        yt = self._labels(y, n).to(x.device)
        classes, yi = torch.unique(yt, sorted=True, return_inverse=True)
        c = classes.shape[0]
        if c < 2:
            raise ValidationError("MaxEntClassifier", "needs at least two classes",
                                  found=classes.tolist())
        w = torch.zeros(c, d, dtype=x.dtype, device=x.device, requires_grad=True)
        b = torch.zeros(c, dtype=x.dtype, device=x.device, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=self.max_iter, tolerance_grad=self.tol,
                                tolerance_change=0.0, history_size=20,
                                line_search_fn="strong_wolfe")
        evals = [0]

        def loss_fn() -> Tensor:
            scores = x @ w.T + b  # theta^T f(x, y) for every y
            log_z = logsumexp(scores, -1)  # Z(x) of (11.23)
            nll = (log_z - scores.gather(1, yi[:, None]).squeeze(1)).mean()
            return nll + 0.5 * self.l2 * (w * w).sum()

        def closure() -> float:
            with torch.enable_grad():
                loss = loss_fn()
                w.grad, b.grad = torch.autograd.grad(loss, [w, b])
            evals[0] += 1
            return float(loss.detach())

        opt.step(closure)  # type: ignore[no-untyped-call]
        with torch.enable_grad():
            gw, gb = torch.autograd.grad(loss_fn(), [w, b])
        g = max(float(gw.abs().max()), float(gb.abs().max()))
        self.classes_ = classes
        self.coef_ = w.detach().clone()
        self.intercept_ = b.detach().clone()
        self.converged_ = g < self.tol
        self.n_iter_ = evals[0]
        return self

    @staticmethod
    def _labels(y: Any, n: int) -> Tensor:
        """Integer labels of shape (n,) (floats, bools and strings refused)."""
        try:
            yt = torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError("MaxEntClassifier: y", "must be integer labels",
                                  found=type(y).__name__) from err
        if yt.is_floating_point() or yt.is_complex() or yt.dtype == torch.bool:
            raise DtypeMismatchError("MaxEntClassifier: y", "must be integer labels",
                                     found=yt.dtype, fix="map labels to integers first")
        if yt.shape != (n,):
            raise ShapeError("MaxEntClassifier: y", f"must be integer labels of shape ({n},)",
                             found=(tuple(yt.shape), yt.dtype))
        return yt

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValidationError("MaxEntClassifier", "is not fitted yet",
                                  fix="call fit(X, y) first")

    def decision_function(self, X: Any) -> Tensor:
        """``theta^T f(x, y)`` for every class, shape (N, C)."""
        self._check_fitted()
        x = self._x(X, self.coef_.shape[1]).to(self.coef_.dtype)
        return x @ self.coef_.T + self.intercept_

    def predict_log_proba(self, X: Any) -> Tensor:
        """``log p(y | x)`` (11.23), shape (N, C)."""
        s = self.decision_function(X)
        return s - logsumexp(s, -1, keepdim=True)

    def predict_proba(self, X: Any) -> Tensor:
        """``p(y | x)``, shape (N, C)."""
        return self.predict_log_proba(X).exp()

    def predict(self, X: Any) -> Tensor:
        """Most probable label per row, shape (N,)."""
        scores = self.decision_function(X)
        return self.classes_[scores.argmax(-1)]
