"""Reading a folder of runs: each run folder's identity, status, metrics and learning curves.

A run folder is one with metrics.json, failed.json or .hydra/config.yaml (a run that never
wrote a result still shows up, as ``incomplete``). ``handgestures.report`` aggregates what
this module reads.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from handgestures.study import DATASETS, MODELS

RUN_NAME = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<data>[a-z0-9_]+)-seed(?P<seed>\d+)")



@dataclass
class Run:
    folder: Path
    model: str
    data: str
    seed: int | None
    status: str  # done | trained (not evaluated) | failed | incomplete (no result file)
    info: dict[str, Any] = field(default_factory=dict)  # metrics.json
    error: str | None = None  # failed.json's error, first line
    epochs: list[dict[str, float]] = field(default_factory=list)  # epochs.csv
    figures: dict[str, str] = field(default_factory=dict)  # kind -> file name under figures/

    @property
    def name(self) -> str:
        return f"{self.model}-{self.data}-seed{self.seed if self.seed is not None else '?'}"

    @property
    def metrics(self) -> dict[str, float]:
        return self.info.get("metrics", {}) if self.status == "done" else {}

    @cached_property
    def precision(self) -> str | None:
        """The Trainer precision the run used: metrics.json's, else its saved config's."""
        if self.info.get("precision"):
            return str(self.info["precision"])
        for config in (self.folder / "config.yaml", self.folder / ".hydra" / "config.yaml"):
            if config.is_file():
                value = OmegaConf.select(OmegaConf.load(config), "trainer.precision")
                return None if value is None else str(value)
        return None


def find_run_folders(runs_dir: Path) -> list[Path]:
    found = set()
    for path in runs_dir.rglob("*"):
        if path.name in ("metrics.json", "failed.json") and path.is_file():
            found.add(path.parent)
        elif path.name == "config.yaml" and path.parent.name == ".hydra":
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
    for config in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if config.is_file():
            seed = OmegaConf.load(config).get("seed")
            if isinstance(seed, int):
                ident["seed"] = seed
            break
    return ident


def read_epochs(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(fh)
        ]


def load_run(folder: Path) -> Run:
    metrics_file, failed_file = folder / "metrics.json", folder / "failed.json"
    info = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    ident = {k: info[k] for k in ("model", "data", "seed") if k in info} if info else read_identity(folder)
    error = None
    # a failure counts unless a later run in the same folder finished (a stale failed.json)
    if failed_file.is_file() and not (info and metrics_file.stat().st_mtime > failed_file.stat().st_mtime):
        status = "failed"
        lines = str(json.loads(failed_file.read_text()).get("error", "")).strip().splitlines()
        error = lines[0] if lines else "unknown error"
    else:
        status = info.get("status", "incomplete") if info else "incomplete"
    return Run(folder, str(ident["model"]), str(ident["data"]), ident.get("seed"), status, info, error,
               read_epochs(folder / "epochs.csv"))  # fmt: skip


def sort_key(run: Run) -> tuple:
    order = list(MODELS)
    return (order.index(run.model) if run.model in order else len(order), run.model,
            DATASETS.index(run.data) if run.data in DATASETS else len(DATASETS), run.data,
            run.seed if run.seed is not None else -1, str(run.folder))  # fmt: skip


def load_runs(runs_dir: Path) -> list[Run]:
    return sorted((load_run(folder) for folder in find_run_folders(runs_dir)), key=sort_key)
