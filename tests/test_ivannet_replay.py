"""scripts/ivannet_replay.py: an epoch replayed in the run's own settings is the original bit for bit; a changed setting changes it."""

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from helpers import ROOT, TINY

EVERY_EPOCH = [  # one checkpoint per epoch (3 steps), as scripts/ivannet_grid.sh keeps them
    "+callbacks.every_epoch._target_=lightning.pytorch.callbacks.ModelCheckpoint",
    "+callbacks.every_epoch.monitor=null", "+callbacks.every_epoch.save_top_k=-1",
    "+callbacks.every_epoch.every_n_train_steps=3", "+callbacks.every_epoch.filename='step{step}'",
    "+callbacks.every_epoch.auto_insert_metric_name=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("replay")
    out, env = base / "run", {**os.environ, "HANDGESTURES_CACHE": str(base / "cache"), "OMP_NUM_THREADS": "1"}
    args = [*TINY, "epochs=2", "trainer.limit_train_batches=3", "trainer.precision=32-true", *EVERY_EPOCH,
            f"+callbacks.every_epoch.dirpath={out}/checkpoints/epochs", f"hydra.run.dir={out}"]  # fmt: skip
    subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return out, env


def replay(run, *extra):
    out, env = run
    cmd = [sys.executable, "scripts/ivannet_replay.py", str(out), "--epoch", "2", "--steps-per-epoch", "3", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def test_an_epoch_replayed_as_it_ran_is_identical_and_writes_its_steps(run, tmp_path):
    done = replay(run, "--out", str(tmp_path / "same"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["identical"] is True and result["replay_precision"] == "32-true" and result["settings"] == []
    assert result["replayed"]["train/loss"] == result["original"]["train/loss"]
    steps = list(csv.DictReader((tmp_path / "same" / "steps.csv").open()))
    assert [(r["epoch"], r["step"]) for r in steps] == [("2", "4"), ("2", "5"), ("2", "6")]


def test_a_setting_changed_by_set_changes_the_epoch(run, tmp_path):
    done = replay(run, "--set", "trainer.gradient_clip_val=1e-6", "--out", str(tmp_path / "clipped"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["settings"] == ["trainer.gradient_clip_val=1e-6"] and result["identical"] is False
    assert result["replayed"]["train/loss"] != result["original"]["train/loss"]
    assert yaml.safe_load((tmp_path / "clipped" / "config.yaml").read_text())["trainer"]["gradient_clip_val"] == 1e-6
    steps = list(csv.DictReader((tmp_path / "clipped" / "steps.csv").open()))
    assert all(float(r["grad_norm/out"]) > 1e-6 for r in steps)  # the norms before clipping: every step was clipped


def test_a_bad_setting_names_itself(run, tmp_path):
    for bad, said in (
        ("trainer.gradient_clip_val", "expected KEY=VALUE"),
        ("nosuch.section.key=1", "no section 'nosuch'"),
    ):
        done = replay(run, "--set", bad, "--out", str(tmp_path / "bad"))
        assert done.returncode != 0 and said in done.stderr and bad in done.stderr


def test_replay_steps_finds_the_cascade_and_counts_the_large_steps(run, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("replay_steps", ROOT / "scripts" / "replay_steps.py")
    steps_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps_module)
    assert steps_module.longest_run([1, 30, 2, 25, 40, 90, 3], 20) == (3, 3)
    assert steps_module.longest_run([1, 2], 20) == (0, 0)
    assert steps_module.total_norms([{"loss": "1", "grad_norm/a": "3", "grad_norm/b": "4"}]) == [5.0]
    done = replay(run, "--out", str(tmp_path / "same"))
    assert done.returncode == 0, done.stderr[-2000:]
    over = 1e-9  # every step of the tiny run is above it: one run of 3 steps
    summary = steps_module.summary(tmp_path / "same", over)
    assert summary["steps"] == 3 and summary["steps_over"] == 3 and len(summary["cascade"]) == 3
    assert summary["epoch"] == 2 and summary["gradient_clip_val"] is None and summary["precision"] == "32-true"
    assert summary["grad_norm_max"] >= summary["grad_norm_p90"] >= summary["grad_norm_median"] > 0
