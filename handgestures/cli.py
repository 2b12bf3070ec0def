"""What the Hydra entry points share: run one job, and keep a sweep going past a failure."""

from __future__ import annotations

import gc
import json
import logging
import math
import time
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from handgestures import threads
from handgestures.distributed import check_launch, process_count
from handgestures.train import train

log = logging.getLogger(__name__)

OPTIMIZED_METRIC = "val/acc"
_jobs_run = 0  # a multirun sweep calls run_job once per job, in one process


def run_job(cfg: DictConfig, started_at: float | None = None) -> float:
    """Train with ``cfg``; returns the metric a sweeper optimises (validation accuracy)."""
    hydra_cfg = HydraConfig.get()
    check_launch(cfg, hydra_cfg.mode == RunMode.MULTIRUN)  # before anything is trained
    threads.apply_for_job(processes=process_count(cfg.trainer), hydra_cfg=hydra_cfg)
    with open_dict(cfg):
        cfg.run_info = {"model": hydra_cfg.runtime.choices.get("model"), "data": hydra_cfg.runtime.choices.get("data")}
    global _jobs_run
    # the process start only counts for the first job; later jobs of a sweep start now
    start = started_at if started_at is not None and _jobs_run == 0 else time.perf_counter()
    _jobs_run += 1
    try:
        metrics = train(cfg, start)
    except Exception as err:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            raise
        out_dir = Path(hydra_cfg.runtime.output_dir)
        (out_dir / "failed.json").write_text(
            json.dumps({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}, indent=2)
        )
        log.error("job %s failed (%s); the sweep goes on. Details: %s", out_dir.name, err, out_dir / "failed.json")
        return math.nan
    finally:
        gc.collect()  # a sweep runs its jobs in one process: free this job's data before the next
    return metrics.get(OPTIMIZED_METRIC, math.nan)
