"""Runs `train.py ARGS...` with its address space capped at MiB megabytes above what it uses when training starts.

    python tests/memory_driver.py MiB train.py-args...

The cap (RLIMIT_AS) is set once torch and the data are loaded, so that a batch too large for
the machine fails in torch's allocator as it would on a machine with that much free memory.
"""

import resource
import runpy
import sys
from pathlib import Path

import lightning as L

import handgestures.training.train as train_module


class CapMemory(L.Callback):
    def __init__(self, mib: int) -> None:
        self.mib = mib

    def on_train_start(self, trainer, pl_module):
        pages = int(Path("/proc/self/statm").read_text().split()[0])
        limit = pages * resource.getpagesize() + self.mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


if __name__ == "__main__":  # pytest collects this file too (--doctest-modules): nothing runs on import
    cap = CapMemory(int(sys.argv[1]))
    _build_run = train_module.build_run
    train_module.build_run = lambda cfg, extra_callbacks=(): _build_run(cfg, (*extra_callbacks, cap))
    root = Path(__file__).resolve().parents[1]
    sys.argv = [str(root / "train.py"), *sys.argv[2:]]
    runpy.run_path(str(root / "train.py"), run_name="__main__")
