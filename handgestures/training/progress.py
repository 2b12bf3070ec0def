"""The training progress bar: redrawn on time, not every N batches, with the throughput in images/s.

Lightning's ``TQDMProgressBar(refresh_rate=N)`` redraws every N batches: a fast network on a
fast machine then redraws a few times a second, but IvanNet on a CPU (about 2 batches/s)
redraws every 10 s or so and looks hung. :class:`TimedProgressBar` redraws when the last
redraw is ``refresh_seconds`` old, at the end of the batch that crosses it (and at each
bar's last batch): at most about twice a second when batches are fast, after every batch
when they are slow. Its training bar also shows ``images/s``, the images trained per second
in this epoch so far (all processes under DDP), the number a run's speed is judged by
(``train_images_per_second`` in metrics.json).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

THROUGHPUT_KEY = "images/s"


def batch_size_of(batch: Any) -> int:
    """The number of images in ``batch``: the length of its first tensor (a tuple, list or dict walked in order)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.ndim else 1
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        size = batch_size_of(item)
        if size:
            return size
    return 0


class TimedProgressBar(TQDMProgressBar):
    """Lightning's tqdm bars, redrawn every ``refresh_seconds`` at most and after any slower batch.

    Args:
        refresh_seconds: the least time between two redraws of a bar.
        clock: seconds as a float (``time.monotonic``; a test passes a fake one).
    """

    def __init__(self, refresh_seconds: float = 0.5, clock: Callable[[], float] = time.monotonic, **kwargs: Any):
        super().__init__(refresh_rate=1, **kwargs)  # every batch is considered; _should_update decides
        if refresh_seconds < 0:
            raise ValueError(f"refresh_seconds must be >= 0, got {refresh_seconds}")
        self.refresh_seconds, self.clock = float(refresh_seconds), clock
        self._last_refresh = clock()
        self._epoch_start, self._images, self._rate = 0.0, 0, None

    def _should_update(self, current: int, total: int) -> bool:
        """Whether to redraw now: the bar's last batch, or the last redraw ``refresh_seconds`` ago (then it is now)."""
        if not self.is_enabled:
            return False
        now = self.clock()
        if current == total or now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            return True
        return False

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._epoch_start = self._last_refresh = self.clock()
        self._images, self._rate = 0, None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        self._images += batch_size_of(batch) * trainer.world_size  # each process trains as many
        elapsed = self.clock() - self._epoch_start
        self._rate = self._images / elapsed if elapsed > 0 else None
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """Lightning's postfix (the metrics logged with ``prog_bar=True``) and ``images/s`` once measured.

        The rate is that of the epoch's training batches, so it stays as it was while validation runs.
        """
        metrics = super().get_metrics(trainer, pl_module)
        if self._rate is not None:
            metrics[THROUGHPUT_KEY] = round(self._rate)  # an int: tqdm pads floats and strings to 5 characters
        return metrics
