"""A generated markdown table kept in a document between two marker comments.

    <!-- <name> table: how to regenerate it -->
    | ... the table ... |
    <!-- end of <name> table -->

Used by scripts/readme_table.py (README.md's results table), scripts/ivannet_table.py
(docs/study.md's IvanNet table) and scripts/leakage_tables.py (docs/leakage.md's two tables):
each prints its table and, with ``--write``, puts it between the markers; a test compares the
document with the generated table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def table_in(text: str, start: str, end: str) -> str:
    """The table between the markers (marker lines excluded)."""
    body = text.index("\n", text.index(start)) + 1
    return text[body : text.index(end)].strip()


def with_table(text: str, table: str, start: str, end: str) -> str:
    """``text`` with ``table`` between its markers, whatever was there (nothing, or an older table)."""
    body = text.index("\n", text.index(start)) + 1
    return text[:body] + table + "\n" + text[text.index(end) :]


def cli(description: str, document: Path, start: str, end: str, generated: Callable[[], str],
        argv: list[str] | None = None) -> int:  # fmt: skip
    """Prints the generated table; ``--write`` also puts it into ``document``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help=f"replace the table in {document.name}")
    args = parser.parse_args(argv)
    table = generated()
    if args.write:
        document.write_text(with_table(document.read_text(), table, start, end))
    print(table)
    return 0
