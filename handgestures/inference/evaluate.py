"""Evaluation of a trained model on a folder, or on its own run's split, plain and augmented.

Sets:

* ``split=all``: every image of a folder of Fingers PNGs (labels from the file names), plus
  a fixed augmented view of each image (``all_aug``) drawn from the run's augmentation and
  its ``eval_view_seed``. The default for a folder the model was not trained on.
* ``split=train|val|test``: the study's split of the data, rebuilt exactly as the run built
  it (the checkpoint's data description: source, split seed, view seed, augmentation), with
  its fixed augmented view (``test_aug``, ...). The default (``test``) for the run's own data.

The PyTorch path runs what ``trainer.test`` ran in train.py: the datamodule's own batches
and rescale, the run's precision (autocast), the module's metric classes in the same order,
so on the run's test split it gives exactly the numbers metrics.json recorded.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from handgestures.data.augment import sample_keras_params
from handgestures.data.datamodule import FingersDataModule, IndexedImages
from handgestures.data.split import SPLITS
from handgestures.inference.predictor import Predictor
from handgestures.runfolder.record import class_accuracy

SPLIT_CHOICES = ("all", *SPLITS)
ALL_VIEW_OFFSET = 99  # the 'all' set's view generator: eval_view_seed * 1000 + 99 (splits use 0-2)


def datamodule_for(
    description: dict[str, Any], root: str | None, batch_size: int | None = None, report_dir: str | None = None
) -> FingersDataModule:
    """The run's datamodule (its recorded data arguments), on ``root`` when given.

    Lists of bad files go to ``report_dir`` (the evaluation's folder), never to the folder the
    run recorded (its own run folder); None: the cache folder's ``reports/``.
    """
    recorded = dict(description.get("data") or {})
    accepted = set(inspect.signature(FingersDataModule).parameters)
    kwargs = {k: v for k, v in recorded.items() if k in accepted}
    kwargs.update(huge_pages=False, num_workers=0, cache_dir=None, report_dir=report_dir)
    if root is not None:
        kwargs["root"] = root
    if batch_size is not None:
        kwargs["eval_batch_size"] = int(batch_size)
    return FingersDataModule(**kwargs)


def same_folder(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return not a and not b
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def default_split(description: dict[str, Any], root: str | None) -> str:
    """``test`` on the run's own data (root omitted, or the folder it was trained on), else ``all``."""
    trained_on = (description.get("data") or {}).get("root")
    return "test" if root is None or same_folder(root, trained_on) else "all"


def build_sets(dm: FingersDataModule, split: str) -> dict[str, IndexedImages]:
    """The named sets to evaluate: ``split`` plain, then its fixed augmented view when configured."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split={split!r}: expected one of {list(SPLIT_CHOICES)}")
    if split == "all":
        data = dm._load()
        indices = torch.arange(len(data))
        sets = {"all": IndexedImages(data, indices)}
        if dm.keras_params:
            gen = torch.Generator().manual_seed(dm.eval_view_seed * 1000 + ALL_VIEW_OFFSET)
            views = sample_keras_params(
                len(data), image_size=tuple(data.images.shape[-2:]), generator=gen, **dm.keras_params
            )
            sets["all_aug"] = IndexedImages(data, indices, views)
        return sets
    dm.setup("test")
    sets = {split: dm.splits[split]}
    if split in dm.aug_views:
        sets[f"{split}_aug"] = dm.aug_views[split]
    return sets


def evaluate_set(predictor: Predictor, dm: FingersDataModule, dataset: IndexedImages) -> dict[str, Any]:
    """Accuracy, loss, per-class accuracy and confusion of one set, batch by batch."""
    n_classes = len(predictor.class_names)
    acc, loss, confusion = (
        MulticlassAccuracy(n_classes, average="micro"),
        MeanMetric(),
        MulticlassConfusionMatrix(n_classes),
    )
    with torch.inference_mode(), predictor.context():
        for begin in range(0, len(dataset), dm.eval_batch_size):
            batch = dataset[list(range(begin, min(begin + dm.eval_batch_size, len(dataset))))]
            x, y = dm.on_after_batch_transfer(batch, 0)
            logits = predictor.logits(x).float()
            loss.update(F.cross_entropy(logits, y, reduction="none"))  # as HandGestureClassifier.test_step
            acc.update(logits, y)
            confusion.update(logits, y)
    matrix = confusion.compute().tolist()
    return {
        "images": len(dataset),
        "accuracy": float(acc.compute()),
        "loss": float(loss.compute()),
        "per_class_accuracy": class_accuracy(matrix, list(predictor.class_names)),
        "confusion": matrix,
    }


def evaluate(
    predictor: Predictor, root: str | None = None, split: str | None = None, batch_size: int | None = None,
    report_dir: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Every set of ``split`` (see the module docstring) as one JSON-ready dict; bad files listed in ``report_dir``."""
    description = predictor.description
    split = split or default_split(description, root)
    dm = datamodule_for(description, root, batch_size, report_dir)
    sets = build_sets(dm, split)
    results = {name: evaluate_set(predictor, dm, dataset) for name, dataset in sets.items()}
    return {
        "model": str(predictor.source),
        "runtime": predictor.kind,
        "precision": predictor.precision,
        "data": dm.root or "built-in hands",
        "split": split,
        "own_data": same_folder(dm.root, (description.get("data") or {}).get("root")),
        "batch_size": dm.eval_batch_size,
        "sets": results,
    }


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def format_result(result: dict[str, Any]) -> str:
    """The printed evaluation: accuracy, loss, per-class accuracy and confusion of every set."""
    lines = [
        f"evaluated {result['model']} ({result['runtime']}, {result['precision']}) on {result['data']}, split {result['split']}"
    ]
    for name, r in result["sets"].items():
        per_class = "  ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in r["per_class_accuracy"].items())
        lines += [f"\n{name}: {r['images']} images, accuracy {r['accuracy']:.4f}, loss {r['loss']:.5f}",
                  f"  per-class accuracy  {per_class}", "  confusion (rows: true fingers, columns: predicted)"]  # fmt: skip
        lines += ["    " + " ".join(f"{v:5d}" for v in row) for row in r["confusion"]]
    return "\n".join(lines)


def write_evaluation(result: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """eval.json (strict JSON) and one confusion PNG per set in ``out_dir``; the paths written."""
    from handgestures.plots import confusion_figure, save_figure  # matplotlib only when figures are written

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "eval.json"
    path.write_text(json.dumps(finite(result), indent=2, allow_nan=False) + "\n")
    written = [path]
    for name, r in result["sets"].items():
        png = out_dir / f"confusion_{name}.png"
        save_figure(confusion_figure(r["confusion"], f"{name}: accuracy {r['accuracy']:.4f}"), png)
        written.append(png)
    return written
