"""Complete-data parameter learning: hand counts, pgmpy as oracle, recovery of alarm, scores."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from pgm.bayesnet import BayesianNetwork
from pgm.io import bundled_network
from pgm.learning.counts import NetworkStructure, family_counts
from pgm.learning.parameters import (
    UnseenParentConfigurationError,
    dirichlet_pseudo_counts,
    fit_bayesian,
    fit_mle,
    log_likelihood,
    structure_score,
)
from probforge.errors import ShapeError, UnknownStateError, UnknownVariableError, ValidationError

with warnings.catch_warnings():  # pgmpy 1.1 warns about its own deprecations on import
    warnings.simplefilter("ignore", FutureWarning)
    from pgmpy.estimators import AIC, BIC, K2, BayesianEstimator, BDeu, MaximumLikelihoodEstimator
    from pgmpy.utils import get_example_model

logging.getLogger("pgmpy").setLevel(logging.ERROR)

STATES = {"rain": ("no", "yes"), "wet": ("dry", "damp", "soaked")}
TOY = NetworkStructure({"wet": ("rain",)}, STATES)


# ---- helpers: our networks vs pgmpy's CPDs, by state names -------------------------------------
def to_frame(bn: BayesianNetwork, x: torch.Tensor) -> pd.DataFrame:
    """Samples (columns in ``bn.variables`` order) as a DataFrame of state names."""
    return pd.DataFrame({v: np.array(bn.states[v], dtype=object)[x[:, j].numpy()]
                         for j, v in enumerate(bn.variables)})


def pgmpy_table(cpd, ours: BayesianNetwork) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A pgmpy TabularCPD's values rearranged into our layout for the same variable.

    pgmpy stores (child card, prod of evidence cards) with the evidence ``cpd.variables[1:]``
    (first evidence variable slowest); we store (*parent_cards, child card) in our parent order.
    Both axes are matched by state NAME.
    """
    v = cpd.variable
    ev = list(cpd.variables[1:])
    names = cpd.state_names
    vals = np.asarray(cpd.get_values()).reshape([len(names[v])] + [len(names[e]) for e in ev])
    vals = np.moveaxis(vals, 0, -1)  # (*evidence cards, child)
    ours_cpd = ours.cpd(v)
    assert set(ev) == set(ours_cpd.parents)
    vals = np.transpose(vals, [ev.index(p) for p in ours_cpd.parents] + [len(ev)])
    for axis, u in enumerate((*ours_cpd.parents, v)):
        order = [list(names[u]).index(s) for s in ours.states[u]]
        vals = np.take(vals, order, axis=axis)
    return vals


def max_cpd_error(ours: BayesianNetwork, pgmpy_cpds) -> float:  # type: ignore[no-untyped-def]
    return max(float(np.abs(ours.cpd(c.variable).probs.numpy() - pgmpy_table(c, ours)).max())
               for c in pgmpy_cpds)


@pytest.fixture(scope="module", params=["asia", "alarm"])
def sampled(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    name = request.param
    bn = bundled_network(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        pm = get_example_model(name)
    # asia: 20000 rows see every parent configuration (the rarest has probability 5e-4);
    # alarm: fewer rows keep pgmpy's share of the run time down (it has unseen ones anyway)
    x = bn.sample(20000 if name == "asia" else 10000, generator=torch.Generator().manual_seed(7))
    names = {v: list(bn.states[v]) for v in bn.variables}
    return name, bn, pm, x, to_frame(bn, x), names


# ---- maximum likelihood -----------------------------------------------------------------------
def test_mle_equals_hand_counts() -> None:
    df = pd.DataFrame({"rain": ["no", "no", "no", "yes", "yes", "no"],
                       "wet": ["dry", "damp", "dry", "soaked", "damp", "dry"]})
    m = fit_mle(TOY, df)
    assert m.cpd("rain").probs.tolist() == pytest.approx([4 / 6, 2 / 6], abs=1e-15)
    assert m.cpd("wet").probs.tolist()[0] == pytest.approx([3 / 4, 1 / 4, 0.0], abs=1e-15)
    assert m.cpd("wet").probs.tolist()[1] == pytest.approx([0.0, 1 / 2, 1 / 2], abs=1e-15)
    assert m.states == {"rain": STATES["rain"], "wet": STATES["wet"]}
    assert m.dtype == torch.float64


def test_mle_equals_pgmpy(sampled) -> None:  # type: ignore[no-untyped-def]
    name, bn, pm, _, df, names = sampled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = MaximumLikelihoodEstimator(pm, df, state_names=names).get_parameters()
    # pgmpy silently puts uniform rows on unseen parent configurations (alarm has some at
    # N = 20000); ours does so only when asked
    if name == "alarm":
        with pytest.raises(UnseenParentConfigurationError):
            fit_mle(bn, df)
    ours = fit_mle(bn, df, unseen="uniform" if name == "alarm" else "error")
    assert max_cpd_error(ours, ref) < 1e-12


@pytest.mark.parametrize("ess", [1.0, 10.0])
def test_bdeu_equals_pgmpy(sampled, ess: float) -> None:  # type: ignore[no-untyped-def]
    _, bn, pm, _, df, names = sampled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = BayesianEstimator(pm, df, state_names=names).get_parameters(
            prior_type="BDeu", equivalent_sample_size=ess)
    ours = fit_bayesian(bn, df, "bdeu", equivalent_sample_size=ess)
    assert max_cpd_error(ours, ref) < 1e-12


def test_k2_and_dirichlet_equal_pgmpy(sampled) -> None:  # type: ignore[no-untyped-def]
    _, bn, pm, _, df, names = sampled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        est = BayesianEstimator(pm, df, state_names=names)
        ref_k2 = est.get_parameters(prior_type="K2")
        ref_d = est.get_parameters(prior_type="dirichlet", pseudo_counts=3)
    assert max_cpd_error(fit_bayesian(bn, df, "K2"), ref_k2) < 1e-12
    assert max_cpd_error(fit_bayesian(bn, df, "dirichlet", pseudo_counts=3.0), ref_d) < 1e-12


def test_bdeu_pseudo_counts_formula() -> None:
    asia = bundled_network("asia")
    alpha = dirichlet_pseudo_counts(asia, "bdeu", equivalent_sample_size=8.0)
    # either has parents (lung, tub): q = 4 configurations, r = 2 states -> 8 / 8 = 1 per cell
    assert torch.equal(alpha["either"], torch.ones(2, 2, 2, dtype=torch.float64))
    assert torch.equal(alpha["asia"], torch.full((2,), 4.0, dtype=torch.float64))


def test_mle_recovers_alarm_within_sampling_error() -> None:
    """Every well-sampled CPT cell is consistent with its exact binomial sampling distribution.

    Given its parent configuration's count ``n_j``, the count of child state ``k`` is
    Binomial(n_j, theta_jk). Cells whose configuration has n_j >= 500 are tested with the exact
    two-sided binomial p-value at level 1e-3 / (number of cells tested) (Bonferroni), so the
    chance that a correct estimator fails this test with another seed is at most 1e-3. Cells of
    probability 0 must have count 0 exactly.
    """
    alarm = bundled_network("alarm")
    x = alarm.sample(50_000, generator=torch.Generator().manual_seed(11))
    counts = family_counts(alarm, x)
    fitted = fit_mle(alarm, x, unseen="uniform")
    n_list, k_list, p_list, est_list = [], [], [], []
    for v in alarm.variables:
        n_vjk = counts[v]
        n_j = n_vjk.sum(-1, keepdim=True).expand_as(n_vjk)
        truth = alarm.cpd(v).probs
        truth = truth / truth.sum(-1, keepdim=True)  # the bnlearn rows sum to 1 within 3e-7
        well = n_j >= 500
        n_list.append(n_j[well])
        k_list.append(n_vjk[well])
        p_list.append(truth[well])
        est_list.append(fitted.cpd(v).probs[well])
    n = torch.cat(n_list).numpy()
    k = torch.cat(k_list).numpy()
    p = torch.cat(p_list).numpy()
    est = torch.cat(est_list).numpy()
    assert len(n) > 300  # most of alarm's cells are tested
    assert np.allclose(est, k / n, rtol=0, atol=1e-15)  # the MLE is k / n_j
    assert (k[p == 0] == 0).all()
    pos = p > 0
    lower = stats.binom.cdf(k[pos], n[pos], p[pos])
    upper = stats.binom.sf(k[pos] - 1, n[pos], p[pos])
    p_value = np.minimum(1.0, 2 * np.minimum(lower, upper))
    alpha = 1e-3 / len(n)
    assert p_value.min() > alpha, f"smallest p-value {p_value.min():.3g} <= {alpha:.3g}"
    # and in absolute terms: every tested cell within 5 binomial sds (+ 1/n_j for the lattice)
    sd = np.sqrt(p * (1 - p) / n)
    assert (np.abs(est - p) <= 5 * sd + 1 / n).all()


# ---- unseen configurations, structures, options ---------------------------------------------
def test_unseen_parent_configuration_is_an_error_unless_asked() -> None:
    df = pd.DataFrame({"rain": ["no", "no"], "wet": ["dry", "damp"]})
    with pytest.raises(UnseenParentConfigurationError) as err:
        fit_mle(TOY, df)
    assert err.value.unseen == {"wet": [{"rain": "yes"}]}
    assert "'wet' given {'rain': 'yes'}" in str(err.value)
    assert isinstance(err.value, ValueError)
    m = fit_mle(TOY, df, unseen="uniform")
    assert m.cpd("wet").probs[1].tolist() == pytest.approx([1 / 3] * 3, abs=1e-15)
    with pytest.raises(ValidationError, match="unseen"):
        fit_mle(TOY, df, unseen="keep")  # type: ignore[arg-type]
    # with a Dirichlet prior the row is the prior mean
    b = fit_bayesian(TOY, df, "k2")
    assert b.cpd("wet").probs[1].tolist() == pytest.approx([1 / 3] * 3, abs=1e-15)
    with pytest.raises(UnseenParentConfigurationError):
        fit_bayesian(TOY, df, "dirichlet", pseudo_counts=0.0)


def test_structure_kinds_agree_and_cpd_values_are_ignored() -> None:
    asia = bundled_network("asia")
    x = asia.sample(20000, generator=torch.Generator().manual_seed(3))
    from_bn = fit_mle(asia, x)
    wrong = fit_bayesian(asia, x[:50], "k2")  # same graph, other numbers
    from_wrong = fit_mle(wrong, x)
    from_pair = fit_mle((asia.parents, asia.states), x)
    from_struct = fit_mle(NetworkStructure(asia.parents, asia.states), x)
    for other in (from_wrong, from_pair, from_struct):
        for v in asia.variables:
            assert torch.equal(other.cpd(v).log_probs, from_bn.cpd(v).log_probs)
    assert from_bn.name == asia.name


def test_weights_and_dtype() -> None:
    asia = bundled_network("asia")
    x = asia.sample(20000, generator=torch.Generator().manual_seed(4))
    w = torch.rand(20000, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    weighted = fit_mle(asia, x, weights=w)
    counts = family_counts(asia, x, weights=w)
    for v in asia.variables:
        ref = counts[v] / counts[v].sum(-1, keepdim=True)
        assert torch.allclose(weighted.cpd(v).probs, ref, rtol=0, atol=1e-14)
    m32 = fit_mle(asia, x, dtype=torch.float32)
    assert m32.dtype == torch.float32
    assert torch.allclose(m32.cpd("lung").probs.double(), fit_mle(asia, x).cpd("lung").probs,
                          atol=1e-6)


def test_mle_maximises_the_likelihood() -> None:
    asia = bundled_network("asia")
    x = asia.sample(20000, generator=torch.Generator().manual_seed(6))
    mle = fit_mle(asia, x)
    ll = log_likelihood(mle, x)
    assert torch.isclose(ll, mle.log_prob(x).sum(), rtol=1e-14)
    assert float(ll) >= float(log_likelihood(asia, x))
    assert float(ll) >= float(log_likelihood(fit_bayesian(asia, x, "bdeu"), x))
    # the maximised log-likelihood from counts is the same number
    assert torch.isclose(structure_score(asia, x, "loglik"), ll, rtol=1e-12)
    w = torch.full((20000,), 0.5, dtype=torch.float64)
    assert torch.isclose(log_likelihood(mle, x, weights=w), 0.5 * ll, rtol=1e-12)


def test_bad_prior_arguments_raise() -> None:
    df = pd.DataFrame({"rain": ["no", "yes"], "wet": ["dry", "damp"]})
    with pytest.raises(ValidationError, match="pseudo_counts"):
        fit_bayesian(TOY, df, "bdeu", pseudo_counts=1.0)
    with pytest.raises(ValidationError, match="BDeu prior only"):
        fit_bayesian(TOY, df, "k2", equivalent_sample_size=3.0)
    with pytest.raises(ValidationError, match="needs pseudo_counts"):
        fit_bayesian(TOY, df, "dirichlet")
    with pytest.raises(ValidationError, match=">= 0"):
        fit_bayesian(TOY, df, "dirichlet", pseudo_counts={"rain": 1.0, "wet": -1.0})
    with pytest.raises(ValidationError, match="give no pseudo-counts"):
        fit_bayesian(TOY, df, "dirichlet", pseudo_counts={"rain": 1.0})
    with pytest.raises(UnknownVariableError):
        fit_bayesian(TOY, df, "dirichlet", pseudo_counts={"rain": 1.0, "wet": 1.0, "x": 1.0})
    with pytest.raises(ShapeError, match="broadcast"):
        fit_bayesian(TOY, df, "dirichlet", pseudo_counts={"rain": 1.0, "wet": torch.ones(4)})
    with pytest.raises(ValidationError, match="> 0"):
        fit_bayesian(TOY, df, "bdeu", equivalent_sample_size=0.0)
    with pytest.raises(ValidationError, match="'bdeu', 'k2' or 'dirichlet'"):
        fit_bayesian(TOY, df, "jeffreys")
    # per-cell pseudo-counts in our layout (parents first)
    table = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    m = fit_bayesian(TOY, df, "dirichlet", pseudo_counts={"rain": 0.0, "wet": table})
    assert m.cpd("wet").probs[0].tolist() == pytest.approx([2 / 7, 2 / 7, 3 / 7], abs=1e-15)


def test_bad_data_raise_in_fit_functions() -> None:
    df = pd.DataFrame({"rain": ["no", "maybe"], "wet": ["dry", "damp"]})
    with pytest.raises(UnknownStateError, match="'maybe'"):
        fit_mle(TOY, df)
    with pytest.raises(ValidationError, match="integer"):
        fit_bayesian(TOY, torch.zeros(3, 2))
    with pytest.raises(UnknownVariableError):
        structure_score(TOY, df.rename(columns={"wet": "wett"}))


# ---- structure scores -------------------------------------------------------------------------
def test_scores_equal_pgmpy(sampled) -> None:  # type: ignore[no-untyped-def]
    name, bn, pm, _, df, names = sampled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = {"bic": BIC(df, state_names=names).score(pm),
               "aic": AIC(df, state_names=names).score(pm),
               "bdeu": BDeu(df, equivalent_sample_size=10, state_names=names).score(pm),
               "k2": K2(df, state_names=names).score(pm)}
    ours = {s: float(structure_score(bn, df, s)) for s in ref}
    counts = family_counts(bn, df)
    # pgmpy's K2 adds lgamma(r) once per parent configuration but subtracts lgamma(N_j + r) only
    # for the configurations present in the data, so each unseen configuration adds a spurious
    # lgamma(r) (its BDeu corrects for this). The exact K2 score has no such term.
    spurious = sum(int((c.sum(-1) == 0).sum()) * math.lgamma(c.shape[-1])
                   for c in counts.values())
    assert (spurious == 0) == (name == "asia")
    ref["k2"] -= spurious
    for s in ref:
        assert ours[s] == pytest.approx(ref[s], rel=1e-12, abs=0), s


def test_bic_prefers_the_true_structure() -> None:
    asia = bundled_network("asia")
    x = asia.sample(20000, generator=torch.Generator().manual_seed(9))
    true = structure_score(asia, x, "bic")
    empty = NetworkStructure({}, asia.states)
    extra = NetworkStructure({**asia.parents, "xray": ("either", "smoke")}, asia.states)
    assert float(true) > float(structure_score(empty, x, "bic"))
    assert float(true) > float(structure_score(extra, x, "bic"))
    # the extra edge can only raise the maximised log-likelihood
    assert float(structure_score(extra, x, "loglik")) >= float(structure_score(asia, x, "loglik"))
    with pytest.raises(ValidationError, match="score"):
        structure_score(asia, x, "mdl")
