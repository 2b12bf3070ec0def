"""Runs `train.py ARGS...` and sends the process a signal at the start of one training batch.

    python tests/kill_driver.py SIGNAL EPOCH BATCH train.py-args...

EPOCH and BATCH are 1-based; SIGNAL is KILL, TERM or INT. Batch 1 of epoch E is the epoch
boundary (epoch E-1's checkpoint is written, nothing of epoch E has run). The tests use it to
kill a real `train.py` process at a known point, with no hook in the project's code.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import lightning as L

import handgestures.training.train as train_module


class SendSignal(L.Callback):
    def __init__(self, signum: int, epoch: int, batch: int) -> None:
        self.signum, self.epoch, self.batch = signum, epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch + 1 == self.epoch and batch_idx + 1 == self.batch:
            os.kill(os.getpid(), self.signum)


if __name__ == "__main__":  # pytest collects this file too (--doctest-modules): nothing runs on import
    send = SendSignal(getattr(signal, f"SIG{sys.argv[1]}"), int(sys.argv[2]), int(sys.argv[3]))
    _build_run = train_module.build_run
    train_module.build_run = lambda cfg, extra_callbacks=(): _build_run(cfg, (*extra_callbacks, send))
    root = Path(__file__).resolve().parents[1]
    sys.argv = [str(root / "train.py"), *sys.argv[4:]]
    runpy.run_path(str(root / "train.py"), run_name="__main__")
