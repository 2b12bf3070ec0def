"""What one process does in a job: train (rank 0, which keeps the run folder) or follow rank 0.

A job of several DDP processes runs :func:`train_this_rank` in each; rank 0 writes the run
folder through :func:`~handgestures.runfolder.lifecycle.guarded` (lock, signals, records),
the others run the same collective steps and write nothing (:func:`follow_rank_zero`).
:func:`run_rank` is the whole job of a process that :mod:`handgestures.launch.ddp` started.
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from handgestures.errors import EXIT_ERROR, Interrupted, PeerLost, RunDiverged, UserError, peer_error
from handgestures.launch.ranks import global_rank, is_rank_zero
from handgestures.runfolder import record as rr
from handgestures.runfolder.lifecycle import SIGNALS, guarded, log_to_file
from handgestures.training.train import build_run, run_name, train

log = logging.getLogger(__name__)


def train_this_rank(cfg: DictConfig, start: float) -> dict[str, float]:
    """This process's part of the job: rank 0 trains and keeps the run folder, the others follow it."""
    folder = Path(cfg.paths.output_dir)
    resume, overwrite = bool(cfg.get("resume")), bool(cfg.get("overwrite", False))
    if is_rank_zero():
        return guarded(folder, run_name(cfg), resume, overwrite, lambda: train(cfg, start))
    with SIGNALS:  # a signal stops this process after the same batch as rank 0 (StopOnSignal)
        return follow_rank_zero(cfg)  # DDP: the first process keeps the run folder; the others write nothing


def run_rank(cfg: DictConfig, start: float) -> int:
    """The job of one process started by :mod:`handgestures.launch.ddp`; its exit code."""
    try:
        train_this_rank(cfg, start)
    except Interrupted as err:
        return err.exit_code
    except Exception as caught:
        err = peer_error(caught, Path(str(cfg.paths.output_dir))) or caught  # another process died: said once
        if is_rank_zero():
            log_to_file(f"{type(err).__name__}: {err}", err)
        if isinstance(err, UserError) and not isinstance(err, PeerLost):  # the launcher says which process died
            print(f"error: {err}", file=sys.stderr)
        if isinstance(err, (UserError, RunDiverged)):
            return int(getattr(err, "exit_code", EXIT_ERROR))
        raise
    finally:
        gc.collect()
    return 0


def follow_rank_zero(cfg: DictConfig) -> dict[str, float]:
    """What a DDP process other than the first runs instead of ``train``: the same collective steps.

    It fits (from the same checkpoint when resuming) and cross-evaluates the best checkpoint
    as rank 0 does, so that every collective operation has all its processes, and writes
    nothing: no run folder lock, record or checkpoint (Lightning saves from rank 0 only).
    """
    log.info("process of rank %d follows rank 0 and writes no record (its folder: %s)", global_rank(),
             cfg.paths.output_dir)  # fmt: skip
    datamodule, module, trainer = build_run(cfg)
    last = Path(cfg.paths.output_dir) / rr.CHECKPOINT_DIR / rr.LAST_CHECKPOINT
    resume_from = str(last) if cfg.get("resume") and last.is_file() else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    if trainer.fast_dev_run:  # rank 0's dry run (train.dry_run) tests the current weights: so does this process
        trainer.test(module, datamodule=datamodule, verbose=False, weights_only=True)
        return {}
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    if best is None:
        return {}
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.split("/")[0] in datamodule.eval_names}
