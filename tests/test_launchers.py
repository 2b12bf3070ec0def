"""Hydra launchers: a joblib sweep (2 jobs at once) against the same sweep one job at a time; submitit_local."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from handgestures.analysis.report import build_report

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


def test_slurm_config_maps_the_trainer_to_nodes_and_tasks():
    cfg = compose_launcher("slurm", ["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                                     "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=240"])  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.handgestures_plugins.launchers.ResumingSlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.partition, launcher.timeout_min) == (2, 4, "gpu", 240)
    assert launcher.max_num_timeout > 0  # a timed-out job is requeued (and resumes)
    local = compose_launcher("slurm_local").hydra.launcher
    assert local._target_.endswith("ResumingLocalLauncher") and local.tasks_per_node == 1


def submitit_task_pids() -> list[int]:
    """Processes started by submitit's local executor (they carry SUBMITIT_LOCAL_JOB_ID)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"SUBMITIT_LOCAL_JOB_ID=" in environ and b"submitit.core._submit" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_submitit_local_job_preempted_is_requeued_and_resumes(tmp_path, tmp_path_factory):
    """The job gets submitit's preemption signal (USR2) after its first epoch: requeued with resume=, it finishes."""
    pytest.importorskip("submitit")
    sweep_dir = tmp_path / "sweep"
    args = ["hydra/launcher=slurm_local", "seed=0", "epochs=6", "data.builtin_size=240", "data.eval_batch_size=64",
            "trainer.limit_train_batches=2", "trainer.precision=32-true", "logger=none",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]  # fmt: skip
    cmd = [sys.executable, "train.py", "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = sweep_dir / "carlosnet-base-seed0-job0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    tasks = submitit_task_pids()
    assert last.exists() and len(tasks) == 1, (tasks, proc.poll())
    os.kill(tasks[0], signal.SIGUSR2)  # what SLURM sends before a preemption or the time limit
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-4000:]
    folder = last.parent.parent
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "done" and record["resumed_from"] == "checkpoints/last.ckpt"
    logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.*"))
    assert "Requeued job" in logs, logs[-3000:]
    epochs = [row.split(",")[0] for row in (folder / "epochs.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 7)]  # every epoch once: the resumed run continued the first
    assert len(list(sweep_dir.glob("carlosnet-*"))) == 1  # in the same folder
