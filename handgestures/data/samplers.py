"""The training shuffle as a function of (seed, epoch), so a resumed run replays the same order.

A ``RandomSampler`` seeded once per dataloader draws epoch 2's order from where epoch 1
left its generator: a run resumed at epoch 2 builds a new dataloader and would replay epoch
1's order. Here each epoch's permutation is drawn from a generator seeded by the seed and
the epoch alone; Lightning calls ``set_epoch`` on the loader's sampler before every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler


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
