"""``data_load``: loading the images into memory, cold (PNG decoding, or generating the built-in
hands, into an empty cache folder) and warm (cache hit), each with its peak resident memory.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import peak_rss_mb


def worker_load(spec: dict[str, Any]) -> dict[str, Any]:
    from handgestures.data.sources import load_images

    start = time.perf_counter()
    data = load_images(spec.get("data"), spec["cache_dir"], spec.get("builtin_size") or 21600)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "images": len(data), "uint8_mb": round(data.images.numel() / 2**20, 1),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip
