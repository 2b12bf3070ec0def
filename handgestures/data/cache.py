"""A small on-disk cache of decoded image sets, so a second run starts in seconds.

Each entry is one ``torch.save`` file holding uint8 images and their labels, written
atomically (temporary file, then rename) so an interrupted run never leaves a
half-written entry behind. Keys are content fingerprints chosen by the caller.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

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
