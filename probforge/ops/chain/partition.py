"""``log Z`` of a chain: the scaled probability-domain forward with its analytic gradient.

The sequential ``log Z`` runs in the probability domain (one ``(B, K) @ (K, K)`` step, normalised,
the logs of the normalisers summed; compiled kernels on CPU), its gradient the matching scaled
backward recursion; wherever a normaliser is too small for that to be exact the log-space
recursion is used instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from probforge.errors import (
    ValidationError,
)
from probforge.ops.chain import native as chain_native
from probforge.ops.chain._base import (
    _Chain,
    _check_method,
    _pair_at,
    _prepare,
    _resolve,
)
from probforge.ops.chain.messages import (
    _forward_messages,
)

__all__ = ["chain_log_partition"]


def _scaled_log_z(c: _Chain) -> Tensor:
    """``log Z`` (B,) by the scaled forward recursion, with its gradient computed analytically.

    Equal to the generic log-space recursion (which it falls back to wherever a step's
    normaliser is too small to be exact, e.g. for a sequence with no feasible path), but one
    ``(B, K) @ (K, K)`` matmul per step instead of two log-sum-exps over ``(B, K, K)``.
    """
    out: Tensor = _ScaledLogZ.apply(c.unary, c.pair, c.lengths)  # type: ignore[no-untyped-call]
    return out


def _log_space_log_z(unary: Tensor, pair: Tensor, lengths: Tensor | None) -> Tensor:
    """The generic log-space sequential ``log Z`` (B,) of prepared inputs, differentiable."""
    B, T, _K = unary.shape
    valid = None if lengths is None else torch.arange(T, device=unary.device) < lengths[:, None]
    c = _Chain(unary, pair, lengths, (B,), valid)
    return _forward_messages(c, "log", "sequential")[1].sum(-1)


def _scaled_forward(
    unary: Tensor, pair: Tensor, lengths: Tensor | None, valid: Tensor | None, *,
    store: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor] | None:
    """(log_z, alphas, E, P, cs) of the scaled forward recursion; None if it is not exact.

    ``store=False`` may skip the (B, T, K) ``alphas`` (then None) when only ``log Z`` is needed.

    ``E = exp(unary - max_k)``, ``P = exp(pair - max_ij)``, ``alphas[:, t]`` the filtering
    distributions and ``cs[:, t]`` their normalisers (1 at padded steps).
    """
    B, T, _K = unary.shape
    m = unary.amax(-1)  # (B, T); exact shifts, restored in log Z
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    E = torch.exp(unary - m[..., None])
    pm = pair.amax((-2, -1))  # (Bp, Tp)
    pm = torch.where(torch.isfinite(pm), pm, torch.zeros_like(pm))
    P = torch.exp(pair - pm[..., None, None])
    alpha_t: Tensor | None
    if chain_native.enabled(E, P):
        alpha_t, cst = chain_native.scaled_forward(E, P, lengths, store=store)
    else:
        alpha_t, cst = _scaled_forward_loop(E, P, valid)
    info = torch.finfo(unary.dtype)
    # Below tiny / eps the normaliser may have lost precision to subnormals (or be 0): exact
    # answers there need the log-space recursion. One sync, outside the loop.
    if bool((cst < info.tiny / info.eps).any()):
        return None
    shifts = m.sum(-1) if valid is None else torch.where(valid, m, torch.zeros_like(m)).sum(-1)
    pms = pm.expand(B, T - 1)
    if valid is not None:
        pms = torch.where(valid[:, 1:], pms, torch.zeros_like(pms))
    log_z = torch.log(cst).sum(-1) + shifts + pms.sum(-1)
    return log_z, alpha_t, E, P, cst


def _scaled_forward_loop(E: Tensor, P: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """The scaled forward recursion in torch: (alphas (B, T, K), normalisers (B, T))."""
    T = E.shape[1]
    shared = P.shape[0] == 1
    cs = [E[:, 0].sum(-1)]
    a = E[:, 0] / cs[0][:, None]
    alphas = [a]
    for t in range(1, T):
        Pt = _pair_at(P, t - 1)
        n = (a @ Pt[0] if shared else torch.bmm(a[:, None, :], Pt)[:, 0]) * E[:, t]
        ct = n.sum(-1)
        if valid is not None:  # padding: carry the message, normaliser 1
            vt = valid[:, t]
            ct = torch.where(vt, ct, torch.ones_like(ct))
            n = torch.where(vt[:, None], n, a)
        a = n / ct[:, None]
        alphas.append(a)
        cs.append(ct)
    return torch.stack(alphas, 1), torch.stack(cs, 1)


class _ScaledLogZ(torch.autograd.Function):
    """``log Z`` of prepared (B, T, K) unary and (Bp, Tp, K, K) pair, T >= 2.

    The backward pass is the scaled backward recursion (the posterior marginals). Double
    backward (``create_graph=True``), and any step where the scaled quantities are not exact,
    use the generic log-space recursion instead.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        unary: Tensor,
        pair: Tensor,
        lengths: Tensor | None,
    ) -> Tensor:
        T = unary.shape[1]
        valid = None if lengths is None else torch.arange(T, device=unary.device) < lengths[:, None]
        # without any input needing a gradient, only log Z is kept
        store = any(ctx.needs_input_grad[:2])  # type: ignore[attr-defined]
        res = _scaled_forward(unary, pair, lengths, valid, store=store)
        ctx.fast = res is not None  # type: ignore[attr-defined]
        ctx.has_lengths = lengths is not None  # type: ignore[attr-defined]
        lens = lengths if lengths is not None else unary.new_empty(0, dtype=torch.long)
        if res is None:
            ctx.save_for_backward(unary, pair, lens)
            return _log_space_log_z(unary, pair, lengths)
        log_z, alphas, E, P, cs = res
        if alphas is None:  # no backward will run
            ctx.fast = False  # type: ignore[attr-defined]
            ctx.save_for_backward(unary, pair, lens)
        else:
            ctx.save_for_backward(unary, pair, lens, alphas, E, P, cs)
        return log_z

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None]:
        saved = ctx.saved_tensors  # type: ignore[attr-defined]
        unary, pair, lens = saved[:3]
        lengths = lens if ctx.has_lengths else None  # type: ignore[attr-defined]
        need_u, need_p = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
        grads: tuple[Tensor | None, Tensor | None] | None = None
        if ctx.fast and not torch.is_grad_enabled():  # type: ignore[attr-defined]
            alphas, E, P, cs = saved[3:]
            grads = _scaled_grads(alphas, E, P, cs, lengths, g)
        if grads is None:
            grads = _log_space_grads(unary, pair, lengths, g, need_u, need_p)
        gu, gp = grads
        return (gu if need_u else None), (gp if need_p else None), None


def _scaled_grads(
    alphas: Tensor, E: Tensor, P: Tensor, cs: Tensor, lengths: Tensor | None, g: Tensor
) -> tuple[Tensor, Tensor] | None:
    """Gradients of ``sum g * log Z`` by the scaled backward recursion; None if not finite.

    ``beta[t] = P[t] (E[t+1] beta[t+1]) / cs[t+1]`` with ``beta[T-1] = 1``, so that
    ``alphas * beta`` are the unary marginals and ``alphas[t, i] P[t, i, j] w[t, j]``, with
    ``w[t] = E[t+1] beta[t+1] / cs[t+1]``, the pair marginals.
    """
    T = alphas.shape[1]
    valid = None if lengths is None else torch.arange(T, device=g.device) < lengths[:, None]
    betas, ws = _scaled_backward(E, P, cs, lengths, valid)
    gu = alphas * betas * g[:, None, None]
    if valid is not None:
        gu = torch.where(valid[..., None], gu, torch.zeros_like(gu))
    W = ws * g[:, None, None]  # (B, T-1, K)
    A = alphas[:, :-1]
    Bp, Tp = P.shape[:2]
    if Bp == 1 and Tp == 1:
        core = torch.einsum("bti,btj->ij", A, W)[None, None]
    elif Bp == 1:
        core = torch.einsum("bti,btj->tij", A, W)[None]
    elif Tp == 1:
        core = torch.einsum("bti,btj->bij", A, W)[:, None]
    else:
        core = A[..., :, None] * W[..., None, :]
    gp = P * core
    # 0 * inf where a state of zero filtering mass has a huge scaled beta: redo in log space
    if not bool(torch.isfinite(gu).all() & torch.isfinite(gp).all()):
        return None
    return gu, gp


def _scaled_backward(
    E: Tensor, P: Tensor, cs: Tensor, lengths: Tensor | None, valid: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The scaled backward recursion: ``betas`` (B, T, K) and pair weights ``ws`` (B, T-1, K).

    ``beta[t] = P[t] ws[t]`` with ``ws[t] = E[t+1] beta[t+1] / cs[t+1]`` and ``beta[T-1] = 1``;
    ``ws`` is 0 and ``beta`` 1 from the last real step on.
    """
    if chain_native.enabled(E, P, cs):
        return chain_native.scaled_backward(E, P, cs, lengths)
    B, T, K = E.shape
    shared = P.shape[0] == 1
    PT = P.transpose(-1, -2)
    b = torch.ones(B, K, dtype=E.dtype, device=E.device)
    betas = [b]
    ws: list[Tensor] = []
    for t in range(T - 2, -1, -1):
        w = E[:, t + 1] * b / cs[:, t + 1, None]
        if valid is not None:  # beta = 1 from the last real step on; no pair mass in padding
            w = torch.where(valid[:, t + 1, None], w, torch.zeros_like(w))
        Pt = _pair_at(PT, t)
        b = w @ Pt[0] if shared else torch.bmm(w[:, None, :], Pt)[:, 0]
        if valid is not None:
            b = torch.where(valid[:, t + 1, None], b, torch.ones_like(b))
        betas.append(b)
        ws.append(w)
    if not ws:
        return torch.stack(betas, 1), E.new_zeros(B, 0, K)
    return torch.stack(betas[::-1], 1), torch.stack(ws[::-1], 1)


def _log_space_grads(
    unary: Tensor, pair: Tensor, lengths: Tensor | None, g: Tensor, need_u: bool, need_p: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``sum g * log Z`` through the generic log-space recursion.

    Under ``create_graph=True`` (grad mode on in backward) they are built on the saved inputs,
    so they are themselves differentiable, as for the generic path.
    """
    create = torch.is_grad_enabled()
    with torch.enable_grad():
        u = unary if create else unary.detach().requires_grad_(need_u)
        p = pair if create else pair.detach().requires_grad_(need_p)
        log_z = _log_space_log_z(u, p, lengths)
        wanted = [x for x, need in ((u, need_u), (p, need_p)) if need]
        got = torch.autograd.grad(log_z, wanted, g, create_graph=create, allow_unused=True)
    it = iter(got)
    out: list[Tensor | None] = []
    for x, need in ((u, need_u), (p, need_p)):
        if not need:
            out.append(None)
            continue
        gx = next(it)
        out.append(torch.zeros_like(x) if gx is None else gx)
    return out[0], out[1]


def chain_log_partition(
    unary: Tensor,
    pair: Tensor,
    lengths: Tensor | None = None,
    *,
    semiring: str = "log",
    method: str = "auto",
) -> Tensor:
    """Log partition function (or best path score) of a batch of chains.

    Parameters
    ----------
    unary : Tensor, shape (..., T, K)
        Log-potentials of each state at each step.
    pair : Tensor, shape (..., T-1, K, K) or broadcastable (e.g. (K, K))
        ``pair[..., t, i, j]``: log-potential of ``y_t = i, y_{t+1} = j``.
    lengths : LongTensor, shape (...), optional
        Real lengths ``1 <= lengths <= T``; later steps are padding and ignored.
    semiring : {"log", "max"}
        ``"log"``: ``log Z = logsumexp_y score(y)``; ``"max"``: ``max_y score(y)``.
    method : {"auto", "sequential", "parallel"}
        Recursion over time, log-depth scan, or chosen from the shapes.

    Returns
    -------
    Tensor, shape (...)
        ``-inf`` for a sequence on which every path is forbidden. Differentiable; the gradient of
        ``log Z`` with respect to ``unary`` / ``pair`` is the posterior marginals.

    Raises
    ------
    ShapeError, ValidationError, NonFiniteError
        On inconsistent shapes, lengths out of range (or not an integer tensor), NaN or +inf
        potentials at a real step. A chain needs ``T >= 1`` steps and ``K >= 1`` states (the
        HMM and CRF layers give sequences of length 0 their own documented answers); an empty
        batch (a batch dimension of size 0) gives an empty result.

    Examples
    --------
    >>> import torch
    >>> unary = torch.zeros(2, 3)                    # T = 2 steps, K = 3 states
    >>> chain_log_partition(unary, torch.zeros(3, 3)).exp()
    tensor(9.)
    """
    name = "chain_log_partition"
    _check_method(method, name)
    if semiring not in ("log", "max"):
        raise ValidationError(
            f"{name}: semiring", "must be 'log' or 'max'", found=repr(semiring)
        )
    c = _prepare(unary, pair, lengths, name)
    m = _resolve(method, c, semiring)
    native = method != "parallel" and chain_native.enabled(c.unary, c.pair, autograd=True)
    if semiring == "log" and (m == "sequential" or native) and c.unary.shape[1] > 1:
        return _scaled_log_z(c).reshape(c.batch)
    _, inc = _forward_messages(c, semiring, m)
    return inc.sum(-1).reshape(c.batch)
