"""Is the FastHookName workaround worth keeping? ``python benchmarks/hook_name.py [--steps 150] [--rounds 5]``.

Times whole Lightning training iterations (the trainer's loop, hooks, logging, optimiser
step) of CarlosNet on batches of 32 random 128x128 images, with the project's module
(:class:`handgestures.lightning_workarounds.FastHookName` mixed in) and with the same module
whose attribute assignment is plain ``nn.Module.__setattr__``. The two are run in
alternation, ``--rounds`` times each, so drift hits both alike; the median milliseconds per
iteration of each round count. Prints one JSON object; ``plain_over_fast`` above 1 means the
workaround saves time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from handgestures.models import CarlosNet  # noqa: E402
from handgestures.module import HandGestureClassifier  # noqa: E402
from handgestures.runtime import keep_freed_memory  # noqa: E402


class PlainSetattr(HandGestureClassifier):
    """The project's module without the workaround."""

    __setattr__ = nn.Module.__setattr__


class StepTimes(L.Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def median_ms(cls: type, loader: DataLoader, steps: int, precision: str, warmup: int) -> float:
    torch.manual_seed(0)
    times = StepTimes()
    trainer = L.Trainer(
        max_steps=warmup + steps, accelerator="cpu", devices=1, precision=precision, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[times], num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(cls(CarlosNet()), train_dataloaders=loader)
    gaps = [b - a for a, b in zip(times.ends[warmup:], times.ends[warmup + 1 :])]
    return 1000 * statistics.median(gaps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="timed iterations per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="bf16-mixed")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as train.py does
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    n = 32 * (args.warmup + args.steps + 1)
    data = TensorDataset(torch.rand(n, 1, 128, 128), torch.randint(0, 6, (n,)))
    loader = DataLoader(data, batch_size=32, shuffle=False)
    rounds: dict[str, list[float]] = {"fast": [], "plain": []}
    for _ in range(args.rounds):
        rounds["fast"].append(median_ms(HandGestureClassifier, loader, args.steps, args.precision, args.warmup))
        rounds["plain"].append(median_ms(PlainSetattr, loader, args.steps, args.precision, args.warmup))
    fast, plain = statistics.median(rounds["fast"]), statistics.median(rounds["plain"])
    print(json.dumps({
        "model": "carlosnet", "batch": 32, "precision": args.precision, "steps": args.steps,
        "threads": torch.get_num_threads(), "ms_per_iteration": {"fast": round(fast, 3), "plain": round(plain, 3)},
        "plain_over_fast": round(plain / fast, 4),
        "rounds_ms": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
