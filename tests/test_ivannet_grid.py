"""scripts/ivannet_grid.sh: the queue's commands, its skip/resume rules, and an exit status that tells failure.

A fake ``python`` on PATH stands in for ``train.py``: it records its arguments and exits with the
status the test gives it, so the queue logic is checked without training anything.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "scripts" / "ivannet_grid.sh"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a bash script")

FAKE = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "{log}"
exit {rc}
"""


def run_grid(tmp_path: Path, rc: int, *specs: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    fake = bin_dir / "python"
    fake.write_text(FAKE.format(log=log, rc=rc))
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(GRID), str(tmp_path / "data"), str(tmp_path / "out"), *specs],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    calls = log.read_text().splitlines() if log.is_file() else []
    return proc, calls


def test_a_failed_run_makes_the_queue_exit_1_and_names_it(tmp_path):
    proc, calls = run_grid(tmp_path, 3, "0:32-true:grouped", "1:bf16-mixed:random:base")
    assert proc.returncode == 1, proc.stderr
    assert len(calls) == 2  # the queue went on after the first failure
    assert "2 of 2 runs failed" in proc.stderr
    assert "ivannet-augmented-grouped-seed0-32-true (exit 3)" in proc.stderr
    assert "ivannet-base-random-seed1-bf16-mixed (exit 3)" in proc.stderr


def test_a_queue_that_succeeds_exits_0_and_passes_each_spec_to_train(tmp_path):
    proc, calls = run_grid(tmp_path, 0, "2:32-true:grouped:augmented:sgd_clipped")
    assert proc.returncode == 0, proc.stderr
    (call,) = calls
    args = call.split()
    assert args[0] == "train.py"
    for expected in ("model=ivannet", "data=augmented", "optimizer=sgd_clipped", "seed=2",
                     "trainer.precision=32-true", "data.split=grouped"):  # fmt: skip
        assert expected in args
    assert f"hydra.run.dir={tmp_path / 'out' / 'ivannet-augmented-grouped-seed2-32-true-sgd_clipped'}" in args


def test_a_finished_run_is_skipped_and_a_started_one_resumed(tmp_path):
    out = tmp_path / "out"
    done = out / "ivannet-augmented-random-seed0-32-true"
    started = out / "ivannet-augmented-random-seed1-32-true"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"status": "done"}, indent=1))
    started.mkdir()
    (started / "config.yaml").write_text("seed: 1\n")
    proc, calls = run_grid(tmp_path, 0, "0:32-true:random", "1:32-true:random")
    assert proc.returncode == 0, proc.stderr
    assert "done, skipped" in proc.stdout
    assert calls == [f"train.py resume={started} trainer.enable_progress_bar=false"]
