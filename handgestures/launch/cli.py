"""What the Hydra entry points share: run one job, and keep a sweep going past a failure.

Exit codes: 0 done; 1 for an expected error (one message, no traceback: that goes to the
run's log and failed.json), a diverged run, or a sweep with failed jobs; 130/143 for
SIGINT/SIGTERM (a sweep launches no further job). Anything else is a bug and keeps its
traceback (Hydra prints it, exit 1).
"""

from __future__ import annotations

import gc
import logging
import math
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from handgestures.errors import EXIT_ERROR, Interrupted, RunDiverged, UserError, memory_error, peer_error, storage_error
from handgestures.launch import threads
from handgestures.launch.ddp import run_launched, wants_launch
from handgestures.launch.job import train_this_rank
from handgestures.launch.outdir import remove_added
from handgestures.launch.ranks import check_launch, process_count
from handgestures.runfolder.lifecycle import log_to_file, record_early_failure
from handgestures.runfolder.record import FAILED_FILE, RUN_LOG
from handgestures.runfolder.resume import resumed_config
from handgestures.training.validate import validate_config

log = logging.getLogger(__name__)

OPTIMIZED_METRIC = "val/acc"
_jobs_run = 0  # a multirun sweep calls run_job once per job, in one process


def run_job(cfg: DictConfig, started_at: float | None = None) -> float:
    """Train with ``cfg``; returns the metric a sweeper optimises (validation accuracy)."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    check_launch(cfg, multirun)  # a multirun that would start DDP itself stops here, before anything trains
    processes = process_count(cfg.trainer)
    threads.apply_for_job(processes=processes, hydra_cfg=hydra_cfg)
    with open_dict(cfg):
        cfg.run_info = {"model": hydra_cfg.runtime.choices.get("model"), "data": hydra_cfg.runtime.choices.get("data")}
    global _jobs_run
    # the process start only counts for the first job; later jobs of a sweep start now
    start = started_at if started_at is not None and _jobs_run == 0 else time.perf_counter()
    _jobs_run += 1
    try:
        validate_config(cfg, record_to=hydra_cfg.runtime.output_dir)  # before any data is read
        if cfg.get("resume"):
            try:
                cfg = resumed_config(cfg, list(hydra_cfg.overrides.task), Path(str(cfg.resume)).expanduser().resolve())
            except UserError:  # refused: the run's folder is left as it was (no log, no .hydra of this command)
                remove_added(Path(hydra_cfg.runtime.output_dir), (RUN_LOG,))
                raise
        if wants_launch(cfg.trainer) and processes > 1:  # each launched process runs launch.job.run_rank
            job_logging = OmegaConf.to_container(hydra_cfg.job_logging, resolve=True)
            metrics = run_launched(cfg, processes, job_logging, start)
        else:
            metrics = train_this_rank(cfg, start)
    except Interrupted as err:
        raise SystemExit(err.exit_code) from None  # a sweep launches no further job
    except Exception as caught:
        err = storage_error(caught, Path(hydra_cfg.runtime.output_dir)) or caught  # disk full: one message, the file
        err = memory_error(err, cfg.get("batch_size"), (cfg.get("data") or {}).get("eval_batch_size")) or err
        err = peer_error(err, Path(hydra_cfg.runtime.output_dir)) or err  # a DDP rank died: the others say so once
        log_to_file(f"{type(err).__name__}: {err}", err)
        record_early_failure(Path(hydra_cfg.runtime.output_dir), err)  # e.g. a bad config: the sweep summary sees it
        if multirun:
            folder = Path(hydra_cfg.runtime.output_dir)
            log.error("job %s failed (%s); the sweep goes on. Details: %s", folder.name, err, folder / FAILED_FILE)
            return math.nan
        if isinstance(err, UserError):
            print(f"error: {err}", file=sys.stderr)
        if isinstance(err, (UserError, RunDiverged)):
            raise SystemExit(getattr(err, "exit_code", EXIT_ERROR)) from None
        raise
    finally:
        gc.collect()  # a sweep runs its jobs in one process: free this job's data before the next
    return metrics.get(OPTIMIZED_METRIC, math.nan)
