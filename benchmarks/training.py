"""``train[model/variant/precision]``: training and inference throughput through the real Lightning loop.

One subprocess each, built from the project's Hydra config and ``handgestures.training.train.build_run``,
so the datamodule, module, callbacks, logger and trainer are exactly those of ``python
train.py``; the bare loops use the DataModule's own ``prepare_batch``, so their data path is
the training's.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SIZES, compose_cfg, data_overrides, log, peak_rss_mb, rate, reset_peak_rss
from benchmarks.inference import inference_rates, pooled_rate


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

    ``with_data``: each step gathers a random uint8 batch from the training split and passes
    it through ``datamodule.prepare_batch(batch, training=True)`` (rescale, the training
    augmentation when the variant has it, channels-last), the training's own data path,
    without Lightning; otherwise one fixed prepared batch is reused (no data path at all).
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
    fixed_x, fixed_y = datamodule.prepare_batch(train[torch.randperm(len(train), generator=gen)[:batch].tolist()])
    fixed_x = fixed_x.contiguous(memory_format=fmt)

    def step() -> None:
        if with_data:
            x, y = datamodule.prepare_batch(train[torch.randint(len(train), (batch,), generator=gen).tolist()],
                                            training=True)  # fmt: skip
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

    from handgestures.training.train import build_run

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

    infer = inference_rates(datamodule.eval_names, timer.test_end, timer.test_images)
    plain = [v for k, v in infer.items() if not k.endswith("_aug")]
    aug = [v for k, v in infer.items() if k.endswith("_aug")]

    bare_median = statistics.mean([bare_before["median"], bare_after["median"]])
    iter_median = statistics.median(iters)
    from hydra.utils import instantiate

    macs = model_macs(instantiate(cfg.model))
    return {
        "model": spec["model"], "variant": spec["variant"], "precision": spec["precision"],
        "overrides": spec.get("overrides", []), "threads": torch.get_num_threads(),
        "splits": splits, "batch_size": batch, "epochs_in_study": int(cfg.epochs),
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
        "infer_images_per_s": pooled_rate(plain),
        "infer_aug_images_per_s": pooled_rate(aug),
        "infer_by_set": {k: rate(v["images"], v["seconds"]) for k, v in infer.items()},
        "checkpoint_save_s": round(ckpt_s, 3), "checkpoint_mb": round(ckpt_mb, 1),
        "load_s": round(load_s, 2), "setup_s": round(setup_s, 2),
        "macs_per_image": macs, "train_gflop_per_image": round(6 * macs / 1e9, 4),
        "peak_rss_mb": max(peak_before_fit, peak_rss_mb()),
        "peak_rss_mb_fit_and_test": peak_fit_test,
        "dataset_uint8_mb": round(datamodule.data.images.numel() / 2**20, 1),
    }  # fmt: skip
