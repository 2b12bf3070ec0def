"""The study being reproduced: its grid of runs, its three tables, and the slides' values.

Data only, no rendering (``handgestures.report`` renders it): what the original study ran
(two networks x two data variants), which metrics each table of its slides shows, and the
values the slides published. ``docs/study.md`` describes the study in full.
"""

from __future__ import annotations

from dataclasses import dataclass

MODELS = {"carlosnet": "CarlosNet", "ivannet": "IvanNet"}
DATASETS = ("base", "augmented")


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

# The published reference: the slides' tables (docs/study.md), single runs, values in column order.
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
