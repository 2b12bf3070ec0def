"""The thread policy: what each setting chooses, and the busy-core probe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from handgestures.launch import threads


def test_policy_values_and_a_clear_error():
    assert threads.policy({}) == "auto"
    assert threads.policy({threads.ENV: "3"}) == "3"
    assert threads.policy({threads.ENV: "Torch"}) == "torch"
    with pytest.raises(ValueError, match="HANDGESTURES_THREADS='0'.*positive number"):
        threads.policy({threads.ENV: "0"})


def test_choices(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    busy = lambda: 3.2  # noqa: E731
    assert threads.choose(environ={}, probe=busy).threads == 5  # one thread per free core
    assert threads.choose(environ={}, probe=lambda: 7.9).threads == 1  # never fewer than one
    assert threads.choose(environ={}, probe=lambda: None).threads is None  # unknown load: torch's default
    assert threads.choose(jobs=3, environ={}, probe=busy).threads == 2  # a joblib sweep's share
    assert threads.choose(processes=2, environ={}, probe=busy).threads is None  # Lightning's, for DDP
    assert threads.choose(environ={threads.ENV: "4"}, probe=busy).threads == 4
    assert threads.choose(environ={threads.ENV: "torch"}, probe=busy).threads is None
    assert threads.choose(environ={"OMP_NUM_THREADS": "2", threads.ENV: "4"}, probe=busy).threads is None


def test_parallel_jobs_reads_joblibs_n_jobs(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 4)
    joblib = {"launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}}
    assert threads.parallel_jobs({"launcher": {**joblib["launcher"], "n_jobs": 2}}) == 2
    assert threads.parallel_jobs({"launcher": {**joblib["launcher"], "n_jobs": -1}}) == 4
    assert threads.parallel_jobs({"launcher": {"_target_": "hydra._internal.core_plugins.BasicLauncher"}}) == 1
    assert threads.parallel_jobs(None) == 1


def test_busy_core_probe_sees_a_spinning_process():
    if not hasattr(threads.os, "sched_getaffinity"):
        pytest.skip("no CPU affinity here")
    quiet = threads.busy_cores(0.3)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        threads.busy_cores(0.2)  # let it start
        busy = threads.busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and quiet is not None
    assert busy >= min(quiet + 0.5, threads.cores() - 0.2)  # one more core (or all of them) busy


def test_wait_policy_is_set_before_torch_only_when_configured(monkeypatch):
    env = {}
    monkeypatch.setattr(threads, "DEFAULT_WAIT_POLICY", "PASSIVE")
    threads.at_process_start(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.at_process_start(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's wins
    env = {threads.ENV: "torch"}
    threads.at_process_start(env)
    assert "OMP_WAIT_POLICY" not in env
