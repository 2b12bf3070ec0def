"""Hydra launchers: a joblib sweep (2 jobs at once) against the same sweep one job at a time; submitit_local."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from handgestures.report import build_report

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the cluster extra is not installed")

TINY_SWEEP = [
    "seed=0,1", "epochs=1", "data.builtin_size=240", "data.eval_batch_size=64", "trainer.limit_train_batches=3",
    "trainer.precision=32-true", "logger=none", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]  # fmt: skip
TIMING = re.compile(r"seconds|per_second|_s$|time|folder|path|dir|checkpoint", re.IGNORECASE)


def multirun(args, sweep_dir, tmp_path_factory, **env):
    cmd = [sys.executable, "train.py", "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    full_env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), **env}
    full_env.pop("OMP_NUM_THREADS", None)  # as a user runs it: the thread policy decides
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=full_env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def report_without_timings(sweep_dir: Path, out_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Every CSV handgestures-report writes for ``sweep_dir``, without its timing and path columns."""
    build_report(sweep_dir, out_dir)
    tables = {}
    for path in sorted(out_dir.glob("*.csv")):
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        tables[path.name] = [{k: v for k, v in row.items() if not TIMING.search(k)} for row in rows]
    return tables


@pytest.fixture(scope="module")
def joblib_and_sequential(tmp_path_factory):
    parallel = tmp_path_factory.mktemp("joblib")
    out = multirun(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY_SWEEP], parallel, tmp_path_factory)
    # one job at a time, with the thread count each joblib job had, so both sweeps do the same arithmetic
    sequential = tmp_path_factory.mktemp("sequential")
    multirun(TINY_SWEEP, sequential, tmp_path_factory, HANDGESTURES_THREADS="1")
    return parallel, sequential, out


def test_joblib_runs_two_jobs_at_once_each_with_half_the_cores(joblib_and_sequential):
    parallel, _, out = joblib_and_sequential
    assert "Joblib.Parallel(n_jobs=2" in out.stdout + out.stderr
    logs = sorted(parallel.glob("*/train.log"))
    assert len(logs) == 2
    cores = len(os.sched_getaffinity(0))
    pids = set()
    for log in logs:
        text = log.read_text()
        assert f"threads: {max(1, cores // 2)} now" in text, text[:2000]
        pids.add(re.search(r"threads: \d+ now in process (\d+)", text)[1])
    assert len(pids) == 2  # two worker processes, not one after the other in the launcher's


def test_joblib_report_equals_the_one_job_at_a_time_report(joblib_and_sequential, tmp_path):
    parallel, sequential, _ = joblib_and_sequential
    joblib_tables = report_without_timings(parallel, tmp_path / "joblib")
    sequential_tables = report_without_timings(sequential, tmp_path / "sequential")
    runs = joblib_tables["runs.csv"]
    assert len(runs) == 2 and all(r.get("status") == "done" for r in runs), runs
    assert joblib_tables == sequential_tables


def compose_launcher(name: str, overrides: list[str] = ()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"hydra/launcher={name}", *overrides], return_hydra_config=True)
