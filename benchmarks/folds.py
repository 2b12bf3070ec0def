"""Grouped k-fold cross-validation: the folds of a dataset and what they cost.

    python benchmarks/folds.py [--root DATA/fingers/train] [--folds 5] [--seed 0]

Prints one JSON object: the decoded-image load (from the shared cache when warm), the grouping
computed (its stored copy beside the image cache removed first), asked again by a later fold of
the same process (memoised) and by another process (read from the stored copy), each fold's
split (sizes of train/val/test, and the test set's images per class and per hand), and the
largest departure of a fold's class share from the whole dataset's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from handgestures.data.folds import make_fold_split
from handgestures.data.sources import load_images
from handgestures.data.stored_groups import _groups_memo, groups_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="a Fingers folder; omitted: the built-in hands")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    data = load_images(args.root, None, 21600, 0, 128, "raise", None, None)
    load_s = time.perf_counter() - start
    grouping = {"threshold": 9.0, "thumbnail": 16, "max_group": None, "neighbours": 10}  # conf/data/augmented.yaml
    _groups_memo.clear()
    if data.cache_file is not None:
        for stored in data.cache_file.parent.glob(f"groups-{data.cache_file.stem}-*.pt"):
            stored.unlink()
    start = time.perf_counter()
    groups = groups_of(data, grouping)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    groups_of(data, grouping)
    warm = time.perf_counter() - start
    _groups_memo.clear()  # what another process sees: the stored copy
    start = time.perf_counter()
    again = groups_of(data, grouping)
    other = time.perf_counter() - start
    assert torch.equal(again, groups), "the stored grouping differs from the computed one"
    overall = torch.bincount(data.labels, minlength=6).double() / len(data)
    folds, worst = [], 0.0
    for fold in range(args.folds):
        start = time.perf_counter()
        split, _, fold_of = make_fold_split(data, args.folds, fold, args.seed, grouping)
        seconds = time.perf_counter() - start
        test = split["test"]
        share = torch.bincount(data.labels[test], minlength=6).double() / len(test)
        worst = max(worst, float((share - overall).abs().max()))
        folds.append({
            "fold": fold, "train": len(split["train"]), "val": len(split["val"]), "test": len(test),
            "test_per_class": torch.bincount(data.labels[test], minlength=6).tolist(),
            "test_per_hand": torch.bincount(data.hands[test], minlength=2).tolist(), "split_seconds": round(seconds, 3),
        })  # fmt: skip
    print(json.dumps({
        "benchmark": "folds", "source": data.source, "images": len(data), "groups": int(groups.max()) + 1,
        "folds": args.folds, "load_seconds": round(load_s, 2), "grouping_seconds_first": round(cold, 3),
        "grouping_seconds_again": round(warm, 4), "grouping_seconds_other_process": round(other, 4),
        "grouping_stored": data.cache_file is not None, "largest_class_share_departure": round(worst, 4),
        "per_fold": folds,
        "cpu": platform.processor() or platform.machine(), "load_average": list(os.getloadavg()),
        "threads": torch.get_num_threads(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
