"""pgm.hmm inference against enumeration of all state paths, and the other checks of issue 5."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pgm.hmm import (
    CategoricalEmission,
    GaussianEmission,
    HiddenMarkovModel,
    filter_states,
    kbest,
    log_likelihood,
    posterior,
    sample_states,
    viterbi,
)
from probforge.errors import (
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import make_generator
from tests.stats import chi_square_gof, seed_for

F64 = torch.float64
TOL = 1e-10


def _random_hmm(gen, K, *, family="gaussian", D=2, M=4, dtype=F64, forbid=False):
    init = torch.softmax(torch.randn(K, generator=gen, dtype=dtype), -1)
    trans = torch.softmax(torch.randn(K, K, generator=gen, dtype=dtype) * 1.5, -1)
    if forbid and K > 1:
        trans[0, 1] = 0.0
        trans = trans / trans.sum(-1, keepdim=True)
    if family == "gaussian":
        em = GaussianEmission(torch.randn(K, D, generator=gen, dtype=dtype) * 2,
                              0.5 + torch.rand(K, D, generator=gen, dtype=dtype), "diag")
    else:
        em = CategoricalEmission(
            torch.log_softmax(torch.randn(K, M, generator=gen, dtype=dtype), -1))
    return HiddenMarkovModel.from_probs(init, trans, em)


def _brute(hmm, x, missing=None, clamp=None):
    """Joint log p(x, y) of every path of one sequence x (T, ...)."""
    K = hmm.n_states
    T = x.shape[0]
    ll = hmm.emission.log_prob(hmm.emission.fill(x, torch.ones(T, dtype=torch.bool)))
    if missing is not None:
        ll = torch.where(missing[:, None], torch.zeros_like(ll), ll)
    paths = list(itertools.product(range(K), repeat=T))
    y = torch.tensor(paths)  # (P, T)
    scores = hmm.log_initial[y[:, 0]] + ll[torch.arange(T), y].sum(-1)
    if T > 1:
        scores = scores + hmm.log_transition[y[:, :-1], y[:, 1:]].sum(-1)
    if clamp is not None:
        bad = ((clamp >= 0) & (y != clamp)).any(-1)
        scores = torch.where(bad, torch.tensor(-math.inf, dtype=scores.dtype), scores)
    return scores, paths


@pytest.mark.parametrize("family", ["gaussian", "categorical"])
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_against_path_enumeration(family, method):
    gen = make_generator(seed_for(10))
    K, T, B = 3, 7, 3
    hmm = _random_hmm(gen, K, family=family, forbid=True)
    draw = hmm.sample(T, n_sequences=B, generator=gen)
    x = draw.observations
    lengths = torch.tensor([7, 4, 1])
    missing = torch.zeros(B, T, dtype=torch.bool)
    missing[0, 2] = missing[1, 0] = True
    clamp = torch.full((B, T), -1)
    clamp[0, 5] = int(draw.states[0, 5])
    ll = log_likelihood(hmm, x, lengths=lengths, missing=missing, clamp=clamp, method=method)
    post = posterior(hmm, x, lengths=lengths, missing=missing, clamp=clamp, pairwise=True,
                     method=method)
    vit = viterbi(hmm, x, lengths=lengths, missing=missing, clamp=clamp, method=method)
    filt = filter_states(hmm, x, lengths=lengths, missing=missing, clamp=clamp, method=method)
    top = kbest(hmm, x, 4, lengths=lengths, missing=missing, clamp=clamp)
    for b in range(B):
        n = int(lengths[b])
        scores, paths = _brute(hmm, x[b, :n], missing[b, :n], clamp[b, :n])
        lz = torch.logsumexp(scores, 0)
        torch.testing.assert_close(ll[b], lz, rtol=TOL, atol=TOL)
        torch.testing.assert_close(post.log_likelihood[b], lz, rtol=TOL, atol=TOL)
        prob = (scores - lz).exp()
        marg = torch.zeros(n, K, dtype=F64)
        pair = torch.zeros(max(n - 1, 0), K, K, dtype=F64)
        for y, q in zip(paths, prob, strict=True):
            for t in range(n):
                marg[t, y[t]] += q
            for t in range(n - 1):
                pair[t, y[t], y[t + 1]] += q
        torch.testing.assert_close(post.state_probs[b, :n], marg, rtol=TOL, atol=TOL)
        assert (post.state_probs[b, n:] == 0).all()
        torch.testing.assert_close(post.transition_probs[b, : n - 1], pair, rtol=TOL, atol=TOL)
        best = int(scores.argmax())
        assert vit.states[b, :n].tolist() == list(paths[best])
        assert (vit.states[b, n:] == -1).all()
        torch.testing.assert_close(vit.log_prob[b], scores[best], rtol=TOL, atol=TOL)
        want = torch.sort(scores, descending=True).values[:4]
        want = torch.cat([want, torch.full((4 - len(want),), -math.inf, dtype=F64)])
        torch.testing.assert_close(top.log_prob[b], want, rtol=TOL, atol=TOL)
        # filtering: p(y_t | x_0..t) by enumeration of the prefix
        for t in range(n):
            sc, pp = _brute(hmm, x[b, : t + 1], missing[b, : t + 1], clamp[b, : t + 1])
            pr = (sc - torch.logsumexp(sc, 0)).exp()
            want = torch.zeros(K, dtype=F64)
            for y, q in zip(pp, pr, strict=True):
                want[y[-1]] += q
            torch.testing.assert_close(filt[b, t], want, rtol=TOL, atol=TOL)


def test_ragged_batch_equals_one_by_one_and_unbatched():
    gen = make_generator(seed_for(11))
    hmm = _random_hmm(gen, 4)
    x = hmm.sample(60, n_sequences=5, generator=gen).observations
    lengths = torch.tensor([60, 33, 1, 59, 12])
    x = x.clone()
    for b, n in enumerate(lengths.tolist()):
        x[b, n:] = math.nan  # padding may hold anything
    ll = log_likelihood(hmm, x, lengths=lengths)
    post = posterior(hmm, x, lengths=lengths)
    vit = viterbi(hmm, x, lengths=lengths)
    mask = torch.arange(60)[None, :] < lengths[:, None]
    torch.testing.assert_close(log_likelihood(hmm, x, mask=mask), ll, rtol=1e-12, atol=1e-12)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ll[b], log_likelihood(hmm, x[b, :n]), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(post.state_probs[b, :n], posterior(hmm, x[b, :n]).state_probs,
                                   rtol=1e-10, atol=1e-12)
        assert vit.states[b, :n].tolist() == viterbi(hmm, x[b, :n]).states.tolist()


# masks "all": padding, missing and clamped steps (the streamed kernel on batch-major blocks);
# "lengths": padding only (categorical: the indexed kernel); "none": every step observed
# (Gaussian: emissions computed from time-major observations; categorical: indexed)
@pytest.mark.parametrize("masks", ["all", "lengths", "none"])
@pytest.mark.parametrize("family, K", [("gaussian", 16), ("categorical", 64)])
def test_many_states_log_likelihood_equals_the_posterior_pass(family, K, masks):
    # log_likelihood streams its emissions through fused kernels from K = 16 on; posterior
    # builds the whole emission table: both must agree
    gen = make_generator(seed_for(12) + K)
    hmm = _random_hmm(gen, K, family=family, M=20, forbid=True)
    B, T = 12, 300
    draw = hmm.sample(T, n_sequences=B, generator=gen)
    x = draw.observations.clone()
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T
    if family == "gaussian":
        for b, n in enumerate(lengths.tolist()):
            x[b, n:] = math.nan  # padding may hold anything
    missing = torch.rand(B, T, generator=gen) < 0.1
    clamp = torch.where(torch.rand(B, T, generator=gen) < 0.05, draw.states, -1)
    if masks == "none":
        lengths = torch.full((B,), T)
        x = draw.observations
    kw = {"all": dict(lengths=lengths, missing=missing, clamp=clamp),
          "lengths": dict(lengths=lengths), "none": {}}[masks]
    ll = log_likelihood(hmm, x, **kw)
    torch.testing.assert_close(ll, posterior(hmm, x, **kw).log_likelihood, rtol=1e-12, atol=0)
    for b in (0, 5):
        n = int(lengths[b])
        one_kw = dict(missing=missing[b, :n], clamp=clamp[b, :n]) if masks == "all" else {}
        one = log_likelihood(hmm, x[b, :n], **one_kw)
        torch.testing.assert_close(ll[b], one, rtol=1e-12, atol=0)
    hmm32 = hmm.to(torch.float32)
    x32 = x.float() if family == "gaussian" else x
    ll32 = log_likelihood(hmm32, x32, **kw)
    assert ll32.dtype == torch.float32
    torch.testing.assert_close(ll32.double(), ll, rtol=1e-5, atol=0)


def test_float32_close_to_float64_and_long_sequence_finite():
    _float32_and_long(20_000)


@pytest.mark.slow
def test_float32_close_to_float64_and_long_sequence_finite_100k():
    _float32_and_long(100_000)


def _float32_and_long(T):
    gen = make_generator(seed_for(12))
    hmm = _random_hmm(gen, 4)
    x = hmm.sample(T, generator=gen).observations
    ll64 = log_likelihood(hmm, x)
    hmm32 = hmm.to(torch.float32)
    ll32 = log_likelihood(hmm32, x.float())
    assert torch.isfinite(ll64) and torch.isfinite(ll32)
    assert abs(float(ll32) - float(ll64)) <= 1e-5 * abs(float(ll64))
    p32 = posterior(hmm32, x.float()).state_probs
    p64 = posterior(hmm, x).state_probs
    assert torch.isfinite(p32).all()
    assert float((p32.double() - p64).abs().max()) < 1e-3
    v64, v32 = viterbi(hmm, x), viterbi(hmm32, x.float())
    assert torch.isfinite(v64.log_prob)
    assert abs(float(v32.log_prob) - float(v64.log_prob)) <= 1e-5 * abs(float(v64.log_prob))


def test_missing_observations_marginalise():
    gen = make_generator(seed_for(13))
    hmm = _random_hmm(gen, 3)
    x = hmm.sample(10, generator=gen).observations
    missing = torch.zeros(10, dtype=torch.bool)
    missing[3:6] = True
    xn = x.clone()
    xn[3:6] = math.nan
    # the missing steps contribute no emission term: compare with enumeration
    ll = log_likelihood(hmm, xn, missing=missing)
    scores, _ = _brute(hmm, x, missing)
    torch.testing.assert_close(ll, torch.logsumexp(scores, 0), rtol=TOL, atol=TOL)
    with pytest.raises(NonFiniteError, match="step 3"):
        log_likelihood(hmm, xn)


def test_posterior_sampling_matches_enumeration():
    gen = make_generator(seed_for(14))
    hmm = _random_hmm(gen, 3, family="categorical")
    x = hmm.sample(4, generator=gen).observations
    scores, _paths = _brute(hmm, x)
    prob = (scores - torch.logsumexp(scores, 0)).exp()
    for method in ("sequential", "parallel"):
        s = sample_states(hmm, x, 20_000, generator=make_generator(seed_for(15)), method=method)
        codes = (s * torch.tensor([27, 9, 3, 1])).sum(-1)
        counts = torch.bincount(codes, minlength=81)
        # paths enumerate with the last step fastest, as the codes; false-failure rate 1e-4
        chi_square_gof(counts, prob, alpha=1e-4)


def test_sample_transition_frequencies():
    gen = make_generator(seed_for(16))
    hmm = _random_hmm(gen, 3, family="categorical")
    draw = hmm.sample(400, n_sequences=50, generator=gen)
    s = draw.states
    counts = torch.zeros(3, 3)
    counts.index_put_((s[:, :-1].reshape(-1), s[:, 1:].reshape(-1)), torch.ones(50 * 399),
                      accumulate=True)
    for i in range(3):
        # false-failure rate 1e-4 per row (3 rows)
        chi_square_gof(counts[i], hmm.transition_probs[i], alpha=1e-4)
    first = torch.bincount(s[:, 0], minlength=3)
    assert first.sum() == 50
    sym = torch.zeros(3, 4)
    sym.index_put_((s.reshape(-1), draw.observations.reshape(-1)), torch.ones(s.numel()),
                   accumulate=True)
    for i in range(3):
        chi_square_gof(sym[i], hmm.emission.log_probs[i].exp(), alpha=1e-4)


def test_bad_inputs_name_what_is_wrong():
    e = CategoricalEmission(torch.tensor([[0.5, 0.5], [0.2, 0.8]], dtype=F64).log())
    with pytest.raises(NormalisationError, match="row 1"):
        HiddenMarkovModel.from_probs(torch.tensor([0.5, 0.5], dtype=F64),
                                     torch.tensor([[0.9, 0.1], [0.3, 0.6]], dtype=F64), e)
    with pytest.raises(NormalisationError, match="log_initial"):
        HiddenMarkovModel.from_probs(torch.tensor([0.5, 0.6], dtype=F64),
                                     torch.tensor([[0.9, 0.1], [0.3, 0.7]], dtype=F64), e)
    with pytest.raises(NormalisationError, match="row 0"):
        CategoricalEmission(torch.tensor([[0.5, 0.6], [0.2, 0.8]]).log())
    hmm = HiddenMarkovModel.from_probs(torch.tensor([0.5, 0.5], dtype=F64),
                                       torch.tensor([[0.9, 0.1], [0.3, 0.7]], dtype=F64), e)
    with pytest.raises(ValidationError, match=r"sequence \[1\], step 2"):
        log_likelihood(hmm, torch.tensor([[0, 1, 1], [0, 1, 2]]))
    with pytest.raises(ValidationError, match="integer"):
        log_likelihood(hmm, torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ShapeError, match="lengths"):
        log_likelihood(hmm, torch.tensor([[0, 1, 1], [0, 1, 0]]), lengths=torch.tensor([3]))
    with pytest.raises(ValidationError, match="lengths of sequence 1"):
        log_likelihood(hmm, torch.tensor([[0, 1, 1], [0, 1, 0]]), lengths=torch.tensor([3, 4]))
    with pytest.raises(ValidationError, match="clamp"):
        log_likelihood(hmm, torch.tensor([0, 1]), clamp=torch.tensor([0, 5]))
    g = GaussianEmission(torch.zeros(2, 1, dtype=F64), torch.ones(2, 1, dtype=F64))
    hg = hmm.replace(emission=g)
    with pytest.raises(NonFiniteError, match=r"sequence \[0\], step 1"):
        log_likelihood(hg, torch.tensor([[[0.0], [math.nan]]], dtype=F64))
    with pytest.raises(ShapeError, match="emission"):
        HiddenMarkovModel.from_probs(torch.tensor([1.0], dtype=F64),
                                     torch.tensor([[1.0]], dtype=F64), g)
    # impossible evidence: clamp to a state the observation excludes
    e0 = CategoricalEmission(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64).log())
    h0 = hmm.replace(emission=e0)
    assert log_likelihood(h0, torch.tensor([0, 1]), clamp=torch.tensor([1, -1])) == -math.inf
    with pytest.raises(ZeroProbabilityEvidence):
        posterior(h0, torch.tensor([0, 1]), clamp=torch.tensor([1, -1]))
