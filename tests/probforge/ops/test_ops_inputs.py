"""Input checks of the log-space primitives, semirings, generators and device helpers.

Each property draws good, edge and bad arguments for one public entry point and requires,
through ``tests.robustness.outcome``, a named error exactly when an argument breaks a rule, and
otherwise an answer equal to a closed form or to torch's own float64 computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from probforge.ops import (
    LOG,
    MAX,
    SAMPLE,
    Semiring,
    check_generator,
    common_device_dtype,
    finite_shift,
    get_semiring,
    gumbel,
    log1mexp,
    logaddexp,
    logmatmulexp,
    logsumexp,
    make_generator,
    native,
    normal,
    random_seed,
    safe_log,
    sample_distribution,
    split,
    to_like,
    uniform,
)
from probforge.ops.device import check_dims
from probforge.validate import check_shape
from tests.robustness import outcome

NEG_INF, INF, NAN = -math.inf, math.inf, math.nan

# values that exercise the edges of log space
LOG_VALUES = st.sampled_from([0.0, -1.0, 2.5, -700.0, -1e-12, NEG_INF, -3.0, 1.0])


@st.composite
def log_tensors(draw: st.DrawFn, max_dims: int = 3) -> torch.Tensor:
    """float64 tensors of 0-3 dimensions of sizes 0-3 with entries in [-inf, +inf)."""
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=max_dims)))
    values = draw(st.lists(LOG_VALUES, min_size=math.prod(shape), max_size=math.prod(shape)))
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def ref_logsumexp(x: torch.Tensor, dims: tuple[int, ...], keepdim: bool) -> torch.Tensor:
    if not dims or x.dim() == 0:
        return x
    return torch.logsumexp(x, dims, keepdim=keepdim)


def same(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-12) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype
    assert torch.equal(torch.isneginf(actual), torch.isneginf(expected)), (actual, expected)
    assert torch.equal(torch.isposinf(actual), torch.isposinf(expected)), (actual, expected)
    finite = torch.isfinite(expected)
    assert torch.allclose(actual[finite], expected[finite], rtol=tol, atol=tol)


# ------------------------------------------------------------------------------------------
# special functions


@given(x=log_tensors(), dim=st.one_of(st.integers(-4, 3), st.lists(st.integers(-3, 2),
                                                                     max_size=3),
                                      st.just(True), st.just(1.0), st.just("0")),
       keepdim=st.sampled_from([False, True, 1]))
def test_logsumexp_inputs(x: torch.Tensor, dim, keepdim) -> None:  # type: ignore[no-untyped-def]
    got = outcome(logsumexp, x, dim, keepdim, allow_inf=True)
    items = [dim] if isinstance(dim, int) and not isinstance(dim, bool) else dim
    n = max(x.dim(), 1)
    ok = (
        isinstance(items, list)
        and all(type(d) is int and -n <= d < n for d in items)
        and len({d % n for d in items}) == len(items)
        and type(keepdim) is bool
    )
    if not ok:
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
        return
    assert got.kind == "value", got.error
    same(got.value, ref_logsumexp(x, tuple(d % n for d in items), keepdim))


def test_logsumexp_documented_answers() -> None:
    # the log-sum-exp over an empty dimension is -inf (an empty sum is 0); these used to raise
    assert torch.equal(logsumexp(torch.zeros(2, 0), 1), torch.full((2,), NEG_INF))
    assert torch.equal(logsumexp(torch.zeros(3, 2), ()), torch.zeros(3, 2))  # nothing reduced
    assert logsumexp(torch.tensor(1.5), 0).item() == 1.5  # a scalar: itself
    with pytest.raises(DtypeMismatchError):  # used to be cast to float silently
        logsumexp(torch.tensor([1, 2]), 0)
    with pytest.raises(ValidationError, match="out of range"):  # used to be an IndexError
        logsumexp(torch.zeros(2), 3)


@given(x=log_tensors(), inject=st.sampled_from([None, None, 0.5, INF, NAN]))
def test_log1mexp_domain(x: torch.Tensor, inject) -> None:  # type: ignore[no-untyped-def]
    if inject is not None and x.numel():
        x = x.clone().reshape(-1)
        x[-1] = inject
        x = x.reshape(-1)
    got = outcome(log1mexp, x, allow_inf=True)
    flat = x.reshape(-1).tolist()
    bad = [v for v in flat if not v <= 0]  # NaN, or outside the domain (1 - exp(x) < 0)
    if bad:  # the error names the first offending entry, NaN or not
        kind = NonFiniteError if bad[0] != bad[0] else ValidationError
        assert got.kind == "error" and type(got.error) is kind, got
        assert "<= 0" in str(got.error)
        return
    assert got.kind == "value", got.error
    exp = torch.tensor([math.log(-math.expm1(v)) if v < 0 else NEG_INF for v in flat],
                       dtype=torch.float64)
    same(got.value, exp.reshape(x.shape), tol=1e-12)


@given(x=log_tensors(), bad=st.sampled_from([None, -1e-300, -2.0, NAN]))
def test_safe_log_domain(x: torch.Tensor, bad) -> None:  # type: ignore[no-untyped-def]
    p = x.exp()
    if bad is not None and p.numel():
        p = p.clone().reshape(-1)
        p[0] = bad
        p = p.reshape(x.shape)
    got = outcome(safe_log, p, allow_inf=True)
    if bad is not None and p.numel():
        assert got.kind == "error", got
        assert isinstance(got.error, NonFiniteError if bad != bad else ValidationError)
        return
    assert got.kind == "value", got.error
    same(got.value, torch.log(p))


def test_special_functions_refuse_integer_and_non_tensors() -> None:
    ints = torch.tensor([1, 2])
    for call in (lambda: safe_log(ints), lambda: log1mexp(-ints), lambda: finite_shift(ints),
                 lambda: logaddexp(ints, ints), lambda: logmatmulexp(ints[None], ints[:, None])):
        with pytest.raises(DtypeMismatchError):  # these used to cast silently or crash
            call()
    with pytest.raises(ValidationError, match=r"must be a torch\.Tensor"):
        logsumexp([0.0, 1.0], 0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="True or False"):
        safe_log(torch.ones(2), validate="yes")  # type: ignore[arg-type]
    # validate=False trusts the caller: the documented NaN for a negative entry
    assert math.isnan(safe_log(torch.tensor([-1.0]), validate=False).item())


@given(a=log_tensors(max_dims=2), b=log_tensors(max_dims=2))
def test_logaddexp_inputs(a: torch.Tensor, b: torch.Tensor) -> None:
    got = outcome(logaddexp, a, b, allow_inf=True)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        assert got.kind == "error" and isinstance(got.error, ShapeError), got
        return
    assert got.kind == "value", got.error
    same(got.value, torch.logaddexp(a, b))


@st.composite
def matmul_pairs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    n, k, m = (draw(st.integers(0, 3)) for _ in range(3))
    k2 = draw(st.sampled_from([k, k, k, k + 1]))
    lead_a = tuple(draw(st.lists(st.integers(1, 2), max_size=1)))
    lead_b = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    ndim_a = draw(st.sampled_from([2, 2, 2, 1]))

    def fill(shape: tuple[int, ...]) -> torch.Tensor:
        vals = draw(st.lists(LOG_VALUES, min_size=math.prod(shape), max_size=math.prod(shape)))
        return torch.tensor(vals, dtype=torch.float64).reshape(shape)

    a = fill(lead_a + (n, k)) if ndim_a == 2 else fill((k,))
    return a, fill(lead_b + (k2, m))


@settings(max_examples=40)
@given(pair=matmul_pairs(), exact=st.sampled_from([False, True, "yes"]))
def test_logmatmulexp_inputs(pair: tuple, exact) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    got = outcome(logmatmulexp, a, b, exact=exact, allow_inf=True)
    if a.dim() < 2 or a.shape[-1] != b.shape[-2]:
        assert got.kind == "error" and isinstance(got.error, ShapeError), got
        return
    try:
        torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except RuntimeError:
        assert got.kind == "error" and isinstance(got.error, ShapeError), got
        return
    if not isinstance(exact, bool):
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
        return
    assert got.kind == "value", got.error
    # brute force: log-sum-exp over k of a[..., i, k] + b[..., k, j]; k == 0 gives -inf
    terms = a[..., :, :, None] + b[..., None, :, :]
    expected = torch.logsumexp(terms, dim=-2)
    # the plain version may lose entries below the dtype's range relative to the row maxima
    if exact:
        same(got.value, expected, tol=1e-12)
    else:
        assert got.value.shape == expected.shape
        big = expected > -600
        assert torch.allclose(got.value[big], expected[big], atol=1e-12)


def test_logmatmulexp_documented_refusals() -> None:
    with pytest.raises(ShapeError):  # a 1-d operand used to be accepted with matmul's meaning
        logmatmulexp(torch.zeros(3), torch.zeros(3, 2))
    with pytest.raises(DtypeMismatchError):  # used to be a RuntimeError from matmul
        logmatmulexp(torch.zeros(2, 3), torch.zeros(3, 2, dtype=torch.float64))
    out = logmatmulexp(torch.zeros(2, 0), torch.zeros(0, 3))  # used to be an IndexError
    assert torch.equal(out, torch.full((2, 3), NEG_INF))


# ------------------------------------------------------------------------------------------
# semirings


@given(name=st.one_of(st.sampled_from(["log", "max", "sample"]), st.text(max_size=6),
                      st.none(), st.integers(), st.just(["log"])))
def test_get_semiring_names(name) -> None:  # type: ignore[no-untyped-def]
    got = outcome(get_semiring, name)
    if name in ("log", "max", "sample"):
        assert got.kind == "value" and got.value.name == name
    else:
        assert got.kind == "error" and isinstance(got.error, ValidationError)
        assert "'log', 'max', 'sample'" in str(got.error)  # the message lists the known names


@given(x=log_tensors(), dims=st.one_of(st.integers(-4, 3),
                                       st.lists(st.integers(-3, 2), max_size=3)),
       semiring=st.sampled_from([LOG, MAX, SAMPLE]))
def test_semiring_reduce(x: torch.Tensor, dims, semiring: Semiring) -> None:  # type: ignore[no-untyped-def]
    got = outcome(semiring.reduce, x, dims, allow_inf=True)
    items = [dims] if isinstance(dims, int) else dims
    n = max(x.dim(), 1)
    if not all(-n <= d < n for d in items) or len({d % n for d in items}) != len(items):
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
        return
    assert got.kind == "value", got.error
    dd = tuple(d % n for d in items)
    if semiring is not MAX or not dd or x.dim() == 0:
        same(got.value, ref_logsumexp(x, dd, False) if semiring is not MAX or not dd else x)
        return
    if any(x.shape[d] == 0 for d in dd):  # the max over nothing is the zero, -inf
        shape = [s for i, s in enumerate(x.shape) if i not in dd]
        same(got.value, torch.full(shape, NEG_INF, dtype=x.dtype))
    else:
        same(got.value, x.amax(dim=dd))


def test_semiring_objects_and_select() -> None:
    with pytest.raises(ValidationError, match="name must be one of"):
        Semiring("tropical", True)  # used to act as "log" silently
    with pytest.raises(ValidationError, match="traceback must be False"):
        Semiring("log", True)
    with pytest.raises(ShapeError, match="at least one entry"):
        MAX.select(torch.zeros(3, 0))  # used to be an IndexError
    with pytest.raises(ValidationError, match=r"torch\.Generator"):
        SAMPLE.select(torch.zeros(3, 2), generator=7)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="no traceback"):
        LOG.select(torch.zeros(3, 2))
    with pytest.raises(ShapeError, match="do not broadcast"):
        LOG.product(torch.zeros(2), torch.zeros(3))
    assert MAX.select(torch.tensor([[NEG_INF, NEG_INF]])).tolist() == [0]


@given(shape=st.one_of(st.lists(st.integers(-1, 3), max_size=3), st.integers(0, 3),
                       st.lists(st.sampled_from([2.0, True, "2"]), min_size=1, max_size=2)),
       like=st.sampled_from([torch.float64, torch.float32, torch.int64]),
       generator=st.sampled_from([None, "gen", 5]))
def test_gumbel_inputs(shape, like, generator) -> None:  # type: ignore[no-untyped-def]
    gen = make_generator(0) if generator == "gen" else generator
    got = outcome(gumbel, shape, torch.zeros(1, dtype=like), gen)
    ok = (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)
          and like != torch.int64 and generator != 5)
    if not ok:
        assert got.kind == "error", got
        return
    assert got.kind == "value", got.error
    assert got.value.shape == tuple(shape) and got.value.dtype == like


# ------------------------------------------------------------------------------------------
# generators and draws

SEEDS = st.one_of(st.integers(-3, 2**64 + 3), st.sampled_from([2**64 - 1, 2**64, True, False,
                                                                1.0, 3.5, "1", None]),
                  st.integers(0, 5).map(np.int64))


@given(seed=SEEDS)
def test_make_generator_seeds(seed) -> None:  # type: ignore[no-untyped-def]
    got = outcome(make_generator, seed)
    ok = isinstance(seed, int | np.integer) and not isinstance(seed, bool) and 0 <= seed < 2**64
    if not ok:
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
        assert "non-negative int" in str(got.error)
        return
    assert got.kind == "value", got.error
    assert got.value.initial_seed() == int(seed)


def test_make_generator_documented_refusals() -> None:
    with pytest.raises(ValidationError):
        make_generator(True)  # a bool is not a seed
    with pytest.raises(ValidationError):
        make_generator(2**64)  # used to be an OverflowError-like ValueError from torch
    with pytest.raises(ValidationError, match="not a torch device"):
        make_generator(0, "gpu")  # used to be a RuntimeError
    with pytest.raises(ValidationError, match="cannot hold a random generator"):
        make_generator(0, "meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="CUDA is not available"):
            make_generator(0, "cuda")


@given(n=st.one_of(st.integers(-2, 4), st.sampled_from([2.0, True, "2", None])),
       parent=st.sampled_from(["gen", None, 3]))
def test_split_and_random_seed(n, parent) -> None:  # type: ignore[no-untyped-def]
    gen = make_generator(1) if parent == "gen" else parent
    got = outcome(split, gen, n)
    if parent == 3 or type(n) is not int or n < 0:
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
    else:
        assert got.kind == "value" and len(got.value) == n
    seed = outcome(random_seed, gen)
    assert (seed.kind == "error") == (parent == 3)


SHAPES = st.one_of(st.lists(st.integers(-1, 3), max_size=3), st.integers(0, 3),
                   st.just((2.0,)), st.just((True,)), st.just("3"),
                   st.just(torch.Size([2, 0])))


@given(shape=SHAPES, dtype=st.sampled_from([None, torch.float32, torch.float64, torch.int64,
                                            "float32"]),
       draw=st.sampled_from([normal, uniform]), device=st.sampled_from([None, "cpu", "gpu"]))
def test_normal_and_uniform_inputs(shape, dtype, draw, device) -> None:  # type: ignore[no-untyped-def]
    got = outcome(draw, shape, generator=make_generator(0), dtype=dtype, device=device)
    ok = (isinstance(shape, list | torch.Size) and all(type(s) is int and s >= 0 for s in shape)
          and (dtype is None or (isinstance(dtype, torch.dtype) and dtype.is_floating_point))
          and device != "gpu")
    if not ok:
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
        return
    assert got.kind == "value", got.error
    assert got.value.shape == tuple(shape)
    assert got.value.dtype == (dtype or torch.get_default_dtype())
    if draw is uniform:
        assert bool(((got.value >= 0) & (got.value < 1)).all())


def test_draws_are_unchanged_by_the_checks() -> None:
    # the checks do not move the generator: same draws as torch for the same seed
    assert torch.equal(normal((3, 2), generator=make_generator(5), dtype=torch.float64),
                       torch.randn((3, 2), generator=make_generator(5), dtype=torch.float64))
    assert torch.equal(uniform([4], generator=make_generator(5)),
                       torch.rand((4,), generator=make_generator(5)))
    assert normal((0, 3), generator=make_generator(0)).shape == (0, 3)


def test_sample_distribution_and_check_generator_inputs() -> None:
    dist = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValidationError, match="Distribution"):
        sample_distribution("normal", (2,))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"single int.*\(3,\)"):
        sample_distribution(dist, 3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"torch\.Generator"):
        sample_distribution(dist, (2,), generator=0)  # type: ignore[arg-type]
    assert sample_distribution(dist, (0,), make_generator(0)).shape == (0, 2)
    with pytest.raises(ValidationError, match=r"torch\.Generator"):
        check_generator(3, torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="must be a torch device"):
        check_generator(None, "nowhere")
    with pytest.raises(DeviceMismatchError):
        check_generator(make_generator(0), "meta")


# ------------------------------------------------------------------------------------------
# device and shape helpers


@given(n=st.integers(0, 3), names=st.sampled_from([None, "short", "str", "ok"]),
       odd=st.sampled_from([None, "dtype", "not a tensor", "tensor as list"]))
def test_common_device_dtype_inputs(n: int, names, odd) -> None:  # type: ignore[no-untyped-def]
    tensors = [torch.zeros(2, dtype=torch.float64) for _ in range(n)]
    if odd == "dtype" and n:
        tensors[-1] = tensors[-1].float()
    elif odd == "not a tensor" and n:
        tensors[-1] = 1.0  # type: ignore[call-overload]
    label = {"short": [f"t{i}" for i in range(max(n - 1, 0))], "str": "abc",
             "ok": [f"t{i}" for i in range(n)], None: None}[names]
    arg = torch.zeros(n, 2) if odd == "tensor as list" else tensors
    got = outcome(common_device_dtype, arg, label)
    bad = (n == 0 or odd == "tensor as list" or names in ("str", "short")
           or (odd == "dtype" and n > 1) or (odd == "not a tensor" and n > 0))
    if bad:
        assert got.kind == "error" and isinstance(got.error, ValidationError), got
    else:
        assert got.value == (torch.device("cpu"), torch.float64)


@given(x=st.one_of(st.floats(-1e6, 1e6), st.sampled_from([NAN, INF, NEG_INF]),
                   st.integers(-5, 5), st.booleans(), st.lists(st.floats(-3, 3), max_size=3),
                   st.just("a"),
                   st.sampled_from([torch.tensor([1, 2]), torch.tensor([0.5, NEG_INF]),
                                    torch.tensor([True])])),
       like=st.sampled_from([torch.float64, torch.float32, torch.int64, torch.bool]))
def test_to_like_inputs(x, like) -> None:  # type: ignore[no-untyped-def]
    target = torch.zeros(1, dtype=like)
    got = outcome(to_like, x, target, allow_inf=True)
    if got.kind == "error":
        return  # which refusals are right is pinned below; here: never a raw error or NaN
    out = got.value
    assert out.dtype == like and out.device == target.device
    src = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if like in (torch.float32, torch.float64):  # the value kept its meaning, up to rounding
        assert torch.allclose(out.double(), src.double(), rtol=1e-6, atol=0)
    else:
        assert torch.equal(out.to(src.dtype), src)


def test_to_like_documented_refusals() -> None:
    f64 = torch.zeros(1, dtype=torch.float64)
    assert to_like(3, f64).dtype == torch.float64  # an int is a number
    with pytest.raises(DtypeMismatchError):
        to_like(torch.tensor([1, 2]), f64)  # an integer tensor is not cast to float
    with pytest.raises(DtypeMismatchError):
        to_like(1.7, torch.zeros(1, dtype=torch.long))  # used to truncate to 1 silently
    with pytest.raises(DtypeMismatchError):
        to_like(True, f64)
    with pytest.raises(NonFiniteError):
        to_like(NAN, f64)
    with pytest.raises(ValidationError):
        to_like("a", f64)


@given(dims=st.one_of(st.integers(-3, 3), st.lists(st.integers(-3, 3), max_size=3),
                      st.sampled_from([True, 1.0, "0", None, (0, True)])),
       ndim=st.integers(0, 2))
def test_check_dims(dims, ndim: int) -> None:  # type: ignore[no-untyped-def]
    x = torch.zeros((2,) * ndim)
    got = outcome(check_dims, x, dims, "dims")
    items = [dims] if type(dims) is int else dims
    n = max(ndim, 1)
    ok = (isinstance(items, list | tuple) and all(type(d) is int for d in items)
          and all(-n <= d < n for d in items) and len({d % n for d in items}) == len(items))
    assert (got.kind == "value") == ok, got
    if ok:
        assert got.value == tuple(d % n for d in items)


def test_check_shape_and_native_enabled() -> None:
    assert check_shape([2, np.int64(3)], "s") == (2, 3)
    with pytest.raises(ValidationError, match=r"s\[1\]"):
        check_shape((2, -1), "s")
    with pytest.raises(ValidationError, match="not a single int"):
        check_shape(4, "s")
    with pytest.raises(ValidationError, match=r"must be a torch\.Tensor"):
        native.enabled(torch.zeros(2), "x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="True or False"):
        native.enabled(torch.zeros(2), autograd=None)  # type: ignore[arg-type]
    assert isinstance(native.enabled(torch.zeros(2, dtype=torch.float64)), bool)
