"""Property tests of the learning entry points (issue 21): bad and edge data and arguments give a
typed error, valid ones a NaN-free answer equal to counting by hand.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pgm.learning import (
    BernoulliMixture,
    EMMonitor,
    GaussianMixture,
    NetworkStructure,
    dirichlet_pseudo_counts,
    family_counts,
    fit_bayesian,
    fit_bernoulli_mixture,
    fit_em,
    fit_gmm,
    fit_mle,
    log_likelihood,
    model_from_counts,
    observed_log_likelihood,
    structure_score,
)
from probforge.errors import DtypeMismatchError, ValidationError
from tests.robustness import outcome

F64 = torch.float64
# rain -> wet, with 2 and 3 states
S = NetworkStructure({"rain": (), "wet": ("rain",)},
                     {"rain": ("no", "yes"), "wet": ("dry", "damp", "wet")})

DATA = st.one_of(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2)), max_size=6).map(
        lambda r: torch.tensor(r, dtype=torch.long).reshape(-1, 2)),
    st.lists(st.tuples(st.integers(-2, 2), st.integers(-1, 3)), min_size=1, max_size=4).map(
        lambda r: torch.tensor(r, dtype=torch.long).reshape(-1, 2)),
    st.sampled_from([torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool),
                     torch.full((2, 2), math.nan), torch.zeros(3, 3, dtype=torch.long),
                     torch.zeros(4, dtype=torch.long), [[0, 1]]]),
)
WEIGHTS = st.sampled_from([None, None, "ones", "list", "nan", "neg", "int", "zeros"])


def _weights(kind: Any, n: int) -> Any:
    return {None: None, "ones": torch.ones(n, dtype=F64), "nan": torch.full((n,), math.nan),
            "neg": -torch.ones(n, dtype=F64), "int": torch.ones(n, dtype=torch.long),
            "zeros": torch.zeros(n, dtype=F64), "list": [1.0] * n}[kind]


def _valid_complete(x: Any, weights: Any) -> bool:
    ok = (isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[1] == 2
          and not x.is_floating_point() and x.dtype != torch.bool
          and bool(((x[:, 0] >= 0) & (x[:, 0] < 2) & (x[:, 1] >= 0) & (x[:, 1] < 3)).all()))
    # NaN / negative weights are caught only where there is a row to carry them
    return ok and weights != "int" and (weights not in ("nan", "neg") or x.shape[0] == 0)


def _hand_counts(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rain = torch.zeros(2, dtype=F64)
    wet = torch.zeros(2, 3, dtype=F64)
    for (r, k), wi in zip(x.tolist(), w.tolist(), strict=True):
        rain[r] += wi
        wet[r, k] += wi
    return rain, wet


@given(x=DATA, weights=WEIGHTS)
@settings(max_examples=30)
def test_counts_and_fits_against_hand_counts(x: Any, weights: Any) -> None:
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() >= 1 else 1
    w = _weights(weights, n)
    counts = outcome(family_counts, S, x, w)
    mle = outcome(fit_mle, S, x, weights=w, unseen="uniform")
    bayes = outcome(fit_bayesian, S, x, "k2", weights=w)
    event(f"counts: {counts.kind}")
    if not _valid_complete(x, weights):
        assert counts.kind == mle.kind == bayes.kind == "error"
        return
    assert counts.kind == mle.kind == bayes.kind == "value", (counts.error, mle.error)
    wt = torch.ones(n, dtype=F64) if w is None else torch.as_tensor(w, dtype=F64)
    rain, wet = _hand_counts(x, wt)
    torch.testing.assert_close(counts.value["rain"], rain)
    torch.testing.assert_close(counts.value["wet"], wet)
    # MLE: normalised counts, uniform where a parent configuration has no weight
    ref = torch.where(wet.sum(-1, keepdim=True) > 0, wet / wet.sum(-1, keepdim=True).clamp_min(
        1e-300), torch.full_like(wet, 1 / 3))
    torch.testing.assert_close(mle.value.cpd("wet").probs, ref)
    # K2: (counts + 1) / (total + card); zero data is the prior mean
    torch.testing.assert_close(bayes.value.cpd("wet").probs,
                               (wet + 1) / (wet.sum(-1, keepdim=True) + 3))
    torch.testing.assert_close(bayes.value.cpd("rain").probs, (rain + 1) / (rain.sum() + 2))


@given(x=DATA, weights=WEIGHTS, score=st.sampled_from(["loglik", "bic", "aic", "bdeu", "k2",
                                                       "BIC", "nope", 3]))
@settings(max_examples=50)
def test_structure_score(x: Any, weights: Any, score: Any) -> None:
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() >= 1 else 1
    w = _weights(weights, n)
    res = outcome(structure_score, S, x, score, weights=w)
    event(f"score: {res.kind}")
    kind = score.lower() if isinstance(score, str) else score
    if not _valid_complete(x, weights) or kind not in ("loglik", "bic", "aic", "bdeu", "k2"):
        assert res.kind == "error"
        return
    wt = torch.ones(n, dtype=F64) if w is None else torch.as_tensor(w, dtype=F64)
    total = float(wt.sum())
    if kind == "bic" and total == 0:
        assert res.kind == "error"  # log N is undefined: documented, never +inf
        return
    assert res.kind == "value", res.error
    rain, wet = _hand_counts(x, wt)
    ll = float(torch.xlogy(rain, rain).sum() - torch.xlogy(rain.sum(), rain.sum())
               + torch.xlogy(wet, wet).sum() - torch.xlogy(wet.sum(-1), wet.sum(-1)).sum())
    k = 1 + 2 * 2
    ref = {"loglik": ll, "aic": ll - k,
           "bic": ll - 0.5 * math.log(total) * k if total > 0 else math.nan}
    if kind in ref:
        assert abs(float(res.value) - ref[kind]) < 1e-9 * (1 + abs(ref[kind]))
    elif total == 0:
        assert float(res.value) == 0.0  # no data has marginal likelihood 1


@given(ess=st.one_of(st.floats(-1, 10), st.sampled_from([math.nan, math.inf, True, "5", 0])),
       pseudo=st.one_of(st.none(), st.sampled_from([0.5, -1.0, math.nan, "x", torch.tensor(1),
                                                    torch.tensor(2.0), True])),
       prior=st.sampled_from(["bdeu", "dirichlet", "K2", 7]))
@settings(max_examples=40)
def test_pseudo_count_ranges(ess: Any, pseudo: Any, prior: Any) -> None:
    kw: dict[str, Any] = {}
    if prior == "bdeu":
        kw["equivalent_sample_size"] = ess
    if prior == "dirichlet" or pseudo is not None:
        kw["pseudo_counts"] = pseudo
    res = outcome(dirichlet_pseudo_counts, S, prior, **kw)
    if res.kind == "error":
        return
    if prior == "bdeu":
        assert isinstance(ess, float | int) and not isinstance(ess, bool) and 0 < ess < math.inf
        torch.testing.assert_close(res.value["wet"], torch.full((2, 3), ess / 6, dtype=F64))
    elif prior == "dirichlet":
        p = float(pseudo)
        assert not isinstance(pseudo, bool | str) and math.isfinite(p) and p >= 0
        assert not (isinstance(pseudo, torch.Tensor) and not pseudo.is_floating_point())
        torch.testing.assert_close(res.value["wet"], torch.full((2, 3), p, dtype=F64))
    else:
        assert prior == "K2" and pseudo is None


@given(counts=st.sampled_from(["ok", "nan", "neg", "int", "shape", "missing", "list"]))
@settings(max_examples=10)
def test_model_from_counts(counts: str) -> None:
    good = {"rain": torch.tensor([3.0, 1.0], dtype=F64),
            "wet": torch.tensor([[1.0, 1.0, 2.0], [0.0, 4.0, 0.0]], dtype=F64)}
    table: Any = {
        "ok": good, "int": {v: t.long() for v, t in good.items()},
        "nan": {**good, "rain": torch.tensor([math.nan, 1.0])},
        "neg": {**good, "wet": -good["wet"]}, "shape": {**good, "rain": torch.ones(3)},
        "missing": {"rain": good["rain"]}, "list": {**good, "rain": [3.0, 1.0]},
    }[counts]
    res = outcome(model_from_counts, S, table)
    assert (res.kind == "value") == (counts in ("ok", "int")), res.error
    if res.kind == "value":
        torch.testing.assert_close(res.value.cpd("wet").probs,
                                   good["wet"] / good["wet"].sum(-1, keepdim=True))


@given(rows=st.one_of(st.lists(st.tuples(st.integers(-1, 1), st.integers(-1, 2)), min_size=1,
                               max_size=5),
                      st.lists(st.tuples(st.integers(-1, 2), st.integers(-1, 3)), max_size=5)),
       cols=st.sampled_from([("rain", "wet"), ("rain", "wet"), "wet", ("wet",), ("wet", "wet"),
                             5]),
       max_iter=st.sampled_from([0, 2, 2, -1, 2.0]),
       tol=st.sampled_from([1e-6, 1e-6, -1.0, math.nan]))
@settings(max_examples=20)
def test_em_and_observed_log_likelihood(rows: list[tuple[int, int]], cols: Any, max_iter: Any,
                                        tol: Any) -> None:
    names = [cols] if isinstance(cols, str) else cols
    width = len(names) if isinstance(names, tuple | list) else 2
    x = torch.tensor([r[:width] for r in rows], dtype=torch.long).reshape(len(rows), width)
    model = fit_bayesian(S, torch.tensor([[0, 0], [1, 2]]), "k2")
    ll = outcome(observed_log_likelihood, model, x, cols, allow_inf=True)
    em = outcome(fit_em, S, x, variables=cols, max_iter=max_iter, tol=tol,
                 generator=torch.Generator().manual_seed(0))
    event(f"em: {em.kind}, observed ll: {ll.kind}")
    ok_cols = isinstance(names, tuple | list) and len(set(names)) == len(names)
    cards = [2 if c == "rain" else 3 for c in names] if ok_cols else []
    ok_data = ok_cols and all(-1 <= r[j] < cards[j] for r in rows for j in range(width))
    if not ok_data:
        assert ll.kind == "error" and em.kind == "error"
        return
    observed = [r for r in rows if any(r[j] >= 0 for j in range(width))]
    if not rows or not observed:
        assert ll.kind == "error"  # nothing observed: a named error, not a NaN
        return
    assert ll.kind == "value", ll.error
    # brute force: sum over rows of log of the joint summed over the unobserved values
    joint = model.cpd("rain").probs[:, None] * model.cpd("wet").probs
    ref = 0.0
    for r in rows:
        t = joint
        for j, c in enumerate(names):
            if r[j] >= 0:
                t = t.index_select(0 if c == "rain" else 1, torch.tensor([r[j]]))
        ref += math.log(float(t.sum()))
    assert abs(float(ll.value) - ref) < 1e-9
    ok_args = type(max_iter) is int and max_iter in (0, 2) and tol == 1e-6
    assert (em.kind == "value") == ok_args, em.error
    if ok_args:
        hist = em.value.log_likelihood
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(hist))


@given(values=st.lists(st.one_of(st.floats(-100, 0), st.sampled_from(
    [math.nan, math.inf, -math.inf, "x", True, torch.tensor([1.0, 2.0])])), min_size=1,
    max_size=4))
@settings(max_examples=30)
def test_em_monitor(values: list[Any]) -> None:
    m = EMMonitor(tol=1e-3, max_iter=10)
    for v in values:
        res = outcome(m.update, v, allow_inf=True)
        if res.kind == "error":
            return
        assert isinstance(v, float) and not math.isnan(v) and v != math.inf
    assert m.history == [float(v) for v in values[: len(m.history)]]


def _gmm_data(kind: str) -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 2, generator=g, dtype=F64)
    return {"normal": x, "int": x.long(), "nan": x.index_fill(0, torch.tensor([3]), math.nan),
            "inf": x.index_fill(0, torch.tensor([1]), math.inf), "huge": x * 1e200,
            "empty": x[:0], "3d": x.reshape(12, 2, 1), "1d": x[:, 0], "f16": x.half(),
            "list": x.tolist(), "const": torch.ones(12, 2, dtype=F64)}[kind]


@given(kind=st.sampled_from(["normal", "1d", "const"]), k=st.sampled_from([1, 2]),
       reg=st.sampled_from([1e-6, 0.0]), ct=st.sampled_from(["full", "diag", "spherical", "tied"]),
       bad=st.sampled_from([None, None, ("kind", "int"), ("kind", "nan"), ("kind", "inf"),
                            ("kind", "huge"), ("kind", "empty"), ("kind", "3d"), ("kind", "f16"),
                            ("kind", "list"), ("k", 0), ("k", 13), ("k", 2.0), ("k", True),
                            ("reg", -1.0), ("reg", math.nan), ("ct", "bogus")]))
@settings(max_examples=25)
def test_fit_gmm(kind: str, k: Any, reg: Any, ct: str, bad: Any) -> None:
    args = {"kind": kind, "k": k, "reg": reg, "ct": ct}
    if bad is not None:
        args[bad[0]] = bad[1]
    x = _gmm_data(args["kind"])
    res = outcome(fit_gmm, x, args["k"], covariance_type=args["ct"], reg_covar=args["reg"],
                  max_iter=5, generator=torch.Generator().manual_seed(1))
    event(f"gmm: {res.kind}")
    if bad is not None:
        assert res.kind == "error"
        return
    if res.kind == "error":  # only a collapse without regularisation may stop a valid fit
        assert reg == 0.0
        return
    model = res.value.model
    assert all(b >= a - 1e-6 * abs(a) for a, b in itertools.pairwise(res.value.history))
    xs = x.reshape(12, -1)
    torch.testing.assert_close(model.weights.sum(), torch.tensor(1.0, dtype=F64))
    lp = model.log_prob(xs)
    comps = []
    for j in range(model.n_components):  # log N(x; mu_j, Sigma_j) written out
        cov = model.covariance_matrices[j]
        diff = xs - model.means[j]
        maha = (diff @ torch.linalg.inv(cov) * diff).sum(-1)
        logdet = torch.linalg.slogdet(cov)[1]
        comps.append(model.weights[j].log() - 0.5 * (maha + logdet + xs.shape[1] * math.log(
            2 * math.pi)))
    ref = torch.logsumexp(torch.stack(comps), 0)
    torch.testing.assert_close(lp, ref)


@given(kind=st.sampled_from(["bits", "bool", "float_half", "nan", "empty", "int2"]),
       k=st.sampled_from([1, 2, 0, 2.5]),
       prior=st.sampled_from([None, (2.0, 2.0), (0.5, 1.0), (math.nan, 1.0), "x"]))
@settings(max_examples=30)
def test_fit_bernoulli_mixture(kind: str, k: Any, prior: Any) -> None:
    g = torch.Generator().manual_seed(0)
    bits = (torch.rand(10, 3, generator=g) < 0.4).to(F64)
    x = {"bits": bits, "bool": bits.bool(), "float_half": bits * 0.5,
         "nan": bits.index_fill(0, torch.tensor([0]), math.nan), "empty": bits[:0],
         "int2": bits.long() * 2}[kind]
    res = outcome(fit_bernoulli_mixture, x, k, beta_prior=prior, max_iter=5, generator=g)
    event(f"bernoulli: {res.kind}")
    valid = kind in ("bits", "bool") and k in (1, 2) and prior in (None, (2.0, 2.0))
    assert (res.kind == "value") == valid, res.error
    if valid:
        m = res.value.model
        xb = x.to(F64)
        comp = torch.stack([(torch.xlogy(xb, m.probs[j]) + torch.xlogy(1 - xb, 1 - m.probs[j])
                             ).sum(-1) + m.weights[j].log() for j in range(m.n_components)])
        torch.testing.assert_close(m.log_prob(x), torch.logsumexp(comp, 0))


@given(w=st.sampled_from([[0.5, 0.5], [0.7, 0.7], [-0.5, 1.5], [math.nan, 1.0]]),
       dtype=st.sampled_from([F64, torch.long]))
@settings(max_examples=15)
def test_mixture_constructors(w: list[float], dtype: torch.dtype) -> None:
    weights = torch.tensor(w, dtype=F64).to(dtype)
    gm = outcome(GaussianMixture, weights, torch.zeros(2, 1, dtype=F64),
                 torch.ones(2, dtype=F64), "spherical")
    bm = outcome(BernoulliMixture, weights, torch.full((2, 2), 0.5, dtype=F64))
    valid = w == [0.5, 0.5] and dtype == F64
    assert (gm.kind == "value") == valid and (bm.kind == "value") == valid
    if dtype == torch.long:
        assert isinstance(gm.error, ValidationError)


def test_integer_weights_are_refused_not_cast() -> None:
    x = torch.tensor([[0, 0], [1, 2]])
    res = outcome(fit_mle, S, x, weights=torch.tensor([1, 2]))
    assert res.kind == "error" and isinstance(res.error, DtypeMismatchError)
    assert float(log_likelihood(fit_bayesian(S, x, "k2"), x[:0])) == 0.0  # the empty sum
