"""Would storing Lightning's hook name without nn.Module's checks pay? ``python benchmarks/hook_name.py``.

Lightning sets ``LightningModule._current_fx_name`` around every hook it calls.
``nn.Module.__setattr__`` checks each assigned value against the module's parameters,
buffers and submodules first; a candidate workaround (``FastHookName`` below) stores a hook
name directly. This prints one JSON object with:

* ``assignments_per_step``: how many times Lightning sets the name per training iteration
  (counted over iterations 10-50 of a CarlosNet fit);
* ``us_per_assignment``: the cost of one assignment with and without the workaround
  (``timeit``, best of 5);
* ``saving_ms_per_step`` and ``saving_share``: their product, and its share of a measured
  CarlosNet iteration (batch 32, 128x128, ``--precision``);
* ``ms_per_iteration``: whole iterations with and without the workaround, in alternation,
  ``--rounds`` times (medians), which shows the run-to-run spread beside the saving.

The project does not use the workaround: it saved about 1% of a CarlosNet iteration, less
than the spread between rounds, for a dependence on a Lightning-internal attribute
(figures: docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import timeit
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from handgestures.models import CarlosNet  # noqa: E402
from handgestures.runtime import keep_freed_memory  # noqa: E402
from handgestures.training.module import HandGestureClassifier  # noqa: E402

HOOK_NAME = "_current_fx_name"


class FastHookName(HandGestureClassifier):
    """The project's module, storing a hook name (str or None) without nn.Module's checks."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == HOOK_NAME and (value is None or isinstance(value, str)):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class Counting(HandGestureClassifier):
    assignments = 0

    def __setattr__(self, name: str, value: object) -> None:
        if name == HOOK_NAME:
            type(self).assignments += 1
        super().__setattr__(name, value)


class StepTimes(L.Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []
        self.assignments: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        self.assignments.append(Counting.assignments)


def fit(cls: type, loader: DataLoader, steps: int, precision: str, warmup: int) -> StepTimes:
    torch.manual_seed(0)
    times = StepTimes()
    trainer = L.Trainer(
        max_steps=warmup + steps, accelerator="cpu", devices=1, precision=precision, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[times], num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(cls(CarlosNet()), train_dataloaders=loader)
    return times


def median_ms(cls: type, loader: DataLoader, steps: int, precision: str, warmup: int) -> float:
    ends = fit(cls, loader, steps, precision, warmup).ends
    return 1000 * statistics.median([b - a for a, b in zip(ends[warmup:], ends[warmup + 1 :])])


def us_per_assignment(cls: type) -> float:
    module = cls(CarlosNet())
    timings = timeit.repeat(lambda: setattr(module, HOOK_NAME, "on_train_batch_start"), number=100_000, repeat=5)
    return min(timings) / 100_000 * 1e6


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
    counted = fit(Counting, loader, 40, args.precision, 10).assignments
    per_step = (counted[50 - 1] - counted[10 - 1]) / 40
    cost = {"plain": us_per_assignment(HandGestureClassifier), "fast": us_per_assignment(FastHookName)}
    rounds: dict[str, list[float]] = {"fast": [], "plain": []}
    for _ in range(args.rounds):
        rounds["fast"].append(median_ms(FastHookName, loader, args.steps, args.precision, args.warmup))
        rounds["plain"].append(median_ms(HandGestureClassifier, loader, args.steps, args.precision, args.warmup))
    fast, plain = statistics.median(rounds["fast"]), statistics.median(rounds["plain"])
    saving_ms = per_step * (cost["plain"] - cost["fast"]) / 1000
    print(json.dumps({
        "model": "carlosnet", "batch": 32, "precision": args.precision, "steps": args.steps,
        "threads": torch.get_num_threads(), "assignments_per_step": per_step,
        "us_per_assignment": {k: round(v, 3) for k, v in cost.items()},
        "saving_ms_per_step": round(saving_ms, 4), "saving_share": round(saving_ms / plain, 4),
        "ms_per_iteration": {"fast": round(fast, 3), "plain": round(plain, 3)},
        "plain_over_fast": round(plain / fast, 4),
        "rounds_ms": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
