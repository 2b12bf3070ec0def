"""Reading a folder of runs: each run folder's identity, status, metrics and learning curves.

A run folder is one with metrics.json, failed.json or .hydra/config.yaml (a run that never
wrote a result still shows up, as ``incomplete``). ``handgestures.analysis.report`` aggregates what
this module reads.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from handgestures.analysis.study import BATCH_LIMITS, DATASETS, MODELS, limited, recipe_differences
from handgestures.runfolder.record import (
    CONFIG_FILE,
    EPOCHS_FILE,
    FAILED_FILE,
    KEY_ERROR,
    KEY_STATUS,
    METRICS_FILE,
    STATUS_DONE,
    STATUS_FAILED,
    read_json,
)

# the run folders' names (conf/hydra/default.yaml): <model>-<data>-seed<N>-...
STATUS_UNREADABLE = "unreadable"  # metrics.json exists but cannot be read (truncated, not JSON): listed, not counted
RUN_NAME = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<data>[a-z0-9_]+)-seed(?P<seed>\d+)")


@dataclass
class Run:
    folder: Path
    model: str
    data: str
    seed: int | None
    status: str  # done | trained (not evaluated) | failed | incomplete (no result file) | unreadable (metrics.json)
    info: dict[str, Any] = field(default_factory=dict)  # metrics.json
    error: str | None = None  # failed.json's error, first line
    epochs: list[dict[str, float]] = field(default_factory=list)  # epochs.csv
    figures: dict[str, str] = field(default_factory=dict)  # kind -> file name under figures/

    @property
    def fold(self) -> int | None:
        """The test fold of a cross-validated run (metrics.json's ``fold`` with ``folds``), else None."""
        return int(self.info["fold"]) if self.info.get("folds") and self.info.get("fold") is not None else None

    @property
    def replicate(self) -> Any:
        """What makes runs of one model and data replicates: the seed, and the fold under cross-validation."""
        return self.seed if self.fold is None else (self.seed, self.fold)

    @property
    def name(self) -> str:
        fold = "" if self.fold is None else f"-fold{self.fold}"
        return f"{self.model}-{self.data}{fold}-seed{self.seed if self.seed is not None else '?'}"

    @property
    def metrics(self) -> dict[str, float]:
        return self.info.get("metrics", {}) if self.status == STATUS_DONE else {}

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved config the run trained with (config.yaml, else Hydra's copy); {} if none."""
        for path in (self.folder / CONFIG_FILE, self.folder / ".hydra" / CONFIG_FILE):
            if path.is_file():
                config = OmegaConf.load(path)
                try:
                    return OmegaConf.to_container(config, resolve=True) or {}
                except Exception:  # an interpolation that needs Hydra's run-time values
                    return OmegaConf.to_container(config, resolve=False) or {}
        return {}

    @property
    def data_source(self) -> str:
        """The images it trained on, without the machine's paths: the Fingers folder's last two parts."""
        data = self.config.get("data") or {}
        if data.get("root"):
            return "Fingers images (" + "/".join(Path(str(data["root"])).parts[-2:]) + ")"
        return f"built-in hands ({data.get('builtin_size', '?')})" if data else "?"

    @property
    def batch_limits(self) -> str:
        """limit_train/val/test_batches that are set, e.g. 'train 3, test 1'; 'none' for whole epochs."""
        trainer = self.config.get("trainer") or {}
        limits = [f"{k.split('_')[1]} {trainer[k]}" for k in BATCH_LIMITS if limited(trainer.get(k))]
        return ", ".join(limits) or "none"

    @property
    def configured_epochs(self) -> Any:
        return self.config.get("epochs", (self.config.get("trainer") or {}).get("max_epochs"))

    @property
    def not_comparable(self) -> list[str]:
        """Why the run cannot be set beside the slides' numbers ([] when it follows the study's recipe)."""
        return recipe_differences(self.model, self.data, self.config)

    @cached_property
    def precision(self) -> str | None:
        """The Trainer precision the run used: metrics.json's, else its saved config's."""
        if self.info.get("precision"):
            return str(self.info["precision"])
        value = (self.config.get("trainer") or {}).get("precision")
        return None if value is None else str(value)


def find_run_folders(runs_dir: Path) -> list[Path]:
    found = set()
    for path in runs_dir.rglob("*"):
        if path.name in (METRICS_FILE, FAILED_FILE) and path.is_file():
            found.add(path.parent)
        elif path.name == CONFIG_FILE and path.parent.name == ".hydra":
            found.add(path.parent.parent)
    return sorted(found)


def read_identity(folder: Path) -> dict[str, Any]:
    """model, data and seed of a run without metrics.json: from Hydra's files, else the folder name."""
    match = RUN_NAME.match(folder.name)
    ident: dict[str, Any] = {"model": "?", "data": "?", "seed": None}
    if match:
        ident = {"model": match["model"], "data": match["data"], "seed": int(match["seed"])}
    hydra_file = folder / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        choices = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices") or {}
        ident.update({k: choices[k] for k in ("model", "data") if choices.get(k)})
    for config in (folder / CONFIG_FILE, folder / ".hydra" / CONFIG_FILE):
        if config.is_file():
            seed = OmegaConf.load(config).get("seed")
            if isinstance(seed, int):
                ident["seed"] = seed
            break
    return ident


def read_epochs(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as fh:
            return [
                {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(fh)
            ]
    except (OSError, ValueError, TypeError):  # a damaged epochs.csv: no curves for that run, the rest goes on
        return []


def read_record(path: Path) -> tuple[dict[str, Any], str | None]:
    """``(content, None)`` of a run's JSON file, or ``({}, why it cannot be read)``: one bad file stops nothing."""
    try:
        content = read_json(path)
    except (OSError, ValueError) as err:  # unreadable, truncated mid-write, not UTF-8, not JSON
        return {}, f"{path.name} unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    if not isinstance(content, dict):
        return {}, f"{path.name} unreadable (a JSON {type(content).__name__}, not an object)"
    return content, None


def load_run(folder: Path) -> Run:
    metrics_file, failed_file = folder / METRICS_FILE, folder / FAILED_FILE
    info, unreadable = read_record(metrics_file) if metrics_file.is_file() else ({}, None)
    ident = {k: info[k] for k in ("model", "data", "seed") if k in info} if info else read_identity(folder)
    error = None
    # a failure counts unless a later run in the same folder finished (a stale failed.json)
    if failed_file.is_file() and not (info and metrics_file.stat().st_mtime > failed_file.stat().st_mtime):
        status = STATUS_FAILED
        failure, why = read_record(failed_file)
        lines = str(failure.get(KEY_ERROR, why or "")).strip().splitlines()
        error = lines[0] if lines else "unknown error"
    elif unreadable:
        status, error = STATUS_UNREADABLE, f"{metrics_file}: {unreadable}"
    else:
        status = info.get(KEY_STATUS, "incomplete") if info else "incomplete"
    return Run(folder, str(ident["model"]), str(ident["data"]), ident.get("seed"), status, info, error,
               read_epochs(folder / EPOCHS_FILE))  # fmt: skip


def sort_key(run: Run) -> tuple:
    order = list(MODELS)
    return (order.index(run.model) if run.model in order else len(order), run.model,
            DATASETS.index(run.data) if run.data in DATASETS else len(DATASETS), run.data,
            run.seed if run.seed is not None else -1, str(run.folder))  # fmt: skip


def load_runs(runs_dir: Path) -> list[Run]:
    return sorted((load_run(folder) for folder in find_run_folders(runs_dir)), key=sort_key)
