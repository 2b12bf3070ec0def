"""A small on-disk cache of decoded image sets, so a second run starts in seconds.

Each entry is one ``torch.save`` file holding uint8 images and their labels, written
atomically (temporary file, then rename) so an interrupted run never leaves a
half-written entry behind. Keys are content fingerprints chosen by the caller.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CACHE_ENV = "HANDGESTURES_CACHE"


@dataclass
class ImageSet:
    """A whole dataset held once in memory: uint8 images and per-image labels."""

    images: torch.Tensor  # uint8 (N, 1, H, W), values 0..255 (never rescaled here)
    labels: torch.Tensor  # int64 (N,), raised fingers 0..5
    hands: torch.Tensor  # int64 (N,), 0 = left, 1 = right
    names: list[str]  # a file path relative to the root, or a generated id

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


HUGE_PAGE = 2 * 2**20  # bytes: a transparent huge page on x86-64 and most arm64 kernels
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # madvise advice numbers (linux/mman.h)


def back_with_huge_pages(tensor: torch.Tensor) -> bool:
    """Ask Linux to hold ``tensor``'s memory in 2 MB pages instead of 4 KB ones, in place.

    Batches are gathered from random rows of the whole dataset, so with 4 KB pages nearly
    every row costs TLB misses and page walks. In 2 MB pages CarlosNet's training loop ran
    0.99-1.15x as fast (median 1.08x, five alternations of ``scripts/benchmark.py --override
    data.huge_pages=false`` and ``=true``; the README's Performance section), most of the gain
    inside the step, which has the TLB to itself. ``MADV_COLLAPSE`` (Linux 6.1+) rebuilds the
    pages now, 0.55-0.58 s for the 281 MB of the real images (about 2 ms per MB),
    and the values are untouched; it works when transparent huge pages are
    ``always`` or ``madvise``, not ``never``. Only the whole 2 MB pages inside the tensor
    change. Returns whether the kernel accepted; False (and nothing changes) elsewhere, for
    tensors off the CPU and for tensors too small to hold one aligned huge page.
    """
    if not sys.platform.startswith("linux") or tensor.device.type != "cpu":
        return False
    storage = tensor.untyped_storage()
    start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
    first, last = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
    if last <= first:
        return False
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return False
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    # HUGEPAGE first: it keeps the range in huge pages later (after a fork, a swap-in)
    if madvise(first, last - first, _MADV_HUGEPAGE) != 0:
        log.debug("madvise(MADV_HUGEPAGE) refused: %s", os.strerror(ctypes.get_errno()))
        return False
    if madvise(first, last - first, _MADV_COLLAPSE) != 0:
        log.debug("madvise(MADV_COLLAPSE) refused: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def default_cache_dir() -> Path:
    """``$HANDGESTURES_CACHE``, else ``$XDG_CACHE_HOME/handgestures``, else ``~/.cache/handgestures``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "handgestures"


def cache_path(cache_dir: str | os.PathLike | None, key: str) -> Path:
    return Path(cache_dir).expanduser() / f"{key}.pt" if cache_dir else default_cache_dir() / f"{key}.pt"


def load_cached(path: Path) -> ImageSet | None:
    """The entry at ``path``, or None when absent or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return ImageSet(blob["images"], blob["labels"], blob["hands"], list(blob["names"]))
    except Exception as err:  # a corrupt or foreign file is rebuilt, and we say so
        log.warning("ignoring unreadable cache entry %s (%s); rebuilding it", path, err)
        return None


def save_cached(path: Path, data: ImageSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    blob = {"images": data.images, "labels": data.labels, "hands": data.hands, "names": data.names}
    torch.save(blob, tmp)
    os.replace(tmp, path)
