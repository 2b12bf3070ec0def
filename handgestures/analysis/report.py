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
import math
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handgestures.analysis.falls import fall_counts, fall_rate, fall_text
from handgestures.analysis.runs import (  # noqa: F401  (re-exported: they lived here)
    RUN_NAME,
    Run,
    find_run_folders,
    load_run,
    load_runs,
    read_epochs,
    read_identity,
    sort_key,
)
from handgestures.analysis.stats import (
    cv_ratio,
    differences_md,
    extra_rows,
    mean_ci,
    paired_differences,
    tag_protocols,
)
from handgestures.analysis.study import DATASETS, MODELS, SLIDES, TABLES, Table  # noqa: F401
from handgestures.plots import confusion_figure, curves_figure, save_figure, seeds_figure

RUN_FIELDS = ("epochs_run", "best_val_acc", "fit_seconds", "startup_seconds", "train_images_per_second",
              "eval_seconds", "wall_seconds")  # fmt: skip


# ---------------------------------------------------------------------------- aggregating


@dataclass
class Cell:
    mean: float | None
    std: float | None  # sample standard deviation over seeds; None with fewer than 2
    n: int
    slides: float | None  # None for rows the slides do not have (grouped split, baselines)
    ci_low: float | None = None  # 95% t interval of the mean over seeds (handgestures.analysis.stats); None with n < 2
    ci_high: float | None = None


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


def table_row_keys(table: Table, runs: list[Run]) -> list[tuple[str, str, str]]:
    """The study's rows of ``table``, then its grouped-split and reference-baseline rows found in ``runs``."""
    return list(table.rows) + extra_rows(table.rows, runs)


def cell_of(values: list[float | None], key: str, slides: float | None, test_train_ratio: float = 0.0) -> Cell:
    """Mean, std and the 95% t interval of ``values`` (clipped to 0..1 for accuracies, >= 0 for losses)."""
    ci = mean_ci(values, bounds=(0, 1) if key.endswith("acc") else (0, None), test_train_ratio=test_train_ratio)
    return Cell(*stats(values), slides=slides, ci_low=ci["low"], ci_high=ci["high"])


def aggregate(runs: list[Run], table: Table) -> dict[str, list[Cell]]:
    """label -> one Cell per column, over the evaluated runs of the row's model and data."""
    groups = group(runs)
    cells = {}
    for label, model, data in table_row_keys(table, runs):
        done = [r for r in groups.get((model, data), []) if r.status == "done"]
        slides = SLIDES[table.name].get(label)
        cells[label] = [cell_of([r.metrics.get(key) for r in done], key, slides[i] if slides else None, cv_ratio(data))
                        for i, (_, key) in enumerate(table.columns)]  # fmt: skip
    return cells


def grid(runs: list[Run]) -> list[tuple[str, str]]:
    """Every model x data combination expected (the study's) or found."""
    datasets = list(DATASETS) + sorted({r.data for r in runs if r.model in MODELS} - set(DATASETS))
    others = sorted({(r.model, r.data) for r in runs if r.model not in MODELS})  # baselines: what was run
    return [(m, d) for m in MODELS for d in datasets] + others


def row_status(runs: list[Run]) -> str:
    """What a table row stands on: 'n=3', 'n=2; 1 failed', 'MISSING (no run)', ..."""
    if not runs:
        return "**MISSING** (no run)"
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "trained", "failed", "incomplete", "unreadable")}
    notes = [f"n={counts['done']}"]
    notes += [f"**{counts[s]} {label}**" for s, label in (("failed", "failed"), ("trained", "not evaluated"),
              ("incomplete", "incomplete"), ("unreadable", "unreadable")) if counts[s]]  # fmt: skip
    count, more = fall_counts(runs)  # the collapse guard's record: the values stay the best checkpoint's
    if count:
        said = f"{count} fell to chance" if count.startswith("0 of") else f"**{count} fell to chance**"
        notes.append(said + (f" ({', '.join(more)})" if more else ""))
    return "; ".join(notes)


def problems(runs: list[Run]) -> list[str]:
    found = group(runs)
    lines = [f"missing: no run of {MODELS.get(m, m)} on {d}" for m, d in grid(runs) if (m, d) not in found]
    for run in runs:
        if run.status == "failed":
            lines.append(f"failed: {run.name} ({run.folder.name}): {run.error}")
        elif run.status == "trained":
            lines.append(f"not evaluated: {run.name} ({run.folder.name}) has status 'trained', no test metrics")
        elif run.status == "unreadable":
            lines.append(f"unreadable: {run.name} ({run.folder.name}): {run.error}; left out of the tables")
        elif run.status == "incomplete":
            lines.append(f"incomplete: {run.name} ({run.folder.name}) has no metrics.json (still running or killed)")
    for (model, data), group_runs in group(runs).items():  # one mean should not mix numerics (docs/bf16.md)
        by_precision: dict[str, list[str]] = {}
        for run in (r for r in group_runs if r.status == "done" and r.precision):
            by_precision.setdefault(run.precision, []).append(str(run.replicate))
        if len(by_precision) > 1:
            mixed = "; ".join(f"{p}: seed {', '.join(seeds)}" for p, seeds in sorted(by_precision.items()))
            lines.append(f"mixed precision: the {model}-{data} row averages runs of different precisions ({mixed})")
    seen: dict[tuple, int] = {}
    for run in (r for r in runs if r.status == "done"):
        seen[(run.model, run.data, run.replicate)] = seen.get((run.model, run.data, run.replicate), 0) + 1
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


def ci_table_md(table: Table, cells: dict[str, list[Cell]], runs: list[Run]) -> str:
    """The 95% t intervals of the means of ``table``'s rows with at least two seeds."""
    rows = [[f"**{label}**", f"n={cells[label][0].n}"]
            + [f"[{fmt(c.ci_low, key)}, {fmt(c.ci_high, key)}]" if c.ci_low is not None else "—"
               for c, (_, key) in zip(cells[label], table.columns, strict=True)]
            for label, _, _ in table_row_keys(table, runs) if any(c.ci_low is not None for c in cells[label])]  # fmt: skip
    if not rows:
        return "No row has two evaluated seeds: no interval."
    return markdown_table(["95% CI of the mean", "runs"] + [h for h, _ in table.columns], rows)


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
    for label, model, data in table_row_keys(table, runs):
        apart = any(r.not_comparable for r in groups.get((model, data), []))
        rows.append([f"**{label}**" + (" (*not comparable*)" if apart else ""), row_status(groups.get((model, data), []))]
                    + [fmt_cell(c, key) for c, (_, key) in zip(cells[label], table.columns, strict=True)])  # fmt: skip
        if label in SLIDES[table.name]:
            rows.append([f"*{label}, slides*", ""] + [f"*{c.slides}*" for c in cells[label]])
    rows += extra_rows_md(table, runs)
    return markdown_table(["", "runs"] + [h for h, _ in table.columns], rows)


def extra_rows_md(table: Table, runs: list[Run]) -> list[list[str]]:
    """Rows a table shows below the study's own (none yet: the place for baselines and the like)."""
    return []


def runs_table_md(runs: list[Run], out_dir: Path) -> str:
    rows = []
    for run in runs:
        labels = {"done": "done", "failed": f"**failed**: {run.error}", "trained": "**trained** (not evaluated)",
                  "unreadable": f"**unreadable**: {run.error}"}  # fmt: skip
        status = labels.get(run.status, f"**{run.status}**")
        link = os.path.relpath(run.folder, out_dir)
        comparable = "yes" if not run.not_comparable else "**no**: " + "; ".join(run.not_comparable)
        seed = str(run.seed) if run.fold is None else f"{run.seed}, fold {run.fold}"
        rows.append([run.model, run.data, seed, status, run.data_source, run.precision or "—",
                     f"{run.info.get('epochs_run', '—')} / {run.configured_epochs}", run.batch_limits,
                     fmt(run.info.get("best_val_acc")), fmt(run.metrics.get("test/acc")), fall_text(run),
                     fmt_seconds(run.info.get("fit_seconds")), fmt(run.info.get("train_images_per_second"), "n"),
                     comparable, f"[{run.folder.name}]({link})"])  # fmt: skip
    headers = ["model", "data", "seed" + (", fold" if any(r.fold is not None for r in runs) else ""), "status", "data source", "precision", "epochs (run / set)", "batch limits",
               "best val acc", "test acc", "fell to chance", "fit time", "images/s", "comparable with the slides", "folder"]  # fmt: skip
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


CV_NOTE = (
    " Cross-validated rows (*grouped K-fold cross-validation*) count each fold (and seed) as one replicate;"
    " the folds' training sets overlap, so their interval uses Nadeau and Bengio's corrected variance"
    " s²(1/n + n_test/n_train) instead of s²/n (handgestures.analysis.stats)."
)


def report_md(runs: list[Run], tables: dict[str, dict[str, list[Cell]]], out_dir: Path, runs_dir: Path) -> str:
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    parts = [
        "# Hand-gesture study: results",
        f"{len(runs)} runs found under `{runs_dir}` (seeds {', '.join(map(str, seeds)) or 'none'}). "
        "Values are the best checkpoint's, mean ± sample standard deviation over the evaluated seeds "
        "(a plain value when n=1); the 95% confidence interval of each mean follows the tables "
        "(Student's t; handgestures.analysis.stats); *slides* rows are the published single runs (docs/study.md). "
        "Rows marked *grouped split* use data.split=grouped (docs/leakage.md); *(reference)* rows are the "
        "untrained baselines of handgestures.analysis.baselines, on the same splits and views. "
        "*train_aug* / *val_aug* / *test_aug* are the fixed augmented views of each split.",
    ]
    apart = [r for r in runs if r.not_comparable]
    if apart:
        parts.append(f"**Not comparable with the slides: {len(apart)} of {len(runs)} runs** do not follow the study's "
                     "recipe on the real Fingers images (docs/study.md); the Runs table says why for each. "
                     "Table rows built on such runs are marked *not comparable*.")  # fmt: skip
    issues = problems(runs)
    parts += ["## Problems", "\n".join(f"- {line}" for line in issues) if issues else "None: every run evaluated."]
    for table in TABLES:
        parts += [f"## {table.title}", study_table_md(table, tables[table.name], runs)]
    folds = CV_NOTE if any("_cv" in r.data for r in runs) else ""
    parts += [
        "## 95% confidence intervals of the means",
        "Student's t with n-1 degrees of freedom over the seeds, clipped to the metric's range." + folds,
    ]
    for table in TABLES:
        parts += [f"### {table.title}", ci_table_md(table, tables[table.name], runs)]
    parts += [
        "## Paired differences",
        "Paired by seed (under cross-validation by fold and seed, with the same correction); "
        "mean difference and its 95% t interval.",
        differences_md(paired_differences(runs)),
    ]
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
    row = {"folder": str(run.folder), "model": run.model, "data": run.data, "seed": run.seed, "fold": run.fold,
           "status": run.status,
           "data_source": run.data_source, "precision": run.precision, "epochs_configured": run.configured_epochs,
           "batch_limits": run.batch_limits, "comparable_with_slides": not run.not_comparable,
           "not_comparable_because": "; ".join(run.not_comparable)}  # fmt: skip
    row.update({k: run.info.get(k) for k in RUN_FIELDS})
    row["fell_to_chance"] = fall_text(run, markdown=False)
    machine = run.info.get("hardware") or {}  # absent in runs made before it was recorded
    row.update(cpu=machine.get("cpu"), gpu=machine.get("gpu"), threads=machine.get("threads"))
    return {**row, **run.info.get("metrics", {}), "error": run.error}


def table_rows(table: Table, cells: dict[str, list[Cell]], runs: list[Run]) -> list[dict[str, Any]]:
    groups = group(runs)
    return [{"row": label, "model": model, "data": data, "metric": key, "mean": cell.mean, "std": cell.std,
             "n": cell.n, "slides": cell.slides, "runs": row_status(groups.get((model, data), [])).replace("*", ""),
             "fell_to_chance": fall_rate(groups.get((model, data), [])),
             "precision": "; ".join(sorted({r.precision for r in groups.get((model, data), [])
                                            if r.status == "done" and r.precision})),
             "ci95_low": cell.ci_low, "ci95_high": cell.ci_high,
             "comparable_with_slides": not any(r.not_comparable for r in groups.get((model, data), []))}
            for label, model, data in table_row_keys(table, runs)
            for cell, (_, key) in zip(cells[label], table.columns, strict=True)]  # fmt: skip


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
    runs = tag_protocols(load_runs(runs_dir))  # grouped-split runs get data labels of their own
    tables = {table.name: aggregate(runs, table) for table in TABLES}
    write_figures(runs, out_dir / "figures")
    write_csv(out_dir / "runs.csv", [run_row(r) for r in runs])
    for table in TABLES:
        write_csv(out_dir / f"table_{table.name}.csv", table_rows(table, tables[table.name], runs))
    write_csv(out_dir / "table_differences.csv", paired_differences(runs))
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
