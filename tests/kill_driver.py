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

import handgestures.train as train_module

SIGNAL, EPOCH, BATCH = getattr(signal, f"SIG{sys.argv[1]}"), int(sys.argv[2]), int(sys.argv[3])


class SendSignal(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch + 1 == EPOCH and batch_idx + 1 == BATCH:
            os.kill(os.getpid(), SIGNAL)


_build_run = train_module.build_run
train_module.build_run = lambda cfg, extra_callbacks=(): _build_run(cfg, (*extra_callbacks, SendSignal()))
root = Path(__file__).resolve().parents[1]
sys.argv = [str(root / "train.py"), *sys.argv[4:]]
runpy.run_path(str(root / "train.py"), run_name="__main__")
