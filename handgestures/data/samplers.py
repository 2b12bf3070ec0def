"""The training shuffle as a function of (seed, epoch), so a resumed run replays the same order.

A ``RandomSampler`` seeded once per dataloader draws epoch 2's order from where epoch 1
left its generator: a run resumed at epoch 2 builds a new dataloader and would replay epoch
1's order. Here each epoch's permutation is drawn from a generator seeded by the seed and
the epoch alone; Lightning calls ``set_epoch`` on the loader's sampler before every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DistributedSampler, Sampler, SequentialSampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed mixing ``seed`` and ``epoch`` (NumPy's SeedSequence: no two pairs alike in practice)."""
    words = [int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch)]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on ``seed`` and the epoch set last."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class EpochBatchSampler(BatchSampler):
    """A ``BatchSampler`` that passes ``set_epoch`` on to its sampler (Lightning calls it on the loader's sampler)."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class SequentialBatches(SequentialSampler):
    """Batches of ``range(n)`` in order, for ``trainer.overfit_batches`` (``debug=overfit``).

    Lightning replaces the sampler of a loader it overfits on unless it is a ``SequentialSampler``,
    with one of single indices, which the datamodule's loaders (a sampler of index lists,
    ``batch_size=None``) cannot take. This one is a ``SequentialSampler`` yielding index lists.
    """

    def __init__(self, n: int, batch_size: int) -> None:
        super().__init__(range(int(n)))
        self.n, self.batch_size = int(n), int(batch_size)

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for start in range(0, self.n, self.batch_size):
            yield list(range(start, min(self.n, start + self.batch_size)))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


# ---- several processes (DDP): each rank's share of the batches ------------------------------


class UnpaddedDistributedBatchSampler(DistributedSampler):
    """Batches of ``range(length)`` for one rank: rank r gets indices r, r + R, r + 2R, ... .

    Unlike ``DistributedSampler`` nothing is repeated, so ranks may get a different number of
    images (and of batches). It is a ``DistributedSampler`` so that Lightning uses it as it is
    instead of wrapping it in a padded one; it yields lists of indices (the datamodule's
    datasets gather a whole batch at once).
    """

    def __init__(self, length: int, batch_size: int, num_replicas: int, rank: int) -> None:
        if batch_size < 1 or num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"batch_size={batch_size}, num_replicas={num_replicas}, rank={rank}: "
                             "expected batch_size >= 1 and 0 <= rank < num_replicas")  # fmt: skip
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.length, self.batch_size = length, batch_size
        self.num_samples = len(range(rank, length, num_replicas))
        self.total_size = length

    def __iter__(self) -> Iterator[list[int]]:
        mine = list(range(self.rank, self.length, self.num_replicas))
        for start in range(0, len(mine), self.batch_size):
            yield mine[start : start + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)


class DistributedTrainBatches(DistributedSampler):
    """Rank r's share of each epoch's training batches: batches r, r + R, r + 2R, ... .

    ``batches`` (the datamodule's epoch-seeded batch sampler) gives every rank the same
    batches of an epoch; the shorter ranks repeat the epoch's first batches so that all take
    the same number of steps (DDP reduces the gradients at every step). ``set_epoch`` reaches
    the inner shuffle, which Lightning's own wrapper would not pass on.
    """

    def __init__(self, batches: Any, num_replicas: int, rank: int) -> None:
        super().__init__(range(len(batches)), num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.batches = batches

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = list(self.batches)
        if not epoch:
            return iter([])
        padded = [epoch[i % len(epoch)] for i in range(len(self) * self.num_replicas)]
        return iter(padded[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.num_replicas)


def distributed_batches(batches: Any, trainer: Any | None, train: bool) -> Any:
    """``batches`` itself in one process; under DDP this process's share (every image once in evaluation)."""
    world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
    if world <= 1:
        return batches
    rank = int(trainer.global_rank)
    if train:
        return DistributedTrainBatches(batches, world, rank)
    return UnpaddedDistributedBatchSampler(len(batches.sampler), batches.batch_size, world, rank)
