"""DDP on the CPU (gloo, 2 processes): every image evaluated once, one run folder written by rank 0.

Two real launches on tiny data: Lightning's own (`python train.py trainer=ddp`) and torchrun's
(`torchrun --nproc_per_node=2 train.py trainer=ddp`), the second from an empty working folder
so that its default, time-stamped run folder is used. Both are compared with a single-process
evaluation of the same best checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import ROOT, compose_train
from hypothesis import given
from hypothesis import strategies as st
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import BatchSampler, SequentialSampler

from handgestures.data.samplers import DistributedTrainBatches, UnpaddedDistributedBatchSampler
from handgestures.launch.ranks import check_launch, global_rank, process_count, torchrun_overrides
from handgestures.training.train import build_run

# 240 built-in images: val and test have 36 each, 3 batches of 16: a padded sampler would
# give rank 1 a repeated batch
TINY_DDP = [
    "data.builtin_size=240", "data.eval_batch_size=16", "epochs=1", "trainer.limit_train_batches=2",
    "trainer.accelerator=cpu", "trainer.precision=32-true", "logger=none", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]  # fmt: skip
TORCHRUN = Path(sys.executable).with_name("torchrun")


def run(cmd, cwd, tmp_path_factory, timeout=300, **extra_env):
    env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), "PYTHONPATH": str(ROOT),
           **extra_env}  # fmt: skip
    env.pop("OMP_NUM_THREADS", None)  # as a user runs it: the launchers choose the threads
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def lightning_ddp(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    run([sys.executable, "train.py", "trainer=ddp", "trainer.devices=2", *TINY_DDP, f"hydra.run.dir={run_dir}"],
        ROOT, tmp_path_factory)  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def torchrun_ddp(tmp_path_factory):
    if not TORCHRUN.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    cwd = tmp_path_factory.mktemp("torchrun")
    (cwd / "tmp").mkdir()
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(ROOT / "train.py"), "trainer=ddp", *TINY_DDP]
    out = run(cmd, cwd, tmp_path_factory, TMPDIR=str(cwd / "tmp"))  # rank 1's scratch folder goes there
    return cwd, out


def single_process_eval(run_dir: Path, tmp_path: Path) -> tuple[dict, dict, float]:
    """The cross-evaluation and validation of ``run_dir``'s best checkpoint in this process."""
    best = run_dir / json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]  # relative to the run
    cfg = compose_train([*TINY_DDP, "trainer.devices=1"], tmp_path)
    datamodule, module, trainer = build_run(cfg)
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    confusion = {k: v.tolist() for k, v in module.confusion.items()}
    trainer.validate(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=False)
    return metrics, confusion, float(trainer.callback_metrics["val/acc"])


def assert_same_as_single_process(run_dir: Path, tmp_path: Path) -> dict:
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "done"
    metrics, confusion, val_acc = single_process_eval(run_dir, tmp_path)
    assert set(record["metrics"]) == set(metrics), (sorted(record["metrics"]), sorted(metrics))
    for key, value in record["metrics"].items():
        assert value == pytest.approx(metrics[key], abs=1e-6), key
    assert record["confusion"] == confusion  # every count, not only the accuracies
    assert record["best_val_acc"] == pytest.approx(val_acc, abs=1e-7)
    sizes = {"train": 168, "val": 36, "test": 36}
    for name, matrix in record["confusion"].items():  # each image exactly once over both ranks
        assert sum(map(sum, matrix)) == sizes[name.removesuffix("_aug")], name
    return record


def test_lightning_ddp_equals_single_process_evaluation(lightning_ddp, tmp_path):
    assert_same_as_single_process(lightning_ddp, tmp_path)


def test_lightning_ddp_writes_the_run_folder_once(lightning_ddp):
    assert (lightning_ddp / "train_ddp_process_1.log").is_file()  # a second process trained...
    assert "split sizes" in (lightning_ddp / "train_ddp_process_1.log").read_text()
    checkpoints = sorted(p.name for p in (lightning_ddp / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[0].startswith("best-") and checkpoints[1] == "last.ckpt"
    epochs = (lightning_ddp / "epochs.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in epochs] == ["epoch", "1"]  # one row per epoch, not per rank
    assert not (lightning_ddp / "run.lock").exists()


def test_torchrun_writes_one_run_folder_with_the_same_numbers(torchrun_ddp, lightning_ddp, tmp_path):
    cwd, out = torchrun_ddp
    runs = list((cwd / "outputs" / "runs").iterdir())
    assert len(runs) == 1, [p.name for p in runs]  # rank 1 wrote no folder of its own
    assert re.search(r"rank 1 follows rank 0 .*handgestures-rank1-", out.stdout + out.stderr)  # a scratch folder...
    assert not list((cwd / "tmp").glob("handgestures-rank*"))  # ...which is gone
    record = assert_same_as_single_process(runs[0], tmp_path)
    # the same seed and configuration, launched by torchrun or by Lightning: the same run...
    assert record["metrics"] == json.loads((lightning_ddp / "metrics.json").read_text())["metrics"]
    # ...and the same files, but for the log of Lightning's second process (torchrun's went to its console)
    files = {p.relative_to(runs[0]).as_posix() for p in runs[0].rglob("*") if ".hydra" not in p.parts}
    lightning_files = {
        p.relative_to(lightning_ddp).as_posix() for p in lightning_ddp.rglob("*") if ".hydra" not in p.parts
    }
    assert files == lightning_files - {"train_ddp_process_1.log"}
    assert (runs[0] / "epochs.csv").read_text().count("\n") == 2


@pytest.fixture(scope="module")
def launch_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("launch") / "sweep"
    cmd = [sys.executable, "train.py", "-m", "trainer=ddp_launch", "seed=0,1", *TINY_DDP, f"hydra.sweep.dir={sweep}"]
    out = run(cmd, ROOT, tmp_path_factory)
    return sweep, out


def test_ddp_launch_multirun_gives_lightning_ddps_run_for_each_job(launch_sweep, lightning_ddp, tmp_path):
    sweep, out = launch_sweep
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2, [p.name for p in jobs]
    assert "ddp_launch: starting 2 processes" in (jobs[0] / "train.log").read_text()
    record = assert_same_as_single_process(jobs[0], tmp_path)  # every image once over the 2 ranks
    # seed 0 launched by the job, or by Lightning's ddp: the same numbers and the same files
    assert record["metrics"] == json.loads((lightning_ddp / "metrics.json").read_text())["metrics"]
    files = {p.relative_to(jobs[0]).as_posix() for p in jobs[0].rglob("*") if ".hydra" not in p.parts}
    assert files == {
        p.relative_to(lightning_ddp).as_posix() for p in lightning_ddp.rglob("*") if ".hydra" not in p.parts
    }
    second = json.loads((jobs[1] / "metrics.json").read_text())
    assert second["status"] == "done" and second["seed"] == 1 and second["metrics"] != record["metrics"]
    assert "sync_dist" not in out.stdout + out.stderr  # the values are reduced already: no advice printed


def launch_and_signal(run_dir, tmp_path_factory, ready, within_s):
    """Starts a 30-epoch ddp_launch run, sends SIGTERM once ``ready()`` holds; its return code and output."""
    env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "train.py", "trainer=ddp_launch", *TINY_DDP, "epochs=30", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + within_s  # a loaded 2-core machine starts slowly
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, f"not ready: exit {proc.poll()}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=300)  # the batch and the records take a while
    finally:
        proc.kill()
    return proc.returncode, output


def lines_in(path):
    return path.read_text().count("\n") if path.is_file() else 0


def test_ddp_launch_stops_on_sigterm_and_resumes(tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    returncode, output = launch_and_signal(run_dir, tmp_path_factory, lambda: lines_in(run_dir / "epochs.csv") >= 2,
                                           within_s=480)  # fmt: skip
    assert returncode == 143, output[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "interrupted" and 1 <= record["epochs_run"] < 30, record
    assert f"resume={run_dir}" in output and "Traceback" not in output
    assert not list(run_dir.glob("*.lock"))
    out = run([sys.executable, "train.py", f"resume={run_dir}"], ROOT, tmp_path_factory)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "done" and record["epochs_run"] == 30, out.stdout[-2000:]
    epochs = [row.split(",")[0] for row in (run_dir / "epochs.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 31)]  # each epoch once


def test_a_signal_while_the_processes_start_is_recorded_or_said_by_the_launcher(tmp_path, tmp_path_factory):
    run_dir, log = tmp_path / "run", tmp_path / "run" / "train.log"
    returncode, output = launch_and_signal(  # the processes are importing, not yet training
        run_dir, tmp_path_factory, lambda: log.is_file() and "ddp_launch: starting" in log.read_text(), within_s=240
    )
    assert returncode == 143 and "Traceback" not in output, output[-3000:]
    metrics = run_dir / "metrics.json"
    if metrics.is_file():  # rank 0 (or the launcher, for it) recorded the stop: resumable
        record = json.loads(metrics.read_text())
        assert record["status"] == "interrupted" and record["exit_code"] == 143, record
        assert f"resume={run_dir}" in output
    else:
        assert "nothing was kept" in output and "Start it again with the same command" in output, output[-3000:]
    assert not list(run_dir.glob("*.lock"))


def test_the_launcher_records_a_stop_rank_zero_could_not(tmp_path, capsys):
    from omegaconf import OmegaConf

    from handgestures.errors import Interrupted
    from handgestures.launch.ddp import record_unrecorded_stop

    cfg = OmegaConf.create({"seed": 3, "model": {"_target_": "x.IvanNet"}, "data": {"augment_train": True},
                            "run_info": {"model": "ivannet", "data": "augmented"}})  # fmt: skip
    bare = tmp_path / "bare"
    bare.mkdir()
    err = record_unrecorded_stop(bare, cfg, Interrupted(signal.SIGTERM))
    assert err.exit_code == 143 and not (bare / "metrics.json").exists()
    assert "nothing was kept" in capsys.readouterr().err
    started = tmp_path / "started"  # rank 0 wrote its config, then the signal came before its handlers
    started.mkdir()
    (started / "config.yaml").write_text("seed: 3\n")
    err = record_unrecorded_stop(started, cfg, Interrupted(signal.SIGINT))
    record = json.loads((started / "metrics.json").read_text())
    assert err.exit_code == 130 and record["status"] == "interrupted" and record["epochs_run"] == 0
    assert (record["model"], record["data"], record["seed"]) == ("ivannet", "augmented", 3)
    assert f"resume={started.resolve()}" in capsys.readouterr().err
    recorded = json.loads((started / "metrics.json").read_text())
    record_unrecorded_stop(started, cfg, Interrupted(signal.SIGTERM))  # rank 0's own record is left as it is
    assert json.loads((started / "metrics.json").read_text()) == recorded and capsys.readouterr().err == ""


def test_multirun_with_inprocess_ddp_is_refused_before_training(tmp_path, tmp_path_factory):
    cmd = [sys.executable, "train.py", "-m", "trainer=ddp", "seed=0,1", *TINY_DDP, f"hydra.sweep.dir={tmp_path}"]
    env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode != 0
    assert "a multirun cannot start DDP processes itself" in out.stderr and "torchrun" in out.stderr
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("*.ckpt"))
    assert "#1 : " not in out.stdout + out.stderr  # the second job never started


def test_refusals_spare_single_runs_external_launchers_and_one_process():
    cfg = {"trainer": {"devices": 2, "num_nodes": 1, "accelerator": "cpu"}}
    check_launch(cfg, multirun=False, environ={})
    check_launch(cfg, multirun=True, environ={"SLURM_NTASKS": "2"})
    check_launch({"trainer": {"devices": 1}}, multirun=True, environ={})
    with pytest.raises(SystemExit, match="trainer.devices=2"):
        check_launch(cfg, multirun=True, environ={})
    with pytest.raises(SystemExit, match="multirun cannot start DDP"):  # a sweep per torchrun rank: untested, refused
        check_launch(cfg, multirun=True, environ={"TORCHELASTIC_RUN_ID": "x"})
    for strategy in ("ddp_launch", "ddp_spawn"):  # handgestures.launch.ddp re-runs no command line
        check_launch({"trainer": {**cfg["trainer"], "strategy": strategy}}, multirun=True, environ={})
    assert process_count({"devices": [0, 1], "num_nodes": 2}) == 4
    assert process_count({"devices": "3"}) == 3


def test_rank_from_each_launcher_environment():
    assert global_rank({}) == 0
    assert global_rank({"RANK": "0", "LOCAL_RANK": "0"}) == 0
    assert global_rank({"RANK": "1"}) == 1
    assert global_rank({"NODE_RANK": "1", "LOCAL_RANK": "0"}) != 0  # Lightning's launcher, second node
    assert global_rank({"LOCAL_RANK": "1"}) == 1
    assert global_rank({"SLURM_PROCID": "3"}) == 3


def test_torchrun_overrides_only_for_ranks_above_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert torchrun_overrides([], {"TORCHELASTIC_RUN_ID": "a", "RANK": "0"}) == []
    assert torchrun_overrides([], {"RANK": "1"}) == []  # not torchrun
    extra = torchrun_overrides(["hydra.run.dir=x"], {"TORCHELASTIC_RUN_ID": "a", "RANK": "1"})
    assert extra == ["hydra.output_subdir=null", "hydra/job_logging=stdout"]  # the user's folder is shared
    extra = torchrun_overrides([], {"TORCHELASTIC_RUN_ID": "a", "RANK": "1"})
    scratch = extra[-1].split("=", 1)[1]
    assert Path(scratch).parent == tmp_path and f"hydra.run.dir={scratch}" in extra
    shutil.rmtree(scratch)


def eval_indices(sampler) -> list[int]:
    return [int(i) for batch in sampler for i in batch]


@given(length=st.integers(0, 300), batch=st.integers(1, 64), replicas=st.integers(1, 5))
def test_unpadded_sampler_gives_every_index_once(length, batch, replicas):
    samplers = [UnpaddedDistributedBatchSampler(length, batch, replicas, r) for r in range(replicas)]
    seen = [i for s in samplers for i in eval_indices(s)]
    assert sorted(seen) == list(range(length))
    for s in samplers:
        batches = list(s)
        assert len(batches) == len(s) and all(0 < len(b) <= batch for b in batches)


@given(batches=st.integers(0, 20), replicas=st.integers(1, 4))
def test_train_batches_split_evenly_and_cover_the_epoch(batches, replicas):
    epoch = BatchSampler(SequentialSampler(range(batches * 3)), 3, drop_last=False)
    shares = [list(DistributedTrainBatches(epoch, replicas, r)) for r in range(replicas)]
    assert len({len(s) for s in shares}) == 1  # the same number of steps on every rank
    assert sorted({i for s in shares for b in s for i in b}) == list(range(batches * 3))


def test_lightnings_padded_default_would_count_images_twice():
    """What the unpadded sampler avoids: Lightning's wrapper repeats a batch of the 36-image val split."""
    plain = BatchSampler(SequentialSampler(range(36)), 16, drop_last=False)
    padded = [eval_indices(DistributedSamplerWrapper(plain, num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert len(padded[0]) + len(padded[1]) > 36
    ours = [eval_indices(UnpaddedDistributedBatchSampler(36, 16, 2, r)) for r in (0, 1)]
    assert sorted(ours[0] + ours[1]) == list(range(36))


def test_datamodule_uses_the_unpadded_sampler_under_ddp(tmp_path):
    cfg = compose_train(TINY_DDP, tmp_path)
    datamodule, _, _ = build_run(cfg)
    datamodule.setup()

    class FakeTrainer:
        world_size, global_rank, training = 2, 1, False

    datamodule.trainer = FakeTrainer()
    loaders = [datamodule.val_dataloader(), *datamodule.test_dataloader()]
    assert all(isinstance(dl.sampler, UnpaddedDistributedBatchSampler) for dl in loaders)
    assert eval_indices(loaders[0].sampler) == list(range(1, 36, 2))
    train = datamodule.train_dataloader().sampler
    assert isinstance(train, DistributedTrainBatches) and len(train) == 3  # 168 images: 6 batches of 32 over 2
    train.set_epoch(1)
    epoch1 = eval_indices(train)
    train.set_epoch(2)
    assert eval_indices(train) != epoch1  # the inner shuffle follows the epoch
    datamodule.trainer = None
    assert isinstance(datamodule.val_dataloader().sampler, BatchSampler)  # one process: as before


def test_the_old_name_ddp_spawn_still_launches_and_says_it_is_deprecated(caplog, monkeypatch):
    from helpers import compose_train

    from handgestures.errors import UserError
    from handgestures.launch.ddp import run_launched, wants_launch

    cfg = compose_train(["trainer=ddp_spawn"], None)
    assert cfg.trainer.strategy == "ddp_spawn" and wants_launch(cfg.trainer) and cfg.trainer.devices == 2
    assert wants_launch(compose_train(["trainer=ddp_launch"], None).trainer)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")  # already under a launcher: refused before anything starts
    with pytest.raises(UserError, match="use trainer=ddp there"):
        run_launched(cfg, 2, None, 0.0)
    assert "trainer=ddp_spawn (trainer.strategy=ddp_spawn) is deprecated" in caplog.text
    assert "trainer=ddp_launch" in caplog.text
