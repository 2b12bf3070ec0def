"""Opening an image file with bounded work: regular files only, the header checked first.

Both image readers (the training folder's, :mod:`handgestures.data.fingers`, and the one of
predict, eval and the demo, :mod:`handgestures.inference.preprocess`) open files here:

* only a **regular file** is opened: a FIFO, a device or a socket named ``*.png`` is refused
  with its kind (opening a FIFO would wait forever for a writer), checked with ``os.stat``
  before any ``open``;
* Pillow's ``Image.open`` reads the **header** only; its size and mode are checked against
  :data:`MAX_PIXELS` (4096 x 4096) and :data:`MAX_BITS` (16 bits per channel) before any
  pixel is decoded, so a small file that claims a huge image costs nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from PIL import Image

MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # 16,777,216 pixels (16.8 Mpx): width x height of an image read
MAX_BITS = 16  # bits per channel: 1-, 8- and 16-bit images are read; 32-bit integer or float are not
LIMITS = f"at most {MAX_PIXELS:,} pixels ({MAX_SIDE}x{MAX_SIDE}) and {MAX_BITS} bits per channel"
_BITS = {"1": 1, "I": 32, "F": 32, "I;32": 32, "I;32B": 32, "I;32L": 32, "I;32N": 32}  # others: 8, I;16*: 16
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))  # fmt: skip


class ImageRefused(ValueError):
    """A file that is not read: not a regular file, or a header beyond the limits; says which."""


def not_regular(st: os.stat_result) -> str | None:
    """None for a regular file, else what it is ('a FIFO (named pipe)', ...)."""
    if stat.S_ISREG(st.st_mode):
        return None
    return next((kind for test, kind in _KINDS if test(st.st_mode)), "not a regular file")


def check_regular(path: str | os.PathLike) -> None:
    """:class:`ImageRefused` unless ``path`` (links followed) is a regular file; never opens it."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise ImageRefused(f"cannot be read ({err.strerror or err})") from None
    kind = not_regular(st)
    if kind is not None:
        raise ImageRefused(f"not a regular file: {kind}; not opened")


def bits_per_channel(img: Image.Image) -> int:
    """Bits per channel of an opened (not loaded) image: 1, 8, 16 or 32."""
    if img.mode.startswith("I;16"):
        return 16
    return _BITS.get(img.mode, 8)


def check_header(img: Image.Image) -> None:
    """:class:`ImageRefused` when the header's size or bit depth is beyond the limits."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageRefused(
            f"too large: {width}x{height} = {width * height:,} pixels, over the limit of {MAX_PIXELS:,} pixels "
            f"({MAX_SIDE}x{MAX_SIDE}); not decoded"
        )
    bits = bits_per_channel(img)
    if bits > MAX_BITS:
        raise ImageRefused(
            f"too deep: {bits}-bit pixels (mode {img.mode}), over the limit of {MAX_BITS} bits per channel; not decoded"
        )


def open_image(path: str | os.PathLike) -> Image.Image:
    """A Pillow image whose header passed :func:`check_header`, pixels not yet decoded (close it)."""
    check_regular(path)
    try:
        img = Image.open(Path(path))
    except Image.DecompressionBombError as err:  # Pillow's own, larger limit: ours, in its words
        raise ImageRefused(f"too large: {err} (the limit: {LIMITS}); not decoded") from None
    try:
        check_header(img)
    except ImageRefused:
        img.close()
        raise
    return img
