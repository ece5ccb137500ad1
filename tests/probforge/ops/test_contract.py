"""probforge.ops.contract against brute-force enumeration, in every semiring."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
    ZeroProbabilityEvidence,
)
from probforge.ops import (
    contract,
    contract_argmax,
    contract_sample,
    contraction_cost,
    make_generator,
)
from tests.reference.brute_force import joint_table
from tests.stats import chi_square_gof

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@st.composite
def factor_sets(draw: st.DrawFn, max_vars: int = 6) -> dict:
    """Random factor sets: 1-6 variables of 1-3 states, 1-5 factors, some -inf entries."""
    nvars = draw(st.integers(1, max_vars))
    cards = [draw(st.integers(1, 3)) for _ in range(nvars)]
    names = [f"x{i}" for i in range(nvars)]
    nfac = draw(st.integers(1, 5))
    scopes = []
    for _ in range(nfac):
        k = draw(st.integers(0, min(3, nvars)))
        scopes.append(tuple(draw(st.permutations(names))[:k]))
    covered = {v for s in scopes for v in s}
    for v in names:  # every variable appears somewhere
        if v not in covered:
            scopes.append((v,))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    output = tuple(draw(st.permutations(names))[: draw(st.integers(0, nvars))])
    seed = draw(st.integers(0, 2**31 - 1))
    p_zero = draw(st.sampled_from([0.0, 0.0, 0.2]))
    return {"cards": dict(zip(names, cards, strict=True)), "scopes": scopes, "batch": batch,
            "output": output, "seed": seed, "p_zero": p_zero}


def build(spec: dict, dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(spec["seed"])
    factors = []
    for i, s in enumerate(spec["scopes"]):
        # factors alternately carry the batch shape or a broadcastable prefix of it
        b = spec["batch"] if i % 2 == 0 else spec["batch"][1:]
        shape = b + tuple(spec["cards"][v] for v in s)
        f = torch.randn(shape, generator=g, dtype=torch.float64) * 2
        if spec["p_zero"]:
            f = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < spec["p_zero"],
                            torch.tensor(-math.inf, dtype=torch.float64), f)
        factors.append(f.to(dtype))
    return factors


def brute(spec: dict, factors: list[torch.Tensor], reduce: str) -> torch.Tensor:
    names = list(spec["cards"])
    full = joint_table([f.double() for f in factors], spec["scopes"], names)
    nb = full.dim() - len(names)
    full = full.expand(torch.broadcast_shapes(full.shape, spec["batch"] + (1,) * len(names)))
    nb = full.dim() - len(names)
    out = spec["output"]
    elim = [nb + names.index(v) for v in names if v not in out]
    if elim:
        full = torch.logsumexp(full, elim) if reduce == "log" else full.amax(elim)
    rest = [v for v in names if v in out]
    perm = list(range(nb)) + [nb + rest.index(v) for v in out]
    return full.permute(perm)


def assert_close_log(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    assert actual.shape == expected.shape
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(actual), finite), (actual, expected)
    assert torch.equal(torch.isneginf(actual), torch.isneginf(expected))
    a, e = actual[finite].double(), expected[finite]
    # relative in probability space = absolute in log space (scaled by magnitude for large logs)
    assert torch.allclose(a, e, rtol=tol, atol=tol), (a - e).abs().max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("semiring", ["log", "max", "sample"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=factor_sets())
def test_contract_matches_brute_force(spec: dict, semiring: str, dtype: torch.dtype) -> None:
    factors = build(spec, dtype)
    out = contract(factors, spec["scopes"], spec["output"], semiring=semiring)
    assert out.dtype == dtype
    expected = brute(spec, factors, "max" if semiring == "max" else "log")
    assert_close_log(out, expected, TOL[dtype])


@settings(max_examples=150, deadline=None)
@given(spec=factor_sets())
def test_argmax_attains_the_max(spec: dict) -> None:
    factors = build(spec, torch.float64)
    res = contract_argmax(factors, spec["scopes"], spec["output"])
    names = list(spec["cards"])
    full = joint_table(factors, spec["scopes"], names)
    batch = torch.broadcast_shapes(full.shape[: full.dim() - len(names)], spec["batch"])
    full = full.expand(batch + full.shape[full.dim() - len(names):])
    out = spec["output"]
    out_cards = tuple(spec["cards"][v] for v in out)
    # value of the joint at the traced-back assignment, for every batch entry and output config
    idx = []
    dims = tuple(batch) + out_cards
    grids = torch.meshgrid(*[torch.arange(n) for n in dims], indexing="ij") if dims else ()
    b_grid, o_grid = grids[: len(batch)], grids[len(batch):]
    for v in names:
        if v in out:
            idx.append(o_grid[out.index(v)])
        else:
            a = res.assignment[v]
            assert a.shape == tuple(batch) + out_cards
            assert a.dtype == torch.long
            idx.append(a)
    attained = full[(*b_grid, *idx)]
    assert_close_log(attained, res.value, 1e-12)
    assert_close_log(res.value, brute(spec, factors, "max"), 1e-10)


def test_sample_semiring_draws_from_the_joint() -> None:
    # Joint over 3 variables with a loop and a deterministic zero; 40,000 exact draws.
    # Chi-square at alpha = 1e-4: a correct sampler fails with probability 1e-4 for a new seed.
    g = torch.Generator().manual_seed(7)
    f1 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    f2 = torch.randn(3, 2, generator=g, dtype=torch.float64)
    f3 = torch.randn(2, 2, generator=g, dtype=torch.float64)
    f3[1, 0] = -math.inf
    scopes = [("a", "b"), ("b", "c"), ("c", "a")]
    res = contract_sample([f1, f2, f3], scopes, sample_shape=(40000,),
                          generator=make_generator(123))
    full = joint_table([f1, f2, f3], scopes, ["a", "b", "c"])
    probs = (full - torch.logsumexp(full.reshape(-1), 0)).exp()
    lin = (res.assignment["a"] * 3 + res.assignment["b"]) * 2 + res.assignment["c"]
    counts = torch.bincount(lin, minlength=12)
    chi_square_gof(counts, probs, alpha=1e-4)
    assert torch.allclose(res.value, torch.logsumexp(full.reshape(-1), 0), atol=1e-12)


def test_sample_conditional_on_output_and_batched() -> None:
    # p(b | a) for each a and each batch entry: draws land only where allowed, with the right law.
    g = torch.Generator().manual_seed(3)
    f = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)  # batch 4, (a, b)
    f[:, 0, 2] = -math.inf
    res = contract_sample([f], [("a", "b")], output=["a"], sample_shape=(20000,),
                          generator=make_generator(5))
    draws = res.assignment["b"]
    assert draws.shape == (20000, 4, 2)
    probs = torch.softmax(f, dim=-1)
    for bi in range(4):
        for ai in range(2):
            counts = torch.bincount(draws[:, bi, ai], minlength=3)
            # alpha = 1e-5 per cell, 8 cells: family-wise false-failure rate <= 8e-5.
            chi_square_gof(counts, probs[bi, ai], alpha=1e-5)


def test_sampling_is_reproducible_and_leaves_global_rng_alone() -> None:
    f = torch.randn(3, 4, dtype=torch.float64)
    state = torch.get_rng_state()
    a = contract_sample([f], [("x", "y")], sample_shape=(100,), generator=make_generator(11))
    b = contract_sample([f], [("x", "y")], sample_shape=(100,), generator=make_generator(11))
    c = contract_sample([f], [("x", "y")], sample_shape=(100,), generator=make_generator(12))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a.assignment[v], b.assignment[v]) for v in "xy")
    assert not all(torch.equal(a.assignment[v], c.assignment[v]) for v in "xy")


def test_zero_probability_sampling_raises() -> None:
    f = torch.full((2, 2), -math.inf, dtype=torch.float64)
    with pytest.raises(ZeroProbabilityEvidence, match="zero everywhere"):
        contract_sample([f], [("x", "y")], generator=make_generator(0))


def test_gradient_of_log_z_is_the_marginal() -> None:
    g = torch.Generator().manual_seed(0)
    f1 = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(4, 2, generator=g, dtype=torch.float64)
    f2[0, 1] = -math.inf
    f2.requires_grad_(True)
    logz = contract([f1, f2], [("a", "b"), ("b", "c")])
    logz.backward()
    marg_ab = contract([f1.detach(), f2.detach()], [("a", "b"), ("b", "c")], ["a", "b"])
    assert torch.allclose(f1.grad, (marg_ab - logz.detach()).exp(), atol=1e-12)
    assert torch.isfinite(f2.grad).all()
    assert f2.grad[0, 1] == 0


def test_gradcheck_contract() -> None:
    g = torch.Generator().manual_seed(1)
    fs = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
          for s in [(2, 3), (3, 2), (2, 2, 2)]]
    scopes = [("a", "b"), ("b", "c"), ("c", "a", "d")]
    assert torch.autograd.gradcheck(lambda *x: contract(list(x), scopes, ["d"]), fs)


def test_underflow_free_shift_for_large_logits() -> None:
    # Values around -1e4 would underflow without per-slice shifting.
    a = torch.tensor([[-1e4, -1e4 - 1.0], [-2e4, -2e4]], dtype=torch.float64)
    b = torch.tensor([[0.0, -3.0], [-1.0, 0.0]], dtype=torch.float64)
    out = contract([a, b], [("i", "j"), ("j", "k")], ["i", "k"])
    expected = torch.logsumexp(a[:, :, None] + b[None], dim=1)
    assert torch.allclose(out, expected, rtol=1e-14)


def test_errors_name_the_factor_and_value() -> None:
    a, b = torch.zeros(2, 3), torch.zeros(4, 2)
    with pytest.raises(ShapeError, match=r"factor 1.*'y' has 4 states here but 3"):
        contract([a, b], [("x", "y"), ("y", "z")])
    with pytest.raises(UnknownVariableError, match="output variable 'w'"):
        contract([a], [("x", "y")], ["w"])
    nan = torch.zeros(2)
    nan[1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"factor 1 over \('x',\).*NaN"):
        contract([torch.zeros(2), nan], [("x",), ("x",)])
    with pytest.raises(NonFiniteError, match=r"\+inf"):
        contract([torch.tensor([0.0, math.inf])], [("x",)])
    with pytest.raises(ShapeError, match="scope names 3 variables"):
        contract([a], [("x", "y", "z")])
    with pytest.raises(ShapeError, match="one scope per factor"):
        contract([a, a], [("x", "y")])
    with pytest.raises(ShapeError, match="do not broadcast"):
        contract([torch.zeros(3, 2), torch.zeros(4, 2)], [("x",), ("x",)])
    with pytest.raises(DtypeMismatchError, match="factor 1"):
        contract([a, a.double()], [("x", "y"), ("x", "y")])
    with pytest.raises(ShapeError, match="repeats"):
        contract([torch.zeros(2, 2)], [("x", "x")])
    # errors are also the builtins a caller would catch
    with pytest.raises(ValueError):
        contract([a, b], [("x", "y"), ("y", "z")])
    with pytest.raises(KeyError):
        contract([a], [("x", "y")], ["w"])


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(5, 3, 4, generator=g, dtype=torch.float64),
          torch.randn(4, 2, generator=g, dtype=torch.float64)]
    scopes = [("a", "b"), ("b", "c")]
    cpu = contract(fs, scopes, ["c"])
    gpu = contract([f.cuda() for f in fs], scopes, ["c"])
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-12)
    with pytest.raises(DeviceMismatchError):
        contract([fs[0], fs[1].cuda()], scopes)
    m_cpu = contract_argmax(fs, scopes)
    m_gpu = contract_argmax([f.cuda() for f in fs], scopes)
    assert all(torch.equal(m_cpu.assignment[v], m_gpu.assignment[v].cpu()) for v in "abc")


@settings(max_examples=100, deadline=None)
@given(spec=factor_sets(), data=st.data())
def test_explicit_partial_paths_and_cost(spec: dict, data: st.DataObject) -> None:
    # Any well-formed path, even one that stops early, gives the same result.
    n = len(spec["scopes"])
    path = []
    while n > 1 and data.draw(st.booleans()):
        i, j = data.draw(st.permutations(range(n)))[:2]
        path.append((i, j))
        n -= 1
    factors = build(spec, torch.float64)
    out = contract(factors, spec["scopes"], spec["output"], optimize=path)
    assert_close_log(out, brute(spec, factors, "log"), 1e-10)
    res = contract_argmax(factors, spec["scopes"], spec["output"], optimize=path)
    assert_close_log(res.value, brute(spec, factors, "max"), 1e-10)
    cost = contraction_cost(spec["scopes"], spec["cards"], spec["output"], path)
    assert 1 <= cost.largest_table <= math.prod(spec["cards"].values())


def test_bad_explicit_path() -> None:
    with pytest.raises(ValidationError, match="path step 0"):
        contract([torch.zeros(2), torch.zeros(2)], [("a",), ("a",)], optimize=[(0, 5)])
