"""How a run lays out its TensorBoard data: one TensorBoard run per training run, told apart by name.

* **One run per training run.** Everything a run writes goes to one event folder,
  ``<run>/tensorboard`` (the Lightning logger's), so ``tensorboard --logdir outputs`` lists
  each run once, under a name that starts with its folder
  (``runs/carlosnet-base-seed0-<time>/tensorboard``). With several runs open, a run is one
  colour on every chart and the legend names it; a split or an evaluation set is in the tag,
  never a sub-run of its own.
* **Learning curves**: ``curves/<metric>/<split>`` (``curves/accuracy/train``,
  ``curves/accuracy/val``, ``curves/loss/train``, ``curves/loss/val``) at step = epoch. The
  Time Series and Scalars tabs show the ``curves`` group first, one chart per metric and
  split, one line per run. The Custom Scalars tab (:data:`LAYOUT`, written when a run starts)
  overlays train and val of each metric, the study's learning-curve charts.
* **Training health**: ``health/...`` (:class:`~handgestures.training.health.TrainingHealth`).
* **Final metrics** (the best checkpoint on each evaluation set): ``final/<metric>/<set>``,
  one point at the last epoch, and the HPARAMS session: the run's choices and these metrics,
  listed as ``<set> accuracy`` and ``<set> loss``, one row per run.
* **Images**: ``samples/augmentation`` and ``results/confusion_test``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

CURVE_METRICS = {"loss": "loss", "acc": "accuracy"}  # epochs.csv / metrics.json metric -> name in tags
SPLITS = ("train", "val")  # the splits with learning curves
AUGMENTATION_TAG = "samples/augmentation"
CONFUSION_TAG = "results/confusion_test"
# the Custom Scalars tab: train and val of one metric on one chart (each run's lines, with several open)
LAYOUT = {
    "learning curves": {
        f"{name} (train, val)": ["Multiline", [rf"^curves/{name}/(train|val)$"]] for name in ("accuracy", "loss")
    }
}


def curve_tag(split: str, metric: str) -> str:
    """``curves/accuracy/train`` for (``train``, ``acc``)."""
    return f"curves/{CURVE_METRICS[metric]}/{split}"


def final_tag(name: str, metric: str) -> str:
    """``final/accuracy/test_aug`` for (``test_aug``, ``acc``)."""
    return f"final/{CURVE_METRICS[metric]}/{name}"


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger
    return None


def tensorboard_writer(trainer: L.Trainer) -> Any | None:
    """The SummaryWriter of the run's one event folder, or None without TensorBoard."""
    logger = tensorboard_logger(trainer)
    return logger.experiment if logger is not None else None


def write_layout(trainer: L.Trainer) -> None:
    """The Custom Scalars layout, once per run (a resumed run wrote it when it started)."""
    if not trainer.is_global_zero or trainer.ckpt_path is not None:
        return
    writer = tensorboard_writer(trainer)
    if writer is None:
        return
    writer.add_custom_scalars(LAYOUT)
    writer.flush()


def write_curves(trainer: L.Trainer, row: Mapping[str, float], epoch: int) -> None:
    """One point per split and metric at step ``epoch``, from an epochs.csv row (``train/loss``, ...)."""
    writer = tensorboard_writer(trainer)
    if writer is None:
        return
    for split in SPLITS:
        for metric in CURVE_METRICS:
            value = row.get(f"{split}/{metric}", math.nan)
            if value is not None and not math.isnan(value):
                writer.add_scalar(curve_tag(split, metric), float(value), epoch)
    writer.flush()


def write_final(trainer: L.Trainer, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> bool:
    """The HPARAMS session of the run and its final metrics (``<set>/acc`` ...), laid out as above.

    Returns False (and writes nothing) without a TensorBoard logger.
    """
    logger = tensorboard_logger(trainer)
    if logger is None:
        return False
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2  # tensorboard's own: with its logger only
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    names = [tuple(key.split("/")) for key in metrics if key.split("/")[-1] in CURVE_METRICS]
    for name, metric in names:
        logger.experiment.add_scalar(final_tag(name, metric), float(metrics[f"{name}/{metric}"]), step)
    # torch writes the session's choices with their types; its metric list is replaced by the
    # final metrics, each a scalar of the session's own run (group "")
    experiment, start, end = hparams_summaries(dict(hparams), {})
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    del data.experiment.metric_infos[:]
    for name, metric in names:
        data.experiment.metric_infos.add(
            name=api_pb2.MetricName(group="", tag=final_tag(name, metric)),
            display_name=f"{name} {CURVE_METRICS[metric]}",
        )
    value.metadata.plugin_data.content = data.SerializeToString()
    file_writer = logger.experiment._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    logger.experiment.flush()
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
