"""Reproducible, resumable minibatch order: :class:`BatchStream` and :func:`batches`.

The order of an epoch is a permutation drawn from a generator seeded by ``(seed, epoch)`` only,
so the whole state of a stream is three integers (seed, epoch, position within the epoch):
:meth:`BatchStream.state_dict` saves them in a checkpoint and
:meth:`BatchStream.load_state_dict` puts a fresh stream exactly where the old one stopped.
Permutations are drawn on the CPU, so the order is the same on every device.

Under data parallelism (``world_size > 1``) every rank draws the same epoch permutation and takes
the interleaved shard ``perm[rank::world_size]``, cut to equal length so that all ranks make the
same number of steps (as ``torch.utils.data.DistributedSampler`` does); ``batch_size`` is the
per-rank batch.

Examples
--------
>>> import torch
>>> from generative.data import Dataset, BatchStream
>>> ds = Dataset.from_tensors(torch.arange(10.0)[:, None])
>>> s = BatchStream(ds, 4, seed=0)
>>> first = s.next_batch()[0].flatten().tolist()
>>> state = s.state_dict()
>>> t = BatchStream(ds, 4, seed=123)
>>> t.load_state_dict(state)
>>> torch.equal(s.next_batch()[0], t.next_batch()[0])
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from generative.checks import check_bool, check_optional_generator
from generative.data.dataset import Dataset
from generative.task import Batch
from probforge.errors import CheckpointError, ValidationError
from probforge.ops.random import random_seed
from probforge.validate import check_int

__all__ = ["BatchStream", "batches", "derive_seed"]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed mixed from ``seed`` and integer ``parts`` (splitmix64; deterministic).

    Different ``parts`` give unrelated seeds: one run seed yields independent streams for data
    order, training, evaluation and sampling. ``seed`` and ``parts`` are ints (bools and floats
    are refused); they are taken modulo ``2**64``.
    """
    seed = check_int(seed, "derive_seed seed")
    parts = tuple(check_int(p, f"derive_seed parts[{i}]") for i, p in enumerate(parts))
    x = _splitmix64(seed & _MASK64)
    for p in parts:
        x = _splitmix64(x ^ _splitmix64(p & _MASK64))
    return x >> 1


def _check_int(name: str, value: Any, low: int) -> int:
    return check_int(value, f"BatchStream {name}", minimum=low)


class BatchStream:
    """Minibatches of a :class:`Dataset`, epoch after epoch, in a reproducible order.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int
        Examples per batch (per rank under data parallelism).
    seed : int, optional
        Seeds the epoch permutations. If None, drawn from ``generator`` (one draw).
    generator : torch.Generator, optional
        Used only to draw ``seed`` when it is None (the global RNG if both are None).
    shuffle : bool
        False keeps the data set's order every epoch.
    drop_last : bool
        Drop the last, smaller batch of an epoch (default True).
    rank, world_size : int
        This process's shard.

    Attributes
    ----------
    epoch : int
        Current epoch (from 0).
    position : int
        Batches already taken in the current epoch.
    batches_per_epoch : int
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, seed: int | None = None,
                 generator: torch.Generator | None = None, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if not isinstance(dataset, Dataset):
            raise ValidationError("BatchStream", "dataset must be a generative.data.Dataset",
                                  found=type(dataset).__name__,
                                  fix="wrap tensors with Dataset.from_tensors(x, y)")
        self.dataset = dataset
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if rank >= world_size:
            raise ValidationError("BatchStream", "rank must be < world_size",
                                  found=(rank, world_size))
        check_optional_generator(generator, "BatchStream generator")
        self.seed = _check_int("seed", seed, 0) if seed is not None else random_seed(generator)
        self.shuffle = check_bool(shuffle, "BatchStream shuffle")
        self.drop_last = check_bool(drop_last, "BatchStream drop_last")
        self.shard_size = len(dataset) // world_size
        if self.drop_last:
            self.batches_per_epoch = self.shard_size // batch_size
        else:
            self.batches_per_epoch = -(-self.shard_size // batch_size)
        if self.batches_per_epoch == 0:
            raise ValidationError(
                "BatchStream", "an epoch has no batch: the data set (per rank) is smaller than "
                "batch_size", found=(self.shard_size, batch_size),
                fix="lower batch_size or pass drop_last=False")
        self.epoch = 0
        self.position = 0
        self._order: Tensor | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch_order(self, epoch: int) -> Tensor:
        """Indices (into the data set) of this rank's examples in ``epoch`` (>= 0), in order."""
        epoch = _check_int("epoch", epoch, 0)
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            perm = torch.randperm(n, generator=g)
        else:
            perm = torch.arange(n)
        return perm[self.rank::self.world_size][: self.shard_size]

    def _current_order(self) -> Tensor:
        if self._order is None:
            self._order = self.epoch_order(self.epoch).to(self.dataset.x.device)
        return self._order

    def next_batch(self) -> Batch:
        """The next batch ``(x, y)``; moves to the next epoch after the last one."""
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._order = None
        order = self._current_order()
        start = self.position * self.batch_size
        idx = order[start: start + self.batch_size]
        self.position += 1
        x = self.dataset.x.index_select(0, idx)
        y = self.dataset.y.index_select(0, idx) if self.dataset.y is not None else None
        return x, y

    @property
    def epoch_finished(self) -> bool:
        """True once every batch of the current epoch has been taken."""
        return self.position >= self.batches_per_epoch

    def __iter__(self) -> Iterator[Batch]:
        """The remaining batches of the current epoch (then the stream is at its end)."""
        while not self.epoch_finished:
            yield self.next_batch()

    def state_dict(self) -> dict[str, int]:
        """Everything needed to continue the stream: plain ints (checkpoint-safe)."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position,
                "num_examples": len(self.dataset), "batch_size": self.batch_size,
                "world_size": self.world_size, "shuffle": int(self.shuffle),
                "drop_last": int(self.drop_last)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; the data set and batching must be those it came from.

        Raises
        ------
        CheckpointError
            ``state`` is not a dict of ints from :meth:`state_dict`, or it describes another
            data set, batch size or number of processes, or an impossible position.
        """
        if not isinstance(state, dict):
            raise CheckpointError("data position", "must be a dict from BatchStream.state_dict",
                                  found=type(state).__name__)
        for key in ("seed", "epoch", "position", "num_examples", "batch_size", "world_size",
                    "shuffle", "drop_last"):
            v = state.get(key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise CheckpointError("data position", f"{key} must be an int",
                                      found=repr(v)[:40], fix="use an intact checkpoint")
        for key in ("num_examples", "batch_size", "world_size", "shuffle", "drop_last"):
            mine = self.state_dict()[key]
            if int(state[key]) != mine:
                raise CheckpointError(
                    "data position", f"{key} differs from the checkpointed stream's",
                    found=(state.get(key), mine),
                    fix="resume with the same data set, batch size and number of processes")
        if state["seed"] < 0 or state["epoch"] < 0 or \
                not 0 <= state["position"] <= self.batches_per_epoch:
            raise CheckpointError("data position", "seed and epoch must be >= 0 and position "
                                  f"in [0, {self.batches_per_epoch}]",
                                  found=(state["seed"], state["epoch"], state["position"]))
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = None


def batches(dataset: Dataset, batch_size: int, generator: torch.Generator | None = None,
            drop_last: bool = True, *, shuffle: bool = True) -> Iterator[Batch]:
    """One epoch of minibatches ``(x, y)``, shuffled with a seed drawn from ``generator``.

    ``x`` is ``(batch_size, *event_shape)``, ``y`` is ``(batch_size,)`` or None. For
    checkpointable, multi-epoch or sharded streams use :class:`BatchStream`.
    """
    return iter(BatchStream(dataset, batch_size, generator=generator, shuffle=shuffle,
                            drop_last=drop_last))
