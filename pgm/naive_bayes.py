"""Naive Bayes classifiers (textbook 11.13): categorical and Gaussian feature likelihoods.

The model is the Bayesian network ``y -> x_1, ..., x_M`` (Fig. 11.5): the features are
conditionally independent given the class, so

    p(y | x) ∝ p(y) prod_m p(x_m | y)                                           (11.13)

:class:`CategoricalNaiveBayes` gives every feature a categorical (multinomial-per-feature)
likelihood with Laplace / Dirichlet smoothing ``alpha``; :class:`GaussianNaiveBayes` a normal one
per class and feature, with ``var_smoothing`` as in scikit-learn. Both fit in closed form (counts
and moments, vectorised over classes and features), compute in log space and follow
scikit-learn's ``CategoricalNB`` / ``GaussianNB`` estimates exactly, so their probabilities agree
to rounding. :meth:`CategoricalNaiveBayes.to_bayesian_network` returns the fitted classifier as a
:class:`~pgm.bayesnet.BayesianNetwork`, whose exact posterior ``p(y | x)`` is ``predict_proba``.

Examples
--------
>>> import torch
>>> from pgm.naive_bayes import CategoricalNaiveBayes
>>> X = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0], [1, 1]])
>>> y = torch.tensor([0, 1, 1, 0, 1])
>>> nb = CategoricalNaiveBayes(alpha=1.0).fit(X, y)
>>> nb.predict(torch.tensor([[1, 1], [0, 0]]))
tensor([1, 0])
>>> nb.predict_proba(torch.tensor([[1, 1]]))
tensor([[0.1479, 0.8521]], dtype=torch.float64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from probforge.errors import (
    DtypeMismatchError,
    MemoryBudgetExceeded,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    UnknownStateError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import logsumexp
from probforge.validate import check_int, check_names, check_real

__all__ = ["MAX_TABLE_ENTRIES", "CategoricalNaiveBayes", "GaussianNaiveBayes"]

#: Largest (classes x features x categories) table :class:`CategoricalNaiveBayes` allocates
#: (2**27 entries, 1 GiB in float64): a stray huge category index must not exhaust memory.
MAX_TABLE_ENTRIES = 2**27


def _as_tensor(x: Any, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise ValidationError(what, "must be a tensor or an array-like of numbers",
                              found=type(x).__name__) from None


def _labels(y: Any, n: int, who: str) -> tuple[Tensor, Tensor]:
    """Sorted distinct labels and each row's class index."""
    t = _as_tensor(y, f"{who}: y")
    if t.dim() != 1 or t.shape[0] != n:
        raise ShapeError(f"{who}: y", f"must have shape ({n},), one label per row of X",
                         found=tuple(t.shape))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValidationError(f"{who}: y", "class labels must be integers", found=t.dtype,
                              fix="map labels to integers first (e.g. with torch.unique)")
    classes, index = torch.unique(t, sorted=True, return_inverse=True)
    return classes, index


def _check_prior(prior: Any, n_classes: int, who: str, dtype: torch.dtype,
                 device: torch.device) -> Tensor:
    if isinstance(prior, Tensor) and not prior.is_floating_point():
        raise DtypeMismatchError(f"{who}: class_prior", "must be a floating-point tensor",
                                 found=prior.dtype, fix="convert with .double()")
    try:
        p = torch.as_tensor(prior, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValidationError(f"{who}: class_prior", "must be a tensor or a sequence of "
                              "probabilities", found=type(prior).__name__) from err
    if p.shape != (n_classes,):
        raise ShapeError(f"{who}: class_prior", f"needs one probability per class ({n_classes})",
                         found=tuple(p.shape))
    if not bool(torch.isfinite(p).all()):
        raise NonFiniteError(f"{who}: class_prior", "probabilities must be finite",
                             found=p.tolist())
    if bool((p < 0).any()):
        raise ValidationError(f"{who}: class_prior", "probabilities must be >= 0",
                              found=p.tolist())
    if abs(float(p.sum()) - 1.0) > 1e-8:
        raise NormalisationError(f"{who}: class_prior", "must sum to one",
                                 found=float(p.sum()), fix="normalise it yourself")
    return torch.log(p)


class _NaiveBayesBase:
    """Shared prediction code: subclasses provide ``joint_log_likelihood``."""

    classes_: Tensor
    class_log_prior_: Tensor
    _name = "naive Bayes"

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise ValidationError(f"{self._name}", "is not fitted yet", fix="call fit(X, y) first")

    def joint_log_likelihood(self, X: Any) -> Tensor:
        """``log p(y) + sum_m log p(x_m | y)`` for every row and class, shape (N, C)."""
        raise NotImplementedError

    def predict_log_proba(self, X: Any) -> Tensor:
        """``log p(y | x)`` (11.13), shape (N, C), columns in the order of ``classes_``.

        Raises
        ------
        ZeroProbabilityEvidence
            If a row has probability zero under every class (possible only with
            ``alpha = 0``).
        """
        jll = self.joint_log_likelihood(X)
        norm = logsumexp(jll, -1, keepdim=True)
        bad = torch.isneginf(norm).reshape(-1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).reshape(-1)[:5].tolist()
            raise ZeroProbabilityEvidence(
                self._name, f"rows {rows} have probability zero under every class",
                fix="fit with alpha > 0 so unseen categories keep some probability",
            )
        return jll - norm

    def predict_proba(self, X: Any) -> Tensor:
        """``p(y | x)``, shape (N, C)."""
        return self.predict_log_proba(X).exp()

    def predict(self, X: Any) -> Tensor:
        """Most probable class label per row, shape (N,)."""
        jll = self.joint_log_likelihood(X)
        return self.classes_[jll.argmax(-1)]


class CategoricalNaiveBayes(_NaiveBayesBase):
    """Naive Bayes with a categorical likelihood per feature (scikit-learn's ``CategoricalNB``).

    ``p(x_m = k | y = c) = (N_cmk + alpha) / (N_c + alpha * K_m)`` where ``N_cmk`` counts the
    training rows of class ``c`` with feature ``m`` in category ``k``, ``N_c`` those of class
    ``c`` and ``K_m`` the number of categories of feature ``m``.

    Parameters
    ----------
    alpha : float, default 1.0
        Dirichlet (additive) smoothing, a finite number >= 0; 1 is Laplace smoothing, 0 the
        MLE (unseen categories get probability zero, ``-inf`` in log space).
    fit_prior : bool, default True
        Learn ``p(y)`` from class frequencies; False uses a uniform prior.
    class_prior : Tensor of shape (C,), optional
        Fixed class prior (overrides ``fit_prior``); finite, non-negative, summing to one.
    n_categories : int or sequence of int, optional
        Minimum number of categories per feature (scikit-learn's ``min_categories``), ints
        >= 1; by default ``max(X[:, m]) + 1`` from the training data.
    dtype : torch.dtype, default float64
        Floating dtype of the fitted log-probabilities.

    ``X`` holds category indices (0, 1, ...): an integer tensor, or a floating one whose
    entries are whole numbers (read exactly as those integers). At least one row and one
    feature are needed to fit; predicting on zero rows gives a (0, C) result. A category index
    so large that the (classes x features x categories) table would exceed
    :data:`MAX_TABLE_ENTRIES` entries raises :class:`~probforge.errors.MemoryBudgetExceeded`.

    Attributes
    ----------
    classes_ : Tensor (C,)
        Sorted class labels.
    class_count_ : Tensor (C,)
    class_log_prior_ : Tensor (C,)
    n_categories_ : LongTensor (M,)
    category_count_ : list of Tensor (C, K_m)
    feature_log_prob_ : list of Tensor (C, K_m)
        ``log p(x_m = k | y = c)``.

    Examples
    --------
    >>> import torch
    >>> nb = CategoricalNaiveBayes().fit(torch.tensor([[0], [1], [1]]), torch.tensor([0, 1, 1]))
    >>> nb.feature_log_prob_[0].exp()
    tensor([[0.6667, 0.3333],
            [0.2500, 0.7500]], dtype=torch.float64)
    """

    _name = "CategoricalNaiveBayes"

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        fit_prior: bool = True,
        class_prior: Tensor | Sequence[float] | None = None,
        n_categories: int | Sequence[int] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        try:
            self.alpha = check_real(alpha, f"{self._name}: alpha", minimum=0.0)
        except ValidationError as err:
            raise ValidationError(self._name, "alpha must be a finite number >= 0",
                                  found=repr(alpha)) from err
        if not isinstance(fit_prior, bool):
            raise ValidationError(f"{self._name}: fit_prior", "must be a bool",
                                  found=repr(fit_prior))
        if n_categories is not None:
            many = isinstance(n_categories, Sequence) or (
                isinstance(n_categories, Tensor) and n_categories.dim() > 0)
            items: list[Any] = list(cast(Sequence[Any], n_categories)) if many \
                else [n_categories]
            for k in items:
                check_int(k, f"{self._name}: n_categories", minimum=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValidationError(f"{self._name}: dtype", "must be a floating-point torch.dtype",
                                  found=repr(dtype))
        self.fit_prior = fit_prior
        self.class_prior = class_prior
        self.n_categories = n_categories
        self.dtype = dtype

    def _check_x(self, X: Any, n_features: int | None) -> Tensor:
        x = _as_tensor(X, f"{self._name}: X")
        if x.dim() != 2:
            raise ShapeError(f"{self._name}: X", "must have shape (N, M)", found=tuple(x.shape))
        if x.is_floating_point():
            if bool((x != x.round()).any()) or not bool(torch.isfinite(x).all()):
                raise ValidationError(f"{self._name}: X", "categories must be integer indices",
                                      found=x.dtype)
            x = x.long()
        if x.is_complex() or x.dtype == torch.bool:
            raise ValidationError(f"{self._name}: X", "categories must be integer indices",
                                  found=x.dtype)
        if n_features is not None and x.shape[1] != n_features:
            raise ShapeError(f"{self._name}: X", f"was fitted with {n_features} features",
                             found=x.shape[1])
        if bool((x < 0).any()):
            raise UnknownStateError(f"{self._name}: X", "category indices must be >= 0",
                                    found=int(x.min()))
        return x.long()

    def fit(self, X: Any, y: Any) -> CategoricalNaiveBayes:
        """Count classes and categories; returns ``self``.

        Parameters
        ----------
        X : LongTensor (N, M)
            Category index of every feature (0, 1, ...).
        y : LongTensor (N,)
            Integer class labels.
        """
        x = self._check_x(X, None)
        n, m = x.shape
        if n == 0:
            raise ValidationError(self._name, "needs at least one training row", found=n)
        if m == 0:
            raise ShapeError(f"{self._name}: X", "needs at least one feature column",
                             found=tuple(x.shape))
        classes, yi = _labels(y, n, self._name)
        c = classes.shape[0]
        dt, dev = self.dtype, x.device
        k_data = x.amax(0) + 1
        if self.n_categories is None:
            k_min = torch.zeros_like(k_data)
        else:
            k_min = torch.as_tensor(self.n_categories, dtype=torch.long, device=x.device)
            k_min = k_min.expand(m) if k_min.dim() == 0 else k_min
            if k_min.shape != (m,):
                raise ShapeError(f"{self._name}: n_categories", f"needs one entry per feature "
                                 f"({m})", found=tuple(k_min.shape))
        k = torch.maximum(k_data, k_min)
        k_max = int(k.max())
        if c * m * k_max > MAX_TABLE_ENTRIES:  # before bincount allocates it
            raise MemoryBudgetExceeded(
                f"{self._name}: X", f"the count table would have {c} classes x {m} features x "
                f"{k_max} categories = {c * m * k_max:,} entries, over {MAX_TABLE_ENTRIES:,}",
                found=f"largest category index {k_max - 1}",
                fix="re-code the categories as 0, 1, ... (e.g. with torch.unique)")
        # counts[c, m, k] by one scatter over (class, feature, category)
        flat = (yi[:, None] * m + torch.arange(m, device=x.device)) * k_max + x
        counts = torch.bincount(flat.reshape(-1), minlength=c * m * k_max)
        counts = counts.reshape(c, m, k_max).to(dt)
        class_count = torch.bincount(yi, minlength=c).to(dt)
        denom = class_count[:, None] + self.alpha * k.to(dt)
        log_p = torch.log(counts + self.alpha) - torch.log(denom)[:, :, None]
        if self.class_prior is not None:
            prior = _check_prior(self.class_prior, c, self._name, self.dtype, x.device)
        elif self.fit_prior:
            prior = torch.log(class_count) - math.log(n)
        else:
            prior = torch.full((c,), -math.log(c), dtype=dt, device=dev)
        self.classes_ = classes
        self.class_count_ = class_count
        self.class_log_prior_ = prior
        self.n_categories_ = k
        self.category_count_ = [counts[:, j, : int(k[j])] for j in range(m)]
        self.feature_log_prob_ = [log_p[:, j, : int(k[j])] for j in range(m)]
        self._log_p_padded = log_p  # (C, M, K_max), padded entries never indexed
        return self

    def joint_log_likelihood(self, X: Any) -> Tensor:
        """``log p(y = c) + sum_m log p(x_m | y = c)``, shape (N, C).

        Raises
        ------
        UnknownStateError
            If a category index is beyond those seen in training (or ``n_categories``).
        """
        self._check_fitted()
        x = self._check_x(X, self.n_categories_.shape[0])
        over = x >= self.n_categories_.to(x.device)
        if bool(over.any()):
            row, col = (int(i) for i in torch.nonzero(over)[0])
            raise UnknownStateError(
                f"{self._name}: X[{row}, {col}]",
                f"category index beyond the {int(self.n_categories_[col])} categories of "
                f"feature {col} known from training", found=int(x[row, col]),
                fix="pass n_categories=... when fitting to reserve categories",
            )
        m = x.shape[1]
        # log_p[c, m, x[n, m]] -> (N, C, M), summed over features
        gathered = self._log_p_padded[:, torch.arange(m, device=x.device), x]  # (C, N, M)
        return (self.class_log_prior_[:, None] + gathered.sum(-1)).T

    def to_bayesian_network(
        self,
        class_name: str = "y",
        feature_names: Sequence[str] | None = None,
    ) -> BayesianNetwork:
        """The fitted classifier as the Bayesian network ``y -> x_1..x_M`` (Fig. 11.5).

        Parameters
        ----------
        class_name : str
            Name of the class node; its states are the class labels as strings.
        feature_names : str or sequence of str, optional
            Feature node names (default ``x0, x1, ...``; one string is one name); states
            ``"0", "1", ...``.

        Returns
        -------
        BayesianNetwork
            Exact inference on it gives ``p(y | x) = predict_proba(x)``.

        Examples
        --------
        >>> import torch
        >>> from pgm.inference import VariableElimination
        >>> X = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]])
        >>> nb = CategoricalNaiveBayes().fit(X, torch.tensor([0, 1, 1, 0]))
        >>> bn = nb.to_bayesian_network()
        >>> VariableElimination(bn).query(["y"], {"x0": 1, "x1": 1}).probs()
        tensor([0.2500, 0.7500], dtype=torch.float64)
        """
        self._check_fitted()
        m = int(self.n_categories_.shape[0])
        if not isinstance(class_name, str):
            raise ValidationError(f"{self._name}.to_bayesian_network", "class_name must be a str",
                                  found=repr(class_name))
        names = (check_names(feature_names, f"{self._name}.to_bayesian_network feature_names")
                 if feature_names is not None else [f"x{j}" for j in range(m)])
        if len(names) != m or len(set(names)) != m or class_name in names:
            raise ValidationError(f"{self._name}.to_bayesian_network",
                                  f"needs {m} distinct feature names, none equal to the class "
                                  "name", found=names)
        y_states = [str(int(c)) for c in self.classes_]
        cpds = [TabularCPD(class_name, self.class_log_prior_, states={class_name: y_states},
                           log=True)]
        for j, name in enumerate(names):
            k = int(self.n_categories_[j])
            cpds.append(TabularCPD(
                name, self.feature_log_prob_[j], parents=[class_name],
                states={name: [str(i) for i in range(k)], class_name: y_states}, log=True,
            ))
        return BayesianNetwork(cpds, name="naive_bayes")


class GaussianNaiveBayes(_NaiveBayesBase):
    """Naive Bayes with a normal likelihood per class and feature (scikit-learn's ``GaussianNB``).

    ``p(x_m | y = c) = N(x_m; mu_cm, sigma2_cm)`` with the per-class mean and (biased) variance
    of the training rows, plus ``epsilon = var_smoothing * max_m Var(x_m)`` added to every
    variance for stability.

    Parameters
    ----------
    var_smoothing : float, default 1e-9
        Fraction (finite, >= 0) of the largest feature variance added to all variances.
    class_prior : Tensor of shape (C,), optional
        Fixed class prior (scikit-learn's ``priors``); by default the class frequencies.

    ``X`` is a floating-point tensor (an integer tensor is refused, not cast; array-likes of
    numbers are converted to float64), finite, with at least one row and one feature to fit.
    Predicting on zero rows gives a (0, C) result.

    Attributes
    ----------
    classes_ : Tensor (C,)
    class_count_ : Tensor (C,)
    class_log_prior_ : Tensor (C,)
    theta_ : Tensor (C, M)
        Per-class feature means.
    var_ : Tensor (C, M)
        Per-class feature variances (smoothed).
    epsilon_ : Tensor ()
        The amount added to the variances.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[0.0], [0.2], [1.0], [1.4]], dtype=torch.float64)
    >>> nb = GaussianNaiveBayes().fit(X, torch.tensor([0, 0, 1, 1]))
    >>> nb.theta_.reshape(-1), nb.predict(torch.tensor([[0.1], [1.3]], dtype=torch.float64))
    (tensor([0.1000, 1.2000], dtype=torch.float64), tensor([0, 1]))
    """

    _name = "GaussianNaiveBayes"

    def __init__(
        self,
        *,
        var_smoothing: float = 1e-9,
        class_prior: Tensor | Sequence[float] | None = None,
    ) -> None:
        try:
            self.var_smoothing = check_real(var_smoothing, f"{self._name}: var_smoothing",
                                            minimum=0.0)
        except ValidationError as err:
            raise ValidationError(self._name, "var_smoothing must be a finite number >= 0",
                                  found=repr(var_smoothing)) from err
        self.class_prior = class_prior

    def _check_x(self, X: Any, n_features: int | None) -> Tensor:
        if isinstance(X, Tensor) and not X.is_floating_point():
            raise DtypeMismatchError(f"{self._name}: X", "must be a floating-point tensor",
                                     found=X.dtype, fix="convert with .double()")
        x = _as_tensor(X, f"{self._name}: X")
        if x.dim() != 2:
            raise ShapeError(f"{self._name}: X", "must have shape (N, M)", found=tuple(x.shape))
        if x.is_complex() or x.dtype == torch.bool:
            raise ValidationError(f"{self._name}: X", "must hold real numbers", found=x.dtype)
        if not x.is_floating_point():
            x = x.to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteError(f"{self._name}: X", "contains NaN or inf",
                                 fix="impute or drop those rows")
        if n_features is not None and x.shape[1] != n_features:
            raise ShapeError(f"{self._name}: X", f"was fitted with {n_features} features",
                             found=x.shape[1])
        return x

    def fit(self, X: Any, y: Any) -> GaussianNaiveBayes:
        """Per-class means and variances; returns ``self``.

        Parameters
        ----------
        X : Tensor (N, M), floating point
        y : LongTensor (N,)
            Integer class labels.

        Raises
        ------
        ValidationError
            If a variance is zero (a constant feature within a class) and ``var_smoothing`` adds
            nothing to it.
        """
        x = self._check_x(X, None)
        n = x.shape[0]
        if n == 0:
            raise ValidationError(self._name, "needs at least one training row", found=n)
        if x.shape[1] == 0:
            raise ShapeError(f"{self._name}: X", "needs at least one feature column",
                             found=tuple(x.shape))
        classes, yi = _labels(y, n, self._name)
        c = classes.shape[0]
        onehot = torch.nn.functional.one_hot(yi, c).to(x.dtype)  # (N, C)
        count = onehot.sum(0)
        theta = (onehot.T @ x) / count[:, None]
        centred = x - theta[yi]
        var = (onehot.T @ (centred * centred)) / count[:, None]
        total_mean = x.mean(0)
        epsilon = self.var_smoothing * ((x - total_mean) ** 2).mean(0).max()
        var = var + epsilon
        if not (bool(torch.isfinite(var).all()) and bool(torch.isfinite(theta).all())):
            raise NonFiniteError(
                f"{self._name}: X", f"values up to {float(x.abs().max()):.3g} are too large for "
                f"{x.dtype}: the class means or variances overflow",
                fix="standardise the features (subtract the mean, divide by the scale)")
        if bool((var <= 0).any()):
            cls, feat = (int(i) for i in torch.nonzero(var <= 0)[0])
            raise ValidationError(
                f"{self._name}", f"feature {feat} is constant within class "
                f"{int(classes[cls])}, so its variance is zero", found=0.0,
                fix="use var_smoothing > 0 (and a feature that is not constant overall)",
            )
        if self.class_prior is not None:
            prior = _check_prior(self.class_prior, c, self._name, x.dtype, x.device)
        else:
            prior = torch.log(count) - math.log(n)
        self.classes_ = classes
        self.class_count_ = count
        self.class_log_prior_ = prior
        self.theta_ = theta
        self.var_ = var
        self.epsilon_ = epsilon
        return self

    def joint_log_likelihood(self, X: Any) -> Tensor:
        """``log p(y = c) + sum_m log N(x_m; theta_cm, var_cm)``, shape (N, C)."""
        self._check_fitted()
        x = self._check_x(X, self.theta_.shape[1]).to(self.theta_.dtype)
        log_norm = -0.5 * torch.log(2.0 * math.pi * self.var_).sum(-1)  # (C,)
        diff = x[:, None, :] - self.theta_[None, :, :]  # (N, C, M)
        quad = -0.5 * (diff * diff / self.var_).sum(-1)
        return self.class_log_prior_ + log_norm + quad
