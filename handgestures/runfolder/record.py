"""The record of a run: its folder's name, metrics.json's schema, and strict JSON writing.

Every reader of a run folder (the report, resume, the sweep summary) and every writer
(``train``, the entry point) goes through the names here, so a key or a status is spelled
once. metrics.json is strict JSON: a non-finite number is written as ``null`` (never the
bare ``NaN``/``Infinity`` that Python's json module emits by default and JSON forbids), and
a file is replaced atomically (temporary file in the same folder, then ``os.replace``), so
a reader never sees half a file and a kill never leaves one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from handgestures.errors import EXIT_ERROR, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM  # noqa: F401  (rr.EXIT_*: defined in errors)

# ---- files of a run folder --------------------------------------------------------------
METRICS_FILE = "metrics.json"
FAILED_FILE = "failed.json"  # why a job of a sweep failed (error, traceback)
CONFIG_FILE = "config.yaml"  # the resolved config the run trained with
EPOCHS_FILE = "epochs.csv"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LAST_NOT_FOR_USE = "LAST_CHECKPOINT_NOT_FOR_USE.txt"  # written when validation accuracy collapsed
LOCK_FILE = "run.lock"  # held while a process trains in the folder
RUN_LOG = "train.log"  # Hydra's job log (hydra.job.name is "train"): tracebacks of expected errors go here

# ---- metrics.json ----------------------------------------------------------------------
STATUS_TRAINED = "trained"  # training finished, the cross-evaluation not (yet)
STATUS_DONE = "done"  # trained and evaluated
STATUS_FAILED = "failed"  # an error stopped it
STATUS_DIVERGED = "diverged"  # a non-finite training loss stopped it
STATUS_INTERRUPTED = "interrupted"  # SIGINT/SIGTERM stopped it; resumable
STOPPED_STATUSES = (STATUS_FAILED, STATUS_DIVERGED, STATUS_INTERRUPTED)  # the run ended early

# key names (the values' meaning: handgestures.training.train.train and docs)
KEY_STATUS = "status"
KEY_METRICS = "metrics"  # {"<set>/acc": ..., "<set>/loss": ...} of the best checkpoint
KEY_ERROR = "error"  # one line: why the run stopped (failed, diverged, interrupted)
KEY_EPOCHS_RUN = "epochs_run"
KEY_BEST_CHECKPOINT = "best_checkpoint"  # null when no epoch finished: an untrained net is never "best"
KEY_BEST_VAL_ACC = "best_val_acc"
KEY_COLLAPSE = "collapse"  # {"epoch", "before", "after", "best_epoch"} or absent
KEY_LAST_CHECKPOINT_USABLE = "last_checkpoint_usable"  # false after a collapse
KEY_DIVERGENCE = "divergence"  # {"epoch", "batch", "loss"} or absent
KEY_RESUMED_FROM = "resumed_from"  # the checkpoint this attempt resumed from, or null
KEY_RESUME_COMMAND = "resume_command"
KEY_EXIT_CODE = "exit_code"

# exit codes of the entry point


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-Infinity) replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(payload: Any) -> str:
    """Strict JSON text of ``payload`` (non-finite numbers as null)."""
    return json.dumps(strict(payload), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Writes ``payload`` to ``path`` as strict JSON, atomically (tmp file + ``os.replace``)."""
    return write_text(path, dumps(payload))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically: readers see the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file of a run folder; bare NaN/Infinity (from older versions) read as None."""
    text = Path(path).read_text()
    return json.loads(text, parse_constant=lambda _: None)


# ---- run folder names --------------------------------------------------------------------
PROCESS_STARTED = time.time() - 1.0  # about when this process started (files older than this are not its own)
STAMP_FORMAT = "%Y%m%d-%H%M%S-%f"  # microseconds: two runs started in the same second differ
_STAMP_ENV = "HANDGESTURES_RUN_STAMP"
_stamp: str | None = None


def run_stamp() -> str:
    """The time stamp of this process's run or sweep folder, the same at every call.

    Microseconds keep two runs started in the same second apart. A launcher's worker process
    (joblib) inherits its parent's stamp through the environment, so every job of a sweep
    resolves the same sweep folder.
    """
    global _stamp
    if _stamp is None:
        inherited = os.environ.get(_STAMP_ENV, "")
        pid, _, stamp = inherited.partition(":")
        if stamp and pid in (str(os.getppid()), str(os.getpid())):
            _stamp = stamp
        else:
            _stamp = datetime.now().strftime(STAMP_FORMAT)
            os.environ[_STAMP_ENV] = f"{os.getpid()}:{_stamp}"
    return _stamp


def hydra_subdir(output_dir: str) -> str:
    """Where Hydra records a job's config in ``output_dir``: ``.hydra``, or beside it if taken.

    A resumed run, or a run refused because its folder holds results, must not overwrite the
    original ``.hydra/`` (the report reads a run's choices there).
    """
    return f".hydra-{run_stamp()}" if (Path(output_dir) / ".hydra").exists() else ".hydra"


def register_resolvers() -> None:
    """``${hg_stamp:}``, ``${hg_first:a,b}`` and ``${hg_hydra_subdir:dir}`` for conf/hydra/default.yaml."""
    if not OmegaConf.has_resolver("hg_stamp"):
        OmegaConf.register_new_resolver("hg_stamp", run_stamp)
    if not OmegaConf.has_resolver("hg_first"):  # the first value that is set: resume's folder, else a new one
        OmegaConf.register_new_resolver("hg_first", lambda first, other: other if first in (None, "") else first)
    if not OmegaConf.has_resolver("hg_hydra_subdir"):
        OmegaConf.register_new_resolver("hg_hydra_subdir", hydra_subdir)


register_resolvers()


def per_class_accuracy(confusion: dict[str, list[list[int]]]) -> dict[str, dict[str, float | None]]:
    """metrics.json's ``per_class_acc`` from its ``confusion`` (rows: true class): ``None`` for a class with no images.

    Runs and baselines both record it through here, so a class absent from a set reads the same in both.
    """
    return {name: class_accuracy(matrix) for name, matrix in confusion.items()}


def class_accuracy(matrix: list[list[int]], names: list[str] | None = None) -> dict[str, float | None]:
    """Each true class's accuracy (a confusion matrix's rows), by name (default "0", "1", ...); None: no images."""
    names = names or [str(i) for i in range(len(matrix))]
    return {names[i]: (row[i] / sum(row) if sum(row) else None) for i, row in enumerate(matrix)}


def in_folder(path: str | os.PathLike | None, folder: str | os.PathLike) -> str | None:
    """``path`` as metrics.json records it: relative to the run folder when inside it, so a copied
    or moved folder points at its own files (``checkpoints/best-....ckpt``); else as it is."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return str(path)
