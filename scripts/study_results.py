"""Build results/study/ from run folders: their small files copied, then handgestures-report on the copy.

    python scripts/study_results.py outputs/study_real/random outputs/study_real/grouped \
        outputs/baselines/random outputs/baselines/grouped --out results/study \
        --mask /abs/path/to/fingers/train="the Fingers train/ folder"

Each source folder becomes ``<out>/runs/<source folder name>/``; of every run folder only
metrics.json, epochs.csv and config.yaml are copied (no checkpoints, event files or logs),
and one split.csv per split protocol is kept, gzipped, as ``<out>/split_<protocol>.csv.gz``
(the random split's is the same in every run of a sweep: one data.split_seed). A fold set
(``cv<K>``) keeps one file for its K folds: file, class, hand, group, fold, then one column
``split_fold<i>`` per fold (the image's train/val/test when fold i is the test set). Every
``--mask`` prefix is replaced in the copied text and in the report's files, as is the
absolute path of ``<out>`` itself, so nothing written names a path outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handgestures.analysis.report import build_report  # noqa: E402
from handgestures.analysis.runs import find_run_folders  # noqa: E402
from handgestures.analysis.stats import folder_split  # noqa: E402

COPIED = ("metrics.json", "epochs.csv", "config.yaml")


def masked(text: str, masks: list[tuple[str, str]]) -> str:
    for prefix, label in masks:
        text = text.replace(prefix, label)
    return text


def fold_of_run(folder: Path) -> int:
    """The test fold of a fold run (its split.csv: the fold of the images it tests on)."""
    with (folder / "split.csv").open(newline="") as fh:
        return next(int(row["fold"]) for row in csv.DictReader(fh) if row["split"] == "test")


def write_fold_splits(files: dict[int, Path], target: Path) -> None:
    """One gzipped CSV for a fold set: the first fold's columns, then each fold's split column."""
    tables = {}
    for fold, path in sorted(files.items()):
        with path.open(newline="") as fh:
            tables[fold] = list(csv.DictReader(fh))
    first = next(iter(tables.values()))
    for fold, rows in tables.items():
        if [(r["file"], r["group"], r["fold"]) for r in rows] != [(r["file"], r["group"], r["fold"]) for r in first]:
            raise SystemExit(f"{files[fold]}: its images, groups or folds differ from the other folds' split.csv")
    with gzip.open(target, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class", "hand", "group", "fold", *(f"split_fold{f}" for f in tables)])
        for i, row in enumerate(first):
            writer.writerow([row["file"], row["class"], row["hand"], row["group"], row["fold"],
                             *(rows[i]["split"] for rows in tables.values())])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="folders of run folders (sweeps, baseline runs)")
    parser.add_argument("--out", default="results/study", help="results folder (default results/study)")
    parser.add_argument("--mask", action="append", default=[], metavar="PREFIX=LABEL", help="path prefix to hide")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    masks = []
    for item in args.mask:
        prefix, sep, label = item.partition("=")
        if not sep or not prefix:
            parser.error(f"--mask {item!r}: expected PREFIX=LABEL")
        masks.append((prefix, label))
    runs_dir = out / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    splits_kept: set[str] = set()
    fold_splits: dict[str, dict[int, Path]] = {}
    for source in map(Path, args.sources):
        if not source.is_dir():
            parser.error(f"{source} is not a folder")
        source_masks = [(str(source.resolve()), f"runs/{source.name}"), *masks]
        for folder in find_run_folders(source.resolve()):
            target = runs_dir / source.name / folder.relative_to(source.resolve())
            target.mkdir(parents=True, exist_ok=True)
            for name in COPIED:
                if (folder / name).is_file():
                    (target / name).write_text(masked((folder / name).read_text(), source_masks))
            protocol = folder_split(folder)
            if not (folder / "split.csv").is_file():
                continue
            if protocol.startswith("cv"):
                fold_splits.setdefault(protocol, {}).setdefault(fold_of_run(folder), folder / "split.csv")
            elif protocol not in splits_kept:
                with (folder / "split.csv").open("rb") as src, gzip.open(out / f"split_{protocol}.csv.gz", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                splits_kept.add(protocol)
    for protocol, files in fold_splits.items():
        write_fold_splits(files, out / f"split_{protocol}.csv.gz")
    report = build_report(runs_dir, out)
    out_masks = [(str(runs_dir), "runs"), (str(out), "."), *masks]
    for path in [report, out / "runs.csv", *out.glob("table_*.csv")]:
        path.write_text(masked(path.read_text(), out_masks))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
