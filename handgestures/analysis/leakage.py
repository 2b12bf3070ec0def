"""``handgestures-leakage [DATA_ROOT]``: how many near-copies a split leaks from train to val and test.

For every image it measures (on block-mean thumbnails, RMS grey levels) the distance to its
nearest image with the same finger count and to its nearest image with another count.
Those two distributions justify the near-copy threshold: a pair closer than it is nearly
always two pictures of the same class (same-label neighbours are mostly under it, other-
label ones all above). It then reports the near-duplicate groups (chained without a size
cap, and the capped groups of the grouped split), and for the random and the grouped split
the fraction of validation and test images with a near-copy in train, and the accuracy of
the nearest training image's label (1-NN). Writes ``leakage.json`` and ``leakage.png``.

Distances are computed a block of rows at a time (one matrix product each), so the
N x N matrix is never held; a progress bar follows the blocks.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from handgestures.data import grouping
from handgestures.data.sources import load_images
from handgestures.data.split import stratified_split
from handgestures.runfolder.record import write_json

QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
UNCAPPED = 10**9  # max_group for plain single linkage


def label_neighbour_distances(
    thumbs: torch.Tensor, labels: torch.Tensor, block: int = 1024, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's RMS distance to its nearest other image of the same label, and of another label."""
    from tqdm import tqdm  # Lightning's dependency, not ours: only where the bar is drawn

    labels = torch.as_tensor(labels)
    same, other = torch.full((len(labels),), math.inf), torch.full((len(labels),), math.inf)
    with tqdm(total=len(labels), desc="nearest neighbours", unit="img", disable=not progress, file=sys.stderr) as bar:
        for start, d in grouping.distance_blocks(thumbs, thumbs, block, progress=bar.update):
            rows = torch.arange(len(d))
            d[rows, rows + start] = math.inf
            match = labels[start : start + len(d), None] == labels[None]
            same[start : start + len(d)] = d.masked_fill(~match, math.inf).min(1).values
            other[start : start + len(d)] = d.masked_fill(match, math.inf).min(1).values
    return same, other


def quantiles(values: torch.Tensor) -> dict[str, float]:
    values = values[torch.isfinite(values)].double()
    if len(values) == 0:
        return {}
    q = torch.quantile(values, torch.tensor(QUANTILES, dtype=torch.float64))
    return {f"q{p * 100:g}": round(float(v), 3) for p, v in zip(QUANTILES, q)}


def fraction_below(values: torch.Tensor, threshold: float) -> float:
    return round(float((values < threshold).double().mean()), 5) if len(values) else math.nan


def group_summary(groups: torch.Tensor) -> dict[str, Any]:
    sizes = torch.bincount(groups)
    sizes = sizes[sizes > 0]
    return {
        "groups": len(sizes), "largest": int(sizes.max()), "median_size": float(sizes.double().median()),
        "singletons": int((sizes == 1).sum()), "images_in_groups_of_10_or_more": int(sizes[sizes >= 10].sum()),
    }  # fmt: skip


def split_leakage(
    thumbs: torch.Tensor, labels: torch.Tensor, split: dict[str, torch.Tensor], threshold: float, typical: float
) -> dict[str, Any]:
    """Per eval split: the fraction with a train image closer than ``threshold``, and closer than
    ``typical`` (the median nearest same-label distance: as close as a typical near-copy), and
    the accuracy of the nearest training image's label."""
    out: dict[str, Any] = {"sizes": {k: len(v) for k, v in split.items()}}
    memory = thumbs[split["train"]]
    for name in ("val", "test"):
        dist, index = grouping.nearest(thumbs[split[name]], memory)
        out[name] = {
            "near_copy_in_train": fraction_below(dist, threshold),
            "typical_copy_in_train": fraction_below(dist, typical),
            "median_distance_to_train": round(float(dist.median()), 3),
            "nn_accuracy": round(float((labels[split["train"]][index] == labels[split[name]]).double().mean()), 5),
        }
    return out


def analyse(
    data, threshold: float = grouping.DEFAULT_THRESHOLD, thumbnail: int = grouping.DEFAULT_THUMBNAIL,
    split_seed: int = 0, max_group: int | None = None, neighbours: int = grouping.DEFAULT_NEIGHBOURS,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:  # fmt: skip
    """The leakage summary of ``data`` (an ImageSet), and the distance arrays behind its figure."""
    timings: dict[str, float] = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    thumbs = grouping.thumbnails(data.images, thumbnail)
    same, other = label_neighbour_distances(thumbs, data.labels, progress=progress)
    timings["neighbour_distances"] = time.perf_counter() - start
    tick = time.perf_counter()
    chained = grouping.near_duplicate_groups(thumbs, data.labels, data.hands, threshold, UNCAPPED, neighbours)
    timings["chained_groups"] = time.perf_counter() - tick
    tick = time.perf_counter()
    groups = grouping.near_duplicate_groups(thumbs, data.labels, data.hands, threshold, max_group, neighbours)
    grouped = grouping.grouped_split(data.labels, data.hands, groups, seed=split_seed)
    timings["grouped_split"] = time.perf_counter() - tick
    tick = time.perf_counter()
    splits = {"random": stratified_split(data.labels, data.hands, seed=split_seed), "grouped": grouped}
    typical = float(same[torch.isfinite(same)].median())
    leakage = {k: split_leakage(thumbs, data.labels, v, threshold, typical) for k, v in splits.items()}
    timings["split_leakage"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - start
    timings["total_cpu"] = time.process_time() - cpu_start  # wall time on a shared machine overstates the work
    summary = {
        "images": len(data), "thumbnail": thumbnail, "threshold": threshold, "split_seed": split_seed,
        "max_group": max_group, "neighbours": neighbours,
        "nearest_same_label": {**quantiles(same), "below_threshold": fraction_below(same, threshold)},
        "nearest_other_label": {**quantiles(other), "below_threshold": fraction_below(other, threshold),
                                "min": round(float(other.min()), 3)},
        "groups_chained_without_cap": group_summary(chained),
        "groups_capped": group_summary(groups),
        "splits": leakage,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }  # fmt: skip
    return summary, {"same": same, "other": other, "group_sizes": torch.bincount(groups)}


def histogram_figure(arrays: dict[str, torch.Tensor], threshold: float, path: Path) -> Path:
    from handgestures.plots import plt  # matplotlib only when a figure is drawn

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    finite = [arrays[k][torch.isfinite(arrays[k])].numpy() for k in ("same", "other")]
    top = max([float(a.max()) for a in finite if len(a)] + [threshold + 1])
    bins = torch.linspace(0, top, 80).numpy()
    for values, name in zip(finite, ("same label", "other label")):
        left.hist(values, bins=bins, alpha=0.6, label=f"nearest {name}")
    left.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    left.set_xlabel("RMS distance (grey levels, thumbnails)")
    left.set_ylabel("images")
    left.legend(fontsize=8)
    sizes = arrays["group_sizes"]
    right.hist(sizes[sizes > 0].numpy(), bins=40, log=True)
    right.set_xlabel("near-duplicate group size (capped)")
    right.set_ylabel("groups")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def report_lines(summary: dict[str, Any]) -> list[str]:
    same, other, t = summary["nearest_same_label"], summary["nearest_other_label"], summary["threshold"]
    lines = [
        f"{summary['images']} images, {summary['thumbnail']}x{summary['thumbnail']} thumbnails, RMS grey levels",
        "nearest neighbour   " + "  ".join(f"{k:>6}" for k in same if k.startswith("q")),
        "  same label        " + "  ".join(f"{v:6.2f}" for k, v in same.items() if k.startswith("q")),
        "  other label       " + "  ".join(f"{v:6.2f}" for k, v in other.items() if k.startswith("q")),
        f"threshold {t:g}: {same['below_threshold']:.2%} of images have a same-label image closer, "
        f"{other['below_threshold']:.2%} an other-label one (closest other-label pair: {other['min']:.2f})",
    ]
    for key in ("groups_chained_without_cap", "groups_capped"):
        g = summary[key]
        lines.append(f"{key.replace('_', ' ')}: {g['groups']} groups, largest {g['largest']}, "
                     f"median {g['median_size']:g}, singletons {g['singletons']}")  # fmt: skip
    for name, s in summary["splits"].items():
        sizes = "/".join(str(v) for v in s["sizes"].values())
        parts = [f"{k}: train image closer than {t:g} {s[k]['near_copy_in_train']:.2%}, than the same-label median "
                 f"{s[k]['typical_copy_in_train']:.2%}, 1-NN acc {s[k]['nn_accuracy']:.4f}"
                 for k in ("val", "test")]  # fmt: skip
        lines.append(f"{name} split ({sizes}): " + "; ".join(parts))
    lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handgestures-leakage", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", nargs="?", help="folder of Fingers PNGs; omitted: the built-in hands")
    parser.add_argument("--builtin-size", type=int, default=21600, help="built-in hands when no DATA_ROOT")
    parser.add_argument("--threshold", type=float, default=grouping.DEFAULT_THRESHOLD, help="near-copy RMS distance")
    parser.add_argument("--thumbnail", type=int, default=grouping.DEFAULT_THUMBNAIL, help="thumbnail side")
    parser.add_argument(
        "--max-group", type=int, default=None, help="group size cap (default smallest class-hand // 12)"
    )
    parser.add_argument("--neighbours", type=int, default=grouping.DEFAULT_NEIGHBOURS, help="links per image")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of both splits (data.split_seed)")
    parser.add_argument("--out", default="leakage", help="folder for leakage.json and leakage.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        data = load_images(args.data_root, builtin_size=args.builtin_size)
        summary, arrays = analyse(data, args.threshold, args.thumbnail, args.split_seed, args.max_group,
                                  args.neighbours, progress=not args.no_progress)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"handgestures-leakage: error: {err}", file=sys.stderr)
        return 2
    summary["data"] = "built-in hands" if not args.data_root else Path(args.data_root).name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "leakage.json", summary)  # strict JSON: a non-finite figure is null
    histogram_figure(arrays, args.threshold, out / "leakage.png")
    print("\n".join(report_lines(summary)))
    print(f"wrote {out / 'leakage.json'} and {out / 'leakage.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
