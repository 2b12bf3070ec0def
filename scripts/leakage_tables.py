"""docs/leakage.md's two tables, from the real-data study's CSVs: ``python scripts/leakage_tables.py [--write]``.

Prints both tables (``--write``: replaces each in docs/leakage.md, between its marker comments).

* **protocols**: test and test_aug accuracy of every network and reference row under the random
  and the grouped split (mean ± std over seeds, 95% t interval of the mean), from
  ``results/study/table_{base,augmented,generalisation}.csv``;
* **paired**: every paired-by-seed difference of ``results/study/table_differences.csv`` on test
  and test_aug (augmented − base, grouped − random split, IvanNet − CarlosNet).

Why generated: these figures change whenever a seed is added to results/study, and a hand-copied
table went stale once already; a test compares the document with what this script writes.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import doc_table  # noqa: E402

DOC = ROOT / "docs" / "leakage.md"
RESULTS_DIR = ROOT / "results" / "study"
TABLE_FILES = [RESULTS_DIR / f"table_{name}.csv" for name in ("base", "augmented", "generalisation")]
DIFFERENCES = RESULTS_DIR / "table_differences.csv"
MARKERS = {
    "protocols": ("<!-- protocols table:", "<!-- end of protocols table -->"),
    "paired": ("<!-- paired table:", "<!-- end of paired table -->"),
}
ROWS = [  # (row label, model, data variant)
    ("CarlosNet, base", "carlosnet", "base"),
    ("CarlosNet, augmented", "carlosnet", "augmented"),
    ("IvanNet, base", "ivannet", "base"),
    ("IvanNet, augmented", "ivannet", "augmented"),
    ("1-NN on 16x16 thumbnails (reference)", "nn_thumb16", "base"),
    ("brightness and area (reference)", "brightness_area", "base"),
]
METRICS = ("test/acc", "test_aug/acc")


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def summaries() -> dict[tuple[str, str, str], dict[str, str]]:
    """(model, data, metric) -> its row in the study's tables; {} when a table is missing.

    The same figure can appear in two tables (train_aug of an augmented network); it must agree.
    """
    if not all(p.is_file() for p in TABLE_FILES):
        return {}
    found: dict[tuple[str, str, str], dict[str, str]] = {}
    for path in TABLE_FILES:
        for row in read(path):
            key = (row["model"], row["data"], row["metric"])
            if key in found and found[key]["mean"] != row["mean"]:
                raise ValueError(f"{path.name}: {key} has mean {row['mean']}, another table {found[key]['mean']}")
            found[key] = row
    return found


def value(row: dict[str, str] | None) -> str:
    """'0.9750 ± 0.0128 [0.943, 1.000]'; the plain mean with one run; '—' without a row."""
    if row is None or not int(row.get("n") or 0):
        return "—"
    mean, std = float(row["mean"]), row.get("std") or ""
    if std in ("", "None", "nan"):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {float(std):.4f} [{float(row['ci95_low']):.3f}, {float(row['ci95_high']):.3f}]"


def protocols() -> str:
    table = summaries()
    lines = [
        "| | random split: test | test_aug | grouped split: test | test_aug | seeds (random / grouped) | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, model, data in ROWS:
        cells = [table.get((model, data + suffix, metric)) for suffix in ("", "_grouped") for metric in METRICS]
        if all(c is None for c in cells):
            continue
        tests = [c for c in cells[::2] if c is not None]
        seeds = " / ".join(c["n"] if c is not None else "0" for c in cells[::2])
        reference = not any(c.get("precision") for c in tests)
        precisions = sorted({c["precision"] for c in tests if c.get("precision")})
        lines.append(f"| {label} | {' | '.join(map(value, cells))} | {'no seed' if reference else seeds} | "
                     f"{'—' if reference else ', '.join(precisions)} |")  # fmt: skip
    return "\n".join(lines)


def signed(x: float) -> str:
    return f"{x:+.4f}".replace("-", "−")


def paired() -> str:
    lines = ["| paired by seed | test | test_aug | seeds |", "|---|---|---|---|"]
    by_comparison: dict[str, dict[str, dict[str, str]]] = {}
    for row in read(DIFFERENCES) if DIFFERENCES.is_file() else []:
        if row["metric"] in METRICS:
            by_comparison.setdefault(row["comparison"], {})[row["metric"]] = row
    for comparison, rows in by_comparison.items():
        cells = []
        for metric in METRICS:
            row = rows.get(metric)
            cells.append("—" if row is None else
                         f"{signed(float(row['mean']))} [{signed(float(row['low']))}, {signed(float(row['high']))}]")  # fmt: skip
        seeds = next(iter(rows.values()))["seeds"].strip("[]")
        lines.append(f"| {comparison.replace(' - ', ' − ')} | {' | '.join(cells)} | {seeds} |")
    return "\n".join(lines)


GENERATED = {"protocols": protocols, "paired": paired}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"replace the tables in {DOC.name}")
    args = parser.parse_args(argv)
    if not summaries() or not DIFFERENCES.is_file():
        sys.exit(
            f"no study tables: expected {', '.join(str(p.relative_to(ROOT)) for p in [*TABLE_FILES, DIFFERENCES])}"
        )
    text = DOC.read_text()
    for name, make in GENERATED.items():
        table = make()
        text = doc_table.with_table(text, table, *MARKERS[name])
        print(table, end="\n\n")
    if args.write:
        DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
