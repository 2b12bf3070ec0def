"""The run's lifecycle: divergence, collapse, folders that hold results, locks, refused resumes, unsafe checkpoints."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY, compose_train
from omegaconf import OmegaConf

from handgestures.errors import UserError
from handgestures.runfolder.lifecycle import RunLock, prepare_folder
from handgestures.runfolder.resume import prepare_resume, resumed_config, safe_load
from handgestures.training.guards import CollapseWatch, RunDiverged, mark_last_checkpoint
from handgestures.training.module import HandGestureClassifier
from handgestures.training.train import train

QUICK = [*TINY, "logger=none", "trainer.precision=32-true"]


def python(args, tmp_path, driver=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HANDGESTURES_CACHE": str(tmp_path / "cache")}
    env.pop("HANDGESTURES_RUN_STAMP", None)
    cmd = [sys.executable, *(["tests/kill_driver.py", *driver] if driver else ["train.py"]), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def strict_json(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds bare {c}"))


# ---- non-finite loss --------------------------------------------------------------------
def test_nan_loss_stops_at_its_batch_and_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    step = HandGestureClassifier.training_step

    def nan_at_epoch2_batch3(self, batch, batch_idx):
        loss = step(self, batch, batch_idx)
        return loss * math.nan if (self.current_epoch, batch_idx) == (1, 2) else loss

    monkeypatch.setattr(HandGestureClassifier, "training_step", nan_at_epoch2_batch3)
    cfg = compose_train([*QUICK, "epochs=3"], tmp_path)
    with pytest.raises(RunDiverged) as err:
        train(cfg)
    assert (err.value.epoch, err.value.batch) == (2, 3)
    assert "epoch 2, batch 3" in str(err.value)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0  # epoch 1's checkpoint, nothing of epoch 2 saved
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert len((tmp_path / "epochs.csv").read_text().splitlines()) == 2  # header + epoch 1


def test_lr_1e20_ends_diverged_exit_1_strict_json(tmp_path):
    run_dir = tmp_path / "run"
    out = python([*QUICK, "epochs=2", "optimizer.lr=1e20", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "training diverged" in out.stderr and "epoch 1, batch" in out.stderr
    assert "Traceback" not in out.stderr
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics["status"] == "diverged" and metrics["divergence"]["epoch"] == 1
    assert metrics["divergence"]["batch"] >= 2 and metrics["epochs_run"] == 0


# ---- collapse -----------------------------------------------------------------------------
def study_like_sequence():
    """IvanNet augmented on the real images: 1.0 at epoch 26, chance at 29, 0.648 at 30."""
    values = [0.3 + 0.7 * e / 26 for e in range(1, 27)] + [0.9, 0.5, 1 / 6, 0.648]
    return values[:30]


def test_collapse_is_recorded_with_epoch_before_and_after(caplog):
    watch = CollapseWatch(num_classes=6)
    for epoch, value in enumerate(study_like_sequence(), 1):
        watch.update(epoch, value)
    record = watch.record()
    assert (record["epoch"], record["best_epoch"], record["before"], record["after"]) == (29, 26, 1.0, 1 / 6)
    assert record["last"] == 0.648 and not watch.last_usable
    assert "collapsed at epoch 29" in caplog.text


@pytest.mark.parametrize("values, collapsed, usable", [
    ([0.2, 0.17, 0.18, 0.2], False, True),      # never learned: chance all along is no collapse
    ([0.6, 0.9, 0.95, 0.96], False, True),      # a normal run
    ([0.6, 0.95, 0.2, 0.94], True, True),       # fell, then came back within the tolerance
    ([0.6, 0.95, 0.2, 0.5], True, False),       # fell and ended far below its best
    ([0.6, 0.95, 0.9, 0.7], False, True),       # a fall that stays far above chance is not a collapse
])  # fmt: skip
def test_collapse_thresholds(values, collapsed, usable):
    watch = CollapseWatch(num_classes=6, min_best=0.5, chance_margin=0.1, last_tolerance=0.05)
    for epoch, value in enumerate(values, 1):
        watch.update(epoch, value)
    assert (watch.record() is not None, watch.last_usable) == (collapsed, usable)


def test_last_checkpoint_note_names_the_last_fall_not_the_first(tmp_path):
    """An early fall at the plateau's exit, then the one that matters: the note beside last.ckpt names the latter."""
    watch = CollapseWatch(num_classes=6, min_best=0.5, chance_margin=0.1, last_tolerance=0.05)
    for epoch, value in enumerate([0.24, 0.51, 0.17, 0.53, 0.9, 1.0, 0.17, 0.17, 0.6, 0.8], 1):
        watch.update(epoch, value)
    note = mark_last_checkpoint(tmp_path, watch).read_text()
    assert (
        "collapsed at epoch 7 (1.0000 at epoch 6 -> 0.1700; it had been near chance before, first at epoch 3)" in note
    )
    assert "the last epoch (10) ended at 0.8000, more than 0.05 below the best 1.0000" in note
    watch.update(11, 0.99)  # back within the tolerance: the note goes
    assert mark_last_checkpoint(tmp_path, watch) is None and not list((tmp_path / "checkpoints").glob("*.txt"))


def test_collapse_in_a_run_marks_last_checkpoint(tmp_path, caplog):
    """Thresholds set so the second epoch counts as a collapse: the run records it and marks last.ckpt."""
    cfg = compose_train([*QUICK, "epochs=2", "guards.collapse.min_best=0", "guards.collapse.chance_margin=1",
                         "guards.collapse.last_tolerance=-1"], tmp_path)  # fmt: skip
    train(cfg)
    metrics = strict_json(tmp_path / "metrics.json")
    assert metrics["collapse"]["epoch"] == 2 and metrics["collapse"]["best_epoch"] == 1
    rows = (tmp_path / "epochs.csv").read_text().splitlines()
    assert metrics["collapse"]["after"] == pytest.approx(float(rows[2].split(",")[5]))
    assert metrics["last_checkpoint_usable"] is False and metrics["status"] == "done"
    note = (tmp_path / "checkpoints" / "LAST_CHECKPOINT_NOT_FOR_USE.txt").read_text()
    assert "last.ckpt is not the model to use" in note and "collapsed at epoch 2" in note
    assert "validation accuracy collapsed at epoch 2" in caplog.text and "optimizer=sgd_clipped" in caplog.text


# ---- run folders --------------------------------------------------------------------------
def test_folder_with_results_is_refused_and_left_untouched(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"status": "done"}')
    before = (run_dir / "metrics.json").stat().st_mtime_ns
    out = python([*QUICK, f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 1
    assert f"{run_dir} already holds the results of a finished run (metrics.json)" in out.stderr
    assert "overwrite=true" in out.stderr and "resume=" not in out.stderr and "Traceback" not in out.stderr
    assert (run_dir / "metrics.json").stat().st_mtime_ns == before and not (run_dir / "failed.json").exists()


def test_overwrite_deletes_old_results_so_a_failed_rerun_leaves_no_old_metrics(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.json").write_text('{"status": "done", "metrics": {"test/acc": 0.99}}')
    (run_dir / "checkpoints" / "best-epoch009-val_acc0.9900.ckpt").write_bytes(b"old")
    out = python([*QUICK, "overwrite=true", "epochs=1", "optimizer.lr=1e20", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 1  # the rerun diverged in its first epoch
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics["status"] == "diverged" and "metrics" not in metrics  # the new record only
    assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").iterdir())


def test_overwrite_then_a_data_failure_leaves_no_old_results(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.json").write_text('{"status": "done", "metrics": {"test/acc": 0.99}}')
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"old")
    no_images = tmp_path / "no_images"  # passes the config checks, fails while loading
    no_images.mkdir()
    out = python([*QUICK, "overwrite=true", f"data.root={no_images}", f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 1
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()
    assert str(no_images) in strict_json(run_dir / "failed.json")["error"]


def test_prepare_folder_rules(tmp_path):
    prepare_folder(tmp_path, resume=False, overwrite=False)  # empty: fine
    (tmp_path / "epochs.csv").write_text("epoch\n1\n")
    with pytest.raises(UserError, match=r"results of a run \(epochs.csv\). Resume it with `python train.py resume="):
        prepare_folder(tmp_path, resume=False, overwrite=False)  # an unfinished run: resuming it is suggested
    prepare_folder(tmp_path, resume=True, overwrite=False)  # a resume continues it
    assert (tmp_path / "epochs.csv").exists()


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken(tmp_path):
    (tmp_path / "run.lock").write_text(str(os.getppid()))  # a live process other than this one
    with pytest.raises(UserError, match=f"in use by process {os.getppid()}"), RunLock(tmp_path):
        pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run.lock").write_text(dead.stdout.strip())  # a killed run's lock
    with RunLock(tmp_path):
        assert (tmp_path / "run.lock").read_text() == str(os.getpid())
    assert not (tmp_path / "run.lock").exists()


# ---- resume refusals ----------------------------------------------------------------------
@pytest.fixture
def saved_run(tmp_path):
    """A run folder as train.py leaves it before its first checkpoint: config.yaml only."""
    cfg = compose_train([*QUICK, "model=carlosnet", "epochs=3"], tmp_path / "run")
    (tmp_path / "run").mkdir()
    OmegaConf.save(cfg, tmp_path / "run" / "config.yaml", resolve=True)
    return tmp_path / "run"


def test_resume_refuses_overrides_that_change_the_result(saved_run):
    composed = compose_train(["model=ivannet", "optimizer.lr=0.5", "trainer.max_time=00:01:00:00"], saved_run)
    overrides = ["model=ivannet", "optimizer.lr=0.5", "trainer.max_time=00:01:00:00", f"resume={saved_run}"]
    with pytest.raises(UserError) as err:
        resumed_config(composed, overrides, saved_run)
    message = str(err.value)
    assert "model=ivannet" in message and "optimizer.lr=0.5: optimizer.lr is 0.01" in message
    assert "max_time" not in message.split("Allowed")[0]  # allowed, so not among the refused


def test_resume_takes_the_saved_config_and_allowed_overrides(saved_run):
    composed = compose_train(["trainer.max_time=00:01:00:00", "optimizer.lr=0.01"], saved_run)
    cfg = resumed_config(composed, ["trainer.max_time=00:01:00:00", "optimizer.lr=0.01"], saved_run)
    assert cfg.epochs == 3 and cfg.trainer.max_time == "00:01:00:00" and cfg.resume == str(saved_run)


def test_resume_refuses_a_done_run_and_a_missing_folder(saved_run, tmp_path):
    (saved_run / "metrics.json").write_text('{"status": "done"}')
    with pytest.raises(UserError, match="already done"):
        resumed_config(compose_train([], saved_run), [], saved_run)
    with pytest.raises(UserError, match="no such run folder"):
        resumed_config(compose_train([], saved_run), [], tmp_path / "nowhere")


# ---- safe loading -------------------------------------------------------------------------
class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "state_dict": {}, "payload": Evil(marker)}, path)
    return path


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UserError, match="refusing to load checkpoint .*evil.ckpt"):
        safe_load(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the same file under plain pickle runs its code:
    assert marker.exists()  # so the test above would have seen it


def test_resume_from_an_unsafe_last_ckpt_executes_nothing(saved_run, tmp_path):
    marker = tmp_path / "pwned"
    evil_checkpoint(saved_run / "checkpoints" / "last.ckpt", marker)
    cfg = OmegaConf.load(saved_run / "config.yaml")
    cfg.resume = str(saved_run)
    with pytest.raises(UserError, match=r"no checkpoint in .* can be loaded \(last.ckpt\).*nothing was deleted"):
        prepare_resume(cfg, saved_run)
    out = python([f"resume={saved_run}"], tmp_path)
    assert out.returncode == 1 and "can be loaded" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists() and (saved_run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_resume_without_a_usable_last_ckpt_continues_from_the_best_and_keeps_it(tiny_run, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()  # as if killed after its last epoch's checkpoints
    last = run / "checkpoints" / "last.ckpt"
    if damage == "missing":
        last.unlink()
    else:
        last.write_bytes(last.read_bytes()[:1000])
    best = sorted((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.resume = str(run)
    assert prepare_resume(cfg, run) == str(best[0])
    assert best[0].is_file(), "the best checkpoint of a finished epoch was deleted"


# ---- signals in a sweep -------------------------------------------------------------------
def test_a_signal_stops_the_sweep_no_further_job(tmp_path):
    sweep = tmp_path / "sweep"
    out = python(
        ["-m", *QUICK, "epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}"], tmp_path, driver=["TERM", "1", "2"]
    )
    assert out.returncode == 143, out.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 1 and "seed0" in jobs[0]
    assert strict_json(sweep / jobs[0] / "metrics.json")["status"] == "interrupted"
