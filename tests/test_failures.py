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
