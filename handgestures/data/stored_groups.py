"""The near-duplicate groups of an image set, computed once and kept: in memory and beside the image cache.

Grouping 18,000 images takes seconds (:func:`handgestures.data.grouping.near_duplicate_groups`);
every grouped run needs the same groups for the same images and parameters: the K fold runs of a
cross-validation (:mod:`handgestures.data.folds`) and the single grouped split alike, in one
process or in several (joblib, Slurm, separate commands). :func:`groups_of` computes them once
and stores them beside the image cache entry they come from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from handgestures.data.cache import load_entry, save_entry
from handgestures.data.grouping import DEFAULT_THUMBNAIL, check_grouping, near_duplicate_groups, thumbnails

log = logging.getLogger(__name__)

_groups_memo: dict[str, torch.Tensor] = {}


def groups_of(data: Any, grouping: Mapping[str, Any] | None) -> torch.Tensor:
    """The near-duplicate groups of ``data`` (an ImageSet), computed once per data set and parameters.

    Kept in memory for the process and, when the images came from the image cache, on disk
    beside their entry (``groups-<entry>-<key>.pt``, a few hundred KB), so the runs that group
    the same images do it once whether they share a process (the basic launcher) or not
    (joblib, Slurm, separate commands). A copy that cannot be read or written is recomputed.
    """
    grouping = check_grouping(grouping)
    key = hashlib.blake2b(
        json.dumps([data.source, len(data), data.labels.tolist(), data.hands.tolist(), data.names,
                    sorted(grouping.items())], default=str).encode(), digest_size=16,
    ).hexdigest()  # fmt: skip
    if key in _groups_memo:
        return _groups_memo[key]
    entry = getattr(data, "cache_file", None)
    stored = Path(entry).with_name(f"groups-{Path(entry).stem}-{key}.pt") if entry else None
    blob = load_entry(stored) if stored is not None else None
    groups = blob.get("groups") if blob is not None else None
    if not (isinstance(groups, torch.Tensor) and groups.dtype == torch.int64 and groups.shape == (len(data),)):
        start = time.perf_counter()
        log.info("grouping %d images into near-duplicate groups (once per data set and parameters) ...", len(data))
        thumbs = thumbnails(data.images, int(grouping.pop("thumbnail", DEFAULT_THUMBNAIL)))
        groups = near_duplicate_groups(thumbs, data.labels, data.hands, **grouping)
        log.info("%d groups in %.1f s", int(groups.max()) + 1 if len(groups) else 0, time.perf_counter() - start)
        if stored is not None:
            save_entry(stored, {"groups": groups})
    _groups_memo[key] = groups
    return groups
