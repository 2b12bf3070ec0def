"""Benchmark the study on this machine: training and inference through the real Lightning loop.

Prints ONE JSON document on stdout; logs go to stderr. Every measurement runs in a fresh
subprocess of its own (so peak resident memory is per measurement, and one measurement's
allocations never slow the next), and all of them run in one sitting, so that the ratios
between them hold on a shared, noisy machine even when the absolute figures drift.

What it measures
----------------
* ``gemm``: the machine's matrix-multiply peak, ``torch.matmul`` of large square matrices in
  fp32 and bf16 (GFLOP/s, best of several repeats).
* ``data_load``: loading the images into memory, cold (PNG decoding, or generation of the
  built-in hands, into an empty cache folder) and warm (cache hit), each with its peak RSS.
* ``train[model/variant/precision]``, one subprocess each, built from the project's own Hydra
  config (``conf/``) and ``handgestures.train.build_run``, so the datamodule, module,
  callbacks (progress bar, epoch metrics, checkpointing), logger and trainer are exactly
  those of ``python train.py``:

  - ``train_images_per_s``: ``Trainer.fit`` with ``limit_train_batches``, validation off; the
    time from the start of batch ``W`` (warm-up excluded) to the start of batch ``W + N``,
    i.e. N whole loop iterations (gather, transfer, rescale, augmentation, forward, backward,
    optimizer step, logging, callbacks). ``train_images_per_s_median`` is the same from the
    median iteration (robust to bursts of other load), with its split into ``step_ms``
    (training_step + backward + optimizer) and ``data_ms`` (everything between two steps);
  - ``bare_step_images_per_s``: a plain PyTorch loop on the same network, precision, memory
    format and optimizer, on one fixed batch (no data path, no Lightning), measured before and
    after the fit in the same process; ``bare_data_step_images_per_s`` adds the data path
    (uint8 gather, rescale, the batched Keras warp when augmented) without Lightning;
    ``lightning_vs_bare`` = median Lightning iteration rate / median bare rate;
  - ``infer_images_per_s`` (eval batch 256): ``Trainer.test`` on the cross-evaluation sets
    (the study's test_step, metrics included; ``limit_test_batches`` batches per set, the
    very first batch excluded as warm-up): plain sets, and ``infer_aug_images_per_s`` for
    the fixed augmented views (their warp included);
  - ``checkpoint_save_s`` (one save; a run saves best + last each epoch), data load (warm),
    setup, split sizes, ``dataset_uint8_mb`` (the images, held once), ``peak_rss_mb`` of the
    whole subprocess and ``peak_rss_mb_fit_and_test`` (the peak counted afresh from the
    fit's start: the bare loops are not in it). ``import torch`` alone is about 0.5 GB of
    resident memory with a CUDA build of PyTorch, the project's imports about 0.73 GB.
* ``startup``: ``python train.py ... epochs=1 trainer.limit_train_batches=1`` as a user runs it,
  cold cache and warm cache: ``startup_seconds`` from metrics.json (top of train.py to the
  first training step), plus the interpreter's own start, and the total process wall time.
  With ``--quick`` the cold start is not run again but estimated (warm start-up plus the
  cold-minus-warm data load measured above), and says so.
* ``keras`` (with ``--keras PYTHON``): ``../shared/peers/keras_study.py`` for the same models and
  variants (``--steps``: a whole epoch for CarlosNet, 24 steps for IvanNet with the full size),
  run 3 times with the full size: the median run's ``train_img_per_s`` (every run's in
  ``train_img_per_s_runs``) and ours / Keras for each precision.
* ``projection``: the full study (CarlosNet and IvanNet, base 10 epochs and augmented 30) from
  the measured rates: per run, warm start-up + epochs x (train split / train rate + val split /
  inference rate + two checkpoint saves) + the 6-set cross-evaluation; for the actual split
  sizes of the data used and for the study's 21,600 images (14,400 / 3,600 / 3,600); per
  precision, and ``per_model_precision`` for each assignment of a precision to each model
  (say CarlosNet fp32 with IvanNet bf16). With ``--keras``, Keras' train-only total too.

Examples::

    .venv/bin/python scripts/benchmark.py --quick > bench.json
    .venv/bin/python scripts/benchmark.py --data /path/to/fingers/train --keras /tmp/kvenv/bin/python
    .venv/bin/python scripts/benchmark.py --quick --models ivannet --precisions bf16-mixed \\
        --skip keras,startup,load --override channels_last=false

``--smoke`` is a seconds-long run on tiny built-in data, for tests of the JSON structure only.

Contention: measure on a quiet machine. With another busy process on a 2-core machine,
PyTorch's two OpenMP threads wait on each other at every operator and training runs 5-20x
slower (TensorFlow degrades far less), so the ratios to Keras mean nothing then. Every
measurement records ``other_busy_cores`` (cores used by other processes just before and
after it) and the report carries a ``contention`` summary; ``--threads 1`` gives steadier,
lower figures on a busy machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # works without `pip install -e .` too

KERAS_PEER = ROOT.parent / "shared" / "peers" / "keras_study.py"
MODELS = ("carlosnet", "ivannet")
VARIANTS = ("base", "augmented")
PRECISIONS = ("32-true", "bf16-mixed")
SECTIONS = ("gemm", "load", "train", "startup", "keras")
STUDY_EPOCHS = {"base": 10, "augmented": 30}
STUDY_SPLIT = {"train": 14400, "val": 3600, "test": 3600}  # 21,600 images, 4/6-1/6-1/6

# steps per measurement: (warm-up, timed) training iterations, test batches per set, bare steps
SIZES = {
    "smoke": {"warmup": 1, "carlosnet": 2, "ivannet": 2, "test_batches": 2, "bare": 2, "gemm": (256,), "reps": 1},
    "quick": {"warmup": 3, "carlosnet": 60, "ivannet": 10, "test_batches": 2, "bare": 1.0, "gemm": (1024, 2048), "reps": 3},
    "full": {"warmup": 5, "carlosnet": 300, "ivannet": 40, "test_batches": 4, "bare": 4.0, "gemm": (1024, 2048, 4096),
             "reps": 5},
}  # fmt: skip
# Keras steps per measurement (a whole 12,000-image epoch is 375) and repetitions, of which
# the median counts: single short Keras measurements drifted 2x between sittings here.
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


# =========================================================================================
# Worker side: one measurement per process
# =========================================================================================
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


def worker_gemm(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best, per_size = 0.0, {}
        for n in spec["sizes"]:
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            torch.matmul(a, b)  # warm-up (and the library's kernel choice)
            flops, size_best = 2.0 * n**3, 0.0
            for _ in range(spec["reps"]):
                start = time.perf_counter()
                torch.matmul(a, b)
                size_best = max(size_best, flops / (time.perf_counter() - start) / 1e9)
            per_size[str(n)] = round(size_best, 1)
            best = max(best, size_best)
        out[f"{name}_gflops"] = round(best, 1)
        out[f"{name}_gflops_by_size"] = per_size
    return out


def worker_load(spec: dict[str, Any]) -> dict[str, Any]:
    from handgestures.data.sources import load_images

    start = time.perf_counter()
    data = load_images(spec.get("data"), spec["cache_dir"], spec.get("builtin_size") or 21600)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "images": len(data), "uint8_mb": round(data.images.numel() / 2**20, 1),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def model_macs(net, image_size: int = 128) -> int:
    """Multiply-accumulates of one forward pass of one image (convolutions and dense layers)."""
    import torch
    from torch import nn

    total = 0

    def hook(layer, inputs, output) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            total += output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, 1, image_size, image_size))
    for h in handles:
        h.remove()
    return total


def bare_rate(cfg, datamodule, seconds_or_steps: float, with_data: bool) -> dict[str, float]:
    """Images/s of a plain PyTorch training loop on the run's network, precision and layout.

    ``with_data``: each step gathers a random uint8 batch from the training split, rescales
    it and applies the training augmentation (when the variant has it), as the datamodule
    does, but without Lightning; otherwise one fixed batch is reused (no data path at all).
    """
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    torch.manual_seed(0)
    net = instantiate(cfg.model)
    channels_last = bool(cfg.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = instantiate(cfg.optimizer)(net.parameters())
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    train = datamodule.splits["train"]  # batches come from its __getitem__(list of indices)
    batch = int(cfg.batch_size)
    gen = torch.Generator().manual_seed(0)
    fixed = train[torch.randperm(len(train), generator=gen)[:batch].tolist()]
    fixed_x = fixed["image"].float().mul_(1.0 / 255.0).contiguous(memory_format=fmt)
    fixed_y = fixed["label"]

    def step() -> None:
        if with_data:
            item = train[torch.randint(len(train), (batch,), generator=gen).tolist()]
            x, y = item["image"].float().mul_(1.0 / 255.0), item["label"]
            if datamodule.augment_train:
                x = datamodule.augment(x)
            x = x.contiguous(memory_format=fmt)
        else:
            x, y = fixed_x, fixed_y
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    times: list[float] = []
    budget_start = time.perf_counter()
    while True:  # a number of steps (an int, in --smoke), or a time budget in seconds (a float)
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if isinstance(seconds_or_steps, int):
            if len(times) >= seconds_or_steps:
                break
        elif time.perf_counter() - budget_start >= seconds_or_steps and len(times) >= 5:
            break
    return {"median": batch / statistics.median(times), "mean": batch * len(times) / sum(times), "steps": len(times)}


def worker_train(spec: dict[str, Any]) -> dict[str, Any]:
    import lightning as L
    import torch

    from handgestures.train import build_run

    sizes = SIZES[spec["size"]]
    warmup, timed, test_batches = sizes["warmup"], sizes[spec["model"]], sizes["test_batches"]
    out_dir = Path(spec["out_dir"])
    overrides = [
        f"model={spec['model']}", f"data={spec['variant']}", f"trainer.precision={spec['precision']}",
        *data_overrides(spec), "epochs=1", f"trainer.limit_train_batches={warmup + timed + 1}",
        "trainer.limit_val_batches=0", f"trainer.limit_test_batches={test_batches}",
        "trainer.enable_model_summary=false", "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.filename=bench", *spec.get("overrides", []),
    ]  # fmt: skip
    if spec["size"] == "smoke":
        overrides.insert(0, "data.eval_batch_size=16")  # tiny sets: several batches each
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = compose_cfg(overrides, out_dir)

    class Intervals(L.Callback):
        def __init__(self) -> None:
            self.train_start: list[float] = []
            self.train_end: list[float] = []
            self.test_end: dict[int, list[float]] = {}
            self.test_images: dict[int, list[int]] = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.train_start.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.train_end.append(time.perf_counter())

        def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
            self.test_images.setdefault(dataloader_idx, []).append(len(batch[1]))

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
            self.test_end.setdefault(dataloader_idx, []).append(time.perf_counter())

    timer = Intervals()
    start = time.perf_counter()
    datamodule, module, trainer = build_run(cfg, extra_callbacks=(timer,))
    datamodule.prepare_data()
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - start
    splits = {k: len(v) for k, v in datamodule.splits.items()}
    batch = int(cfg.batch_size)
    log(f"{spec['model']}/{spec['variant']}/{spec['precision']}: splits {splits}, {warmup}+{timed} steps")

    bare_steps: float | int = sizes["bare"]
    bare_before = bare_rate(cfg, datamodule, bare_steps, with_data=False)
    bare_data = bare_rate(cfg, datamodule, bare_steps, with_data=True)

    peak_before_fit = peak_rss_mb()
    fit_peak_separate = reset_peak_rss()
    trainer.fit(module, datamodule=datamodule)
    starts, ends = timer.train_start, timer.train_end
    if len(starts) < warmup + timed + 1:
        raise RuntimeError(f"only {len(starts)} training batches ran; need {warmup + timed + 1}")
    window = starts[warmup + timed] - starts[warmup]
    iters = [b - a for a, b in zip(starts[warmup : warmup + timed], starts[warmup + 1 : warmup + timed + 1])]
    step_ms = [ends[i] - starts[i] for i in range(warmup, warmup + timed)]
    data_ms = [starts[i + 1] - ends[i] for i in range(warmup, warmup + timed)]
    trainer.test(module, datamodule=datamodule, verbose=False)
    peak_fit_test = peak_rss_mb() if fit_peak_separate else None
    bare_after = bare_rate(cfg, datamodule, bare_steps, with_data=False)

    ckpt = out_dir / "bench-save.ckpt"
    start = time.perf_counter()
    trainer.save_checkpoint(ckpt)
    ckpt_s = time.perf_counter() - start
    ckpt_mb = ckpt.stat().st_size / 2**20
    ckpt.unlink()

    names = datamodule.eval_names
    infer: dict[str, dict[str, float]] = {}
    previous_end: float | None = None
    for idx, name in enumerate(names):
        e, n = timer.test_end.get(idx, []), timer.test_images.get(idx, [])
        if not e:
            continue
        # a set's time runs from the end of the previous set to the end of its last batch, so
        # every batch's gather (and warp) and step count; in the first set, its first batch
        # is the warm-up and its time starts at the end of that batch
        if previous_end is None:
            if len(e) > 1:
                infer[name] = {"images": sum(n[1:]), "seconds": e[-1] - e[0]}
        else:
            infer[name] = {"images": sum(n), "seconds": e[-1] - previous_end}
        previous_end = e[-1]
    plain = [v for k, v in infer.items() if not k.endswith("_aug")]
    aug = [v for k, v in infer.items() if k.endswith("_aug")]

    def pooled(items: list[dict[str, float]]) -> float | None:
        return rate(sum(i["images"] for i in items), sum(i["seconds"] for i in items)) if items else None

    bare_median = statistics.mean([bare_before["median"], bare_after["median"]])
    iter_median = statistics.median(iters)
    from hydra.utils import instantiate

    macs = model_macs(instantiate(cfg.model))
    return {
        "model": spec["model"], "variant": spec["variant"], "precision": spec["precision"],
        "overrides": spec.get("overrides", []), "threads": torch.get_num_threads(),
        "splits": splits, "batch_size": batch, "epochs_in_study": int(cfg.data.epochs),
        "warmup_steps": warmup, "timed_steps": timed,
        "train_images_per_s": rate(timed * batch, window),
        "train_images_per_s_median": rate(batch, iter_median),
        "step_ms": round(1000 * statistics.median(step_ms), 2),
        "data_ms": round(1000 * statistics.median(data_ms), 2),
        "bare_step_images_per_s": round(bare_median, 1),
        "bare_step_images_per_s_runs": [round(bare_before["median"], 1), round(bare_after["median"], 1)],
        "bare_data_step_images_per_s": round(bare_data["median"], 1),
        "lightning_vs_bare": round(batch / iter_median / bare_median, 3),
        "lightning_vs_bare_data": round(batch / iter_median / bare_data["median"], 3),
        "overhead_ms_vs_bare_data": round(1000 * (iter_median - batch / bare_data["median"]), 2),
        "infer_images_per_s": pooled(plain),
        "infer_aug_images_per_s": pooled(aug),
        "infer_by_set": {k: rate(v["images"], v["seconds"]) for k, v in infer.items()},
        "checkpoint_save_s": round(ckpt_s, 3), "checkpoint_mb": round(ckpt_mb, 1),
        "load_s": round(load_s, 2), "setup_s": round(setup_s, 2),
        "macs_per_image": macs, "train_gflop_per_image": round(6 * macs / 1e9, 4),
        "peak_rss_mb": max(peak_before_fit, peak_rss_mb()),
        "peak_rss_mb_fit_and_test": peak_fit_test,
        "dataset_uint8_mb": round(datamodule.data.images.numel() / 2**20, 1),
    }  # fmt: skip


WORKERS = {"gemm": worker_gemm, "load": worker_load, "train": worker_train}


def worker_main(kind: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    busy_before = busy_cores()
    result = WORKERS[kind](spec)
    result["other_busy_cores"] = [busy_before, busy_cores()]  # before, after the measurement
    print("BENCHMARK-RESULT " + json.dumps(result), flush=True)


# =========================================================================================
# Orchestration: subprocesses, Keras, start-up, projection
# =========================================================================================
def child_env(spec: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    return env


def run_worker(kind: str, spec: dict[str, Any], workdir: Path, timeout: float = 1800) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter; its result, or ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(spec)]
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
    out: dict[str, Any] = {"python": args.keras, "script": str(KERAS_PEER), "data": data}
    for model in args.models:
        for variant in args.variants:
            steps = args.keras_steps or KERAS_STEPS[size][model]
            cmd = [args.keras, str(KERAS_PEER), "--data", data, "--model", model, "--steps", str(steps)]
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


def projection(train: dict[str, Any], startup_s: float | None, precision: str, models, variants,
               split: dict[str, int] | None) -> dict[str, Any] | None:  # fmt: skip
    """Wall time of the full study from measured rates; None when a rate is missing."""
    runs, total = {}, 0.0
    for model in models:
        for variant in variants:
            r = train.get(f"{model}/{variant}/{precision}") or {}
            rates = [r.get("train_images_per_s"), r.get("infer_images_per_s"), r.get("infer_aug_images_per_s")]
            if "error" in r or not r or not all(rates):
                return None
            sizes = split or r["splits"]
            epochs = STUDY_EPOCHS[variant]
            per_epoch = (sizes["train"] / r["train_images_per_s"] + sizes["val"] / r["infer_images_per_s"]
                         + 2 * r["checkpoint_save_s"])  # fmt: skip
            n_all = sizes["train"] + sizes["val"] + sizes["test"]
            cross = n_all / r["infer_images_per_s"] + n_all / r["infer_aug_images_per_s"]
            seconds = (startup_s or 0.0) + epochs * per_epoch + cross
            runs[f"{model}/{variant}"] = {"epochs": epochs, "epoch_s": round(per_epoch, 1),
                                          "cross_eval_s": round(cross, 1), "total_s": round(seconds, 1)}  # fmt: skip
            total += seconds
    return {"split": split or "measured", "runs": runs, "total_s": round(total, 1), "total_min": round(total / 60, 1)}


def mixed_projections(train: dict[str, Any], startup_s: float | None, args: argparse.Namespace) -> dict[str, Any]:
    """Study totals (minutes) for every assignment of a precision to each model."""
    out: dict[str, Any] = {}
    for combo in itertools.product(args.precisions, repeat=len(args.models)):
        label = ",".join(f"{m}={q}" for m, q in zip(args.models, combo))
        totals = {}
        for split_name, split in (("measured_split", None), ("study_21600", STUDY_SPLIT)):
            parts = [projection(train, startup_s, q, [m], args.variants, split) for m, q in zip(args.models, combo)]
            totals[f"{split_name}_min"] = round(sum(p["total_s"] for p in parts) / 60, 1) if all(parts) else None
        out[label] = totals
    return out


def keras_projection(keras: dict[str, Any], models, variants, n_train: int) -> dict[str, Any] | None:
    total = 0.0
    for model in models:
        for variant in variants:
            r = keras.get(f"{model}/{variant}") or {}
            if not r.get("train_img_per_s"):
                return None
            total += STUDY_EPOCHS[variant] * n_train / r["train_img_per_s"]
    return {"train_only_total_s": round(total, 1), "train_only_total_min": round(total / 60, 1), "n_train": n_train}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short measurements: a few minutes in all")
    size.add_argument("--smoke", action="store_true", help="seconds, tiny built-in data: checks the JSON only")
    p.add_argument("--data", default=None, help="folder of Fingers PNGs; default: the built-in hands")
    p.add_argument("--builtin-size", type=int, default=None, help="built-in hands to generate (default 21,600)")
    p.add_argument("--keras", default=None, metavar="PYTHON", help="python of a Keras venv: runs the Keras peer too")
    p.add_argument("--keras-steps", type=int, default=None, help="Keras --steps (default by model and size)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: carlosnet,ivannet")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: base,augmented")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated: 32-true,bf16-mixed")
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override for the train runs (repeat)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of our runs (default: PyTorch's, one per core); Keras keeps its default",
    )
    p.add_argument("--startup-model", default="carlosnet", help="model of the start-up measurement")
    p.add_argument("--cache-dir", default=None, help="warm cache folder (default: a fresh temporary one)")
    p.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(*args.worker)
        return 0

    size_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    args.precisions = [q for q in args.precisions.split(",") if q]
    skip = {s for s in args.skip.split(",") if s}
    if args.smoke and not args.builtin_size and not args.data:
        args.builtin_size = 240
    if args.data:
        args.data = str(Path(args.data).expanduser().resolve())
    for name, values, valid in (("models", args.models, MODELS), ("variants", args.variants, VARIANTS),
                                ("precisions", args.precisions, PRECISIONS), ("skip", skip, SECTIONS)):  # fmt: skip
        if set(values) - set(valid):
            p.error(f"--{name}: unknown {sorted(set(values) - set(valid))}; valid: {list(valid)}")
    if args.keras and not KERAS_PEER.is_file():
        p.error(f"--keras given but the peer {KERAS_PEER} is missing")

    import torch

    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="handgestures-bench-"))
    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else workdir / "cache"
    base_spec = {"data": args.data, "builtin_size": args.builtin_size, "size": size_name, "threads": args.threads}
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv),
        "size": size_name,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
        "data": args.data or f"built-in hands ({args.builtin_size or 21600})",
    }
    try:
        if "gemm" not in skip:
            log("gemm peak ...")
            gemm_spec = {"sizes": SIZES[size_name]["gemm"], "reps": SIZES[size_name]["reps"], "threads": args.threads}
            report["gemm"] = run_worker("gemm", gemm_spec, workdir)
        if "load" not in skip:
            cold_dir = workdir / "cold-cache"
            log("data load, cold ...")
            cold = run_worker("load", {**base_spec, "cache_dir": str(cold_dir)}, workdir)
            log("data load, warm ...")
            warm = run_worker("load", {**base_spec, "cache_dir": str(cold_dir)}, workdir)
            report["data_load"] = {"cold": cold, "warm": warm}
            if not args.cache_dir and cold_dir.is_dir():  # reuse it as the warm cache of the rest
                cold_dir.rename(cache_dir)
        if not cache_dir.is_dir() or args.cache_dir:  # fill the warm cache (a no-op when it is)
            run_worker("load", {**base_spec, "cache_dir": str(cache_dir)}, workdir)
        train: dict[str, Any] = {}
        if "train" not in skip:
            for model in args.models:
                for variant in args.variants:
                    for precision in args.precisions:
                        key = f"{model}/{variant}/{precision}"
                        log(f"train {key} ...")
                        spec = {**base_spec, "cache_dir": str(cache_dir), "model": model, "variant": variant,
                                "precision": precision, "overrides": args.override,
                                "out_dir": str(workdir / key.replace("/", "-"))}  # fmt: skip
                        r = run_worker("train", spec, workdir)
                        train[key] = r
                        if "error" not in r:
                            log(f"  {r['train_images_per_s']} img/s (median {r['train_images_per_s_median']}; "
                                f"bare {r['bare_step_images_per_s']}, x{r['lightning_vs_bare']}); "
                                f"infer {r['infer_images_per_s']}/{r['infer_aug_images_per_s']} img/s")  # fmt: skip
            report["train"] = train
        gemm = report.get("gemm") or {}
        if gemm.get("fp32_gflops"):
            fractions = {}
            for key, r in train.items():
                if key.startswith("ivannet/") and r.get("train_images_per_s"):
                    peak = gemm["bf16_gflops"] if "bf16" in key else gemm["fp32_gflops"]
                    achieved = r["train_images_per_s"] * r["train_gflop_per_image"]
                    fractions[key] = {"gflops": round(achieved, 1), "fraction_of_peak": round(achieved / peak, 3),
                                      "peak_used": "bf16" if "bf16" in key else "fp32"}  # fmt: skip
            report["ivannet_fraction_of_gemm_peak"] = fractions
        startup_warm = None
        if "startup" not in skip:
            startup_cache = workdir / "startup-cold-cache"
            if size_name == "full":
                log("start-up, cold cache ...")
                cold = measure_startup(args, workdir, startup_cache, "cold")
            else:  # the cold load is measured above; not paid twice in a short run
                shutil.copytree(cache_dir, startup_cache)
                cold = {}
            log("start-up, warm cache ...")
            warm_runs = [measure_startup(args, workdir, startup_cache, f"warm{i}")
                         for i in range(1 if size_name != "full" else 2)]  # fmt: skip
            ok = [w for w in warm_runs if "error" not in w]
            warm = min(ok, key=lambda w: w["startup_seconds"]) if ok else warm_runs[0]
            interp = interpreter_start_s()
            for entry in (cold, warm):
                if entry.get("startup_seconds") is not None:
                    entry["launch_to_first_step_s"] = round(entry["startup_seconds"] + interp, 2)
            loads = report.get("data_load") or {}
            if (
                not cold
                and warm.get("launch_to_first_step_s")
                and all("seconds" in loads.get(k, {}) for k in ("cold", "warm"))
            ):
                extra = loads["cold"]["seconds"] - loads["warm"]["seconds"]
                cold = {"estimated": True, "how": "warm start-up + (cold - warm data load)",
                        "launch_to_first_step_s": round(warm["launch_to_first_step_s"] + extra, 2)}  # fmt: skip
            report["startup"] = {"model": args.startup_model, "interpreter_start_s": interp, "cold": cold,
                                 "warm": warm, "warm_runs": warm_runs}  # fmt: skip
            startup_warm = warm.get("launch_to_first_step_s")
        keras = None
        if args.keras and "keras" not in skip:
            keras = measure_keras(args, size_name, workdir)
            ratios = {}
            for key, r in train.items():
                model, variant, precision = key.split("/")
                k = (keras.get(f"{model}/{variant}") or {}).get("train_img_per_s")
                if k and r.get("train_images_per_s"):
                    ratios[key] = round(r["train_images_per_s"] / k, 2)
            keras["ratio_ours_over_keras"] = ratios
            report["keras"] = keras
        if train:
            default = default_precision()
            proj: dict[str, Any] = {"startup_per_run_s": startup_warm, "default_precision": default}
            for precision in args.precisions:
                proj[precision] = {
                    "measured_split": projection(train, startup_warm, precision, args.models, args.variants, None),
                    "study_21600": projection(train, startup_warm, precision, args.models, args.variants, STUDY_SPLIT),
                }
            if default["resolved"] in args.precisions:  # what `python train.py` runs on this machine
                proj["default"] = {"precision": default["resolved"], **proj[default["resolved"]]}
            if len(args.precisions) > 1 and len(args.models) > 1:
                # a precision per model, e.g. CarlosNet fp32 (if bf16 cost it accuracy) with IvanNet bf16
                proj["per_model_precision"] = mixed_projections(train, startup_warm, args)
            if keras:
                n_train = next((r["splits"]["train"] for r in train.values() if "splits" in r), STUDY_SPLIT["train"])
                proj["keras_train_only"] = {
                    "measured_split": keras_projection(keras, args.models, args.variants, n_train),
                    "study_21600": keras_projection(keras, args.models, args.variants, STUDY_SPLIT["train"]),
                }
            report["projection"] = proj
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["contention"] = contention_summary(report)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["benchmark_wall_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(report, indent=2))
    log(f"done in {report['benchmark_wall_s']:.0f} s")
    return 0


def contention_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The most cores other processes used around any measurement, and a verdict."""
    seen: dict[str, float] = {}

    def visit(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            busy = [b for b in node.get("other_busy_cores") or [] if b is not None]
            if busy:
                seen[prefix] = max(busy)
            for key, value in node.items():
                visit(f"{prefix}/{key}" if prefix else key, value)

    visit("", report)
    worst = max(seen.values(), default=None)
    quiet = worst is not None and worst < 0.25
    return {
        "max_other_busy_cores": worst,
        "quiet": quiet,
        "note": "quiet machine: figures are comparable"
        if quiet
        else "other processes were using the CPU: throughput figures (ours far more than Keras') are depressed",
        "busiest": sorted(seen.items(), key=lambda kv: -kv[1])[:5],
    }


def default_precision() -> dict[str, str]:
    """The configured default precision and what it resolves to on this machine."""
    import yaml

    from handgestures.train import resolve_precision

    trainer = yaml.safe_load((ROOT / "conf" / "trainer" / "default.yaml").read_text())
    configured = str(trainer.get("precision"))
    return {"configured": configured, "resolved": resolve_precision(configured, trainer.get("accelerator", "auto"))}


if __name__ == "__main__":
    sys.exit(main())
