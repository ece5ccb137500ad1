"""Expectation-maximisation for discrete Bayesian networks with missing values and latent variables.

The observed-data log-likelihood ``L(theta) = sum_n w_n log sum_z p(x_obs^(n), z; theta)`` (11.39)
is maximised by EM (11.43-11.45):

* **E-step**: the expected family counts
  ``E[N_v](j, k) = sum_n w_n p(x_pa(v) = j, x_v = k | x_obs^(n); theta_t)``. All rows go through
  ONE batched junction-tree calibration: the tree is built with soft evidence on every variable
  observed in some row, and each row's observations enter as 0/1 likelihood vectors (all ones
  where the value is missing), so ``CalibratedTree.joint(family)`` is the (rows, *family cards)
  posterior of every family at once (every family lies in a clique of the moral graph), and
  ``CalibratedTree.log_evidence`` is ``log p(x_obs^(n))``. Identical rows are grouped first (their
  weights add up), so the calibration runs over distinct observation patterns only.
* **M-step**: every CPT row is its expected counts (plus pseudo-counts) normalised, as for complete
  data (11.44 is the fully observed problem with expected counts). A parent configuration with
  zero expected count (and no pseudo-count) does not enter the expected log-likelihood, so every
  row maximises it; the current row is kept.

With Dirichlet pseudo-counts ``alpha`` (MAP-EM) the M-step normalises ``E[N] + alpha``, which
maximises the expected log-likelihood plus ``sum alpha log theta``: the log-density of a
``Dirichlet(alpha + 1)`` prior up to a constant. EM then never decreases
``L(theta) + sum alpha log theta`` (the *objective*; equal to ``L`` without pseudo-counts), which
:class:`~pgm.learning.em_monitor.EMMonitor` checks at every iteration. With complete data one
iteration lands on :func:`~pgm.learning.parameters.fit_mle` (or, with a prior,
:func:`~pgm.learning.parameters.fit_bayesian` with the same pseudo-counts) from any start, except
that rows of parent configurations absent from the data keep their starting values.

Missing values are -1 in a LongTensor and ``None`` / NaN in a DataFrame; a variable of the
structure that is absent from the data (or missing in every row) is latent. EM assumes values are
missing at random; a latent variable is identified only up to a relabelling of its states, and a
symmetric start (``init="uniform"``) is a fixed point for it, so use ``init="random"``.

Examples
--------
>>> import torch
>>> from pgm.io import bundled_network
>>> from pgm.learning.bn_em import fit_em
>>> asia = bundled_network("asia")
>>> g = torch.Generator().manual_seed(0)
>>> x = asia.sample(2000, generator=g)
>>> x[torch.rand(x.shape, generator=g) < 0.3] = -1  # 30% missing at random
>>> res = fit_em(asia, x, generator=g, max_iter=200)
>>> res.converged, res.log_likelihood[-1] > res.log_likelihood[0]
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.inference.junction_tree import CalibratedTree, JunctionTree
from pgm.learning.counts import (
    NetworkStructure,
    StructureLike,
    as_structure,
    check_weights,
    encode_data,
)
from pgm.learning.em_monitor import EMMonitor
from pgm.learning.parameters import Prior, counts_to_model, dirichlet_pseudo_counts
from probforge.errors import ValidationError, ZeroProbabilityEvidence
from probforge.ops import check_generator
from probforge.validate import check_int, check_real

__all__ = [
    "EMResult",
    "expected_family_counts",
    "fit_em",
    "initial_model",
    "observed_log_likelihood",
]


class EMResult(NamedTuple):
    """What :func:`fit_em` returns.

    Attributes
    ----------
    model : BayesianNetwork
        The parameters after the last iteration (those of ``log_likelihood[-1]``).
    log_likelihood : list of float
        Observed-data log-likelihood ``sum_n w_n log p(x_obs^(n))`` of the initial parameters and
        after every iteration (``n_iter + 1`` values).
    converged : bool
        Whether the last improvement of the objective fell below ``tol`` per unit of row weight.
    n_iter : int
        Completed EM iterations.
    objective : list of float
        What EM maximises and the monitor checks: the log-likelihood plus
        ``sum alpha log theta`` with pseudo-counts, the log-likelihood itself without.
    """

    model: BayesianNetwork
    log_likelihood: list[float]
    converged: bool
    n_iter: int
    objective: list[float]


class _Patterns(NamedTuple):
    """Distinct observation patterns of the data: what every E-step needs."""

    rows: Tensor  # (M, V) state indices in model.variables order, -1 where unobserved
    weights: Tensor  # (M,) total row weight per pattern
    first: Tensor  # (M,) index of one data row with this pattern (for error messages)
    observed: tuple[str, ...]  # variables observed in some row
    soft: dict[str, Tensor]  # variable -> (M, card) 0/1 likelihoods (all ones where missing)


def _full_rows(st: NetworkStructure, x: Tensor, cols: Sequence[str]) -> Tensor:
    """(N, V) indices in ``st.variables`` order with -1 for variables absent from ``cols``."""
    col = {v: j for j, v in enumerate(cols)}
    full = torch.full((x.shape[0], len(st.variables)), -1, dtype=torch.long, device=x.device)
    for j, v in enumerate(st.variables):
        if v in col:
            full[:, j] = x[:, col[v]]
    return full


def _patterns(st: NetworkStructure, x: Tensor, cols: Sequence[str], weights: Tensor | None,
              dtype: torch.dtype) -> _Patterns:
    full = _full_rows(st, x, cols)
    if full.shape[0] == 0:
        raise ValidationError("data", "has no rows", fix="pass at least one data row")
    rows, inverse = torch.unique(full, dim=0, return_inverse=True)
    m = rows.shape[0]
    w = torch.ones(full.shape[0], dtype=dtype, device=full.device) if weights is None \
        else weights.to(device=full.device, dtype=dtype)
    wsum = torch.zeros(m, dtype=dtype, device=full.device).index_add_(0, inverse, w)
    order = torch.arange(full.shape[0], device=full.device)
    first = torch.full((m,), full.shape[0], dtype=torch.long, device=full.device)
    first = first.scatter_reduce(0, inverse, order, reduce="amin")
    keep = wsum > 0  # zero-weight rows change nothing (and must not raise on zero probability)
    if not bool(keep.any()):
        raise ValidationError("weights", "are zero for every data row, so there is nothing to "
                              "fit or score", fix="give some rows a positive weight")
    rows, wsum, first = rows[keep], wsum[keep], first[keep]
    observed = tuple(v for j, v in enumerate(st.variables) if bool((rows[:, j] >= 0).any()))
    if not observed:
        raise ValidationError("data", "observe no variable of the structure in any row",
                              fix="pass data with at least one observed value")
    soft: dict[str, Tensor] = {}
    for j, v in enumerate(st.variables):
        if v in observed:
            r = len(st.states[v])
            obs = rows[:, j]
            one_hot = torch.nn.functional.one_hot(obs.clamp_min(0), r).to(dtype)
            soft[v] = torch.where((obs < 0)[:, None], torch.ones_like(one_hot), one_hot)
    return _Patterns(rows, wsum, first, observed, soft)


def _calibrate(model: BayesianNetwork, pat: _Patterns, st: NetworkStructure) -> CalibratedTree:
    """One batched calibration over all patterns; re-raise zero-probability rows by data row."""
    jt = JunctionTree(model, soft_evidence_vars=pat.observed)
    # the same iteration order as the tree's own soft-evidence set (it lines the tables up so)
    soft = {v: pat.soft[v].to(model.device) for v in jt.soft_evidence_vars}
    try:
        return jt.calibrate(soft_evidence=soft)
    except ZeroProbabilityEvidence as err:
        raise ZeroProbabilityEvidence(
            f"data under model {model.name!r}",
            "some data rows have probability zero under the current parameters, so their "
            "posterior (and the log-likelihood) is undefined; " + _zero_rows(model, pat, st),
            fix="start from parameters that give every data row positive probability "
                "(init='random' or 'uniform', or a model without those zeros)",
        ) from err


def _zero_rows(model: BayesianNetwork, pat: _Patterns, st: NetworkStructure) -> str:
    """Describe the first complete row of probability zero, if one is complete."""
    complete = (pat.rows >= 0).all(1)
    if bool(complete.any()):
        lp = model.log_prob(pat.rows[complete].to(model.device))
        bad = torch.isneginf(lp)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            row = pat.rows[complete][i].tolist()
            names = {v: st.states[v][s] for v, s in zip(st.variables, row, strict=True)}
            return f"e.g. data row {int(pat.first[complete][i])}: {names}"
    return "they are rows with missing values (checked by exact marginalisation)"


def _e_step(model: BayesianNetwork, pat: _Patterns, st: NetworkStructure
            ) -> tuple[dict[str, Tensor], Tensor]:
    cal = _calibrate(model, pat, st)
    w = pat.weights.to(device=model.device, dtype=model.dtype)
    ll = (w * cal.log_evidence).sum()
    counts = {}
    for v, ps in st.parents.items():
        post = cal.joint((*ps, v))  # (M, *parent_cards, card)
        counts[v] = torch.tensordot(w, post, dims=1)
    return counts, ll


def observed_log_likelihood(
    model: BayesianNetwork,
    x: Tensor,
    columns: Sequence[str],
    weights: Tensor | None = None,
) -> Tensor:
    """``sum_n w_n log p(x_obs^(n))`` of encoded data with missing values, by one calibration.

    Parameters
    ----------
    model : BayesianNetwork
    x : LongTensor, shape (N, k)
        State indices, -1 where missing, columns named by ``columns`` (variables of ``model``;
        the others are summed out). Checked like :func:`~pgm.learning.counts.encode_data`.
    columns : str or sequence of str
        One string is one column.
    weights : Tensor, shape (N,), optional

    Returns
    -------
    Tensor, shape (), in the model's dtype

    Raises
    ------
    ZeroProbabilityEvidence
        If a row (with positive weight) has probability zero.

    Examples
    --------
    >>> import torch
    >>> from pgm.io import bundled_network
    >>> asia = bundled_network("asia")
    >>> x = torch.tensor([[0, -1], [1, 1]])  # columns smoke, dysp; -1: missing
    >>> round(float(observed_log_likelihood(asia, x, ["smoke", "dysp"])), 6)
    -1.770683
    """
    if not isinstance(model, BayesianNetwork):
        raise ValidationError("observed_log_likelihood", "needs a BayesianNetwork",
                              found=type(model).__name__)
    st = as_structure(model)
    if not isinstance(x, Tensor):
        raise ValidationError("observed_log_likelihood x", "must be a LongTensor of state "
                              "indices", found=type(x).__name__)
    x, cols = encode_data(model, x, variables=columns, allow_missing=True, allow_absent=True)
    weights = check_weights(weights, x.shape[0], x.device)
    pat = _patterns(st, x, cols, weights, model.dtype)
    cal = _calibrate(model, pat, st)
    w = pat.weights.to(device=model.device, dtype=model.dtype)
    return (w * cal.log_evidence).sum()


def expected_family_counts(
    model: BayesianNetwork,
    data: Any,
    *,
    weights: Tensor | None = None,
    variables: Sequence[str] | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """The E-step: expected family counts given the observed values, and the log-likelihood.

    Parameters
    ----------
    model : BayesianNetwork
        The current parameters.
    data : LongTensor of shape (N, k) or pandas.DataFrame
        With missing values (-1 / ``None`` / NaN) and absent (latent) variables allowed.
    weights : Tensor, shape (N,), optional
    variables : sequence of str, optional
        Column names of a tensor (default: ``model.variables``).

    Returns
    -------
    counts : dict str -> Tensor of shape (*parent_cards, card)
        ``sum_n w_n p(x_pa(v), x_v | x_obs^(n))``; each table sums to the total row weight.
    log_likelihood : Tensor, shape ()
        ``sum_n w_n log p(x_obs^(n))``.

    Examples
    --------
    >>> import torch
    >>> from pgm.io import bundled_network
    >>> asia = bundled_network("asia")
    >>> x = asia.sample(100, generator=torch.Generator().manual_seed(0))
    >>> counts, ll = expected_family_counts(asia, x[:, 1:], variables=asia.variables[1:])
    >>> float(counts["tub"].sum())  # 'asia' is latent here
    100.0
    """
    st = as_structure(model)
    x, cols = encode_data(model, data, variables=variables, allow_missing=True,
                          allow_absent=True)
    w = check_weights(weights, x.shape[0], x.device)
    return _e_step(model, _patterns(st, x, cols, w, model.dtype), st)


def _check_init_structure(init: BayesianNetwork, st: NetworkStructure) -> None:
    if set(init.variables) != set(st.variables):
        raise ValidationError("init", "must have the structure's variables",
                              found=f"{sorted(init.variables)} vs {sorted(st.variables)}")
    for v in st.variables:
        if tuple(init.parents[v]) != tuple(st.parents[v]):
            raise ValidationError(f"init: parents of {v!r}", "differ from the structure's",
                                  found=f"{init.parents[v]} vs {st.parents[v]}",
                                  fix="use a model with the same graph and parent order")
        if tuple(init.states[v]) != tuple(st.states[v]):
            raise ValidationError(f"init: states of {v!r}", "differ from the structure's",
                                  found=f"{init.states[v]} vs {st.states[v]}")


def initial_model(
    structure: StructureLike,
    init: BayesianNetwork | Literal["random", "uniform"] = "random",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    name: str = "",
) -> BayesianNetwork:
    """Starting parameters for EM.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
    init : BayesianNetwork, "random" or "uniform"
        A network with the same graph, parent order and states (its CPDs are used, cast to
        ``dtype``/``device``); ``"uniform"`` rows; or ``"random"`` rows drawn from a flat
        ``Dirichlet(1, ..., 1)`` with ``generator`` (the global RNG only if it is None).
    generator : torch.Generator, optional
    dtype, device
        Of the tables.
    name : str

    Returns
    -------
    BayesianNetwork

    Examples
    --------
    >>> import torch
    >>> from pgm.io import bundled_network
    >>> asia = bundled_network("asia")
    >>> a = initial_model(asia, "random", generator=torch.Generator().manual_seed(3))
    >>> b = initial_model(asia, "random", generator=torch.Generator().manual_seed(3))
    >>> bool(torch.equal(a.cpd("tub").probs, b.cpd("tub").probs))
    True
    """
    st = as_structure(structure)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValidationError("initial_model dtype", "must be a floating-point torch.dtype",
                              found=repr(dtype))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if isinstance(init, BayesianNetwork):
        _check_init_structure(init, st)
        return BayesianNetwork([init.cpd(v).to(device=dev, dtype=dtype) for v in st.variables],
                               name)
    if init not in ("random", "uniform"):
        raise ValidationError("init", "must be a BayesianNetwork, 'random' or 'uniform'",
                              found=repr(init))
    if init == "random":
        check_generator(generator, dev)
    cpds = []
    for v, ps in st.parents.items():
        fam = (*ps, v)
        shape = tuple(len(st.states[u]) for u in fam)
        if init == "uniform":
            log_p = torch.full(shape, -math.log(shape[-1]), dtype=torch.float64, device=dev)
        else:
            u = torch.rand(shape, generator=generator, dtype=torch.float64, device=dev)
            e = -torch.log(u.clamp_min(torch.finfo(torch.float64).tiny))  # Exp(1) draws
            log_p = torch.log(e) - torch.log(e.sum(-1, keepdim=True))
        cpds.append(TabularCPD(v, log_p.to(dtype), ps, {u_: st.states[u_] for u_ in fam},
                               log=True))
    return BayesianNetwork(cpds, name)


def _log_prior(model: BayesianNetwork, alpha: Mapping[str, Tensor] | None) -> Tensor:
    """``sum alpha log theta`` (0 where alpha is 0, even where theta is 0)."""
    total = torch.zeros((), dtype=model.dtype, device=model.device)
    if alpha is None:
        return total
    for v, a in alpha.items():
        lp = model.cpd(v).log_probs
        a = a.to(device=lp.device, dtype=lp.dtype)
        total = total + torch.where(a > 0, a * lp, torch.zeros_like(lp)).sum()
    return total


def fit_em(
    model_or_structure: StructureLike,
    data: Any,
    *,
    init: BayesianNetwork | Literal["random", "uniform"] = "random",
    prior: Prior | str | None = None,
    equivalent_sample_size: float | None = None,
    pseudo_counts: float | Mapping[str, float | Tensor] | None = None,
    weights: Tensor | None = None,
    variables: Sequence[str] | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
    name: str | None = None,
) -> EMResult:
    """Fit the CPTs of a discrete Bayesian network by EM from incomplete data.

    Parameters
    ----------
    model_or_structure : BayesianNetwork, NetworkStructure or (parents, states) pair
        The graph and state names (a network's CPD values are not used unless passed as ``init``).
    data : LongTensor of shape (N, k) or pandas.DataFrame
        State indices (-1 where missing) with columns named by ``variables``, or state names
        (``None`` / NaN where missing). Variables of the structure absent from the data are latent.
    init : BayesianNetwork, "random" or "uniform"
        Starting parameters, see :func:`initial_model`. ``"random"`` (default) draws with
        ``generator``; ``"uniform"`` is a fixed point for latent variables (their states stay
        interchangeable), so use it only when no variable is latent.
    prior : {"bdeu", "k2", "dirichlet"}, optional
        Dirichlet pseudo-counts ``alpha`` for MAP-EM (see
        :func:`~pgm.learning.parameters.dirichlet_pseudo_counts`); the M-step normalises
        ``E[N] + alpha``. Default: none (maximum likelihood).
    equivalent_sample_size, pseudo_counts
        For ``prior="bdeu"`` / ``prior="dirichlet"``.
    weights : Tensor, shape (N,), optional
        Non-negative row weights.
    variables : sequence of str, optional
        Column names of a tensor (default: all the structure's variables, topological order).
    max_iter : int
        Most EM iterations, an int >= 0 (0 scores the initial parameters only).
    tol : float
        Stop when the objective improves by less than ``tol`` (finite, >= 0) per unit of row
        weight (the monitor's threshold is ``tol * sum(weights)``).
    dtype : torch.dtype, optional
        Of the tables (default: ``init``'s dtype for a network, else the structure's dtype for a
        network, else float64).
    generator : torch.Generator, optional
        For ``init="random"``; nothing else is random.
    name : str, optional

    Returns
    -------
    EMResult
        ``(model, log_likelihood, converged, n_iter, objective)``.

    Raises
    ------
    ConvergenceError
        If the objective decreases (a bug; EM never decreases it, 11.45) or is not finite.
    ZeroProbabilityEvidence
        If a data row has probability zero under ``init``.
    ValidationError, UnknownVariableError, UnknownStateError, ShapeError
        Bad data or arguments.

    Examples
    --------
    >>> import torch
    >>> from pgm.io import bundled_network
    >>> asia = bundled_network("asia")
    >>> x = asia.sample(3000, generator=torch.Generator().manual_seed(0))
    >>> observed = [v for v in asia.variables if v != "either"]  # 'either' is latent
    >>> x_obs = x[:, [asia.variables.index(v) for v in observed]]
    >>> res = fit_em(asia, x_obs, variables=observed, max_iter=30,
    ...              generator=torch.Generator().manual_seed(1))
    >>> all(b >= a - 1e-9 for a, b in zip(res.objective, res.objective[1:]))
    True
    """
    st = as_structure(model_or_structure)
    max_iter = check_int(max_iter, "fit_em: max_iter", minimum=0)
    tol = check_real(tol, "fit_em: tol", minimum=0.0)
    if isinstance(init, BayesianNetwork):
        out_dtype = dtype if dtype is not None else init.dtype
    elif dtype is not None:
        out_dtype = dtype
    elif isinstance(model_or_structure, BayesianNetwork):
        out_dtype = model_or_structure.dtype
    else:
        out_dtype = torch.float64
    if not isinstance(out_dtype, torch.dtype) or not out_dtype.is_floating_point:
        raise ValidationError("dtype", "must be a floating-point dtype", found=out_dtype)
    x, cols = encode_data(model_or_structure, data, variables=variables, allow_missing=True,
                          allow_absent=True)
    w = check_weights(weights, x.shape[0], x.device)
    model_name = name if name is not None else (
        model_or_structure.name if isinstance(model_or_structure, BayesianNetwork) else "")
    alpha = None
    if prior is not None:
        alpha = dirichlet_pseudo_counts(st, prior, equivalent_sample_size=equivalent_sample_size,
                                        pseudo_counts=pseudo_counts, device=x.device)
    elif equivalent_sample_size is not None or pseudo_counts is not None:
        raise ValidationError("fit_em", "equivalent_sample_size / pseudo_counts need a prior",
                              fix="pass prior='bdeu' or prior='dirichlet'")
    pat = _patterns(st, x, cols, w, out_dtype)
    total_weight = float(pat.weights.sum())
    eps = torch.finfo(out_dtype).eps
    monitor = EMMonitor(tol=tol * total_weight, max_iter=max_iter, name="fit_em",
                        decrease_rtol=max(1e-9, 1e3 * eps) if out_dtype != torch.float64
                        else 1e-9)
    model = initial_model(st, init, generator=generator, dtype=out_dtype, device=x.device,
                          name=model_name)
    lls: list[float] = []
    counts, ll = _e_step(model, pat, st)
    lls.append(float(ll))
    done = monitor.update(ll + _log_prior(model, alpha))
    while not done:
        model = counts_to_model(st, st, counts, alpha, unseen="keep", previous=model,
                                dtype=out_dtype, name=model_name)
        counts, ll = _e_step(model, pat, st)
        lls.append(float(ll))
        done = monitor.update(ll + _log_prior(model, alpha))
    return EMResult(model, lls, monitor.converged, monitor.n_iter, list(monitor.history))
