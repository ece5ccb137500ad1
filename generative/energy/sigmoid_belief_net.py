"""Layered sigmoid belief networks (NNDL 11.1.2.1, 11.10 and 12.63), the directed part of a DBN.

A sigmoid belief network (SBN) is a Bayesian network of binary units whose conditional
distributions are logistic regressions on the parents (11.10): ``M`` parents cost ``M + 1``
parameters instead of a ``2^M`` table. Here the units are arranged in layers
``x^(0)`` (the bottom, observed layer) ... ``x^(K)`` (the top), every unit of layer ``l`` has all
units of layer ``l + 1`` as parents, and

    p(x^(l)_i = 1 | x^(l+1)) = sigmoid(c^(l)_i + (W^(l) x^(l+1))_i),   l = 0 .. K-1

with ``W^(l)`` of shape ``(n_l, n_{l+1})`` (rows are children, columns parents: the orientation
of :mod:`generative.energy.rbm`'s ``(D, M)`` weights, so a DBN's generative layer ``l`` uses the
RBM's weight matrix unchanged; see the seed's erratum 6). Sampling is ancestral, top layer first.

The top layer's prior is one of two things:

* a factorised Bernoulli prior ``p(x^(K)_i = 1) = sigmoid(top_logits_i)``: the plain SBN of
  NNDL 11.10, a Bayesian network all the way up;
* an RBM (``top_rbm``) whose visible units are ``x^(K)``; its hidden units form one more layer
  that is summed out analytically, ``p(x^(K)) = exp(-F(x^(K))) / Z``. This is the prior of a deep
  belief network (NNDL 12.59-12.62): its top two layers are undirected. That marginal does not
  factorise over the units of ``x^(K)`` (the RBM couples them through its hidden units), so it
  cannot be written as a product of per-unit sigmoid CPDs. The model keeps the RBM as the prior;
  :meth:`SigmoidBeliefNetwork.to_bayesian_network` writes the marginal of a small top layer as a
  chain-rule factorisation (a fully connected DAG among the top units, exact tables), and
  :meth:`generative.energy.dbn.DBN.to_sigmoid_belief_network` can instead unroll the RBM into
  tied sigmoid layers (Hinton et al. 2006: an RBM is an infinitely deep SBN with tied weights).

Posteriors ``p(x^(1..K) | x^(0))`` do not factorise (explaining away, NNDL 12.63), which is why
only exact enumeration is offered here for likelihoods: :meth:`SigmoidBeliefNetwork.exact_log_prob`
sums over every hidden configuration and is meant for tiny networks (tests, teaching).

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.energy.sigmoid_belief_net import SigmoidBeliefNetwork
>>> g = make_generator(0)
>>> sbn = SigmoidBeliefNetwork([torch.randn(4, 3, generator=g, dtype=torch.float64)],
...                            [torch.zeros(4, dtype=torch.float64)],
...                            top_logits=torch.zeros(3, dtype=torch.float64))
>>> sbn.layer_sizes
[4, 3]
>>> layers = sbn.sample(5, generator=g)
>>> [tuple(x.shape) for x in layers]
[(5, 4), (5, 3)]
>>> from generative.energy.rbm import binary_states
>>> bool(torch.isclose(sbn.exact_log_prob(binary_states(4)).exp().sum(),
...                    torch.tensor(1.0, dtype=torch.float64)))
True
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.checks import check_optional_generator
from generative.energy.rbm import BernoulliRBM, binary_states
from probforge.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    MemoryBudgetExceeded,
    ShapeError,
    ValidationError,
)
from probforge.validate import check_finite, check_int, check_tensor

__all__ = ["MAX_ENUMERATED_STATES", "MAX_TABLE_SIZE", "SigmoidBeliefNetwork", "unit_name"]

#: Largest number of hidden configurations :meth:`SigmoidBeliefNetwork.exact_log_prob`
#: enumerates by default (2^20).
MAX_ENUMERATED_STATES = 2**20

#: Largest CPD table (entries) :meth:`SigmoidBeliefNetwork.to_bayesian_network` builds by
#: default (2^16).
MAX_TABLE_SIZE = 2**16


def unit_name(layer: int, index: int) -> str:
    """Name of unit ``index`` of layer ``layer`` in a converted Bayesian network.

    Layer 0 units are ``v0, v1, ...``; layer ``l >= 1`` units are ``h{l}_0, h{l}_1, ...``.

    Examples
    --------
    >>> unit_name(0, 2), unit_name(1, 0)
    ('v2', 'h1_0')
    """
    layer = check_int(layer, "unit_name layer", minimum=0)
    index = check_int(index, "unit_name index", minimum=0)
    return f"v{index}" if layer == 0 else f"h{layer}_{index}"


def _bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    # sum_i x_i z_i - softplus(z_i) = sum_i log p(x_i | z_i), exact for x in {0, 1}
    return (x * logits - F.softplus(logits)).sum(-1)


class SigmoidBeliefNetwork(nn.Module):
    """A layered sigmoid belief network with a factorised or an RBM prior on the top layer.

    Parameters
    ----------
    weights : sequence of Tensor
        ``K >= 0`` matrices, ``weights[l]`` of shape ``(n_l, n_{l+1})``: row ``i`` holds the
        weights of unit ``i`` of layer ``l`` on its parents in layer ``l + 1``.
    biases : sequence of Tensor
        ``K`` vectors, ``biases[l]`` of shape ``(n_l,)``.
    top_logits : Tensor (n_K,), optional
        Factorised Bernoulli prior of the top layer (logits).
    top_rbm : BernoulliRBM, optional
        RBM prior of the top layer (its visible units are the top layer, ``num_visible = n_K``).
        Exactly one of ``top_logits`` and ``top_rbm`` must be given. With ``K = 0`` the network
        is the prior alone.

    Notes
    -----
    All tensors are copied (the network never aliases its inputs; the RBM is deep-copied) and
    must share one floating dtype and one device. The parameters are ``weights``, ``biases``
    and ``top_logits`` (or the RBM's).

    Raises
    ------
    ValidationError, ShapeError, DtypeMismatchError, DeviceMismatchError, NonFiniteError
        Mismatched layer sizes, a missing or doubled prior, integer tensors, NaN / inf,
        inconsistent dtypes or devices.

    Examples
    --------
    >>> import torch
    >>> from generative.energy.rbm import BernoulliRBM
    >>> prior = BernoulliRBM(2, 3, dtype=torch.float64)
    >>> sbn = SigmoidBeliefNetwork([torch.ones(4, 2, dtype=torch.float64)],
    ...                            [torch.zeros(4, dtype=torch.float64)], top_rbm=prior)
    >>> sbn.layer_sizes, sbn.exact_log_prob(torch.zeros(1, 4, dtype=torch.float64)).shape
    ([4, 2], torch.Size([1]))
    """

    def __init__(self, weights: Sequence[Tensor], biases: Sequence[Tensor], *,
                 top_logits: Tensor | None = None, top_rbm: BernoulliRBM | None = None) -> None:
        super().__init__()
        name = "SigmoidBeliefNetwork"
        for arg, what in ((weights, "weights"), (biases, "biases")):
            if isinstance(arg, Tensor) or not isinstance(arg, Sequence):
                raise ValidationError(f"{name} {what}", "must be a sequence of tensors (one per "
                                      "directed layer)", found=type(arg).__name__,
                                      fix=f"pass [{what[:-1]}_0, {what[:-1]}_1, ...]")
        if len(weights) != len(biases):
            raise ShapeError(f"{name}", "needs one bias vector per weight matrix",
                             found=(len(weights), len(biases)))
        if (top_logits is None) == (top_rbm is None):
            raise ValidationError(f"{name} prior", "give exactly one of top_logits (a "
                                  "factorised top layer) and top_rbm (an RBM prior)",
                                  found="both" if top_logits is not None else "neither")
        ws = [check_tensor(w, f"{name} weights[{i}]", ndim=2, floating=True, finite=True)
              for i, w in enumerate(weights)]
        bs = [check_tensor(b, f"{name} biases[{i}]", ndim=1, floating=True, finite=True)
              for i, b in enumerate(biases)]
        for i in range(len(ws)):
            if bs[i].shape[0] != ws[i].shape[0]:
                raise ShapeError(f"{name} biases[{i}]", f"must have shape ({ws[i].shape[0]},) "
                                 f"(one per row of weights[{i}])", found=tuple(bs[i].shape))
            if i + 1 < len(ws) and ws[i].shape[1] != ws[i + 1].shape[0]:
                raise ShapeError(f"{name} weights[{i}]", f"has {ws[i].shape[1]} parent "
                                 f"columns but weights[{i + 1}] has {ws[i + 1].shape[0]} "
                                 "child rows: layer sizes must chain",
                                 found=(tuple(ws[i].shape), tuple(ws[i + 1].shape)))
        top_size = ws[-1].shape[1] if ws else None
        reference: Tensor
        if top_logits is not None:
            tl = check_tensor(top_logits, f"{name} top_logits", ndim=1, floating=True,
                              finite=True)
            if top_size is not None and tl.shape[0] != top_size:
                raise ShapeError(f"{name} top_logits", f"must have shape ({top_size},) (the top "
                                 "layer's size)", found=tuple(tl.shape))
            reference = tl
        else:
            if not isinstance(top_rbm, BernoulliRBM):
                raise ValidationError(f"{name} top_rbm", "must be a BernoulliRBM (binary top "
                                      "layer)", found=type(top_rbm).__name__)
            if top_size is not None and top_rbm.num_visible != top_size:
                raise ShapeError(f"{name} top_rbm", f"must have num_visible = {top_size} (the "
                                 "top layer's size)", found=top_rbm.num_visible)
            reference = top_rbm.weight
        for i, t in enumerate([*ws, *bs]):
            what = f"weights[{i}]" if i < len(ws) else f"biases[{i - len(ws)}]"
            if t.dtype != reference.dtype:
                raise DtypeMismatchError(f"{name} {what}", f"must have dtype {reference.dtype} "
                                         "like the prior", found=t.dtype)
            if t.device != reference.device:
                raise DeviceMismatchError(f"{name} {what}", f"must be on {reference.device} "
                                          "like the prior", found=t.device)
        self.weights = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in ws])
        self.biases = nn.ParameterList([nn.Parameter(b.detach().clone()) for b in bs])
        self.top_logits: nn.Parameter | None = (
            nn.Parameter(top_logits.detach().clone()) if top_logits is not None else None)
        self.top_rbm: BernoulliRBM | None = copy.deepcopy(top_rbm) if top_rbm is not None \
            else None

    # ------------------------------------------------------------------ description
    @property
    def num_layers(self) -> int:
        """``K``: the number of directed (sigmoid) layers."""
        return len(self.weights)

    @property
    def layer_sizes(self) -> list[int]:
        """``[n_0, ..., n_K]`` (the RBM prior's own hidden layer is not counted)."""
        if self.num_layers:
            return [int(w.shape[0]) for w in self.weights] + [int(self.weights[-1].shape[1])]
        if self.top_logits is not None:
            return [int(self.top_logits.shape[0])]
        assert self.top_rbm is not None
        return [self.top_rbm.num_visible]

    @property
    def _reference(self) -> Tensor:
        if self.top_logits is not None:
            return self.top_logits
        assert self.top_rbm is not None
        return self.top_rbm.weight

    def extra_repr(self) -> str:
        prior = "factorised" if self.top_logits is not None else "rbm"
        return f"layer_sizes={self.layer_sizes}, prior={prior}"

    # ------------------------------------------------------------------ checks
    def _check_layer(self, value: Any, layer: int, subject: str) -> Tensor:
        n = self.layer_sizes[layer]
        x = check_tensor(value, subject, floating=True, ndim=2)
        if x.shape[1] != n:
            raise ShapeError(subject, f"must have shape (B, {n}) (layer {layer} has {n} units)",
                             found=tuple(x.shape))
        ref = self._reference
        if x.dtype != ref.dtype:
            raise DtypeMismatchError(subject, f"must have the network's dtype {ref.dtype}",
                                     found=x.dtype, fix=f"convert with .to({ref.dtype})")
        if x.device != ref.device:
            raise DeviceMismatchError(subject, f"must be on the network's device {ref.device}",
                                      found=x.device, fix=f"move it with .to('{ref.device}')")
        check_finite(x, subject)
        bad = (x != 0) & (x != 1)
        if bool(bad.any()):
            raise ValidationError(subject, "units are binary: values must be 0 or 1",
                                  found=sorted(set(x[bad][:5].tolist())),
                                  fix="binarise the data (e.g. generative.data.load(..., "
                                  "binarize='fixed'))")
        return x

    # ------------------------------------------------------------------ model quantities
    def conditional_logits(self, layer: int, parent: Tensor) -> Tensor:
        """Logits of ``p(x^(layer) = 1 | x^(layer+1) = parent)``, ``(B, n_layer)``.

        Parameters
        ----------
        layer : int
            ``0 .. K-1``.
        parent : Tensor (B, n_{layer+1})
            Binary states of the layer above.
        """
        if not self.num_layers:
            raise ValidationError("SigmoidBeliefNetwork.conditional_logits", "the network has "
                                  "no directed layer (K = 0)", found=self.layer_sizes)
        layer = check_int(layer, "SigmoidBeliefNetwork.conditional_logits layer", minimum=0,
                          maximum=self.num_layers - 1)
        parent = self._check_layer(parent, layer + 1,
                                   "SigmoidBeliefNetwork.conditional_logits parent")
        logits: Tensor = self.biases[layer] + parent @ self.weights[layer].T
        return logits

    def top_log_partition(self) -> Tensor:
        """``log Z`` of the prior: 0 for a factorised prior, the RBM's exact ``log Z`` otherwise."""
        if self.top_rbm is None:
            return self._reference.new_zeros(())
        return self.top_rbm.exact_log_partition()

    def _prior_log_prob(self, top: Tensor, log_z: Tensor) -> Tensor:
        if self.top_logits is not None:
            return _bernoulli_log_prob(top, self.top_logits)
        assert self.top_rbm is not None
        return -self.top_rbm.free_energy(top) - log_z

    def log_joint(self, layers: Sequence[Tensor], *, top_log_partition: Tensor | None = None
                  ) -> Tensor:
        """``log p(x^(0), ..., x^(K))`` per row, ``(B,)``.

        Parameters
        ----------
        layers : sequence of Tensor
            ``K + 1`` binary tensors, ``layers[l]`` of shape ``(B, n_l)``.
        top_log_partition : Tensor (), optional
            ``log Z`` of an RBM prior; default :meth:`top_log_partition` (exact enumeration).
        """
        sizes = self.layer_sizes
        if isinstance(layers, Tensor) or not isinstance(layers, Sequence) or \
                len(layers) != len(sizes):
            raise ValidationError("SigmoidBeliefNetwork.log_joint layers", f"must be a "
                                  f"sequence of {len(sizes)} tensors (one per layer)",
                                  found=type(layers).__name__ if not isinstance(layers, Sequence)
                                  else len(layers))
        xs = [self._check_layer(x, i, f"SigmoidBeliefNetwork.log_joint layers[{i}]")
              for i, x in enumerate(layers)]
        if len({x.shape[0] for x in xs}) != 1:
            raise ShapeError("SigmoidBeliefNetwork.log_joint layers", "need the same number of "
                             "rows", found=[x.shape[0] for x in xs])
        log_z = self.top_log_partition() if top_log_partition is None else top_log_partition
        total = self._prior_log_prob(xs[-1], log_z)
        for i in range(self.num_layers):
            logits = self.biases[i] + xs[i + 1] @ self.weights[i].T
            total = total + _bernoulli_log_prob(xs[i], logits)
        return total

    @torch.no_grad()
    def sample(self, num_samples: int, *, num_steps: int = 1000,
               generator: torch.Generator | None = None) -> list[Tensor]:
        """Ancestral sampling: the top layer from its prior, then each layer given the one above.

        Parameters
        ----------
        num_samples : int
            Independent draws (rows).
        num_steps : int
            Block-Gibbs steps of an RBM prior (>= 1; ignored by a factorised prior, where the
            draw is exact). The RBM chains start from its visible units with the hidden units
            switched off (:meth:`generative.energy.rbm.RBM.sample`).
        generator : torch.Generator, optional

        Returns
        -------
        list of Tensor
            ``[x^(0), ..., x^(K)]``, ``x^(l)`` of shape ``(num_samples, n_l)``, binary.
        """
        n = check_int(num_samples, "SigmoidBeliefNetwork.sample num_samples", minimum=1)
        num_steps = check_int(num_steps, "SigmoidBeliefNetwork.sample num_steps", minimum=1)
        ref = self._reference
        check_optional_generator(generator, "SigmoidBeliefNetwork.sample generator", ref.device)
        if self.top_logits is not None:
            top = torch.bernoulli(torch.sigmoid(self.top_logits).expand(n, -1),
                                  generator=generator)
        else:
            assert self.top_rbm is not None
            top, _ = self.top_rbm.sample(n, num_steps, generator=generator)
        layers = [top]
        for i in reversed(range(self.num_layers)):
            logits = self.biases[i] + layers[-1] @ self.weights[i].T
            layers.append(torch.bernoulli(torch.sigmoid(logits), generator=generator))
        return layers[::-1]

    def exact_log_prob(self, x: Tensor, *, max_states: int = MAX_ENUMERATED_STATES,
                       chunk_states: int = 4096) -> Tensor:
        """``log p(x^(0))`` by summing the joint over every hidden configuration, ``(B,)``.

        All ``2^(n_1 + ... + n_K)`` configurations of the hidden layers are enumerated (the RBM
        prior's own hidden units are summed analytically through its free energy and exact
        ``log Z``), so this is for tiny networks only; use float64 for exact comparisons.

        Parameters
        ----------
        x : Tensor (B, n_0)
            Binary bottom-layer states.
        max_states : int
            Refuse when there are more hidden configurations than this (default ``2^20``).
        chunk_states : int
            Configurations per chunk (bounds memory).

        Raises
        ------
        MemoryBudgetExceeded
            Too many hidden configurations.
        """
        x = self._check_layer(x, 0, "SigmoidBeliefNetwork.exact_log_prob x")
        max_states = check_int(max_states, "SigmoidBeliefNetwork.exact_log_prob max_states",
                               minimum=1)
        chunk_states = check_int(chunk_states, "SigmoidBeliefNetwork.exact_log_prob "
                                 "chunk_states", minimum=1)
        sizes = self.layer_sizes
        log_z = self.top_log_partition()
        if self.num_layers == 0:
            return self._prior_log_prob(x, log_z)
        num_bits = sum(sizes[1:])
        if num_bits > 62 or (1 << num_bits) > max_states:
            raise MemoryBudgetExceeded(
                "SigmoidBeliefNetwork.exact_log_prob",
                f"needs 2^{num_bits} hidden configurations, more than max_states = {max_states}",
                fix="use a smaller network, or raise max_states")
        ref = self._reference
        total = 1 << num_bits
        offsets = [sum(sizes[1:i]) for i in range(1, len(sizes) + 1)]
        parts = []
        for start in range(0, total, chunk_states):
            config = binary_states(num_bits, start=start, stop=min(total, start + chunk_states),
                                   dtype=ref.dtype, device=ref.device)          # (C, num_bits)
            hs = [config[:, offsets[i - 1]:offsets[i]] for i in range(1, len(sizes))]
            # log p(h^(1..K)) without the bottom layer: prior times the upper CPDs, (C,)
            upper = self._prior_log_prob(hs[-1], log_z)
            for i in range(1, self.num_layers):
                upper = upper + _bernoulli_log_prob(
                    hs[i - 1], self.biases[i] + hs[i] @ self.weights[i].T)
            z = self.biases[0] + hs[0] @ self.weights[0].T                     # (C, n_0)
            bottom = x @ z.T - F.softplus(z).sum(-1)                           # (B, C)
            parts.append(torch.logsumexp(bottom + upper, dim=1))
        return torch.logsumexp(torch.stack(parts, 0), dim=0)

    # ------------------------------------------------------------------ conversion
    def to_bayesian_network(self, *, max_table_size: int = MAX_TABLE_SIZE) -> Any:
        """The network as a :class:`pgm.bayesnet.BayesianNetwork` for exact inference (tiny nets).

        Unit ``i`` of layer ``l`` becomes the binary variable :func:`unit_name` ``(l, i)`` with
        states ``"0"`` and ``"1"``. Directed layers become :func:`pgm.cpd.sigmoid_cpd` tables
        with the whole layer above as parents. A factorised prior gives one parentless sigmoid
        CPD per top unit. An RBM prior's marginal ``p(x^(K))`` does not factorise over the top
        units, so it is written exactly by the chain rule,
        ``p(x_0) p(x_1 | x_0) ... p(x_{n-1} | x_0 .. x_{n-2})`` (a fully connected DAG among the
        top units), from the enumerated marginal.

        Parameters
        ----------
        max_table_size : int
            Refuse when a CPD table would have more entries than this (default ``2^16``).

        Returns
        -------
        pgm.bayesnet.BayesianNetwork

        Raises
        ------
        MemoryBudgetExceeded
            A layer too wide for tables.
        """
        from pgm.bayesnet import BayesianNetwork
        from pgm.cpd import TabularCPD, sigmoid_cpd

        max_table_size = check_int(max_table_size, "SigmoidBeliefNetwork.to_bayesian_network "
                                   "max_table_size", minimum=2)
        sizes = self.layer_sizes
        widest = max([sizes[i + 1] for i in range(self.num_layers)] +
                     ([sizes[-1] - 1] if self.top_rbm is not None else [0]))
        if widest + 1 > 62 or (1 << (widest + 1)) > max_table_size:
            raise MemoryBudgetExceeded(
                "SigmoidBeliefNetwork.to_bayesian_network",
                f"a CPD would have 2^{widest + 1} entries, more than max_table_size = "
                f"{max_table_size}", fix="convert only tiny networks, or raise max_table_size")
        states = ("0", "1")
        cpds = []
        with torch.no_grad():
            for layer in range(self.num_layers):
                parents = [unit_name(layer + 1, j) for j in range(sizes[layer + 1])]
                for i in range(sizes[layer]):
                    cpds.append(sigmoid_cpd(unit_name(layer, i), parents,
                                            self.weights[layer][i].detach().clone(),
                                            self.biases[layer][i].detach().clone()))
            top = len(sizes) - 1
            names = [unit_name(top, j) for j in range(sizes[top])]
            if self.top_logits is not None:
                empty = self.top_logits.new_zeros(0)
                for j, nm in enumerate(names):
                    cpds.append(sigmoid_cpd(nm, [], empty, self.top_logits[j].detach().clone()))
            else:
                assert self.top_rbm is not None
                n = sizes[top]
                # joint table over the top units, axis j = unit j (binary_states: bit j = unit j)
                log_p = -self.top_rbm.free_energy(
                    binary_states(n, dtype=self._reference.dtype,
                                  device=self._reference.device)) - self.top_log_partition()
                joint = log_p.reshape((2,) * n).permute(*reversed(range(n)))
                for j in range(n):
                    # log p(x_0 .. x_j) by summing out x_{j+1} .. x_{n-1}, then condition on x_<j
                    marg = torch.logsumexp(joint, dim=tuple(range(j + 1, n))) if j + 1 < n \
                        else joint
                    cond = marg - torch.logsumexp(marg, dim=-1, keepdim=True)
                    cpds.append(TabularCPD(names[j], cond, names[:j],
                                           states={nm: states for nm in names[:j + 1]},
                                           log=True))
        return BayesianNetwork(cpds, name="sigmoid_belief_network")
