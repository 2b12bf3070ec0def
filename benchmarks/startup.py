"""``startup``: ``python train.py ... epochs=1 trainer.limit_train_batches=1`` as a user runs it.

Cold cache and warm cache: ``startup_seconds`` from metrics.json (top of train.py to the first
training step), plus the interpreter's own start, and the total process wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, child_env, log


def measure_startup(args: argparse.Namespace, workdir: Path, cache_dir: Path, label: str) -> dict[str, Any]:
    """`python train.py` as a user runs it, one training batch; start-up from metrics.json."""
    run_dir = workdir / f"startup-{label}"
    cmd = [
        sys.executable, str(ROOT / "train.py"), f"model={args.startup_model}", "data=base", "epochs=1",
        "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}",
    ]  # fmt: skip
    if args.data:
        cmd.append(f"data.root={args.data}")
    if args.builtin_size:
        cmd.append(f"data.builtin_size={args.builtin_size}")
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800, env=child_env({"threads": args.threads})
    )
    wall = time.perf_counter() - start
    metrics_path = run_dir / "metrics.json"
    if proc.returncode != 0 or not metrics_path.is_file():
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        log(f"start-up ({label}) failed:\n{tail}")
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail[-3000:]}
    metrics = json.loads(metrics_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"startup_seconds": metrics.get("startup_seconds"), "process_wall_s": round(wall, 2),
            "fit_seconds": metrics.get("fit_seconds"), "eval_seconds": metrics.get("eval_seconds")}  # fmt: skip


def interpreter_start_s() -> float:
    """Wall time of a bare `python -c pass` (best of 3): start-up before train.py's first line."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        best = min(best, time.perf_counter() - start)
    return round(best, 3)
