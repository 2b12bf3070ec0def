"""Reader for the Fingers dataset's folder layout (``<id>_<N><L|R>.png``).

The folder is searched recursively (links to folders followed, once each), so Kaggle's
``train/`` and ``test/`` folders under one root, or one flat folder, both work. Every bad
file is found in one pass and reported with its reason (:mod:`handgestures.data.problems`).
Every image is decoded once into a uint8 tensor and cached on disk, keyed on the file
names and a digest of their contents: the second run decodes nothing, and a file changed
in place (``cp -p``, ``rsync -a`` keep the modification time) is decoded again.

Images of any PNG mode become 8-bit grey: colour as ITU-R 601-2 luma (Keras'
``color_mode="grayscale"``), 16-bit grey scaled to 0..255 (``round(v * 255 / 65535)``),
where a plain conversion would saturate it to white. Files with identical pixels are
reported and kept in one split; identical pixels under different labels are bad files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handgestures.data.cache import ImageSet, cache_path, load_entry, save_entry, tidy
from handgestures.data.imagefile import open_image
from handgestures.data.problems import NoImagesError, default_report_dir, handle_bad_files, report_twins, twin_groups
from handgestures.data.scan import EXPECTED_NAME, NAME_PATTERN, FileRecord, parse_name, scan_folder

log = logging.getLogger(__name__)

__all__ = [
    "EXPECTED_NAME",
    "NAME_PATTERN",
    "decode_png",
    "fingerprint",
    "list_images",
    "load_fingers_folder",
    "parse_name",
]
CACHE_FORMAT = 2  # bump when the decoded layout changes
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PNG's 16-bit grey opens as I;16 (I in old Pillow)


def list_images(root: str | os.PathLike) -> list[tuple[str, int, str]]:
    """Every readable PNG under ``root`` as ``(relative path, size, content digest)``, sorted.

    A bad file is an error here; :func:`load_fingers_folder` lists them all instead.
    """
    scan = scan_folder(root)
    if scan.bad:
        rel, reason = scan.bad[0]
        raise ValueError(f"{rel!r} under {str(root)!r}: {reason}")
    return [(f.rel, f.size, f.digest) for f in scan.files]


def fingerprint(files: list[FileRecord], image_size: int) -> str:
    """The cache key of a folder: names, sizes and content digests of its files."""
    digest = hashlib.sha256(f"fingers-v{CACHE_FORMAT}-{image_size}".encode())
    for f in files:
        digest.update(f"{f.rel}\0{f.size}\0{f.digest}\n".encode())
    return digest.hexdigest()[:20]


def to_gray8(img: Image.Image) -> np.ndarray:
    """``img`` as uint8 grey: 16-bit grey scaled (not clipped), anything else PIL's ``L``."""
    if img.mode in SIXTEEN_BIT:
        array = np.asarray(img)
        if array.size and (int(array.min()) < 0 or int(array.max()) > 65535):
            raise ValueError(f"mode {img.mode} with values {int(array.min())}..{int(array.max())}, expected 0..65535")
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.mode == "F":
        raise ValueError("32-bit float pixels are not supported; save the image as 8- or 16-bit")
    return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)


def decode_png(path: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (H, W); ValueError naming the file and the reason when it cannot be."""
    try:
        with open_image(path) as img:  # a regular file, its header within the limits (MAX_PIXELS, MAX_BITS)
            if img.size != (image_size, image_size):
                raise ValueError(f"is {img.size[0]}x{img.size[1]}, expected {image_size}x{image_size}")
            array = to_gray8(img)
    except ValueError as err:
        raise ValueError(
            f"image {str(path)!r} {err}" if str(err).startswith("is ") else f"image {str(path)!r}: {err}"
        ) from err
    except Exception as err:  # truncated, not an image, decompression bomb, ...
        raise ValueError(f"cannot decode image {str(path)!r}: {type(err).__name__}: {err}") from err
    return array


def _reason(err: ValueError, path: Path) -> str:
    text = str(err)
    for prefix in (f"image {str(path)!r}: ", f"image {str(path)!r} ", f"cannot decode image {str(path)!r}: "):
        if text.startswith(prefix):
            return ("cannot decode: " if prefix.startswith("cannot") else "") + text[len(prefix) :]
    return text


def decode_all(root: Path, rels: list[str], image_size: int, threads: int | None = None):
    """``(uint8 (N, 1, S, S), pixel keys, [(rel, reason)])``; failed images stay zero, listed."""
    out = np.zeros((len(rels), 1, image_size, image_size), dtype=np.uint8)
    keys = np.zeros(len(rels), dtype=np.int64)

    def work(i: int) -> tuple[str, str] | None:
        try:
            out[i, 0] = decode_png(root / rels[i], image_size)
        except ValueError as err:
            return rels[i], _reason(err, root / rels[i])
        keys[i] = int.from_bytes(hashlib.blake2b(out[i].tobytes(), digest_size=8).digest(), "little", signed=True)
        return None

    with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
        failed = [r for r in pool.map(work, range(len(rels))) if r is not None]
    return torch.from_numpy(out), torch.from_numpy(keys), failed


def _decode_entry(root: Path, files: list[FileRecord], image_size: int) -> dict:
    start = time.perf_counter()
    rels = [f.rel for f in files]
    images, keys, failed = decode_all(root, rels, image_size)
    bad_rels = {rel for rel, _ in failed}
    good = torch.tensor([rel not in bad_rels for rel in rels], dtype=torch.bool)
    log.info("decoded %d images of %s in %.1f s", len(rels), root, time.perf_counter() - start)
    pick = (lambda t: t) if bool(good.all()) else (lambda t: t[good])  # no copy when all are good
    return {
        "images": pick(images), "pixel_keys": pick(keys),
        "labels": pick(torch.tensor([f.fingers for f in files], dtype=torch.long)),
        "hands": pick(torch.tensor([f.hand for f in files], dtype=torch.long)),
        "names": [rel for rel in rels if rel not in bad_rels], "bad": [list(b) for b in failed],
    }  # fmt: skip


def _label_conflicts(entry: dict, twins: torch.Tensor) -> list[tuple[str, str]]:
    """Files whose pixels equal a file's under another label (the label cannot be both)."""
    strata = entry["labels"] * 2 + entry["hands"]
    differ = torch.nonzero(strata != strata[twins]).flatten().tolist()
    groups = sorted({int(twins[i]) for i in differ})
    bad = []
    for g in groups:
        members = torch.nonzero(twins == g).flatten().tolist()
        for i in members:
            others = [entry["names"][j] for j in members if j != i]
            bad.append((entry["names"][i], f"same pixels as {others[:3]} under another label"))
    return bad


def load_fingers_folder(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    image_size: int = 128,
    on_error: str = "raise",
    report_dir: str | os.PathLike | None = None,
    cache_max_gb: float | None = None,
) -> ImageSet:
    """All Fingers images under ``root``, decoded once and then served from the cache.

    Bad files are listed all at once, in ``report_dir`` (default: the cache folder's
    ``reports/``), then raised (``on_error="raise"``) or left out (``"skip"``).
    """
    root = Path(root).expanduser().resolve()
    log.info("reading the PNG files under %s (names and content digests: what the image cache is keyed on) ...", root)
    scan = scan_folder(root)
    for note in scan.notes:
        log.warning("%s: %s", root, note)
    if not scan.files and not scan.bad:
        raise NoImagesError(f"no PNG images named {EXPECTED_NAME} under {str(root)!r}")
    path = cache_path(cache_dir, f"fingers-{fingerprint(scan.files, image_size)}")
    listing = [f"{f.rel}\0{f.size}\0{f.digest}" for f in scan.files]
    entry = load_entry(path, files=listing)
    cached = entry is not None
    if entry is None:
        log.info("decoding %d images of %s (once: they are cached for later runs) ...", len(scan.files), root)
        entry = _decode_entry(root, scan.files, image_size)
        cached = save_entry(path, {**entry, "files": listing, "format": CACHE_FORMAT}, cache_max_gb)
        if cached:
            log.info("cached in %s", path)
    else:
        log.info("loaded %d images of %s from the cache", len(entry["names"]), root)
        tidy(path.parent, cache_max_gb, keep=path)
    twins = twin_groups(entry["pixel_keys"])
    bad = sorted(scan.bad + [tuple(b) for b in entry["bad"]] + _label_conflicts(entry, twins))
    report = Path(report_dir) if report_dir else default_report_dir(cache_dir)
    handle_bad_files(bad, on_error, root, report)
    bad_names = {rel for rel, _ in bad}
    keep = torch.tensor([n not in bad_names for n in entry["names"]], dtype=torch.bool)
    pick = (lambda t: t) if bool(keep.all()) else (lambda t: t[keep])  # no copy when all are good
    names = [n for n, k in zip(entry["names"], keep.tolist(), strict=True) if k]
    if not names:
        raise NoImagesError(f"no readable PNG images named {EXPECTED_NAME} under {str(root)!r}")
    twins = twin_groups(pick(entry["pixel_keys"]))
    report_twins(twins, names, report)
    skipped = f" ({len(bad)} bad files skipped)" if bad else ""
    return ImageSet(
        pick(entry["images"]), pick(entry["labels"]), pick(entry["hands"]), names,
        source=f"{len(names):,} images from {root}{skipped}", twins=twins, cache_file=path if cached else None,
    )  # fmt: skip
