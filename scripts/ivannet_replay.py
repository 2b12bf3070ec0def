"""Replay one epoch of a finished run from its per-epoch checkpoint, in another precision.

The counterfactual for a fall of validation accuracy: was it bf16? A run made by
``scripts/ivannet_grid.sh`` keeps one checkpoint per epoch (``checkpoints/epochs/step<S>.ckpt``,
S = epochs x 375). This script copies the run's config into a new folder, puts the checkpoint
that ends epoch E-1 there as ``last.ckpt`` (with ``epochs.csv`` cut to the epochs it holds),
sets the precision, resumes it with ``python train.py resume=...`` and stops it (SIGTERM) once
epoch E is recorded. Resuming is exact (docs/lifecycle.md): in the run's own precision the
replayed epoch equals the original one bit for bit, which the script checks and reports; in the
other precision it shows what the same weights, optimizer state, batches and augmentations give.
Prints one JSON object: the original row, the replayed row, and whether they are identical.

    python scripts/ivannet_replay.py RUN_DIR --epoch 28 --precision 32-true --out OUT_DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 375  # 12,000 training images in batches of 32 (the random split); grouped: 11,992 -> 375


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def prepare(run: Path, epoch: int, precision: str, out: Path) -> None:
    """``out``: the run's config (paths moved into ``out``), last.ckpt, epochs.csv.

    The per-epoch checkpoint callback is kept, so ``out/checkpoints/epochs/`` gets the state that
    ends the replayed epoch, for ``scripts/ivannet_health.py epochs out``.
    """
    checkpoint = run / "checkpoints" / "epochs" / f"step{(epoch - 1) * STEPS_PER_EPOCH}.ckpt"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} not found: the run needs the checkpoint that ends epoch {epoch - 1}")
    if out.exists():
        raise SystemExit(f"{out} exists: choose a new folder")
    (out / "checkpoints").mkdir(parents=True)
    text = (run / "config.yaml").read_text().replace(str(run), str(out))
    config = yaml.safe_load(text)
    config["trainer"]["precision"] = precision
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    kept = rows(run / "epochs.csv")[: epoch - 1]
    with (out / "epochs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    shutil.copy2(checkpoint, out / "checkpoints" / "last.ckpt")


def replay(out: Path, epoch: int, timeout_s: float) -> dict[str, str]:
    """Resumes ``out`` until epoch ``epoch`` is in its epochs.csv; that row."""
    cmd = [sys.executable, "train.py", f"resume={out}", "trainer.enable_progress_bar=false"]
    with (out / "replay.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                done = [r for r in rows(out / "epochs.csv") if r["epoch"] == str(epoch)]
                if done:
                    return done[0]
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the replay stopped before epoch {epoch} (exit {proc.poll()}): {out}/replay.log")
                time.sleep(2)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--epoch", type=int, required=True, help="the epoch to replay (>= 2)")
    parser.add_argument("--precision", required=True, help="32-true, bf16-mixed, ...")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()
    run, out = args.run.resolve(), args.out.resolve()
    prepare(run, args.epoch, args.precision, out)
    original = next(r for r in rows(run / "epochs.csv") if r["epoch"] == str(args.epoch))
    replayed = replay(out, args.epoch, args.timeout)
    keys = [k for k in original if k not in ("seconds",) and k in replayed]
    same = all(original[k] == replayed[k] for k in keys)
    source = yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"]
    print(json.dumps({"run": run.name, "epoch": args.epoch, "original_precision": source,
                      "replay_precision": args.precision, "original": {k: original[k] for k in keys},
                      "replayed": {k: replayed[k] for k in keys}, "identical": same,
                      "threads": os.environ.get("OMP_NUM_THREADS")}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
