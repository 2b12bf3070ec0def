"""How a run lays out its TensorBoard data, so that TensorBoard opens on the learning curves.

* Learning curves: one writer per split, ``<run>/tensorboard/train`` and
  ``<run>/tensorboard/val``, both with the tags ``curves/loss`` and ``curves/accuracy``.
  TensorBoard draws the same tag of several runs as lines of one chart, and its legend
  names the runs, so train and val of each metric share a chart and are told apart. The
  ``curves`` group sorts first in the Scalars and Time Series tabs.
* The run's own writer (``<run>/tensorboard``, the Lightning logger's) holds the HPARAMS
  session with the final metrics (``hp/<set>_<metric>``: the HPARAMS tab reads its metric
  values from scalars of the session's run, so they exist as scalars too; their group sorts
  after ``curves``) and the images, under ``samples/`` and ``results/``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

CURVE_TAGS = {"loss": "curves/loss", "acc": "curves/accuracy"}  # epochs.csv metric -> tag
SPLIT_RUNS = ("train", "val")  # sub-run of <run>/tensorboard per split
FINAL_PREFIX = "hp/"
AUGMENTATION_TAG = "samples/augmentation"
CONFUSION_TAG = "results/confusion_test"

_curve_writers: dict[str, Any] = {}  # sub-run folder -> open SummaryWriter


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger
    return None


def curve_writer(trainer: L.Trainer, split: str) -> Any | None:
    """The SummaryWriter of ``split``'s curves (opened once per fit), or None without TensorBoard."""
    logger = tensorboard_logger(trainer)
    if logger is None:
        return None
    folder = os.path.join(logger.log_dir, split)
    if folder not in _curve_writers:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run purges the steps after its checkpoint, as the logger's own writer does
        purge_step = getattr(logger, "_kwargs", {}).get("purge_step")
        _curve_writers[folder] = SummaryWriter(log_dir=folder, purge_step=purge_step)
    return _curve_writers[folder]


def write_curves(trainer: L.Trainer, row: Mapping[str, float], epoch: int) -> None:
    """One point per split and metric at step ``epoch``, from an epochs.csv row (``train/loss``, ...)."""
    for split in SPLIT_RUNS:
        writer = None
        for metric, tag in CURVE_TAGS.items():
            value = row.get(f"{split}/{metric}", math.nan)
            if value is None or math.isnan(value):
                continue
            writer = writer or curve_writer(trainer, split)
            if writer is None:
                return
            writer.add_scalar(tag, float(value), epoch)
        if writer is not None:
            writer.flush()


def close_curve_writers(trainer: L.Trainer) -> None:
    """Closes this trainer's curve writers (a sweep runs many fits in one process)."""
    logger = tensorboard_logger(trainer)
    if logger is None:
        return
    for split in SPLIT_RUNS:
        writer = _curve_writers.pop(os.path.join(logger.log_dir, split), None)
        if writer is not None:
            writer.close()


def final_metric_tags(metrics: Mapping[str, float]) -> dict[str, float]:
    """``test/acc`` -> ``hp/test_acc``: the HPARAMS tab's metric columns."""
    return {f"{FINAL_PREFIX}{k.replace('/', '_')}": v for k, v in metrics.items()}


def augmentation_figure(grid: torch.Tensor, n_augmented: int, image_size: int):
    """The grid of :func:`~handgestures.data.augment.make_augmentation_grid` with its columns named.

    The first column is the original image, the others augmented copies: the title and the
    column labels say so, since the picture alone does not.
    """
    from handgestures.plots import plt

    height, width = grid.shape[-2:]
    fig, ax = plt.subplots(figsize=(1.1 * (n_augmented + 1), 1.1 * height / width * (n_augmented + 1) + 0.5), dpi=110)
    ax.imshow(grid.permute(1, 2, 0).cpu().numpy())
    pitch = image_size + 2  # make_grid's padding
    ax.set_xticks([2 + pitch * i + image_size / 2 for i in range(n_augmented + 1)],
                  ["original"] + [f"aug. {i}" for i in range(1, n_augmented + 1)], fontsize=11)  # fmt: skip
    ax.set_yticks([])
    ax.xaxis.tick_top()
    ax.set_title(f"column 1: original; columns 2-{n_augmented + 1}: augmented copies", fontsize=12, pad=22)
    fig.tight_layout()
    return fig
