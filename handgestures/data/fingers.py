"""Reader for the Fingers dataset's folder layout (``<id>_<N><L|R>.png``).

The folder is searched recursively, so Kaggle's ``train/`` and ``test/`` folders under one
root, or one flat folder, both work. Every image is decoded once into a uint8 tensor and
cached on disk, keyed on the file list, sizes and modification times: the second run
decodes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handgestures.data.cache import ImageSet, cache_path, load_cached, save_cached

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^(?P<id>.+)_(?P<fingers>[0-5])(?P<hand>[LR])\.png$", re.IGNORECASE)
EXPECTED_NAME = "<id>_<N><L|R>.png with N in 0..5 (for example 0a1b_3L.png)"
CACHE_FORMAT = 1  # bump when the decoded layout changes


def parse_name(path: str | os.PathLike) -> tuple[int, int]:
    """``(fingers, hand)`` from a Fingers file name; hand is 0 for L and 1 for R.

    >>> parse_name("train/00048bba_3R.png")
    (3, 1)
    """
    name = Path(path).name
    match = NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(f"badly named image file {str(path)!r}: expected {EXPECTED_NAME}")
    return int(match["fingers"]), int(match["hand"].upper() == "R")


def list_images(root: str | os.PathLike) -> list[tuple[str, int, int]]:
    """Every PNG under ``root`` as ``(relative path, size, mtime_ns)``, sorted by path.

    Other files are reported, not read; a PNG whose name does not parse is an error.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {str(root)!r} is not a folder of Fingers PNG images")
    found, others = [], []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if name.lower().endswith(".png"):
                parse_name(rel)
                st = os.stat(full)
                found.append((rel, st.st_size, st.st_mtime_ns))
            elif not name.startswith("."):
                others.append(rel)
    if others:
        log.warning("%d non-PNG files under %s are not images and were not read, e.g. %s", len(others), root, others[:3])
    if not found:
        raise FileNotFoundError(f"no PNG images named {EXPECTED_NAME} under {str(root)!r}")
    return sorted(found)


def fingerprint(files: list[tuple[str, int, int]], image_size: int) -> str:
    digest = hashlib.sha256(f"fingers-v{CACHE_FORMAT}-{image_size}".encode())
    for rel, size, mtime in files:
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:20]


def decode_png(path: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (H, W); colour images become ITU-R 601-2 luma, as Keras loads them."""
    try:
        with Image.open(path) as img:
            if img.mode != "L":
                img = img.convert("L")
            array = np.asarray(img, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"cannot decode image {str(path)!r}: {err}") from err
    if array.shape != (image_size, image_size):
        raise ValueError(f"image {str(path)!r} is {array.shape[1]}x{array.shape[0]}, expected {image_size}x{image_size}")
    return array


def decode_all(root: Path, rels: list[str], image_size: int, threads: int | None = None) -> torch.Tensor:
    out = np.empty((len(rels), 1, image_size, image_size), dtype=np.uint8)

    def work(i: int) -> None:
        out[i, 0] = decode_png(root / rels[i], image_size)

    with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(len(rels))))
    return torch.from_numpy(out)


def load_fingers_folder(
    root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, image_size: int = 128
) -> ImageSet:
    """All Fingers images under ``root``, decoded once and then served from the cache."""
    root = Path(root).expanduser().resolve()
    files = list_images(root)
    path = cache_path(cache_dir, f"fingers-{fingerprint(files, image_size)}")
    cached = load_cached(path)
    if cached is not None:
        log.info("loaded %d images of %s from cache %s", len(cached), root, path)
        return cached
    start = time.perf_counter()
    rels = [rel for rel, _, _ in files]
    labels, hands = zip(*(parse_name(rel) for rel in rels))
    data = ImageSet(decode_all(root, rels, image_size), torch.tensor(labels), torch.tensor(hands), rels)
    save_cached(path, data)
    log.info("decoded %d images of %s in %.1f s; cached in %s", len(data), root, time.perf_counter() - start, path)
    return data
