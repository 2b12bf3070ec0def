"""Every failure is one clear message and an exit code, and whatever finished is kept (issue 23)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, TINY

QUICK = [*TINY, "logger=none", "trainer.precision=32-true"]


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HANDGESTURES_CACHE": str(tmp_path / "cache")}
    env.pop("HANDGESTURES_RUN_STAMP", None)
    return env


def run(cmd: list[str], tmp_path: Path, prefix: list[str] = (), **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env_for(tmp_path), **kw)  # fmt: skip


def errors(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("error:")]


def read_only(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is read-only (root: a read-only bind mount; else chmod)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("running as root without unshare -m: no way to make a folder read-only")
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh"]


# ---- (a) an unwritable output folder ------------------------------------------------------
@pytest.mark.parametrize("below", ["", "run"])
def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, below):
    folder = tmp_path / "ro"
    folder.mkdir()
    prefix = read_only(folder)
    target = folder / below if below else folder
    out = run(["train.py", *QUICK, "epochs=1", f"hydra.run.dir={target}"], tmp_path, prefix)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    (line,) = errors(out)
    assert str(target) in line and "cannot be written" in line and "hydra.run.dir=" in line
    assert "nothing was trained" in line
    assert list(folder.iterdir()) == []


# ---- (b) a full disk or a file-size limit -------------------------------------------------
def file_size_limit(n: int):
    def limit():
        import resource
        import signal

        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing

    return limit


@pytest.mark.slow
def test_a_file_size_limit_while_writing_a_checkpoint_is_one_message(tiny_run, tmp_path, tmp_path_factory):
    folder = tmp_path / "run"
    env = {**env_for(tmp_path), "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}  # warm
    out = subprocess.run(
        [sys.executable, "train.py", *QUICK, "epochs=1", f"hydra.run.dir={folder}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=file_size_limit(40_000),
    )  # fmt: skip  (a checkpoint is ~60 kB)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "During handling" not in out.stderr, out.stderr[-3000:]
    (line,) = errors(out)
    assert ".ckpt" in line and str(folder / "checkpoints") in line, line
    assert "disk is full or the file-size limit was hit" in line and "resume=" in line
    failed = (folder / "failed.json").read_text()
    assert "File too large" in failed
    assert (folder / "config.yaml").is_file() and (folder / "epochs.csv").is_file()  # what finished is kept


@pytest.mark.slow
def test_a_full_disk_is_one_message_naming_the_file_and_the_unwritable_record_is_said_once(tiny_run, tmp_path,
                                                                                           tmp_path_factory):  # fmt: skip
    """A 120 kB tmpfs: the first checkpoints fill it, failed.json cannot be written either."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("a small tmpfs needs root and unshare -m")
    disk, left = tmp_path / "full", tmp_path / "left.txt"
    disk.mkdir()
    folder = disk / "run"
    script = (f'mount -t tmpfs -o size=120k tmpfs "{disk}" && {{ "$@"; code=$?; '
              f'(cd "{folder}" && find . -type f | sort) > "{left}"; exit $code; }}')  # fmt: skip
    env = {**env_for(tmp_path), "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}  # warm
    out = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "train.py", *QUICK, "epochs=2",
                          "trainer.limit_train_batches=3", f"hydra.run.dir={folder}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "During handling" not in out.stderr, out.stderr[-3000:]
    (line,) = errors(out)
    assert f"cannot write {folder}{os.sep}" in line and "disk is full" in line and f"resume={folder}" in line, line
    files = left.read_text().split()
    if "./failed.json" not in files:  # the record could not be written either: said once
        notes = [x for x in out.stderr.splitlines() if x.startswith("note:")]
        assert len(notes) == 1 and "failed.json could not be written" in notes[0], out.stderr[-3000:]
    assert "./config.yaml" in files and any(f.startswith("./checkpoints/best-") for f in files), files


def test_an_unwritable_failure_record_is_said_once(tmp_path, monkeypatch, capsys):
    import errno

    from handgestures.errors import UserError
    from handgestures.runfolder import lifecycle
    from handgestures.runfolder import record as rr

    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    def training():
        path = tmp_path / "metrics.json"  # noqa: F841  (the file being written, as write_json names it)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rr, "write_json", full)
    with pytest.raises(UserError) as err:
        lifecycle.guarded(tmp_path, {"model": "m"}, False, False, training)
    assert "metrics.json" in str(err.value) and "disk is full" in str(err.value)
    assert lifecycle.record_early_failure(tmp_path, err.value) is None  # recorded (or tried) once
    stderr = capsys.readouterr().err
    assert stderr.count("failed.json") == 1 and "could not be written" in stderr
    assert "Traceback" not in stderr


# ---- (c) a batch too large for the machine's memory ---------------------------------------
@pytest.mark.slow
def test_a_batch_too_large_for_memory_is_one_message_naming_batch_size(tiny_run, tmp_path, tmp_path_factory):
    folder = tmp_path / "run"
    env = {**env_for(tmp_path), "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}  # warm
    args = ["tests/memory_driver.py", "32", *QUICK, "epochs=1", "batch_size=100000000", f"hydra.run.dir={folder}"]
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    (line,) = errors(out)
    assert "out of memory" in line and "batch_size=100000000" in line and "lower batch_size" in line, line
    assert "can't allocate" in (folder / "failed.json").read_text()  # the details stay in the run folder


# ---- (d) the weights of one network under the other's net_spec ----------------------------
CARLOS = {"_target_": "handgestures.models.CarlosNet", "num_classes": 6, "fused": True}
IVAN = {"_target_": "handgestures.models.IvanNet", "num_classes": 6}


def swapped_checkpoints(tiny_run: Path, folder: Path) -> dict[str, Path]:
    """CarlosNet weights (the tiny run's) under IvanNet's net_spec, and IvanNet weights under CarlosNet's."""
    import torch

    from handgestures.models import IvanNet
    from handgestures.runfolder.checkpoints import resolve_checkpoint

    checkpoint = torch.load(resolve_checkpoint(tiny_run), map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["net_spec"] = dict(IVAN)
    torch.save(checkpoint, folder / "carlos-as-ivan.ckpt")
    ivan = {f"net.{k}": v for k, v in IvanNet(num_classes=6).state_dict().items()}
    checkpoint = {**checkpoint, "state_dict": ivan}
    checkpoint["hyper_parameters"]["net_spec"] = dict(CARLOS)
    torch.save(checkpoint, folder / "ivan-as-carlos.ckpt")
    return {"CarlosNet": folder / "carlos-as-ivan.ckpt", "IvanNet": folder / "ivan-as-carlos.ckpt"}


@pytest.mark.slow
def test_the_other_networks_checkpoint_is_one_checkpoint_error(tiny_run, tmp_path):
    from PIL import Image

    image = tmp_path / "hand_3L.png"
    Image.new("L", (128, 128), 90).save(image)
    files = swapped_checkpoints(tiny_run, tmp_path)
    commands = [("predict.py", f"inputs={image}"), ("eval.py", f"output_dir={tmp_path / 'eval'}"),
                ("export.py", f"output={tmp_path / 'm.onnx'}")]  # fmt: skip
    cases = [(owner, *command) for owner in files for command in commands[: 3 if owner == "CarlosNet" else 1]]
    for owner, script, argument in cases:
        out = run([script, f"ckpt={files[owner]}", argument], tmp_path)
        assert out.returncode == 2, (script, owner, out.stderr[-3000:])
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        (line,) = errors(out)
        other = "IvanNet" if owner == "CarlosNet" else "CarlosNet"
        assert str(files[owner]) in line and f"the weights of another network ({owner}" in line, line
        assert f"its net_spec names {other}" in line, line
    assert not (tmp_path / "m.onnx").exists()


# ---- (e) a run refused by another process's run.lock --------------------------------------
def test_a_run_refused_by_the_lock_leaves_nothing_in_the_winners_folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.lock").write_text(str(os.getpid()))  # this test's process: alive, and not the run's
    out = run(["train.py", *QUICK, "epochs=1", f"hydra.run.dir={folder}"], tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    (line,) = errors(out)
    assert "is in use by process" in line and "Traceback" not in out.stderr
    assert not (folder / "failed.json").exists()
    assert (folder / "run.lock").read_text() == str(os.getpid())  # the winner's lock is kept


# ---- (f) a refused resume ------------------------------------------------------------------
def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("overrides", [[], ["model=ivannet", "optimizer.lr=0.5"]], ids=["done", "changed"])
def test_a_refused_resume_adds_no_file_to_the_finished_run(tiny_run, tmp_path, overrides):
    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    before = files_of(folder)
    out = run(["train.py", f"resume={folder}", *overrides], tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and errors(out), out.stderr[-3000:]
    assert files_of(folder) == before  # no file added, none rewritten


# ---- (g) a DDP process killed mid-run -----------------------------------------------------
def rank_pid(run_dir: Path, rank: int) -> int | None:
    """The process that writes ``train_ddp_process_<rank>.log`` in ``run_dir`` (both launchers name it so)."""
    log = str(run_dir / f"train_ddp_process_{rank}.log")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(os.readlink(fd) == log for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
            except OSError:
                continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the rank's process through /proc")
@pytest.mark.parametrize("strategy", ["ddp", "ddp_launch"])
def test_a_killed_ddp_process_is_one_message_and_the_finished_epochs_are_kept(tmp_path, tmp_path_factory, strategy):
    import signal
    import time

    folder = tmp_path / "run"
    env = {**env_for(tmp_path), "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    args = [f"trainer={strategy}", *(["trainer.devices=2"] if strategy == "ddp" else []), "trainer.accelerator=cpu",
            *QUICK, "data.eval_batch_size=16", "epochs=30", "trainer.limit_train_batches=2"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "train.py", *args, f"hydra.run.dir={folder}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 400  # a loaded 2-core machine starts two processes slowly
        while not ((folder / "checkpoints" / "last.ckpt").is_file() and (pid := rank_pid(folder, 1))):
            assert proc.poll() is None and time.monotonic() < deadline, f"not ready: exit {proc.poll()}"
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=240)  # the other process must not wait forever
    finally:
        proc.kill()
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    (line,) = [line for line in output.splitlines() if line.startswith("error:")]
    said = "DDP process of rank 1 was killed by SIGKILL" if strategy == "ddp_launch" else "another process of this DDP"
    assert said in line and f"resume={folder}" in line, line
    assert "PeerLost" in (folder / "failed.json").read_text() or strategy == "ddp_launch"
    assert (folder / "checkpoints" / "last.ckpt").is_file() and (folder / "config.yaml").is_file()
    assert not (folder / "run.lock").exists()
