"""`handgestures <command>`: the one command lists its subcommands, refuses an unknown one, and runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import ROOT, TINY

from handgestures.launch.main import COMMANDS, main

EXPECTED = ("train", "eval", "predict", "export", "demo", "report", "leakage", "baselines")


def handgestures(*args: str, cwd, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "handgestures.launch.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_help_lists_every_command_on_one_line_each(capsys):
    try:
        main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == list(EXPECTED) == list(COMMANDS)
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib: Python 3.11+; the project runs on 3.10)
    assert '\nhandgestures = "handgestures.launch.main:main"' in pyproject
    assert '\nhandgestures-eval = "handgestures.inference.cli:evaluate"' in pyproject  # the console scripts stay


def test_help_imports_nothing_heavy(tmp_path):
    probe = ("import sys\nfrom handgestures.launch.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('HEAVY', sorted(m for m in ('torch', 'lightning', 'hydra') if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert out.stdout.strip().endswith("HEAVY []"), out.stdout + out.stderr


def test_an_unknown_command_exits_2_with_the_list(tmp_path):
    proc = handgestures("trian", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "unknown command 'trian' (did you mean 'train'?)" in proc.stderr and "baselines" in proc.stderr
    assert "Traceback" not in proc.stderr
    bare = handgestures(cwd=tmp_path, timeout=60)
    assert bare.returncode == 2 and "commands:" in bare.stderr


def test_train_then_eval_then_a_dry_run(tmp_path):
    run = tmp_path / "run"
    common = [*TINY, "epochs=1", "trainer.limit_train_batches=2", "logger=none", "trainer.precision=32-true"]
    proc = handgestures("train", *common, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "done"
    assert (run / "train.log").is_file()  # the run's log keeps its name
    assert proc.stderr.startswith("handgestures train: loading PyTorch and Lightning (a few seconds) ...\n")
    assert "+-- model" in proc.stdout  # the config tree (plain text: not a terminal)

    proc = handgestures("eval", f"ckpt={run}", f"output_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.startswith("eval: loading PyTorch and the model (a few seconds) ...\n")
    evaluated = json.loads((tmp_path / "eval" / "eval.json").read_text())["sets"]["test"]["accuracy"]
    assert evaluated == json.loads((run / "metrics.json").read_text())["metrics"]["test/acc"]  # the run's own numbers

    dry = tmp_path / "dry"
    proc = handgestures("train", *common, "debug=fdr", f"hydra.run.dir={dry}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dry run (trainer.fast_dev_run=True)" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not (dry / "metrics.json").exists()
