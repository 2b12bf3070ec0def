"""The study being reproduced: its grid of runs, its three tables, and the slides' values.

Data only, no rendering (``handgestures.analysis.report`` renders it): what the original study ran
(two networks x two data variants), which metrics each table of its slides shows, and the
values the slides published. ``docs/study.md`` describes the study in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from handgestures import CONF_DIR

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


def _conf(name: str) -> dict:
    return yaml.safe_load((CONF_DIR / name).read_text()) or {}


# The study's recipe (docs/study.md): what a run must match to be compared with the slides,
# read from the configs that run it (conf/), so the numbers live in one place.
STUDY_EPOCHS = {variant: int(_conf(f"data/{variant}.yaml")["epochs"]) for variant in DATASETS}
STUDY_BATCH_SIZE = int(_conf("train.yaml")["batch_size"])
STUDY_LR = float(_conf("optimizer/sgd.yaml")["lr"])
STUDY_MOMENTUM = float(_conf("optimizer/sgd.yaml")["momentum"])
STUDY_OPTIMIZER = str(_conf("optimizer/sgd.yaml")["_target_"])  # plain SGD: no weight decay, no clipping
STUDY_SPLIT = str(_conf("data/augmented.yaml")["data"]["split"])  # the slides' stratified 4/6-1/6-1/6 split
BATCH_LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches")


def limited(limit) -> bool:
    """Whether a Trainer ``limit_*_batches`` value cuts an epoch short (an int counts batches, 1.0 is all)."""
    return limit is not None and not (isinstance(limit, float) and limit == 1.0)


def recipe_differences(model: str, data: str, config: dict) -> list[str]:
    """Why a run (its resolved config.yaml as a dict) is not the study's recipe on the real images; [] if it is.

    Checked: the real Fingers images (``data.root``), the model and data variant, the epochs,
    no batch limits, batch size, the optimizer (SGD, its learning rate and momentum, no weight
    decay or Nesterov), no gradient clipping (``optimizer=sgd_clipped``), the split.
    """
    if not config:
        return ["no config.yaml"]
    data_cfg, trainer, optimizer = (config.get(k) or {} for k in ("data", "trainer", "optimizer"))
    reasons = []
    if not data_cfg.get("root"):
        reasons.append(f"built-in hands ({data_cfg.get('builtin_size', '?')}), not the real images")
    if model not in MODELS or data not in DATASETS:
        reasons.append(f"{model} on {data} is not in the study")
    epochs = config.get("epochs", trainer.get("max_epochs"))
    if data in STUDY_EPOCHS and epochs != STUDY_EPOCHS[data]:
        reasons.append(f"{epochs} epochs, not {STUDY_EPOCHS[data]}")
    for key in BATCH_LIMITS:
        if limited(trainer.get(key)):
            reasons.append(f"{key}={trainer[key]}")
    if config.get("batch_size", STUDY_BATCH_SIZE) != STUDY_BATCH_SIZE:
        reasons.append(f"batch size {config['batch_size']}, not {STUDY_BATCH_SIZE}")
    if optimizer.get("lr", STUDY_LR) != STUDY_LR or optimizer.get("momentum", STUDY_MOMENTUM) != STUDY_MOMENTUM:
        reasons.append(f"SGD lr={optimizer.get('lr')}, momentum={optimizer.get('momentum')}, not 0.01 and 0")
    if optimizer.get("_target_", STUDY_OPTIMIZER) != STUDY_OPTIMIZER:
        reasons.append(f"optimizer {optimizer['_target_']}, not {STUDY_OPTIMIZER}")
    if optimizer.get("weight_decay") or optimizer.get("nesterov"):
        reasons.append(
            f"SGD weight_decay={optimizer.get('weight_decay', 0)}, nesterov={optimizer.get('nesterov', False)}"
        )
    if trainer.get("gradient_clip_val"):
        algorithm = trainer.get("gradient_clip_algorithm") or "norm"
        reasons.append(f"gradients clipped ({algorithm} {trainer['gradient_clip_val']}), not plain SGD")
    if data_cfg.get("split", STUDY_SPLIT) != STUDY_SPLIT:
        reasons.append(f"the {data_cfg['split']} split, not the study's random one")
    return reasons
