"""Replay one epoch of a finished run from its per-epoch checkpoint, in another precision or setting.

The counterfactual for a fall of validation accuracy: was it bf16? A run made by
``scripts/ivannet_grid.sh`` keeps one checkpoint per epoch (``checkpoints/epochs/step<S>.ckpt``,
S = epochs x 375). This script copies the run's config into a new folder, puts the checkpoint
that ends epoch E-1 there as ``last.ckpt`` (with ``epochs.csv`` cut to the epochs it holds),
sets the precision, resumes it with ``python train.py resume=...`` and stops it (SIGTERM) once
epoch E is recorded. Resuming is exact (docs/lifecycle.md): in the run's own precision the
replayed epoch equals the original one bit for bit, which the script checks and reports; in the
other precision it shows what the same weights, optimizer state, batches and augmentations give.
``--set KEY=VALUE`` changes one more setting of the saved config the same way (for instance
``trainer.gradient_clip_val=20``: the same epoch with clipping). The replay writes its per-step
losses and gradient norms (before clipping) to ``OUT_DIR/steps.csv``.
Prints one JSON object: the original row, the replayed row, and whether they are identical.

    python scripts/ivannet_replay.py RUN_DIR --epoch 28 --precision 32-true --out OUT_DIR
    python scripts/ivannet_replay.py RUN_DIR --epoch 14 --set trainer.gradient_clip_val=20 --out OUT_DIR
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


def apply(config: dict, setting: str) -> None:
    """Sets ``KEY=VALUE`` (a dotted key; the value read as YAML) in ``config``."""
    key, sep, value = setting.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {setting!r}: expected KEY=VALUE, e.g. trainer.gradient_clip_val=20")
    *parents, last = key.split(".")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise SystemExit(f"--set {setting!r}: the saved config has no section {part!r} on the way to {key}")
        node = node[part]
    node[last] = yaml.safe_load(value)


def with_health(config: dict) -> None:
    """Adds the training-health callback (conf/callbacks/default.yaml) to a run made before it existed.

    It goes before ``epoch_metrics``, which writes its columns into the epoch's row; it only reads
    the gradients and runs one probe forward without gradients, so the replayed steps are unchanged.
    """
    callbacks = config.setdefault("callbacks", {})
    if "training_health" in callbacks:
        return
    health = yaml.safe_load((ROOT / "conf" / "callbacks" / "default.yaml").read_text())["training_health"]
    names = list(callbacks)
    at = names.index("epoch_metrics") if "epoch_metrics" in names else len(names)
    items = [*callbacks.items()]
    config["callbacks"] = dict([*items[:at], ("training_health", health), *items[at:]])


def prepare(run: Path, epoch: int, precision: str | None, out: Path, settings: list[str],
            steps_per_epoch: int = STEPS_PER_EPOCH) -> None:  # fmt: skip
    """``out``: the run's config (paths moved into ``out``), last.ckpt, epochs.csv.

    The per-epoch checkpoint callback is kept, so ``out/checkpoints/epochs/`` gets the state that
    ends the replayed epoch, for ``scripts/ivannet_health.py epochs out``.
    """
    checkpoint = run / "checkpoints" / "epochs" / f"step{(epoch - 1) * steps_per_epoch}.ckpt"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} not found: the run needs the checkpoint that ends epoch {epoch - 1}")
    if out.exists():
        raise SystemExit(f"{out} exists: choose a new folder")
    text = (run / "config.yaml").read_text().replace(str(run), str(out))
    config = yaml.safe_load(text)
    if precision:
        config["trainer"]["precision"] = precision
    with_health(config)
    for setting in ["callbacks.training_health.write_steps=true", *settings]:
        apply(config, setting)
    (out / "checkpoints").mkdir(parents=True)
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
    parser.add_argument("--precision", help="32-true, bf16-mixed, ... (default: the run's own)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more setting of the saved config, e.g. trainer.gradient_clip_val=20 (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps-per-epoch", type=int, default=STEPS_PER_EPOCH, help="training steps per epoch")
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()
    run, out = args.run.resolve(), args.out.resolve()
    prepare(run, args.epoch, args.precision, out, args.set, args.steps_per_epoch)
    original = next(r for r in rows(run / "epochs.csv") if r["epoch"] == str(args.epoch))
    replayed = replay(out, args.epoch, args.timeout)
    keys = [k for k in original if k not in ("seconds",) and k in replayed]
    same = all(original[k] == replayed[k] for k in keys)
    source = yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"]
    replayed_precision = yaml.safe_load((out / "config.yaml").read_text())["trainer"]["precision"]
    print(json.dumps({"run": run.name, "epoch": args.epoch, "original_precision": source,
                      "replay_precision": replayed_precision, "settings": args.set, "original": {k: original[k] for k in keys},
                      "replayed": {k: replayed[k] for k in keys}, "identical": same,
                      "threads": os.environ.get("OMP_NUM_THREADS")}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
