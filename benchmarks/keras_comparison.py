"""``keras``: the Keras implementation of the study, for the same models and variants.

The Keras script is an argument (``--keras-script PATH``, run with ``--keras PYTHON``, the
interpreter of a Keras environment); it must take ``--data FOLDER --model NAME --steps N
[--aug]`` and print a JSON line with ``train_img_per_s``. Each measurement runs several times
at the full size and the median run counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import KERAS_REPS, KERAS_STEPS, STUDY_EPOCHS, log


def write_builtin_pngs(folder: Path, count: int) -> Path:
    """Built-in hands as Fingers-named PNGs, for the Keras peer (which reads folders only)."""
    import numpy as np
    from PIL import Image

    from handgestures.data.hands import generate_hands

    images, labels, hands = generate_hands(count, seed=0, size=128)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"{i:06d}_{int(labels[i])}{'LR'[int(hands[i])]}.png"
        Image.fromarray(np.asarray(images[i, 0])).save(folder / name)
    return folder


def measure_keras(args: argparse.Namespace, size: str, workdir: Path) -> dict[str, Any]:
    data = args.data
    if not data:
        count = 600 if size == "smoke" else 3000
        log(f"keras: writing {count} built-in hands as PNGs for the peer (it reads folders only)")
        data = str(write_builtin_pngs(workdir / "keras-pngs", count))
    out: dict[str, Any] = {"python": args.keras, "script": str(args.keras_script), "data": data}
    for model in args.models:
        for variant in args.variants:
            steps = args.keras_steps or KERAS_STEPS[size][model]
            cmd = [args.keras, str(args.keras_script), "--data", data, "--model", model, "--steps", str(steps)]
            if variant == "augmented":
                cmd.append("--aug")
            runs = []
            for _ in range(KERAS_REPS[size]):
                log("keras:", " ".join(cmd[1:]))
                run = run_keras(cmd)
                if "error" in run:
                    log(f"keras {model}/{variant} failed:\n{run['stderr_tail']}")
                    break
                runs.append(run)
                log(f"keras {model}/{variant}: {run.get('train_img_per_s')} images/s")
            if not runs:
                out[f"{model}/{variant}"] = run
                continue
            result = dict(sorted(runs, key=lambda r: r["train_img_per_s"])[(len(runs) - 1) // 2])  # the median run
            result["train_img_per_s_runs"] = [r["train_img_per_s"] for r in runs]
            out[f"{model}/{variant}"] = result
    return out


def run_keras(cmd: list[str]) -> dict[str, Any]:
    """One Keras peer run: its JSON line, or an error with the end of its stderr."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail[-2000:]}
    result = json.loads(lines[-1])
    result.pop("history", None)
    result["process_wall_s"] = round(time.perf_counter() - start, 1)
    return result


def keras_projection(keras: dict[str, Any], models, variants, n_train: int) -> dict[str, Any] | None:
    total = 0.0
    for model in models:
        for variant in variants:
            r = keras.get(f"{model}/{variant}") or {}
            if not r.get("train_img_per_s"):
                return None
            total += STUDY_EPOCHS[variant] * n_train / r["train_img_per_s"]
    return {"train_only_total_s": round(total, 1), "train_only_total_min": round(total / 60, 1), "n_train": n_train}
