"""Time the generation of the built-in hands: ``python benchmarks/hands.py [--n 21600] [--threads 2]``.

Prints one JSON object: wall and CPU seconds of ``generate_hands`` (best of ``--repeats``),
images per second, and a digest of the output, which must not change when the generator is
only made faster.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import torch  # noqa: E402

from handgestures.data.hands import generate_hands  # noqa: E402
from handgestures.runtime import keep_freed_memory  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=21600, help="images (a multiple of 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--glibc-defaults", action="store_true", help="keep glibc's memory trimming (train.py turns it off)"
    )
    args = parser.parse_args(argv)
    kept = False if args.glibc_defaults else keep_freed_memory()  # as train.py does before it generates
    if args.threads:
        torch.set_num_threads(args.threads)
    generate_hands(24, seed=args.seed)  # warm-up: imports, kernel selection
    runs = []
    for _ in range(args.repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        images, labels, hands = generate_hands(args.n, seed=args.seed)
        runs.append({"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)})
    best = min(runs, key=lambda r: r["wall_s"])
    digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes() + hands.numpy().tobytes())
    print(json.dumps({
        "n": args.n, "seed": args.seed, "threads": torch.get_num_threads(), "cores": os.cpu_count(), "keep_freed_memory": kept,
        **best, "images_per_s": round(args.n / best["wall_s"], 1), "runs": runs,
        "loadavg": [round(x, 2) for x in os.getloadavg()], "sha256_16": digest.hexdigest()[:16],
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
