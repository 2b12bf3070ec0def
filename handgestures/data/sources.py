"""Where the images come from: a Fingers folder, or the built-in procedural hands."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from handgestures.data import hand_params
from handgestures.data import hands as hands_module
from handgestures.data.cache import ImageSet, cache_path, load_cached, save_cached, tidy
from handgestures.data.fingers import load_fingers_folder

log = logging.getLogger(__name__)


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A progress line on the console's stderr (a terminal only: logs get the start and end lines)."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from tqdm import tqdm  # Lightning's dependency, not ours: only for a bar on a terminal

    with tqdm(total=total, desc=f"generating {what}", unit=" images", leave=False, mininterval=0.5) as bar:
        yield bar.update


def load_builtin_hands(
    size: int = 21600,
    seed: int = 0,
    image_size: int = 128,
    cache_dir: str | os.PathLike | None = None,
    cache_max_gb: float | None = None,
) -> ImageSet:
    """The built-in hands, generated once per (size, seed, generator source) and cached."""
    source = f"built-in hands: {size:,}, seed {seed}"
    code = b"".join(Path(m.__file__).read_bytes() for m in (hands_module, hand_params))
    key = hashlib.sha256(code + f"{size}-{seed}-{image_size}".encode()).hexdigest()[:20]
    path = cache_path(cache_dir, f"hands-{key}")
    cached = load_cached(path)
    if cached is not None:
        cached.source = source
        tidy(path.parent, cache_max_gb, keep=path)
        return cached
    start = time.perf_counter()
    log.info("generating %d built-in hands (once: they are cached for later runs) ...", size)
    with progress_bar(size, "built-in hands") as bar:
        images, labels, hands = hands_module.generate_hands(size, seed=seed, size=image_size, progress=bar)
    data = ImageSet(images, labels, hands, [f"builtin-{seed}-{i:06d}" for i in range(size)], source)
    if save_cached(path, data, cache_max_gb):
        data.cache_file = path
    log.info("generated %d built-in hands in %.1f s; cached in %s", size, time.perf_counter() - start, path)
    return data


def load_images(
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    builtin_size: int = 21600,
    builtin_seed: int = 0,
    image_size: int = 128,
    on_error: str = "raise",
    report_dir: str | os.PathLike | None = None,
    cache_max_gb: float | None = None,
) -> ImageSet:
    """The real images under ``root`` when given, else the built-in hands.

    ``on_error``, ``report_dir``: what to do with bad files, and where to list them
    (:func:`~handgestures.data.fingers.load_fingers_folder`); ``cache_max_gb``: the cache's size limit.
    """
    if root == "":
        raise ValueError(
            "data.root is empty (an unset variable?): give a folder of Fingers PNGs, or null for the built-in hands"
        )
    if root is not None:
        return load_fingers_folder(root, cache_dir, image_size, on_error, report_dir, cache_max_gb)
    return load_builtin_hands(builtin_size, builtin_seed, image_size, cache_dir, cache_max_gb)
