"""``train(cfg)``: one run of the study, from a composed Hydra config to metrics.json.

Order of work, so that nothing finished is lost if a later step fails: the resolved config
is written first; checkpoints and epochs.csv are written during training; metrics.json is
written after training (status ``trained``) and rewritten after the cross-evaluation.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from handgestures.data.datamodule import FingersDataModule, build_datamodule
from handgestures.data.grouping import write_split_csv
from handgestures.errors import UserError
from handgestures.plots import confusion_figure
from handgestures.runfolder import record as rr
from handgestures.runfolder.card import write_model_card
from handgestures.runfolder.lifecycle import StopOnSignal
from handgestures.runfolder.record import write_json  # noqa: F401 (strict JSON, atomic; also importable from here)
from handgestures.runfolder.resume import FollowMovedFolder, RandomStates, prepare_resume
from handgestures.runtime import (  # noqa: F401  (re-exported: these lived here)
    AUTO_PRECISION,
    configure_process,
    hardware,
    keep_freed_memory,
    native_bf16,
    resolve_config_precision,
    resolve_precision,
)
from handgestures.training import trackers
from handgestures.training.checkpoint import describe_run
from handgestures.training.config_tree import print_config_tree
from handgestures.training.console import quiet_framework_noise
from handgestures.training.guards import CollapseWatch, guard_callbacks, mark_last_checkpoint
from handgestures.training.module import HandGestureClassifier
from handgestures.training.tb_layout import CONFUSION_TAG, tensorboard_writer, write_final

log = logging.getLogger(__name__)


class FirstStepTimer(L.Callback):
    """Records when the first training batch starts, to measure start-up time."""

    def __init__(self) -> None:
        self.first_step_at: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()


def trained_images(trainer: L.Trainer, datamodule: FingersDataModule) -> int:
    """Images seen in training (limit_train_batches honoured; the last batch may be partial)."""
    n, batch = len(datamodule.splits["train"]), datamodule.batch_size
    if not math.isfinite(trainer.num_training_batches):  # Lightning's inf when no training batch ran
        return 0
    per_epoch = min(n, int(trainer.num_training_batches) * batch * trainer.world_size)  # DDP: all processes
    return per_epoch * trainer.current_epoch


def run_name(cfg: DictConfig) -> dict[str, Any]:
    choices = cfg.get("run_info", {}) or {}
    return {
        "model": choices.get("model") or str(cfg.model._target_).rsplit(".", 1)[-1].lower(),
        "data": choices.get("data") or ("augmented" if cfg.data.augment_train else "base"),
        "seed": int(cfg.seed),
    }


def summary_table(metrics: dict[str, float], names: list[str]) -> str:
    lines = [f"{'set':<10} {'accuracy':>9} {'loss':>10}", "-" * 31]
    for name in names:
        if f"{name}/acc" in metrics:
            lines.append(f"{name:<10} {metrics[f'{name}/acc']:>9.4f} {metrics[f'{name}/loss']:>10.5f}")
    return "\n".join(lines)


def hparams_of(cfg: DictConfig, info: dict[str, Any]) -> dict[str, Any]:
    return {
        **info,
        "epochs": int(cfg.epochs),
        "batch_size": int(cfg.batch_size),
        "lr": float(cfg.optimizer.get("lr", math.nan)),
        "momentum": float(cfg.optimizer.get("momentum", 0.0)),
        "precision": str(cfg.trainer.get("precision", "32-true")),
        "source": str(cfg.data.root or "built-in hands"),
        "semantics": str(cfg.data.augmentation.get("semantics", "keras2")) if cfg.data.augmentation else "none",
    }


def build_run(
    cfg: DictConfig, extra_callbacks: tuple[L.Callback, ...] = ()
) -> tuple[FingersDataModule, HandGestureClassifier, L.Trainer]:
    """Seeds, then builds the datamodule, the module and the trainer of one run from ``cfg``.

    ``train`` uses it, and so does ``benchmarks/training.py`` (with timing callbacks added),
    so the benchmark measures exactly the objects a run trains with.
    """
    configure_process(cfg)  # the one place "auto" precision is resolved
    quiet_framework_noise()
    L.seed_everything(int(cfg.seed), workers=True)
    datamodule = build_datamodule(cfg.data)
    net = instantiate(cfg.model)
    module = HandGestureClassifier(
        net, optimizer=instantiate(cfg.optimizer), num_classes=int(cfg.model.get("num_classes", 6)),
        eval_names=datamodule.eval_names, channels_last=bool(cfg.channels_last),
        **describe_run(cfg),  # net_spec + description: self-describing checkpoints
    )  # fmt: skip
    loggers = trackers.instantiate_loggers(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + [FirstStepTimer(), *extra_callbacks]
    callbacks += [
        RandomStates(),
        FollowMovedFolder(),
        StopOnSignal(),
        *guard_callbacks(cfg, module.hparams.num_classes),
    ]
    if cfg.trainer.get("enable_progress_bar") is False:  # the flag wins over a configured bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    return datamodule, module, trainer


def train(cfg: DictConfig, started_at: float | None = None) -> dict[str, float]:
    """Train, checkpoint, cross-evaluate the best checkpoint; returns the final metrics."""
    started_at = started_at or time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / rr.FAILED_FILE).unlink(missing_ok=True)  # left by an earlier failed attempt here
    # before build_run: it sets the TensorBoard logger's purge_step for a resumed run
    resume_from = prepare_resume(cfg, out_dir)  # None unless cfg.resume: last.ckpt, records trimmed to it
    datamodule, module, trainer = build_run(cfg)  # cheap: no data is read before fit
    OmegaConf.save(cfg, out_dir / rr.CONFIG_FILE, resolve=True)  # with the precision "auto" became
    if cfg.get("print_config", True):
        print_config_tree(cfg, title=f"config ({out_dir / rr.CONFIG_FILE})")
    info = run_name(cfg)
    write_split_csv(datamodule, out_dir / "split.csv")  # file, class, hand, split, group of every image
    trackers.log_start(trainer, hparams_of(cfg, info))  # MLflow, W&B, CSV: hyperparameters before training
    timer = next(c for c in trainer.callbacks if isinstance(c, FirstStepTimer))
    eval_names = datamodule.eval_names

    fit_start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    fit_seconds = time.perf_counter() - fit_start
    if trainer.fast_dev_run:  # debug=fdr: Lightning saves no checkpoint in this mode, so there is nothing to evaluate
        return dry_run(trainer, module, datamodule, out_dir)
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    result: dict[str, Any] = {
        **info,
        rr.KEY_STATUS: rr.STATUS_TRAINED,
        "precision": str(cfg.trainer.precision),
        "split": str(cfg.data.get("split", "random")),  # data.split: random (the study's) or grouped
        **({"folds": int(cfg.data.folds), "fold": int(cfg.data.get("fold", 0))} if cfg.data.get("folds") else {}),
        rr.KEY_EPOCHS_RUN: trainer.current_epoch,
        rr.KEY_BEST_CHECKPOINT: rr.in_folder(best, out_dir),
        rr.KEY_BEST_VAL_ACC: float(checkpoint.best_model_score) if best and checkpoint.best_model_score is not None else None,
        "data_source": datamodule.data.source if datamodule.data is not None else None,
        "hardware": hardware(),  # CPU, bf16 support, GPU, threads, torch: what else the numbers depend on
        "fit_seconds": round(fit_seconds, 2),
        "startup_seconds": round(timer.first_step_at - started_at, 2) if timer.first_step_at else None,
        "train_images_per_second": round(trained_images(trainer, datamodule) / fit_seconds, 1),
        rr.KEY_RESUMED_FROM: rr.in_folder(resume_from, out_dir),
    }  # fmt: skip
    watch = next(c for c in trainer.callbacks if isinstance(c, CollapseWatch))
    note = mark_last_checkpoint(out_dir, watch)  # last.ckpt is not the model to use after a collapse
    result.update({rr.KEY_COLLAPSE: watch.record(), rr.KEY_LAST_CHECKPOINT_USABLE: note is None})
    write_json(out_dir / rr.METRICS_FILE, result)
    if best is None:  # no epoch finished: an untrained network is never reported as the best
        raise UserError(f"no training epoch finished (epochs={cfg.epochs}), so there is no best checkpoint to evaluate")

    eval_start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.split("/")[0] in eval_names}
    confusion = {k: v.tolist() for k, v in module.confusion.items()}
    per_class = rr.per_class_accuracy(confusion)
    result.update(
        status=rr.STATUS_DONE, metrics=metrics, per_class_acc=per_class, confusion=confusion,
        eval_seconds=round(time.perf_counter() - eval_start, 2),
        wall_seconds=round(time.perf_counter() - started_at, 2),
    )  # fmt: skip
    write_json(out_dir / rr.METRICS_FILE, result)
    log_final(trainer, cfg, info, metrics, module.confusion)
    log.info("results of %s / %s / seed %d (best checkpoint) -> %s\n%s", info["model"], info["data"], info["seed"],
             out_dir, summary_table(metrics, eval_names))  # fmt: skip
    write_model_card(out_dir)  # MODEL_CARD.md, from the files just written
    trackers.finish(trainer, out_dir)  # MLflow: the run's files as artifacts; W&B: the run closed
    return metrics


def dry_run(trainer: L.Trainer, module: HandGestureClassifier, datamodule: FingersDataModule, out_dir: Path) -> dict:
    """The end of a ``trainer.fast_dev_run`` run: the test loop once on the current weights; no metrics.json."""
    trainer.test(module, datamodule=datamodule, verbose=False, weights_only=True)
    batches = int(trainer.fast_dev_run)
    log.info("dry run (trainer.fast_dev_run=%s): %d batch(es) of training, validation and each test set ran; "
             "Lightning saves no checkpoint in this mode, so no metrics.json was written in %s. "
             "debug=limit trains and evaluates a few batches instead.", trainer.fast_dev_run, batches, out_dir)  # fmt: skip
    return {}


def log_final(trainer: L.Trainer, cfg: DictConfig, info: dict, metrics: dict, confusion: dict) -> None:
    """HPARAMS with the real final metrics, and the test confusion matrix as an image (TensorBoard);
    the final metrics for the other loggers (their hyperparameters went at the start)."""
    hparams = hparams_of(cfg, info)
    write_final(trainer, hparams, metrics, int(trainer.current_epoch))
    trackers.log_final(trainer, metrics, int(trainer.current_epoch))  # other loggers: final/<set>/<metric>
    writer = tensorboard_writer(trainer)
    if writer is not None and "test" in confusion:
        writer.add_figure(CONFUSION_TAG, confusion_figure(confusion["test"], "test, best checkpoint"), 0)
        writer.flush()
