"""Time loading a Fingers folder through the image cache: cold (decode) and warm (cache hit).

Prints one JSON document. Every load runs in a fresh interpreter, as a run starts, and
times ``handgestures.data.load_images`` only (imports excluded), in wall-clock and CPU
seconds (all threads; steadier than wall time on a shared machine). The warm figures are
medians of ``--warm`` fresh processes; the cache folder is a new temporary one unless
``--cache-dir`` is given. Where the package has ``handgestures.data.scan``, the content
digest of every file (its share of the warm start) is timed on its own too. ``PYTHONPATH`` picks the copy of the package measured, so the
same command compares two versions run one after the other::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/cache.py --data DIR
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time
from handgestures.data import load_images
t, c = time.perf_counter(), time.process_time()
data = load_images(sys.argv[1], cache_dir=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c, "images": len(data)}))
"""
SCAN_CHILD = """
import json, sys, time
from handgestures.data.scan import scan_folder
t, c = time.perf_counter(), time.process_time()
scan = scan_folder(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c, "images": len(scan.files)}))
"""


def load_once(data: str, cache_dir: str, child: str = CHILD) -> dict:
    out = subprocess.run([sys.executable, "-c", child, data, cache_dir], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def has_scan() -> bool:
    import importlib.util

    return importlib.util.find_spec("handgestures.data.scan") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a folder of Fingers PNGs")
    parser.add_argument("--warm", type=int, default=5, help="warm loads to take the median of")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: a new temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or tmp
        cold = load_once(args.data, cache_dir)
        warm = [load_once(args.data, cache_dir) for _ in range(args.warm)]
        scans = [load_once(args.data, cache_dir, SCAN_CHILD) for _ in range(args.warm)] if has_scan() else []
    result = {
        "package": os.path.dirname(__import__("handgestures").__file__),
        "images": cold["images"],
        "cold_seconds": round(cold["seconds"], 3),
        "cold_cpu_seconds": round(cold["cpu_seconds"], 3),
        "warm_seconds_median": round(statistics.median(w["seconds"] for w in warm), 3),
        "warm_cpu_seconds_median": round(statistics.median(w["cpu_seconds"] for w in warm), 3),
        "warm_seconds": [round(w["seconds"], 3) for w in warm],
    }
    if scans:
        result["content_digest_seconds_median"] = round(statistics.median(s["seconds"] for s in scans), 3)
        result["content_digest_cpu_seconds_median"] = round(statistics.median(s["cpu_seconds"] for s in scans), 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
