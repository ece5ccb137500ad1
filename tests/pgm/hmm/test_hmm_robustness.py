"""HMM entry points on bad and edge inputs (issue 21): named errors or right answers.

The examples of the issue first (each failed before: a T-dimensional Gaussian from a 1-D series,
raw IndexErrors on sequences of length 0, raw RuntimeErrors for symbols beyond ``n_symbols``),
then property tests that feed every inference function generated batches (lengths with zeros,
symbols out of range, float symbols, missing and clamped steps) and compare every answer that
comes back with enumeration of all state paths.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from pgm.hmm import (
    BernoulliEmission,
    CategoricalEmission,
    CategoricalPrior,
    GaussianEmission,
    GaussianPrior,
    HiddenMarkovModel,
    HMMDistribution,
    HMMModule,
    LogLikelihoodEmission,
    PoissonEmission,
    aic,
    baum_welch_step,
    bic,
    e_step,
    filter_states,
    fit,
    fit_gradient,
    init_hmm,
    kbest,
    log_likelihood,
    posterior,
    sample_states,
    viterbi,
)
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops import make_generator
from tests.robustness import outcome

F64 = torch.float64


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> None:
    # torch.allclose rather than torch.testing.assert_close (which imports torch.distributed)
    assert torch.allclose(a.to(F64), b.to(F64), rtol=tol, atol=tol), (a, b)


def _hmm(K: int = 2, M: int = 3, seed: int = 0) -> HiddenMarkovModel:
    g = torch.Generator().manual_seed(seed)
    init = torch.rand(K, generator=g, dtype=F64) + 0.1
    trans = torch.rand(K, K, generator=g, dtype=F64) + 0.1
    emis = torch.rand(K, M, generator=g, dtype=F64) + 0.1
    return HiddenMarkovModel.from_probs(
        init / init.sum(), trans / trans.sum(-1, keepdim=True),
        CategoricalEmission((emis / emis.sum(-1, keepdim=True)).log()))


def _brute(hmm: HiddenMarkovModel, x: list[int], observed: list[bool],
           clamp: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x), max over paths of log p(x, path)) of one sequence by enumeration."""
    K = hmm.n_states
    le = hmm.emission.log_probs  # type: ignore[attr-defined]
    scores = []
    for y in itertools.product(range(K), repeat=len(x)):
        if clamp is not None and any(c >= 0 and c != s for c, s in zip(clamp, y, strict=True)):
            continue
        s = hmm.log_initial[y[0]] if y else torch.zeros((), dtype=F64)
        s = s + sum((hmm.log_transition[y[t], y[t + 1]] for t in range(len(y) - 1)),
                    torch.zeros((), dtype=F64))
        s = s + sum((le[y[t], x[t]] for t in range(len(y)) if observed[t]),
                    torch.zeros((), dtype=F64))
        scores.append(s)
    if not scores:
        ninf = torch.tensor(-math.inf, dtype=F64)
        return ninf, ninf
    st_ = torch.stack(scores)
    return torch.logsumexp(st_, 0), st_.max()


# ----------------------------------------------------------------------------------------------
# the examples


def test_init_hmm_refuses_a_1d_series_for_gaussian_emissions() -> None:
    # before: a (T,) series was read as ONE observation of dimension T (a 50-dim Gaussian)
    x = torch.randn(50, dtype=F64)
    with pytest.raises(ShapeError, match=r"unsqueeze\(-1\)"):
        init_hmm("gaussian", x, 2, generator=make_generator(0))
    for family in ("gmm", "poisson", "bernoulli"):
        with pytest.raises(ShapeError, match=r"unsqueeze\(-1\)"):
            init_hmm(family, x.abs().round(), 2, generator=make_generator(0))
    m = init_hmm("gaussian", x.unsqueeze(-1), 2, generator=make_generator(0))
    assert m.emission.means.shape == (2, 1)  # type: ignore[attr-defined]
    # inference says the same
    with pytest.raises(ShapeError, match=r"unsqueeze\(-1\)"):
        log_likelihood(m, x)


def test_sequences_of_length_0_have_the_documented_answers() -> None:
    hmm = _hmm()
    x = torch.zeros(0, dtype=torch.long)
    # before: a raw IndexError from every one of these
    assert float(log_likelihood(hmm, x)) == 0.0  # p(empty sequence) = 1
    post = posterior(hmm, x, pairwise=True)
    assert float(post.log_likelihood) == 0.0
    assert post.transition_probs is not None and post.transition_probs.shape == (0, 2, 2)
    assert post.state_probs.shape == (0, 2)
    assert filter_states(hmm, x).shape == (0, 2)
    v = viterbi(hmm, x)
    assert float(v.log_prob) == 0.0 and v.states.shape == (0,)
    top = kbest(hmm, x, 3)  # one path (the empty one), the others missing
    assert top.log_prob.tolist() == [0.0, -math.inf, -math.inf] and top.states.shape == (3, 0)
    assert sample_states(hmm, x, 4, generator=make_generator(1)).shape == (4, 0)
    with pytest.raises(ValidationError, match="no real step"):
        fit(hmm, x)
    with pytest.raises(ValidationError, match="no real step"):
        baum_welch_step(hmm, x)
    stats = e_step(hmm, x)
    assert float(stats.log_likelihood) == 0.0 and float(stats.start.sum()) == 0.0
    # a batch of empty sequences
    assert log_likelihood(hmm, torch.zeros(3, 0, dtype=torch.long)).tolist() == [0.0] * 3


def test_length_0_entries_inside_a_batch() -> None:
    hmm = _hmm()
    x = torch.tensor([[0, 1, 2], [2, 2, 1], [1, 0, 0]])
    lengths = torch.tensor([3, 0, 2])
    alone = [log_likelihood(hmm, x[0]), log_likelihood(hmm, x[2, :2])]
    ll = log_likelihood(hmm, x, lengths=lengths)
    _close(ll, torch.stack([alone[0], torch.zeros((), dtype=F64), alone[1]]))
    post = posterior(hmm, x, lengths=lengths, pairwise=True)
    assert float(post.state_probs[1].abs().sum()) == 0.0
    assert post.transition_probs is not None
    assert float(post.transition_probs[1].abs().sum()) == 0.0
    _close(post.state_probs[0], posterior(hmm, x[0]).state_probs)
    v = viterbi(hmm, x, lengths=lengths)
    assert v.states[1].tolist() == [-1, -1, -1] and float(v.log_prob[1]) == 0.0
    assert (kbest(hmm, x, 2, lengths=lengths).states[1] == -1).all()
    assert (sample_states(hmm, x, 3, lengths=lengths)[:, 1] == -1).all()
    assert float(filter_states(hmm, x, lengths=lengths)[1].abs().sum()) == 0.0
    # the same from a mask with an all-False row
    mask = torch.arange(3) < lengths[:, None]
    _close(log_likelihood(hmm, x, mask=mask), ll)
    # EM statistics ignore the empty sequence entirely
    with_empty = e_step(hmm, x[:2], lengths=lengths[:2])
    alone_stats = e_step(hmm, x[:1])
    _close(with_empty.start, alone_stats.start)
    _close(with_empty.transitions, alone_stats.transitions)


def test_symbols_beyond_n_symbols_are_named() -> None:
    # before: a raw RuntimeError from bincount / a size mismatch
    with pytest.raises(ValidationError, match=r"step 2.*0\.\.2.*found 5"):
        init_hmm("categorical", torch.tensor([0, 1, 5]), 2, n_symbols=3)
    with pytest.raises(ValidationError, match=r"sequence \[1\], step 0.*found -1"):
        init_hmm("categorical", torch.tensor([[0, 1], [-1, 2]]), 2)
    with pytest.raises(DtypeMismatchError, match="integer"):
        init_hmm("categorical", torch.tensor([0.0, 1.0, 2.0]), 2)
    em = _hmm().emission
    for bad, where in ((torch.tensor([0, 5]), "step 1"), (torch.tensor([[0, 1], [-1, 0]]),
                                                          r"sequence \[1\], step 0")):
        with pytest.raises(ValidationError, match=where):  # before: IndexError
            em.log_prob(bad)
    with pytest.raises(DtypeMismatchError):  # before: 1.5 silently read as symbol 1
        em.log_prob(torch.tensor([0.0, 1.5]))
    with pytest.raises(ValidationError, match="unknown keyword"):  # a typo is not ignored
        init_hmm("categorical", torch.tensor([0, 1, 2]), 2, n_symbol=3)


def test_every_emission_log_prob_checks_its_input() -> None:
    g = GaussianEmission(torch.zeros(2, 1, dtype=F64), torch.ones(2, 1, dtype=F64))
    with pytest.raises(NonFiniteError):  # before: NaN rows
        g.log_prob(torch.tensor([[0.0], [math.nan]], dtype=F64))
    with pytest.raises(DtypeMismatchError):  # before: integers cast silently
        g.log_prob(torch.tensor([[0], [1]]))
    p = PoissonEmission(torch.ones(2, 1, dtype=F64))
    for bad in (torch.tensor([[1.5]], dtype=F64), torch.tensor([[-1.0]], dtype=F64)):
        with pytest.raises(ValidationError, match="Poisson"):  # before: lgamma of anything
            p.log_prob(bad)
    with pytest.raises(ShapeError):  # before: a raw matmul error
        p.log_prob(torch.ones(3, 2, dtype=F64))
    b = BernoulliEmission(torch.full((2, 2), 0.5, dtype=F64))
    with pytest.raises(ValidationError, match="0 or 1"):  # before: 0.3 read as "on"
        b.log_prob(torch.tensor([[0.3, 1.0]], dtype=F64))
    ll = LogLikelihoodEmission(2)
    with pytest.raises(NonFiniteError):
        ll.log_prob(torch.tensor([[0.0, math.nan]], dtype=F64))
    assert ll.log_prob(torch.tensor([[0.0, -math.inf]], dtype=F64))[0, 1] == -math.inf


# ----------------------------------------------------------------------------------------------
# property tests


@st.composite
def hmm_batches(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    K = draw(st.integers(1, 3))
    M = 3
    B = draw(st.integers(0, 3))
    T = draw(st.integers(0, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.randint(0, M, (B, T), generator=g)
    broken = draw(st.sampled_from([None, None, "high", "negative", "float"]))
    if broken in ("high", "negative") and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = M + 2 if broken == "high" else -1
    lengths = None
    if draw(st.booleans()):
        lengths = torch.tensor([draw(st.integers(0, T + (1 if draw(st.booleans()) else 0)))
                                for _ in range(B)], dtype=torch.long)
    missing = (torch.rand(B, T, generator=g) < 0.3) if draw(st.booleans()) else None
    clamp = None
    if draw(st.booleans()):
        clamp = torch.randint(-1, K + (1 if draw(st.booleans()) else 0), (B, T), generator=g)
    return {"hmm": _hmm(K, M, draw(st.integers(0, 100))),
            "x": x.double() if broken == "float" else x, "lengths": lengths,
            "missing": missing, "clamp": clamp}


def _expected(c: dict) -> list[tuple[torch.Tensor, torch.Tensor]] | None:  # type: ignore[type-arg]
    """Brute-force (log p, best path score) of each sequence, or None if an error is due."""
    hmm, x, lengths, missing, clamp = c["hmm"], c["x"], c["lengths"], c["missing"], c["clamp"]
    B, T = x.shape
    if x.is_floating_point():
        return None
    if lengths is not None and bool((lengths > T).any()):
        return None
    out = []
    for b in range(B):
        n = T if lengths is None else int(lengths[b])
        obs = [True] * n if missing is None else [not bool(v) for v in missing[b, :n]]
        seq = [int(v) for v in x[b, :n]]
        if any(o and not 0 <= s < 3 for s, o in zip(seq, obs, strict=True)):
            return None
        cl = None
        if clamp is not None:
            cl = [int(v) for v in clamp[b, :n]]
            if any(v >= hmm.n_states for v in cl):
                return None
        out.append(_brute(hmm, [s if 0 <= s < 3 else 0 for s in seq], obs, cl))
    return out


@given(hmm_batches())
@settings(max_examples=30)
def test_inference_answers_match_enumeration(c: dict) -> None:  # type: ignore[type-arg]
    hmm = c["hmm"]
    kw = {k: c[k] for k in ("lengths", "missing", "clamp")}
    want = _expected(c)
    ll = outcome(log_likelihood, hmm, c["x"], allow_inf=True, **kw)
    assert ll.kind == ("error" if want is None else "value"), ll.error
    if want is None:
        for fn in (posterior, viterbi, filter_states, sample_states):
            assert outcome(fn, hmm, c["x"], **kw).kind == "error"
        return
    _close(ll.value, torch.stack([w[0] for w in want]) if want else torch.zeros(0, dtype=F64))
    feasible = all(w[0] > -math.inf for w in want)
    post = outcome(posterior, hmm, c["x"], pairwise=True, **kw)
    vit = outcome(viterbi, hmm, c["x"], **kw)
    draws = outcome(sample_states, hmm, c["x"], 2, generator=make_generator(3), **kw)
    filt = outcome(filter_states, hmm, c["x"], allow_inf=True, **kw)
    top = outcome(kbest, hmm, c["x"], 2, allow_inf=True, **kw)
    assert top.kind == "value"  # missing paths are -inf, never an error
    if not feasible:  # a sequence of probability zero: ZeroProbabilityEvidence, never NaN
        assert post.kind == vit.kind == draws.kind == "error"
        return
    assert post.kind == vit.kind == draws.kind == filt.kind == "value"
    B, T = c["x"].shape
    lengths = c["lengths"] if c["lengths"] is not None else torch.full((B,), T)
    valid = torch.arange(T) < lengths[:, None]
    _close(post.value.state_probs.sum(-1), valid.to(F64))
    _close(post.value.log_likelihood, ll.value)
    _close(vit.value.log_prob, torch.stack([w[1] for w in want]) if want
           else torch.zeros(0, dtype=F64))
    _close(top.value.log_prob[..., 0], vit.value.log_prob)
    assert ((vit.value.states >= 0) == valid).all()
    assert ((draws.value >= 0) == valid).all()
    _close(filt.value.sum(-1), valid.to(F64))


@given(st.sampled_from(["gaussian", "gmm", "poisson", "bernoulli", "categorical"]),
       st.sampled_from(["ok", "1d", "nan", "empty", "lengths0", "int", "kw"]))
@settings(max_examples=25)
def test_init_hmm_on_edge_inputs(family: str, case: str) -> None:
    g = torch.Generator().manual_seed(5)
    if family == "categorical":
        x = torch.randint(0, 3, (2, 6), generator=g)
    elif family in ("poisson", "bernoulli"):
        x = torch.randint(0, 2, (2, 6, 2), generator=g).double()
    else:
        x = torch.randn(2, 6, 2, generator=g, dtype=F64)
    kw: dict = {}  # type: ignore[type-arg]
    lengths = None
    if case == "1d":
        x = x.reshape(-1)[:6]
    elif case == "nan" and x.is_floating_point():
        x[0, 1] = math.nan
    elif case == "empty":
        x = x[:, :0]
    elif case == "lengths0":
        lengths = torch.zeros(2, dtype=torch.long)
    elif case == "int":
        x = x.long() if x.is_floating_point() else x.double()
    elif case == "kw":
        kw = {"covariance_typ": "full"}
    res = outcome(init_hmm, family, x, 2, lengths=lengths, generator=make_generator(1),
                  allow_inf=True, **kw)
    must_fail = case in ("empty", "lengths0", "kw") or (
        case == "1d" and family != "categorical") or (
        case == "nan" and x.is_floating_point()) or (
        case == "int" and family in ("gaussian", "gmm", "categorical"))
    assert res.kind == ("error" if must_fail else "value"), (res.error, family, case)
    if res.kind == "value":
        assert res.value.n_states == 2


@given(st.integers(0, 3), st.sampled_from(["ok", "nan", "int", "wrong_d", "list"]))
@settings(max_examples=20)
def test_emission_methods(seed: int, case: str) -> None:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(2, 2, generator=g, dtype=F64)
    em = GaussianEmission(means, torch.ones(2, 2, dtype=F64) * 0.5)
    x: Any = torch.randn(4, 2, generator=g, dtype=F64)
    if case == "nan":
        x[1, 0] = math.nan
    elif case == "int":
        x = x.long()
    elif case == "wrong_d":
        x = x[:, :1]
    elif case == "list":
        x = x.tolist()
    res = outcome(em.log_prob, x)
    assert res.kind == ("value" if case == "ok" else "error")
    if res.kind == "value":  # against torch.distributions
        want = Normal(means, 0.5**0.5).log_prob(x[:, None, :]).sum(-1)  # type: ignore[no-untyped-call]
        _close(res.value, want)
    w = torch.full((4, 2), 0.5, dtype=F64)
    step = outcome(em.m_step, x, w)
    assert step.kind == res.kind
    assert outcome(em.m_step, torch.randn(4, 2, dtype=F64), -w).kind == "error"
    assert outcome(em.m_step, torch.randn(4, 2, dtype=F64), w, CategoricalPrior()
                   ).kind == "error"
    assert outcome(em.sample, torch.tensor([0, 2])).kind == "error"  # state 2 of 2
    assert outcome(GaussianPrior, covars_prior=-1.0).kind == "error"
    assert outcome(GaussianPrior, means_weight=math.nan).kind == "error"


@given(st.integers(0, 4), st.booleans())
@settings(max_examples=10)
def test_distribution_matches_the_model(T: int, nan: bool) -> None:
    mu = torch.tensor([-1.0, 1.0], dtype=F64)
    init = torch.tensor([0.3, 0.7], dtype=F64)
    trans = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64)
    d = HMMDistribution(init.log(), trans.log(), Normal(mu, 1.0), duration=T)
    x = torch.linspace(-1, 1, T, dtype=F64)
    if nan and T:
        x[0] = math.nan
    res = outcome(d.log_prob, x)
    assert res.kind == ("error" if nan and T else "value")
    if res.kind == "value":
        hmm = HiddenMarkovModel.from_probs(init, trans, GaussianEmission(
            mu[:, None], torch.ones(2, 1, dtype=F64)))
        _close(res.value, log_likelihood(hmm, x[:, None]))
    s = outcome(d.sample, (3,), generator=make_generator(2))
    assert s.kind == "value" and s.value.shape == (3, T)
    assert outcome(HMMDistribution, init.log(), trans.log(), Normal(mu, 1.0),
                   duration=-1).kind == "error"


def test_selection_and_gradient_training_edges() -> None:
    hmm = _hmm()
    x = torch.tensor([[0, 1, 2, 1]])
    assert aic(hmm, x[:, :0]) == 2 * 7  # log L of nothing is 0
    with pytest.raises(ValidationError, match="log N"):  # before: log(max(N, 1)) = 0
        bic(hmm, x[:, :0])
    module = HMMModule.from_model(hmm)
    with pytest.raises(ValidationError, match="no real step"):  # before: a raw RuntimeError
        fit_gradient(module, x[:, :0], n_steps=2, optimizer=None)
    with pytest.raises(ValidationError, match="n_steps"):
        fit_gradient(module, x, n_steps=True)
    with pytest.raises(ValidationError, match="lr"):
        fit_gradient(module, x, lr=-1.0)
    with pytest.raises(ValidationError):  # a float tensor of "symbols"
        module(x.double())
    with pytest.raises(ValidationError, match="n_steps"):
        hmm.sample(-1)
    empty = hmm.sample(0, n_sequences=2)
    assert empty.states.shape == (2, 0) and empty.observations.shape == (2, 0)
    with pytest.raises(DtypeMismatchError):  # integer "probabilities" are not cast
        HiddenMarkovModel.from_probs(torch.tensor([1, 0]), torch.eye(2, dtype=torch.long),
                                     hmm.emission)
