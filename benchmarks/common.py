"""What every benchmark job shares: sizes, process measurements, the worker protocol, config composition.

Each measurement runs in a fresh interpreter (``run_worker``), so its peak resident memory is
its own and one measurement's allocations never slow the next. A worker prints one
``BENCHMARK-RESULT {json}`` line; everything else it writes goes to stderr.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from handgestures.analysis.study import STUDY_EPOCHS  # noqa: F401  (the study's epochs, read from conf/)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # works without `pip install -e .` too

MAIN = Path(__file__).resolve().parent / "benchmark.py"  # the entry point, which also runs the workers
MODELS = ("carlosnet", "ivannet")
VARIANTS = ("base", "augmented")
PRECISIONS = ("32-true", "bf16-mixed")
SECTIONS = ("gemm", "load", "train", "startup", "keras")
STUDY_SPLIT = {"train": 14400, "val": 3600, "test": 3600}  # 21,600 images, 4/6-1/6-1/6

# steps per measurement: (warm-up, timed) training iterations, test batches per set, bare steps
SIZES = {
    "smoke": {"warmup": 1, "carlosnet": 2, "ivannet": 2, "test_batches": 2, "bare": 2, "gemm": (256,), "reps": 1},
    "quick": {"warmup": 3, "carlosnet": 60, "ivannet": 10, "test_batches": 2, "bare": 1.0, "gemm": (1024, 2048), "reps": 3},
    "full": {"warmup": 5, "carlosnet": 300, "ivannet": 40, "test_batches": 4, "bare": 4.0, "gemm": (1024, 2048, 4096),
             "reps": 5},
}  # fmt: skip
# Keras steps per measurement (a whole 12,000-image epoch is 375) and repetitions, of which
# the median counts: single short Keras measurements drift between runs.
KERAS_STEPS = {"smoke": {"carlosnet": 3, "ivannet": 2}, "quick": {"carlosnet": 40, "ivannet": 6},
               "full": {"carlosnet": 375, "ivannet": 24}}  # fmt: skip
KERAS_REPS = {"smoke": 1, "quick": 1, "full": 3}


def log(*args: object) -> None:
    print("[benchmark]", *args, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM, else ru_maxrss), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def busy_cores(seconds: float = 0.5) -> float | None:
    """Cores kept busy by other processes while this one sleeps (from /proc/stat): the
    machine's contention right now. On a shared 2-core machine PyTorch's OpenMP threads
    slow down many times over when anything else runs, so every result carries this."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return round((os.cpu_count() or 1) * (total - (idle1 - idle0)) / total, 2) if total > 0 else None


def reset_peak_rss() -> bool:
    """Restart the VmHWM count (Linux >= 4.0), so a peak belongs to what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rate(images: float, seconds: float) -> float | None:
    return round(images / seconds, 1) if seconds > 0 else None


def compose_cfg(overrides: list[str], out_dir: Path):
    """The train config as `python train.py <overrides>` composes it, output in ``out_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        choices = cfg.hydra.runtime.choices
        cfg.run_info = {"model": choices.get("model"), "data": choices.get("data")}
        cfg.paths.output_dir = str(out_dir)
        del cfg["hydra"]
    return cfg


def data_overrides(spec: dict[str, Any]) -> list[str]:
    out = [f"paths.cache_dir={spec['cache_dir']}"]
    if spec.get("data"):
        out.append(f"data.root={spec['data']}")
    if spec.get("builtin_size"):
        out.append(f"data.builtin_size={spec['builtin_size']}")
    return out


def child_env(spec: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    return env


def run_worker(kind: str, spec: dict[str, Any], workdir: Path, timeout: float = 1800) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter; its result, or ``{"error": ...}``."""
    cmd = [sys.executable, str(MAIN), "--worker", kind, json.dumps(spec)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=child_env(spec))
    except subprocess.TimeoutExpired:
        log(f"{kind} timed out after {timeout:.0f} s")
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCHMARK-RESULT "):
            result = json.loads(line[len("BENCHMARK-RESULT ") :])
            result["process_wall_s"] = round(time.perf_counter() - start, 1)
            return result
    tail = "\n".join((proc.stderr or "").splitlines()[-25:])
    log(f"{kind} failed (exit {proc.returncode}):\n{tail}")
    return {"error": f"exit {proc.returncode}", "stderr_tail": tail[-3000:]}
