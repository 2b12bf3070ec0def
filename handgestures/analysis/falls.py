"""Falls to chance in finished runs: what the collapse guard recorded, per run and per table row.

A run's metrics.json holds ``collapse`` (``None`` when validation accuracy never fell from its
best to near chance, else the first fall with every fall under ``all``) and
``last_checkpoint_usable``; :class:`handgestures.training.guards.CollapseWatch` writes both. A
run made before the guard existed has no ``collapse`` key: it is *unrecorded*, not counted as
a run that stayed up. The report states the rate next to the rows (IvanNet augmented has fallen
in both precisions; docs/study.md) so that a mean is never read without it.
"""

from __future__ import annotations

import math
from typing import Any

from handgestures.runfolder.record import STATUS_DONE
from handgestures.runfolder.stability import climbed_back, last_fall


def recorded(run: Any) -> bool:
    """Whether the run's metrics.json says whether it fell (runs from before the guard do not)."""
    return run.status == STATUS_DONE and "collapse" in run.info


def fell(run: Any) -> bool:
    return recorded(run) and bool(run.info["collapse"])


def fall_epochs(run: Any) -> list[int]:
    """The epochs at which validation accuracy was at chance, first to last; [] if none or unrecorded."""
    collapse = run.info.get("collapse") if recorded(run) else None
    return [int(e["epoch"]) for e in (collapse.get("all") or [collapse])] if collapse else []


def spans(epochs: list[int]) -> str:
    """Consecutive epochs as one fall: [3, 12, 13, 14] -> '3, 12-14'."""
    parts: list[list[int]] = []
    for epoch in epochs:
        if parts and epoch == parts[-1][-1] + 1:
            parts[-1].append(epoch)
        else:
            parts.append([epoch])
    return ", ".join(str(p[0]) if len(p) == 1 else f"{p[0]}-{p[-1]}" for p in parts)


def never_recovered(run: Any) -> bool:
    """A fall the run ended in: validation accuracy never got back to the guard's ``min_best`` after it.

    Read from the run's curve (epochs.csv); a run whose curve does not reach its last fall falls
    back on ``last_checkpoint_usable`` (false when the last epoch ended well below the best, which a
    run that recovered and then dipped at its last epoch also is).
    """
    if not fell(run):
        return False
    collapse = run.info["collapse"]
    values = [(int(r["epoch"]), r["val/acc"]) for r in run.epochs
              if "epoch" in r and isinstance(r.get("val/acc"), float) and not math.isnan(r["val/acc"])]  # fmt: skip
    if any(e >= last_fall(collapse) for e, _ in values):
        guard = ((run.config.get("guards") or {}).get("collapse") or {}) if run.config else {}
        return climbed_back(values, collapse, guard) is None
    return run.info.get("last_checkpoint_usable") is False


def fall_text(run: Any, markdown: bool = True) -> str:
    """A run's falls: 'no', 'epoch 3, 12-29, never recovered' (each span of epochs at chance), '—' when unrecorded."""
    if not recorded(run):
        return "—"
    epochs = fall_epochs(run)
    if not epochs:
        return "no"
    text = f"epoch {spans(epochs)}"
    return (f"**{text}**" if markdown else text) + (", never recovered" if never_recovered(run) else ", recovered")


def fall_counts(runs: list[Any]) -> tuple[str, list[str]]:
    """A row's falls as ('1 of 3', ['1 never recovered', ...]); ('', []) with no record at all."""
    done = [r for r in runs if r.status == STATUS_DONE]
    known = [r for r in done if recorded(r)]
    if not known:
        return "", []
    notes = []
    if stayed := sum(map(never_recovered, known)):
        notes.append(f"{stayed} never recovered")
    if len(done) > len(known):
        notes.append(f"{len(done) - len(known)} unrecorded")
    return f"{sum(map(fell, known))} of {len(known)}", notes


def fall_rate(runs: list[Any]) -> str:
    """A row's falls: '0 of 3', '1 of 3 (1 never recovered)', '1 of 2 (1 unrecorded)', '' with no record at all."""
    count, notes = fall_counts(runs)
    return count + (f" ({', '.join(notes)})" if notes else "")
