"""Helpers shared by the mixture models (Gaussian, Bernoulli): input checks, log-space
responsibilities, the ELBO, and k-means++ initialisation with an explicit generator."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    NonFiniteError,
    NormalisationError,
    ShapeError,
    ValidationError,
)
from probforge.ops.device import common_device_dtype
from probforge.ops.special import logsumexp
from probforge.validate import check_int, check_real


def _check_float_dtype(dtype: torch.dtype, subject: str) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ValidationError(
            subject,
            "must have dtype float32 or float64",
            found=dtype,
            fix=f"convert with {subject}.to(torch.float64)",
        )


def _check_data(x: object, subject: str = "x") -> Tensor:
    """``x`` as an (N, D) view: a Tensor of shape (N, D) or (N,) (D = 1), finite, N >= 1."""
    if not isinstance(x, Tensor):
        raise ValidationError(subject, "must be a torch.Tensor", found=type(x).__name__)
    if x.dim() == 1:
        x = x.unsqueeze(-1)
    if x.dim() != 2:
        raise ShapeError(
            subject, "must have shape (N, D), or (N,) for one-dimensional data",
            found=tuple(x.shape),
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ShapeError(subject, "needs at least one row and one column", found=tuple(x.shape))
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise NonFiniteError(
                subject,
                f"has a non-finite entry at index {idx}",
                found=float(x[idx]),
                fix="remove or impute rows with NaN or inf",
            )
    return x


def _check_int(value: object, subject: str, minimum: int) -> int:
    return check_int(value, subject, minimum=minimum)


def _check_nonneg_float(value: object, subject: str) -> float:
    return check_real(value, subject, minimum=0.0)


def _check_n_components(n_components: object, n: int) -> int:
    k = _check_int(n_components, "n_components", 1)
    if k > n:
        raise ValidationError(
            "n_components",
            f"must not exceed the number of data points N={n}",
            found=k,
            fix="use fewer components or more data",
        )
    return k


def _check_model_input(x: object, device: torch.device, dtype: torch.dtype, d: int) -> Tensor:
    """Validate data passed to a fitted model's methods; return it as (N, D)."""
    if not isinstance(x, Tensor):
        raise ValidationError("x", "must be a torch.Tensor", found=type(x).__name__)
    if x.device != device:
        raise DeviceMismatchError(
            "x", f"is on {x.device} but the model is on {device}", fix="move x with x.to(device)"
        )
    if x.dtype != dtype:
        raise DtypeMismatchError(
            "x", f"has dtype {x.dtype} but the model has {dtype}", fix=f"use x.to({dtype})"
        )
    if x.dim() == 1 and d == 1:
        x = x.unsqueeze(-1)
    if x.dim() != 2 or x.shape[1] != d:
        raise ShapeError(
            "x", f"must have shape (N, {d})" + (" or (N,)" if d == 1 else ""),
            found=tuple(x.shape),
        )
    return _check_data(x)


def _decrease_rtol(dtype: torch.dtype) -> float:
    """Monotonicity slack: 1e-9 relative in float64, about 1e3 ulps in float32."""
    return max(1e-9, 1e3 * torch.finfo(dtype).eps)


def _empty_threshold(dtype: torch.dtype) -> float:
    return 10.0 * torch.finfo(dtype).eps


def _normalise_log_rows(log_joint: Tensor) -> tuple[Tensor, Tensor]:
    """``(log_norm (N,), log_resp (N, K))`` from ``log_joint`` (N, K)."""
    log_norm = logsumexp(log_joint, dim=-1)
    return log_norm, log_joint - log_norm.unsqueeze(-1)


def _elbo(log_joint: Tensor, log_q: Tensor) -> Tensor:
    """Per-row ``sum_k q_k (log p(x, k) - log q_k)`` with ``0 log 0 = 0``; shape (N,)."""
    q = torch.exp(log_q)
    terms = torch.where(q > 0, q * (log_joint - log_q), torch.zeros_like(q))
    return terms.sum(dim=-1)


def _check_log_q(log_q: object, like: Tensor, k: int) -> Tensor:
    if not isinstance(log_q, Tensor):
        raise ValidationError("log_q", "must be a torch.Tensor", found=type(log_q).__name__)
    common_device_dtype([like, log_q], names=["x", "log_q"])
    if tuple(log_q.shape) != (like.shape[0], k):
        raise ShapeError(
            "log_q", f"must have shape (N, K) = ({like.shape[0]}, {k})", found=tuple(log_q.shape)
        )
    if bool(torch.isnan(log_q).any()) or bool((log_q == math.inf).any()):
        raise NonFiniteError("log_q", "must not contain NaN or +inf")
    err = logsumexp(log_q, dim=-1).abs().max()
    tol = max(1e-6, 1e3 * torch.finfo(log_q.dtype).eps)
    if float(err) > tol:
        raise NormalisationError(
            "log_q",
            f"each row must be a normalised log-distribution (logsumexp = 0 within {tol:g})",
            found=f"max |logsumexp| = {float(err):.3g}",
        )
    return log_q


def _kmeans(x: Tensor, k: int, generator: torch.Generator | None, max_iter: int = 100) -> Tensor:
    """k-means++ seeding then Lloyd iterations; returns hard labels (N,) in ``0..k-1``.

    Draws only from ``generator``. Seeding is sequential over the ``k`` centres (each draw
    depends on the previous ones); every step is vectorised over the data. A Lloyd cluster that
    empties keeps its previous centre.
    """
    n = x.shape[0]
    first = torch.randint(0, n, (1,), generator=generator, device=x.device)
    chosen = [first]
    d2 = ((x - x[first]) ** 2).sum(dim=-1)
    for _ in range(1, k):
        # Proportional to D(x)^2; uniform if every point coincides with a chosen centre.
        w = d2 + (d2.sum() <= 0).to(d2.dtype)
        nxt = torch.multinomial(w, 1, generator=generator)
        chosen.append(nxt)
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(dim=-1))
    centres = x[torch.cat(chosen)]
    labels = torch.full((n,), -1, dtype=torch.long, device=x.device)
    for _ in range(max_iter):
        new = ((x.unsqueeze(1) - centres.unsqueeze(0)) ** 2).sum(dim=-1).argmin(dim=-1)
        if torch.equal(new, labels):
            break
        labels = new
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
        counts = onehot.sum(dim=0)
        sums = onehot.T @ x
        centres = torch.where(
            (counts > 0).unsqueeze(-1), sums / counts.clamp_min(1).unsqueeze(-1), centres
        )
    return labels


# --------------------------------------------------------------------------------------------
# Gaussian numerics
# --------------------------------------------------------------------------------------------
