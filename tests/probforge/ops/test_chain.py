"""probforge.ops.chain against enumeration of all K^T paths, and scan against recursion."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import make_generator
from probforge.ops.chain import (
    chain_backward,
    chain_entropy,
    chain_forward,
    chain_kbest,
    chain_log_partition,
    chain_marginals,
    chain_sample,
    chain_viterbi,
    choose_method,
)
from probforge.ops.special import logsumexp
from tests.stats import chi_square_gof, seed_for

F64 = torch.float64
METHODS = ("sequential", "parallel")
TOL = 1e-10


# ----------------------------------------------------------------------------------------------
# brute force


def _enum(u: torch.Tensor, p: torch.Tensor, L: int) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Scores of all K^L paths of one chain: u (T, K), p (T-1, K, K)."""
    K = u.shape[-1]
    paths = list(itertools.product(range(K), repeat=L))
    scores = []
    for y in paths:
        s = sum(u[t, y[t]] for t in range(L))
        s = s + sum(p[t, y[t], y[t + 1]] for t in range(L - 1))
        scores.append(torch.as_tensor(s, dtype=u.dtype))
    return torch.stack(scores), paths


class Brute:
    """Everything about one chain by enumeration."""

    def __init__(self, u: torch.Tensor, p: torch.Tensor, L: int) -> None:
        T, K = u.shape
        self.scores, self.paths = _enum(u, p, L)
        self.log_z = torch.logsumexp(self.scores, 0)
        self.max = self.scores.max()
        prob = (self.scores - self.log_z).exp() if self.log_z > -math.inf else None
        self.prob = prob
        self.unary = torch.zeros(T, K, dtype=u.dtype)
        self.pair = torch.zeros(max(T - 1, 0), K, K, dtype=u.dtype)
        self.alpha = torch.full((T, K), -math.inf, dtype=u.dtype)
        self.beta = torch.full((T, K), -math.inf, dtype=u.dtype)
        for t in range(L):
            for k in range(K):
                pre, _ = _enum(u[: t + 1], p[:t], t + 1) if t >= 0 else (None, None)
                ends = torch.tensor([y[-1] == k for y in itertools.product(range(K), repeat=t + 1)])
                self.alpha[t, k] = torch.logsumexp(pre[ends], 0)
                # beta: sum over continuations y_{t+1..L-1} given y_t = k
                if t == L - 1:
                    self.beta[t, k] = 0.0
                else:
                    u2 = u[t : L].clone()
                    u2[0] = 0.0
                    suf, sp = _enum(u2, p[t : L - 1], L - t)
                    starts = torch.tensor([y[0] == k for y in sp])
                    self.beta[t, k] = torch.logsumexp(suf[starts], 0)
        if prob is not None:
            for y, q in zip(self.paths, prob, strict=True):
                for t in range(L):
                    self.unary[t, y[t]] += q
                for t in range(L - 1):
                    self.pair[t, y[t], y[t + 1]] += q
            nz = prob > 0
            self.entropy = -(prob[nz] * prob[nz].log()).sum()


def _random_chain(
    gen: torch.Generator,
    batch: tuple[int, ...],
    T: int,
    K: int,
    *,
    pair_form: str = "full",
    forbid: float = 0.0,
    lengths: bool = False,
    dtype: torch.dtype = F64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    u = torch.randn(*batch, T, K, generator=gen, dtype=dtype) * 2
    shape = {
        "shared": (K, K),
        "time": (max(T - 1, 0), K, K),
        "full": (*batch, max(T - 1, 0), K, K),
        "batch1": (*batch, 1, K, K),
    }[pair_form]
    p = torch.randn(*shape, generator=gen, dtype=dtype)
    if forbid > 0:
        p = torch.where(torch.rand(p.shape, generator=gen) < forbid, -math.inf, p)
        u = torch.where(torch.rand(u.shape, generator=gen) < forbid / 2, -math.inf, u)
    lens = None
    if lengths:
        lens = torch.randint(1, T + 1, batch, generator=gen)
    return u, p, lens


def _full_pair(p: torch.Tensor, batch: tuple[int, ...], T: int, K: int) -> torch.Tensor:
    if p.dim() == 2:
        p = p.reshape(K, K).expand(1, K, K)
    return p.expand(*batch, max(T - 1, 0), K, K)


def _brutes(u, p, lens):
    *batch, T, K = u.shape
    batch = tuple(batch)
    pf = _full_pair(p, batch, T, K)
    out = {}
    for idx in itertools.product(*(range(b) for b in batch)):
        L = T if lens is None else int(lens[idx])
        out[idx] = Brute(u[idx], pf[idx], L)
    return out


CASES = [
    # (batch, T, K, pair_form, forbid, lengths)
    ((), 1, 3, "shared", 0.0, False),
    ((), 5, 3, "shared", 0.0, False),
    ((), 6, 2, "time", 0.3, False),
    ((3,), 4, 3, "full", 0.0, True),
    ((2, 2), 5, 2, "batch1", 0.2, True),
    ((4,), 3, 4, "full", 0.25, True),
    ((3,), 6, 1, "shared", 0.0, True),
]


@pytest.fixture(scope="module")
def cases():
    gen = make_generator(seed_for(0))
    out = []
    for batch, T, K, form, forbid, lens in CASES:
        u, p, L = _random_chain(gen, batch, T, K, pair_form=form, forbid=forbid, lengths=lens)
        brutes = _brutes(u, p, L)
        out.append((u, p, L, brutes))
    return out


def _each(brutes):
    return brutes.items()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("i", range(len(CASES)))
def test_log_partition_and_max_match_enumeration(cases, method, i):
    u, p, L, brutes = cases[i]
    lz = chain_log_partition(u, p, L, method=method)
    mx = chain_log_partition(u, p, L, semiring="max", method=method)
    for idx, br in _each(brutes):
        torch.testing.assert_close(lz[idx], br.log_z, rtol=TOL, atol=TOL)
        torch.testing.assert_close(mx[idx], br.max, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("i", range(len(CASES)))
def test_forward_backward_messages_match_enumeration(cases, method, i):
    u, p, L, brutes = cases[i]
    a = chain_forward(u, p, L, method=method)
    b = chain_backward(u, p, L, method=method)
    for idx, br in _each(brutes):
        torch.testing.assert_close(a[idx], br.alpha, rtol=TOL, atol=TOL)
        torch.testing.assert_close(b[idx], br.beta, rtol=TOL, atol=TOL)


def _feasible(brutes):
    return all(br.log_z > -math.inf for br in brutes.values())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("i", range(len(CASES)))
def test_marginals_match_enumeration_and_gradient(cases, method, i):
    u, p, L, brutes = cases[i]
    if not _feasible(brutes):
        with pytest.raises(ZeroProbabilityEvidence):
            chain_marginals(u, p, L, method=method)
        return
    m = chain_marginals(u, p, L, method=method)
    *batch, T, K = u.shape
    for idx, br in _each(brutes):
        torch.testing.assert_close(m.log_z[idx], br.log_z, rtol=TOL, atol=TOL)
        torch.testing.assert_close(m.unary[idx], br.unary, rtol=TOL, atol=TOL)
        torch.testing.assert_close(m.pair[idx], br.pair, rtol=TOL, atol=TOL)
    # marginals = gradient of log Z
    uu = u.clone().requires_grad_(True)
    pp = p.clone().requires_grad_(True)
    chain_log_partition(uu, pp, L, method=method).sum().backward()
    torch.testing.assert_close(uu.grad, m.unary, rtol=TOL, atol=TOL)
    want_p = m.pair
    if p.dim() == 2:
        want_p = m.pair.reshape(-1, K, K).sum(0)
    elif p.shape[-3] == 1:
        want_p = m.pair.sum(-3, keepdim=True)
    elif p.dim() == 3 and len(batch) > 0:
        want_p = m.pair.reshape(-1, T - 1, K, K).sum(0)
    got_p = torch.zeros_like(pp) if pp.grad is None else pp.grad  # T = 1: pair unused
    torch.testing.assert_close(got_p, want_p, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("i", range(len(CASES)))
def test_viterbi_matches_enumeration(cases, method, i):
    u, p, L, brutes = cases[i]
    if not _feasible(brutes):
        with pytest.raises(ZeroProbabilityEvidence):
            chain_viterbi(u, p, L, method=method)
        return
    v = chain_viterbi(u, p, L, method=method)
    T = u.shape[-2]
    for idx, br in _each(brutes):
        best = br.paths[int(br.scores.argmax())]
        want = list(best) + [-1] * (T - len(best))
        assert v.path[idx].tolist() == want
        torch.testing.assert_close(v.score[idx], br.max, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("i", range(len(CASES)))
def test_kbest_matches_enumeration(cases, i):
    u, p, L, brutes = cases[i]
    k = 5
    kb = chain_kbest(u, p, k, L)
    T = u.shape[-2]
    for idx, br in _each(brutes):
        order = torch.argsort(br.scores, descending=True)
        want = br.scores[order][:k]
        n_feasible = int((br.scores > -math.inf).sum())
        got = kb.score[idx]
        nf = min(k, n_feasible)
        torch.testing.assert_close(got[:nf], want[:nf], rtol=TOL, atol=TOL)
        assert torch.all(got[nf:] == -math.inf)
        assert torch.all(kb.path[idx][nf:] == -1)
        seen = set()
        for r in range(nf):
            path = kb.path[idx][r].tolist()
            Lb = len(br.paths[0])
            assert all(s == -1 for s in path[Lb:]) and len(path) == T
            tup = tuple(path[:Lb])
            assert tup not in seen  # distinct
            seen.add(tup)
            torch.testing.assert_close(
                br.scores[br.paths.index(tup)], got[r], rtol=TOL, atol=TOL
            )


@pytest.mark.parametrize("i", range(len(CASES)))
def test_entropy_matches_enumeration(cases, i):
    u, p, L, brutes = cases[i]
    if not _feasible(brutes):
        with pytest.raises(ZeroProbabilityEvidence):
            chain_entropy(u, p, L)
        return
    h = chain_entropy(u, p, L)
    for idx, br in _each(brutes):
        torch.testing.assert_close(h[idx], br.entropy, rtol=TOL, atol=TOL)


def test_kbest_one_equals_viterbi_and_fewer_paths_than_k():
    gen = make_generator(seed_for(1))
    u, p, _ = _random_chain(gen, (3,), 5, 3)
    v = chain_viterbi(u, p)
    kb = chain_kbest(u, p, 1)
    assert torch.equal(kb.path[:, 0], v.path)
    torch.testing.assert_close(kb.score[:, 0], v.score, rtol=TOL, atol=TOL)
    # only 2 * 2 = 4 paths exist: ask for 6
    kb = chain_kbest(torch.zeros(2, 2, dtype=F64), torch.zeros(2, 2, dtype=F64), 6)
    assert kb.score[:4].tolist() == [0.0] * 4 and kb.score[4:].tolist() == [-math.inf] * 2
    assert len({tuple(x) for x in kb.path[:4].tolist()}) == 4
    assert kb.path[4:].eq(-1).all()


# ----------------------------------------------------------------------------------------------
# scan == recursion on long chains, padding, precision


@pytest.mark.parametrize("K", [1, 3, 8])
def test_parallel_equals_sequential_long(K):
    gen = make_generator(seed_for(2))
    u, p, L = _random_chain(gen, (3,), 301, K, pair_form="full", forbid=0.1, lengths=True)
    L[0] = 301
    # keep it feasible: no -inf unary, transitions to self always allowed
    u = u.clamp_min(-30)
    eye = torch.eye(K, dtype=torch.bool)
    p = torch.where(eye, p.clamp_min(-5), p)
    for fn in (chain_log_partition, chain_forward, chain_backward):
        a = fn(u, p, L, method="sequential")
        b = fn(u, p, L, method="parallel")
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-9)
    ms = chain_marginals(u, p, L, method="sequential")
    mp = chain_marginals(u, p, L, method="parallel")
    torch.testing.assert_close(ms.unary, mp.unary, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ms.pair, mp.pair, rtol=1e-9, atol=1e-10)
    vs = chain_viterbi(u, p, L, method="sequential")
    vp = chain_viterbi(u, p, L, method="parallel")
    assert torch.equal(vs.path, vp.path)
    torch.testing.assert_close(vs.score, vp.score, rtol=1e-12, atol=1e-9)


def test_ragged_batch_equals_one_by_one():
    gen = make_generator(seed_for(3))
    u, p, L = _random_chain(gen, (4,), 40, 3, pair_form="full", lengths=True)
    # garbage (even NaN) in the padding changes nothing, value or gradient
    steps = torch.arange(40)
    pad = steps[None, :] >= L[:, None]
    u = torch.where(pad[..., None], torch.nan, u)
    p = torch.where(pad[:, 1:, None, None], torch.nan, p)
    for method in METHODS:
        uu = u.clone().requires_grad_(True)
        lz = chain_log_partition(uu, p, L, method=method)
        lz.sum().backward()
        assert torch.isfinite(uu.grad).all()
        assert (uu.grad[pad] == 0).all()
        m = chain_marginals(u, p, L, method=method)
        v = chain_viterbi(u, p, L, method=method)
        for b in range(4):
            n = int(L[b])
            ub, pb = u[b, :n], p[b, : n - 1]
            torch.testing.assert_close(lz[b], chain_log_partition(ub, pb, method=method))
            mb = chain_marginals(ub, pb, method=method)
            torch.testing.assert_close(m.unary[b, :n], mb.unary)
            torch.testing.assert_close(m.pair[b, : n - 1], mb.pair)
            assert (m.unary[b, n:] == 0).all() and (m.pair[b, n - 1 :] == 0).all()
            vb = chain_viterbi(ub, pb, method=method)
            assert v.path[b, :n].tolist() == vb.path.tolist()
            assert (v.path[b, n:] == -1).all()


def test_long_chain_finite_and_float32_close():
    _long_chain(20_000)


@pytest.mark.slow
def test_long_chain_finite_and_float32_close_100k():
    _long_chain(100_000)


def _long_chain(T):
    gen = make_generator(seed_for(4))
    K = 4
    u = torch.randn(T, K, generator=gen, dtype=F64) * 3
    p = torch.log_softmax(torch.randn(K, K, generator=gen, dtype=F64) * 2, -1)
    lz64 = chain_log_partition(u, p)
    lz32 = chain_log_partition(u.float(), p.float())
    assert torch.isfinite(lz64) and torch.isfinite(lz32)
    assert abs(float(lz32) - float(lz64)) <= 1e-5 * abs(float(lz64))
    m64 = chain_marginals(u, p, pairwise=False).unary
    m32 = chain_marginals(u.float(), p.float(), pairwise=False).unary
    assert torch.isfinite(m32).all()
    assert float((m32.double() - m64).abs().max()) < 1e-4
    v64 = chain_viterbi(u, p)
    v32 = chain_viterbi(u.float(), p.float())
    assert abs(float(v32.score) - float(v64.score)) <= 1e-5 * abs(float(v64.score))
    assert float((v32.path != v64.path).float().mean()) < 1e-3


def test_parallel_exact_where_matmul_would_underflow():
    # alpha = [0, -800] relative, transitions [-800, 0] into state 1, and only state 1 is
    # possible next: the product of max-shifted exponentials underflows in float64.
    u = torch.tensor([[0.0, -800.0], [-math.inf, 0.0], [0.0, 0.0]], dtype=F64)
    p = torch.tensor([[0.0, -800.0], [0.0, 0.0]], dtype=F64)
    want = chain_log_partition(u, p, method="sequential")
    got = chain_log_partition(u, p, method="parallel")
    assert math.isfinite(float(want))
    torch.testing.assert_close(got, want, rtol=TOL, atol=TOL)


def test_marginals_are_differentiable():
    gen = make_generator(seed_for(5))
    u, p, _ = _random_chain(gen, (2,), 4, 3, pair_form="shared")
    for method in METHODS:
        torch.autograd.gradcheck(
            lambda a, b, m=method: chain_marginals(a, b, method=m).pair,
            (u.clone().requires_grad_(True), p.clone().requires_grad_(True)),
        )
        torch.autograd.gradcheck(
            lambda a, b: chain_entropy(a, b),
            (u.clone().requires_grad_(True), p.clone().requires_grad_(True)),
        )


# ----------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("method", METHODS)
def test_sample_matches_posterior(method):
    gen = make_generator(seed_for(6))
    u, p, L = _random_chain(gen, (2,), 4, 3, pair_form="full", lengths=True)
    L[0] = 4
    n = 20_000
    s = chain_sample(u, p, L, num_samples=n, generator=make_generator(seed_for(7)), method=method)
    assert s.shape == (n, 2, 4)
    brutes = _brutes(u, p, L)
    for b in range(2):
        br = brutes[(b,)]
        Lb = int(L[b])
        assert (s[:, b, Lb:] == -1).all()
        codes = torch.zeros(n, dtype=torch.long)
        for t in range(Lb):
            codes = codes * 3 + s[:, b, t]
        counts = torch.bincount(codes, minlength=3**Lb)
        # enumeration order is lexicographic with the last step fastest, as the codes
        # False-failure rate: 1e-4 per sequence (chi-square goodness of fit).
        chi_square_gof(counts, br.prob, alpha=1e-4)


def test_sample_reproducible_and_respects_forbidden():
    u = torch.zeros(5, 3, dtype=F64)
    p = torch.tensor([[0.0, 0.0, -math.inf], [-math.inf, 0.0, 0.0], [0.0, -math.inf, 0.0]],
                     dtype=F64)
    a = chain_sample(u, p, num_samples=200, generator=make_generator(1))
    b = chain_sample(u, p, num_samples=200, generator=make_generator(1))
    assert torch.equal(a, b)
    for path in a.tolist():
        for x, y in itertools.pairwise(path):
            assert p[x, y] > -math.inf


# ----------------------------------------------------------------------------------------------
# errors


def test_errors_name_the_argument():
    u = torch.zeros(2, 4, 3, dtype=F64)
    with pytest.raises(ShapeError, match="pair"):
        chain_log_partition(u, torch.zeros(3, 3, 3, 3, dtype=F64))  # 3 pair batches, 2 sequences
    with pytest.raises(ShapeError, match="pair"):
        chain_log_partition(u, torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ShapeError, match="pair"):
        chain_log_partition(u, torch.zeros(5, 3, 3, dtype=F64))
    with pytest.raises(ShapeError, match="unary"):
        chain_log_partition(torch.zeros(3, dtype=F64), torch.zeros(3, 3, dtype=F64))
    with pytest.raises(DtypeMismatchError):
        chain_log_partition(u, torch.zeros(3, 3, dtype=torch.float32))
    with pytest.raises(ValidationError, match=r"lengths\[1\]"):
        chain_log_partition(u, torch.zeros(3, 3, dtype=F64), torch.tensor([2, 5]))
    with pytest.raises(ShapeError, match="lengths"):
        chain_log_partition(u, torch.zeros(3, 3, dtype=F64), torch.tensor([2]))
    bad = u.clone()
    bad[1, 2, 0] = math.nan
    with pytest.raises(NonFiniteError, match=r"\[1, 2, 0\]"):
        chain_log_partition(bad, torch.zeros(3, 3, dtype=F64))
    with pytest.raises(NonFiniteError, match="pair"):
        chain_log_partition(u, torch.full((3, 3), math.inf, dtype=F64))
    with pytest.raises(ValidationError, match="method"):
        chain_log_partition(u, torch.zeros(3, 3, dtype=F64), method="fast")
    with pytest.raises(ValidationError, match="k"):
        chain_kbest(u, torch.zeros(3, 3, dtype=F64), 0)


def test_infeasible_sequence():
    u = torch.zeros(2, 3, 2, dtype=F64)
    u[1, 1] = -math.inf  # sequence 1: no state possible at t = 1
    p = torch.zeros(2, 2, dtype=F64)
    lz = chain_log_partition(u, p)
    assert lz[0] == math.log(8) or abs(float(lz[0]) - math.log(8)) < 1e-12
    assert lz[1] == -math.inf
    for fn in (chain_marginals, chain_viterbi, chain_sample, chain_entropy):
        with pytest.raises(ZeroProbabilityEvidence, match=r"\[1\]"):
            fn(u, p)
    kb = chain_kbest(u, p, 2)
    assert (kb.score[1] == -math.inf).all() and (kb.path[1] == -1).all()


def test_choose_method():
    assert choose_method(1, 100_000, 4) == "parallel"
    assert choose_method(1, 10, 4) == "sequential"
    assert choose_method(100, 1000, 256) == "sequential"


@pytest.mark.parametrize("method", METHODS)
def test_pairwise_sum_equals_summed_pairwise(method):
    gen = make_generator(seed_for(8))
    u, p, L = _random_chain(gen, (3,), 9, 3, pair_form="full", lengths=True)
    m = chain_marginals(u, p, L, method=method)
    s = chain_marginals(u, p, L, method=method, pairwise="sum")
    torch.testing.assert_close(s.pair, m.pair.sum(-3), rtol=TOL, atol=TOL)
    torch.testing.assert_close(s.unary, m.unary, rtol=TOL, atol=TOL)


# ----------------------------------------------------------------------------------------------
# the scaled (probability-domain) log Z of the sequential method against the log-space recursion


@pytest.fixture
def log_space_calls(monkeypatch):
    """Count the calls of the generic log-space log Z (the scaled path's fall-back)."""
    import probforge.ops.chain.partition as chain

    calls = [0]
    orig = chain._log_space_log_z

    def counted(*args):
        calls[0] += 1
        return orig(*args)

    monkeypatch.setattr(chain, "_log_space_log_z", counted)
    return calls


def _log_space(u, p, L):
    """log Z and its gradients through the log-space forward messages (``chain_forward``)."""
    uu = u.clone().requires_grad_(True)
    pp = p.clone().requires_grad_(True)
    a = chain_forward(uu, pp, L, method="sequential")
    if L is None:
        last = a[..., -1, :]
    else:
        idx = (L - 1)[..., None, None].expand(*L.shape, 1, a.shape[-1])
        last = a.gather(-2, idx)[..., 0, :]
    lz = logsumexp(last, -1)  # finite gradient for an infeasible sequence, as the chain core
    gu, gp = torch.autograd.grad(lz.sum(), (uu, pp))
    return lz.detach(), gu, gp


def _scaled(u, p, L):
    uu = u.clone().requires_grad_(True)
    pp = p.clone().requires_grad_(True)
    lz = chain_log_partition(uu, pp, L, method="sequential")
    gu, gp = torch.autograd.grad(lz.sum(), (uu, pp))
    return lz.detach(), gu, gp


@pytest.mark.parametrize("form", ["shared", "time", "full", "batch1"])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_scaled_log_z_equals_log_space(form, lengths, dtype, log_space_calls):
    gen = make_generator(seed_for(9))
    K = 4
    u, p, L = _random_chain(gen, (5,), 30, K, pair_form=form, forbid=0.2, lengths=lengths)
    # feasible: state 0 always allowed, self-transitions always allowed
    u[..., 0] = u[..., 0].clamp_min(-3)
    p = torch.where(torch.eye(K, dtype=torch.bool), p.clamp_min(-3), p)
    if lengths:  # padding may hold anything
        pad = torch.arange(30)[None, :] >= L[:, None]
        u = torch.where(pad[..., None], torch.nan, u)
    got = _scaled(u.to(dtype), p.to(dtype), L)
    assert log_space_calls[0] == 0  # the scaled path ran
    want = _log_space(u, p, L)
    tol = TOL if dtype == F64 else 1e-5
    for g, w in zip(got, want, strict=True):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), w, rtol=tol, atol=tol)
    if lengths:
        assert (got[1][pad] == 0).all()


def test_scaled_log_z_falls_back_on_underflow(log_space_calls):
    # the only feasible paths have relative weight e^-800: the scaled normaliser underflows
    u = torch.tensor([[0.0, -800.0], [-math.inf, 0.0], [0.0, 0.0]], dtype=F64)
    p = torch.tensor([[0.0, -800.0], [0.0, 0.0]], dtype=F64)
    got = _scaled(u, p, None)
    assert log_space_calls[0] > 0
    br = Brute(u, p[None].expand(2, 2, 2), 3)
    torch.testing.assert_close(got[0], br.log_z, rtol=TOL, atol=TOL)
    torch.testing.assert_close(got[1], br.unary, rtol=TOL, atol=TOL)
    torch.testing.assert_close(got[2], br.pair.sum(0), rtol=TOL, atol=TOL)


def test_scaled_log_z_infeasible_sequence(log_space_calls):
    gen = make_generator(seed_for(10))
    u, p, L = _random_chain(gen, (3,), 6, 3, pair_form="shared", lengths=True)
    u[1, 2] = -math.inf  # sequence 1 has no feasible path
    L[1] = 6
    got = _scaled(u, p, L)
    assert log_space_calls[0] > 0
    assert got[0][1] == -math.inf and torch.isfinite(got[0][[0, 2]]).all()
    assert all(torch.isfinite(g).all() for g in got[1:])
    want = _log_space(u, p, L)
    torch.testing.assert_close(got[0], want[0], rtol=TOL, atol=TOL)
    torch.testing.assert_close(got[1][[0, 2]], want[1][[0, 2]], rtol=TOL, atol=TOL)
    # the whole batch (the infeasible sequence's arbitrary but finite gradient included) is
    # exactly the log-space recursion's
    import probforge.ops.chain.partition as chain

    uu = u.clone().requires_grad_(True)
    pp = p.clone().requires_grad_(True)
    lz = chain._log_space_log_z(uu, pp[None, None], L)
    want_u, want_p = torch.autograd.grad(lz.sum(), (uu, pp))
    torch.testing.assert_close(got[1], want_u, rtol=0, atol=0)
    torch.testing.assert_close(got[2], want_p, rtol=0, atol=0)


def test_scaled_log_z_gradient_falls_back_when_not_finite(log_space_calls):
    # state 1 is never reachable, but its scaled backward message grows like e^(30 t) and
    # overflows: the gradient is recomputed in log space
    T = 40
    u = torch.zeros(T, 2, dtype=F64)
    u[0, 1] = -math.inf
    p = torch.tensor([[-30.0, -math.inf], [0.0, 0.0]], dtype=F64)
    got = _scaled(u, p, None)
    assert log_space_calls[0] == 1  # the backward pass only
    want = _log_space(u, p, None)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=TOL, atol=TOL)


def test_scaled_log_z_double_backward():
    gen = make_generator(seed_for(11))
    u, p, L = _random_chain(gen, (2,), 4, 3, pair_form="shared", lengths=True)
    torch.autograd.gradgradcheck(
        lambda a, b: chain_log_partition(a, b, L, method="sequential"),
        (u.clone().requires_grad_(True), p.clone().requires_grad_(True)),
    )
    torch.autograd.gradcheck(
        lambda a, b: chain_log_partition(a, b, L, method="sequential"),
        (u.clone().requires_grad_(True), p.clone().requires_grad_(True)),
    )


def test_viterbi_pointers_equal_full_argmax():
    # the back-pointers kept during the recursion equal an argmax over all steps at once
    gen = make_generator(seed_for(12))
    u, p, L = _random_chain(gen, (6,), 25, 5, pair_form="full", forbid=0.1, lengths=True)
    u[..., 0] = u[..., 0].clamp_min(-3)
    p = torch.where(torch.eye(5, dtype=torch.bool), p.clamp_min(-3), p)
    for dtype in (F64, torch.float32):
        vs = chain_viterbi(u.to(dtype), p.to(dtype), L, method="sequential")
        vp = chain_viterbi(u.to(dtype), p.to(dtype), L, method="parallel")
        assert torch.equal(vs.path, vp.path)
        torch.testing.assert_close(vs.score, vp.score)
