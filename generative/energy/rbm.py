"""Restricted Boltzmann machines: Bernoulli, Gaussian and categorical visible units, binary hidden.

An RBM is a pairwise Markov network on a bipartite graph (NNDL 12.2, DL7 7.2): visible units
``v`` (``D`` of them), binary hidden units ``h`` (``M``), one weight per visible-hidden pair. With
the weight matrix ``W`` of shape ``(D, M)`` (one orientation throughout, see the seed's erratum 6),
visible bias ``a`` and hidden bias ``b``, the log of the unnormalised joint is

    log f(v, h) = -E(v, h) = visible_term(v, a) + b^T h + v~^T W h

where the visible units decide ``visible_term`` and ``v~``:

=====================  =================================  ============  ===========================
class                  visible_term(v, a)                 v~            p(v | h)
=====================  =================================  ============  ===========================
BernoulliRBM           a^T v, v in {0, 1}^D (12.28)       v             Bernoulli(sigmoid(a + W h))
GaussianBernoulliRBM   -sum (v - a)^2 / (2 sigma^2)       v / sigma     N(a + sigma * W h, sigma^2)
                       (12.57, DL7 7.16)                                (DL7 7.19)
CategoricalRBM         sum_i a[i, v_i], one-hot (D, K)    one-hot       softmax_k(a_ik + W_ik. h)
                       (12.65)                                          (12.65)
=====================  =================================  ============  ===========================

and ``p(h_j = 1 | v) = sigmoid(b_j + (v~^T W)_j)`` for all three (12.49, DL7 7.18). Summing out
``h`` gives the free energy ``F(v) = -visible_term(v, a) - sum_j softplus(b_j + (v~^T W)_j)``
(USTC's F(x)), and ``p(v) = exp(-F(v)) / Z``.

The building blocks :meth:`RBM.visible_term`, :meth:`RBM.hidden_input`,
:meth:`RBM.visible_input`, :meth:`RBM.visible_log_normaliser` and
:meth:`RBM.sample_visible_given` take an explicit visible bias and scale, so annealed importance
sampling (:mod:`generative.energy.partition`) and the trainers can run tempered versions of the
model (``beta W``, interpolated biases) without building new modules.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.rbm import BernoulliRBM
>>> rbm = BernoulliRBM(6, 3, dtype=torch.float64, generator=make_generator(0))
>>> v = (torch.rand(5, 6, generator=make_generator(1), dtype=torch.float64) > 0.5).double()
>>> rbm.free_energy(v).shape, rbm.hidden_probs(v).shape
(torch.Size([5]), torch.Size([5, 3]))
>>> log_z = rbm.exact_log_partition()
>>> bool(torch.allclose(rbm.log_prob(v, log_z).exp().sum() <= 1, torch.tensor(True)))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    MemoryBudgetExceeded,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import make_generator
from probforge.validate import check_choice, check_int, check_real, check_tensor
from samplers.gibbs import Gibbs

__all__ = [
    "RBM",
    "BernoulliRBM",
    "CategoricalRBM",
    "GaussianBernoulliRBM",
    "binary_states",
]

#: Largest number of states :meth:`RBM.exact_log_partition` enumerates by default (2^25).
MAX_ENUMERATED_STATES = 2**25

_LOG_2PI = math.log(2 * math.pi)


def binary_states(n: int, *, start: int = 0, stop: int | None = None,
                  dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> Tensor:
    """Rows ``start .. stop-1`` of the ``2^n`` binary vectors in counting order.

    Parameters
    ----------
    n : int
        Number of bits (0 <= n <= 62).
    start, stop : int
        Range of state indices (default all ``2^n``).

    Returns
    -------
    Tensor (stop - start, n)
        Bit ``k`` of state ``s`` is ``(s >> k) & 1``.

    Examples
    --------
    >>> binary_states(2).tolist()
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    n = check_int(n, "binary_states n", minimum=0, maximum=62)
    total = 1 << n
    stop = total if stop is None else check_int(stop, "binary_states stop", minimum=0,
                                               maximum=total)
    start = check_int(start, "binary_states start", minimum=0, maximum=stop)
    idx = torch.arange(start, stop, device=device, dtype=torch.long)
    bits = torch.arange(n, device=device, dtype=torch.long)
    return ((idx[:, None] >> bits) & 1).to(dtype)


def _init_weight(shape: Sequence[int], std: float, generator: torch.Generator | None,
                 dtype: torch.dtype, device: torch.device) -> Tensor:
    g = generator if generator is not None else make_generator(0, device)
    return torch.randn(tuple(shape), generator=g, dtype=dtype, device=device) * std


class RBM(nn.Module):
    """Common code of the RBMs: binary hidden units, one kind of visible unit per subclass.

    Subclasses set :attr:`visible_kind` and implement the visible-unit methods. Parameters are
    ``weight`` (``(D, M)``, categorical ``(D, K, M)``), ``visible_bias`` (``(D,)`` or
    ``(D, K)``) and ``hidden_bias`` (``(M,)``).

    Attributes
    ----------
    num_visible, num_hidden : int
    event_shape : tuple of int
        Shape of one visible vector: ``(D,)``, or ``(D, K)`` for one-hot categorical units.
    """

    visible_kind: ClassVar[str] = ""
    weight: nn.Parameter
    visible_bias: nn.Parameter
    hidden_bias: nn.Parameter

    def __init__(self, num_visible: int, num_hidden: int, event_shape: tuple[int, ...],
                 *, weight_std: float, generator: torch.Generator | None,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_visible = check_int(num_visible, f"{name} num_visible", minimum=1)
        self.num_hidden = check_int(num_hidden, f"{name} num_hidden", minimum=1)
        weight_std = check_real(weight_std, f"{name} weight_std", minimum=0.0)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise DtypeMismatchError(f"{name} dtype", "must be a floating torch.dtype",
                                     found=dtype, fix="use torch.float32 or torch.float64")
        dev = torch.device(device)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValidationError(f"{name} generator", "must be a torch.Generator or None",
                                  found=type(generator).__name__)
        if generator is not None and generator.device.type != dev.type:
            raise DeviceMismatchError(f"{name} generator", f"must be on {dev}",
                                      found=generator.device)
        self.event_shape = event_shape
        self.weight = nn.Parameter(_init_weight((*event_shape, self.num_hidden), weight_std,
                                                generator, dtype, dev))
        self.visible_bias = nn.Parameter(torch.zeros(event_shape, dtype=dtype, device=dev))
        self.hidden_bias = nn.Parameter(torch.zeros(self.num_hidden, dtype=dtype, device=dev))

    # ------------------------------------------------------------------ description
    @property
    def num_visible_states(self) -> int:
        """Values one visible unit takes (2 binary, K categorical, 0 for continuous units)."""
        return 2

    def extra_repr(self) -> str:
        return f"num_visible={self.num_visible}, num_hidden={self.num_hidden}"

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-able dict (``type(rbm)(**rbm.config())`` rebuilds)."""
        return {"num_visible": self.num_visible, "num_hidden": self.num_hidden}

    @property
    def flat_weight(self) -> Tensor:
        """The weights as ``(D_flat, M)``: ``(D, M)``, or ``(D * K, M)`` for one-hot units."""
        return self.weight.reshape(-1, self.num_hidden)

    # ------------------------------------------------------------------ checks
    def check_visible(self, v: Any, subject: str = "v") -> Tensor:
        """Check a batch of visible vectors ``(B, *event_shape)`` for this model; return it.

        Raises
        ------
        ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError, ValidationError
            Wrong shape or unit count, an integer tensor, another device or dtype than the
            model's, NaN, or values outside the units' support.
        """
        subject = f"{type(self).__name__} {subject}"
        v = check_tensor(v, subject, floating=True)
        shape = ", ".join(map(str, self.event_shape))
        if v.dim() != len(self.event_shape) + 1 or tuple(v.shape[1:]) != self.event_shape:
            raise ShapeError(subject, f"must have shape (B, {shape})", found=tuple(v.shape),
                             fix="add a batch dimension with v[None]"
                             if tuple(v.shape) == self.event_shape else
                             f"the model has {self.num_visible} visible units")
        self._check_like(v, subject)
        self._check_visible_values(v, subject)
        return cast(Tensor, v)

    def check_hidden(self, h: Any, subject: str = "h") -> Tensor:
        """Check a batch of binary hidden vectors ``(B, M)``; return it."""
        subject = f"{type(self).__name__} {subject}"
        h = check_tensor(h, subject, floating=True, ndim=2)
        if h.shape[1] != self.num_hidden:
            raise ShapeError(subject, f"must have shape (B, {self.num_hidden})",
                             found=tuple(h.shape), fix=f"the model has {self.num_hidden} "
                             "hidden units")
        self._check_like(h, subject)
        if bool(((h != 0) & (h != 1)).any()):
            raise ValidationError(subject, "hidden units are binary: values must be 0 or 1",
                                  found=sorted(set(h[(h != 0) & (h != 1)][:5].tolist())))
        return cast(Tensor, h)

    def _check_like(self, x: Tensor, subject: str) -> None:
        if x.device != self.weight.device:
            dev = self.weight.device
            raise DeviceMismatchError(subject, f"must be on the model's device {dev}",
                                      found=x.device, fix=f"move it with .to('{dev}')")
        if x.dtype != self.weight.dtype:
            dt = self.weight.dtype
            raise DtypeMismatchError(subject, f"must have the model's dtype {dt}",
                                     found=x.dtype, fix=f"convert with .to({dt})")

    def _check_visible_values(self, v: Tensor, subject: str) -> None:
        raise NotImplementedError

    def _check_rows(self, x: Tensor, subject: str, width: int) -> None:
        if x.dim() != 2 or x.shape[1] != width:
            raise ShapeError(f"{type(self).__name__} {subject}", f"must have shape (B, {width})",
                             found=tuple(x.shape))

    # ------------------------------------------------------------------ building blocks
    def flatten_visible(self, v: Tensor) -> Tensor:
        """``v~`` of the table above as ``(B, D_flat)`` (shape-checked only)."""
        if v.dim() != len(self.event_shape) + 1 or tuple(v.shape[1:]) != self.event_shape:
            raise ShapeError(f"{type(self).__name__} visible batch",
                             f"must have shape (B, {', '.join(map(str, self.event_shape))})",
                             found=tuple(v.shape))
        return v.reshape(v.shape[0], -1)

    def hidden_input(self, v: Tensor) -> Tensor:
        """``v~^T W``, ``(B, M)``: the hidden units' input without their bias (shape-checked)."""
        return self.flatten_visible(v) @ self.flat_weight

    def visible_input(self, h: Tensor) -> Tensor:
        """``W h`` in visible shape ``(B, *event_shape)``, without the visible bias."""
        self._check_rows(h, "hidden batch", self.num_hidden)
        return (h @ self.flat_weight.T).reshape(h.shape[0], *self.event_shape)

    def visible_term(self, v: Tensor, bias: Tensor | None = None) -> Tensor:
        """``visible_term(v, bias)`` of the table above, ``(B,)``; ``bias`` defaults to ``a``."""
        raise NotImplementedError

    def visible_log_normaliser(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        """``log sum_v exp(visible_term(v, bias) + v~ . u)`` per row, ``(B,)``.

        ``interaction`` is ``u = W h`` in visible shape (``(B, *event_shape)``), possibly scaled
        (``beta W h``). Summing out the visible units of ``exp(-E)`` this way gives the exact
        ``log Z`` by enumerating the hidden units.
        """
        raise NotImplementedError

    def visible_mean_given(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        """``E[v | h]`` for the visible input ``interaction = W h`` (possibly scaled)."""
        raise NotImplementedError

    def sample_visible_given(self, bias: Tensor | None, interaction: Tensor,
                             generator: torch.Generator | None) -> Tensor:
        """A draw of ``v`` given the visible input ``interaction = W h`` (possibly scaled)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ model quantities
    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """``E(v, h)`` (12.28 / 12.57 / 12.65), ``(B,)``.

        Parameters
        ----------
        v : Tensor (B, *event_shape)
        h : Tensor (B, M), binary
        """
        v = self.check_visible(v)
        h = self.check_hidden(h)
        if v.shape[0] != h.shape[0]:
            raise ShapeError(f"{type(self).__name__}.energy", "v and h need the same batch size",
                             found=(v.shape[0], h.shape[0]))
        return -(self.visible_term(v) + h @ self.hidden_bias + (self.hidden_input(v) * h).sum(-1))

    def free_energy(self, v: Tensor) -> Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))``, ``(B,)``; ``p(v) = exp(-F(v)) / Z``."""
        v = self.check_visible(v)
        return self._free_energy(v)

    def _free_energy(self, v: Tensor) -> Tensor:
        return -(self.visible_term(v) + F.softplus(self.hidden_input(v) + self.hidden_bias).sum(-1))

    def hidden_probs(self, v: Tensor) -> Tensor:
        """``p(h_j = 1 | v) = sigmoid(b_j + (v~^T W)_j)`` (12.49), ``(B, M)``."""
        v = self.check_visible(v)
        return torch.sigmoid(self.hidden_input(v) + self.hidden_bias)

    def sample_hidden(self, v: Tensor, generator: torch.Generator | None = None
                      ) -> tuple[Tensor, Tensor]:
        """``(p(h = 1 | v), h ~ p(h | v))``, both ``(B, M)``."""
        probs = self.hidden_probs(v)
        return probs, torch.bernoulli(probs, generator=generator)

    def visible_mean(self, h: Tensor) -> Tensor:
        """``E[v | h]``: probabilities, Gaussian means or category probabilities."""
        h = self.check_hidden(h)
        return self.visible_mean_given(None, self.visible_input(h))

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``v ~ p(v | h)``, ``(B, *event_shape)``."""
        h = self.check_hidden(h)
        return self.sample_visible_given(None, self.visible_input(h), generator)

    def gibbs_step(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One block-Gibbs step ``v -> h ~ p(h | v) -> v' ~ p(v | h)`` for every row."""
        v = self.check_visible(v)
        return self._gibbs(v, 1, generator)[0]

    def _gibbs(self, v: Tensor, steps: int, generator: torch.Generator | None
               ) -> tuple[Tensor, Tensor]:
        h = v.new_zeros(v.shape[0], self.num_hidden)
        for _ in range(steps):
            h = torch.bernoulli(torch.sigmoid(self.hidden_input(v) + self.hidden_bias),
                                generator=generator)
            v = self.sample_visible_given(None, self.visible_input(h), generator)
        return v, h

    @torch.no_grad()
    def sample(self, num_chains: int, num_steps: int = 1000, *,
               init: Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Run ``num_chains`` block-Gibbs chains (one tensor operation per half-step).

        Parameters
        ----------
        num_chains : int
            Chains (rows); must equal ``init``'s rows when ``init`` is given.
        num_steps : int
            Block-Gibbs steps ``v -> h -> v`` (>= 1).
        init : Tensor (num_chains, *event_shape), optional
            Starting visible states (e.g. data); default a draw from the visible units with
            the hidden units switched off.
        generator : torch.Generator, optional

        Returns
        -------
        (v, h) : (Tensor (num_chains, *event_shape), Tensor (num_chains, M))
            The last state of every chain.
        """
        name = type(self).__name__
        num_chains = check_int(num_chains, f"{name}.sample num_chains", minimum=1)
        num_steps = check_int(num_steps, f"{name}.sample num_steps", minimum=1)
        if init is None:
            zeros = self.weight.new_zeros(num_chains, *self.event_shape)
            init = self.sample_visible_given(None, zeros, generator)
        else:
            init = self.check_visible(init, "sample init")
            if init.shape[0] != num_chains:
                raise ShapeError(f"{name}.sample init", f"must have num_chains = {num_chains} "
                                 "rows", found=tuple(init.shape))
        return self._gibbs(init, num_steps, generator)

    def gibbs_kernel(self) -> Gibbs:
        """The block-Gibbs sampler as a :class:`samplers.gibbs.Gibbs` kernel.

        The position is the flat joint state ``(chains, D_flat + M)``: the visible units
        (flattened) then the hidden units. One kernel step samples ``h ~ p(h | v)`` then
        ``v ~ p(v | h)``, so :func:`samplers.sample` and its diagnostics run on RBMs. The model's
        parameters are read at each step (train, then sample).
        """
        d = int(torch.Size(self.event_shape).numel())
        vis = list(range(d))
        hid = list(range(d, d + self.num_hidden))

        def draw_hidden(x: Tensor, g: torch.Generator | None) -> Tensor:
            v = x[:, :d].reshape(x.shape[0], *self.event_shape)
            return torch.bernoulli(torch.sigmoid(self.hidden_input(v) + self.hidden_bias),
                                   generator=g)

        def draw_visible(x: Tensor, g: torch.Generator | None) -> Tensor:
            u = self.visible_input(x[:, d:])
            return self.sample_visible_given(None, u, g).reshape(x.shape[0], d)

        return Gibbs([(hid, draw_hidden), (vis, draw_visible)])

    # ------------------------------------------------------------------ partition function
    def exact_log_partition(self, *, max_states: int = MAX_ENUMERATED_STATES,
                            chunk_states: int | None = None) -> Tensor:
        """``log Z`` by enumerating the hidden units (or the visible ones when fewer states).

        Differentiable (autograd gives the exact log-likelihood gradient); computed in the
        model's dtype (use a float64 model for 1e-10 agreement).

        Parameters
        ----------
        max_states : int
            Refuse when the smaller layer has more states than this (default ``2^25``).
        chunk_states : int, optional
            States per chunk (bounds memory); default about ``2^24 / D_flat``.

        Returns
        -------
        Tensor ()
            ``log Z``.

        Raises
        ------
        MemoryBudgetExceeded
            When both layers have more than ``max_states`` states: use AIS
            (:func:`generative.energy.partition.ais_log_partition`).
        """
        name = type(self).__name__
        max_states = check_int(max_states, f"{name}.exact_log_partition max_states", minimum=1)
        hidden_states = 2.0**self.num_hidden
        visible_states = float(self.num_visible_states) ** self.num_visible \
            if self.num_visible_states else math.inf
        if min(hidden_states, visible_states) > max_states:
            raise MemoryBudgetExceeded(
                f"{name}.exact_log_partition",
                f"enumeration needs min(2^{self.num_hidden}, "
                f"{self.num_visible_states or 'inf'}^{self.num_visible}) states, more than "
                f"max_states = {max_states}",
                fix="estimate log Z with generative.energy.partition.ais_log_partition")
        width = int(torch.Size(self.event_shape).numel())
        chunk = chunk_states if chunk_states is not None else max(1, (1 << 24) // max(width, 1))
        chunk = check_int(chunk, f"{name}.exact_log_partition chunk_states", minimum=1)
        parts = []
        if hidden_states <= visible_states:
            total = 1 << self.num_hidden
            for start in range(0, total, chunk):
                h = binary_states(self.num_hidden, start=start, stop=min(total, start + chunk),
                                  dtype=self.weight.dtype, device=self.weight.device)
                parts.append(torch.logsumexp(
                    h @ self.hidden_bias + self.visible_log_normaliser(None, self.visible_input(h)),
                    0))
        else:
            total = int(visible_states)
            for start in range(0, total, chunk):
                v = self.visible_states(start, min(total, start + chunk))
                parts.append(torch.logsumexp(-self._free_energy(v), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    def visible_states(self, start: int, stop: int) -> Tensor:
        """Visible configurations ``start .. stop-1`` in counting order (discrete units only)."""
        raise ValidationError(f"{type(self).__name__}.visible_states",
                              "continuous visible units cannot be enumerated")

    def log_prob(self, v: Tensor, log_partition: Tensor | float | None = None) -> Tensor:
        """``log p(v) = -F(v) - log Z`` per row, ``(B,)``.

        Parameters
        ----------
        v : Tensor (B, *event_shape)
        log_partition : Tensor or float, optional
            ``log Z`` (e.g. an AIS estimate); default :meth:`exact_log_partition`.
        """
        v = self.check_visible(v)
        if log_partition is None:
            log_partition = self.exact_log_partition()
        elif not isinstance(log_partition, Tensor):
            log_partition = check_real(log_partition, f"{type(self).__name__}.log_prob "
                                       "log_partition")
        else:
            check_tensor(log_partition, f"{type(self).__name__}.log_prob log_partition",
                         ndim=0, floating=True, finite=True)
        return -self._free_energy(v) - log_partition

    # ------------------------------------------------------------------ monitors
    def reconstruction_error(self, v: Tensor) -> Tensor:
        """Squared error ``||v - E[v | h = p(h | v)]||^2`` per row, ``(B,)`` (mean-field, no noise).

        The monitor of DL7 Algorithm 7.1; it is not a likelihood (a model can reconstruct well
        and sample badly).
        """
        v = self.check_visible(v)
        probs = torch.sigmoid(self.hidden_input(v) + self.hidden_bias)
        recon = self.visible_mean_given(None, self.visible_input(probs))
        return (v - recon).pow(2).reshape(v.shape[0], -1).sum(-1)

    def pseudo_log_likelihood(self, v: Tensor, *, features: str = "all",
                              generator: torch.Generator | None = None) -> Tensor:
        """``sum_i log p(v_i | v_-i)`` per row, ``(B,)``, on the scale of ``log p(v)``.

        Parameters
        ----------
        v : Tensor (B, *event_shape)
        features : {"all", "random"}
            ``"all"``: the exact sum over all ``D`` units. ``"random"``: ``D log p(v_i | v_-i)``
            for one unit ``i`` drawn per row (scikit-learn's estimator of the same sum,
            unbiased, cheaper, noisier).
        generator : torch.Generator, optional
            For ``features="random"``.

        Raises
        ------
        ValidationError
            For continuous (Gaussian) visible units: their conditional densities have no closed
            form; use :meth:`reconstruction_error` or AIS.
        """
        raise NotImplementedError


class BernoulliRBM(RBM):
    """Bernoulli-Bernoulli RBM (NNDL 12.2, DL7 7.1-7.14): ``v in {0,1}^D``, ``h in {0,1}^M``.

    Parameters
    ----------
    num_visible, num_hidden : int
    weight_std : float
        Initial weights ``N(0, weight_std^2)``; biases start at 0 (small random weights, not the
        symmetric zeros of Algorithm 12.1: the seed's erratum 15).
    generator : torch.Generator, optional
        For the initial weights (default a generator seeded with 0).
    dtype, device
        Of the parameters; data must match them.

    Examples
    --------
    >>> import torch
    >>> rbm = BernoulliRBM(4, 3, dtype=torch.float64)
    >>> rbm.free_energy(torch.ones(2, 4, dtype=torch.float64)).shape
    torch.Size([2])
    """

    visible_kind = "bernoulli"

    def __init__(self, num_visible: int, num_hidden: int, *, weight_std: float = 0.01,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        nv = check_int(num_visible, "BernoulliRBM num_visible", minimum=1)
        super().__init__(nv, num_hidden, (nv,), weight_std=weight_std, generator=generator,
                         dtype=dtype, device=device)

    def _check_visible_values(self, v: Tensor, subject: str) -> None:
        bad = (v != 0) & (v != 1)
        if bool(bad.any()):
            raise ValidationError(subject, "Bernoulli visible units are binary: values must be "
                                  "0 or 1", found=sorted(set(v[bad][:5].tolist())),
                                  fix="binarise the data (generative.data.load(..., "
                                  "binarize='fixed')) or use GaussianBernoulliRBM")

    def visible_term(self, v: Tensor, bias: Tensor | None = None) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return self.flatten_visible(v) @ a.reshape(-1)

    def visible_log_normaliser(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return F.softplus(interaction + a).reshape(interaction.shape[0], -1).sum(-1)

    def visible_mean_given(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return torch.sigmoid(interaction + a)

    def sample_visible_given(self, bias: Tensor | None, interaction: Tensor,
                             generator: torch.Generator | None) -> Tensor:
        return torch.bernoulli(self.visible_mean_given(bias, interaction), generator=generator)

    def visible_states(self, start: int, stop: int) -> Tensor:
        return binary_states(self.num_visible, start=start, stop=stop, dtype=self.weight.dtype,
                             device=self.weight.device)

    def pseudo_log_likelihood(self, v: Tensor, *, features: str = "all",
                              generator: torch.Generator | None = None) -> Tensor:
        v = self.check_visible(v)
        check_choice(features, "BernoulliRBM.pseudo_log_likelihood features", ("all", "random"))
        x = self.hidden_input(v) + self.hidden_bias                        # (B, M)
        sign = 1 - 2 * v                                                   # +1 flips 0 -> 1
        base = F.softplus(x).sum(-1)
        if features == "random":
            i = torch.randint(self.num_visible, (v.shape[0],), generator=generator,
                              device=v.device)
            s = sign.gather(1, i[:, None])[:, 0]
            flipped = F.softplus(x + s[:, None] * self.weight[i]).sum(-1)
            # F(v with i flipped) - F(v): the flip's change of the visible and hidden terms
            gap = -(s * self.visible_bias[i]) - (flipped - base)
            return self.num_visible * F.logsigmoid(gap)
        out = v.new_zeros(v.shape[0])
        step = max(1, (1 << 22) // max(1, v.shape[0] * self.num_hidden))
        for lo in range(0, self.num_visible, step):
            hi = min(self.num_visible, lo + step)
            s = sign[:, lo:hi]                                             # (B, d)
            flipped = F.softplus(x[:, None, :] + s[..., None] * self.weight[lo:hi]).sum(-1)
            gap = -(s * self.visible_bias[lo:hi]) - (flipped - base[:, None])
            out = out + F.logsigmoid(gap).sum(-1)
        return out

    def to_markov_network(self) -> Any:
        """The RBM as a :class:`pgm.markov.MarkovNetwork` (variables ``v0..``, ``h0..``).

        Unary factors hold the biases, one pairwise factor per visible-hidden pair holds
        ``W_ij``; its partition function is :meth:`exact_log_partition`. Meant for small models
        (``D * M`` factors).
        """
        from pgm.factor import Factor
        from pgm.markov import MarkovNetwork

        w = self.weight.detach()
        zero = w.new_zeros(())
        factors = []
        for i in range(self.num_visible):
            factors.append(Factor([f"v{i}"], torch.stack([zero, self.visible_bias.detach()[i]])))
        for j in range(self.num_hidden):
            factors.append(Factor([f"h{j}"], torch.stack([zero, self.hidden_bias.detach()[j]])))
        for i in range(self.num_visible):
            for j in range(self.num_hidden):
                table = torch.stack([torch.stack([zero, zero]), torch.stack([zero, w[i, j]])])
                factors.append(Factor([f"v{i}", f"h{j}"], table))
        return MarkovNetwork(factors, name="rbm")


class GaussianBernoulliRBM(RBM):
    """Gaussian-Bernoulli RBM (NNDL 12.57, DL7 7.16-7.20): real ``v``, binary ``h``.

    ``E(v, h) = sum_i (v_i - a_i)^2 / (2 sigma_i^2) - b^T h - (v / sigma)^T W h``, so
    ``p(v | h) = N(a + sigma * (W h), diag(sigma^2))`` and
    ``p(h_j = 1 | v) = sigmoid(b_j + ((v / sigma)^T W)_j)``.

    Parameters
    ----------
    num_visible, num_hidden : int
    sigma : float or Tensor (D,)
        Initial (or fixed) per-visible standard deviation, > 0. Train on standardised data
        (:func:`generative.energy.standardize.standardize`) with ``sigma = 1``.
    learn_sigma : bool
        Learn ``sigma`` (parameterised by ``log sigma``, so it stays positive) or keep it fixed.
    min_sigma : float
        Floor applied to the learned ``sigma`` (a collapsing variance is the usual way these
        models diverge).
    weight_std, generator, dtype, device
        As for :class:`BernoulliRBM`.

    Examples
    --------
    >>> import torch
    >>> rbm = GaussianBernoulliRBM(3, 2, learn_sigma=True, dtype=torch.float64)
    >>> rbm.sigma.tolist()
    [1.0, 1.0, 1.0]
    """

    visible_kind = "gaussian"

    def __init__(self, num_visible: int, num_hidden: int, *, sigma: float | Tensor = 1.0,
                 learn_sigma: bool = False, min_sigma: float = 1e-3, weight_std: float = 0.01,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        nv = check_int(num_visible, "GaussianBernoulliRBM num_visible", minimum=1)
        super().__init__(nv, num_hidden, (nv,), weight_std=weight_std, generator=generator,
                         dtype=dtype, device=device)
        if not isinstance(learn_sigma, bool):
            raise ValidationError("GaussianBernoulliRBM learn_sigma", "must be True or False",
                                  found=repr(learn_sigma))
        self.min_sigma = check_real(min_sigma, "GaussianBernoulliRBM min_sigma", minimum=0.0,
                                    strict_minimum=True)
        if isinstance(sigma, Tensor):
            s = check_tensor(sigma, "GaussianBernoulliRBM sigma", floating=True, finite=True,
                             shape=(nv,)).detach().to(self.weight)
        else:
            s = torch.full((nv,), check_real(sigma, "GaussianBernoulliRBM sigma"),
                           dtype=dtype, device=self.weight.device)
        if bool((s <= 0).any()):
            raise ValidationError("GaussianBernoulliRBM sigma", "must be > 0",
                                  found=s[s <= 0][:5].tolist())
        if bool((s < self.min_sigma).any()):
            raise ValidationError("GaussianBernoulliRBM sigma", f"must be >= min_sigma = "
                                  f"{self.min_sigma:g}", found=float(s.min()))
        self.learn_sigma = learn_sigma
        if learn_sigma:
            self.log_sigma = nn.Parameter(s.log())
        else:
            self.register_buffer("log_sigma", s.log())

    def config(self) -> dict[str, Any]:
        return {**super().config(), "learn_sigma": self.learn_sigma, "min_sigma": self.min_sigma}

    @property
    def num_visible_states(self) -> int:
        return 0

    @property
    def sigma(self) -> Tensor:
        """Per-visible standard deviation ``(D,)``, at least ``min_sigma``."""
        return self.log_sigma.exp().clamp(min=self.min_sigma)

    def _check_visible_values(self, v: Tensor, subject: str) -> None:
        if not bool(torch.isfinite(v).all()):
            from probforge.validate import check_finite
            check_finite(v, subject, fix="remove or impute the NaN / inf values")

    def flatten_visible(self, v: Tensor) -> Tensor:
        return super().flatten_visible(v) / self.sigma

    def visible_term(self, v: Tensor, bias: Tensor | None = None) -> Tensor:
        a = self.visible_bias if bias is None else bias
        if v.dim() != 2 or v.shape[1] != self.num_visible:
            raise ShapeError("GaussianBernoulliRBM visible batch",
                             f"must have shape (B, {self.num_visible})", found=tuple(v.shape))
        return -((v - a) / self.sigma).pow(2).sum(-1) / 2

    def visible_log_normaliser(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        # int exp(-(v - a)^2 / (2 s^2) + (v / s) u) dv = sqrt(2 pi) s exp(a u / s + u^2 / 2)
        a = self.visible_bias if bias is None else bias
        s = self.sigma
        u = interaction
        per_unit = 0.5 * _LOG_2PI + s.log() + a * u / s + u.pow(2) / 2
        return per_unit.sum(-1)

    def visible_mean_given(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return a + self.sigma * interaction

    def sample_visible_given(self, bias: Tensor | None, interaction: Tensor,
                             generator: torch.Generator | None) -> Tensor:
        mean = self.visible_mean_given(bias, interaction)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                            device=mean.device)
        return mean + self.sigma * noise

    def pseudo_log_likelihood(self, v: Tensor, *, features: str = "all",
                              generator: torch.Generator | None = None) -> Tensor:
        raise ValidationError("GaussianBernoulliRBM.pseudo_log_likelihood",
                              "is not available for continuous visible units (their "
                              "conditional densities have no closed form)",
                              fix="monitor reconstruction_error, or estimate the likelihood "
                              "with generative.energy.partition.ais_log_partition")


class CategoricalRBM(RBM):
    """RBM with categorical (softmax) visible units (NNDL exercise 12-5, 12.65).

    Each of the ``D`` visible units takes one of ``K`` values, given one-hot: ``v`` is
    ``(B, D, K)`` with exactly one 1 per unit. ``weight`` is ``(D, K, M)``, ``visible_bias``
    ``(D, K)``; ``E(v, h) = -sum_i a[i, v_i] - b^T h - sum_ij W[i, v_i, j] h_j`` and
    ``p(v_i = k | h) = softmax_k(a_ik + sum_j W_ikj h_j)``.

    Parameters
    ----------
    num_visible : int
    num_categories : int
        ``K >= 2``.
    num_hidden : int
    weight_std, generator, dtype, device
        As for :class:`BernoulliRBM`.

    Examples
    --------
    >>> import torch
    >>> rbm = CategoricalRBM(3, 4, 2, dtype=torch.float64)
    >>> v = CategoricalRBM.one_hot(torch.tensor([[0, 3, 1]]), 4).double()
    >>> rbm.free_energy(v).shape
    torch.Size([1])
    """

    visible_kind = "categorical"

    def __init__(self, num_visible: int, num_categories: int, num_hidden: int, *,
                 weight_std: float = 0.01, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        nv = check_int(num_visible, "CategoricalRBM num_visible", minimum=1)
        self.num_categories = check_int(num_categories, "CategoricalRBM num_categories",
                                        minimum=2)
        super().__init__(nv, num_hidden, (nv, self.num_categories), weight_std=weight_std,
                         generator=generator, dtype=dtype, device=device)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "num_categories": self.num_categories}

    @property
    def num_visible_states(self) -> int:
        return self.num_categories

    @staticmethod
    def one_hot(indices: Tensor, num_categories: int) -> Tensor:
        """Category indices ``(B, D)`` as a float one-hot ``(B, D, K)``."""
        idx = check_tensor(indices, "CategoricalRBM.one_hot indices", integer=True, ndim=2)
        k = check_int(num_categories, "CategoricalRBM.one_hot num_categories", minimum=2)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
            raise ValidationError("CategoricalRBM.one_hot indices", f"must lie in [0, {k})",
                                  found=(int(idx.min()), int(idx.max())))
        return F.one_hot(idx, k).to(torch.get_default_dtype())

    def _check_visible_values(self, v: Tensor, subject: str) -> None:
        bad = (v != 0) & (v != 1)
        if bool(bad.any()) or bool((v.sum(-1) != 1).any()):
            raise ValidationError(subject, "categorical visible units are one-hot: each unit "
                                  "needs exactly one 1 among its K entries",
                                  found=sorted(set(v.sum(-1).flatten()[:50].tolist())),
                                  fix="encode indices with CategoricalRBM.one_hot")

    def visible_term(self, v: Tensor, bias: Tensor | None = None) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return self.flatten_visible(v) @ a.reshape(-1)

    def visible_log_normaliser(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return torch.logsumexp(interaction + a, -1).sum(-1)

    def visible_mean_given(self, bias: Tensor | None, interaction: Tensor) -> Tensor:
        a = self.visible_bias if bias is None else bias
        return torch.softmax(interaction + a, -1)

    def sample_visible_given(self, bias: Tensor | None, interaction: Tensor,
                             generator: torch.Generator | None) -> Tensor:
        probs = self.visible_mean_given(bias, interaction)
        flat = probs.reshape(-1, self.num_categories)
        idx = torch.multinomial(flat, 1, generator=generator)[:, 0]
        return F.one_hot(idx, self.num_categories).to(probs.dtype).reshape(probs.shape)

    def visible_states(self, start: int, stop: int) -> Tensor:
        k, d = self.num_categories, self.num_visible
        idx = torch.arange(start, stop, device=self.weight.device)
        digits = (idx[:, None] // (k ** torch.arange(d, device=idx.device))) % k
        return F.one_hot(digits, k).to(self.weight.dtype)

    def pseudo_log_likelihood(self, v: Tensor, *, features: str = "all",
                              generator: torch.Generator | None = None) -> Tensor:
        v = self.check_visible(v)
        check_choice(features, "CategoricalRBM.pseudo_log_likelihood features",
                     ("all", "random"))
        x = self.hidden_input(v) + self.hidden_bias                          # (B, M)
        w = self.weight                                                     # (D, K, M)
        current = torch.einsum("bdk,dkm->bdm", v, w)                        # unit i's own share
        if features == "random":
            i = torch.randint(self.num_visible, (v.shape[0],), generator=generator,
                              device=v.device)
            rows = torch.arange(v.shape[0], device=v.device)
            rest = x - current[rows, i]                                     # (B, M)
            alt = F.softplus(rest[:, None, :] + w[i]).sum(-1) + self.visible_bias[i]  # (B, K)
            own = (alt * v[rows, i]).sum(-1)
            return self.num_visible * (own - torch.logsumexp(alt, -1))
        out = v.new_zeros(v.shape[0])
        step = max(1, (1 << 22) // max(1, v.shape[0] * self.num_hidden * self.num_categories))
        for lo in range(0, self.num_visible, step):
            hi = min(self.num_visible, lo + step)
            rest = x[:, None, :] - current[:, lo:hi]                        # (B, d, M)
            alt = F.softplus(rest[:, :, None, :] + w[lo:hi]).sum(-1) + self.visible_bias[lo:hi]
            own = (alt * v[:, lo:hi]).sum(-1)
            out = out + (own - torch.logsumexp(alt, -1)).sum(-1)
        return out
