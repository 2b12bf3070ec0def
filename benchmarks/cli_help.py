"""Time ``python train.py --help`` as a user runs it: ``python benchmarks/cli_help.py [--repeats 5]``.

Prints one JSON object: the wall time of each run, the best and the median, in seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], cwd=ROOT, check=True, capture_output=True)
        runs.append(round(time.perf_counter() - start, 3))
    print(json.dumps({"command": "python train.py --help", "runs_s": runs, "best_s": min(runs),
                      "median_s": statistics.median(runs)}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
