"""The study's split: every image pooled, then 4/6 train, 1/6 validation, 1/6 test.

Stratified by class (and by hand, when known) so every split keeps the class balance
exactly; drawn from its own seed so changing the training seed never moves an image
from one split to another.
"""

from __future__ import annotations

import torch

SPLITS = ("train", "val", "test")


def stratified_split(
    labels: torch.Tensor,
    groups: torch.Tensor | None = None,
    seed: int = 0,
    eval_fraction: float = 1 / 6,
    together: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Sorted index tensors for ``train``, ``val`` and ``test``.

    In each stratum (class, or class x group) of ``n`` images, ``floor(n * eval_fraction)``
    go to validation, as many to test, and the rest to training. ``together`` (optional,
    one index per image, equal for images that must share a split, e.g. exact duplicates)
    moves every image to the split of the first image of its group, so no copy leaks
    between splits; without groups of two or more, the split is unchanged.

    >>> s = stratified_split(torch.arange(12) % 2, seed=0)
    >>> [len(s[k]) for k in SPLITS]
    [8, 2, 2]
    """
    if not 0 < eval_fraction < 0.5:
        raise ValueError(f"eval_fraction must be in (0, 0.5), got {eval_fraction}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    strata = labels if groups is None else labels * (int(groups.max()) + 1) + torch.as_tensor(groups)
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in SPLITS}
    for stratum in torch.unique(strata):  # sorted, so the draw order is fixed
        members = torch.nonzero(strata == stratum).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_eval = int(len(members) * eval_fraction)
        parts["val"].append(members[:n_eval])
        parts["test"].append(members[n_eval : 2 * n_eval])
        parts["train"].append(members[2 * n_eval :])
    split = {k: torch.cat(v).sort().values for k, v in parts.items()}
    return split if together is None else keep_together(split, torch.as_tensor(together, dtype=torch.long))


def keep_together(split: dict[str, torch.Tensor], together: torch.Tensor) -> dict[str, torch.Tensor]:
    """``split`` with each image moved to the split of its group's lowest-index image."""
    where = torch.empty(len(together), dtype=torch.long)
    for i, k in enumerate(SPLITS):
        where[split[k]] = i
    _, group = torch.unique(together, return_inverse=True)
    first = torch.full((int(group.max()) + 1 if len(group) else 0,), len(group), dtype=torch.long)
    first.scatter_reduce_(0, group, torch.arange(len(group)), reduce="amin")
    where = where[first[group]]
    return {k: torch.nonzero(where == i).flatten() for i, k in enumerate(SPLITS)}
