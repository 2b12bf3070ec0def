"""Experiment trackers beside TensorBoard: MLflow, Weights & Biases, CSV (``logger=`` in conf/logger/).

The module logs its epoch curves itself (``self.log(..., logger=False)``, then
:class:`~handgestures.training.callbacks.EpochMetrics` writes epochs.csv and TensorBoard's
own layout), so what a tracker other than TensorBoard receives is sent from here:

* at the start, the run's hyperparameters (:func:`~handgestures.training.train.hparams_of`);
* every epoch, ``train/loss``, ``val/loss``, ``train/acc`` and ``val/acc`` at step = epoch (1-based);
* at the end, the best checkpoint's metrics as ``final/<set>/<acc|loss>`` at step = epochs run,
  and, for MLflow, metrics.json, MODEL_CARD.md and config.yaml as the run's artifacts.

A run is named after its folder unless the config names it. MLflow's local SQLite store
(``sqlite:///.../mlflow.db``) gets its folder created; W&B runs offline unless configured.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig

log = logging.getLogger(__name__)

MLFLOW, WANDB = "MLFlowLogger", "WandbLogger"
NAME_ARGUMENT = {MLFLOW: "run_name", WANDB: "name"}  # the run's display name: the run folder's
REQUIRES = {MLFLOW: ("mlflow", "mlflow"), WANDB: ("wandb", "wandb")}  # logger -> (module, extra)
ARTIFACTS = ("metrics.json", "MODEL_CARD.md", "config.yaml")
FINAL_PREFIX = "final/"


def _class_name(conf: Any) -> str:
    return str(conf.get("_target_", "")).rsplit(".", 1)[-1]


def instantiate_loggers(cfg: DictConfig) -> list[Logger]:
    """The loggers of ``cfg.logger``, each tracker run named after the run folder unless named."""
    folder = Path(str(cfg.paths.output_dir))
    loggers = []
    for conf in (cfg.get("logger") or {}).values():
        kind, extra = _class_name(conf), {}
        name_key = NAME_ARGUMENT.get(kind)
        if name_key and conf.get(name_key) is None:
            extra[name_key] = folder.name
        uri = str(conf.get("tracking_uri") or "")
        if kind == MLFLOW and uri.startswith("sqlite:///"):  # SQLite creates the file, not its folder
            Path(uri.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if kind == WANDB and "wandb" in sys.modules and sys.modules["wandb"].run is not None:
            sys.modules["wandb"].finish(exit_code=1)  # left open by a failed earlier job of this process
        loggers.append(instantiate(conf, **extra))
    return loggers


def trackers(trainer: L.Trainer) -> list[Logger]:
    """The trainer's loggers that get their values from here: every one but TensorBoard."""
    return [logger for logger in trainer.loggers if not isinstance(logger, TensorBoardLogger)]


def _finite(values: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, float]:
    keys = values.keys() if keys is None else keys
    out = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def log_start(trainer: L.Trainer, hparams: Mapping[str, Any]) -> None:
    """The run's hyperparameters, once, before training (MLflow params, W&B config, CSV hparams.yaml)."""
    for logger in trackers(trainer):
        logger.log_hyperparams(dict(hparams))
        logger.save()


def log_epoch(trainer: L.Trainer, row: Mapping[str, Any], keys: Iterable[str], epoch: int) -> None:
    """One epoch's curves (``keys`` of an epochs.csv row) at step ``epoch``."""
    values = _finite(row, keys)
    for logger in trackers(trainer):
        if values:
            logger.log_metrics(values, step=epoch)
            logger.save()


def log_final(trainer: L.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """The best checkpoint's metrics, ``final/<set>/<metric>``, at step ``step``."""
    values = {FINAL_PREFIX + key: value for key, value in _finite(metrics).items()}
    for logger in trackers(trainer):
        if values:
            logger.log_metrics(values, step=step)
        logger.save()
        if isinstance(logger, WandbLogger):  # the summary shows the final metrics, not the last step's
            logger.experiment.summary.update(values)


def finish(trainer: L.Trainer, folder: Path) -> None:
    """The end of a run: MLflow gets the run's files as artifacts; W&B's run is closed."""
    for logger in trackers(trainer):
        if isinstance(logger, MLFlowLogger):
            for name in ARTIFACTS:
                if (folder / name).is_file():
                    logger.experiment.log_artifact(logger.run_id, str(folder / name))
        elif isinstance(logger, WandbLogger):
            logger.experiment.finish()
        elif isinstance(logger, CSVLogger):
            logger.save()


def missing_requirements(logger_cfg: Mapping[str, Any]) -> list[str]:
    """One message per configured logger whose package is not installed, naming the extra to install."""
    problems = []
    for key, conf in logger_cfg.items():
        module, extra = REQUIRES.get(_class_name(conf), (None, None))
        if module and importlib.util.find_spec(module) is None:
            problems.append(f"logger.{key} ({_class_name(conf)}) needs the {module} package: "
                            f"pip install -e '.[{extra}]'")  # fmt: skip
    return problems
