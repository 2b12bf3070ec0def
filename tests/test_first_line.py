"""A command says it is loading before it imports torch and Lightning (seconds of silence otherwise).

The line goes to stderr, first, and only where a job runs and torch is still to be imported:
not for Hydra's print-only flags, not on ranks above 0, not when torch is already in the process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch  # noqa: F401  (a process that has imported torch: the line is not said)
from helpers import ROOT

from handgestures import say_loading
from handgestures.launch.starting import say_loading_for_job

TRAIN_LINE = "train: loading PyTorch and Lightning (a few seconds) ..."


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_train_says_it_is_loading_before_anything_else(tmp_path):
    out = run(str(ROOT / "train.py"), "model=resnet", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.splitlines()[0] == TRAIN_LINE, out.stderr[-2000:]
    assert "Could not find 'model/resnet'" in out.stderr  # Hydra composes after the imports


def test_print_only_flags_and_refused_folders_get_no_line(tmp_path):
    out = run(str(ROOT / "train.py"), "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("model:") and "loading" not in out.stderr, out.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run(str(ROOT / "train.py"), f"hydra.run.dir={blocker / 'run'}", cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.startswith("error: the output folder") and "loading" not in out.stderr


def test_predict_checks_its_arguments_then_says_it_is_loading(tmp_path):
    out = run(str(ROOT / "predict.py"), f"ckpt={tmp_path / 'missing'}", f"inputs={tmp_path}", cwd=tmp_path)
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and lines[0] == "predict: loading PyTorch and the model (a few seconds) ..."
    assert lines[1].startswith("error: ") and len(lines) == 2, out.stderr


@pytest.mark.parametrize(
    ("argv", "env", "said"),
    [([], {}, True), (["--cfg", "job"], {}, False), (["--info"], {}, False), ([], {"RANK": "1"}, False),
     ([], {"LOCAL_RANK": "0", "NODE_RANK": "0"}, True)],
)  # fmt: skip
def test_the_line_is_for_a_job_on_rank_zero_where_torch_is_not_imported(monkeypatch, capsys, argv, env, said):
    for name in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert say_loading_for_job("train", []) is False and capsys.readouterr().err == ""  # torch is imported here
    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh process (put back after the test)
    assert say_loading_for_job("train", argv) is said
    assert capsys.readouterr().err == (TRAIN_LINE + "\n" if said else "")
    assert say_loading("eval", "PyTorch and the model") is True
    assert capsys.readouterr().err == "eval: loading PyTorch and the model (a few seconds) ...\n"
