"""The one preprocessing every prediction goes through: any image file to a 128x128 input.

1. **Decode** with Pillow (PNG, JPEG, BMP, TIFF, GIF, WebP, ...; the first frame), regular
   files only, after a header check (:mod:`handgestures.data.imagefile`): at most
   4096x4096 pixels and 16 bits per channel, else the file is refused undecoded.
2. **Grey levels**: 8-bit values are kept. 16-bit grey images (Pillow modes ``I;16*``) are
   scaled by 255/65535 and rounded (65535 -> 255), in integers, a block of rows at a time.
3. **Colour**: luma ``L = R * 299/1000 + G * 587/1000 + B * 114/1000`` (ITU-R 601-2, Pillow's
   ``convert("L")``), which is what Keras ``load_img(color_mode="grayscale")`` gave the study's
   networks; alpha is dropped, palette images use their colours.
4. **Size**: an image that is not 128x128 is resized to 128x128 with **bilinear**
   interpolation (Pillow ``Image.BILINEAR``, which also antialiases when shrinking), without
   keeping its aspect ratio (as Keras ``target_size`` does), and a notice says so. The study's
   images are all 128x128 and were never resized; bilinear rather than Keras' default
   ``nearest`` because nearest aliases badly on shrunk photos.
5. **Scaling**: ``pixel / 255`` as float32 in [0, 1], shape ``(batch, 1, 128, 128)``, the
   training pipeline's own rescale (:mod:`handgestures.data.datamodule`).

An 8-bit grey 128x128 image, the Fingers dataset's format, goes through steps 1 and 5 only,
and gives the same array as the training reader (:func:`handgestures.data.fingers.decode_png`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handgestures.data.imagefile import ImageRefused, not_regular, open_image

IMAGE_SIZE = 128
ROWS_AT_A_TIME = 256  # 16-bit images are scaled to 8-bit this many rows at a time
INTERPOLATION = "bilinear"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
SUMMARY = (
    f"preprocessing: decode (Pillow), 16-bit grey levels scaled to 8-bit, colour to luma ITU-R 601-2 "
    f"(PIL 'L', as Keras), resize to {IMAGE_SIZE}x{IMAGE_SIZE} if needed ({INTERPOLATION}), pixel/255 in [0, 1]"
)


@dataclass
class Decoded:
    """One input file after preprocessing: its uint8 pixels, or the error that stopped it."""

    path: str
    pixels: np.ndarray | None = None  # uint8 (128, 128)
    error: str | None = None
    notices: list[str] = field(default_factory=list)


def scale_to_8bit(values: np.ndarray, rows: int = ROWS_AT_A_TIME) -> np.ndarray:
    """``round(v * 255 / 65535)`` of 0..65535 values (others clipped) as uint8, in integers.

    A block of ``rows`` at a time, so the work memory is the uint8 result and one block,
    never a float64 copy of the whole image (no value is an exact half: 65535 = 255 * 257).
    """
    out = np.empty(values.shape, dtype=np.uint8)
    for begin in range(0, values.shape[0], rows):
        block = np.clip(values[begin : begin + rows], 0, 65535).astype(np.uint32)
        block *= 255
        block += 32767
        block //= 65535
        out[begin : begin + rows] = block
    return out


def to_grey(img: Image.Image, notices: list[str]) -> Image.Image:
    """Step 2 and 3: any Pillow image as mode ``L`` (8-bit luma)."""
    if img.mode == "L":
        return img
    if img.mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N (32-bit I is refused by the header check)
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            notices.append(f"{img.mode} values outside 0..65535 clipped")
        notices.append(f"{img.mode} grey levels scaled to 8-bit (x 255/65535)")
        return Image.fromarray(scale_to_8bit(values), mode="L")
    if img.mode == "F":
        notices.append("float image clipped to 0..255")
        return Image.fromarray(np.rint(np.clip(np.asarray(img), 0, 255)).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    notices.append(f"{img.mode} converted to luma (ITU-R 601-2)")
    return img.convert("L")


def decode(path: str | os.PathLike, size: int = IMAGE_SIZE) -> Decoded:
    """One file through steps 1-4; a file Pillow cannot read gives ``error``, never an exception."""
    out = Decoded(str(path))
    try:
        with open_image(path) as img:  # a regular file, its header within the limits
            img.load()
            grey = to_grey(img, out.notices)
            if grey.size != (size, size):
                out.notices.append(f"resized from {grey.size[0]}x{grey.size[1]} to {size}x{size} ({INTERPOLATION})")
                grey = grey.resize((size, size), Image.BILINEAR)
            out.pixels = np.asarray(grey, dtype=np.uint8)
    except ImageRefused as err:
        out.error = f"refused: {err}"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        out.error = f"cannot read image: {type(err).__name__}: {err}"
    return out


def decode_many(paths: list[str], threads: int | None = None, size: int = IMAGE_SIZE) -> list[Decoded]:
    """:func:`decode` over ``paths`` on a thread pool (Pillow decodes without the GIL), in order."""
    threads = threads or min(8, os.cpu_count() or 1)
    if threads <= 1 or len(paths) < 2:
        return [decode(p, size) for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda p: decode(p, size), paths, chunksize=16))


def to_tensor(pixels: list[np.ndarray]) -> torch.Tensor:
    """Step 5: uint8 images as one float32 ``(B, 1, H, W)`` batch in [0, 1]."""
    batch = torch.from_numpy(np.stack(pixels))[:, None]
    return batch.float().mul_(1.0 / 255.0)  # the training pipeline's rescale, bit for bit


def list_inputs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(images, others)``: the image files a path names (a folder is searched recursively,
    sorted) and the other files found there, which are reported rather than read."""
    path = Path(path).expanduser()
    if path.is_file():
        return [str(path)], []
    if not path.is_dir():
        kind = not_regular(path.stat()) if path.exists() else None
        what = f"is {kind}, not read" if kind else "is neither an image file nor a folder"
        raise FileNotFoundError(f"inputs={str(path)!r} {what}")
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            (images if name.lower().endswith(IMAGE_SUFFIXES) else others).append(full)
    return images, others
