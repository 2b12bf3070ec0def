"""A saved config.yaml as this version reads it: older class paths, older keys, a moved folder.

Run folders outlive the code that wrote them, and users copy and move them. Reading a
folder's config.yaml goes through :func:`upgrade_saved_config`, which

* renames the classes that moved when the package was regrouped by concern
  (``handgestures.callbacks.EpochMetrics`` became ``handgestures.training.callbacks.EpochMetrics``);
* moves ``data.epochs`` (where configs before the regrouping kept the variant's epochs) to the
  top-level ``epochs`` it always equalled;
* rebases every path inside the folder it was written in onto where the folder is now, so a
  copied or moved folder resumes, evaluates and exports from its own files and writes nothing
  outside itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# class path prefixes before the regrouping -> now (only classes a config names by _target_)
MOVED_TARGETS = {
    "handgestures.callbacks.": "handgestures.training.callbacks.",
    "handgestures.sweep.": "handgestures.launch.sweep.",
}


def _rename_target(value: str) -> str:
    for old, new in MOVED_TARGETS.items():
        if value.startswith(old):
            return new + value[len(old) :]
    return value


def _rebase(value: str, old: str, new: str) -> str:
    if value == old:
        return new
    if value.startswith(old.rstrip(os.sep) + os.sep):
        return new.rstrip(os.sep) + os.sep + value[len(old.rstrip(os.sep)) + 1 :]
    return value


def _walk(node: Any, old_dir: str | None, new_dir: str) -> Any:
    if isinstance(node, dict):
        return {k: (_rename_target(v) if k == "_target_" and isinstance(v, str) else _walk(v, old_dir, new_dir))
                for k, v in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [_walk(v, old_dir, new_dir) for v in node]
    if isinstance(node, str) and old_dir:
        return _rebase(node, old_dir, new_dir)
    return node


def upgrade_saved_config(cfg: DictConfig, run_dir: str | Path) -> DictConfig:
    """``cfg`` (a run folder's config.yaml) with old class paths renamed, ``data.epochs`` moved, paths rebased."""
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    old_dir = str((container.get("paths") or {}).get("output_dir") or "") or None
    new_dir = str(Path(run_dir).expanduser().resolve())
    if old_dir is not None and os.path.normpath(old_dir) == new_dir:
        old_dir = None  # the folder is where it was written: nothing to rebase
    container = _walk(container, old_dir, new_dir)
    data = container.get("data")
    if isinstance(data, dict) and "epochs" in data:
        epochs = data.pop("epochs")
        container.setdefault("epochs", epochs)
    return OmegaConf.create(container)
