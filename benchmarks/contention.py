"""Training throughput with one core kept busy by another process, for each thread policy.

For every alternative (below), a short CarlosNet training on the built-in hands (a fixed
number of steps through the project's own Lightning loop, ``handgestures.training.train.build_run``)
runs twice in a fresh process: quiet, and while a background process this script starts
spins on one core. Prints one JSON document on stdout:

* ``variants[name]``: median ``quiet_images_per_s`` and ``busy_images_per_s`` over the
  rounds, ``busy_over_quiet`` (target >= 0.45: one free core of two is worth 0.5) and
  ``quiet_vs_default`` (quiet throughput against today's default, target >= 0.97), the
  threads each process used, and every round's figures;
* ``other_busy_cores``: cores other processes kept busy just before each measurement (the
  machine is not otherwise idle: read the figures with it).

Alternatives (``--variants``): ``default`` (PyTorch's own: one thread per core, OpenMP's
spin-waiting), ``free_cores`` (one thread per core minus one, whatever the load),
``passive`` (``OMP_WAIT_POLICY=PASSIVE``), ``interop1`` (``torch.set_num_interop_threads(1)``),
``adaptive`` (``HANDGESTURES_THREADS=auto``: busy cores probed at the start, one thread per
free core), ``adaptive_passive`` (both).

    python benchmarks/contention.py > contention.json
    python benchmarks/contention.py --rounds 3 --steps 80 --variants default,adaptive
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, str]] = {
    "default": {"HANDGESTURES_THREADS": "torch"},
    "free_cores": {"HANDGESTURES_THREADS": str(max(1, len(os.sched_getaffinity(0)) - 1))},
    "passive": {"HANDGESTURES_THREADS": "torch", "OMP_WAIT_POLICY": "PASSIVE"},
    "interop1": {"HANDGESTURES_THREADS": "torch", "HG_BENCH_INTEROP": "1"},
    "adaptive": {"HANDGESTURES_THREADS": "auto"},
    "adaptive_passive": {"HANDGESTURES_THREADS": "auto", "OMP_WAIT_POLICY": "PASSIVE"},
}
SPIN = "import time\nwhile True:\n    pass\n"


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def worker(steps: int, warmup: int, size: int) -> dict[str, Any]:
    """One measurement, in this fresh process: the env of the variant is already set."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from handgestures.launch import threads

    threads.at_process_start()  # as train.py does, before torch
    import lightning as L
    import torch

    if os.environ.get("HG_BENCH_INTEROP"):
        torch.set_num_interop_threads(int(os.environ["HG_BENCH_INTEROP"]))
    choice = threads.apply_for_job()
    from helpers import compose_train

    from handgestures.training.train import build_run

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.start = self.end = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == warmup:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == warmup + steps:
                self.end = time.perf_counter()

    out = Path(tempfile.mkdtemp(prefix="contention-"))
    cfg = compose_train([
        f"data.builtin_size={size}", "epochs=1000", f"trainer.max_steps={warmup + steps}", "trainer.limit_val_batches=0",
        "trainer.enable_checkpointing=false", "~callbacks", "logger=none",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "model=carlosnet",
    ], out)  # fmt: skip
    clock = Clock()
    datamodule, module, trainer = build_run(cfg, extra_callbacks=(clock,))
    trainer.fit(module, datamodule=datamodule)
    seconds = clock.end - clock.start
    return {"images_per_s": round(steps * datamodule.batch_size / seconds, 1), "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "policy": choice.reason,
            "precision": str(cfg.trainer.precision)}  # fmt: skip


def measure(variant: str, busy: bool, args: argparse.Namespace, cache: str) -> dict[str, Any]:
    from handgestures.launch.threads import busy_cores

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(VARIANTS[variant], HANDGESTURES_CACHE=cache, PYTHONPATH=str(ROOT))
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        others = busy_cores(0.5)
        cmd = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--size", str(args.size)]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if out.returncode != 0:
        raise RuntimeError(f"{variant} ({'busy' if busy else 'quiet'}) failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["other_busy_cores_before"] = round(others, 2) if others is not None else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each variant and condition")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="steps before the timing starts")
    parser.add_argument("--size", type=int, default=1200, help="built-in images (the split's train part is 2/3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.steps, args.warmup, args.size)))
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; expected some of {list(VARIANTS)}")
    sys.path.insert(0, str(ROOT))
    cache = tempfile.mkdtemp(prefix="contention-cache-")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {v: {"quiet": [], "busy": []} for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:  # interleaved, so that drifting load spreads over all variants
            for condition in ("quiet", "busy"):
                result = measure(variant, condition == "busy", args, cache)
                runs[variant][condition].append(result)
                log(f"round {round_ + 1} {variant:>16} {condition:>5}: {result}")
    report: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "steps": args.steps, "rounds": args.rounds,
                              "variants": {}}  # fmt: skip
    default_quiet = None
    if "default" in runs:
        default_quiet = statistics.median(r["images_per_s"] for r in runs["default"]["quiet"])
    for variant, conditions in runs.items():
        quiet = statistics.median(r["images_per_s"] for r in conditions["quiet"])
        busy = statistics.median(r["images_per_s"] for r in conditions["busy"])
        report["variants"][variant] = {
            "quiet_images_per_s": quiet, "busy_images_per_s": busy, "busy_over_quiet": round(busy / quiet, 3),
            "quiet_vs_default": round(quiet / default_quiet, 3) if default_quiet else None,
            "threads_quiet": [r["threads"] for r in conditions["quiet"]],
            "threads_busy": [r["threads"] for r in conditions["busy"]],
            "runs": conditions,
        }  # fmt: skip
    others = [r["other_busy_cores_before"] for c in runs.values() for rs in c.values() for r in rs]
    report["other_busy_cores"] = {"min": min(others), "median": statistics.median(others), "max": max(others)}
    report["targets"] = {"busy_over_quiet": ">= 0.45", "quiet_vs_default": ">= 0.97"}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
