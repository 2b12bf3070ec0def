"""Every exception that ends a command with its own exit code, and those codes.

The entry points print a :class:`UserError` as one clear message, without a traceback (the
traceback goes to the run's log), and exit with status 1; :class:`Interrupted` exits with
128 + the signal number (130 for SIGINT, 143 for SIGTERM), :class:`RunDiverged` with 1, and
:class:`CheckpointError` with 2 from the inference commands (1 from a training run, where it
is a :class:`UserError` like any other). Anything else is a bug and keeps its traceback.

A leaf module: the standard library only, so any layer of the package may import it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1  # an expected error (UserError), a failed or diverged run, a sweep with failed jobs
EXIT_USAGE = 2  # as argparse: a command line that cannot be run; the inference commands: an input they cannot use
EXIT_SIGINT = 128 + signal.SIGINT  # 130, the shell's convention
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class UserError(Exception):
    """An expected error: its message names the key, file or value and what was expected."""

    exit_code = EXIT_ERROR


class BadDataError(UserError, ValueError):
    """The data cannot train a network as it is: bad files, or a split that would not work."""


class NoImagesError(UserError, FileNotFoundError):
    """``data.root`` is not a folder, or holds no readable Fingers image."""


class FolderInUse(UserError):
    """Another live process trains in the run folder (its run.lock): this run leaves the folder as it is."""


class CheckpointError(UserError, ValueError):
    """A checkpoint (or a run folder) that cannot be used, with the reason."""


STORAGE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # disk full, file-size limit, quota
_PATH_NAMES = ("filepath", "file_path", "path", "filename", "fname", "urlpath")  # a writer's name for its file


class StorageFull(UserError):
    """Writing a file failed because the disk is full or a file-size limit (``ulimit -f``) was hit."""

    def __init__(self, err: OSError, file: str | None, folder: Path | None = None) -> None:
        self.file = file
        where = file or (f"a file in {folder}" if folder else "a file")
        resume = f"; what finished is kept: free some space, then `python train.py resume={folder}`" if folder else ""
        super().__init__(f"cannot write {where}: the disk is full or the file-size limit was hit "
                         f"({err.strerror or err}){resume}")  # fmt: skip


def storage_error(err: BaseException, folder: Path | None = None) -> StorageFull | None:
    """``err`` as a :class:`StorageFull` naming the file being written, or None for any other error.

    A failed ``write()`` names no file, so the file is the innermost frame's local that names one.
    """
    if isinstance(err, StorageFull) or not isinstance(err, OSError) or err.errno not in STORAGE_ERRNOS:
        return None
    file = err.filename2 or err.filename  # a copy or move (an atomic save across file systems): its destination
    tb, frames = err.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if file is not None:
            break
        found = [frame.f_locals.get(name) for name in _PATH_NAMES]
        file = next((os.fspath(v) for v in found if isinstance(v, (str, os.PathLike))), None)
    full = StorageFull(err, str(file) if file is not None else None, folder)
    full.__cause__ = err  # the original traceback stays in failed.json and the run's log
    return full


class OutOfMemory(UserError):
    """An allocation failed in training or evaluation: the batch does not fit in memory."""


_ALLOCATION = ("can't allocate memory", "DefaultCPUAllocator", "out of memory")


def memory_error(err: BaseException, batch_size: object, eval_batch_size: object) -> OutOfMemory | None:
    """``err`` as an :class:`OutOfMemory` naming the batch sizes and what to do, or None for another error."""
    if isinstance(err, OutOfMemory) or not (
        isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and any(a in str(err) for a in _ALLOCATION))
    ):
        return None
    size = re.search(r"allocate (\d+) bytes|[Tt]ried to allocate ([\d.]+ [KMGT]iB)", str(err))
    wanted = (f"{int(size.group(1)):,} bytes" if size.group(1) else size.group(2)) if size else "memory"
    oom = OutOfMemory(
        f"out of memory with batch_size={batch_size} (evaluation: data.eval_batch_size={eval_batch_size}): "
        f"torch could not allocate {wanted}; lower batch_size (the study's is 32) or data.eval_batch_size; "
        "the details are in the run folder's failed.json"
    )
    oom.__cause__ = err
    return oom


class PeerLost(UserError):
    """Another process of a DDP run stopped (killed, or failed), so a collective operation with it failed."""


_DIST_ERRORS = ("DistError", "DistBackendError", "DistNetworkError", "DistStoreError")
_PEER_GONE = re.compile(r"gloo.*(Connection (reset|closed) by peer|Broken pipe)|NCCL.*(remote process|closed)", re.S)


def _first_sentence(err: BaseException) -> str:
    """``err``'s message without gloo's source position, up to its first sentence's end."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(err).split()))
    return text.split(". ")[0][:200]


def peer_error(err: BaseException, folder: Path | None = None) -> PeerLost | None:
    """``err`` as a :class:`PeerLost` when it is a failed collective operation of a DDP run, else None.

    A rank that dies (SIGKILL, out of memory, a crash) leaves the others blocked in gloo or
    NCCL until the connection breaks; what they raise is torch's, not a bug of this run.
    """
    names = {cls.__name__ for cls in type(err).__mro__}
    if isinstance(err, UserError) or not (names & set(_DIST_ERRORS) or _PEER_GONE.search(str(err))):
        return None
    kept = f"; what finished is kept: `python train.py resume={folder}`" if folder else ""
    lost = PeerLost(
        "another process of this DDP run stopped (killed, or failed: its own log and message say which), so "
        f"the training could not go on ({_first_sentence(err)}){kept}"
    )
    lost.__cause__ = err  # the original traceback stays in failed.json and the run's log
    return lost


class SpawnedJobFailed(UserError):
    """A process of a multi-process job failed; its own message is in its log and the run folder's failed.json."""

    def __init__(self, rank: int, exit_code: int, folder: Path) -> None:
        details = folder / "failed.json"
        where = f"details: {details}" if details.is_file() else f"its log is in {folder}"
        how = f"exited with code {exit_code}"
        if exit_code < 0:  # killed by a signal (the OOM killer, kill -9, a crash)
            with contextlib.suppress(ValueError):
                how = f"was killed by {signal.Signals(-exit_code).name}"
        kept = (
            f"; what finished is kept: `python train.py resume={folder}`" if (folder / "config.yaml").is_file() else ""
        )
        super().__init__(f"DDP process of rank {rank} {how}; {where}{kept}")


class RunDiverged(Exception):
    """A training loss was not finite: the run stops there."""

    exit_code = EXIT_ERROR

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        self.epoch, self.batch, self.loss = epoch, batch, loss
        self.progress: dict[str, Any] = {}
        super().__init__(
            f"training diverged: the training loss is {loss} at epoch {epoch}, batch {batch} (1-based); "
            "the run stopped there and kept the checkpoints of the epochs before. A lower optimizer.lr may help."
        )

    def record(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "loss": str(self.loss)}


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, progress: dict[str, Any] | None = None) -> None:
        self.signum, self.progress = int(signum), progress or {}
        self.exit_code = 128 + self.signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")
