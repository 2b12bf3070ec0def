"""``handgestures-report DIR``: the study's tables, figures and CSVs from a folder of runs.

Every run folder under DIR (one with metrics.json, failed.json or .hydra/config.yaml) is read;
the three tables of the slides are rebuilt (mean ± std over seeds), each next to the published
value, and every run that failed, was never evaluated, or is missing from the model x data
grid is marked and listed. Output, in ``--out`` (default DIR): report.md, runs.csv,
table_<name>.csv and figures/*.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator
from omegaconf import OmegaConf

from handgestures.plots import confusion_figure, curves_figure, plt, save_figure

MODELS = {"carlosnet": "CarlosNet", "ivannet": "IvanNet"}
DATASETS = ("base", "augmented")
RUN_NAME = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<data>[a-z0-9_]+)-seed(?P<seed>\d+)")


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (header, key in metrics.json's "metrics")
    rows: tuple[tuple[str, str, str], ...]  # (label, model, data)


TABLES = (
    Table("base", "Base dataset", (
        ("acc train", "train/acc"), ("acc val", "val/acc"), ("acc test", "test/acc"),
        ("loss train", "train/loss"), ("loss val", "val/loss"), ("loss test", "test/loss"),
    ), (("CarlosNet", "carlosnet", "base"), ("IvanNet", "ivannet", "base"))),
    Table("augmented", "Augmented dataset", (
        ("acc train_aug", "train_aug/acc"), ("acc val", "val/acc"), ("acc test", "test/acc"),
        ("loss train_aug", "train_aug/loss"), ("loss val", "val/loss"), ("loss test", "test/loss"),
    ), (("CarlosNet", "carlosnet", "augmented"), ("IvanNet", "ivannet", "augmented"))),
    Table("generalisation", "Generalisation (accuracy on augmented views)", (
        ("acc train_aug", "train_aug/acc"), ("acc val_aug", "val_aug/acc"), ("acc test_aug", "test_aug/acc"),
    ), (("CarlosNet, base", "carlosnet", "base"), ("CarlosNet, augmented", "carlosnet", "augmented"),
        ("IvanNet, base", "ivannet", "base"), ("IvanNet, augmented", "ivannet", "augmented"))),
)  # fmt: skip

# The published reference: the slides' tables (STUDY.md), single runs, values in column order.
SLIDES: dict[str, dict[str, tuple[float, ...]]] = {
    "base": {
        "CarlosNet": (1.0, 1.0, 0.9994, 0.0014, 0.0012, 0.0031),
        "IvanNet": (1.0, 1.0, 1.0, 2.8292e-5, 2.076e-5, 5.825e-5),
    },
    "augmented": {
        "CarlosNet": (0.9587, 0.9586, 0.9767, 0.1272, 0.1099, 0.0647),
        "IvanNet": (0.9823, 0.9942, 0.9955, 0.0455, 0.0017, 0.00955),
    },
    "generalisation": {
        "CarlosNet, base": (0.1972, 0.1978, 0.1917),
        "CarlosNet, augmented": (0.9587, 0.9586, 0.9767),
        "IvanNet, base": (0.1981, 0.1975, 0.1997),
        "IvanNet, augmented": (0.9823, 0.9942, 0.9955),
    },
}

RUN_FIELDS = ("epochs_run", "best_val_acc", "fit_seconds", "startup_seconds", "train_images_per_second",
              "eval_seconds", "wall_seconds")  # fmt: skip


# ---------------------------------------------------------------------------- loading runs


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


# ---------------------------------------------------------------------------- aggregating


@dataclass
class Cell:
    mean: float | None
    std: float | None  # sample standard deviation over seeds; None with fewer than 2
    n: int
    slides: float


def stats(values: list[float]) -> tuple[float | None, float | None, int]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, None, 0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


def group(runs: Iterable[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.model, run.data), []).append(run)
    return groups


def aggregate(runs: list[Run], table: Table) -> dict[str, list[Cell]]:
    """label -> one Cell per column, over the evaluated runs of the row's model and data."""
    groups = group(runs)
    cells = {}
    for label, model, data in table.rows:
        done = [r for r in groups.get((model, data), []) if r.status == "done"]
        cells[label] = [Cell(*stats([r.metrics.get(key) for r in done]), slides=SLIDES[table.name][label][i])
                        for i, (_, key) in enumerate(table.columns)]  # fmt: skip
    return cells


def grid(runs: list[Run]) -> list[tuple[str, str]]:
    """Every model x data combination expected (the study's) or found."""
    models = list(MODELS) + sorted({r.model for r in runs} - set(MODELS))
    datasets = list(DATASETS) + sorted({r.data for r in runs} - set(DATASETS))
    return [(m, d) for m in models for d in datasets]


def row_status(runs: list[Run]) -> str:
    """What a table row stands on: 'n=3', 'n=2; 1 failed', 'MISSING (no run)', ..."""
    if not runs:
        return "**MISSING** (no run)"
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "trained", "failed", "incomplete")}
    notes = [f"n={counts['done']}"]
    notes += [f"**{counts[s]} {label}**" for s, label in (("failed", "failed"), ("trained", "not evaluated"),
              ("incomplete", "incomplete")) if counts[s]]  # fmt: skip
    return "; ".join(notes)


def problems(runs: list[Run]) -> list[str]:
    found = group(runs)
    lines = [f"missing: no run of {MODELS.get(m, m)} on {d}" for m, d in grid(runs) if (m, d) not in found]
    for run in runs:
        if run.status == "failed":
            lines.append(f"failed: {run.name} ({run.folder.name}): {run.error}")
        elif run.status == "trained":
            lines.append(f"not evaluated: {run.name} ({run.folder.name}) has status 'trained', no test metrics")
        elif run.status == "incomplete":
            lines.append(f"incomplete: {run.name} ({run.folder.name}) has no metrics.json (still running or killed)")
    seen: dict[tuple, int] = {}
    for run in (r for r in runs if r.status == "done"):
        seen[(run.model, run.data, run.seed)] = seen.get((run.model, run.data, run.seed), 0) + 1
    lines += [f"duplicate: {m}-{d}-seed{s} evaluated {k} times, each counts in the mean" for (m, d, s), k in seen.items()
              if k > 1]  # fmt: skip
    return lines


# ---------------------------------------------------------------------------- formatting


def fmt(value: float | None, key: str = "acc") -> str:
    """Accuracies with 4 decimals, losses with 4 significant digits."""
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.4f}" if key.endswith("acc") else f"{value:.4g}"


def fmt_cell(cell: Cell, key: str) -> str:
    if cell.n == 0:
        return "—"
    return fmt(cell.mean, key) if cell.std is None else f"{fmt(cell.mean, key)} ± {fmt(cell.std, key)}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{seconds:.1f} s" if seconds < 60 else f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def study_table_md(table: Table, cells: dict[str, list[Cell]], runs: list[Run]) -> str:
    """Each row as ours (mean ± std, or the single value) with the slides' row right below it."""
    groups = group(runs)
    rows = []
    for label, model, data in table.rows:
        rows.append([f"**{label}**", row_status(groups.get((model, data), []))]
                    + [fmt_cell(c, key) for c, (_, key) in zip(cells[label], table.columns, strict=True)])  # fmt: skip
        rows.append([f"*{label}, slides*", ""] + [f"*{c.slides}*" for c in cells[label]])
    return markdown_table(["", "runs"] + [h for h, _ in table.columns], rows)


def runs_table_md(runs: list[Run], out_dir: Path) -> str:
    rows = []
    for run in runs:
        labels = {"done": "done", "failed": f"**failed**: {run.error}", "trained": "**trained** (not evaluated)"}
        status = labels.get(run.status, f"**{run.status}**")
        link = os.path.relpath(run.folder, out_dir)
        rows.append([run.model, run.data, str(run.seed), status, run.precision or "—",
                     str(run.info.get("epochs_run", "—")),
                     fmt(run.info.get("best_val_acc")), fmt(run.metrics.get("test/acc")),
                     fmt_seconds(run.info.get("fit_seconds")), fmt(run.info.get("train_images_per_second"), "n"),
                     f"[{run.folder.name}]({link})"])  # fmt: skip
    headers = ["model", "data", "seed", "status", "precision", "epochs", "best val acc", "test acc", "fit time", "images/s",
               "folder"]  # fmt: skip
    return markdown_table(headers, rows)


def times_table_md(runs: list[Run]) -> tuple[str, float]:
    rows, total = [], 0.0
    for (model, data), group_runs in group(runs).items():
        walls = [r.info.get("wall_seconds") or (r.info.get("fit_seconds") or 0) + (r.info.get("startup_seconds") or 0)
                 for r in group_runs]  # fmt: skip
        total += sum(walls)
        mean = {k: stats([r.info.get(k) for r in group_runs])[0] for k in RUN_FIELDS}
        rows.append([model, data, str(len(group_runs)), fmt_seconds(mean["startup_seconds"]),
                     fmt_seconds(mean["fit_seconds"]), fmt_seconds(mean["eval_seconds"]),
                     fmt(mean["train_images_per_second"], "n"), fmt_seconds(sum(walls))])  # fmt: skip
    headers = ["model", "data", "runs", "start-up (mean)", "fit (mean)", "evaluation (mean)", "images/s (mean)",
               "wall (sum)"]  # fmt: skip
    return markdown_table(headers, rows), total


def report_md(runs: list[Run], tables: dict[str, dict[str, list[Cell]]], out_dir: Path, runs_dir: Path) -> str:
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    parts = [
        "# Hand-gesture study: results",
        f"{len(runs)} runs found under `{runs_dir}` (seeds {', '.join(map(str, seeds)) or 'none'}). "
        "Values are the best checkpoint's, mean ± sample standard deviation over the evaluated seeds "
        "(a plain value when n=1); *slides* rows are the published single runs (STUDY.md). "
        "*train_aug* / *val_aug* / *test_aug* are the fixed augmented views of each split.",
    ]
    issues = problems(runs)
    parts += ["## Problems", "\n".join(f"- {line}" for line in issues) if issues else "None: every run evaluated."]
    for table in TABLES:
        parts += [f"## {table.title}", study_table_md(table, tables[table.name], runs)]
    times, total = times_table_md(runs)
    parts += [
        "## Runs",
        runs_table_md(runs, out_dir),
        "## Wall time",
        f"Total job time {fmt_seconds(total)} over {len(runs)} runs (sum of each run's wall time).",
        times,
    ]
    parts += ["## Figures"] + figures_md(runs)
    return "\n\n".join(parts) + "\n"


def figures_md(runs: list[Run]) -> list[str]:
    parts = []
    for (model, data), group_runs in group(runs).items():
        parts.append(f"### {MODELS.get(model, model)}, {data}")
        if sum(bool(r.epochs) for r in group_runs) > 1:
            parts.append(f"![{model}-{data}, seeds overlaid](figures/{model}-{data}-seeds.png)")
        for run in group_runs:
            images = [f"![{run.name} {kind}](figures/{name})" for kind, name in run.figures.items()]
            parts.append(
                f"**{run.name}** ({run.status})\n\n" + (" ".join(images) or "no epochs.csv, no test confusion")
            )
    return parts or ["No runs found."]


# ---------------------------------------------------------------------------- writing files


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run_row(run: Run) -> dict[str, Any]:
    row = {"folder": str(run.folder), "model": run.model, "data": run.data, "seed": run.seed, "status": run.status,
           "precision": run.precision}  # fmt: skip
    row.update({k: run.info.get(k) for k in RUN_FIELDS})
    return {**row, **run.info.get("metrics", {}), "error": run.error}


def table_rows(table: Table, cells: dict[str, list[Cell]], runs: list[Run]) -> list[dict[str, Any]]:
    groups = group(runs)
    return [{"row": label, "model": model, "data": data, "metric": key, "mean": cell.mean, "std": cell.std,
             "n": cell.n, "slides": cell.slides, "runs": row_status(groups.get((model, data), [])).replace("*", "")}
            for label, model, data in table.rows
            for cell, (_, key) in zip(cells[label], table.columns, strict=True)]  # fmt: skip


def seeds_figure(runs: list[Run], title: str) -> plt.Figure:
    """Learning curves of several seeds overlaid: train solid, val dashed, one colour per seed."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for i, run in enumerate(r for r in runs if r.epochs):
        epochs = [int(row["epoch"]) for row in run.epochs]
        for ax, metric in zip(axes, ("acc", "loss"), strict=True):
            for split, style in (("train", "-"), ("val", "--")):
                ax.plot(epochs, [row[f"{split}/{metric}"] for row in run.epochs], style, marker="o", ms=3,
                        color=f"C{i % 10}", label=f"seed {run.seed}" if split == "train" else None)  # fmt: skip
    for ax, label in zip(axes, ("accuracy", "loss"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_figures(runs: list[Run], figures_dir: Path) -> None:
    figures_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for run in runs:
        stem, k = run.name, 2
        while stem in used:  # the same model-data-seed twice (several sweeps under DIR)
            stem, k = f"{run.name}-{k}", k + 1
        used.add(stem)
        label = f"{MODELS.get(run.model, run.model)}, {run.data}, seed {run.seed}"
        if run.epochs:
            run.figures["curves"] = f"{stem}-curves.png"
            save_figure(curves_figure(run.epochs, label), figures_dir / run.figures["curves"])
        confusion = run.info.get("confusion", {}).get("test") if run.status == "done" else None
        if confusion:
            run.figures["confusion"] = f"{stem}-confusion-test.png"
            save_figure(confusion_figure(confusion, f"{label}: test set"), figures_dir / run.figures["confusion"])
    for (model, data), group_runs in group(runs).items():
        if sum(bool(r.epochs) for r in group_runs) > 1:
            title = f"{MODELS.get(model, model)}, {data}: {len(group_runs)} seeds (solid: train, dashed: val)"
            save_figure(seeds_figure(group_runs, title), figures_dir / f"{model}-{data}-seeds.png")


def build_report(runs_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Reads every run under ``runs_dir``, writes report.md, CSVs and figures; returns report.md's path."""
    runs_dir = Path(runs_dir).resolve()
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir} is not a folder")
    out_dir = Path(out_dir).resolve() if out_dir else runs_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(runs_dir)
    tables = {table.name: aggregate(runs, table) for table in TABLES}
    write_figures(runs, out_dir / "figures")
    write_csv(out_dir / "runs.csv", [run_row(r) for r in runs])
    for table in TABLES:
        write_csv(out_dir / f"table_{table.name}.csv", table_rows(table, tables[table.name], runs))
    report = out_dir / "report.md"
    report.write_text(report_md(runs, tables, out_dir, runs_dir))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="handgestures-report", description="The study's tables, figures and CSVs from a folder of runs."
    )
    parser.add_argument("dir", metavar="DIR", help="a folder of runs, e.g. outputs/sweeps/<time> or outputs")
    parser.add_argument("--out", help="where to write report.md, CSVs and figures/ (default: DIR)")
    args = parser.parse_args(argv)
    if not Path(args.dir).is_dir():
        parser.error(f"{args.dir} is not a folder")
    report = build_report(args.dir, args.out)
    print(report)
    return 0
