"""Parameter learning for discrete Bayesian networks from complete data, and structure scores.

* :func:`fit_mle` -- maximum likelihood (textbook 11.29): the log-likelihood decouples over
  families, and each CPT row is its family counts normalised,
  ``theta[v][j, k] = N[v][j, k] / sum_k' N[v][j, k']``. A parent configuration ``j`` that never
  occurs in the data has no maximum-likelihood estimate (every row maximises the likelihood);
  :func:`fit_mle` raises :class:`UnseenParentConfigurationError` naming the variable and the
  configurations, unless ``unseen="uniform"`` is passed explicitly to put the uniform row there
  (what pgmpy's ``MaximumLikelihoodEstimator`` does silently).
* :func:`fit_bayesian` -- posterior mean under a Dirichlet prior on every CPT row,
  ``theta[v][j, k] = (N[v][j, k] + alpha[v][j, k]) / sum_k' (N[v][j, k'] + alpha[v][j, k'])``, with
  ``alpha = ESS / (q_v r_v)`` in every cell (BDeu, ``q_v`` parent configurations, ``r_v`` states),
  ``alpha = 1`` (K2), or user pseudo-counts (``"dirichlet"``). Same numbers as pgmpy's
  ``BayesianEstimator``.
* :func:`log_likelihood` -- ``sum_n w_n log p(x^(n))`` of a fitted model, marginalising missing
  values and absent (latent) variables exactly when the data have them.
* :func:`structure_score` -- log-likelihood, BIC, AIC, BDeu or K2 score of a structure on complete
  data (higher is better; decomposable, equal to pgmpy's scores).

Every function takes a *structure*: a :class:`~pgm.bayesnet.BayesianNetwork` (its CPD values are
ignored) or a :class:`~pgm.learning.counts.NetworkStructure` ``(parents, states)``; and data as a
LongTensor (N, k) of state indices or a pandas DataFrame of state names (see
:func:`pgm.learning.counts.encode_data`).

Examples
--------
>>> import torch
>>> from pgm.io import bundled_network
>>> from pgm.learning.parameters import fit_bayesian, fit_mle
>>> asia = bundled_network("asia")
>>> x = asia.sample(20000, generator=torch.Generator().manual_seed(0))
>>> mle = fit_mle(asia, x)
>>> round(float(mle.cpd("smoke").probs[0]), 2)  # p(smoke = yes), 0.5 in the network
0.5
>>> bdeu = fit_bayesian(asia, x, prior="bdeu", equivalent_sample_size=5)
>>> bdeu.num_free_parameters == asia.num_free_parameters
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD
from pgm.learning.counts import (
    NetworkStructure,
    StructureLike,
    as_structure,
    check_weights,
    counts_from_indices,
    encode_data,
)
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
)
from probforge.validate import check_real

__all__ = [
    "NetworkStructure",
    "UnseenParentConfigurationError",
    "counts_to_model",
    "dirichlet_pseudo_counts",
    "fit_bayesian",
    "fit_mle",
    "log_likelihood",
    "model_from_counts",
    "structure_score",
]

Prior = Literal["bdeu", "k2", "dirichlet"]
Score = Literal["loglik", "bic", "aic", "bdeu", "k2"]

#: How many unseen configurations an error message spells out (the attribute keeps them all).
_MAX_LISTED = 5


class UnseenParentConfigurationError(ValidationError):
    """A parent configuration has no data (zero total count), so its CPT row has no estimate.

    Attributes
    ----------
    unseen : dict str -> list of dict
        ``variable -> [{parent: state name, ...}, ...]``, every unseen configuration.
    """

    def __init__(self, unseen: dict[str, list[dict[str, str]]]) -> None:
        self.unseen = unseen
        listed: list[str] = []
        for v, configs in unseen.items():
            for cfg in configs:
                if len(listed) < _MAX_LISTED:
                    listed.append(f"{v!r} given {cfg}")
        total = sum(len(c) for c in unseen.values())
        more = f" and {total - len(listed)} more" if total > len(listed) else ""
        super().__init__(
            f"variable(s) {list(unseen)}",
            "a parent configuration never occurs in the data, so its CPT row has no maximum-"
            f"likelihood estimate: {'; '.join(listed)}{more}",
            fix="pass unseen='uniform' to put the uniform row there, use fit_bayesian (a "
                "Dirichlet prior), or collect data covering these configurations",
        )


def _out_dtype(structure: Any, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        if not dtype.is_floating_point:
            raise ValidationError("dtype", "must be a floating-point dtype", found=dtype)
        return dtype
    return structure.dtype if isinstance(structure, BayesianNetwork) else torch.float64


def _name(structure: Any, name: str | None) -> str:
    if name is not None:
        return name
    return structure.name if isinstance(structure, BayesianNetwork) else ""


def model_from_counts(
    structure: StructureLike,
    counts: Mapping[str, Tensor],
    pseudo_counts: Mapping[str, Tensor] | None = None,
    *,
    unseen: Literal["error", "uniform", "keep"] = "error",
    previous: BayesianNetwork | None = None,
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> BayesianNetwork:
    """The network whose CPT rows are the normalised (counts + pseudo-counts).

    ``theta[v] = (N[v] + alpha[v]) / sum_k (N[v] + alpha[v])``, stored as its logarithm.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
    counts : mapping str -> Tensor of shape (*parent_cards, card)
        Observed or expected family counts (finite, non-negative; integer or floating tensors),
        one table per variable.
    pseudo_counts : mapping str -> Tensor broadcastable to (*parent_cards, card), optional
        Finite, non-negative Dirichlet pseudo-counts added to the counts, one per variable.
    unseen : {"error", "uniform", "keep"}
        What to do with a row whose total (counts + pseudo-counts) is zero: raise
        :class:`UnseenParentConfigurationError`, use the uniform row, or keep the row of
        ``previous`` (the EM M-step: such a row does not enter the expected log-likelihood, so any
        value maximises it, and keeping the old one is a valid maximiser).
    previous : BayesianNetwork, optional
        Needed for ``unseen="keep"``.
    dtype : torch.dtype, optional
        dtype of the tables (default: the structure's dtype for a network, else float64).
    name : str, optional
        Network name (default: the structure's name for a network, else "").

    Returns
    -------
    BayesianNetwork

    Examples
    --------
    >>> s = NetworkStructure({"a": ()}, {"a": ("x", "y")})
    >>> model_from_counts(s, {"a": torch.tensor([3.0, 1.0])}).cpd("a").probs
    tensor([0.7500, 0.2500], dtype=torch.float64)
    """
    st = as_structure(structure)
    for what, table in (("counts", counts), ("pseudo_counts", pseudo_counts)):
        if table is None and what == "pseudo_counts":
            continue
        if not isinstance(table, Mapping):
            raise ValidationError(what, "must be a mapping variable -> tensor",
                                  found=type(table).__name__)
        for v in st.variables:
            if v not in table:
                raise UnknownVariableError(what, f"have no table for variable {v!r}")
            t = table[v]
            if not isinstance(t, Tensor) or t.is_complex() or t.dtype == torch.bool:
                raise ValidationError(f"{what} of {v!r}", "must be a real-valued tensor",
                                      found=t.dtype if isinstance(t, Tensor)
                                      else type(t).__name__)
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise NonFiniteError(f"{what} of {v!r}", "must be finite")
            if bool((t < 0).any()):
                raise ValidationError(f"{what} of {v!r}", "must be >= 0", found=float(t.min()))
    return counts_to_model(st, structure, counts, pseudo_counts, unseen=unseen,
                              previous=previous, dtype=dtype, name=name)


def counts_to_model(
    st: NetworkStructure,
    structure: StructureLike,
    counts: Mapping[str, Tensor],
    pseudo_counts: Mapping[str, Tensor] | None = None,
    *,
    unseen: Literal["error", "uniform", "keep"] = "error",
    previous: BayesianNetwork | None = None,
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> BayesianNetwork:
    """:func:`model_from_counts` without checking the counts: for counts this package
    computed itself (the M-steps of :func:`fit_mle`, :func:`fit_bayesian` and EM), which are
    finite and non-negative by construction; its per-iteration checks would be wasted syncs."""
    out_dtype = _out_dtype(structure, dtype)
    if unseen not in ("error", "uniform", "keep"):
        raise ValidationError("unseen", "must be 'error', 'uniform' or 'keep'", found=repr(unseen))
    if unseen == "keep" and previous is None:
        raise ValidationError("unseen='keep'", "needs the previous model", fix="pass previous=")
    cpds = []
    missing: dict[str, list[dict[str, str]]] = {}
    for v, ps in st.parents.items():
        fam = (*ps, v)
        shape = tuple(len(st.states[u]) for u in fam)
        if v not in counts:
            raise UnknownVariableError("counts", f"have no table for variable {v!r}")
        n = counts[v]
        if tuple(n.shape) != shape:
            raise ShapeError(f"counts of {v!r}", f"must have shape {shape} (parents {list(ps)} "
                             "then the child)", found=tuple(n.shape))
        n = n.to(torch.float64)
        if pseudo_counts is not None:
            try:
                n = n + pseudo_counts[v].to(device=n.device, dtype=torch.float64)
            except RuntimeError as err:
                raise ShapeError(f"pseudo_counts of {v!r}", f"must broadcast to {shape}",
                                 found=tuple(pseudo_counts[v].shape)) from err
            if tuple(n.shape) != shape:
                raise ShapeError(f"pseudo_counts of {v!r}", f"must broadcast to {shape}",
                                 found=tuple(pseudo_counts[v].shape))
        total = n.sum(-1, keepdim=True)
        empty = total[..., 0] <= 0
        log_p = torch.log(n / total)  # divide first: exp(log_p) is then n / total to 1 ulp
        if bool(empty.any()):
            if unseen == "error":
                missing[v] = [dict(zip(ps, (st.states[p][i] for p, i in zip(ps, idx, strict=True)),
                                       strict=True))
                              for idx in torch.nonzero(empty).tolist()]
                continue
            if unseen == "uniform":
                fill = torch.full_like(log_p, -math.log(shape[-1]))
            else:
                assert previous is not None
                fill = previous.cpd(v).log_probs.to(device=n.device, dtype=torch.float64)
            log_p = torch.where(empty[..., None], fill, log_p)
        cpds.append(TabularCPD(v, log_p.to(out_dtype), ps, {u: st.states[u] for u in fam},
                               log=True))
    if missing:
        raise UnseenParentConfigurationError(missing)
    return BayesianNetwork(cpds, _name(structure, name))


def fit_mle(
    structure: StructureLike,
    data: Any,
    *,
    weights: Tensor | None = None,
    variables: Sequence[str] | None = None,
    unseen: Literal["error", "uniform"] = "error",
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> BayesianNetwork:
    """Maximum-likelihood CPTs from complete data (textbook 11.29): normalised family counts.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
        The graph and state names (a network's CPD values are ignored).
    data : LongTensor of shape (N, k) or pandas.DataFrame
        Complete data: state indices with columns named by ``variables``, or state names.
    weights : Tensor, shape (N,), optional
        Non-negative row weights.
    variables : sequence of str, optional
        Column names of a tensor (default: the structure's variables in topological order).
    unseen : {"error", "uniform"}
        A parent configuration absent from the data has no MLE. ``"error"`` (default) raises
        :class:`UnseenParentConfigurationError` listing the variable and the configurations;
        ``"uniform"`` puts the uniform distribution in those rows (pgmpy's behaviour), which is a
        choice, not an estimate.
    dtype : torch.dtype, optional
        dtype of the tables (default: the structure's for a network, else float64).
    name : str, optional

    Returns
    -------
    BayesianNetwork
        Same graph, parent order and state names as the structure; on the data's device.

    Raises
    ------
    UnseenParentConfigurationError
        With ``unseen="error"``, for parent configurations that never occur (with zero data
        rows, every configuration: then ``unseen="uniform"`` gives the uniform network).
    ValidationError, ShapeError, UnknownVariableError, UnknownStateError
        Bad data, see :func:`pgm.learning.counts.encode_data`.

    Examples
    --------
    >>> import pandas as pd
    >>> s = NetworkStructure({"wet": ("rain",)}, {"rain": ("no", "yes"), "wet": ("no", "yes")})
    >>> df = pd.DataFrame({"rain": ["no", "no", "yes", "no"], "wet": ["no", "yes", "yes", "no"]})
    >>> fit_mle(s, df).cpd("wet").probs.tolist()
    [[0.6666666666666666, 0.3333333333333333], [0.0, 1.0]]
    >>> fit_mle(s, df.iloc[:2]).cpd("wet")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    pgm.learning.parameters.UnseenParentConfigurationError: ... 'wet' given {'rain': 'yes'} ...
    """
    if unseen not in ("error", "uniform"):
        raise ValidationError("unseen", "must be 'error' or 'uniform'", found=repr(unseen))
    st = as_structure(structure)
    x, cols = encode_data(structure, data, variables=variables)
    w = check_weights(weights, x.shape[0], x.device)
    counts = counts_from_indices(st, x, cols, w)
    return counts_to_model(st, structure, counts, unseen=unseen, dtype=dtype, name=name)


def dirichlet_pseudo_counts(
    structure: StructureLike,
    prior: Prior | str = "bdeu",
    *,
    equivalent_sample_size: float | None = None,
    pseudo_counts: float | Mapping[str, float | Tensor] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Dirichlet pseudo-counts ``alpha[v]`` of shape (*parent_cards, card) for every variable.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
    prior : {"bdeu", "k2", "dirichlet"} (case-insensitive)
        ``"bdeu"``: ``alpha = ESS / (q_v r_v)`` in every cell (``q_v`` parent configurations,
        ``r_v`` states); ``"k2"``: ``alpha = 1``; ``"dirichlet"``: ``pseudo_counts``.
    equivalent_sample_size : float, optional
        BDeu only; default 5 (pgmpy's ``BayesianEstimator`` default). Must be > 0.
    pseudo_counts : float or mapping str -> float or Tensor, optional
        ``"dirichlet"`` only, and required there: one non-negative number for every cell, or per
        variable a number or a tensor broadcastable to (*parent_cards, card).
    device : torch.device, optional

    Returns
    -------
    dict str -> float64 Tensor of shape (*parent_cards, card)

    Examples
    --------
    >>> s = NetworkStructure({"b": ("a",)}, {"a": ("0", "1"), "b": ("0", "1", "2")})
    >>> dirichlet_pseudo_counts(s, "bdeu", equivalent_sample_size=12)["b"]
    tensor([[2., 2., 2.],
            [2., 2., 2.]], dtype=torch.float64)
    """
    st = as_structure(structure)
    kind = prior.lower() if isinstance(prior, str) else prior
    if not isinstance(kind, str) or kind not in ("bdeu", "k2", "dirichlet"):
        raise ValidationError("prior", "must be 'bdeu', 'k2' or 'dirichlet'", found=repr(prior))
    if kind != "bdeu" and equivalent_sample_size is not None:
        raise ValidationError("equivalent_sample_size", f"applies to the BDeu prior only, not "
                              f"{prior!r}", fix="drop it, or use prior='bdeu'")
    if kind != "dirichlet" and pseudo_counts is not None:
        raise ValidationError("pseudo_counts", f"apply to prior='dirichlet' only, not {prior!r}",
                              fix="drop them, or use prior='dirichlet'")
    ess = 5.0 if equivalent_sample_size is None else equivalent_sample_size
    if kind == "bdeu":
        try:
            ess = check_real(ess, "equivalent_sample_size", minimum=0.0, strict_minimum=True)
        except ValidationError as err:  # NaN / inf too: one message for every bad value
            raise ValidationError("equivalent_sample_size", "must be a finite number > 0",
                                  found=repr(ess)) from err
    if kind == "dirichlet" and pseudo_counts is None:
        raise ValidationError("prior='dirichlet'", "needs pseudo_counts",
                              fix="pass a number or a mapping variable -> pseudo-counts")
    if isinstance(pseudo_counts, Mapping):
        absent = [v for v in st.variables if v not in pseudo_counts]
        extra = [v for v in pseudo_counts if v not in st.states]
        if extra:
            raise UnknownVariableError("pseudo_counts", f"name unknown variables {extra}")
        if absent:
            raise ValidationError("pseudo_counts", f"give no pseudo-counts for {absent}",
                                  fix="give every variable a number or a table (0 for none)")
    out: dict[str, Tensor] = {}
    for v, ps in st.parents.items():
        shape = tuple(len(st.states[u]) for u in (*ps, v))
        if kind == "k2":
            a = torch.ones(shape, dtype=torch.float64, device=device)
        elif kind == "bdeu":
            a = torch.full(shape, ess / math.prod(shape), dtype=torch.float64, device=device)
        else:
            raw = pseudo_counts[v] if isinstance(pseudo_counts, Mapping) else pseudo_counts
            if isinstance(raw, Tensor) and not raw.is_floating_point():
                raise DtypeMismatchError(f"pseudo_counts of {v!r}", "must be a floating-point "
                                         "tensor (or a number)", found=raw.dtype,
                                         fix="convert with .double()")
            if isinstance(raw, bool | str | bytes):
                raise ValidationError(f"pseudo_counts of {v!r}", "must be a number or a tensor",
                                      found=repr(raw))
            try:
                t = torch.as_tensor(raw, dtype=torch.float64, device=device)
            except (TypeError, ValueError, RuntimeError) as err:
                raise ValidationError(f"pseudo_counts of {v!r}", "must be a number or a tensor",
                                      found=type(raw).__name__) from err
            try:
                a = torch.broadcast_to(t, shape).clone()
            except RuntimeError:
                raise ShapeError(f"pseudo_counts of {v!r}", f"must broadcast to {shape} "
                                 f"(parents {list(ps)} then the child)",
                                 found=tuple(t.shape)) from None
            if not bool(torch.isfinite(a).all()):
                raise NonFiniteError(f"pseudo_counts of {v!r}", "must be finite")
            if bool((a < 0).any()):
                raise ValidationError(f"pseudo_counts of {v!r}", "must be >= 0",
                                      found=float(a.min()))
        out[v] = a
    return out


def fit_bayesian(
    structure: StructureLike,
    data: Any,
    prior: Prior | str = "bdeu",
    *,
    equivalent_sample_size: float | None = None,
    pseudo_counts: float | Mapping[str, float | Tensor] | None = None,
    weights: Tensor | None = None,
    variables: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> BayesianNetwork:
    """Posterior-mean CPTs under Dirichlet priors: normalised (counts + pseudo-counts).

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
    data : LongTensor of shape (N, k) or pandas.DataFrame
        Complete data, as for :func:`fit_mle`.
    prior : {"bdeu", "k2", "dirichlet"} (case-insensitive)
        See :func:`dirichlet_pseudo_counts`: BDeu ``alpha = ESS / (q_v r_v)`` per cell, K2
        ``alpha = 1``, or the given ``pseudo_counts``.
    equivalent_sample_size : float, optional
        BDeu's ESS (default 5, as pgmpy's ``BayesianEstimator``).
    pseudo_counts : float or mapping, optional
        For ``prior="dirichlet"``.
    weights, variables, dtype, name
        As for :func:`fit_mle`.

    Returns
    -------
    BayesianNetwork

    Raises
    ------
    UnseenParentConfigurationError
        Only with ``"dirichlet"`` pseudo-counts that are zero on a whole unseen row.

    Examples
    --------
    >>> s = NetworkStructure({}, {"coin": ("h", "t")})
    >>> fit_bayesian(s, torch.tensor([[0], [0], [0]]), "k2").cpd("coin").probs  # (3+1)/(3+2)
    tensor([0.8000, 0.2000], dtype=torch.float64)
    """
    st = as_structure(structure)
    x, cols = encode_data(structure, data, variables=variables)
    w = check_weights(weights, x.shape[0], x.device)
    counts = counts_from_indices(st, x, cols, w)
    alpha = dirichlet_pseudo_counts(st, prior, equivalent_sample_size=equivalent_sample_size,
                                    pseudo_counts=pseudo_counts, device=x.device)
    return counts_to_model(st, structure, counts, alpha, dtype=dtype, name=name)


def log_likelihood(
    model: BayesianNetwork,
    data: Any,
    *,
    weights: Tensor | None = None,
    variables: Sequence[str] | None = None,
) -> Tensor:
    """``sum_n w_n log p(x^(n))``: the log-likelihood of the model on the data.

    Complete rows are scored by the chain rule (11.27). Missing values (-1 / ``None`` / NaN) and
    variables absent from the data (latent) are summed out exactly by one batched junction-tree
    calibration, so the result is the observed-data log-likelihood that EM maximises.

    Parameters
    ----------
    model : BayesianNetwork
    data : LongTensor of shape (N, k) or pandas.DataFrame
    weights : Tensor, shape (N,), optional
    variables : sequence of str, optional
        Column names of a tensor (default: ``model.variables``).

    Returns
    -------
    Tensor, shape ()
        In the model's dtype. ``-inf`` if a complete row has probability zero; 0 for zero
        data rows (the empty sum).

    Raises
    ------
    ZeroProbabilityEvidence
        If an incomplete row has probability zero.

    Examples
    --------
    >>> import torch
    >>> from pgm.io import bundled_network
    >>> asia = bundled_network("asia")
    >>> x = asia.sample(5, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.isclose(log_likelihood(asia, x), asia.log_prob(x).sum()))
    True
    """
    if not isinstance(model, BayesianNetwork):
        raise ValidationError("log_likelihood", "needs a BayesianNetwork with parameters",
                              found=type(model).__name__)
    x, cols = encode_data(model, data, variables=variables, allow_missing=True,
                          allow_absent=True)
    w = check_weights(weights, x.shape[0], x.device)
    if len(cols) == len(model.variables) and not bool((x < 0).any()):
        col = {v: j for j, v in enumerate(cols)}
        xm = x[:, [col[v] for v in model.variables]].to(model.device)
        lp = model.log_prob(xm)
        if w is None:
            return lp.sum()
        w = w.to(device=lp.device, dtype=lp.dtype)
        return torch.where(w > 0, w * lp, torch.zeros_like(lp)).sum()
    from pgm.learning.bn_em import observed_log_likelihood

    return observed_log_likelihood(model, x, cols, w)


def structure_score(
    structure: StructureLike,
    data: Any,
    score: Score | str = "bic",
    *,
    equivalent_sample_size: float = 10.0,
    weights: Tensor | None = None,
    variables: Sequence[str] | None = None,
) -> Tensor:
    """Score of a structure on complete data; higher is better (the same numbers as pgmpy).

    With family counts ``N_vjk``, ``N_vj = sum_k N_vjk``, ``N = sum of the weights`` and
    ``k_v = q_v (r_v - 1)`` free parameters:

    * ``"loglik"``: maximised log-likelihood ``LL = sum_vjk N_vjk log(N_vjk / N_vj)``;
    * ``"bic"``: ``LL - (log N / 2) sum_v k_v``;
    * ``"aic"``: ``LL - sum_v k_v``;
    * ``"bdeu"`` / ``"k2"``: log marginal likelihood under Dirichlet priors,
      ``sum_vj [lgamma(a_vj) - lgamma(a_vj + N_vj)] + sum_vjk [lgamma(a_vjk + N_vjk) -
      lgamma(a_vjk)]`` with ``a_vjk = ESS / (q_v r_v)`` (BDeu) or 1 (K2), ``a_vj = sum_k a_vjk``.

    Parameters
    ----------
    structure : BayesianNetwork, NetworkStructure or (parents, states) pair
    data : LongTensor of shape (N, k) or pandas.DataFrame
        Complete data.
    score : {"loglik", "bic", "aic", "bdeu", "k2"} (case-insensitive)
    equivalent_sample_size : float
        BDeu's ESS (default 10, as pgmpy's ``BDeu`` score).
    weights, variables
        As for :func:`fit_mle`.

    Returns
    -------
    Tensor, shape (), float64
        With zero data rows (or zero total weight) the log-likelihood and the BDeu / K2
        marginal likelihood are 0 (the empty sum; no data has probability 1) and AIC is
        ``-sum_v k_v``; BIC raises :class:`~probforge.errors.ValidationError` (its penalty
        ``log N`` is undefined at N = 0).

    Examples
    --------
    >>> import torch
    >>> from pgm.io import bundled_network
    >>> asia = bundled_network("asia")
    >>> x = asia.sample(5000, generator=torch.Generator().manual_seed(1))
    >>> empty = NetworkStructure({}, asia.states)  # no edges
    >>> bool(structure_score(asia, x, "bic") > structure_score(empty, x, "bic"))
    True
    """
    kind = score.lower() if isinstance(score, str) else score
    if not isinstance(kind, str) or kind not in ("loglik", "bic", "aic", "bdeu", "k2"):
        raise ValidationError("score", "must be 'loglik', 'bic', 'aic', 'bdeu' or 'k2'",
                              found=repr(score))
    st = as_structure(structure)
    x, cols = encode_data(structure, data, variables=variables)
    w = check_weights(weights, x.shape[0], x.device)
    counts = counts_from_indices(st, x, cols, w)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    if kind in ("bdeu", "k2"):
        alpha = dirichlet_pseudo_counts(
            st, kind, equivalent_sample_size=equivalent_sample_size if kind == "bdeu" else None,
            device=x.device)
        for v, n in counts.items():
            a = alpha[v]
            total = total + (torch.lgamma(a.sum(-1)) - torch.lgamma((a + n).sum(-1))).sum() \
                + (torch.lgamma(a + n) - torch.lgamma(a)).sum()
        return total
    n_rows = x.new_tensor(x.shape[0], dtype=torch.float64) if w is None else w.sum().double()
    n_params = 0
    for n in counts.values():
        total = total + torch.xlogy(n, n).sum() - torch.xlogy(n.sum(-1), n.sum(-1)).sum()
        n_params += (n.shape[-1] - 1) * math.prod(n.shape[:-1])
    if kind == "bic":
        if not bool(n_rows > 0):
            raise ValidationError("structure_score", "BIC needs data with a positive total "
                                  "weight (its penalty (log N / 2) k is undefined at N = 0)",
                                  found=f"N = {float(n_rows)}",
                                  fix="pass data rows, or use score='aic' or 'loglik'")
        total = total - 0.5 * torch.log(n_rows) * n_params
    elif kind == "aic":
        total = total - n_params
    return total
