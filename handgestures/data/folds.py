"""Grouped k-fold cross-validation: ``data.split=grouped data.folds=K data.fold=i``.

The near-duplicate groups of :mod:`handgestures.data.grouping` are dealt into K folds inside
each (class, hand): groups shuffled with the split seed, largest first, each to the fold
furthest below its share (n/K of the stratum), so the folds keep the class and hand balance
as far as the groups allow and no group spans two folds. Fold i is the test set; validation
is taken from the other folds by groups too (floor(n/6) of each stratum, as the single splits
take it) and the rest trains, so no group spans two of train, val and test. Everything is a
function of the images, the grouping parameters, K and the split seed: every fold of one
fold set sees the same folds.

The grouping is computed once per data set and grouping parameters
(:func:`handgestures.data.stored_groups.groups_of`: kept in memory and beside the image cache
entry), so the K runs of a sweep group the images once, in one process or in several; the
decoded images come from the shared image cache as for any run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from handgestures.data.grouping import strata_of
from handgestures.data.split import SPLITS
from handgestures.data.stored_groups import groups_of

VAL_FRACTION = 1 / 6  # of each (class, hand): the single splits' validation share


def _deal(sizes: torch.Tensor, targets: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Bin of each group (sizes), groups shuffled then largest first, each to the bin most below its target."""
    order = torch.randperm(len(sizes), generator=gen)
    order = order[torch.sort(sizes[order], descending=True, stable=True).indices]
    have = torch.zeros(len(targets), dtype=torch.float64)
    where = torch.empty(len(sizes), dtype=torch.long)
    for g in order.tolist():
        k = int(torch.argmax((targets - have) / targets.clamp_min(1e-9)))
        where[g] = k
        have[k] += float(sizes[g])
    return where


def grouped_folds(labels: torch.Tensor, hands: torch.Tensor | None, groups: torch.Tensor, k: int,
                  seed: int = 0) -> torch.Tensor:  # fmt: skip
    """The fold (0..k-1) of every image: whole groups, dealt inside each (class, hand)."""
    strata = strata_of(labels, hands)
    groups = torch.as_tensor(groups, dtype=torch.long)
    if k < 2:
        raise ValueError(f"data.folds={k}: expected at least 2 folds")
    counts = {int(s): len(torch.unique(groups[strata == s])) for s in torch.unique(strata)}
    fewest = min(counts.values())
    if fewest < k:
        s = min(counts, key=counts.get)
        raise ValueError(
            f"data.folds={k}: the (class {s // 2}, hand {'LR'[s % 2]}) images form only {fewest} near-duplicate "
            f"groups, so at most {fewest} folds can each hold some of them; choose data.folds <= {fewest}"
        )
    gen = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(strata), dtype=torch.long)
    for stratum in torch.unique(strata):
        members = torch.nonzero(strata == stratum).flatten()
        ids, inverse, sizes = torch.unique(groups[members], return_inverse=True, return_counts=True)
        where = _deal(sizes, torch.full((k,), len(members) / k, dtype=torch.float64), gen)
        fold_of[members] = where[inverse]
    return fold_of


def fold_split(labels: torch.Tensor, hands: torch.Tensor | None, groups: torch.Tensor, fold_of: torch.Tensor,
               fold: int, seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """train/val/test indices: fold ``fold`` is test; val by groups from the other folds; the rest trains."""
    k = int(fold_of.max()) + 1
    if not 0 <= fold < k:
        raise ValueError(f"data.fold={fold}: expected 0 <= fold < data.folds={k}")
    strata = strata_of(labels, hands)
    groups = torch.as_tensor(groups, dtype=torch.long)
    split_of = torch.full((len(strata),), 2, dtype=torch.long)  # test by default
    gen = torch.Generator().manual_seed(seed + 1)  # not the folds' draw
    for stratum in torch.unique(strata):
        everyone = torch.nonzero(strata == stratum).flatten()
        members = everyone[fold_of[everyone] != fold]
        ids, inverse, sizes = torch.unique(groups[members], return_inverse=True, return_counts=True)
        n_val = int(len(everyone) * VAL_FRACTION)
        where = _deal(sizes, torch.tensor([len(members) - n_val, n_val], dtype=torch.float64), gen)
        split_of[members] = where[inverse]
    return {name: torch.nonzero(split_of == i).flatten() for i, name in enumerate(SPLITS)}


def make_fold_split(data: Any, folds: int, fold: int, seed: int, grouping: Mapping[str, Any] | None
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:  # fmt: skip
    """(split indices, group ids, fold ids) of fold ``fold`` of ``folds`` grouped folds of ``data``."""
    groups = groups_of(data, grouping)
    fold_of = grouped_folds(data.labels, data.hands, groups, int(folds), seed)
    return fold_split(data.labels, data.hands, groups, fold_of, int(fold), seed), groups, fold_of
