"""Bad data said once, all at once: bad files, duplicate images, splits that cannot work.

``data.on_error=raise`` (the default) stops before training with every bad file listed
(the first :data:`SHOWN` on screen, all of them in ``bad_files.csv``); ``skip`` trains on
the good files, says how many were left out and why, and writes ``skipped.csv``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from handgestures.data.cache import default_cache_dir
from handgestures.errors import BadDataError, NoImagesError, UserError  # noqa: F401  (importable from here)

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
SHOWN = 20  # bad files listed on screen; the CSV has them all
CLASS_LABELS = [f"{i} fingers" for i in range(6)]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path | None:
    """Write ``rows``; None (with a warning) when ``path`` cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as err:
        log.warning("cannot write %s (%s)", path, err)
        return None
    return path


KINDS = (  # (reason prefix, its name in the summary)
    ("badly named", "badly named"), ("cannot decode", "cannot decode"), ("is ", "wrong size"),
    ("empty file", "empty"), ("broken symbolic link", "broken link"), ("cannot be read", "unreadable"),
    ("folder cannot be read", "unreadable folder"), ("same pixels", "same pixels under another label"),
    ("not a regular file", "not a regular file"), ("too large", "too large"), ("too deep", "too deep"),
)  # fmt: skip


def reason_kind(reason: str) -> str:
    """The short kind of a bad file's reason, for the one-line summary."""
    return next((kind for prefix, kind in KINDS if reason.startswith(prefix)), " ".join(reason.split()[:3]))


def _listing(bad: Sequence[tuple[str, str]]) -> str:
    lines = [f"  {rel}: {reason}" for rel, reason in bad[:SHOWN]]
    if len(bad) > SHOWN:
        lines.append(f"  ... and {len(bad) - SHOWN} more")
    return "\n".join(lines)


def handle_bad_files(bad: Sequence[tuple[str, str]], on_error: str, root: Path, report_dir: Path) -> None:
    """Raise :class:`BadDataError` listing ``bad`` (``raise``), or report them (``skip``)."""
    if on_error not in ON_ERROR:
        raise BadDataError(f"data.on_error={on_error!r}: expected one of {', '.join(ON_ERROR)}")
    if not bad:
        return
    reasons = Counter(reason_kind(reason) for _, reason in bad)
    summary = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
    name = "bad_files.csv" if on_error == "raise" else "skipped.csv"
    written = write_csv(report_dir / name, ("path", "reason"), bad)
    where = f"all of them in {written}" if written else "the list could not be written"
    if on_error == "raise":
        raise BadDataError(
            f"{len(bad)} bad files under {root} ({summary}); {where}:\n{_listing(bad)}\n"
            "Fix or remove them, or pass data.on_error=skip to train on the good files only."
        )
    log.warning("skipped %d bad files under %s (%s); %s:\n%s", len(bad), root, summary, where, _listing(bad))


def twin_groups(keys: torch.Tensor) -> torch.Tensor:
    """For each image, the index of the first image with the same pixel key (itself if unique)."""
    if len(keys) == 0:
        return torch.zeros(0, dtype=torch.long)
    _, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(keys), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
    return first[inverse]


def report_twins(twins: torch.Tensor, names: Sequence[str], report_dir: Path) -> None:
    """Say how many files repeat another's pixels; list every pair in ``duplicates.csv``."""
    copies = torch.nonzero(twins != torch.arange(len(twins))).flatten().tolist()
    if not copies:
        return
    rows = [(names[i], names[int(twins[i])]) for i in copies]
    written = write_csv(report_dir / "duplicates.csv", ("path", "same_pixels_as"), rows)
    log.warning(
        "%d files have the same pixels as another file (e.g. %s = %s); each group of copies is kept in one split%s",
        len(rows), rows[0][0], rows[0][1], f"; all of them in {written}" if written else "",
    )  # fmt: skip


def check_splits(splits: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int = 6) -> None:
    """A :class:`BadDataError` when a split is empty or lacks a class, naming class and counts."""
    counts = {k: torch.bincount(labels[idx], minlength=num_classes).tolist() for k, idx in splits.items()}
    total = torch.bincount(labels, minlength=num_classes).tolist()
    missing = [(k, CLASS_LABELS[c]) for k, row in counts.items() for c in range(num_classes) if row[c] == 0]
    if not missing:
        return
    table = "\n".join(f"  {k:<6} {row}" for k, row in [("all", total), *counts.items()])
    empty = [k for k, idx in splits.items() if len(idx) == 0]
    first = (
        f"split {empty[0]!r} would be empty"
        if empty
        else f"split {missing[0][0]!r} would have no image of class {missing[0][1]!r}"
    )
    raise BadDataError(
        f"{first} ({len(missing)} (split, class) pairs without images: {missing[:6]}). "
        f"Images per class (0..5 fingers):\n{table}\n"
        "Every split needs every class: the split puts 1/6 of each (class, hand) in validation and 1/6 in test, "
        "so each needs at least 6 images."
    )


def default_report_dir(cache_dir: str | os.PathLike | None) -> Path:
    return (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "reports"
