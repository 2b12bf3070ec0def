"""Where a CarlosNet training step spends its time, and what the fused first block and pooling before ReLU save.

Prints one JSON object on stdout (logs on stderr), all on batches of 32 images, 128x128:

* ``layer_order``: images/s of a bare training step (forward, cross-entropy, backward,
  SGD step) with the project's order (conv -> pool -> ReLU) and with Keras' order
  (conv -> ReLU -> pool, the same weights), for fp32 and bf16 autocast, channels_last and
  NCHW. The two orders are timed in alternation, ``--rounds`` times, and the median
  counts, so machine drift hits both alike; ``pool_first_over_keras_order`` is the ratio.
* ``fused_first_block``: the same, CarlosNet with its first block computed by
  :func:`handgestures.models.fused.conv_maxpool2d` (the default) against ``conv2d`` +
  ``max_pool2d``; ``fused_over_unfused`` is the ratio.
* ``layers_ms``: forward+backward milliseconds of each convolution and of the first two
  max-pools alone, in both layouts and both dtypes (median of ``--repeats`` timings).

Example: ``python benchmarks/carlosnet.py --rounds 3``.
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
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from handgestures.models import CarlosNet  # noqa: E402
from handgestures.runtime import keep_freed_memory  # noqa: E402

BATCH = 32


def log(*args: object) -> None:
    print("[bench_carlosnet]", *args, file=sys.stderr, flush=True)


def seconds_per_call(fn: Callable[[], None], calls: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def keras_order(net: CarlosNet) -> nn.Sequential:
    """The same layers (shared weights) in Keras' conv -> ReLU -> pool order."""
    f = net.features
    return nn.Sequential(f[0], f[2], f[1], f[3], f[5], f[4], f[6], f[8], f[7], *net.classifier)


def step_fn(model: nn.Module, channels_last: bool, bf16: bool) -> Callable[[], None]:
    x = torch.rand(BATCH, 1, 128, 128)
    y = torch.randint(0, 6, (BATCH,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def alternate(models: dict[str, Callable[[], nn.Module]], steps: int, rounds: int) -> dict[str, dict[str, float]]:
    """Images/s of each model's training step, timed in alternation; medians and ratio."""
    out = {}
    first, second = models
    for channels_last in (True, False):
        for bf16 in (False, True):
            key = f"{'channels_last' if channels_last else 'nchw'}/{'bf16' if bf16 else 'fp32'}"
            rates: dict[str, list[float]] = {name: [] for name in models}
            for _ in range(rounds):
                for name, build in models.items():
                    torch.manual_seed(0)
                    rates[name].append(BATCH / seconds_per_call(step_fn(build(), channels_last, bf16), steps))
            med = {f"{k}_images_per_s": round(statistics.median(v), 1) for k, v in rates.items()}
            med[f"{first}_over_{second}"] = round(med[f"{first}_images_per_s"] / med[f"{second}_images_per_s"], 3)
            out[key] = med
            log(key, med)
    return out


def layer_order(steps: int, rounds: int) -> dict[str, dict[str, float]]:
    """The project's conv -> pool -> ReLU against Keras' conv -> ReLU -> pool (unfused)."""
    return alternate(
        {
            "pool_first": lambda: CarlosNet(fused=False),
            "keras_order": lambda: keras_order(CarlosNet(fused=False)),
        },
        steps,
        rounds,
    )


def fused_first_block(steps: int, rounds: int) -> dict[str, dict[str, float]]:
    """The first block as one batched matrix product (``conv_maxpool2d``) against conv2d + max_pool2d."""
    return alternate(
        {
            "fused": lambda: CarlosNet(fused=True),
            "unfused": lambda: CarlosNet(fused=False),
        },
        steps,
        rounds,
    )


def layers_ms(repeats: int, calls: int) -> dict[str, float]:
    layers = {  # name: (module, input channels, input size, input needs a gradient)
        "conv1": (nn.Conv2d(1, 4, 3), 1, 128, False),
        "pool1": (nn.MaxPool2d(3), 4, 126, True),
        "conv2": (nn.Conv2d(4, 8, 5), 4, 42, True),
        "pool2": (nn.MaxPool2d(3), 8, 38, True),
        "conv3": (nn.Conv2d(8, 16, 7), 8, 12, True),
    }
    out = {}
    for channels_last in (True, False):
        for dtype in (torch.float32, torch.bfloat16):
            for name, (layer, channels, size, needs_grad) in layers.items():
                layer = layer.to(dtype)
                x = torch.rand(BATCH, channels, size, size, dtype=dtype)
                if channels_last:
                    layer = layer.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                x.requires_grad_(needs_grad)
                grad = torch.rand_like(layer(x))

                def fwd_bwd(layer=layer, x=x, grad=grad) -> None:
                    layer(x).backward(grad)

                times = [seconds_per_call(fwd_bwd, calls) for _ in range(repeats)]
                key = f"{'channels_last' if channels_last else 'nchw'}/{str(dtype).split('.')[-1]}/{name}"
                out[key] = round(statistics.median(times) * 1e3, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150, help="timed training steps per measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternations of each compared pair of models")
    p.add_argument("--repeats", type=int, default=3, help="timings per layer")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as in training
    began = time.perf_counter()
    report = {
        "threads": torch.get_num_threads(),
        "batch": BATCH,
        "fused_first_block": fused_first_block(args.steps, args.rounds),
        "layer_order": layer_order(args.steps, args.rounds),
        "layers_ms": layers_ms(args.repeats, max(20, args.steps // 2)),
    }
    report["wall_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
