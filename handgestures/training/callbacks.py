"""Callbacks: per-epoch curves (CSV and TensorBoard) and the augmented sample grid."""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from handgestures.data.augment import KerasRandomAffine, make_augmentation_grid
from handgestures.training.tb_layout import (
    AUGMENTATION_TAG,
    augmentation_figure,
    tensorboard_writer,
    write_curves,
    write_layout,
)
from handgestures.training.trackers import log_epoch

log = logging.getLogger(__name__)

CURVES = ("train/loss", "val/loss", "train/acc", "val/acc")


class EpochMetrics(L.Callback):
    """Writes train and val loss and accuracy once per epoch, indexed by epoch (1-based).

    The CSV (``epochs.csv`` in the run folder) lets reports aggregate runs without reading
    TensorBoard; the same values go to TensorBoard with the epoch as step, the x-axis of the
    study's learning curves, in the run's one TensorBoard run (:mod:`handgestures.training.tb_layout`,
    whose Custom Scalars layout it writes at the start), and to any other logger (:mod:`handgestures.training.trackers`).
    Sanity-check validation is never recorded.
    """

    def __init__(self, filename: str = "epochs.csv") -> None:
        self.filename = filename
        self._epoch_start = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = Path(trainer.default_root_dir) / self.filename
        if trainer.ckpt_path is None and path.exists():
            path.unlink()  # a fresh fit in a reused folder starts a fresh file; a resumed one appends
        write_layout(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()  # a fit restored mid-epoch has no epoch start of its own

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        epoch = trainer.current_epoch + 1
        row = {"epoch": epoch, "step": trainer.global_step}
        for key in CURVES:
            row[key] = float(metrics[key]) if key in metrics else math.nan
        for callback in trainer.callbacks:  # TrainingHealth's columns (dead units, gradient norms), when on
            row.update(getattr(callback, "row", None) or {})
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        append_row(Path(trainer.default_root_dir) / self.filename, row)
        write_curves(trainer, row, epoch)
        log_epoch(trainer, row, CURVES, epoch)  # MLflow, W&B, CSV: the same values, step = epoch


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Appends ``row`` to the CSV ``path`` (created with a header when absent).

    When the row's columns differ from the file's header (a run resumed with a callback added or
    removed, e.g. the training-health columns), the file is rewritten with the union of the
    columns, earlier rows left empty in the new ones, so every value stays under its own name.
    """
    header: list[str] = []
    if path.exists():
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
    if not header or header == list(row):
        with path.open("a" if header else "w", newline="") as fh:
            out = csv.DictWriter(fh, fieldnames=list(row))
            if not header:
                out.writeheader()
            out.writerow(row)
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = [*header, *(k for k in row if k not in header)]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=fields, restval="")
        out.writeheader()
        out.writerows([*rows, row])
    tmp.replace(path)


class AugmentationGrid(L.Callback):
    """Logs a grid of original and augmented training samples to TensorBoard, once per run."""

    def __init__(self, num_images: int = 6, num_augmented: int = 7, seed: int = 0) -> None:
        self.num_images, self.num_augmented, self.seed = num_images, num_augmented, seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        dm = trainer.datamodule
        if writer is None or dm is None or not getattr(dm, "keras_params", None) or not trainer.is_global_zero:
            return
        if trainer.ckpt_path is not None:
            return  # a resumed run logged its grid when it started
        train = dm.splits["train"]
        images = train.data.images[train.indices[: self.num_images]].float() / 255.0
        transform = KerasRandomAffine(
            **dm.keras_params, **dm.warp_options, generator=torch.Generator().manual_seed(self.seed)
        )
        grid = make_augmentation_grid(images, transform, n_augmented=self.num_augmented)
        writer.add_figure(AUGMENTATION_TAG, augmentation_figure(grid, self.num_augmented, images.shape[-1]), 0)
        writer.flush()
