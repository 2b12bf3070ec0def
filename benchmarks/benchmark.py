"""Benchmark the study on this machine: ``python benchmarks/benchmark.py [--quick|--smoke] ...``.

Prints ONE JSON document on stdout; logs go to stderr. Every measurement runs in a fresh
subprocess of its own, and all of them run in one invocation, so that the ratios between
them hold on a shared, noisy machine even when the absolute figures drift. The jobs, one
module each in this folder:

* ``gemm`` (gemm.py): the machine's matrix-multiply peak in fp32 and bf16;
* ``data_load`` (data_load.py): loading the images, cold and warm cache;
* ``train[model/variant/precision]`` (training.py, inference.py): training throughput
  through the real Lightning loop, the same network in a bare PyTorch loop (with and
  without the DataModule's data path), inference on the cross-evaluation sets, checkpoint
  save time, peak memory;
* ``startup`` (startup.py): ``python train.py`` to its first training step;
* ``keras`` (keras_comparison.py, with ``--keras PYTHON --keras-script PATH``): a Keras implementation
  of the study on the same models and variants, and ours / Keras;
* ``projection`` (projection.py): the full study's wall time from the measured rates.

Examples::

    python benchmarks/benchmark.py --quick > bench.json
    python benchmarks/benchmark.py --data DATA/fingers/train --keras KERAS_VENV/bin/python \\
        --keras-script keras_study.py
    python benchmarks/benchmark.py --quick --models ivannet --precisions bf16-mixed \\
        --skip keras,startup,load --override channels_last=false

``--smoke`` is a seconds-long run on tiny built-in data, for tests of the JSON structure only.

Contention: measure on a quiet machine. With another busy process on a small machine,
PyTorch's OpenMP threads wait on each other at every operator and training slows down many
times over, so ratios to Keras mean nothing then. Every measurement records
``other_busy_cores`` and the report carries a ``contention`` summary; ``--threads 1`` gives
steadier, lower figures on a busy machine. ``docs/performance.md`` has measured figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` and `handgestures` importable

from benchmarks.common import (  # noqa: E402
    MODELS,
    PRECISIONS,
    SECTIONS,
    SIZES,
    STUDY_SPLIT,
    VARIANTS,
    busy_cores,
    log,
    run_worker,
)
from benchmarks.data_load import worker_load  # noqa: E402
from benchmarks.gemm import worker_gemm  # noqa: E402
from benchmarks.keras_comparison import keras_projection, measure_keras  # noqa: E402
from benchmarks.projection import contention_summary, default_precision, mixed_projections, projection  # noqa: E402
from benchmarks.startup import interpreter_start_s, measure_startup  # noqa: E402
from benchmarks.training import worker_train  # noqa: E402

WORKERS = {"gemm": worker_gemm, "load": worker_load, "train": worker_train}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short measurements: a few minutes in all")
    size.add_argument("--smoke", action="store_true", help="seconds, tiny built-in data: checks the JSON only")
    p.add_argument("--data", default=None, help="folder of Fingers PNGs; default: the built-in hands")
    p.add_argument("--builtin-size", type=int, default=None, help="built-in hands to generate (default 21,600)")
    p.add_argument("--keras", default=None, metavar="PYTHON", help="python of a Keras venv: runs the Keras script too")
    p.add_argument("--keras-script", default=None, metavar="PATH",
                   help="the Keras implementation of the study to compare with (needs --keras)")  # fmt: skip
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
    if bool(args.keras) != bool(args.keras_script):
        p.error("--keras PYTHON and --keras-script PATH go together")
    if args.keras_script and not Path(args.keras_script).is_file():
        p.error(f"--keras-script {args.keras_script}: no such file")

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


def worker_main(kind: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    busy_before = busy_cores()
    result = WORKERS[kind](spec)
    result["other_busy_cores"] = [busy_before, busy_cores()]  # before, after the measurement
    print("BENCHMARK-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
