"""The README's results table, from the real-data study's CSVs in results/: ``python scripts/readme_table.py [--write]``.

Prints the table (``--write``: replaces it in README.md, between its two marker comments).
One row per network and data variant found in ``results/study/table_base.csv`` and
``table_augmented.csv`` (the report's study rows only): runs, validation and test accuracy
(mean ± std over seeds, as the report writes them), and the slides' test accuracy.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS_DIR = ROOT / "results" / "study"  # where the report of the real-data study lives
TABLE_FILES = {"base": RESULTS_DIR / "table_base.csv", "augmented": RESULTS_DIR / "table_augmented.csv"}
START = "<!-- results table:"
END = "<!-- end of results table -->"
HEADER = "| network, data | runs | acc val | acc test | acc test, slides |\n|---|---|---|---|---|"
NETWORKS = {"carlosnet": "CarlosNet", "ivannet": "IvanNet"}


def cell(row: dict[str, str]) -> str:
    mean, std = float(row["mean"]), row.get("std") or ""
    return f"{mean:.4f}" if std in ("", "None", "nan") else f"{mean:.4f} ± {float(std):.4f}"


def rows_from_csv() -> list[str]:
    """Markdown rows of the table; [] when the CSVs are not there."""
    lines = []
    for data, path in TABLE_FILES.items():
        if not path.is_file():
            return []
        with path.open(newline="") as fh:
            table = list(csv.DictReader(fh))
        for model, label in NETWORKS.items():
            found = {r["metric"]: r for r in table if r["row"] == label and r["model"] == model and r["data"] == data}
            if "test/acc" not in found or int(found["test/acc"]["n"] or 0) == 0:
                continue
            slides = float(found["test/acc"]["slides"])
            lines.append(f"| {label}, {data} | {found['test/acc']['runs']} | {cell(found['val/acc'])} | "
                         f"{cell(found['test/acc'])} | {slides:g} |")  # fmt: skip
    return lines


def table_in(text: str) -> str:
    """The table between the README's markers (marker lines excluded)."""
    start = text.index(START)
    body_start = text.index("\n", start) + 1
    return text[body_start : text.index(END)].strip()


def generated() -> str:
    return HEADER + "\n" + "\n".join(rows_from_csv())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args(argv)
    if not rows_from_csv():
        sys.exit(f"no study rows: expected {', '.join(str(p.relative_to(ROOT)) for p in TABLE_FILES.values())}")
    table = generated()
    if args.write:
        text = README.read_text()
        README.write_text(text.replace(table_in(text), table))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
