"""Deep belief networks: a stack of RBMs, greedy layer-wise pre-training, generation, fine-tuning.

A DBN with layers ``v = h^(0), h^(1), ..., h^(L)`` of sizes ``[n_0, ..., n_L]`` (NNDL 12.3,
DL7 7.2, Hinton et al. 2006) is built from ``L`` RBMs, RBM ``l`` (0-based) joining layer ``l``
(its visible units) to layer ``l + 1`` (its hidden units), with weights ``W^(l)`` of shape
``(n_l, n_{l+1})`` (the orientation of :mod:`generative.energy.rbm`: the seed's erratum 6).
As a generative model (12.59-12.62, DL7 7.15)

    p(v, h^(1), ..., h^(L)) = p(v | h^(1)) prod_{l=1}^{L-2} p(h^(l) | h^(l+1)) p(h^(L-1), h^(L))

where the top two layers form an undirected RBM (the last RBM) and every lower link is a
directed sigmoid layer taken from RBM ``l``'s downward conditional,

    p(h^(l)_i = 1 | h^(l+1)) = sigmoid(a^(l)_i + (W^(l) h^(l+1))_i)

(``a^(l)`` is RBM ``l``'s visible bias; the bottom layer uses RBM 0's ``p(v | h)``: Bernoulli, or
Gaussian ``N(a + sigma W h, sigma^2)`` for a Gaussian-Bernoulli bottom RBM). The hidden biases
``b^(l)`` of the lower RBMs are not part of the generative model: with the upward weights
``W^(l)T`` they form the recognition (up) pass
``q(h^(l+1) | h^(l)) = sigmoid(b^(l) + W^(l)T h^(l))`` that :meth:`DBN.transform` computes and
:meth:`DBN.to_classifier` turns into a network.

* :func:`pretrain_dbn`: greedy layer-wise pre-training (NNDL Algorithm 12.2, DL7 Algorithm 7.1):
  train RBM 0 on the data, push the data up through it (probabilities or samples), train RBM 1 on
  that, and so on, with :func:`generative.energy.contrastive.train_rbm`.
* :meth:`DBN.sample`: block Gibbs in the top RBM, then one ancestral pass down (NNDL 12.3.1).
* :meth:`DBN.exact_log_prob`: ``log p(v)`` summed over every hidden configuration (tiny nets).
* :meth:`DBN.to_sigmoid_belief_network`: the directed network it unrolls to
  (:class:`generative.energy.sigmoid_belief_net.SigmoidBeliefNetwork`).
* :meth:`DBN.to_classifier`, :func:`finetune`, :func:`train_classifier_from_scratch`:
  discriminative fine-tuning (NNDL 12.3.2.2, DL7 7.2) and its from-scratch baseline.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.dbn import DBN
>>> dbn = DBN.from_layer_sizes([6, 4, 3], weight_std=0.5, dtype=torch.float64,
...                            generator=make_generator(0))
>>> x = (torch.rand(5, 6, generator=make_generator(1), dtype=torch.float64) > 0.5).double()
>>> tuple(dbn.transform(x).shape), tuple(dbn.transform(x, layer=1).shape)
((5, 3), (5, 4))
>>> tuple(dbn.sample(7, num_steps=10, generator=make_generator(2)).shape)
(7, 6)
>>> from generative.energy.rbm import binary_states
>>> bool(torch.isclose(dbn.exact_log_prob(binary_states(6)).exp().sum(),
...                    torch.tensor(1.0, dtype=torch.float64)))
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.checks import check_optional_generator, check_sizes
from generative.energy.rbm import RBM, BernoulliRBM, GaussianBernoulliRBM, binary_states
from generative.energy.sigmoid_belief_net import SigmoidBeliefNetwork
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    MemoryBudgetExceeded,
    ShapeError,
    ValidationError,
)
from probforge.ops.random import make_generator
from probforge.validate import check_choice, check_finite, check_int, check_real, check_tensor

__all__ = [
    "DBN",
    "DBNPretrainResult",
    "FinetuneResult",
    "accuracy",
    "finetune",
    "mlp_classifier",
    "pretrain_dbn",
    "train_classifier_from_scratch",
]

#: Largest table :meth:`DBN.exact_log_prob` builds between two adjacent hidden layers (2^22).
MAX_ENUMERATED_STATES = 2**22

#: Keyword arguments :func:`pretrain_dbn` forwards to ``train_rbm``, in its order.
TRAIN_OPTIONS = ("method", "k", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                 "sparsity_target", "sparsity_cost", "statistics", "num_replicas")


class DBN(nn.Module):
    """A deep belief network: ``L >= 1`` stacked RBMs (top two layers undirected, rest directed).

    Parameters
    ----------
    rbms : sequence of RBM
        Bottom to top. RBM 0 is a :class:`~generative.energy.rbm.BernoulliRBM` or a
        :class:`~generative.energy.rbm.GaussianBernoulliRBM`; the others are ``BernoulliRBM``
        (their visible units are the binary hidden units below). RBM ``l``'s ``num_hidden`` must
        equal RBM ``l + 1``'s ``num_visible``; all share one dtype and device. The DBN holds
        these modules themselves (not copies), as ``nn.Module`` containers do.

    Attributes
    ----------
    rbms : nn.ModuleList
    layer_sizes : list of int
        ``[n_0, ..., n_L]``.

    Raises
    ------
    ValidationError, ShapeError, DtypeMismatchError, DeviceMismatchError
        No RBM, a wrong RBM type, mismatched layer sizes, mixed dtypes or devices.

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> dbn = DBN([BernoulliRBM(8, 5), BernoulliRBM(5, 3)])
    >>> dbn.layer_sizes, dbn.num_layers
    ([8, 5, 3], 2)
    """

    rbms: nn.ModuleList

    def __init__(self, rbms: Sequence[RBM]) -> None:
        super().__init__()
        if isinstance(rbms, nn.Module) or not isinstance(rbms, Sequence):
            raise ValidationError("DBN rbms", "must be a sequence of RBMs, bottom to top",
                                  found=type(rbms).__name__,
                                  fix="pass [rbm_0, rbm_1, ...] or use DBN.from_layer_sizes")
        if len(rbms) == 0:
            raise ValidationError("DBN rbms", "needs at least one RBM", found=0)
        for i, rbm in enumerate(rbms):
            allowed: tuple[type, ...] = (BernoulliRBM, GaussianBernoulliRBM) if i == 0 \
                else (BernoulliRBM,)
            if not isinstance(rbm, allowed):
                rule = ("the bottom RBM must be a BernoulliRBM or a GaussianBernoulliRBM" if i == 0
                        else "RBMs above the bottom must be BernoulliRBMs (their visible units "
                        "are the binary hidden units below)")
                raise ValidationError(f"DBN rbms[{i}]", rule, found=type(rbm).__name__)
        for i in range(len(rbms) - 1):
            if rbms[i].num_hidden != rbms[i + 1].num_visible:
                raise ShapeError(f"DBN rbms[{i + 1}]", f"must have num_visible = "
                                 f"{rbms[i].num_hidden} (rbms[{i}]'s hidden units are its "
                                 "visible units)", found=rbms[i + 1].num_visible,
                                 fix="build the stack with DBN.from_layer_sizes")
        w0 = rbms[0].weight
        for i, rbm in enumerate(rbms):
            if rbm.weight.dtype != w0.dtype:
                raise DtypeMismatchError(f"DBN rbms[{i}]", f"must have dtype {w0.dtype} like "
                                         "rbms[0]", found=rbm.weight.dtype)
            if rbm.weight.device != w0.device:
                raise DeviceMismatchError(f"DBN rbms[{i}]", f"must be on {w0.device} like "
                                          "rbms[0]", found=rbm.weight.device)
        self.rbms = nn.ModuleList(list(rbms))

    @classmethod
    def from_layer_sizes(cls, layer_sizes: Sequence[int], *, visible: str = "bernoulli",
                         sigma: float = 1.0, learn_sigma: bool = False,
                         weight_std: float = 0.01, generator: torch.Generator | None = None,
                         dtype: torch.dtype = torch.float32,
                         device: torch.device | str = "cpu") -> DBN:
        """A fresh DBN with layer sizes ``[n_0, ..., n_L]`` (small random weights, zero biases).

        Parameters
        ----------
        layer_sizes : sequence of int
            At least two sizes, e.g. ``[784, 500, 500, 2000]``.
        visible : {"bernoulli", "gaussian"}
            Kind of the bottom RBM's visible units.
        sigma, learn_sigma
            For a Gaussian bottom (see :class:`~generative.energy.rbm.GaussianBernoulliRBM`).
        weight_std : float
            Initial weights ``N(0, weight_std^2)``.
        generator : torch.Generator, optional
            For the initial weights (default a generator seeded with 0).
        dtype, device
            Of the parameters.

        Examples
        --------
        >>> dbn = DBN.from_layer_sizes([64, 32, 16], visible="gaussian")
        >>> type(dbn.bottom_rbm).__name__, dbn.layer_sizes
        ('GaussianBernoulliRBM', [64, 32, 16])
        """
        sizes = check_sizes(layer_sizes, "DBN layer_sizes", allow_empty=False,
                            example="[784, 500, 500, 2000]")
        if len(sizes) < 2:
            raise ValidationError("DBN layer_sizes", "needs at least two sizes (visible and "
                                  "one hidden layer)", found=sizes, fix="pass e.g. [784, 500]")
        visible = check_choice(visible, "DBN visible", ("bernoulli", "gaussian"))
        dev = torch.device(device)
        if generator is None:
            generator = make_generator(0, dev)
        rbms: list[RBM] = []
        for i in range(len(sizes) - 1):
            if i == 0 and visible == "gaussian":
                rbms.append(GaussianBernoulliRBM(sizes[0], sizes[1], sigma=sigma,
                                                 learn_sigma=learn_sigma, weight_std=weight_std,
                                                 generator=generator, dtype=dtype, device=dev))
            else:
                rbms.append(BernoulliRBM(sizes[i], sizes[i + 1], weight_std=weight_std,
                                         generator=generator, dtype=dtype, device=dev))
        return cls(rbms)

    # ------------------------------------------------------------------ description
    @property
    def num_layers(self) -> int:
        """``L``: the number of RBMs (= hidden layers)."""
        return len(self.rbms)

    @property
    def layer_sizes(self) -> list[int]:
        """``[n_0, ..., n_L]``."""
        return [self.bottom_rbm.num_visible] + [self._rbm(i).num_hidden
                                                for i in range(self.num_layers)]

    @property
    def bottom_rbm(self) -> RBM:
        """RBM 0 (the visible layer and the first hidden layer)."""
        return cast(RBM, self.rbms[0])

    @property
    def top_rbm(self) -> BernoulliRBM | GaussianBernoulliRBM:
        """The last RBM: the undirected top two layers."""
        return cast(BernoulliRBM | GaussianBernoulliRBM, self.rbms[-1])

    @property
    def visible_kind(self) -> str:
        """``"bernoulli"`` or ``"gaussian"``: the bottom layer's units."""
        return self.bottom_rbm.visible_kind

    def extra_repr(self) -> str:
        return f"layer_sizes={self.layer_sizes}, visible={self.visible_kind!r}"

    def config(self) -> dict[str, Any]:
        """Arguments of :meth:`from_layer_sizes` that rebuild this architecture (JSON-able).

        ``DBN.from_layer_sizes(**dbn.config())`` then ``load_state_dict(dbn.state_dict())``
        restores the model (dtype and device are the caller's).
        """
        out: dict[str, Any] = {"layer_sizes": self.layer_sizes, "visible": self.visible_kind}
        bottom = self.bottom_rbm
        if isinstance(bottom, GaussianBernoulliRBM):
            out["learn_sigma"] = bottom.learn_sigma
        return out

    def _rbm(self, i: int) -> RBM:
        return cast(RBM, self.rbms[i])

    # ------------------------------------------------------------------ checks
    def check_data(self, x: Any, subject: str = "x") -> Tensor:
        """Check a batch of visible vectors ``(B, n_0)``, ``B >= 1``; return it unchanged.

        Raises
        ------
        ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError, ValidationError
            Wrong shape or unit count, an integer tensor, the wrong dtype or device, NaN / inf,
            or non-binary values for a Bernoulli bottom layer.
        """
        subject = f"DBN {subject}"
        n0 = self.layer_sizes[0]
        x = check_tensor(x, subject, floating=True)
        if x.dim() != 2 or x.shape[1] != n0:
            raise ShapeError(subject, f"must have shape (B, {n0})", found=tuple(x.shape),
                             fix="flatten images with x.flatten(1)" if x.dim() > 2 else
                             "add a batch dimension with x[None]" if x.dim() == 1 else
                             f"the DBN has {n0} visible units")
        if x.shape[0] == 0:
            raise ShapeError(subject, "must hold at least one row", found=tuple(x.shape))
        check_finite(x, subject)
        return self.bottom_rbm.check_visible(x, subject)

    # ------------------------------------------------------------------ recognition
    def up_pass(self, x: Tensor, *, stochastic: bool = False,
                generator: torch.Generator | None = None) -> list[Tensor]:
        """The recognition pass ``q(h^(l+1) | h^(l)) = sigmoid(b^(l) + W^(l)T h^(l))``, bottom up.

        Parameters
        ----------
        x : Tensor (B, n_0)
        stochastic : bool
            False: mean-field probabilities fed upward. True: each layer's binary sample is
            drawn and fed upward.
        generator : torch.Generator, optional
            For ``stochastic=True``.

        Returns
        -------
        list of Tensor
            ``[h^(1), ..., h^(L)]``, ``h^(l)`` of shape ``(B, n_l)``: probabilities, or binary
            samples when ``stochastic``.
        """
        x = self.check_data(x, "up_pass x")
        if not isinstance(stochastic, bool):
            raise ValidationError("DBN.up_pass stochastic", "must be True or False",
                                  found=repr(stochastic))
        check_optional_generator(generator, "DBN.up_pass generator", x.device)
        return self._up(x, self.num_layers, stochastic, generator)

    def _up(self, x: Tensor, num: int, stochastic: bool,
            generator: torch.Generator | None) -> list[Tensor]:
        out = []
        for i in range(num):
            rbm = self._rbm(i)
            probs = torch.sigmoid(rbm.hidden_input(x) + rbm.hidden_bias)
            x = torch.bernoulli(probs, generator=generator) if stochastic else probs
            out.append(x)
        return out

    def transform(self, x: Tensor, layer: int = -1) -> Tensor:
        """Mean-field features of hidden layer ``layer`` (the up pass), ``(B, n_layer)``.

        Parameters
        ----------
        x : Tensor (B, n_0)
        layer : int
            Hidden layer ``1 .. L``, or ``-1 .. -L`` counted from the top (default the top).
        """
        L = self.num_layers
        layer = check_int(layer, "DBN.transform layer", minimum=-L, maximum=L)
        if layer == 0:
            raise ValidationError("DBN.transform layer", f"hidden layers are numbered 1 .. {L} "
                                  f"(or -1 .. -{L}); layer 0 is the input itself", found=0)
        x = self.check_data(x, "transform x")
        index = layer if layer > 0 else L + 1 + layer
        return self._up(x, index, False, None)[-1]

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample_layers(self, num_samples: int, num_steps: int = 1000, *,
                      init: Tensor | None = None, generator: torch.Generator | None = None,
                      mean_visible: bool = True) -> list[Tensor]:
        """Draw from the DBN: Gibbs in the top RBM, then one ancestral pass down.

        ``num_samples`` chains (one tensor operation per half-step) run ``num_steps`` block-Gibbs
        steps in the top RBM over ``(h^(L-1), h^(L))``; then ``h^(l) ~ p(h^(l) | h^(l+1))`` for
        ``l = L-2 .. 1`` and the visible layer from ``p(v | h^(1))`` (NNDL 12.3.1). Without
        ``init`` the chains start as :meth:`~generative.energy.rbm.RBM.sample` does (the top
        RBM's visible units drawn with its hidden units off), so the draw is exactly ancestral
        sampling in :meth:`to_sigmoid_belief_network` ``(unroll_steps=num_steps)``; as
        ``num_steps`` grows it approaches the DBN's distribution.

        Parameters
        ----------
        num_samples : int
            Number of chains (rows).
        num_steps : int
            Top-level block-Gibbs steps (>= 1).
        init : Tensor (num_samples, n_0), optional
            Data to start from: pushed up with binary samples (``up_pass(stochastic=True)``)
            to the top RBM's visible layer, where the chains start.
        generator : torch.Generator, optional
        mean_visible : bool
            Return ``E[v | h^(1)]`` (probabilities or Gaussian means) instead of a draw of
            ``v``; the hidden layers are drawn either way.

        Returns
        -------
        list of Tensor
            ``[v, h^(1), ..., h^(L)]``, ``v`` of shape ``(num_samples, n_0)``, the hidden layers
            binary ``(num_samples, n_l)``.
        """
        n = check_int(num_samples, "DBN.sample num_samples", minimum=1)
        num_steps = check_int(num_steps, "DBN.sample num_steps", minimum=1)
        if not isinstance(mean_visible, bool):
            raise ValidationError("DBN.sample mean_visible", "must be True or False",
                                  found=repr(mean_visible))
        w = self.bottom_rbm.weight
        check_optional_generator(generator, "DBN.sample generator", w.device)
        top_init: Tensor | None = None
        if init is not None:
            init = self.check_data(init, "sample init")
            if init.shape[0] != n:
                raise ShapeError("DBN.sample init", f"must have num_samples = {n} rows",
                                 found=tuple(init.shape))
            top_init = init if self.num_layers == 1 else \
                self._up(init, self.num_layers - 1, True, generator)[-1]
        top = self.top_rbm
        v_top, h_top = top.sample(n, num_steps, init=top_init, generator=generator)
        if self.num_layers == 1:
            v = top.visible_mean_given(None, top.visible_input(h_top)) if mean_visible else v_top
            return [v, h_top]
        hidden = [v_top, h_top]                                 # h^(L-1), h^(L)
        for i in reversed(range(1, self.num_layers - 1)):
            rbm = self._rbm(i)
            hidden.insert(0, rbm.sample_visible_given(None, rbm.visible_input(hidden[0]),
                                                      generator))
        bottom = self.bottom_rbm
        u = bottom.visible_input(hidden[0])
        v = bottom.visible_mean_given(None, u) if mean_visible else \
            bottom.sample_visible_given(None, u, generator)
        return [v, *hidden]

    def sample(self, num_samples: int, num_steps: int = 1000, *, init: Tensor | None = None,
               generator: torch.Generator | None = None, mean_visible: bool = True) -> Tensor:
        """Visible draws (or their means) of :meth:`sample_layers`, ``(num_samples, n_0)``."""
        return self.sample_layers(num_samples, num_steps, init=init, generator=generator,
                                  mean_visible=mean_visible)[0]

    # ------------------------------------------------------------------ likelihood
    def exact_log_prob(self, v: Tensor, *, max_states: int = MAX_ENUMERATED_STATES) -> Tensor:
        """``log p(v)`` under the DBN's generative model, exactly, ``(B,)`` (tiny nets).

        The hidden layers are summed out top down, one layer at a time:
        ``m(h^(L-1)) = log p_top(h^(L-1))`` (the top RBM's free energy and exact ``log Z``), then
        ``m(h^(l)) = logsumexp_{h^(l+1)} [log p(h^(l) | h^(l+1)) + m(h^(l+1))]`` and finally
        ``log p(v) = logsumexp_{h^(1)} [log p(v | h^(1)) + m(h^(1))]`` — the sum over every
        hidden configuration, organised as a chain. For a Gaussian bottom layer it is a log
        density. Differentiable; use float64 for exact comparisons.

        Parameters
        ----------
        v : Tensor (B, n_0)
        max_states : int
            Refuse when a table between two adjacent hidden layers (``2^(n_l + n_{l+1})``
            entries), a hidden layer's ``2^(n_l)`` states, or the top RBM's enumeration exceeds
            this (default ``2^22``).

        Raises
        ------
        MemoryBudgetExceeded
            A layer too wide to enumerate.
        """
        v = self.check_data(v, "exact_log_prob v")
        max_states = check_int(max_states, "DBN.exact_log_prob max_states", minimum=1)
        top = self.top_rbm
        if self.num_layers == 1:
            return top.log_prob(v, top.exact_log_partition(max_states=max_states))
        sizes = self.layer_sizes
        for i in range(1, self.num_layers):
            bits = sizes[i] + (sizes[i + 1] if i + 1 < self.num_layers else 0)
            if bits > 62 or (1 << bits) > max_states:
                raise MemoryBudgetExceeded(
                    "DBN.exact_log_prob", f"hidden layer {i} needs a table of 2^{bits} entries, "
                    f"more than max_states = {max_states}",
                    fix="use a smaller DBN, or estimate the likelihood another way")
        w = top.weight
        # states[i]: every configuration of hidden layer i (the visible layer is not enumerated)
        states = [w.new_zeros(0, 0)] + [binary_states(sizes[i], dtype=w.dtype, device=w.device)
                                        for i in range(1, self.num_layers)]
        message = -top.free_energy(states[-1]) - top.exact_log_partition(max_states=max_states)
        for i in reversed(range(1, self.num_layers - 1)):
            rbm = self._rbm(i)
            z = rbm.visible_bias + states[i + 1] @ rbm.weight.T          # (S_{i+1}, n_i)
            # log p(h^(i) = s | h^(i+1) = t), (S_i, S_{i+1})
            table = states[i] @ z.T - F.softplus(z).sum(-1)
            message = torch.logsumexp(table + message, dim=1)
        bottom = self.bottom_rbm
        u = bottom.visible_input(states[1])                              # (S_1, n_0)
        # log p(v | h) = log f(v, h) - log sum_v' f(v', h): the h-only terms cancel
        log_cond = bottom.visible_term(v)[:, None] + bottom.flatten_visible(v) @ u.T \
            - bottom.visible_log_normaliser(None, u)[None, :]            # (B, S_1)
        return torch.logsumexp(log_cond + message, dim=1)

    # ------------------------------------------------------------------ conversions
    def to_sigmoid_belief_network(self, *, unroll_steps: int | None = None
                                  ) -> SigmoidBeliefNetwork:
        """The directed network the DBN unrolls to (a copy; the DBN is not touched).

        Parameters
        ----------
        unroll_steps : int, optional
            None: the directed layers ``p(h^(l) | h^(l+1))`` of the DBN (weights ``W^(l)``,
            visible biases ``a^(l)``) with the top RBM kept as the prior of ``h^(L-1)`` — the
            DBN's own model, layers ``[n_0, ..., n_{L-1}]``. Its marginal does not factorise, so
            it cannot become sigmoid CPDs. An int ``s >= 1``: the top RBM unrolled into ``2 s``
            tied sigmoid layers (``W`` and ``W^T`` alternately, Hinton et al. 2006's
            equivalence of an RBM with an infinitely deep tied-weight SBN) under a factorised
            prior ``sigmoid(a)`` on the top; ancestral sampling in it is exactly
            :meth:`sample` ``(num_steps=s)`` without ``init``, a pure SBN of layers
            ``[n_0, ..., n_{L-1}, n_L, n_{L-1}, ..., n_L, n_{L-1}]``.

        Raises
        ------
        ValidationError
            A Gaussian bottom layer (sigmoid belief networks have binary units).
        """
        if not isinstance(self.bottom_rbm, BernoulliRBM):
            raise ValidationError("DBN.to_sigmoid_belief_network", "needs a Bernoulli bottom "
                                  "layer (a sigmoid belief network's units are binary)",
                                  found=type(self.bottom_rbm).__name__,
                                  fix="use DBN.exact_log_prob / DBN.sample for Gaussian data")
        if unroll_steps is not None:
            unroll_steps = check_int(unroll_steps, "DBN.to_sigmoid_belief_network "
                                     "unroll_steps", minimum=1)
        with torch.no_grad():
            weights = [self._rbm(i).weight.detach() for i in range(self.num_layers - 1)]
            biases = [self._rbm(i).visible_bias.detach() for i in range(self.num_layers - 1)]
            top = self.top_rbm
            if unroll_steps is None:
                assert isinstance(top, BernoulliRBM)
                return SigmoidBeliefNetwork(weights, biases, top_rbm=top)
            w, a, b = top.weight.detach(), top.visible_bias.detach(), top.hidden_bias.detach()
            for _ in range(unroll_steps):
                weights += [w, w.T]                 # v given h (D, M), then h given v (M, D)
                biases += [a, b]
            return SigmoidBeliefNetwork(weights, biases, top_logits=a)

    def to_classifier(self, num_classes: int, *, output: str = "softmax",
                      generator: torch.Generator | None = None) -> nn.Sequential:
        """A feed-forward network initialised from the recognition weights, for fine-tuning.

        ``Linear(n_0, n_1), Sigmoid, ..., Linear(n_{L-1}, n_L), Sigmoid`` with layer ``l``'s
        weight ``W^(l)T`` (``(W^(l) / sigma)^T`` for a Gaussian bottom) and bias ``b^(l)``, so
        its first ``2 l`` modules compute :meth:`transform` ``(x, l)``; then a new output
        ``Linear(n_L, num_classes)`` (NNDL 12.3.2.2 / DL7 7.2: softmax for classification,
        linear for regression). All tensors are copies: training the classifier leaves the DBN
        unchanged.

        Parameters
        ----------
        num_classes : int
            Classes (or regression outputs for ``output="linear"``).
        output : {"softmax", "linear"}
            ``"softmax"`` ends with ``LogSoftmax`` (outputs are log-probabilities, log space);
            ``"linear"`` leaves raw outputs (logits or regression values).
        generator : torch.Generator, optional
            For the output layer's initialisation (see :func:`mlp_classifier`; default seeded
            with 0).

        Returns
        -------
        nn.Sequential

        Examples
        --------
        >>> import torch
        >>> dbn = DBN.from_layer_sizes([6, 4, 3], weight_std=0.5)
        >>> net = dbn.to_classifier(2)
        >>> x = torch.ones(1, 6)
        >>> bool(torch.allclose(net[:4](x), dbn.transform(x))), tuple(net(x).shape)
        (True, (1, 2))
        """
        net = mlp_classifier(self.layer_sizes, num_classes, output=output, generator=generator,
                             dtype=self.bottom_rbm.weight.dtype,
                             device=self.bottom_rbm.weight.device)
        with torch.no_grad():
            for i in range(self.num_layers):
                rbm = self._rbm(i)
                w = rbm.weight.detach()
                if isinstance(rbm, GaussianBernoulliRBM):
                    w = w / rbm.sigma.detach()[:, None]
                linear = net[2 * i]
                assert isinstance(linear, nn.Linear)
                linear.weight.copy_(w.T)
                linear.bias.copy_(rbm.hidden_bias.detach())
        return net


# ---------------------------------------------------------------------- pre-training
class DBNPretrainResult(NamedTuple):
    """What :func:`pretrain_dbn` returns.

    Attributes
    ----------
    dbn : DBN
        The trained DBN (a new object; a DBN passed in is copied first).
    histories : list
        One result of ``train_rbm`` per layer, bottom to top.
    reconstruction_error_before, reconstruction_error_after : list of float
        Per layer, the mean squared mean-field reconstruction error
        ``||x - E[v | h = p(h | x)]||^2`` on that layer's training data, before and after its
        training (DL7 Algorithm 7.1's monitor; not a likelihood).
    """

    dbn: DBN
    histories: list[Any]
    reconstruction_error_before: list[float]
    reconstruction_error_after: list[float]


def _reconstruction_error(rbm: RBM, x: Tensor) -> float:
    # mean-field, and no value check: upper layers may be trained on probabilities
    with torch.no_grad():
        probs = torch.sigmoid(rbm.hidden_input(x) + rbm.hidden_bias)
        recon = rbm.visible_mean_given(None, rbm.visible_input(probs))
        return float((x - recon).pow(2).sum(-1).mean())


def _per_layer(value: Any, name: str, num_layers: int) -> list[Any]:
    if isinstance(value, list | tuple):
        if len(value) != num_layers:
            raise ShapeError(f"pretrain_dbn {name}", f"a per-layer list needs {num_layers} "
                             "values (one per RBM)", found=len(value),
                             fix=f"pass one value, or a list of {num_layers}")
        return list(value)
    return [value] * num_layers


def pretrain_dbn(model: Sequence[int] | DBN, data: Tensor, *,
                 visible: str = "bernoulli", sigma: float = 1.0, weight_std: float = 0.01,
                 method: str | Sequence[str] = "cd", k: int | Sequence[int] = 1,
                 epochs: int | Sequence[int] = 10, batch_size: int | Sequence[int] = 100,
                 lr: float | Sequence[float] = 0.05,
                 momentum: float | Sequence[float] = 0.5,
                 weight_decay: float | Sequence[float] = 1e-4,
                 sparsity_target: float | Sequence[float | None] | None = None,
                 sparsity_cost: float | Sequence[float] = 0.0,
                 statistics: str | Sequence[str] = "probabilities",
                 num_replicas: int | Sequence[int | None] | None = None,
                 propagate: str = "probabilities",
                 generator: torch.Generator | None = None,
                 callback: Callable[..., Any] | None = None) -> DBNPretrainResult:
    """Greedy layer-wise pre-training (NNDL Algorithm 12.2, DL7 Algorithm 7.1, Hinton et al. 2006).

    RBM 0 is trained on ``data``; the data are pushed up through it (mean-field probabilities or
    one binary sample per row, ``propagate``) and RBM 1 is trained on the result, and so on to
    the top. Each RBM is trained by :func:`generative.energy.contrastive.train_rbm` with this
    layer's options.

    Parameters
    ----------
    model : sequence of int or DBN
        Layer sizes ``[n_0, ..., n_L]`` (a fresh DBN is built, dtype and device of ``data``) or a
        DBN to continue from (it is deep-copied; the copy is trained and returned).
    data : Tensor (N, n_0)
        Training data: binary for a Bernoulli bottom, standardised reals for a Gaussian one.
        Never modified.
    visible : {"bernoulli", "gaussian"}
        Bottom layer of a DBN built from sizes (ignored for a DBN given).
    sigma : float
        Fixed visible standard deviation of a Gaussian bottom built from sizes.
    weight_std : float
        Initial weight scale of a DBN built from sizes.
    method, k, epochs, batch_size, lr, momentum, weight_decay, sparsity_target, sparsity_cost, \
statistics, num_replicas
        Options of ``train_rbm``: one value for every layer, or a list with one per RBM.
        ``num_replicas = None`` leaves ``train_rbm``'s default. Layers above the bottom are
        trained with ``data_values="probabilities"`` when ``propagate="probabilities"``.
    propagate : {"probabilities", "samples"}
        What the next layer is trained on: ``p(h = 1 | x)`` (the usual choice, less noise) or
        one draw ``h ~ p(h | x)`` per row (Algorithm 12.2's ``ĥ``), made once.
    generator : torch.Generator, optional
        Initial weights (sizes only), training and ``propagate="samples"`` draws.
    callback : callable, optional
        Passed to ``train_rbm`` for every layer: ``callback(epoch, rbm, reconstruction_error)``
        after each epoch (the ``rbm`` argument tells the layers apart); True stops that layer.

    Returns
    -------
    DBNPretrainResult

    Raises
    ------
    ValidationError, ShapeError, DtypeMismatchError, NonFiniteError
        Bad sizes or options, data of the wrong shape, dtype or device, NaN, non-binary data
        for a Bernoulli bottom layer.

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> x = (torch.rand(40, 6, generator=make_generator(0)) < 0.3).float()
    >>> res = pretrain_dbn([6, 4, 3], x, epochs=[3, 2], batch_size=10,
    ...                    generator=make_generator(1))
    >>> res.dbn.layer_sizes, [h.epochs for h in res.histories]
    ([6, 4, 3], [3, 2])
    """
    from generative.energy.contrastive import train_rbm

    propagate = check_choice(propagate, "pretrain_dbn propagate", ("probabilities", "samples"))
    if isinstance(model, DBN):
        dbn = copy.deepcopy(model)
    elif isinstance(model, nn.Module):
        raise ValidationError("pretrain_dbn model", "must be layer sizes or a DBN",
                              found=type(model).__name__,
                              fix="wrap RBMs with DBN([...]) first")
    else:
        sizes = check_sizes(model, "pretrain_dbn layer_sizes", allow_empty=False,
                            example="[64, 32, 16]")
        x0 = check_tensor(data, "pretrain_dbn data", floating=True)
        check_optional_generator(generator, "pretrain_dbn generator", x0.device)
        dtype = x0.dtype
        dbn = DBN.from_layer_sizes(sizes, visible=visible, sigma=sigma, weight_std=weight_std,
                                   generator=generator if generator is not None
                                   else make_generator(0, x0.device),
                                   dtype=dtype, device=x0.device)
    x = dbn.check_data(data, "pretrain_dbn data")
    check_optional_generator(generator, "pretrain_dbn generator", x.device)
    L = dbn.num_layers
    values = {"method": method, "k": k, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "momentum": momentum, "weight_decay": weight_decay,
              "sparsity_target": sparsity_target, "sparsity_cost": sparsity_cost,
              "statistics": statistics, "num_replicas": num_replicas}
    per_layer = {name: _per_layer(values[name], name, L) for name in TRAIN_OPTIONS}
    histories: list[Any] = []
    before: list[float] = []
    after: list[float] = []
    for i in range(L):
        rbm = dbn._rbm(i)
        options: dict[str, Any] = {name: per_layer[name][i] for name in TRAIN_OPTIONS}
        if options["num_replicas"] is None:
            del options["num_replicas"]
        if i > 0 and propagate == "probabilities":
            # the layer below hands up p(h = 1 | x) in [0, 1], a mean-field stand-in for data
            options["data_values"] = "probabilities"
        before.append(_reconstruction_error(rbm, x))
        histories.append(train_rbm(rbm, x, generator=generator, callback=callback, **options))
        after.append(_reconstruction_error(rbm, x))
        if i + 1 < L:
            with torch.no_grad():
                probs = torch.sigmoid(rbm.hidden_input(x) + rbm.hidden_bias)
                x = probs if propagate == "probabilities" else \
                    torch.bernoulli(probs, generator=generator)
    return DBNPretrainResult(dbn, histories, before, after)


# ---------------------------------------------------------------------- classifiers
def _uniform_(t: Tensor, bound: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        t.copy_((torch.rand(t.shape, generator=generator, dtype=t.dtype, device=t.device)
                 * 2 - 1) * bound)


def mlp_classifier(layer_sizes: Sequence[int], num_classes: int, *, output: str = "softmax",
                   generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> nn.Sequential:
    """The architecture of :meth:`DBN.to_classifier`, randomly initialised (the no-pre-training
    baseline).

    ``Linear(n_0, n_1), Sigmoid, ..., Linear(n_{L-1}, n_L), Sigmoid, Linear(n_L, num_classes)``
    and, for ``output="softmax"``, ``LogSoftmax(dim=-1)``. Every weight and bias is drawn
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default scale) from ``generator``.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_0, ..., n_L]``, at least one size (``[n_0]`` gives logistic regression).
    num_classes : int
    output : {"softmax", "linear"}
    generator : torch.Generator, optional
        Default a generator seeded with 0 (the global RNG is never used).
    dtype, device

    Examples
    --------
    >>> net = mlp_classifier([64, 32], 10)
    >>> [type(m).__name__ for m in net]
    ['Linear', 'Sigmoid', 'Linear', 'LogSoftmax']
    """
    sizes = check_sizes(layer_sizes, "mlp_classifier layer_sizes", allow_empty=False,
                        example="[64, 32, 16]")
    num_classes = check_int(num_classes, "mlp_classifier num_classes", minimum=1)
    output = check_choice(output, "mlp_classifier output", ("softmax", "linear"))
    if output == "softmax" and num_classes < 2:
        raise ValidationError("mlp_classifier num_classes", "a softmax output needs at least "
                              "2 classes", found=num_classes, fix="use output='linear'")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DtypeMismatchError("mlp_classifier dtype", "must be a floating torch.dtype",
                                 found=dtype)
    dev = torch.device(device)
    check_optional_generator(generator, "mlp_classifier generator", dev)
    g = generator if generator is not None else make_generator(0, dev)
    modules: list[nn.Module] = []
    widths = [*sizes, num_classes]
    for i in range(len(widths) - 1):
        linear = nn.Linear(widths[i], widths[i + 1], dtype=dtype, device=dev)
        bound = 1.0 / math.sqrt(widths[i])
        _uniform_(linear.weight, bound, g)
        _uniform_(linear.bias, bound, g)
        modules.append(linear)
        if i + 1 < len(widths) - 1:
            modules.append(nn.Sigmoid())
    if output == "softmax":
        modules.append(nn.LogSoftmax(dim=-1))
    return nn.Sequential(*modules)


class FinetuneResult(NamedTuple):
    """What :func:`finetune` returns (one entry per epoch).

    Attributes
    ----------
    loss : list of float
        Mean training loss over the epoch's minibatches (cross-entropy or squared error).
    val_loss : list of float
        Loss on the validation data after each epoch (empty without them).
    val_accuracy : list of float
        Validation accuracy after each epoch (classification with validation data only).
    """

    loss: list[float]
    val_loss: list[float]
    val_accuracy: list[float]


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def _check_xy(net: nn.Module, x: Any, y: Any, subject: str) -> tuple[Tensor, Tensor, bool]:
    """Check data for ``net``; returns ``(x, y, classification)``."""
    params = list(net.parameters())
    if not params:
        raise ValidationError(f"{subject} classifier", "has no parameters",
                              found=type(net).__name__)
    p = params[0]
    x = check_tensor(x, f"{subject} x", floating=True, ndim=2)
    if x.shape[0] == 0:
        raise ShapeError(f"{subject} x", "must hold at least one row", found=tuple(x.shape))
    linears = _linears(net)
    if linears and x.shape[1] != linears[0].in_features:
        raise ShapeError(f"{subject} x", f"must have shape (N, {linears[0].in_features}) (the "
                         "classifier's inputs)", found=tuple(x.shape),
                         fix="flatten images with x.flatten(1)")
    if x.dtype != p.dtype:
        raise DtypeMismatchError(f"{subject} x", f"must have the classifier's dtype {p.dtype}",
                                 found=x.dtype, fix=f"convert with .to({p.dtype})")
    if x.device != p.device:
        raise DeviceMismatchError(f"{subject} x", f"must be on the classifier's device "
                                  f"{p.device}", found=x.device)
    check_finite(x, f"{subject} x")
    y = check_tensor(y, f"{subject} y", ndim=(1, 2))
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"{subject} y", f"must have one row per row of x ({x.shape[0]})",
                         found=tuple(y.shape))
    if y.device != p.device:
        raise DeviceMismatchError(f"{subject} y", f"must be on {p.device}", found=y.device)
    num_out = linears[-1].out_features if linears else None
    if y.dtype == torch.bool or y.is_complex():
        raise DtypeMismatchError(f"{subject} y", "must be integer class labels (N,) or "
                                 "floating regression targets (N, K)", found=y.dtype)
    if not y.is_floating_point():
        if y.dim() != 1:
            raise ShapeError(f"{subject} y", "integer class labels must have shape (N,)",
                             found=tuple(y.shape))
        if num_out is not None and bool(((y < 0) | (y >= num_out)).any()):
            raise ValidationError(f"{subject} y", f"class labels must lie in [0, {num_out - 1}]",
                                  found=(int(y.min()), int(y.max())))
        return x, y, True
    if any(isinstance(m, nn.LogSoftmax | nn.Softmax) for m in net.modules()):
        raise ValidationError(f"{subject} y", "floating regression targets need a linear "
                              "output layer, but the classifier ends in a softmax",
                              found=y.dtype, fix="build it with output='linear', or pass "
                              "integer class labels")
    if y.dim() != 2 or (num_out is not None and y.shape[1] != num_out):
        raise ShapeError(f"{subject} y", f"regression targets must have shape (N, {num_out})",
                         found=tuple(y.shape))
    if y.dtype != p.dtype:
        raise DtypeMismatchError(f"{subject} y", f"must have dtype {p.dtype}", found=y.dtype)
    check_finite(y, f"{subject} y")
    return x, y, False


def _loss(out: Tensor, y: Tensor, classification: bool) -> Tensor:
    # cross_entropy applies log_softmax, which leaves log-probabilities unchanged, so it is
    # right for both a LogSoftmax output and raw logits
    return F.cross_entropy(out, y) if classification else F.mse_loss(out, y)


def finetune(classifier: nn.Module, x: Tensor, y: Tensor, *, epochs: int = 10,
             lr: float = 1e-3, batch_size: int = 64, optimizer: str = "adam",
             momentum: float = 0.9, weight_decay: float = 0.0,
             x_val: Tensor | None = None, y_val: Tensor | None = None,
             generator: torch.Generator | None = None) -> FinetuneResult:
    """Supervised training of ``classifier`` in place (its purpose), by minibatch backprop.

    Integer labels ``y`` (N,) train with cross-entropy; floating targets (N, K) with squared
    error (regression, ``output="linear"``).

    Parameters
    ----------
    classifier : nn.Module
        E.g. from :meth:`DBN.to_classifier` or :func:`mlp_classifier`.
    x : Tensor (N, n_0)
    y : Tensor (N,) integer or (N, K) floating
    epochs : int
        Passes over the data (>= 1).
    lr : float
        Learning rate (> 0).
    batch_size : int
        Rows per step (the last batch of an epoch may be smaller).
    optimizer : {"adam", "sgd"}
    momentum : float
        SGD momentum in [0, 1).
    weight_decay : float
        L2 penalty (>= 0).
    x_val, y_val : Tensor, optional
        Validation data, evaluated after every epoch.
    generator : torch.Generator, optional
        Shuffling order (CPU generator).

    Returns
    -------
    FinetuneResult

    Examples
    --------
    >>> import torch
    >>> from probforge.ops import make_generator
    >>> net = mlp_classifier([2, 8], 2, generator=make_generator(0))
    >>> x = torch.randn(64, 2, generator=make_generator(1))
    >>> y = (x[:, 0] > 0).long()
    >>> res = finetune(net, x, y, epochs=10, lr=0.05, generator=make_generator(2))
    >>> res.loss[-1] < res.loss[0]
    True
    """
    if not isinstance(classifier, nn.Module):
        raise ValidationError("finetune classifier", "must be a torch.nn.Module",
                              found=type(classifier).__name__)
    x, y, classification = _check_xy(classifier, x, y, "finetune")
    epochs = check_int(epochs, "finetune epochs", minimum=1)
    lr = check_real(lr, "finetune lr", minimum=0.0, strict_minimum=True)
    batch_size = check_int(batch_size, "finetune batch_size", minimum=1)
    optimizer = check_choice(optimizer, "finetune optimizer", ("adam", "sgd"))
    momentum = check_real(momentum, "finetune momentum", minimum=0.0, maximum=1.0,
                          strict_maximum=True)
    weight_decay = check_real(weight_decay, "finetune weight_decay", minimum=0.0)
    if (x_val is None) != (y_val is None):
        raise ValidationError("finetune validation data", "give both x_val and y_val or "
                              "neither", found="only x_val" if x_val is not None else "only y_val")
    val: tuple[Tensor, Tensor] | None = None
    if x_val is not None:
        xv, yv, cls_v = _check_xy(classifier, x_val, y_val, "finetune validation")
        if cls_v != classification:
            raise ValidationError("finetune y_val", "must be the same kind of target as y "
                                  "(class labels or regression targets)", found=yv.dtype)
        val = (xv, yv)
    check_optional_generator(generator, "finetune generator", torch.device("cpu"))
    params = [p for p in classifier.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = x.shape[0]
    epoch_losses: list[Tensor] = []
    val_losses: list[Tensor] = []
    val_accs: list[Tensor] = []
    was_training = classifier.training
    for _ in range(epochs):
        classifier.train()
        order = torch.randperm(n, generator=generator).to(x.device)
        total = x.new_zeros(())
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = _loss(classifier(x[idx]), y[idx], classification)
            torch.autograd.backward(loss)
            opt.step()
            total = total + loss.detach() * idx.shape[0]
        epoch_losses.append(total / n)
        if val is not None:
            classifier.eval()
            with torch.no_grad():
                out = classifier(val[0])
                val_losses.append(_loss(out, val[1], classification))
                if classification:
                    val_accs.append((out.argmax(-1) == val[1]).to(out.dtype).mean())
    classifier.train(was_training)

    def floats(ts: list[Tensor]) -> list[float]:
        return torch.stack(ts).tolist() if ts else []    # one host synchronisation

    return FinetuneResult(floats(epoch_losses), floats(val_losses), floats(val_accs))


def accuracy(classifier: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of rows whose arg-max output equals the integer label ``y``.

    Examples
    --------
    >>> import torch
    >>> net = mlp_classifier([3], 2)
    >>> 0.0 <= accuracy(net, torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])) <= 1.0
    True
    """
    if not isinstance(classifier, nn.Module):
        raise ValidationError("accuracy classifier", "must be a torch.nn.Module",
                              found=type(classifier).__name__)
    x, y, classification = _check_xy(classifier, x, y, "accuracy")
    if not classification:
        raise ValidationError("accuracy y", "must be integer class labels", found=y.dtype)
    was_training = classifier.training
    classifier.eval()
    with torch.no_grad():
        acc = float((classifier(x).argmax(-1) == y).double().mean())
    classifier.train(was_training)
    return acc


def train_classifier_from_scratch(layer_sizes: Sequence[int], num_classes: int, x: Tensor,
                                  y: Tensor, *, output: str = "softmax", epochs: int = 10,
                                  lr: float = 1e-3, batch_size: int = 64,
                                  optimizer: str = "adam", momentum: float = 0.9,
                                  weight_decay: float = 0.0, x_val: Tensor | None = None,
                                  y_val: Tensor | None = None,
                                  generator: torch.Generator | None = None
                                  ) -> tuple[nn.Sequential, FinetuneResult]:
    """The no-pre-training baseline: :func:`mlp_classifier` (random init) then :func:`finetune`.

    Same architecture as :meth:`DBN.to_classifier` for the same ``layer_sizes``; dtype and
    device of ``x``. ``generator`` draws the initial weights and then the shuffling order.

    Returns
    -------
    (nn.Sequential, FinetuneResult)
    """
    x = check_tensor(x, "train_classifier_from_scratch x", floating=True, ndim=2)
    check_optional_generator(generator, "train_classifier_from_scratch generator",
                             torch.device("cpu"))
    init_gen = generator if generator is not None else make_generator(0)
    if x.device.type != "cpu":
        init_gen = make_generator(int(torch.randint(0, 2**62, (1,), generator=init_gen)),
                                  x.device)
    net = mlp_classifier(layer_sizes, num_classes, output=output, generator=init_gen,
                         dtype=x.dtype, device=x.device)
    result = finetune(net, x, y, epochs=epochs, lr=lr, batch_size=batch_size,
                      optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                      x_val=x_val, y_val=y_val, generator=generator)
    return net, result
