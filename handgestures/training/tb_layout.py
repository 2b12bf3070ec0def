"""How a run lays out its TensorBoard data, so that TensorBoard opens on the learning curves.

* Learning curves: one writer per split, ``<run>/tensorboard/train`` and
  ``<run>/tensorboard/val``, both with the tags ``curves/loss`` and ``curves/accuracy``.
  TensorBoard draws the same tag of several runs as lines of one chart, and its legend
  names the runs, so train and val of each metric share a chart and are told apart. The
  ``curves`` group sorts first in the Scalars and Time Series tabs.
* Final metrics (the best checkpoint on each evaluation set): one point per set at the last
  epoch, tags ``final/accuracy`` and ``final/loss``, in one sub-run per set
  (``<run>/tensorboard/<set>``; train and val share the curves' sub-runs). So they make two
  charts, below the curves, each with a legend of the sets, not a wall of single-point
  charts; and the HPARAMS tab, which reads a metric from a scalar of a sub-run of the
  session (its "group"), lists them as ``<set> accuracy`` and ``<set> loss``.
* The run's own writer (``<run>/tensorboard``, the Lightning logger's) holds the HPARAMS
  session (the run's choices) and the images, under ``samples/`` and ``results/``.
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
FINAL_TAGS = {"acc": "final/accuracy", "loss": "final/loss"}  # metrics.json metric -> tag
AUGMENTATION_TAG = "samples/augmentation"
CONFUSION_TAG = "results/confusion_test"

_curve_writers: dict[str, Any] = {}  # sub-run folder -> open SummaryWriter


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger
    return None


def curve_writer(trainer: L.Trainer, split: str) -> Any | None:
    """The SummaryWriter of sub-run ``split`` (opened once per fit), or None without TensorBoard."""
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
    """Closes this trainer's sub-run writers (a sweep runs many fits in one process)."""
    logger = tensorboard_logger(trainer)
    if logger is None:
        return
    for folder in [f for f in _curve_writers if os.path.dirname(f) == logger.log_dir]:
        _curve_writers.pop(folder).close()


def write_final(trainer: L.Trainer, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> bool:
    """The HPARAMS session of the run and its final metrics (``<set>/acc`` ...), laid out as above.

    Returns False (and writes nothing) without a TensorBoard logger.
    """
    logger = tensorboard_logger(trainer)
    if logger is None:
        return False
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    names = [(key.split("/")[0], key.split("/")[1]) for key in metrics if key.split("/")[-1] in FINAL_TAGS]
    for name, metric in names:
        curve_writer(trainer, name).add_scalar(FINAL_TAGS[metric], float(metrics[f"{name}/{metric}"]), step)
    # torch writes the session's choices with their types; its metric list is replaced by the
    # grouped one (a metric whose group is the set's sub-run)
    experiment, start, end = hparams_summaries(dict(hparams), {})
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    del data.experiment.metric_infos[:]
    for name, metric in names:
        data.experiment.metric_infos.add(
            name=api_pb2.MetricName(group=name, tag=FINAL_TAGS[metric]),
            display_name=f"{name} {FINAL_TAGS[metric].split('/')[1]}",
        )
    value.metadata.plugin_data.content = data.SerializeToString()
    file_writer = logger.experiment._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    logger.experiment.flush()
    close_curve_writers(trainer)
    return True


def augmentation_figure(grid: torch.Tensor, n_augmented: int, image_size: int):
    """The grid of :func:`~handgestures.data.augment.make_augmentation_grid` with its columns named.

    The first column is the original image, the others augmented copies: the title and the
    column labels say so, since the picture alone does not.
    """
    from handgestures.plots import plt  # matplotlib only when a figure is drawn

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
