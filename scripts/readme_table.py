"""The README's results table, from the real-data study's CSVs in results/: ``python scripts/readme_table.py [--write]``.

Prints the table (``--write``: replaces it in README.md, between its two marker comments).
One row per network and data variant found in ``results/study/table_base.csv`` and
``table_augmented.csv``: test accuracy on the study's random split and on the grouped split
(mean ± std over seeds and the 95% interval of the mean, as the report writes them), how many
runs fell to chance (the collapse guard's record), the precision they trained in, and the
slides' test accuracy.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import doc_table  # noqa: E402

README = ROOT / "README.md"
RESULTS_DIR = ROOT / "results" / "study"  # where the report of the real-data study lives
TABLE_FILES = {"base": RESULTS_DIR / "table_base.csv", "augmented": RESULTS_DIR / "table_augmented.csv"}
START = "<!-- results table:"
END = "<!-- end of results table -->"
HEADER = (
    "| network, data | acc test, random split | acc test, grouped split | fell to chance | precision | acc test, slides |\n"
    "|---|---|---|---|---|---|"
)
NETWORKS = {"carlosnet": "CarlosNet", "ivannet": "IvanNet"}
SPLITS = {"random split": ("", ""), "grouped split": (", grouped split", "_grouped")}  # row label and data suffixes


def cell(row: dict[str, str]) -> str:
    """'0.9750 ± 0.0128 [0.9432, 1.0000], n=3' (a plain value and no interval with one seed)."""
    mean, std, n = float(row["mean"]), row.get("std") or "", int(row["n"])
    if std in ("", "None", "nan"):
        return f"{mean:.4f}, n={n}"
    return f"{mean:.4f} ± {float(std):.4f} [{float(row['ci95_low']):.4f}, {float(row['ci95_high']):.4f}], n={n}"


def rows_from_csv() -> list[str]:
    """Markdown rows of the table; [] when the CSVs are not there."""
    lines = []
    for data, path in TABLE_FILES.items():
        if not path.is_file():
            return []
        with path.open(newline="") as fh:
            table = [r for r in csv.DictReader(fh) if r["metric"] == "test/acc"]
        for model, label in NETWORKS.items():
            found = {split: next((r for r in table if r["row"] == label + row_suffix and r["model"] == model
                                  and r["data"] == data + data_suffix and int(r["n"] or 0)), None)
                     for split, (row_suffix, data_suffix) in SPLITS.items()}  # fmt: skip
            if found["random split"] is None:
                continue
            falls = "; ".join(f"{split.split()[0]} {r['fell_to_chance']}" for split, r in found.items()
                              if r is not None and r.get("fell_to_chance"))  # fmt: skip
            splits = " | ".join(cell(r) if r is not None else "—" for r in found.values())
            precision = found["random split"]["precision"]
            if found["grouped split"] is not None and found["grouped split"]["precision"] != precision:
                precision += f"; grouped: {found['grouped split']['precision']}"
            slides = float(found["random split"]["slides"])
            lines.append(f"| {label}, {data} | {splits} | {falls or 'not recorded'} | {precision} | {slides:g} |")
    return lines


def table_in(text: str) -> str:
    """The table between the README's markers (marker lines excluded)."""
    return doc_table.table_in(text, START, END)


def with_table(text: str, table: str) -> str:
    return doc_table.with_table(text, table, START, END)


def generated() -> str:
    return HEADER + "\n" + "\n".join(rows_from_csv())


def main(argv: list[str] | None = None) -> int:
    if not rows_from_csv():
        sys.exit(f"no study rows: expected {', '.join(str(p.relative_to(ROOT)) for p in TABLE_FILES.values())}")
    return doc_table.cli(__doc__.split("\n\n")[0], README, START, END, generated, argv)


if __name__ == "__main__":
    sys.exit(main())
