"""Bad and edge inputs for ``generative.metrics`` (issue 21): empty inputs, one sample, identical
samples, NaN, mismatched dimensions and dtypes. Each metric gives its documented answer (checked
against a brute-force or closed-form value) or a typed error; never NaN, never a raw exception.

Documented answers on edge inputs:

- ``mode_coverage``: ``mode_kl = log K`` when no sample is near any mode (total collapse);
  at least one sample and one centre are needed;
- ``kl_normal_diag``: 0 for a zero-dimensional latent (``d = 0``);
- ``median_bandwidth``: 1 when every pooled point coincides;
- ``frechet_distance``: 0 for identical feature sets (``n >= 2`` rows each);
- ``optimal_discriminator_logit``: 0 where neither density has mass.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.metrics import (
    DiagonalNormalProposal,
    frechet_distance,
    gaussian_w2,
    importance_log_likelihood,
    js_discrete,
    kl_discrete,
    kl_gaussian,
    kl_normal_diag,
    median_bandwidth,
    mmd2,
    mode_coverage,
    precision_recall,
    ring_centers,
    sliced_wasserstein,
    sqrtm_psd,
    wasserstein_1d,
)
from probforge.errors import NonFiniteError, ShapeError, ValidationError
from probforge.ops.random import make_generator
from tests.robustness import outcome

F64 = torch.float64


@st.composite
def _samples(draw: st.DrawFn, dims: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    """(n, d) samples: n in 0..5, some identical rows, the odd NaN / inf, odd dtypes."""
    n = draw(st.integers(0, 5))
    d = draw(st.sampled_from(dims))
    x = torch.randn(n, d, generator=make_generator(draw(st.integers(0, 9))), dtype=F64)
    if n > 1 and draw(st.booleans()):
        x[:] = x[0]  # identical samples
    if x.numel() and draw(st.integers(0, 4)) == 0:
        x.view(-1)[0] = draw(st.sampled_from([math.nan, math.inf]))
    dtype = draw(st.sampled_from([F64, F64, F64, torch.float32, torch.int64]))
    return x.nan_to_num(0.0).round().long() if dtype == torch.int64 else x.to(dtype)


def _sound(x: torch.Tensor, min_n: int = 1) -> bool:
    return x.is_floating_point() and x.shape[0] >= min_n and bool(torch.isfinite(x).all())


def _mmd2_brute(x: torch.Tensor, y: torch.Tensor, h: float) -> float:
    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        d2 = float(((a - b) ** 2).sum())
        return sum(math.exp(-d2 / (2 * (s * h) ** 2)) for s in (0.5, 1.0, 2.0))

    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


@given(x=_samples(), y=_samples(), bandwidth=st.sampled_from([None, 1.0, 0.0, -1.0, math.nan]))
def test_mmd2_and_bandwidth(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None) -> None:
    res = outcome(mmd2, x, y, bandwidth=bandwidth)
    valid = (_sound(x, 2) and _sound(y, 2) and x.shape[1] == y.shape[1] and x.dtype == y.dtype
             and (bandwidth is None or bandwidth > 0))
    assert (res.kind == "value") == valid, res
    if valid:
        h = float(median_bandwidth(x, y)) if bandwidth is None else bandwidth
        assert float(res.value) == pytest.approx(_mmd2_brute(x, y, h), abs=1e-4)
    med = outcome(median_bandwidth, x, y)
    if med.kind == "value":
        assert float(med.value) > 0


@given(x=_samples(), y=_samples(), p=st.sampled_from([1.0, 2.0, 0.5, math.nan]),
       num=st.sampled_from([1, 8, 0, 2.0]))
@settings(max_examples=25)
def test_sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, p: float, num: Any) -> None:
    res = outcome(sliced_wasserstein, x, y, p=p, num_projections=num,
                  generator=make_generator(0))
    valid = (_sound(x) and _sound(y) and x.shape[1] == y.shape[1] and x.dtype == y.dtype
             and p >= 1 and isinstance(num, int) and num >= 1)
    assert (res.kind == "value") == valid
    if valid:
        assert float(res.value) >= 0
        if x.shape == y.shape and torch.equal(x, y):
            assert float(res.value) == 0.0


@given(x=_samples(), y=_samples(), k=st.sampled_from([1, 2, 0, 1.0, True]))
@settings(max_examples=25)
def test_precision_recall(x: torch.Tensor, y: torch.Tensor, k: Any) -> None:
    res = outcome(precision_recall, x, y, k)
    ok_k = isinstance(k, int) and not isinstance(k, bool) and k >= 1
    valid = (ok_k and _sound(x, k + 1) and _sound(y, k + 1) and x.shape[1] == y.shape[1]
             and x.dtype == y.dtype)
    assert (res.kind == "value") == valid
    if valid:
        assert 0.0 <= res.value.precision <= 1.0 and 0.0 <= res.value.recall <= 1.0
        if x.shape == y.shape and torch.equal(x, y):
            assert res.value == (1.0, 1.0)


@given(x=_samples(), y=_samples())
@settings(max_examples=25)
def test_frechet_distance(x: torch.Tensor, y: torch.Tensor) -> None:
    res = outcome(frechet_distance, x, y)
    valid = _sound(x, 2) and _sound(y, 2) and x.shape[1] == y.shape[1]
    assert (res.kind == "value") == valid
    if valid:
        assert float(res.value) >= 0
        mx, my = x.double().mean(0), y.double().mean(0)
        cx, cy = torch.cov(x.double().T).reshape(x.shape[1], -1), \
            torch.cov(y.double().T).reshape(y.shape[1], -1)
        want = gaussian_w2(mx, cx, my, cy, squared=True)
        assert float(res.value) == pytest.approx(float(want), abs=1e-8)
    if _sound(x, 2):
        assert float(frechet_distance(x, x)) == pytest.approx(0.0, abs=1e-8)


@given(x=_samples(dims=(2, 3)), special=st.sampled_from([None, "empty", "nan_centres"]),
       std=st.sampled_from([0.5, 0.01, 0.0, -1.0, math.nan]))
@settings(max_examples=25)
def test_mode_coverage(x: torch.Tensor, special: str | None, std: float) -> None:
    centres = ring_centers(4, dtype=F64)
    if special == "empty":
        centres = centres[:0]
    elif special == "nan_centres":
        centres = centres.clone()
        centres[0, 0] = math.nan
    res = outcome(mode_coverage, x, centres, std)
    valid = (_sound(x) and x.shape[1] == 2 and special is None and std > 0)
    assert (res.kind == "value") == valid
    if valid:
        r = res.value
        xs = x.double()
        dist = torch.cdist(xs, centres)
        best = dist.argmin(1)
        good = dist.gather(1, best[:, None])[:, 0] <= 3 * std
        counts = [int(((best == j) & good).sum()) for j in range(4)]
        assert r.counts.tolist() == counts
        assert r.high_quality_fraction == pytest.approx(sum(counts) / len(x))
        total = sum(counts)
        want_kl = math.log(4) if total == 0 else sum(
            c / total * math.log(4 * c / total) for c in counts if c)
        assert r.mode_kl == pytest.approx(want_kl, abs=1e-12)


@st.composite
def _probs(draw: st.DrawFn) -> torch.Tensor:
    k = draw(st.integers(0, 4))
    raw = torch.tensor(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0]), min_size=k,
                                     max_size=k)), dtype=F64)
    kind = draw(st.sampled_from(["ok", "ok", "ok", "nan", "negative", "unnormalised", "int"]))
    p = raw / raw.sum() if raw.sum() > 0 else raw
    if kind == "nan" and k:
        p[0] = math.nan
    elif kind == "negative" and k > 1:
        p[0], p[1] = -0.5, p[1] + 0.5
    elif kind == "unnormalised":
        p = p * 2
    elif kind == "int":
        p = p.long()
    return p


def _is_dist(p: torch.Tensor) -> bool:
    return (p.is_floating_point() and p.numel() > 0 and not bool(torch.isnan(p).any())
            and bool((p >= 0).all()) and abs(float(p.sum()) - 1) <= 1e-6)


@given(p=_probs(), q=_probs())
def test_discrete_divergences(p: torch.Tensor, q: torch.Tensor) -> None:
    valid = _is_dist(p) and _is_dist(q) and p.shape == q.shape
    kl = outcome(kl_discrete, p, q, allow_inf=True)
    js = outcome(js_discrete, p, q)
    assert (kl.kind == "value") == valid and (js.kind == "value") == valid
    if valid:
        want = sum(float(a) * math.log(float(a) / float(b)) if b > 0 else math.inf
                   for a, b in zip(p, q, strict=True) if a > 0)
        assert float(kl.value) == pytest.approx(want, abs=1e-12)
        m = 0.5 * (p + q)
        half = [sum(float(a) * math.log(float(a) / float(c)) for a, c in
                    zip(r, m, strict=True) if a > 0) for r in (p, q)]
        assert float(js.value) == pytest.approx(0.5 * sum(half), abs=1e-12)
        assert -1e-15 <= float(js.value) <= math.log(2) + 1e-12


@given(u=st.lists(st.sampled_from([0.0, 1.0, -2.5, 3.0, math.nan, math.inf]), max_size=4),
       v=st.lists(st.sampled_from([0.0, 1.0, 4.0]), max_size=4),
       p=st.sampled_from([1.0, 2.0, 0.5, math.nan, True]))
@settings(max_examples=25)
def test_wasserstein_1d(u: list[float], v: list[float], p: Any) -> None:
    tu, tv = torch.tensor(u, dtype=F64), torch.tensor(v, dtype=F64)
    res = outcome(wasserstein_1d, tu, tv, p)
    valid = (bool(u) and bool(v) and all(math.isfinite(a) for a in u)
             and not isinstance(p, bool) and p >= 1)
    assert (res.kind == "value") == valid
    if valid and p == 1.0:
        # W1 = integral of |F_u - F_v| over the merged support
        pts = sorted(set(u) | set(v))
        want = sum(abs(sum(a <= s for a in u) / len(u) - sum(b <= s for b in v) / len(v))
                   * (t - s) for s, t in itertools.pairwise(pts))
        assert float(res.value) == pytest.approx(want, abs=1e-12)


@given(d=st.sampled_from([0, 1, 2]), bad=st.sampled_from([None, "nan", "shape", "asym", "neg",
                                                           "dtype"]))
@settings(max_examples=25)
def test_gaussian_divergences(d: int, bad: str | None) -> None:
    g = make_generator(d)
    a = torch.randn(d, d, generator=g, dtype=F64)
    cov1 = a @ a.T + torch.eye(d, dtype=F64)
    cov2 = 2 * torch.eye(d, dtype=F64)
    mu1, mu2 = torch.randn(d, generator=g, dtype=F64), torch.zeros(d, dtype=F64)
    if bad == "nan" and d:
        mu1[0] = math.nan
    elif bad == "shape":
        cov2 = torch.eye(d + 1, dtype=F64)
    elif bad == "asym" and d > 1:
        cov1[0, 1] += 1.0
    elif bad == "neg" and d:
        cov1 = -cov1
    elif bad == "dtype":
        cov2 = cov2.float()
    broken = bad in ("shape", "dtype") or (bad in ("nan", "neg") and d > 0) or (
        bad == "asym" and d > 1)
    for fn in (kl_gaussian, gaussian_w2):
        res = outcome(fn, mu1, cov1, mu2, cov2)
        assert (res.kind == "value") == (d > 0 and not broken), (fn.__name__, d, bad)
    if d > 0 and not broken:
        want = 0.5 * (float(torch.trace(cov1)) / 2 + float((mu1**2).sum()) / 2 - d
                      + d * math.log(2) - float(torch.logdet(cov1)))
        assert float(kl_gaussian(mu1, cov1, mu2, cov2)) == pytest.approx(want, abs=1e-10)
        root = sqrtm_psd(cov1)
        assert torch.allclose(root @ root, cov1, atol=1e-10)
    res = outcome(sqrtm_psd, cov1)
    assert (res.kind == "value") == (d > 0 and bad != "neg" and not (bad == "asym" and d > 1))


@given(d=st.sampled_from([0, 1, 3]), special=st.sampled_from([None, math.nan, math.inf]),
       prior=st.booleans())
@settings(max_examples=20)
def test_kl_normal_diag(d: int, special: float | None, prior: bool) -> None:
    g = make_generator(d)
    mu, logvar = torch.randn(2, d, generator=g, dtype=F64), torch.randn(2, d, generator=g,
                                                                        dtype=F64)
    if special is not None and d:
        logvar[0, 0] = special
    args = (mu, logvar, torch.zeros(d, dtype=F64), torch.zeros(d, dtype=F64)) if prior else \
        (mu, logvar)
    res = outcome(kl_normal_diag, *args)
    assert (res.kind == "value") == (special is None or d == 0)
    if res.kind == "value":
        want = torch.distributions.kl_divergence(
            torch.distributions.Normal(mu, (0.5 * logvar).exp()),
            torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
        assert torch.allclose(res.value, want, atol=1e-12)  # d = 0: zero
    assert outcome(kl_normal_diag, mu, logvar[:, :0] if d else logvar[:1]).kind == "error"


def test_importance_log_likelihood_arguments() -> None:
    x = torch.zeros(3, 1, dtype=F64)
    q = DiagonalNormalProposal(x / 2, torch.full_like(x, math.log(0.5)))

    def log_joint(z: torch.Tensor) -> torch.Tensor:
        return (-0.5 * z**2 - 0.5 * (x - z) ** 2 - math.log(2 * math.pi)).sum(-1)

    est = importance_log_likelihood(log_joint, q, 5, generator=make_generator(0))
    assert torch.allclose(est.log_likelihood, torch.full((3,), -0.5 * math.log(4 * math.pi),
                                                         dtype=F64))
    for args in ((log_joint, q, 0), (log_joint, q, 2.0), (log_joint, q, True), (3, q, 5),
                 (log_joint, object(), 5), (lambda z: torch.full(z.shape[:2], math.nan), q, 5),
                 (lambda z: torch.zeros(z.shape[:2], dtype=torch.long), q, 5),
                 (lambda z: torch.full(z.shape[:2], -math.inf, dtype=F64), q, 5)):
        assert outcome(importance_log_likelihood, *args).kind == "error"
    assert outcome(importance_log_likelihood, log_joint, q, 5, chunk_size=0).kind == "error"
    empty = DiagonalNormalProposal(x[:0], x[:0])
    with pytest.raises(ShapeError, match="at least one data point"):
        importance_log_likelihood(lambda z: -(z**2).sum(-1), empty, 5)
    for mu, lv in ((x, x[:2]), (x.long(), x.long()), (torch.full_like(x, math.nan), x)):
        assert outcome(DiagonalNormalProposal, mu, lv).kind == "error"


def test_metric_argument_types() -> None:
    x = torch.randn(6, 2, dtype=F64)
    with pytest.raises(ShapeError):
        mmd2(x, x[:, :1])
    with pytest.raises(ShapeError):
        mmd2(x[:1], x)
    with pytest.raises(NonFiniteError):
        mmd2(torch.full_like(x, math.nan), x)
    with pytest.raises(ValidationError):
        mmd2(x, x, scales=())
    with pytest.raises(ValidationError):
        mmd2(x, x, scales=(1.0, -1.0))
    with pytest.raises(ShapeError):
        median_bandwidth(x[:1], x[:0])
    assert float(median_bandwidth(torch.ones(3, 2), torch.ones(2, 2))) == 1.0
    with pytest.raises(ValidationError):
        mode_coverage(x, ring_centers(4, dtype=F64), 0.5, min_count=0)
    with pytest.raises(ShapeError):
        mode_coverage(x[:0], ring_centers(4, dtype=F64), 0.5)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValidationError):
            ring_centers(bad)  # type: ignore[arg-type]


def test_classifier_features_check_their_images() -> None:
    from generative.fd_classifier import FDClassifier, classifier_features

    net = FDClassifier().eval()
    imgs = torch.rand(3, 1, 28, 28)
    assert classifier_features(imgs, net, batch_size=2).shape == (3, 64)
    bad = [imgs.clone().fill_(math.nan), (imgs * 255).to(torch.uint8), imgs[:, :, :27],
           imgs[:0], imgs + 1.0]
    for x in bad:
        assert outcome(classifier_features, x, net).kind == "error"
    for size in (0, 1.5, True):
        assert outcome(classifier_features, imgs, net, size).kind == "error"
    assert outcome(classifier_features, imgs, object()).kind == "error"
