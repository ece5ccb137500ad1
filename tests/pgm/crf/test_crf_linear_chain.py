"""LinearChainCRF against brute-force enumeration of every tag sequence (the definition (11.25)).

Every quantity (log Z, marginals, pairwise marginals, Viterbi, k-best, entropy, NLL, sampling) is
checked on random float64 CRFs with ragged masks and random forbidden transitions, 1e-10.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import pytest
import torch
from torch import Tensor

from pgm.crf import LinearChainCRF, TransitionConstraints, allowed_transitions, bio_constraints
from probforge.errors import (
    DtypeMismatchError,
    ShapeError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.random import make_generator
from tests.stats import chi_square_gof, seed_for

F64 = torch.float64
TOL = 1e-10


# ----------------------------------------------------------------------------------------------
# the oracle: enumerate all K^L tag sequences of each sequence, straight from the definition


def path_score(crf: LinearChainCRF, e: Tensor, y: tuple[int, ...]) -> float:
    """s(y) for one sequence: e (L, K) emissions of its valid steps."""
    start, trans, end = (x.detach() for x in crf.scores())
    s = float(start[y[0]]) + float(end[y[-1]])
    s += sum(float(e[t, k]) for t, k in enumerate(y))
    s += sum(float(trans[a, b]) for a, b in itertools.pairwise(y))
    return s


def enumerate_paths(crf: LinearChainCRF, e: Tensor) -> tuple[list[tuple[int, ...]], Tensor]:
    k = e.shape[-1]
    paths = list(itertools.product(range(k), repeat=e.shape[0]))
    scores = torch.tensor([path_score(crf, e, y) for y in paths], dtype=F64)
    return paths, scores


class Oracle(NamedTuple):
    log_z: float
    marg: Tensor  # (L, K)
    pair: Tensor  # (L-1, K, K)
    scores: Tensor  # every path's score, best first
    paths: list[tuple[int, ...]]  # ... in that order
    entropy: float
    probs: Tensor  # p(y) in enumeration order
    all_paths: list[tuple[int, ...]]  # enumeration order


def oracle(crf: LinearChainCRF, e: Tensor) -> Oracle:
    """Everything about one sequence e (L, K) by enumeration."""
    L, K = e.shape
    paths, scores = enumerate_paths(crf, e)
    log_z = torch.logsumexp(scores, 0)
    p = (scores - log_z).exp()
    marg = torch.zeros(L, K, dtype=F64)
    pair = torch.zeros(max(L - 1, 0), K, K, dtype=F64)
    for y, pr in zip(paths, p, strict=True):
        for t, k in enumerate(y):
            marg[t, k] += pr
        for t in range(L - 1):
            pair[t, y[t], y[t + 1]] += pr
    order = torch.argsort(scores, descending=True, stable=True)
    logp = torch.where(p > 0, scores - log_z, torch.zeros_like(p))
    return Oracle(float(log_z), marg, pair, scores[order], [paths[i] for i in order.tolist()],
                  float(-(p * logp).sum()), p, paths)


def random_case(seed: int, b: int = 5, t: int = 5, k: int = 3, constrained: bool = False
                ) -> tuple[LinearChainCRF, Tensor, Tensor, Tensor]:
    g = make_generator(seed)
    constraints = None
    if constrained:
        allowed = torch.rand(k, k, generator=g) < 0.7
        allowed[torch.arange(k), torch.arange(k)] = True  # keep every sequence feasible
        start = torch.rand(k, generator=g) < 0.7
        start[0] = True
        end = torch.rand(k, generator=g) < 0.7
        end[0] = True
        constraints = TransitionConstraints(start, allowed, end)
    crf = LinearChainCRF(k, constraints=constraints, init_scale=1.0, generator=g, dtype=F64)
    e = torch.randn(b, t, k, generator=g, dtype=F64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0], lengths[-1] = t, 1
    mask = torch.arange(t) < lengths[:, None]
    return crf, e, mask, lengths


CASES = [(s, c, 5, 3) for s in range(3) for c in (False, True)] + [(3, True, 6, 4)]


@pytest.mark.parametrize(("seed", "constrained", "t", "k"), CASES)
@torch.no_grad()
def test_against_enumeration(seed: int, constrained: bool, t: int, k: int) -> None:
    crf, e, mask, lengths = random_case(seed, b=4, t=t, k=k, constrained=constrained)
    log_z = crf.log_partition(e, mask)
    marg = crf.marginals(e, mask)
    post = crf.posterior(e, mask)
    best = crf.decode(e, mask)
    top = crf.kbest(e, 4, mask)
    ent = crf.entropy(e, mask)
    for b in range(e.shape[0]):
        L = int(lengths[b])
        ref = oracle(crf, e[b, :L])
        assert abs(float(log_z[b]) - ref.log_z) < TOL
        assert torch.allclose(marg[b, :L], ref.marg, atol=TOL, rtol=0)
        assert bool((marg[b, L:] == 0).all())
        assert post.pair is not None
        assert torch.allclose(post.pair[b, :L - 1], ref.pair, atol=TOL, rtol=0)
        assert bool((post.pair[b, max(L - 1, 0):] == 0).all())
        assert tuple(best.path[b, :L].tolist()) == ref.paths[0]
        assert bool((best.path[b, L:] == -1).all())
        assert abs(float(best.score[b]) - float(ref.scores[0])) < TOL
        finite = [i for i in range(4) if i < len(ref.paths) and ref.scores[i] > -math.inf]
        for i in finite:
            assert abs(float(top.score[b, i]) - float(ref.scores[i])) < TOL
            assert path_score(crf, e[b, :L], tuple(top.path[b, i, :L].tolist())) == \
                pytest.approx(float(ref.scores[i]), abs=TOL)
        assert abs(float(ent[b]) - ref.entropy) < TOL


def test_kbest_more_than_feasible_paths() -> None:
    # K = 2, L = 2 and only 0 -> 1 and 1 -> 1 allowed, start only in 0: just one path (0, 1)
    c = allowed_transitions(2, [(0, 1), (1, 1)], start=[0])
    crf = LinearChainCRF(2, constraints=c, dtype=F64, generator=make_generator(1))
    e = torch.randn(1, 2, 2, dtype=F64, generator=make_generator(2))
    top = crf.kbest(e, 3)
    assert top.path[0, 0].tolist() == [0, 1]
    assert top.score[0, 1:].tolist() == [-math.inf, -math.inf]
    assert bool((top.path[0, 1:] == -1).all())


@torch.no_grad()
def test_nll_and_log_prob_against_enumeration() -> None:
    crf, e, mask, lengths = random_case(7)
    g = make_generator(8)
    tags = torch.randint(0, 3, mask.shape, generator=g)
    tags[~mask] = 99  # padded tags are ignored, whatever they hold
    lp = crf.log_prob(e, tags, mask)
    for b in range(e.shape[0]):
        L = int(lengths[b])
        ref = oracle(crf, e[b, :L])
        want = path_score(crf, e[b, :L], tuple(tags[b, :L].tolist())) - ref.log_z
        assert abs(float(lp[b]) - want) < TOL
    n_tok = int(mask.sum())
    assert float(crf.nll(e, tags, mask, reduction="sum")) == pytest.approx(-float(lp.sum()),
                                                                           abs=TOL)
    assert float(crf.nll(e, tags, mask)) == pytest.approx(-float(lp.mean()), abs=TOL)
    assert float(crf.nll(e, tags, mask, reduction="token_mean")) == pytest.approx(
        -float(lp.sum()) / n_tok, abs=TOL)
    assert torch.allclose(crf(e, tags, mask, reduction="none"), -lp, atol=TOL, rtol=0)
    assert float(crf.log_likelihood(e, tags, mask)) == pytest.approx(float(lp.sum()), abs=TOL)


def test_marginals_are_gradient_of_log_z() -> None:
    crf, e, mask, _ = random_case(3, constrained=True)
    e = e.clone().requires_grad_(True)
    torch.autograd.backward(crf.log_partition(e, mask).sum())
    assert e.grad is not None
    assert torch.allclose(e.grad, crf.marginals(e.detach(), mask), atol=TOL, rtol=0)
    # and the transition gradient is the summed pairwise marginals
    post = crf.posterior(e.detach(), mask)
    assert post.pair is not None
    allowed = crf.allowed_transitions
    assert crf.transitions.grad is not None and allowed is not None
    want = post.pair.sum((0, 1)) * allowed
    assert torch.allclose(crf.transitions.grad, want, atol=TOL, rtol=0)


def test_gradcheck_nll() -> None:
    crf, e, mask, _ = random_case(4, b=3, t=4, k=3)
    tags = torch.randint(0, 3, mask.shape, generator=make_generator(5))
    e = e.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: crf.nll(x, tags, mask, reduction="sum"), (e,))


def test_time_first_layout_matches_batch_first() -> None:
    crf, e, mask, _ = random_case(5, constrained=True)
    tf = LinearChainCRF(3, batch_first=False, dtype=F64)
    tf.load_state_dict(crf.state_dict())
    et, mt = e.transpose(0, 1), mask.transpose(0, 1)
    tags = crf.decode(e, mask).path.clamp_min(0)  # an allowed sequence
    assert torch.allclose(tf.nll(et, tags.T, mt, reduction="none"),
                          crf.nll(e, tags, mask, reduction="none"), atol=TOL, rtol=0)
    assert torch.equal(tf.decode(et, mt).path, crf.decode(e, mask).path.T)
    assert torch.allclose(tf.marginals(et, mt), crf.marginals(e, mask).transpose(0, 1))
    assert torch.equal(tf.kbest(et, 3, mt).path, crf.kbest(e, 3, mask).path.permute(2, 0, 1))
    assert tf.decode_lists(et, mt) == crf.decode_lists(e, mask)
    s1 = tf.sample(et, mt, num_samples=4, generator=make_generator(1))
    s2 = crf.sample(e, mask, num_samples=4, generator=make_generator(1))
    assert torch.equal(s1, s2.transpose(1, 2))


def test_no_mask_equals_full_mask() -> None:
    crf, e, _, _ = random_case(9)
    full = torch.ones(e.shape[:2], dtype=torch.bool)
    assert torch.allclose(crf.log_partition(e), crf.log_partition(e, full), atol=TOL, rtol=0)
    assert torch.equal(crf.decode(e).path, crf.decode(e, full).path)


@torch.no_grad()
def test_padding_is_ignored_exactly() -> None:
    crf, e, mask, lengths = random_case(10, constrained=True)
    noisy = e.masked_fill(~mask[..., None], 1e6)
    assert torch.equal(crf.log_partition(noisy, mask), crf.log_partition(e, mask))
    for b in range(e.shape[0]):
        alone = crf.log_partition(e[b:b + 1, :int(lengths[b])])
        assert abs(float(alone[0]) - float(crf.log_partition(e, mask)[b])) < TOL


def test_float32_close_to_float64() -> None:
    crf, e, mask, _ = random_case(11, b=8, t=6, k=4)
    c32 = LinearChainCRF(4)
    c32.load_state_dict({k: v.float() for k, v in crf.state_dict().items()})
    z64 = crf.log_partition(e, mask)
    z32 = c32.log_partition(e.float(), mask)
    assert z32.dtype == torch.float32
    assert torch.allclose(z32.double(), z64, atol=1e-4, rtol=0)
    assert torch.equal(c32.decode(e.float(), mask).path, crf.decode(e, mask).path)


def test_sampling_matches_exact_distribution() -> None:
    # chi-square goodness of fit over all 27 paths; false-failure rate alpha = 1e-4
    crf, e, _, _ = random_case(seed_for(12), b=1, t=3, k=3, constrained=True)
    n = 20_000
    draws = crf.sample(e, num_samples=n, generator=make_generator(seed_for(13)))[:, 0]
    ref = oracle(crf, e[0])
    index = {y: i for i, y in enumerate(ref.all_paths)}
    counts = torch.zeros(len(index))
    for row in draws.tolist():
        counts[index[tuple(row)]] += 1
    chi_square_gof(counts, ref.probs, alpha=1e-4)


def test_sampling_reproducible_and_padded() -> None:
    crf, e, mask, _ = random_case(14, constrained=True)
    state = torch.get_rng_state()
    a = crf.sample(e, mask, num_samples=5, generator=make_generator(3))
    b = crf.sample(e, mask, num_samples=5, generator=make_generator(3))
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert torch.equal(a, b)
    assert a.shape == (5, *mask.shape)
    assert bool(((a == -1) == ~mask).all())
    # never a forbidden transition
    allowed = crf.allowed_transitions
    assert allowed is not None
    for s in a.reshape(-1, mask.shape[1]).tolist():
        steps = [v for v in s if v >= 0]
        assert all(bool(allowed[x, y]) for x, y in itertools.pairwise(steps))


# ----------------------------------------------------------------------------------------------
# constraints


def test_bio_decoding_respects_constraints() -> None:
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = LinearChainCRF(5, constraints=bio_constraints(labels), init_scale=2.0,
                         generator=make_generator(0), dtype=F64)
    e = torch.randn(16, 7, 5, generator=make_generator(1), dtype=F64) * 3
    for path in crf.decode_lists(e) + [p for row in crf.kbest(e, 3).path.tolist() for p in row]:
        tags = [labels[i] for i in path]
        assert not tags[0].startswith("I-")
        for a, b in itertools.pairwise(tags):
            if b.startswith("I-"):
                assert a[2:] == b[2:] and a[0] in "BI"


def test_bioes_scheme() -> None:
    c = bio_constraints(["O", "B-X", "I-X", "E-X", "S-X"], "BIOES")
    assert c.start.tolist() == [True, True, False, False, True]
    assert c.end.tolist() == [True, False, False, True, True]
    assert c.transitions[1].tolist() == [False, False, True, True, False]  # B-X -> I-X / E-X
    assert c.transitions[3].tolist() == [True, True, False, False, True]  # E-X -> O / B / S
    u = bio_constraints(["O", "B-X", "I-X", "L-X", "U-X"], "BILOU")
    assert torch.equal(u.transitions, c.transitions)
    with pytest.raises(ValidationError, match="not a BIO label"):
        bio_constraints(["O", "X-PER"])


def test_infeasible_sequence() -> None:
    # tag 0 must start and tag 1 must end, but 0 -> 1 is forbidden and K = 2: T = 2 infeasible
    c = allowed_transitions(2, [(0, 0), (1, 1), (1, 0)], start=[0], end=[1])
    crf = LinearChainCRF(2, constraints=c, dtype=F64)
    e = torch.zeros(2, 2, 2, dtype=F64)
    mask = torch.tensor([[True, True], [True, False]])
    z = crf.log_partition(e, mask)
    assert z[0] == -math.inf and z[1] == -math.inf
    with pytest.raises(ZeroProbabilityEvidence, match="sequence"):
        crf.marginals(e, mask)
    with pytest.raises(ZeroProbabilityEvidence):
        crf.decode(e, mask)


def test_forbidden_gold_path_raises() -> None:
    crf = LinearChainCRF(3, constraints=bio_constraints(["O", "B-X", "I-X"]), dtype=F64)
    e = torch.zeros(2, 3, 3, dtype=F64)
    tags = torch.tensor([[0, 1, 2], [0, 2, 2]])  # O I-X: forbidden
    with pytest.raises(ZeroProbabilityEvidence, match=r"sequence 1"):
        crf.nll(e, tags)


# ----------------------------------------------------------------------------------------------
# errors and module behaviour


def test_mask_errors() -> None:
    crf = LinearChainCRF(2, dtype=F64)
    e = torch.zeros(2, 3, 2, dtype=F64)
    with pytest.raises(ValidationError, match="left-aligned"):
        crf.log_partition(e, torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValidationError, match="sequence 1"):
        crf.log_partition(e, torch.tensor([[True, True, True], [False, True, True]]))
    with pytest.raises(ShapeError, match="mask"):
        crf.log_partition(e, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValidationError, match="bool"):
        crf.log_partition(e, torch.ones(2, 3))
    # uint8 masks (pytorch-crf's ByteTensor) are accepted
    crf.log_partition(e, torch.ones(2, 3, dtype=torch.uint8))


def test_input_errors() -> None:
    crf = LinearChainCRF(2, dtype=F64)
    with pytest.raises(ShapeError, match="num_tags"):
        crf.log_partition(torch.zeros(1, 3, 4, dtype=F64))
    with pytest.raises(ShapeError, match="3-d"):
        crf.log_partition(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(DtypeMismatchError, match="float32"):
        crf.log_partition(torch.zeros(1, 3, 2))
    with pytest.raises(ValidationError, match=r"tags\[0, 1\]"):
        crf.nll(torch.zeros(1, 3, 2, dtype=F64), torch.tensor([[0, 5, 1]]))
    with pytest.raises(ValidationError, match="reduction"):
        crf.nll(torch.zeros(1, 3, 2, dtype=F64), torch.tensor([[0, 1, 1]]), reduction="avg")
    with pytest.raises(ValidationError, match="num_tags"):
        LinearChainCRF(0)
    with pytest.raises(ShapeError, match="3 tags"):
        LinearChainCRF(2, constraints=bio_constraints(["O", "B-X", "I-X"]))


def test_state_dict_round_trip_with_constraints() -> None:
    c = bio_constraints(["O", "B-X", "I-X"])
    a = LinearChainCRF(3, constraints=c, generator=make_generator(0))
    b = LinearChainCRF(3, constraints=c)
    b.load_state_dict(a.state_dict())
    e = torch.randn(2, 4, 3, generator=make_generator(1))
    assert torch.equal(a.log_partition(e), b.log_partition(e))
    assert "constrained" in repr(a)


def test_initialisation_uses_generator_only() -> None:
    state = torch.get_rng_state()
    a = LinearChainCRF(4, generator=make_generator(5))
    b = LinearChainCRF(4, generator=make_generator(5))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.transitions, b.transitions)
    assert float(a.transitions.detach().abs().max()) <= 0.1


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    crf, e, mask, _ = random_case(15, b=8, t=6, k=4, constrained=True)
    tags = crf.decode(e, mask).path.clamp_min(0)
    gpu = LinearChainCRF(4, dtype=F64, constraints=None).cuda()
    gpu.load_state_dict({k: v.cuda() for k, v in crf.state_dict().items()})
    ec, mc, tc = e.cuda(), mask.cuda(), tags.cuda()
    assert torch.allclose(gpu.nll(ec, tc, mc, reduction="none").cpu(),
                          crf.nll(e, tags, mask, reduction="none"), atol=1e-10, rtol=0)
    assert torch.allclose(gpu.marginals(ec, mc).cpu(), crf.marginals(e, mask), atol=1e-10)
    assert torch.equal(gpu.decode(ec, mc).path.cpu(), crf.decode(e, mask).path)
    assert torch.equal(gpu.kbest(ec, 3, mc).path.cpu(), crf.kbest(e, 3, mask).path)
    g = torch.Generator(device="cuda").manual_seed(0)
    draws = gpu.sample(ec, mc, num_samples=4, generator=g)
    assert draws.device.type == "cuda" and bool(((draws == -1) == ~mc).all())
