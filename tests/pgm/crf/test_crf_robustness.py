"""CRF entry points on bad and edge inputs (issue 21): named errors or right answers.

``crf.nll`` on an empty batch returned NaN (a mean over zero sequences); every entry point of
the layer is now fed generated batches (empty batches, masks that are not left-aligned or
empty, tags out of range, NaN emissions) and its answers compared with enumeration of all tag
sequences. Then the tagger, encoder, constraints, metrics and OWL-QN on bad arguments.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgm.crf import (
    CRFTagger,
    FeatureEncoder,
    LinearChainCRF,
    LinearChainCRFDistribution,
    accuracy,
    allowed_transitions,
    bio_constraints,
    classification_report,
    minimize_owlqn,
    per_tag_scores,
    sent2features,
    word2features,
)
from probforge.errors import (
    DtypeMismatchError,
    NonFiniteError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops.random import make_generator
from tests.robustness import outcome

F64 = torch.float64


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> None:
    # torch.allclose rather than torch.testing.assert_close (which imports torch.distributed)
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a, b)


def _crf(K: int, seed: int) -> LinearChainCRF:
    return LinearChainCRF(K, init_scale=1.0, generator=make_generator(seed), dtype=F64)


def _brute_nll(crf: LinearChainCRF, e: torch.Tensor, y: list[int]) -> torch.Tensor:
    """-log p(y | x) of one sequence (e: (n, K)) by enumeration of the K^n tag sequences."""
    start, trans, end = crf.scores()

    def score(tags: tuple[int, ...] | list[int]) -> torch.Tensor:
        s = start[tags[0]] + end[tags[-1]] + sum(e[t, tags[t]] for t in range(len(tags)))
        return s + sum((trans[tags[t], tags[t + 1]] for t in range(len(tags) - 1)),
                       torch.zeros((), dtype=F64))

    K = e.shape[1]
    all_scores = torch.stack([score(p) for p in itertools.product(range(K), repeat=len(y))])
    return torch.logsumexp(all_scores, 0) - score(y)


# ----------------------------------------------------------------------------------------------
# the example


def test_nll_of_an_empty_batch_is_documented() -> None:
    crf = _crf(3, 0)
    e = torch.zeros(0, 4, 3, dtype=F64)
    tags = torch.zeros(0, 4, dtype=torch.long)
    # before: NaN for "mean" and "token_mean"
    for reduction in ("mean", "token_mean"):
        with pytest.raises(ValidationError, match="empty"):
            crf.nll(e, tags, reduction=reduction)
    assert float(crf.nll(e, tags, reduction="sum").detach()) == 0.0  # the sum of nothing
    assert crf.nll(e, tags, reduction="none").shape == (0,)
    assert float(crf.log_likelihood(e, tags, reduction="sum").detach()) == 0.0
    assert crf.decode(e).path.shape == (0, 4)
    assert crf.marginals(e).shape == (0, 4, 3)
    assert crf.decode_lists(e) == []


def test_no_nan_from_a_gold_path_through_nan_or_from_no_allowed_path() -> None:
    crf = _crf(3, 1)
    e = torch.randn(2, 3, 3, dtype=F64)
    e[1, 1, 2] = math.nan
    tags = torch.tensor([[0, 1, 2], [0, 2, 1]])
    with pytest.raises(NonFiniteError, match=r"emissions\[1, 1, 2\]"):  # before: NaN score
        crf.score(e, tags)
    # padding may hold NaN: ignored exactly
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert bool(torch.isfinite(crf.score(e, tags, mask)).all())
    # every tag of one step forbidden: log Z = -inf; before: -inf - -inf = NaN
    e2 = torch.zeros(1, 2, 3, dtype=F64)
    e2[0, 1] = -math.inf
    with pytest.raises(ZeroProbabilityEvidence, match="sequence 0"):
        crf.nll(e2, torch.zeros(1, 2, dtype=torch.long))


# ----------------------------------------------------------------------------------------------
# property tests


@st.composite
def crf_batches(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    K = draw(st.integers(1, 3))
    B = draw(st.integers(0, 2))
    T = draw(st.integers(0, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    e = torch.randn(B, T, K, generator=g, dtype=F64)
    tags = torch.randint(0, K, (B, T), generator=g)
    error = T == 0
    lengths = torch.full((B,), T)
    mask = None
    kind = draw(st.sampled_from(["none", "prefix", "gap", "empty_row", "int"]))
    if kind != "none" and B and T:
        lengths = torch.tensor([draw(st.integers(1, T)) for _ in range(B)])
        mask = torch.arange(T) < lengths[:, None]
        if kind == "gap" and T >= 2:
            mask[0, 0], mask[0, -1] = False, True  # not left-aligned
            error = True
        elif kind == "empty_row":
            mask[-1] = False
            error = True
        elif kind == "int":
            mask = mask.long()  # refused: bool or uint8 only
            error = True
    valid = torch.arange(T) < lengths[:, None]
    broken = draw(st.sampled_from([None, None, "tag", "nan"]))
    if broken and B and T:
        b, t = draw(st.integers(0, B - 1)), draw(st.integers(0, T - 1))
        if broken == "tag":
            tags[b, t] = draw(st.sampled_from([-1, K]))
        else:
            e[b, t, draw(st.integers(0, K - 1))] = math.nan
        error = error or bool(valid[b, t])  # padding may hold anything
    batch_first = draw(st.booleans())
    return {"crf": _crf(K, draw(st.integers(0, 50))), "e": e, "tags": tags, "mask": mask,
            "lengths": lengths, "error": error, "batch_first": batch_first}


def _layout(c: dict, x: Any) -> Any:  # type: ignore[type-arg]
    return x if x is None or c["batch_first"] else x.transpose(0, 1)


@given(crf_batches(), st.sampled_from(["none", "sum", "mean", "token_mean"]))
@settings(max_examples=30)
def test_nll_is_an_error_or_the_enumerated_value(c: dict, reduction: str) -> None:  # type: ignore[type-arg]
    crf = c["crf"]
    crf.batch_first = c["batch_first"]
    e, tags, mask = _layout(c, c["e"]), _layout(c, c["tags"]), _layout(c, c["mask"])
    res = outcome(crf.nll, e, tags, mask, reduction=reduction)
    B = c["e"].shape[0]
    empty_mean = B == 0 and reduction in ("mean", "token_mean")
    assert res.kind == ("error" if c["error"] or empty_mean else "value"), res.error
    if res.kind == "error":
        return
    want = [_brute_nll(crf, c["e"][b, :n], c["tags"][b, :n].tolist())
            for b, n in enumerate(c["lengths"].tolist())]
    per = torch.stack(want) if want else torch.zeros(0, dtype=F64)
    expect = {"none": per, "sum": per.sum(), "mean": per.mean() if B else per.sum(),
              "token_mean": per.sum() / max(int(c["lengths"].sum()), 1)}[reduction]
    _close(res.value.detach(), expect)


@given(crf_batches())
@settings(max_examples=25)
def test_posterior_queries_are_errors_or_consistent(c: dict) -> None:  # type: ignore[type-arg]
    crf = c["crf"]
    crf.batch_first = c["batch_first"]
    e, mask = _layout(c, c["e"]), _layout(c, c["mask"])
    # these do not read the tags: a broken tag is no error here
    error = c["error"] and not (c["e"].shape[1] > 0 and bool(torch.isfinite(c["e"]).all())
                                and (c["mask"] is None or c["mask"].dtype == torch.bool)
                                and _prefix(c["mask"]))
    results = [outcome(crf.marginals, e, mask), outcome(crf.decode, e, mask),
               outcome(crf.kbest, e, 2, mask, allow_inf=True),
               outcome(crf.sample, e, mask, num_samples=2, generator=make_generator(0)),
               outcome(crf.entropy, e, mask), outcome(crf.log_partition, e, mask)]
    assert {r.kind for r in results} == {"error" if error else "value"}
    if error:
        return
    marg, path, top, draws, ent, log_z = (r.value for r in results)
    valid = torch.arange(c["e"].shape[1]) < c["lengths"][:, None]
    _close(_layout(c, marg).sum(-1), valid.to(F64))
    assert ((_layout(c, path.path) >= 0) == valid).all()
    d = draws if c["batch_first"] else draws.transpose(1, 2)
    assert ((d >= 0) == valid).all()
    _close(top.score[..., 0], path.score)
    assert bool((ent >= -1e-9).all())
    assert bool(torch.isfinite(log_z).all())


def _prefix(mask: torch.Tensor | None) -> bool:
    if mask is None:
        return True
    n = mask.sum(-1)
    return bool((n > 0).all()) and bool((mask == (torch.arange(mask.shape[1]) < n[:, None])).all())


@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from(["ok", "float", "oob", "pad"]))
@settings(max_examples=20)
def test_distribution_log_prob(K: int, T: int, case: str) -> None:
    g = torch.Generator().manual_seed(K * 10 + T)
    unary = torch.randn(2, T, K, generator=g, dtype=F64)
    pair = torch.randn(K, K, generator=g, dtype=F64)
    lengths = torch.tensor([T, 1])
    d = LinearChainCRFDistribution(unary, pair, lengths)
    y = torch.randint(0, K, (2, T), generator=g)
    if case == "float":
        y = y.double()
    elif case == "oob":
        y[0, 0] = K  # a real step
    elif case == "pad" and T > 1:
        y[1, 1:] = -1  # padding: ignored
    res = outcome(d.log_prob, y)
    assert res.kind == ("error" if case in ("float", "oob") else "value")
    if res.kind == "value":  # normalised: log p of every path sums to 1 (first sequence)
        paths = torch.tensor(list(itertools.product(range(K), repeat=T)))
        full = y.expand(len(paths), 2, T).clone()
        full[:, 0] = paths
        total = torch.logsumexp(d.log_prob(full)[:, 0], 0)
        _close(total, torch.zeros((), dtype=F64))
    assert outcome(LinearChainCRFDistribution, unary, pair, torch.tensor([T, 0])).kind == "error"
    assert outcome(d.sample, (0,)).value.shape == (0, 2, T)


# ----------------------------------------------------------------------------------------------
# the rest of the package on bad arguments


@pytest.mark.parametrize("kwargs", [
    {"c1": -1.0}, {"c2": math.nan}, {"max_iterations": 2.5}, {"batch_size": True},
    {"hash_buckets": 0}, {"min_freq": "2"}, {"algorithm": "sgd"}, {"dtype": torch.int64},
    {"device": "nonsense"}, {"seed": -1}, {"constraints": 3},
])
def test_tagger_constructor_refuses(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        CRFTagger(**kwargs)


def test_tagger_fit_and_predict_edges() -> None:
    t = CRFTagger(max_iterations=3)
    with pytest.raises(ValidationError, match="X"):
        t.fit("the dog", [["DET", "NOUN"]])
    with pytest.raises(ValidationError, match="holds no tags"):
        t.fit([], [])
    with pytest.raises(ValidationError, match="holds no tags"):
        t.fit([[]], [[]])
    with pytest.raises(ValidationError, match="not fitted"):
        t.predict([[{"w": "a"}]])
    t.fit([[{"w": "a"}, {"w": "b"}]], [["A", "B"]])
    assert t.predict([]) == [] and t.predict([[]]) == [[]]
    with pytest.raises(ValidationError, match="at least one token"):
        t.score([[]], [[]])
    with pytest.raises(NonFiniteError):  # a NaN feature value is refused, not turned to NaN
        FeatureEncoder().fit([[{"x": math.nan}]])


def test_constraints_metrics_features_owlqn_edges() -> None:
    with pytest.raises(ValidationError):
        allowed_transitions(2, [(0, 1.5)])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        allowed_transitions(True)
    assert bio_constraints("O").num_tags == 1  # a string is ONE label, not its characters
    with pytest.raises(ValidationError, match="twice"):
        bio_constraints(["O", "O"])
    with pytest.raises(ValidationError, match="at least one token"):
        accuracy([], [])
    with pytest.raises(ValidationError, match="list of tags"):  # was compared char by char
        accuracy(["DET NOUN"], ["DET VERB"])
    assert per_tag_scores([], []) == {}
    zero = per_tag_scores([["A"]], [["B"]], labels=["A", "B", "C"])
    for s in zero.values():  # zero support / zero predictions: documented 0, never NaN
        assert not any(math.isnan(v) for v in s[:3])
    assert zero["C"].support == 0
    with pytest.raises(ValidationError):
        classification_report([["A"]], [["A"]], digits=-1)
    with pytest.raises(ValidationError, match="list of words"):
        sent2features("The cat")
    with pytest.raises(ValidationError):
        word2features(["a"], 3)
    assert sent2features([]) == []
    fg = lambda w: (float((w * w).sum()), 2 * w)  # noqa: E731
    with pytest.raises(ValidationError):
        minimize_owlqn(fg, torch.zeros(2, dtype=torch.long))
    with pytest.raises(NonFiniteError):
        minimize_owlqn(fg, torch.tensor([math.nan, 0.0]))
    with pytest.raises(ValidationError, match="gradient"):
        minimize_owlqn(lambda w: (0.0, torch.zeros(3)), torch.zeros(2))
    assert minimize_owlqn(fg, torch.zeros(0, dtype=F64)).converged  # nothing to minimise


@given(st.lists(st.lists(st.sampled_from(["A", "B", "C"]), max_size=3), max_size=3),
       st.integers(0, 2**16))
@settings(max_examples=20)
def test_metrics_match_a_direct_count(gold: list, seed: int) -> None:  # type: ignore[type-arg]
    g = torch.Generator().manual_seed(seed)
    pred = [[["A", "B", "C"][int(torch.randint(0, 3, (), generator=g))] for _ in s]
            for s in gold]
    pairs = [(t, p) for s, q in zip(gold, pred, strict=True) for t, p in zip(s, q, strict=True)]
    acc = outcome(accuracy, gold, pred)
    assert acc.kind == ("value" if pairs else "error")
    if pairs:
        assert acc.value == sum(t == p for t, p in pairs) / len(pairs)
    scores = outcome(per_tag_scores, gold, pred, ["A", "B", "C"])
    assert scores.kind == "value"
    for tag, s in scores.value.items():
        n_gold = sum(t == tag for t, _ in pairs)
        assert s.support == n_gold
        hit = sum(t == p == tag for t, p in pairs)
        assert s.recall == (hit / n_gold if n_gold else 0.0)


def test_constraint_and_dtype_errors_of_the_layer() -> None:
    crf = LinearChainCRF(3, constraints=bio_constraints(["O", "B-X", "I-X"]), dtype=F64)
    e = torch.zeros(1, 2, 3, dtype=F64)
    with pytest.raises(ZeroProbabilityEvidence, match="sequence 0"):  # I-X cannot start
        crf.log_prob(e, torch.tensor([[2, 2]]))
    with pytest.raises(DtypeMismatchError):
        crf.nll(e.float(), torch.tensor([[0, 0]]))
    with pytest.raises(ValidationError, match="TransitionConstraints"):
        crf.set_constraints("BIO")  # type: ignore[arg-type]
