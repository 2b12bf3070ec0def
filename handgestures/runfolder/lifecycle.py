"""What happens around ``train(cfg)``: the run folder, signals, and the record of a run that stopped.

* The folder: a process holds ``run.lock`` while it trains there; a folder that already
  holds results is refused unless the run resumes it or ``overwrite=true`` (which deletes
  those results first, so no older metrics.json survives beside the new config).
* SIGINT and SIGTERM: during training and evaluation the run stops at the end of the
  current batch (:class:`StopOnSignal`), keeps its checkpoints and epochs.csv, writes
  metrics.json with status ``interrupted`` and the command that resumes it, and exits with
  130 or 143. Outside the loops (loading data) it stops at once. A second signal stops at once.
* A run that diverged writes status ``diverged``; one that failed writes failed.json (error
  and traceback) and, when this run had written a metrics.json, turns its status to ``failed``.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint

from handgestures.errors import EXIT_ERROR, FolderInUse, Interrupted, RunDiverged, UserError, peer_error, storage_error
from handgestures.runfolder import record as rr

log = logging.getLogger(__name__)

RESULT_FILES = (
    rr.METRICS_FILE,
    rr.FAILED_FILE,
    rr.EPOCHS_FILE,
    rr.CONFIG_FILE,
    "skipped.csv",
    "split.csv",
    "MODEL_CARD.md",
)
RESULT_DIRS = (rr.CHECKPOINT_DIR, "tensorboard")


def run_progress(trainer: L.Trainer) -> dict[str, Any]:
    """Epochs completed and the best checkpoint so far, for the record of a run that stopped."""
    ckpt = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    score = ckpt.best_model_score if best else None
    best = rr.in_folder(best, trainer.default_root_dir)
    return {rr.KEY_EPOCHS_RUN: int(trainer.current_epoch), rr.KEY_BEST_CHECKPOINT: best,
            rr.KEY_BEST_VAL_ACC: float(score) if score is not None else None}  # fmt: skip


class _Signals:
    """SIGINT/SIGTERM handlers: raise at once, or (while ``deferred``) let StopOnSignal stop at a batch end."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferred = False
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        first = self.received is None
        self.received = signum
        if self.deferred and first:
            print(f"\n{signal.Signals(signum).name} received: stopping at the end of this batch", file=sys.stderr)
            return
        raise Interrupted(signum)

    def __enter__(self) -> _Signals:
        self.received, self.deferred = None, False
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self.handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def reinstall(self) -> None:
        """Puts this object's handlers back where a library replaced them (inside the ``with`` only)."""
        for signum in self._previous:
            if signal.getsignal(signum) != self.handler:
                signal.signal(signum, self.handler)


SIGNALS = _Signals()


class StopOnSignal(L.Callback):
    """Turns a received SIGINT/SIGTERM into :class:`Interrupted` at the end of a batch, on every rank at once.

    The run's own handlers (:data:`SIGNALS`) replace the ones Lightning installs when a loop
    starts: Lightning's SIGTERM handler broadcasts from inside the handler, a collective that
    can pair with another one on a different rank and hang a DDP run, and its stop is decided
    by each rank alone. Here, with several processes, the ranks agree at each training batch end
    (one all-reduce of the signal number: any rank's signal stops all of them after the same
    batch) and at the end of an evaluation, whose ranks may see different numbers of batches.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        SIGNALS.deferred = True

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        SIGNALS.deferred = False

    @staticmethod
    def _take_signals(*_: Any) -> None:
        SIGNALS.reinstall()  # after Lightning's register_signal_handlers, before the first batch

    on_sanity_check_start = on_train_start = on_validation_start = on_test_start = _take_signals

    def _check(self, trainer: L.Trainer, collective: bool) -> None:
        received = SIGNALS.received
        if trainer.world_size > 1:
            if not collective:
                return
            received = _agreed_signal(received, trainer.strategy.root_device) or None
        if received is not None:
            raise Interrupted(received, run_progress(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer, collective=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check(trainer, collective=False)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check(trainer, collective=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1 and not trainer.sanity_checking:
            self._check(trainer, collective=True)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            self._check(trainer, collective=True)


def _agreed_signal(received: int | None, device: Any) -> int:
    """The largest signal number any rank received (0: none), the same on every rank."""
    flag = torch.tensor([received or 0], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


class RunLock:
    """``run.lock`` in the run folder while a process trains there; a live holder refuses a second one."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / rr.LOCK_FILE

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self.path.read_text().strip()
                if holder.isdigit() and int(holder) != os.getpid() and _alive(int(holder)):
                    raise FolderInUse(
                        f"{self.path.parent} is in use by process {holder} ({self.path}); choose another "
                        "hydra.run.dir, or wait for that run to end"
                    ) from None
                self.path.unlink(missing_ok=True)  # left by a killed run
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return self
        raise UserError(f"cannot take {self.path}: another process keeps creating it")

    def __exit__(self, *exc: Any) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def existing_results(folder: Path) -> list[str]:
    """The results of an earlier run that ``folder`` holds (names relative to it)."""
    found = [name for name in RESULT_FILES if (folder / name).is_file()]
    return found + [f"{name}/" for name in RESULT_DIRS if (folder / name).is_dir() and any((folder / name).iterdir())]


def prepare_folder(folder: Path, resume: bool, overwrite: bool) -> None:
    """Refuses a folder holding results unless resuming; ``overwrite`` deletes those results first."""
    found = existing_results(folder)
    if not found or resume:
        return
    if not overwrite:
        metrics = folder / rr.METRICS_FILE
        done = metrics.is_file() and rr.read_json(metrics).get(rr.KEY_STATUS) == rr.STATUS_DONE
        hint = "" if done else f"Resume it with `{resume_command(folder)}`, "
        raise UserError(
            f"{folder} already holds the results of a {'finished ' if done else ''}run ({', '.join(found)}). "
            f"{hint}pass overwrite=true to delete them and train again, or choose another hydra.run.dir"
        )
    for name in found:
        path = folder / name.rstrip("/")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (folder / rr.CHECKPOINT_DIR / rr.LAST_NOT_FOR_USE).unlink(missing_ok=True)
    log.info("overwrite=true: deleted %s from %s", ", ".join(found), folder)


def resume_command(folder: Path) -> str:
    return f"python train.py resume={shlex.quote(str(Path(folder).resolve()))}"


def log_to_file(message: str, exc: BaseException | None = None) -> None:
    """``message`` (and ``exc``'s traceback) to the run's log file only, not the console."""
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, message, None,
                               (type(exc), exc, exc.__traceback__) if exc is not None else None)  # fmt: skip
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _update_metrics(folder: Path, identity: dict[str, Any], updates: dict[str, Any]) -> None:
    path = folder / rr.METRICS_FILE
    current = rr.read_json(path) if path.is_file() else dict(identity)
    current.update({k: v for k, v in updates.items() if v is not None or k not in current})
    rr.write_json(path, current)


def record_stop(folder: Path, identity: dict[str, Any], err: BaseException, wrote_metrics: bool) -> int:
    """Writes the record of a run that ``err`` stopped; returns the exit code it asks for."""
    epochs = _epochs_in_csv(folder / rr.EPOCHS_FILE)
    if isinstance(err, Interrupted):
        command = resume_command(folder)
        _update_metrics(folder, identity, {rr.KEY_STATUS: rr.STATUS_INTERRUPTED, rr.KEY_ERROR: str(err),
                                           rr.KEY_EPOCHS_RUN: epochs, **err.progress, rr.KEY_RESUME_COMMAND: command,
                                           rr.KEY_EXIT_CODE: err.exit_code})  # fmt: skip
        print(f"\nrun interrupted ({err}); what finished is kept in {folder}.\nResume it with:\n  {command}",
              file=sys.stderr)  # fmt: skip
        return err.exit_code
    if isinstance(err, RunDiverged):
        _update_metrics(folder, identity, {rr.KEY_STATUS: rr.STATUS_DIVERGED, rr.KEY_ERROR: str(err),
                                           rr.KEY_EPOCHS_RUN: epochs, rr.KEY_DIVERGENCE: err.record(),
                                           **err.progress, rr.KEY_EXIT_CODE: rr.EXIT_ERROR})  # fmt: skip
        print(f"\n{err}\nrun folder: {folder}", file=sys.stderr)
        return rr.EXIT_ERROR
    if wrote_metrics and (folder / rr.METRICS_FILE).is_file():
        _update_metrics(folder, identity, {rr.KEY_STATUS: rr.STATUS_FAILED, rr.KEY_ERROR: one_line(err)})
    record_failure(folder, err)
    return rr.EXIT_ERROR


def one_line(err: BaseException) -> str:
    """``Type: message`` on one line (a multi-line message joined), for summaries and tables."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def record_failure(folder: Path, err: BaseException) -> Path:
    """failed.json: the error on one line, the full message, and the traceback."""
    err._recorded = True  # type: ignore[attr-defined]  (the entry point records each failure once)
    return rr.write_json(folder / rr.FAILED_FILE, {"error": one_line(err), "message": str(err),
                                                  "traceback": "".join(traceback.format_exception(err))})  # fmt: skip


def record_early_failure(folder: Path, err: BaseException) -> Path | None:
    """failed.json for an error before the run started (bad config), unless the folder holds another run's results.

    Nor when another live process holds the folder (:class:`FolderInUse`): that run has not written yet.
    """
    if (
        getattr(err, "_recorded", False)
        or isinstance(err, FolderInUse)
        or not folder.is_dir()
        or existing_results(folder)
    ):
        return None
    try:
        return record_failure(folder, err)
    except OSError as write_err:
        unrecorded(folder, write_err)
        return None


def unrecorded(folder: Path, write_err: OSError) -> None:
    """Says once, on stderr, that the record of a failure could not be written (disk full, no permission)."""
    print(f"note: the failure record {folder / rr.FAILED_FILE} could not be written "
          f"({write_err.strerror or write_err}); the error follows", file=sys.stderr)  # fmt: skip


def _epochs_in_csv(path: Path) -> int:
    if not path.is_file():
        return 0  # stopped before its first epoch ended
    return max(0, len([line for line in path.read_text().splitlines() if line.strip()]) - 1)


def guarded(folder: Path, identity: dict[str, Any], resume: bool, overwrite: bool, fn: Callable[[], Any]) -> Any:
    """Runs ``fn`` (the training) in ``folder`` with the lock, the signal handlers and the records.

    Returns ``fn``'s result. A stop is recorded in the folder and re-raised, with the exit
    code it asks for in ``err.exit_code`` (130/143 for signals, 1 otherwise).
    """
    with SIGNALS, RunLock(folder):
        metrics_before = (folder / rr.METRICS_FILE).stat().st_mtime_ns if (folder / rr.METRICS_FILE).exists() else None
        prepare_folder(folder, resume, overwrite)  # a refusal leaves the other run's folder untouched
        try:
            return fn()
        except BaseException as err:
            if isinstance(err, SystemExit) and type(err).__name__ == "SIGTERMException":
                err = Interrupted(signal.SIGTERM)  # Lightning's own SIGTERM stop, if it came first
            elif isinstance(err, KeyboardInterrupt):
                err = Interrupted(signal.SIGINT)
            elif not isinstance(err, Exception):
                raise
            err = storage_error(err, folder) or err  # disk full, file-size limit: one message naming the file
            err = peer_error(err, folder) or err  # another DDP process died: one message, not gloo's traceback
            path = folder / rr.METRICS_FILE
            wrote = path.exists() and (metrics_before is None or path.stat().st_mtime_ns != metrics_before or resume)
            try:
                err.exit_code = record_stop(folder, identity, err, wrote)
            except OSError as write_err:  # the record itself could not be written: said once, the error goes on
                err._recorded = True  # type: ignore[attr-defined]
                unrecorded(folder, write_err)
                err.exit_code = getattr(err, "exit_code", EXIT_ERROR)
            raise err
