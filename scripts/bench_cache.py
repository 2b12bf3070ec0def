"""Time loading a Fingers folder through the image cache: cold (decode) and warm (cache hit).

Prints one JSON document. Every load runs in a fresh interpreter, as a run starts, and
times ``handgestures.data.load_images`` only (imports excluded). The warm figure is the
median of ``--warm`` fresh processes; the cache folder is a new temporary one unless
``--cache-dir`` is given. ``PYTHONPATH`` picks the copy of the package measured, so the
same command compares two versions in one sitting::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python scripts/bench_cache.py --data DIR
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
t = time.perf_counter()
data = load_images(sys.argv[1], cache_dir=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "images": len(data)}))
"""


def load_once(data: str, cache_dir: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, data, cache_dir], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a folder of Fingers PNGs")
    parser.add_argument("--warm", type=int, default=5, help="warm loads to take the median of")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: a new temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or tmp
        cold = load_once(args.data, cache_dir)
        warm = [load_once(args.data, cache_dir)["seconds"] for _ in range(args.warm)]
    print(json.dumps({
        "package": os.path.dirname(__import__("handgestures").__file__),
        "images": cold["images"],
        "cold_seconds": round(cold["seconds"], 3),
        "warm_seconds_median": round(statistics.median(warm), 3),
        "warm_seconds": [round(w, 3) for w in warm],
    }, indent=2))


if __name__ == "__main__":
    main()
