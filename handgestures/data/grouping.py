"""Near-duplicate groups and the grouped split (``data.split=grouped``).

The Fingers images are full of near-copies (most likely consecutive frames of the same
recordings), so a random split puts an almost identical twin of most validation and test
images in the training split. The grouped split keeps each group of near-copies inside one
split.

Distances are RMS grey-level differences between block-mean thumbnails (16x16 by default).
Linking every pair closer than the threshold (single linkage) chains each (class, hand)
into one group on the real images, which no split could stratify. So groups are built by
capped single linkage: inside each (class, hand), image pairs are merged closest first
(each image's ``k`` nearest neighbours under the threshold), and a merge that would make a
group larger than ``max_group`` images is refused. The cap defaults to 1/12 of the smallest
(class, hand): validation and test then take at least two groups of every (class, hand), so
every class and hand stays in every split and the sizes land close to 4/6, 1/6, 1/6.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from handgestures.data.split import SPLITS, stratified_split

# data.split's values, each with what it means (checkpoints and model cards quote it)
SPLIT_KINDS = {
    "random": "stratified by class and hand: 4/6 train, 1/6 val, 1/6 test (the study's split)",
    "grouped": "near-duplicate groups kept within one set, stratified by class and hand as far as the groups "
    "allow: 4/6 train, 1/6 val, 1/6 test",
}
# RMS grey levels on 16x16 thumbnails: on the real images 99% of the nearest same-label
# distances lie below it and none of the nearest other-label ones (handgestures-leakage
# prints both distributions; docs/leakage.md gives the figures)
DEFAULT_THRESHOLD = 9.0
DEFAULT_THUMBNAIL = 16
DEFAULT_NEIGHBOURS = 10
GROUP_CAP_DIVISOR = 12  # max_group = smallest (class, hand) // 12 unless given


def thumbnails(images: torch.Tensor, size: int = DEFAULT_THUMBNAIL) -> torch.Tensor:
    """Block-mean ``size`` x ``size`` thumbnails of uint8 (N, 1, H, W) images, flattened, grey levels 0..255."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if size < 1 or height % size or width % size:
        raise ValueError(f"thumbnail size {size} must divide the image size {height}x{width}")
    out = [F.avg_pool2d(chunk.float(), (height // size, width // size)).flatten(1) for chunk in images.split(4096)]
    return torch.cat(out) if out else images.new_zeros((0, size * size), dtype=torch.float32)


def distance_blocks(
    queries: torch.Tensor, memory: torch.Tensor, block: int = 2048, progress: Callable[[int], None] | None = None
) -> Iterable[tuple[int, torch.Tensor]]:
    """``(start, RMS distances of queries[start:start + block] to every memory row)``, one block at a time.

    Squared distances come from one matrix product per block (|a|^2 + |b|^2 - 2ab), so the
    whole N x M matrix is never held; ``progress`` is called with each block's row count.
    """
    dims = max(1, queries.shape[1])
    sq_memory = (memory * memory).sum(1)
    for start in range(0, len(queries), block):
        rows = queries[start : start + block]
        squared = (rows * rows).sum(1)[:, None] + sq_memory[None] - 2 * rows @ memory.T
        yield start, squared.clamp_min_(0).div_(dims).sqrt_()
        if progress is not None:
            progress(len(rows))


def nearest(
    queries: torch.Tensor, memory: torch.Tensor, exclude_self: bool = False, block: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS distance to, and index of, each query's nearest memory row (itself excluded if asked)."""
    if len(memory) == 0 or (exclude_self and len(memory) < 2):
        raise ValueError(f"nearest neighbours need a memory of at least {2 if exclude_self else 1} rows")
    dist, index = torch.empty(len(queries)), torch.empty(len(queries), dtype=torch.long)
    for start, d in distance_blocks(queries, memory, block):
        if exclude_self:
            rows = torch.arange(len(d))
            d[rows, rows + start] = math.inf
        dist[start : start + len(d)], index[start : start + len(d)] = d.min(1)
    return dist, index


def strata_of(labels: torch.Tensor, hands: torch.Tensor | None) -> torch.Tensor:
    labels = torch.as_tensor(labels, dtype=torch.long)
    return labels * 2 + (torch.as_tensor(hands, dtype=torch.long) if hands is not None else 0)


def _link_edges(thumbs: torch.Tensor, members: torch.Tensor, threshold: float, k: int) -> np.ndarray:
    """(distance, i, j) rows: each member's ``k`` nearest other members closer than ``threshold``."""
    x = thumbs[members]
    k = min(k, len(members) - 1)
    if k < 1:
        return np.zeros((0, 3))
    parts = []
    for start, d in distance_blocks(x, x):
        rows = torch.arange(len(d))
        d[rows, rows + start] = math.inf
        dist, idx = d.topk(k, dim=1, largest=False)
        src = (rows + start)[:, None].expand_as(idx)
        keep = dist < threshold
        # rounded so that the merge order does not hang on the last bits of a matrix product
        parts.append(np.stack([dist[keep].double().numpy().round(4), members[src[keep]].numpy(),
                               members[idx[keep]].numpy()], 1))  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, 3))


def near_duplicate_groups(
    thumbs: torch.Tensor,
    labels: torch.Tensor,
    hands: torch.Tensor | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_group: int | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> torch.Tensor:
    """Group id (0, 1, ...) of every image: capped single linkage inside each (class, hand).

    ``max_group`` None means the smallest (class, hand) // 12; ``threshold`` is an RMS
    distance on ``thumbs``' grey-level scale. Ids are numbered in order of each group's
    first image, so the result depends on nothing but the inputs.
    """
    if threshold < 0 or not math.isfinite(threshold):
        raise ValueError(f"grouping threshold must be a finite distance >= 0, got {threshold}")
    if neighbours < 1:
        raise ValueError(f"grouping neighbours must be >= 1, got {neighbours}")
    strata = strata_of(labels, hands)
    counts = torch.bincount(strata)
    if max_group is None:
        max_group = max(1, int(counts[counts > 0].min()) // GROUP_CAP_DIVISOR)
    if max_group < 1:
        raise ValueError(f"max_group must be >= 1, got {max_group}")
    edges = [_link_edges(thumbs, torch.nonzero(strata == s).flatten(), threshold, neighbours)
             for s in torch.unique(strata)]  # fmt: skip
    edges = np.concatenate(edges) if edges else np.zeros((0, 3))
    edges = edges[np.lexsort((edges[:, 2], edges[:, 1], edges[:, 0]))]
    parent, size = list(range(len(strata))), [1] * len(strata)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges[:, 1:].astype(np.int64).tolist():
        ra, rb = find(a), find(b)
        if ra != rb and size[ra] + size[rb] <= max_group:
            ra, rb = (ra, rb) if ra < rb else (rb, ra)
            parent[rb], size[ra] = ra, size[ra] + size[rb]
    roots = torch.tensor([find(i) for i in range(len(strata))], dtype=torch.long)
    return torch.unique(roots, return_inverse=True)[1]  # roots are each group's first image: ids in that order


def grouped_split(
    labels: torch.Tensor, hands: torch.Tensor | None, groups: torch.Tensor, seed: int = 0, eval_fraction: float = 1 / 6
) -> dict[str, torch.Tensor]:
    """Whole groups to train/val/test, stratified by (class, hand), sizes as close to 4/6, 1/6, 1/6 as groups allow.

    Inside each (class, hand) of n images, groups are shuffled with ``seed``, ordered
    largest first, and each goes to the split furthest below its target (relative to it):
    ``floor(n/6)`` for validation and test, the rest for training, as in the random split.
    A split only takes a group while it is below target, so none overshoots by a whole
    group and each ends within two of the largest group of its target; with single-image
    groups the sizes are exactly those of the random split. A group that spans two (class,
    hand) strata is an error (near_duplicate_groups never makes one).
    """
    if not 0 < eval_fraction < 0.5:
        raise ValueError(f"eval_fraction must be in (0, 0.5), got {eval_fraction}")
    strata = strata_of(labels, hands)
    groups = torch.as_tensor(groups, dtype=torch.long)
    if len(groups) != len(strata):
        raise ValueError(f"groups has {len(groups)} entries for {len(strata)} images")
    pairs = torch.unique(torch.stack([groups, strata]), dim=1)
    if len(pairs[0]) != len(torch.unique(groups)):
        raise ValueError("a near-duplicate group spans two (class, hand) strata; groups must stay inside one")
    gen = torch.Generator().manual_seed(seed)
    split_of = torch.empty(len(strata), dtype=torch.long)
    for stratum in torch.unique(strata):
        members = torch.nonzero(strata == stratum).flatten()
        ids, inverse, sizes = torch.unique(groups[members], return_inverse=True, return_counts=True)
        order = torch.randperm(len(ids), generator=gen)
        order = order[torch.sort(sizes[order], descending=True, stable=True).indices]
        n_eval = int(len(members) * eval_fraction)  # the random split's sizes: floor(n/6) each
        target = torch.tensor([len(members) - 2 * n_eval, n_eval, n_eval], dtype=torch.float64)
        have = torch.zeros(3, dtype=torch.float64)
        for g in order.tolist():
            k = int(torch.argmax((target - have) / target.clamp_min(1e-9)))
            split_of[members[inverse == g]] = k
            have[k] += sizes[g]
    return {name: torch.nonzero(split_of == k).flatten() for k, name in enumerate(SPLITS)}


def make_split(
    data, kind: str = "random", seed: int = 0, grouping: dict | None = None, groups: torch.Tensor | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The split indices of ``data`` (an ImageSet) and its group ids (None for the random split).

    ``grouping`` holds ``threshold``, ``thumbnail``, ``max_group`` and ``neighbours``; ``groups``,
    when given, are the groups those parameters make (the DataModule passes the stored ones,
    :mod:`handgestures.data.stored_groups`), else they are computed here.
    """
    if kind not in SPLIT_KINDS:
        raise ValueError(f"data.split must be one of {list(SPLIT_KINDS)}, got {kind!r}")
    if kind == "random":
        return stratified_split(data.labels, data.hands, seed=seed, together=getattr(data, "twins", None)), None
    grouping = check_grouping(grouping)
    if groups is None:
        thumbs = thumbnails(data.images, int(grouping.pop("thumbnail", DEFAULT_THUMBNAIL)))
        groups = near_duplicate_groups(thumbs, data.labels, data.hands, **grouping)
    return grouped_split(data.labels, data.hands, groups, seed=seed), groups


def check_grouping(grouping: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data.grouping`` as a dict, with an error naming any key the grouping does not take."""
    grouping = dict(grouping or {})
    unknown = set(grouping) - {"threshold", "thumbnail", "max_group", "neighbours"}
    if unknown:
        raise ValueError(
            f"unknown data.grouping keys {sorted(unknown)}; expected threshold, thumbnail, max_group, neighbours"
        )
    return grouping


def split_table(names, labels, hands, split_indices: dict[str, torch.Tensor], groups=None, folds=None) -> list[dict]:
    """One row per image of any split: file, class, hand (L/R), split, group ('' where unknown), and fold (k-fold)."""
    split_of = {}
    for name, idx in split_indices.items():
        for i in idx.tolist():
            split_of[i] = name
    return [
        {"file": names[i], "class": int(labels[i]), "hand": "LR"[int(hands[i])], "split": split_of[i],
         "group": "" if groups is None else int(groups[i]), **({} if folds is None else {"fold": int(folds[i])})}
        for i in sorted(split_of)
    ]  # fmt: skip


def write_split_csv(datamodule, path: str | Path) -> Path:
    """Writes ``datamodule``'s split (set up here if it is not yet) as split.csv; returns the path."""
    datamodule.setup("fit")
    data, path = datamodule.data, Path(path)
    folds = getattr(datamodule, "fold_of", None)
    rows = split_table(
        data.names, data.labels, data.hands, datamodule.split_indices, getattr(datamodule, "groups", None), folds
    )
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["file", "class", "hand", "split", "group", *(["fold"] if folds is not None else [])]
        )
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path
