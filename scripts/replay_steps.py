"""What the steps of replayed epochs did: the gradient-norm cascade of a jump, and whether clipping stopped it.

Reads folders made by ``scripts/ivannet_replay.py`` (each holds the replay's config.yaml,
epochs.csv and steps.csv: per-step loss and per-layer gradient norms, taken before any clipping)
and prints one JSON object per folder: the replayed epoch's training loss, validation accuracy
and dead units per layer, and over its steps the total gradient norm (median, 90th and 99th
percentile, largest), the largest loss, how many steps had a norm above ``--over`` (the clip
value, when the replay clipped), and the longest run of consecutive steps above it with the
norms and losses of those steps: the cascade.

    python scripts/replay_steps.py REPLAY_DIR [REPLAY_DIR ...] [--over 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

import yaml


def total_norms(steps: list[dict[str, str]]) -> list[float]:
    """Each step's gradient norm over all layers, from the per-layer norms."""
    return [math.sqrt(sum(float(v) ** 2 for k, v in row.items() if k.startswith("grad_norm/"))) for row in steps]


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def longest_run(norms: list[float], over: float) -> tuple[int, int]:
    """(start index, length) of the longest run of consecutive norms above ``over``; (0, 0) if none."""
    best, start = (0, 0), None
    for i, norm in enumerate([*norms, -math.inf]):
        if norm > over and start is None:
            start = i
        elif norm <= over and start is not None:
            best = max(best, (start, i - start), key=lambda r: r[1])
            start = None
    return best


def summary(folder: Path, over: float) -> dict:
    config = yaml.safe_load((folder / "config.yaml").read_text())
    with (folder / "steps.csv").open(newline="") as fh:
        steps = list(csv.DictReader(fh))
    with (folder / "epochs.csv").open(newline="") as fh:
        epoch = list(csv.DictReader(fh))[-1]
    if not steps:
        raise SystemExit(f"{folder / 'steps.csv'} holds no steps")
    norms = total_norms(steps)
    ordered, losses = sorted(norms), [float(r["loss"]) for r in steps]
    start, length = longest_run(norms, over)
    clip = config["trainer"].get("gradient_clip_val")
    return {
        "replay": folder.name, "epoch": int(epoch["epoch"]), "precision": config["trainer"]["precision"],
        "gradient_clip_val": clip, "train/loss": float(epoch["train/loss"]), "val/acc": float(epoch["val/acc"]),
        "dead": {k.removeprefix("dead/"): round(float(v), 4) for k, v in epoch.items() if k.startswith("dead/") and v},
        "steps": len(steps), "grad_norm_median": round(statistics.median(norms), 2),
        "grad_norm_p90": round(quantile(ordered, 0.9), 2), "grad_norm_p99": round(quantile(ordered, 0.99), 2),
        "grad_norm_max": round(ordered[-1], 2), "loss_max": round(max(losses), 3), "over": over,
        "steps_over": sum(n > over for n in norms),
        "cascade": [{"step_of_epoch": start + i + 1, "grad_norm": round(norms[start + i], 1),
                     "loss": round(losses[start + i], 3)} for i in range(length)],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--over", type=float, default=20.0, help="the gradient norm counted as large (default 20)")
    args = parser.parse_args()
    print(json.dumps([summary(folder, args.over) for folder in args.folders], indent=1))


if __name__ == "__main__":
    main()
