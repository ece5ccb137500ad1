"""Fully connected Boltzmann machines (NNDL 12.1): binary units, temperature, Gibbs, learning.

``K`` binary units ``x`` in ``{0, 1}^K``, split into visible and hidden ones by a boolean mask,
interact through a symmetric weight matrix ``W`` (K, K) with a zero diagonal, and have biases
``b`` (K,). The energy (12.2) and the Boltzmann distribution (12.1) at temperature ``T > 0`` are

    E(x) = -(sum_{i<j} w_ij x_i x_j + sum_i b_i x_i) = -1/2 x^T W x - b^T x,
    p(x) = exp(-E(x) / T) / Z.

The weights are stored as one parameter per pair ``i < j`` (:attr:`BoltzmannMachine.pair_weight`,
the upper triangle in row-major order), so symmetry and the zero diagonal hold by construction;
:attr:`BoltzmannMachine.weight` is the full matrix built from it. The full conditional (12.5) is

    p(x_i = 1 | x_{-i}) = sigmoid((sum_j w_ij x_j + b_i) / T),

which drives single-site Gibbs sampling (:meth:`BoltzmannMachine.gibbs_kernel`, a
:class:`samplers.gibbs.Gibbs` kernel, and the faster direct :meth:`BoltzmannMachine.gibbs_sweep`).
For ``K <= 20`` everything is also exact by enumeration of the ``2^K`` states, in chunks of
bounded memory: ``log Z``, ``log p(x)``, ``log p(v)`` of the visible units, and the moments.

Learning follows (12.24)-(12.26): the gradient of the mean log-likelihood of visible data is

    d L / d w_ij = (<x_i x_j>_data - <x_i x_j>_model) / T,
    d L / d b_i  = (<x_i>_data - <x_i>_model) / T

(the book sets ``T = 1``), where the positive (data) phase clamps the visible units to the data
and samples the hidden ones, and the negative (model) phase runs free chains. Both phases may be
sampled with persistent chains or computed exactly by enumeration
(:func:`boltzmann_learning_step`).

Examples
--------
>>> import torch
>>> from generative.energy.boltzmann import BoltzmannMachine
>>> from probforge.ops import make_generator
>>> bm = BoltzmannMachine(6, visible=torch.tensor([True] * 3 + [False] * 3), init_std=0.5,
...                       generator=make_generator(0), dtype=torch.float64)
>>> lp = bm.log_marginal_visible(torch.tensor([[0.0, 1.0, 1.0]], dtype=torch.float64))
>>> bool(lp.exp().sum() < 1), lp.shape
(True, torch.Size([1]))
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from generative.checks import check_batch, check_float_dtype, check_optional_generator
from probforge.errors import DtypeMismatchError, ShapeError, ValidationError
from probforge.validate import check_choice, check_int, check_real, check_tensor
from samplers.gibbs import Gibbs

__all__ = [
    "MAX_ENUMERATION_UNITS",
    "BoltzmannChains",
    "BoltzmannMachine",
    "BoltzmannStep",
    "Moments",
    "boltzmann_learning_step",
    "enumerate_states",
    "init_chains",
]

#: The largest number of units enumerated exactly (2^20 states).
MAX_ENUMERATION_UNITS = 20

#: States per enumeration chunk: bounds the memory of the exact computations.
_CHUNK = 2**15


class Moments(NamedTuple):
    """First and second moments of the units.

    Attributes
    ----------
    mean : Tensor (K,)
        ``E[x_i]``.
    second : Tensor (K, K)
        ``E[x_i x_j]`` (its diagonal equals ``mean``, as ``x_i^2 = x_i``).
    """

    mean: Tensor
    second: Tensor


class BoltzmannChains(NamedTuple):
    """Persistent chains of the learning rule.

    Attributes
    ----------
    positive : Tensor (N, K)
        One clamped chain per data row: visible units hold the data, hidden units persist.
    negative : Tensor (C, K)
        Free-running chains of the model.
    """

    positive: Tensor
    negative: Tensor


class BoltzmannStep(NamedTuple):
    """What :func:`boltzmann_learning_step` returns.

    Attributes
    ----------
    chains : BoltzmannChains
        The chains after the step (unchanged for exact phases); pass them to the next step.
    weight_grad : Tensor (K, K)
        The log-likelihood gradient estimate ``(<x_i x_j>_data - <x_i x_j>_model) / T`` for
        ``i != j``, zero diagonal (the gradient with respect to each pair weight ``w_ij``).
    bias_grad : Tensor (K,)
        ``(<x_i>_data - <x_i>_model) / T``.
    """

    chains: BoltzmannChains
    weight_grad: Tensor
    bias_grad: Tensor


def _states_chunk(num_units: int, start: int, stop: int, dtype: torch.dtype,
                  device: torch.device) -> Tensor:
    codes = torch.arange(start, stop, device=device)
    shifts = torch.arange(num_units - 1, -1, -1, device=device)
    return ((codes.unsqueeze(-1) >> shifts) & 1).to(dtype)


def _chunks(num_units: int, dtype: torch.dtype, device: torch.device,
            size: int = _CHUNK) -> Iterator[Tensor]:
    total = 2**num_units
    for start in range(0, total, size):
        yield _states_chunk(num_units, start, min(start + size, total), dtype, device)


def enumerate_states(num_units: int, dtype: torch.dtype = torch.float64,
                     device: torch.device | str | None = None) -> Tensor:
    """Every state of ``num_units`` binary units, as rows (the last unit changes fastest).

    Row ``k`` holds the binary digits of ``k``, most significant first (the order of
    ``itertools.product``).

    Parameters
    ----------
    num_units : int
        In ``[0, 20]``.
    dtype : torch.dtype
        float32 or float64.
    device : torch.device or str, optional

    Returns
    -------
    Tensor (2^num_units, num_units)

    Examples
    --------
    >>> enumerate_states(2)
    tensor([[0., 0.],
            [0., 1.],
            [1., 0.],
            [1., 1.]], dtype=torch.float64)
    """
    k = check_int(num_units, "enumerate_states num_units", minimum=0,
                  maximum=MAX_ENUMERATION_UNITS)
    check_float_dtype(dtype, "enumerate_states dtype")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _states_chunk(k, 0, 2**k, dtype, dev)


def _check_mask(mask: Any, subject: str, num_units: int, device: torch.device) -> Tensor:
    checked: Tensor = check_tensor(mask, subject, shape=(num_units,), dtype=torch.bool)
    return checked.to(device)


def _index_list(mask: Tensor) -> list[int]:
    return [int(i) for i in mask.nonzero().flatten().tolist()]


def _sweep(x: Tensor, weight: Tensor, bias: Tensor, temperature: float, units: list[int],
           scan: str, generator: torch.Generator | None) -> Tensor:
    """One single-site Gibbs sweep over ``units`` of states ``x`` (B, K); returns a new tensor.

    Systematic scan updates ``units`` in order; random scan makes ``len(units)`` updates, each of
    a unit drawn uniformly and independently per chain.
    """
    x = x.clone()
    n = len(units)
    if n == 0:
        return x
    u = torch.rand(n, x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
    if scan == "systematic":
        for k, i in enumerate(units):
            field = x @ weight[:, i] + bias[i]
            x[:, i] = (u[k] < torch.sigmoid(field / temperature)).to(x.dtype)
        return x
    free = torch.tensor(units, dtype=torch.long, device=x.device)
    pick = free[torch.randint(0, n, (n, x.shape[0]), generator=generator, device=x.device)]
    for k in range(n):
        idx = pick[k]
        field = (x * weight[idx]).sum(-1) + bias[idx]
        new = (u[k] < torch.sigmoid(field / temperature)).to(x.dtype)
        x.scatter_(1, idx.unsqueeze(-1), new.unsqueeze(-1))
    return x


class BoltzmannMachine(nn.Module):
    """A fully connected Boltzmann machine over ``K`` binary {0, 1} units.

    Parameters
    ----------
    num_units : int
        ``K >= 1``.
    visible : Tensor (K,) bool, optional
        Which units are visible (the rest are hidden); all visible if omitted. At least one
        unit must be visible.
    temperature : float
        ``T > 0``.
    init_std : float
        Standard deviation ``>= 0`` of the normal initial pair weights; biases start at zero.
    generator : torch.Generator, optional
        For the initial weights.
    dtype : torch.dtype
        float32 (default) or float64.
    device : torch.device or str, optional

    Attributes
    ----------
    pair_weight : nn.Parameter (K (K - 1) / 2,)
        ``w_ij`` for ``i < j``, row-major.
    bias : nn.Parameter (K,)
    visible : Tensor (K,) bool (buffer)
    temperature : float

    Examples
    --------
    >>> bm = BoltzmannMachine(3, init_std=0.0)
    >>> bm.weight.shape, bm.log_partition().detach()
    (torch.Size([3, 3]), tensor(2.0794))
    """

    #: The two values a unit takes (low, high).
    unit_values: tuple[float, float] = (0.0, 1.0)
    visible: Tensor
    pairs: Tensor

    def __init__(self, num_units: int, visible: Tensor | None = None, *,
                 temperature: float = 1.0, init_std: float = 0.01,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        k = check_int(num_units, "BoltzmannMachine num_units", minimum=1)
        check_float_dtype(dtype, "BoltzmannMachine dtype")
        std = check_real(init_std, "BoltzmannMachine init_std", minimum=0.0)
        dev = torch.device(device) if device is not None else (
            generator.device if isinstance(generator, torch.Generator) else torch.device("cpu"))
        generator = check_optional_generator(generator, "BoltzmannMachine generator", dev)
        if visible is None:
            visible = torch.ones(k, dtype=torch.bool)
        visible = _check_mask(visible, "BoltzmannMachine visible", k, dev)
        if not bool(visible.any()):
            raise ValidationError("BoltzmannMachine visible", "needs at least one visible unit",
                                  found=visible.tolist(), fix="set some entries to True")
        self.temperature = check_real(temperature, "BoltzmannMachine temperature", minimum=0.0,
                                      strict_minimum=True)
        pairs = torch.triu_indices(k, k, 1, device=dev)
        self.register_buffer("visible", visible.clone())
        self.register_buffer("pairs", pairs, persistent=False)
        draws = torch.randn(pairs.shape[1], generator=generator, dtype=dtype, device=dev)
        self.pair_weight = nn.Parameter(std * draws)
        self.bias = nn.Parameter(torch.zeros(k, dtype=dtype, device=dev))

    @classmethod
    def from_weights(cls, weight: Tensor, bias: Tensor, visible: Tensor | None = None, *,
                     temperature: float = 1.0) -> BoltzmannMachine:
        """A machine with the given symmetric ``weight`` (zero diagonal) and ``bias``.

        Parameters
        ----------
        weight : Tensor (K, K)
            Floating, finite, symmetric (up to ``100 * eps * max(1, max |w|)``; the upper
            triangle is used), zero diagonal.
        bias : Tensor (K,)
            Same dtype and device.
        visible : Tensor (K,) bool, optional
        temperature : float

        Returns
        -------
        BoltzmannMachine

        Examples
        --------
        >>> w = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
        >>> BoltzmannMachine.from_weights(w, torch.zeros(2)).pair_weight.data
        tensor([2.])
        """
        check_tensor(weight, "BoltzmannMachine weight", ndim=2, floating=True, finite=True)
        k = weight.shape[0]
        if weight.shape[1] != k or k < 1:
            raise ShapeError("BoltzmannMachine weight", "must be a square (K, K) matrix, K >= 1",
                             found=tuple(weight.shape))
        check_tensor(bias, "BoltzmannMachine bias", shape=(k,), finite=True, dtype=weight.dtype,
                     device=weight.device)
        tol = 100 * torch.finfo(weight.dtype).eps * max(1.0, float(weight.abs().max()))
        asym = (weight - weight.T).abs()
        if bool((asym > tol).any()):
            i, j = divmod(int(asym.argmax()), k)
            raise ValidationError("BoltzmannMachine weight", "must be symmetric (w_ij = w_ji)",
                                  found=f"w[{i},{j}] = {float(weight[i, j])} but w[{j},{i}] = "
                                  f"{float(weight[j, i])}", fix="use (weight + weight.T) / 2")
        diag = weight.diagonal()
        if bool((diag != 0).any()):
            i = int((diag != 0).nonzero()[0])
            raise ValidationError("BoltzmannMachine weight", "must have a zero diagonal "
                                  "(w_ii = 0)", found=f"w[{i},{i}] = {float(diag[i])}",
                                  fix="zero it with weight - torch.diag(weight.diagonal())")
        bm = cls(k, visible, temperature=temperature, init_std=0.0, dtype=weight.dtype,
                 device=weight.device)
        with torch.no_grad():
            bm.pair_weight.copy_(weight[bm.pairs[0], bm.pairs[1]])
            bm.bias.copy_(bias)
        return bm

    # structure -------------------------------------------------------------------------------
    @property
    def num_units(self) -> int:
        """The number of units ``K``."""
        return int(self.bias.shape[0])

    @property
    def num_visible(self) -> int:
        """The number of visible units."""
        return int(self.visible.sum())

    @property
    def weight(self) -> Tensor:
        """The symmetric weight matrix (K, K) with a zero diagonal (differentiable)."""
        k = self.num_units
        upper = torch.zeros(k, k, dtype=self.bias.dtype, device=self.bias.device).index_put(
            (self.pairs[0], self.pairs[1]), self.pair_weight)
        return upper + upper.T

    def _states(self, x: Tensor, subject: str, width: int | None = None) -> Tensor:
        name = f"BoltzmannMachine.{subject}"
        k = self.num_units if width is None else width
        check_batch(x, name, (k,), like=self.bias)
        if x.dtype != self.bias.dtype:
            raise DtypeMismatchError(name, f"must have the model's dtype {self.bias.dtype}",
                                     found=x.dtype, fix=f"convert with .to({self.bias.dtype})")
        bad = (x != 0) & (x != 1)
        if bool(bad.any()):
            pm = bool(((x == -1) | (x == 1)).all())
            raise ValidationError(
                name, "units are binary: values must be 0 or 1",
                found=f"{float(x[bad][0])} at index {tuple(int(i) for i in bad.nonzero()[0])}",
                fix="map -1/+1 data to 0/1 with (x + 1) / 2" if pm
                else "binarise the data first (e.g. (x > 0.5).to(x.dtype))",
            )
        return x

    def _check_enumerable(self, subject: str, units: int) -> None:
        if units > MAX_ENUMERATION_UNITS:
            raise ValidationError(f"BoltzmannMachine.{subject}",
                                  f"exact enumeration is limited to {MAX_ENUMERATION_UNITS} "
                                  f"units (2^{MAX_ENUMERATION_UNITS} states)", found=units,
                                  fix="use a smaller model, or estimate with Gibbs sampling")

    # energies and conditionals ---------------------------------------------------------------
    def _energy(self, x: Tensor, weight: Tensor) -> Tensor:
        return -(0.5 * ((x @ weight) * x).sum(-1) + x @ self.bias)

    def energy(self, x: Tensor) -> Tensor:
        """The energy (12.2) ``-1/2 x^T W x - b^T x`` of each state.

        Parameters
        ----------
        x : Tensor (B, K)
            Binary states (0/1 values) in the model's dtype and device.

        Returns
        -------
        Tensor (B,)

        Examples
        --------
        >>> bm = BoltzmannMachine.from_weights(torch.tensor([[0.0, 2.0], [2.0, 0.0]]),
        ...                                    torch.tensor([1.0, -1.0]))
        >>> bm.energy(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        tensor([-2., -1.], grad_fn=<NegBackward0>)
        """
        return self._energy(self._states(x, "energy states"), self.weight)

    def local_fields(self, x: Tensor) -> Tensor:
        """``sum_j w_ij x_j + b_i`` for every unit: the energy gap ``E(x_i=0) - E(x_i=1)``.

        Parameters
        ----------
        x : Tensor (B, K)

        Returns
        -------
        Tensor (B, K)

        Examples
        --------
        >>> bm = BoltzmannMachine.from_weights(torch.tensor([[0.0, 2.0], [2.0, 0.0]]),
        ...                                    torch.tensor([1.0, -1.0]))
        >>> bm.local_fields(torch.tensor([[1.0, 1.0]])).detach()
        tensor([[3., 1.]])
        """
        return self._states(x, "local_fields states") @ self.weight + self.bias

    def conditional_probs(self, x: Tensor) -> Tensor:
        """The full conditionals (12.5) ``p(x_i = 1 | x_{-i})`` of every unit.

        Parameters
        ----------
        x : Tensor (B, K)

        Returns
        -------
        Tensor (B, K)
            ``sigmoid(local_fields / T)``; entry ``i`` does not depend on ``x_i``.

        Examples
        --------
        >>> bm = BoltzmannMachine(2, init_std=0.0)
        >>> bm.conditional_probs(torch.zeros(1, 2)).detach()
        tensor([[0.5000, 0.5000]])
        """
        return torch.sigmoid(self.local_fields(x) / self.temperature)

    def conditional_prob(self, x: Tensor, i: int) -> Tensor:
        """``p(x_i = 1 | x_{-i})`` (12.5) of unit ``i`` for each state.

        Parameters
        ----------
        x : Tensor (B, K)
        i : int
            A unit index in ``[0, K)``.

        Returns
        -------
        Tensor (B,)

        Examples
        --------
        >>> bm = BoltzmannMachine.from_weights(torch.tensor([[0.0, 2.0], [2.0, 0.0]]),
        ...                                    torch.tensor([0.0, 0.0]))
        >>> bm.conditional_prob(torch.tensor([[0.0, 1.0]]), 0).detach()
        tensor([0.8808])
        """
        i = check_int(i, "BoltzmannMachine.conditional_prob i", minimum=0,
                      maximum=self.num_units - 1)
        x = self._states(x, "conditional_prob states")
        field = x @ self.weight[:, i] + self.bias[i]
        return torch.sigmoid(field / self.temperature)

    # sampling --------------------------------------------------------------------------------
    def _free_units(self, clamp: Tensor | None, subject: str) -> list[int]:
        if clamp is None:
            return list(range(self.num_units))
        mask = _check_mask(clamp, subject, self.num_units, self.bias.device)
        free = _index_list(~mask)
        if not free:
            raise ValidationError(subject, "clamps every unit, so nothing would be sampled",
                                  found=mask.tolist(), fix="leave some units free (False)")
        return free

    def gibbs_kernel(self, clamp: Tensor | None = None, scan: str = "systematic") -> Gibbs:
        """Single-site Gibbs sampling (12.5) as a :class:`samplers.gibbs.Gibbs` kernel.

        One block per free unit, each drawing ``x_i ~ Bernoulli(p(x_i = 1 | x_{-i}))`` for all
        chains at once. The kernel holds a snapshot of the current parameters (detached):
        build a new one after the parameters change.

        Parameters
        ----------
        clamp : Tensor (K,) bool, optional
            Units held at their values in the position (e.g. ``model.visible`` for the
            positive phase); all units are sampled if omitted.
        scan : {"systematic", "random"}
            The Gibbs kernel's scan (a random-scan step moves one unit per chain).

        Returns
        -------
        samplers.gibbs.Gibbs
            Positions are (chains, K) 0/1 tensors in the model's dtype (another dtype raises
            :class:`~probforge.errors.DtypeMismatchError` at the first step).

        Examples
        --------
        >>> from samplers.run import sample
        >>> bm = BoltzmannMachine(4, init_std=0.5, dtype=torch.float64)
        >>> s = sample(bm.gibbs_kernel(), None, torch.zeros(8, 4, dtype=torch.float64),
        ...            num_draws=10, seed=0)
        >>> tuple(s["x"].shape)
        (8, 10, 4)
        """
        free = self._free_units(clamp, "BoltzmannMachine.gibbs_kernel clamp")
        check_choice(scan, "BoltzmannMachine.gibbs_kernel scan", ("systematic", "random"))
        weight = self.weight.detach()
        bias = self.bias.detach()
        temperature = self.temperature

        def unit(i: int) -> Any:
            def draw(x: Tensor, generator: torch.Generator | None) -> Tensor:
                if x.dtype != weight.dtype:
                    raise DtypeMismatchError("BoltzmannMachine Gibbs position",
                                             f"must have the model's dtype {weight.dtype}",
                                             found=x.dtype, fix=f"convert with .to({weight.dtype})")
                p = torch.sigmoid((x @ weight[:, i] + bias[i]) / temperature)
                u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
                return (u < p).to(x.dtype).unsqueeze(-1)
            return draw

        return Gibbs([([i], unit(i)) for i in free], scan=scan)

    def gibbs_sweep(self, x: Tensor, clamp: Tensor | None = None, scan: str = "systematic",
                    generator: torch.Generator | None = None) -> Tensor:
        """One single-site Gibbs sweep of chains ``x`` (a new tensor; ``x`` is not modified).

        The direct, faster equivalent of one step of :meth:`gibbs_kernel` (systematic scan);
        with ``scan="random"`` it makes as many single-site updates as there are free units,
        each of a unit drawn uniformly and independently per chain.

        Parameters
        ----------
        x : Tensor (B, K)
            Binary states, one chain per row.
        clamp : Tensor (K,) bool, optional
            Units left unchanged.
        scan : {"systematic", "random"}
        generator : torch.Generator, optional

        Returns
        -------
        Tensor (B, K)

        Examples
        --------
        >>> from probforge.ops import make_generator
        >>> bm = BoltzmannMachine(3, init_std=0.0)
        >>> x = bm.gibbs_sweep(torch.zeros(1000, 3), generator=make_generator(0))
        >>> bool(abs(float(x.mean()) - 0.5) < 0.05)
        True
        """
        x = self._states(x, "gibbs_sweep states")
        free = self._free_units(clamp, "BoltzmannMachine.gibbs_sweep clamp")
        check_choice(scan, "BoltzmannMachine.gibbs_sweep scan", ("systematic", "random"))
        generator = check_optional_generator(generator, "BoltzmannMachine.gibbs_sweep generator",
                                             x.device)
        with torch.no_grad():
            return _sweep(x, self.weight, self.bias, self.temperature, free, scan, generator)

    # exact quantities by enumeration --------------------------------------------------------
    def log_partition(self) -> Tensor:
        """``log Z = log sum_x exp(-E(x) / T)`` by enumerating the ``2^K`` states (K <= 20).

        The states are visited in chunks, so memory stays bounded; the result is differentiable
        in the parameters.

        Returns
        -------
        Tensor ()

        Raises
        ------
        ValidationError
            If ``K > 20``.

        Examples
        --------
        >>> bm = BoltzmannMachine.from_weights(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
        >>> bm.log_partition().detach()
        tensor(2.0064)
        """
        self._check_enumerable("log_partition", self.num_units)
        weight = self.weight
        parts = [torch.logsumexp(-self._energy(x, weight) / self.temperature, 0)
                 for x in _chunks(self.num_units, self.bias.dtype, self.bias.device)]
        return torch.logsumexp(torch.stack(parts), 0)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` of full states (K <= 20).

        Parameters
        ----------
        x : Tensor (B, K)

        Returns
        -------
        Tensor (B,)

        Examples
        --------
        >>> bm = BoltzmannMachine(3, init_std=0.0)
        >>> bm.log_prob(torch.zeros(1, 3)).exp().detach()
        tensor([0.1250])
        """
        x = self._states(x, "log_prob states")
        return -self._energy(x, self.weight) / self.temperature - self.log_partition()

    def log_marginal_visible(self, v: Tensor) -> Tensor:
        """``log p(v) = log sum_h exp(-E(v, h) / T) - log Z`` (12.17), hidden units enumerated.

        Parameters
        ----------
        v : Tensor (B, K_v)
            Binary values of the visible units, in the order of ``model.visible``.

        Returns
        -------
        Tensor (B,)

        Examples
        --------
        >>> bm = BoltzmannMachine(3, visible=torch.tensor([True, False, False]), init_std=0.0)
        >>> bm.log_marginal_visible(torch.tensor([[1.0]])).exp().detach()
        tensor([0.5000])
        """
        v = self._states(v, "log_marginal_visible v", self.num_visible)
        return self._log_unnormalised_visible(v, self.weight) - self.log_partition()

    def _hidden_chunks(self, v: Tensor, weight: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """(full states (B, C, K), their log-weights -E/T (B, C)) over chunks of hidden states."""
        k, kh = self.num_units, self.num_units - self.num_visible
        self._check_enumerable("hidden-unit enumeration", kh)
        vis, hid = self.visible, ~self.visible
        size = max(1, _CHUNK // max(1, v.shape[0]))
        for h in _chunks(kh, v.dtype, v.device, size):
            x = torch.zeros(v.shape[0], h.shape[0], k, dtype=v.dtype, device=v.device)
            x[:, :, vis] = v.unsqueeze(1)
            x[:, :, hid] = h.unsqueeze(0)
            yield x, -self._energy(x, weight) / self.temperature

    def _log_unnormalised_visible(self, v: Tensor, weight: Tensor) -> Tensor:
        parts = [torch.logsumexp(lw, -1) for _, lw in self._hidden_chunks(v, weight)]
        return torch.logsumexp(torch.stack(parts, -1), -1)

    def exact_moments(self) -> Moments:
        """The model's ``E[x_i]`` and ``E[x_i x_j]`` by enumeration (K <= 20), detached.

        Returns
        -------
        Moments

        Examples
        --------
        >>> BoltzmannMachine(2, init_std=0.0).exact_moments().second
        tensor([[0.5000, 0.2500],
                [0.2500, 0.5000]])
        """
        with torch.no_grad():
            log_z = self.log_partition()
            weight = self.weight
            k = self.num_units
            mean = torch.zeros(k, dtype=weight.dtype, device=weight.device)
            second = torch.zeros(k, k, dtype=weight.dtype, device=weight.device)
            for x in _chunks(k, weight.dtype, weight.device):
                p = (-self._energy(x, weight) / self.temperature - log_z).exp()
                mean = mean + p @ x
                second = second + x.T @ (p.unsqueeze(-1) * x)
        return Moments(mean, second)

    def exact_data_moments(self, v: Tensor) -> Moments:
        """Positive-phase moments ``mean_n E_{p(h | v_n)}[x]`` and ``[x x^T]``, exact, detached.

        Parameters
        ----------
        v : Tensor (N, K_v)
            Binary visible data.

        Returns
        -------
        Moments

        Examples
        --------
        >>> bm = BoltzmannMachine(2, visible=torch.tensor([True, False]), init_std=0.0)
        >>> bm.exact_data_moments(torch.tensor([[1.0]])).mean
        tensor([1.0000, 0.5000])
        """
        v = self._states(v, "exact_data_moments v", self.num_visible)
        with torch.no_grad():
            weight = self.weight
            log_norm = self._log_unnormalised_visible(v, weight)  # (N,)
            k = self.num_units
            mean = torch.zeros(k, dtype=weight.dtype, device=weight.device)
            second = torch.zeros(k, k, dtype=weight.dtype, device=weight.device)
            for x, lw in self._hidden_chunks(v, weight):
                p = (lw - log_norm.unsqueeze(-1)).exp()  # (N, C): p(h | v_n)
                mean = mean + torch.einsum("nc,nck->k", p, x)
                second = second + torch.einsum("nc,nci,ncj->ij", p, x, x)
            n = v.shape[0]
        return Moments(mean / n, second / n)


# learning -------------------------------------------------------------------------------------
def _check_model(model: Any, subject: str) -> BoltzmannMachine:
    if not isinstance(model, BoltzmannMachine):
        raise ValidationError(subject, "must be a BoltzmannMachine", found=type(model).__name__)
    return model


def _full_states(model: BoltzmannMachine, v: Tensor,
                 generator: torch.Generator | None) -> Tensor:
    """States (N, K) with the visible units set to ``v`` and uniform random hidden units."""
    x = (torch.rand(v.shape[0], model.num_units, generator=generator, device=v.device) < 0.5
         ).to(v.dtype)
    x[:, model.visible] = v
    return x


def init_chains(model: BoltzmannMachine, data: Tensor, num_chains: int = 100,
                generator: torch.Generator | None = None) -> BoltzmannChains:
    """Start the persistent chains of :func:`boltzmann_learning_step`.

    Parameters
    ----------
    model : BoltzmannMachine
    data : Tensor (N, K_v)
        Binary visible data (one clamped chain per row, hidden units uniform at random).
    num_chains : int
        Free-running chains (>= 1), uniform random states.
    generator : torch.Generator, optional

    Returns
    -------
    BoltzmannChains

    Examples
    --------
    >>> bm = BoltzmannMachine(3, visible=torch.tensor([True, True, False]))
    >>> c = init_chains(bm, torch.ones(5, 2), num_chains=7)
    >>> tuple(c.positive.shape), tuple(c.negative.shape)
    ((5, 3), (7, 3))
    """
    model = _check_model(model, "init_chains model")
    data = model._states(data, "init_chains data", model.num_visible)
    num_chains = check_int(num_chains, "init_chains num_chains", minimum=1)
    generator = check_optional_generator(generator, "init_chains generator", data.device)
    negative = (torch.rand(num_chains, model.num_units, generator=generator, device=data.device)
                < 0.5).to(data.dtype)
    return BoltzmannChains(_full_states(model, data, generator), negative)


def _sample_moments(x: Tensor) -> Moments:
    return Moments(x.mean(0), x.T @ x / x.shape[0])


def boltzmann_learning_step(model: BoltzmannMachine, data: Tensor,
                            chains: BoltzmannChains | None = None, *, lr: float = 0.1,
                            num_sweeps: int = 1, weight_decay: float = 0.0,
                            positive: str = "sampled", negative: str = "sampled",
                            num_chains: int = 100,
                            generator: torch.Generator | None = None) -> BoltzmannStep:
    """One step of the Boltzmann learning rule (12.26), updating ``model`` in place.

    Like an optimiser step, the parameters change in place (under ``torch.no_grad``):

        w_ij += lr * ((<x_i x_j>_data - <x_i x_j>_model) / T - weight_decay * w_ij)
        b_i  += lr * (<x_i>_data - <x_i>_model) / T

    which is gradient ascent on the mean log-likelihood (12.16) of the visible data (with an L2
    penalty on the weights). The phases:

    - positive ``"sampled"``: each data row's clamped chain (visible units = the row) makes
      ``num_sweeps`` Gibbs sweeps over the hidden units; ``"exact"``: the posterior moments by
      enumerating the hidden units;
    - negative ``"sampled"``: the persistent free chains make ``num_sweeps`` sweeps;
      ``"exact"``: the model's moments by enumeration.

    With both phases exact the step is exactly ``lr`` times the log-likelihood gradient.

    Parameters
    ----------
    model : BoltzmannMachine
        Updated in place.
    data : Tensor (N, K_v)
        Binary visible data. Pass the same rows at every step: the clamped chains are per row.
    chains : BoltzmannChains, optional
        From the previous step or :func:`init_chains`; started fresh if omitted.
    lr : float
        Learning rate ``> 0``.
    num_sweeps : int
        Gibbs sweeps per sampled phase (>= 1).
    weight_decay : float
        L2 coefficient ``>= 0`` on the pair weights.
    positive, negative : {"sampled", "exact"}
    num_chains : int
        Free chains when ``chains`` is omitted.
    generator : torch.Generator, optional

    Returns
    -------
    BoltzmannStep
        The chains to pass to the next step and the gradient estimates used.

    Examples
    --------
    >>> from probforge.ops import make_generator
    >>> bm = BoltzmannMachine(3, visible=torch.tensor([True, True, False]),
    ...                       dtype=torch.float64)
    >>> v = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> before = bm.log_marginal_visible(v).mean().detach()
    >>> step = boltzmann_learning_step(bm, v, lr=0.5, positive="exact", negative="exact")
    >>> bool(bm.log_marginal_visible(v).mean() > before)
    True
    """
    model = _check_model(model, "boltzmann_learning_step model")
    data = model._states(data, "boltzmann_learning_step data", model.num_visible)
    lr = check_real(lr, "boltzmann_learning_step lr", minimum=0.0, strict_minimum=True)
    num_sweeps = check_int(num_sweeps, "boltzmann_learning_step num_sweeps", minimum=1)
    decay = check_real(weight_decay, "boltzmann_learning_step weight_decay", minimum=0.0)
    check_choice(positive, "boltzmann_learning_step positive", ("sampled", "exact"))
    check_choice(negative, "boltzmann_learning_step negative", ("sampled", "exact"))
    generator = check_optional_generator(generator, "boltzmann_learning_step generator",
                                         data.device)
    if chains is None:
        chains = init_chains(model, data, num_chains, generator)
    else:
        _check_chains(model, chains, data)
    with torch.no_grad():
        weight, bias, temp = model.weight, model.bias, model.temperature
        pos_chain, neg_chain = chains.positive, chains.negative
        if positive == "exact":
            data_m = model.exact_data_moments(data)
        else:
            pos_chain = pos_chain.clone()
            pos_chain[:, model.visible] = data
            hidden = _index_list(~model.visible)
            for _ in range(num_sweeps if hidden else 0):
                pos_chain = _sweep(pos_chain, weight, bias, temp, hidden, "systematic",
                                   generator)
            data_m = _sample_moments(pos_chain)
        if negative == "exact":
            model_m = model.exact_moments()
        else:
            units = list(range(model.num_units))
            for _ in range(num_sweeps):
                neg_chain = _sweep(neg_chain, weight, bias, temp, units, "systematic",
                                   generator)
            model_m = _sample_moments(neg_chain)
        weight_grad = (data_m.second - model_m.second) / temp
        weight_grad.fill_diagonal_(0)
        bias_grad = (data_m.mean - model_m.mean) / temp
        pair_grad = weight_grad[model.pairs[0], model.pairs[1]]
        model.pair_weight.add_(lr * (pair_grad - decay * model.pair_weight))
        model.bias.add_(lr * bias_grad)
    return BoltzmannStep(BoltzmannChains(pos_chain, neg_chain), weight_grad, bias_grad)


def _check_chains(model: BoltzmannMachine, chains: Any, data: Tensor) -> None:
    subject = "boltzmann_learning_step chains"
    if not isinstance(chains, BoltzmannChains):
        raise ValidationError(subject, "must be a BoltzmannChains", found=type(chains).__name__,
                              fix="pass the chains of the previous step, or init_chains(...)")
    model._states(chains.negative, "boltzmann_learning_step chains.negative")
    model._states(chains.positive, "boltzmann_learning_step chains.positive")
    if chains.positive.shape[0] != data.shape[0]:
        raise ShapeError(f"{subject}.positive", f"must have one row per data row "
                         f"({data.shape[0]})", found=tuple(chains.positive.shape),
                         fix="pass the same data at every step, or restart with init_chains")
