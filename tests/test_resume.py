"""Resume after SIGKILL, SIGTERM and SIGINT: the resumed run equals the uninterrupted one, exactly.

Real `train.py` processes on tiny built-in data (augmented, so the augmentation generator
matters too), stopped by tests/kill_driver.py at a known batch, then resumed with
`python train.py resume=RUN_DIR`.
"""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

RUN = ["data=augmented", "epochs=3", "optimizer.lr=0.05", "trainer.precision=32-true", "data.builtin_size=240",
       "data.eval_batch_size=64", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]  # fmt: skip
TIMING = {"fit_seconds", "startup_seconds", "train_images_per_second", "eval_seconds", "wall_seconds", "resumed_from"}


def python(args, tmp_path_factory, driver=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}  # fmt: skip
    env.pop("HANDGESTURES_RUN_STAMP", None)
    cmd = [sys.executable, *(["tests/kill_driver.py", *driver] if driver else ["train.py"]), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def weights(run_dir, name="last.ckpt"):
    return torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=True)["state_dict"]


def comparable(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["best_checkpoint"] = os.path.basename(metrics["best_checkpoint"])
    return {k: v for k, v in metrics.items() if k not in TIMING}


def epochs_rows(run_dir):
    with (run_dir / "epochs.csv").open() as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    out = python([*RUN, f"hydra.run.dir={run_dir}"], tmp_path_factory)
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


def stop_then_resume(tmp_path_factory, name, first, second):
    """Stop a run with ``first`` (signal, epoch, batch), its resume with ``second``, then resume to the end."""
    run_dir = tmp_path_factory.mktemp(name) / "run"
    outs = [python([*RUN, f"hydra.run.dir={run_dir}"], tmp_path_factory, driver=first)]
    outs.append(python([f"resume={run_dir}"], tmp_path_factory, driver=second))
    outs.append(python([f"resume={run_dir}", "trainer.enable_progress_bar=false"], tmp_path_factory))
    return run_dir, outs


@pytest.fixture(scope="module")
def kill_mid_epoch_then_term(tmp_path_factory):
    return stop_then_resume(tmp_path_factory, "mid", ["KILL", "2", "3"], ["TERM", "3", "2"])


@pytest.fixture(scope="module")
def kill_at_boundary_then_int(tmp_path_factory):
    return stop_then_resume(tmp_path_factory, "boundary", ["KILL", "2", "1"], ["INT", "3", "4"])


@pytest.mark.parametrize("case", ["kill_mid_epoch_then_term", "kill_at_boundary_then_int"])
def test_resumed_run_equals_the_uninterrupted_one(case, uninterrupted, request):
    run_dir, outs = request.getfixturevalue(case)
    assert outs[0].returncode == -9  # SIGKILL: nothing of the run could react
    assert outs[1].returncode == (143 if "term" in case else 130), outs[1].stderr[-3000:]
    assert outs[2].returncode == 0, outs[2].stderr[-3000:]
    for name in ("last.ckpt", comparable(uninterrupted)["best_checkpoint"]):
        a, b = weights(uninterrupted, name), weights(run_dir, name)
        assert a.keys() == b.keys()
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert diff == 0.0, f"{name}: largest weight difference {diff}"
    assert comparable(run_dir) == comparable(uninterrupted)
    assert epochs_rows(run_dir) == epochs_rows(uninterrupted)  # every epoch once, same numbers
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == \
        sorted(p.name for p in (uninterrupted / "checkpoints").iterdir())  # no "-v1" copies  # fmt: skip


def test_signal_stop_records_interrupted_and_prints_the_resume_command(kill_mid_epoch_then_term):
    run_dir, outs = kill_mid_epoch_then_term
    stderr = outs[1].stderr
    assert f"python train.py resume={run_dir.resolve()}" in stderr
    assert "Traceback" not in stderr
    # what the interrupted attempt left, as the log of the final attempt shows it resumed from last.ckpt
    assert "resume: from" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "done"
    assert not (run_dir / "run.lock").exists()


def test_tensorboard_curves_have_every_epoch_once(kill_mid_epoch_then_term, uninterrupted):
    run_dir, _ = kill_mid_epoch_then_term
    curves = {}
    for folder in (run_dir, uninterrupted):
        curves[folder] = {}
        acc = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0})  # the run's one run
        acc.Reload()
        for tag in [t for t in acc.Tags()["scalars"] if t.startswith("curves/")]:
            curves[folder][tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    assert len(curves[run_dir]) == 4  # loss and accuracy of train and val
    assert [s for s, _ in curves[run_dir]["curves/loss/train"]] == [1, 2, 3]
    assert curves[run_dir] == curves[uninterrupted]
