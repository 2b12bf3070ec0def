"""A small on-disk cache of decoded image sets, so a second run starts in seconds.

Each entry is one ``torch.save`` file holding uint8 images and their labels, written
atomically (temporary file, then rename; a failed write removes its temporary file, and
those of dead processes are removed too) so an interrupted run never leaves a
half-written entry behind. Keys are content fingerprints chosen by the caller; an entry
also stores what it was made from (``files``), and is refused when that differs. The cache
can only help: a folder that cannot be written, or a full disk, gives one warning and the
run goes on uncached; the least recently used entries are pruned past a size limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgestures.runtime import HUGE_PAGE, back_with_huge_pages  # noqa: F401  (re-exported: they lived here)

log = logging.getLogger(__name__)

CACHE_ENV = "HANDGESTURES_CACHE"


@dataclass
class ImageSet:
    """A whole dataset held once in memory: uint8 images and per-image labels."""

    images: torch.Tensor  # uint8 (N, 1, H, W), values 0..255 (never rescaled here)
    labels: torch.Tensor  # int64 (N,), raised fingers 0..5
    hands: torch.Tensor  # int64 (N,), 0 = left, 1 = right
    names: list[str]  # a file path relative to the root, or a generated id
    source: str = ""  # where the images come from, said at the start of every run
    twins: torch.Tensor | None = None  # int64 (N,): first image with identical pixels (itself if none)
    cache_file: Path | None = field(default=None, repr=False, compare=False)  # the cache entry it came from

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be uint8 (N, 1, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if not (len(self.images) == len(self.hands) == len(self.names) == n):
            raise ValueError(
                f"images, labels, hands and names must have one entry per image, got "
                f"{len(self.images)}, {n}, {len(self.hands)}, {len(self.names)}"
            )

    def __len__(self) -> int:
        return len(self.labels)


def default_cache_dir() -> Path:
    """``$HANDGESTURES_CACHE``, else ``$XDG_CACHE_HOME/handgestures``, else ``~/.cache/handgestures``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "handgestures"


def cache_path(cache_dir: str | os.PathLike | None, key: str) -> Path:
    return Path(cache_dir).expanduser() / f"{key}.pt" if cache_dir else default_cache_dir() / f"{key}.pt"


ENTRY_PREFIXES = ("fingers-", "hands-", "groups-")  # only these files are ever pruned
STALE_TEMP_SECONDS = 24 * 3600
_warned: set[str] = set()  # cache folders already warned about, once per process


def _warn_once(folder: Path, message: str) -> None:
    if str(folder) not in _warned:
        _warned.add(str(folder))
        log.warning(message)


def load_entry(path: Path, files: list[str] | None = None) -> dict[str, Any] | None:
    """The blob at ``path``; None when absent, unreadable, or made from other ``files``.

    ``files`` is the list of strings the entry was saved with under ``"files"`` (one per
    source file, say its path and content digest).
    """
    try:
        if not path.is_file():
            return None
        # hundreds of MB: seconds from a slow disk, so said before
        log.info("reading the image cache %s (%.0f MB) ...", path, path.stat().st_size / 1e6)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict):
            raise ValueError(f"holds a {type(blob).__name__}, not an entry")
    except Exception as err:  # a corrupt or foreign file is rebuilt, and we say so
        first = (str(err).strip().splitlines() or [""])[0][:160]
        log.warning("ignoring unreadable cache entry %s (%s: %s); rebuilding it", path, type(err).__name__, first)
        return None
    if files is not None and blob.get("files") != files:
        stored = blob.get("files") or []
        changed = sorted(set(stored) ^ set(files))
        log.warning("cache entry %s was made from other files (%d differ, e.g. %s); rebuilding it",
                    path, len(changed), [str(c).split("\0")[0] for c in changed[:3]])  # fmt: skip
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # marks it recently used, for pruning
    return blob


def remove_stale_temp(folder: Path) -> None:
    """Temporary files left by dead processes (a killed run) in ``folder``."""
    try:
        temps = list(folder.glob(".*.tmp"))
    except OSError:
        return
    for tmp in temps:
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
            alive = True
            os.kill(pid, 0)
        except (ValueError, IndexError):
            alive = False
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        try:
            if not alive or time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                tmp.unlink()
                log.info("removed a partial cache file left by an interrupted run: %s", tmp)
        except OSError:
            pass


def prune(folder: Path, max_bytes: float, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used entries of ``folder`` until it holds ``max_bytes`` at most."""
    entries = []
    for p in folder.glob("*.pt"):
        if p.name.startswith(ENTRY_PREFIXES) and p != keep:
            try:
                st = p.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
    total = sum(e[1] for e in entries) + (keep.stat().st_size if keep is not None and keep.is_file() else 0)
    removed = []
    for _, size, p in sorted(entries):
        if total <= max_bytes:
            break
        try:
            p.unlink()
        except OSError:
            continue
        total -= size
        removed.append(p)
    if removed:
        log.info("cache over its %.2f GB limit (data.cache_max_gb): removed %d old entries, %s",
                 max_bytes / 1e9, len(removed), [p.name for p in removed])  # fmt: skip
    return removed


def tidy(folder: Path, max_gb: float | None = None, keep: Path | None = None) -> None:
    """After a cache hit: remove dead runs' temporary files, prune past ``max_gb``."""
    remove_stale_temp(folder)
    if max_gb is not None and max_gb > 0:
        prune(folder, max_gb * 1e9, keep=keep)


def save_entry(path: Path, blob: dict[str, Any], max_gb: float | None = None) -> bool:
    """Write ``blob`` atomically; False, with one warning, when the cache cannot take it.

    ``max_gb`` bounds the folder (least recently used entries pruned); 0 writes nothing.
    """
    if max_gb is not None and max_gb <= 0:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(path.parent)
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # unwritable folder, full disk (torch wraps ENOSPC)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        _warn_once(path.parent, f"cannot write the image cache in {path.parent} ({err}); this run goes on uncached")
        return False
    if max_gb is not None:
        prune(path.parent, max_gb * 1e9, keep=path)
    return True


def load_cached(path: Path) -> ImageSet | None:
    """The entry at ``path``, or None when absent or unreadable (it is then rebuilt)."""
    blob = load_entry(path)
    if blob is None:
        return None
    try:
        return ImageSet(blob["images"], blob["labels"], blob["hands"], list(blob["names"]), blob.get("source", ""),
                        cache_file=path)  # fmt: skip
    except Exception as err:
        log.warning("ignoring unreadable cache entry %s (%s); rebuilding it", path, err)
        return None


def save_cached(path: Path, data: ImageSet, max_gb: float | None = None) -> bool:
    blob = {
        "images": data.images,
        "labels": data.labels,
        "hands": data.hands,
        "names": data.names,
        "source": data.source,
    }
    return save_entry(path, blob, max_gb)
