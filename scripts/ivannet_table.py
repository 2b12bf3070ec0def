"""The IvanNet augmented seed x precision table, from the run records in results/ivannet/.

    python scripts/ivannet_table.py [--write]

Prints one markdown row per run under ``results/ivannet/runs/`` (the experiment) and
``results/ivannet/earlier/`` (the runs made before it); ``--write`` replaces the table in
docs/study.md between its two marker comments, and ``tests/test_ivannet_table.py`` checks that the two
agree. A row gives what the collapse guard recorded, the deepest fall of validation accuracy
below the best before it, the epochs whose training loss jumped, the most dead units of any
convolution after epoch 1 (the fixed probe batch: the run's epochs.csv, or ``health_epochs.csv`` recomputed from the per-epoch
checkpoints of runs made before the diagnostics), the best epoch and the test accuracies.
A run with no metrics.json yet is listed with the epochs it has done.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import doc_table  # noqa: E402

from handgestures.analysis.falls import fall_text  # noqa: E402
from handgestures.analysis.runs import load_run, read_epochs  # noqa: E402
from handgestures.runfolder import stability  # noqa: E402

RESULTS = ROOT / "results" / "ivannet"
SOURCES = {"runs": "", "earlier": "earlier run"}  # folder under results/ivannet -> note in the table
HEALTH = RESULTS / "health_epochs.csv"
DOC = ROOT / "docs" / "study.md"
START = "<!-- ivannet table:"
END = "<!-- end of ivannet table -->"
CONVS = [f"conv{i}" for i in range(1, 8)]
HEADER = ("| seed | split | precision | epochs | fell to chance (guard) | deepest fall: val acc, epoch (best before) "
          "| training loss jumped (epoch: before → after) | most dead units of a convolution after epoch 1 | best epoch, val acc | test acc | test_aug acc |")  # fmt: skip


def health_rows() -> dict[str, dict[int, dict[str, float]]]:
    """health_epochs.csv: run folder name -> epoch -> its dead fractions."""
    found: dict[str, dict[int, dict[str, float]]] = {}
    if HEALTH.is_file():
        with HEALTH.open(newline="") as fh:
            for row in csv.DictReader(fh):
                found.setdefault(row["run"], {})[int(row["epoch"])] = {
                    k: float(v) for k, v in row.items() if k != "run"
                }
    return found


def deepest_fall(epochs: list[dict[str, float]]) -> str:
    """The epoch furthest below the best validation accuracy before it: its accuracy, its epoch, that best."""
    best, found = -1.0, None
    for epoch in epochs:
        if found is None or best - epoch["val/acc"] > found[0]:
            found = (best - epoch["val/acc"], epoch) if best >= 0 else found
        best = max(best, epoch["val/acc"])
    if found is None or found[0] <= 0:
        return "none"
    return f"{found[1]['val/acc']:.3f}, {int(found[1]['epoch'])} (from {found[0] + found[1]['val/acc']:.3f})"


def loss_jumps(epochs: list[dict[str, float]]) -> str:
    """The epochs whose mean training loss rose to 1.5 times the epoch before (a runaway's mark), with both losses."""
    return stability.jumps_text(stability.loss_jumps([(int(e["epoch"]), e["train/loss"]) for e in epochs]))


def most_dead(epochs: list[dict[str, float]], health: dict[int, dict[str, float]]) -> str:
    """The largest fraction of dead units of any convolution after epoch 1, its layer and epoch."""
    rows = [{**e, **health.get(int(e["epoch"]), {})} for e in epochs if e["epoch"] > 1]
    cells = [(row[f"dead/{c}"], c, int(row["epoch"])) for row in rows for c in CONVS if f"dead/{c}" in row]
    if not cells:
        return "not measured"
    fraction, layer, epoch = max(cells, key=lambda c: (c[0], -c[2]))
    return f"{layer} {fraction:.0%}, epoch {epoch}" if fraction > 0 else "none dead"


def best_epoch(epochs: list[dict[str, float]]) -> str:
    """The epoch the best checkpoint comes from: the first to reach the highest validation accuracy."""
    best = max(epochs, key=lambda e: (e["val/acc"], -e["epoch"]))
    return f"{int(best['epoch'])}, {best['val/acc']:.4f}"


def row_of(folder: Path, note: str, health: dict[str, dict[int, dict[str, float]]]) -> tuple[tuple, str]:
    run = load_run(folder)
    epochs = read_epochs(folder / "epochs.csv")
    split = (run.config.get("data") or {}).get("split", "?")
    precision = run.precision or "?"
    done = run.status == "done"
    configured = run.configured_epochs
    epochs_cell = f"{len(epochs)}" if done else f"{len(epochs)} of {configured} (unfinished)"
    metrics = run.metrics
    dead = most_dead(epochs, health.get(folder.name, {}) if not note else {})  # health_epochs.csv: runs/ only
    clip = (run.config.get("trainer") or {}).get("gradient_clip_val")  # optimizer=sgd_clipped: not the slides' SGD
    setting = precision + (f", gradients clipped at {clip:g}" if clip else "") + (f" ({note})" if note else "")
    cells = [str(run.seed), split, setting, epochs_cell,
             fall_text(run, markdown=False) if done else "—", deepest_fall(epochs), loss_jumps(epochs), dead,
             best_epoch(epochs) if epochs else "—",
             f"{metrics['test/acc']:.4f}" if done else "—", f"{metrics['test_aug/acc']:.4f}" if done else "—"]  # fmt: skip
    order = (split != "random", bool(note), bool(clip), precision != "32-true", run.seed)
    return order, "| " + " | ".join(cells) + " |"


def rows() -> list[str]:
    health = health_rows()
    found = [row_of(folder, note, health) for source, note in SOURCES.items() if (RESULTS / source).is_dir()
             for folder in sorted((RESULTS / source).iterdir()) if (folder / "epochs.csv").is_file()]  # fmt: skip
    return [line for _, line in sorted(found)]


def generated() -> str:
    return HEADER + "\n|" + "---|" * HEADER.count(" | ") + "---|\n" + "\n".join(rows())


def table_in(text: str) -> str:
    """The table between the document's markers (marker lines excluded)."""
    return doc_table.table_in(text, START, END)


def with_table(text: str, table: str) -> str:
    return doc_table.with_table(text, table, START, END)


def main(argv: list[str] | None = None) -> int:
    return doc_table.cli(__doc__.split("\n\n")[0], DOC, START, END, generated, argv)


if __name__ == "__main__":
    sys.exit(main())
