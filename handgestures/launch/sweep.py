"""The end of a sweep: a summary of its failed jobs, and a non-zero exit when there are any.

It reads the job folders, not the launcher's return values, so it works with any launcher
(the basic one, joblib, submitit): a job failed when its folder holds failed.json (newer
than its metrics.json) or a metrics.json whose status says it stopped early.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from handgestures.runfolder import record as rr


def failed_jobs(sweep_dir: Path) -> list[tuple[Path, str]]:
    """(folder, first line of the error) of every failed job under ``sweep_dir``."""
    failed = []
    for folder in sorted(p for p in sweep_dir.iterdir() if p.is_dir()) if sweep_dir.is_dir() else []:
        metrics, failure = folder / rr.METRICS_FILE, folder / rr.FAILED_FILE
        info = rr.read_json(metrics) if metrics.is_file() else {}
        if failure.is_file() and not (info and metrics.stat().st_mtime_ns > failure.stat().st_mtime_ns):
            error = " ".join(str(rr.read_json(failure).get("error", "")).split())
            failed.append((folder, error or "unknown error"))
        elif info.get(rr.KEY_STATUS) in rr.STOPPED_STATUSES:
            failed.append((folder, f"{info[rr.KEY_STATUS]}: {' '.join(str(info.get(rr.KEY_ERROR, '')).split())}"))
    return failed


def summary(sweep_dir: Path) -> str | None:
    failed = failed_jobs(sweep_dir)
    if not failed:
        return None
    jobs = sum(1 for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())
    lines = [f"{len(failed)} of {jobs} jobs of the sweep failed ({sweep_dir}):"]
    lines += [f"  {folder.name}: {error}" for folder, error in failed]
    return "\n".join(lines)


class FailedJobsSummary(Callback):
    """Hydra callback: after the last job, prints the failed jobs and exits with status 1."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        text = summary(Path(str(config.hydra.sweep.dir)))
        if text is not None:
            print("\n" + text, file=sys.stderr)
            raise SystemExit(rr.EXIT_ERROR)
