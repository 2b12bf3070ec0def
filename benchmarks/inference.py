"""Inference throughput: ``Trainer.test`` on the cross-evaluation sets, timed per set.

The study's test_step with its metrics, eval batch 256, ``limit_test_batches`` batches per
set: ``infer_images_per_s`` for the plain sets, ``infer_aug_images_per_s`` for the fixed
augmented views (their warp included). The very first batch is the warm-up.
"""

from __future__ import annotations

from benchmarks.common import rate


def inference_rates(
    names: list[str], batch_ends: dict[int, list[float]], batch_images: dict[int, list[int]]
) -> dict[str, dict[str, float]]:
    """Images and seconds of each evaluated set, from the end time and size of each of its batches.

    A set's time runs from the end of the previous set to the end of its last batch, so every
    batch's gather (and warp) and step count; in the first set, its first batch is the
    warm-up and its time starts at the end of that batch.
    """
    infer: dict[str, dict[str, float]] = {}
    previous_end: float | None = None
    for idx, name in enumerate(names):
        ends, sizes = batch_ends.get(idx, []), batch_images.get(idx, [])
        if not ends:
            continue
        if previous_end is None:
            if len(ends) > 1:
                infer[name] = {"images": sum(sizes[1:]), "seconds": ends[-1] - ends[0]}
        else:
            infer[name] = {"images": sum(sizes), "seconds": ends[-1] - previous_end}
        previous_end = ends[-1]
    return infer


def pooled_rate(items: list[dict[str, float]]) -> float | None:
    """Images/s over several sets together; None when there are none."""
    return rate(sum(i["images"] for i in items), sum(i["seconds"] for i in items)) if items else None
