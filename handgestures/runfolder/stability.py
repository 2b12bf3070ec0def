"""How a run's training went, read from its epochs.csv: the largest validation dip, the loss jumps, recovery.

Two different things look alike on a validation curve. A *spike* is an epoch whose validation
accuracy dips while the weights are fine (IvanNet trained on augmented images and validated on
plain ones dips for an epoch and comes back); the training loss goes on falling. A *runaway* is
a few SGD steps whose gradient norm climbs far above the usual, kills ReLU units and pushes the
epoch's mean training loss back up (docs/study.md, "What a jump is, step by step"). The model
card names both for the run it describes, and ``scripts/ivannet_table.py`` counts the jumps per run.
"""

from __future__ import annotations

import csv
from pathlib import Path

JUMP = 1.5  # a training-loss rise to 1.5x the epoch before: a runaway's mark, never a spike's


def read_columns(epochs_csv: Path, *columns: str) -> list[tuple[int, ...]]:
    """(epoch, value, ...) per row of ``epochs_csv`` that has every column; [] without the file."""
    if not epochs_csv.is_file():
        return []
    with epochs_csv.open(newline="") as fh:
        return [(int(r["epoch"]), *(float(r[c]) for c in columns))
                for r in csv.DictReader(fh) if all(r.get(c) for c in columns)]  # fmt: skip


def largest_dip(values: list[tuple[int, float]]) -> tuple[int, float, float] | None:
    """The largest fall of validation accuracy from one epoch to the next: (epoch, before, after)."""
    falls = [(e, before, after) for (_, before), (e, after) in zip(values, values[1:]) if after < before]
    return max(falls, key=lambda f: f[1] - f[2], default=None)


def loss_jumps(values: list[tuple[int, float]], factor: float = JUMP) -> list[tuple[int, float, float]]:
    """The epochs whose mean training loss rose to ``factor`` times the epoch before: (epoch, before, after).

    The plateau at ln 6 of IvanNet's first epochs wobbles by a few percent, never by half; a
    runaway raised it 1.5 to 5.3 times in the IvanNet runs of docs/study.md.
    """
    return [(e, before, after) for (_, before), (e, after) in zip(values, values[1:]) if after >= factor * before]


def jumps_text(jumps: list[tuple[int, float, float]]) -> str:
    """'20: 0.164 → 0.381; 25: 0.104 → 0.245', or 'none'."""
    return "; ".join(f"{e}: {before:.3f} → {after:.3f}" for e, before, after in jumps) or "none"


def recovery(values: list[tuple[int, float]], last_fall: int, min_best: float = 0.5) -> tuple[int, float] | None:
    """After a run's last epoch at chance, the first (epoch, validation accuracy) back at ``min_best`` or more.

    None when it never climbed back, or when ``values`` (epoch, val/acc) do not reach ``last_fall``
    (no curve to tell). ``min_best`` is the collapse guard's own mark of a trained network: a fall
    counts once the run has reached it, and a recovery when it reaches it again. A recovered run can
    still end below its best (a late validation dip); that is ``last_checkpoint_usable``, not this.
    """
    return next(((e, v) for e, v in values if e > last_fall and v >= min_best), None)


def last_fall(collapse: dict) -> int:
    """The last epoch a collapse record (metrics.json's ``collapse``) has at chance: its ``all`` list, or the one event."""
    return max(int(event["epoch"]) for event in collapse.get("all") or [collapse])


def climbed_back(values: list[tuple[int, float]], collapse: dict, guard: dict) -> tuple[int, float] | None:
    """:func:`recovery` after the record's last fall, at the collapse guard's own ``min_best`` (``guard``: its config)."""
    return recovery(values, last_fall(collapse), float(guard.get("min_best", 0.5)))
