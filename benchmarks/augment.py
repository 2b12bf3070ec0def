"""Benchmark the Keras augmentation (handgestures.data.augment) against the kernel floor.

Prints one JSON object on stdout (logs go to stderr): images/s on 128x128 single-channel
float32 batches, median over ``--repeats`` timed runs after warm-up, for

* ``batched``: ``sample_keras_params`` + ``apply_keras_transform`` on the whole batch
  (project config, sampling included), and ``batched_keras3``;
* ``per_image_loop``: the same, one ``B=1`` call per image;
* ``bare_kernel``: ``F.affine_grid`` + ``F.grid_sample`` with a fixed theta (the
  kernel floor the brief named; ``apply_keras_transform`` builds its grid faster than
  ``affine_grid`` and warps in cache-sized chunks on CPU, so it can beat it), and
  ``grid_sample_only_precomputed_grid`` (the sampling alone);
* ``torchvision_random_affine``: ``v2.RandomAffine(degrees=90, translate=(0.2, 0.2),
  scale=(0.8, 1.2))`` on the batch (ONE parameter set per call, nearest interpolation
  and zero fill by default: not equivalent, for scale only) and its bilinear variant;
* variants: ``bf16`` (grid and image in bfloat16, max |error| against the float32
  path on the 0..1 scale), ``half_identity`` (half the samples have an identity warp
  and are copied, not warped), ``constant_fill``, ``compiled_warp`` (``torch.compile``
  of affine_grid + grid_sample; skipped with ``--no-compile``), ``fixed_params_no_sampling``,
  and on a GPU ``batched_params_on_device`` (params moved to the GPU before the call, so
  the matrices are built there; the default keeps them on the CPU and moves one matrix).

Example: ``python benchmarks/augment.py --threads 2 --repeats 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from handgestures.data.augment import (  # noqa: E402
    _sampling_matrices,
    apply_keras_transform,
    sample_keras_params,
)
from handgestures.data.augment.params import study_params  # noqa: E402

SIZE = 128
CFG = study_params().as_kwargs()  # the study's seven ImageDataGenerator parameters (conf/data/augmented.yaml)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


BEST: dict[str, float] = {}


def measure(
    fn: Callable[[], object],
    images: int,
    repeats: int,
    device: torch.device,
    min_time: float = 0.05,
    best_key: str | None = None,
) -> float:
    """Median images/s of ``fn`` (which processes ``images`` images per call).

    With ``best_key``, the best run is also kept in ``BEST``: on a shared machine the
    median mixes in other processes' load, the best run shows the uncontended speed.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    inner = max(1, int(min_time / once))  # several calls per timed run for tiny timings
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        rates.append(images * inner / (time.perf_counter() - t0))
    if best_key:
        BEST[best_key] = max(rates)
    return statistics.median(rates)


def measure_paired(
    fa: Callable[[], object], fb: Callable[[], object], images: int, repeats: int, device: torch.device
) -> float:
    """Median over alternating runs of rate(fb) / rate(fa): robust to load drifting over time."""
    ratios = []
    for _ in range(repeats):
        ra = measure(fa, images, 1, device)
        rb = measure(fb, images, 1, device)
        ratios.append(rb / ra)
    return statistics.median(ratios)


def bench_batch(batch: int, args: argparse.Namespace, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, SIZE, SIZE, generator=gen).to(device)
    shape = [batch, 1, SIZE, SIZE]
    theta = torch.tensor([[0.9, -0.2, 0.05], [0.2, 0.9, -0.03]], device=device).expand(batch, 2, 3).contiguous()
    rep = args.repeats
    res: dict[str, object] = {}

    def bare() -> torch.Tensor:
        grid = F.affine_grid(theta, shape, align_corners=True)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)

    fixed_grid = F.affine_grid(theta, shape, align_corners=True)

    def sample_only() -> torch.Tensor:
        return F.grid_sample(x, fixed_grid, mode="bilinear", padding_mode="border", align_corners=True)

    def batched(semantics: str = "keras2", fill_mode: str = "nearest") -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            p = sample_keras_params(batch, (SIZE, SIZE), **CFG, generator=gen)
            return apply_keras_transform(x, p, semantics=semantics, fill_mode=fill_mode)

        return run

    def per_image() -> None:
        for i in range(batch):
            p = sample_keras_params(1, (SIZE, SIZE), **CFG, generator=gen)
            apply_keras_transform(x[i : i + 1], p)

    log(f"batch {batch}: bare kernel, batched, per-image loop")
    res["bare_kernel"] = measure(bare, batch, rep, device, best_key="bare_kernel")
    res["grid_sample_only_precomputed_grid"] = measure(sample_only, batch, rep, device)
    res["batched"] = measure(batched(), batch, rep, device, best_key="batched")
    res["batched_keras3"] = measure(batched("keras3"), batch, rep, device)
    res["per_image_loop"] = measure(per_image, batch, max(3, rep // 2), device)
    if device.type != "cpu":  # params drawn on the CPU then moved: matrices built on the device (syncs)

        def params_on_device() -> torch.Tensor:
            p = sample_keras_params(batch, (SIZE, SIZE), **CFG, generator=gen, device=device)
            return apply_keras_transform(x, p)

        res["batched_params_on_device"] = measure(params_on_device, batch, rep, device)
    res["batched_vs_bare"] = res["batched"] / res["bare_kernel"]
    res["batched_vs_bare_paired"] = measure_paired(bare, batched(), batch, rep, device)
    res["best_run_bare_kernel"] = BEST["bare_kernel"]
    res["best_run_batched"] = BEST["batched"]

    log(f"batch {batch}: torchvision RandomAffine")
    tv_nearest = v2.RandomAffine(degrees=90, translate=(0.2, 0.2), scale=(0.8, 1.2))
    tv_bilinear = v2.RandomAffine(
        degrees=90, translate=(0.2, 0.2), scale=(0.8, 1.2), interpolation=v2.InterpolationMode.BILINEAR
    )
    res["torchvision_random_affine"] = measure(lambda: tv_nearest(x), batch, rep, device)
    res["torchvision_random_affine_bilinear"] = measure(lambda: tv_bilinear(x), batch, rep, device)

    log(f"batch {batch}: variants")
    res["constant_fill"] = measure(batched(fill_mode="constant"), batch, rep, device)
    params = sample_keras_params(batch, (SIZE, SIZE), **CFG, generator=gen)
    half = {k: v.clone() for k, v in params.items()}
    for k, ident in zip(("theta", "tx", "ty", "shear", "zx", "zy"), (0.0, 0.0, 0.0, 0.0, 1.0, 1.0), strict=True):
        half[k][::2] = ident
    res["half_identity"] = measure(lambda: apply_keras_transform(x, half), batch, rep, device)
    res["fixed_params_no_sampling"] = measure(lambda: apply_keras_transform(x, params), batch, rep, device)

    # bf16: grid and image in bfloat16 (apply_keras_transform itself warps half types in float32)
    mat, _ = _sampling_matrices(params, batch, SIZE, SIZE, "keras2")
    x16, mat16 = x.bfloat16(), mat.to(device=device, dtype=torch.bfloat16)

    def bf16() -> torch.Tensor:
        grid = F.affine_grid(mat16, shape, align_corners=True)
        return F.grid_sample(x16, grid, mode="bilinear", padding_mode="border", align_corners=True)

    try:
        ref = apply_keras_transform(x, params)
        res["bf16"] = measure(bf16, batch, rep, device)
        res["bf16_max_abs_err_vs_float32"] = (bf16().float() - ref).abs().max().item()
        res["bf16_mean_abs_err_vs_float32"] = (bf16().float() - ref).abs().mean().item()
    except RuntimeError as exc:  # pragma: no cover - backend dependent
        res["bf16"] = f"failed: {exc}"

    if not args.no_compile:
        log(f"batch {batch}: torch.compile of the warp (compiling...)")
        try:

            def warp(img: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
                grid = F.affine_grid(th, list(img.shape), align_corners=True)
                return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)

            compiled = torch.compile(warp, dynamic=False)
            t0 = time.perf_counter()
            out = compiled(x, mat.to(device=device, dtype=torch.float32))
            res["compiled_warp_compile_s"] = time.perf_counter() - t0
            res["compiled_warp_max_abs_err"] = (out - ref).abs().max().item()
            res["compiled_warp"] = measure(
                lambda: compiled(x, mat.to(device=device, dtype=torch.float32)), batch, rep, device
            )
            res["compiled_warp_vs_bare"] = res["compiled_warp"] / res["bare_kernel"]
        except Exception as exc:  # noqa: BLE001 - report whatever the backend raises
            res["compiled_warp"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return {k: (round(v, 4 if abs(v) < 10 else 1) if isinstance(v, float) else v) for k, v in res.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    parser.add_argument("--batch-sizes", default="32,256", help="comma-separated (default 32,256)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = {
        "torch": torch.__version__,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "image": [1, SIZE, SIZE],
        "unit": "images/s (median)",
        "loadavg_before": [round(v, 2) for v in os.getloadavg()],
    }
    for b in (int(s) for s in args.batch_sizes.split(",")):
        result[f"batch_{b}"] = bench_batch(b, args, device)
    result["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
