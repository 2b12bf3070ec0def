"""What training health costs (``TrainingHealth``, on by default): per step and per epoch.

Per step it takes one gradient norm per layer (``on_before_optimizer_step``); per epoch one
forward pass of the probe batch with hooks on the ReLUs. Measured on the study's networks
with a plain training step (forward, cross-entropy, backward, SGD) on a fixed batch, rounds
alternating with and without the per-step norms, so both see the same machine load:

    python benchmarks/health.py [--steps 30] [--rounds 3] [--models carlosnet ivannet]

Prints one JSON object: per model and precision, the median step time without and with the
norms, their difference, and the probe's time as a share of a study epoch (375 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from contextlib import nullcontext
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from handgestures.models import CarlosNet, IvanNet
from handgestures.training.health import TrainingHealth, dead_fractions

NETS = {"carlosnet": CarlosNet, "ivannet": IvanNet}
STUDY_STEPS_PER_EPOCH = 375  # 12,000 training images / batch 32


def step_times(net, opt, x, y, steps: int, health: TrainingHealth | None, autocast) -> list[float]:
    module = SimpleNamespace(device=x.device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with autocast():
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if health is not None:
            health.on_before_optimizer_step(None, module, opt)
            health._norms.clear()  # noqa: SLF001 (the benchmark keeps no history)
        opt.step()
        times.append(time.perf_counter() - start)
    return times


def measure(model: str, precision: str, steps: int, rounds: int) -> dict:
    torch.manual_seed(0)
    net = NETS[model]().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.rand(32, 1, 128, 128).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 6, (32,))
    probe = torch.rand(64, 1, 128, 128).contiguous(memory_format=torch.channels_last)
    bf16 = precision == "bf16-mixed"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    health = TrainingHealth()
    health.setup(None, SimpleNamespace(net=net, device=x.device), "fit")
    step_times(net, opt, x, y, 3, None, autocast)  # warm-up
    plain, with_norms, probes = [], [], []
    for _ in range(rounds):
        plain += step_times(net, opt, x, y, steps, None, autocast)
        with_norms += step_times(net, opt, x, y, steps, health, autocast)
        start = time.perf_counter()
        with autocast():
            dead_fractions(net, health._relus, probe)  # noqa: SLF001
        probes.append(time.perf_counter() - start)
    base, normed, probe_s = statistics.median(plain), statistics.median(with_norms), statistics.median(probes)
    return {
        "step_ms": round(base * 1e3, 3),
        "step_with_norms_ms": round(normed * 1e3, 3),
        "norms_ms_per_step": round((normed - base) * 1e3, 3),
        "norms_share_of_step": round((normed - base) / base, 4),
        "probe_ms_per_epoch": round(probe_s * 1e3, 1),
        "probe_share_of_study_epoch": round(probe_s / (base * STUDY_STEPS_PER_EPOCH), 5),
        "steps_per_round": steps,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    args = parser.parse_args()
    results = {f"{m}/{p}": measure(m, p, args.steps, args.rounds) for m in args.models for p in args.precisions}
    print(json.dumps({
        "benchmark": "health", "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "load_average": list(os.getloadavg()), "results": results,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
