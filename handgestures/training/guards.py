"""Guards of a training run: stop at a non-finite loss, report a collapse of validation accuracy.

* :class:`NonFiniteLoss` raises :class:`RunDiverged` at the first NaN or infinite training
  loss, before its backward pass, so the weights of the checkpoints already saved stay finite
  and no later checkpoint is written.
* :class:`CollapseWatch` notices a fall of validation accuracy from its best to near chance
  (IvanNet augmented on the real images went from 1.0 to 1/6 within three epochs). The best
  checkpoint stays the one evaluated; the fall is reported on the console and in
  metrics.json, and ``last.ckpt`` is marked as not the model to use when the run ends below
  its best.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from handgestures.errors import RunDiverged
from handgestures.runfolder.lifecycle import run_progress
from handgestures.runfolder.record import CHECKPOINT_DIR, LAST_CHECKPOINT, LAST_NOT_FOR_USE, write_text

log = logging.getLogger(__name__)


class NonFiniteLoss(L.Callback):
    """Raises :class:`RunDiverged` at the first non-finite training loss (one device sync per step)."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            batch = trainer.fit_loop.epoch_loop.batch_idx + 1
            err = RunDiverged(trainer.current_epoch + 1, batch, float(loss.detach().float().max()))
            err.progress = run_progress(trainer)  # epochs done and the best checkpoint, for metrics.json
            raise err


class CollapseWatch(L.Callback):
    """Watches ``monitor`` (validation accuracy) for a fall from its best to near chance.

    Args:
        num_classes: chance is ``1 / num_classes``.
        min_best: a fall only counts after the best reached at least this.
        chance_margin: an epoch at or below ``chance + chance_margin`` has collapsed.
        last_tolerance: after a collapse, ``last.ckpt`` is marked unusable when the last
            epoch ends more than this below the best.
    """

    def __init__(self, num_classes: int = 6, min_best: float = 0.5, chance_margin: float = 0.1,
                 last_tolerance: float = 0.05, monitor: str = "val/acc") -> None:  # fmt: skip
        self.chance = 1.0 / num_classes
        self.min_best, self.chance_margin, self.last_tolerance = min_best, chance_margin, last_tolerance
        self.monitor = monitor
        self.best, self.best_epoch, self.last, self.last_epoch = -math.inf, 0, math.nan, 0
        self.collapses: list[dict[str, Any]] = []

    def update(self, epoch: int, value: float) -> dict[str, Any] | None:
        """Takes one epoch's value; returns the collapse it shows, if any (also logged)."""
        self.last, self.last_epoch = value, epoch
        if math.isnan(value):
            return None
        event = None
        if self.best >= self.min_best and value <= self.chance + self.chance_margin:
            event = {"epoch": epoch, "before": self.best, "best_epoch": self.best_epoch, "after": value}
            self.collapses.append(event)
            log.warning(
                "validation accuracy collapsed at epoch %d: %.4f, near chance (%.4f), after a best of %.4f at epoch "
                "%d. The best checkpoint stays the one evaluated. Such falls come from a few SGD steps whose "
                "gradient norm runs away; optimizer=sgd_clipped caps it (not the slides' recipe; docs/study.md).",
                epoch, value, self.chance, self.best,
                self.best_epoch,
            )  # fmt: skip
        if value > self.best:
            self.best, self.best_epoch = value, epoch
        return event

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        event = self.update(trainer.current_epoch + 1, float(trainer.callback_metrics[self.monitor]))
        previous = self.collapses[-2]["epoch"] if event is not None and len(self.collapses) > 1 else None
        if event is not None and previous != event["epoch"] - 1:  # a new fall, not the same one going on:
            # a callback that watched the steps (TrainingHealth) says where it happened
            for callback in trainer.callbacks:
                if callback is not self and hasattr(callback, "on_collapse"):
                    event["diagnosis"] = callback.on_collapse(trainer, event)

    @property
    def last_usable(self) -> bool:
        """False after a collapse when the last epoch ended more than ``last_tolerance`` below the best."""
        return not (self.collapses and not self.last >= self.best - self.last_tolerance)

    def record(self) -> dict[str, Any] | None:
        """metrics.json's ``collapse``: the first fall, every fall, and the last epoch's value."""
        if not self.collapses:
            return None
        return {**self.collapses[0], "all": list(self.collapses), "last_epoch": self.last_epoch, "last": self.last}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "last": self.last, "last_epoch": self.last_epoch,
                "collapses": self.collapses}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.last, self.last_epoch, self.collapses = state["last"], state["last_epoch"], list(state["collapses"])


def mark_last_checkpoint(out_dir: Path, watch: CollapseWatch) -> Path | None:
    """Writes the note beside last.ckpt when it is not the model to use; removes an old one otherwise."""
    note = out_dir / CHECKPOINT_DIR / LAST_NOT_FOR_USE
    if watch.last_usable:
        note.unlink(missing_ok=True)
        return None
    note.parent.mkdir(parents=True, exist_ok=True)
    falls = watch.collapses  # the last new fall: the first epoch of the last run of consecutive epochs at chance
    i = len(falls) - 1
    while i and falls[i - 1]["epoch"] == falls[i]["epoch"] - 1:
        i -= 1
    last = falls[i]
    earlier = f"; it had been near chance before, first at epoch {falls[0]['epoch']}" if last is not falls[0] else ""
    write_text(note, (
        f"{LAST_CHECKPOINT} is not the model to use: validation accuracy collapsed at epoch {last['epoch']} "
        f"({last['before']:.4f} at epoch {last['best_epoch']} -> {last['after']:.4f}{earlier}) and the last epoch "
        f"({watch.last_epoch}) ended at {watch.last:.4f}, more than {watch.last_tolerance:g} below the best "
        f"{watch.best:.4f}. Use the best checkpoint (metrics.json's best_checkpoint).\n"
    ))  # fmt: skip
    log.warning("%s is not the model to use (see %s)", LAST_CHECKPOINT, note)
    return note


def guard_callbacks(cfg: Any, num_classes: int) -> list[L.Callback]:
    """The guards of ``cfg.guards`` (all on when the key is absent)."""
    guards = cfg.get("guards") or {}
    callbacks: list[L.Callback] = []
    if guards.get("stop_on_nonfinite_loss", True):
        callbacks.append(NonFiniteLoss())
    collapse = dict(guards.get("collapse") or {})
    callbacks.append(CollapseWatch(num_classes=num_classes, **collapse))
    return callbacks
