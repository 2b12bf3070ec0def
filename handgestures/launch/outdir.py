"""The output folder of ``python train.py``, checked before Hydra or torch touch anything.

Hydra creates the run folder (and its log file) before the job starts, so an unwritable
folder would otherwise end in Hydra's traceback. :func:`check_output_folder` reads the folder
from the command line (``hydra.run.dir=``, ``hydra.sweep.dir=`` with ``-m``, ``resume=``;
else the default ``outputs/runs`` or ``outputs/sweeps``), finds the nearest part of that path
that exists, and refuses it in one message (exit 1) unless it is a folder this process may
write into. Standard library only: it runs before the heavy imports.

It also notes what the folder held before Hydra wrote into it, so that a command refused
before it trained (a refused ``resume=``) can take back what Hydra added (:func:`remove_added`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from handgestures.errors import EXIT_ERROR

_BEFORE: dict[str, set[str]] = {}  # real path of the output folder -> the names it held before Hydra ran
NO_JOB_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "--shell-completion", "-sc", "--resolve")


def _override(argv: list[str], key: str) -> str | None:
    found = None
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~") == key:
            found = value  # the last one wins, as in Hydra
    return found


def output_folder(argv: list[str]) -> Path:
    """The folder the command would write into (its fixed part, when the name holds ``${...}``)."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    value = _override(argv, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    if value is None and not multirun:
        value = _override(argv, "resume")
    if not value:
        value = "outputs/sweeps" if multirun else "outputs/runs"
    if "${" in value:  # interpolated (a stamp, a choice): the folder above the first interpolation
        value = os.path.dirname(value.split("${", 1)[0]) or "."
    return Path(value.strip("'\"")).expanduser().absolute()


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written (naming where), or None when it can."""
    probe = folder
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if os.access(probe, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return f"{probe} is on a read-only file system" if read_only else f"no permission to write into {probe}"


def check_output_folder(argv: list[str]) -> None:
    """Exits with one message (status 1) when the output folder of ``argv`` cannot be written."""
    if any(a in NO_JOB_FLAGS for a in argv):
        return
    folder = output_folder(argv)
    _BEFORE[os.path.realpath(folder)] = set(os.listdir(folder)) if folder.is_dir() else set()
    reason = unwritable(folder)
    if reason is not None:
        print(f"error: the output folder {folder} cannot be written ({reason}); nothing was trained. Choose a "
              "writable folder with hydra.run.dir=DIR (a sweep: hydra.sweep.dir=DIR), or make it writable",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(EXIT_ERROR)


def remove_added(folder: Path, names: tuple[str, ...]) -> list[str]:
    """Removes what this command added to ``folder`` since it started: Hydra's ``.hydra*`` and ``names``.

    Only entries the folder did not hold when :func:`check_output_folder` looked, and only
    those Hydra writes; nothing when the folder was not looked at. Returns the names removed.
    """
    before = _BEFORE.get(os.path.realpath(folder))
    if before is None or not folder.is_dir():
        return []
    removed = []
    for name in sorted(set(os.listdir(folder)) - before):
        if name in names or name.startswith(".hydra"):
            path = folder / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(name)
    return removed
