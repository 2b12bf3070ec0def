"""Reference baselines, evaluated like a run: 1-NN on thumbnails, and brightness/area.

Neither learns anything a network would: the nearest-neighbour baseline keeps the training
split as its memory and answers the label of the closest block-mean thumbnail (RMS grey
levels, ``thumbnail`` x ``thumbnail``); the brightness/area baseline sees only the image's
mean brightness and the fraction of hand pixels. Both are evaluated on the same splits and
the same fixed augmented views as the networks (the DataModule's own), and each writes a
run folder whose metrics.json has the shape of a trained run's, so ``handgestures-report``
shows them beside the networks. On the training split the 1-NN finds each image itself
(accuracy 1 by construction); its train_aug view is a real test.

``handgestures-baselines data.root=... data.split=grouped`` (or ``python baselines.py``;
conf/baselines.yaml).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from handgestures import CONF_DIR
from handgestures.data.datamodule import build_datamodule
from handgestures.data.grouping import nearest, thumbnails, write_split_csv
from handgestures.runfolder.record import per_class_accuracy, write_json

log = logging.getLogger(__name__)

CONF = str(CONF_DIR)

HAND_LEVEL = 110  # grey level: a pixel above it counts as hand (backgrounds stay below, skin above)
NEIGHBOURS = 25


def size_features(images: torch.Tensor) -> torch.Tensor:
    """(mean brightness, fraction of hand pixels) of (N, 1, H, W) images on the 0..255 scale."""
    x = images.float() / 255
    return torch.stack([x.mean((1, 2, 3)), (x > HAND_LEVEL / 255).float().mean((1, 2, 3))], 1)


def _quadratic(f: torch.Tensor) -> torch.Tensor:
    return torch.cat([f, f**2, f[:, :1] * f[:, 1:]], 1)


class BrightnessArea:
    """Three simple classifiers on the two size features: nearest class mean, 25-NN, quadratic logistic regression."""

    methods = ("class_mean", "knn25", "logistic")

    def fit(self, features: torch.Tensor, labels: torch.Tensor, num_classes: int = 6) -> BrightnessArea:
        self.mean, self.std = features.mean(0), features.std(0).clamp_min(1e-12)
        f = (features - self.mean) / self.std
        self.train_f, self.train_y, self.num_classes = f, labels, num_classes
        self.centres = torch.stack([f[labels == k].mean(0) if (labels == k).any() else torch.full((2,), math.inf)
                                    for k in range(num_classes)])  # fmt: skip
        self.weight = torch.zeros(5, num_classes, requires_grad=True)
        self.bias = torch.zeros(num_classes, requires_grad=True)
        opt = torch.optim.LBFGS([self.weight, self.bias], max_iter=200)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(_quadratic(f) @ self.weight + self.bias, labels)
            loss.backward()
            return loss

        opt.step(closure)
        return self

    def predict(self, features: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """method -> (predicted labels, class probabilities or None)."""
        f = (features - self.mean) / self.std
        votes = torch.cat([self.train_y[torch.cdist(chunk, self.train_f).topk(NEIGHBOURS, largest=False).indices]
                           for chunk in f.split(2048)]) if len(f) else torch.zeros((0, NEIGHBOURS), dtype=torch.long)  # fmt: skip
        with torch.no_grad():
            logits = _quadratic(f) @ self.weight + self.bias
        return {
            "class_mean": (torch.cdist(f, self.centres).argmin(1), None),
            "knn25": (votes.mode(1).values, None),
            "logistic": (logits.argmax(1), logits.softmax(1)),
        }


def eval_sets(datamodule, size: int = 16) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """name -> (thumbnails, size features, labels) of every eval set, augmented views included.

    Batches pass through the DataModule's own ``prepare_batch``, so the views are exactly
    the networks'; full-size images are dropped batch by batch.
    """
    datamodule.setup("test")
    out = {}
    for name, loader in zip(datamodule.eval_names, datamodule.test_dataloader(), strict=True):
        thumbs, feats, labels = [], [], []
        for batch in loader:
            images, y = datamodule.prepare_batch(batch, training=False)
            images = images.contiguous().mul_(255.0)  # back on the 0..255 scale the features use
            thumbs.append(thumbnails(images, size))
            feats.append(size_features(images))
            labels.append(y)
        out[name] = torch.cat(thumbs), torch.cat(feats), torch.cat(labels)
    return out


def confusion_of(pred: torch.Tensor, labels: torch.Tensor, num_classes: int = 6) -> list[list[int]]:
    return torch.bincount(labels * num_classes + pred, minlength=num_classes**2).view(num_classes, -1).tolist()


def result_of(predictions: dict[str, tuple[torch.Tensor, torch.Tensor | None]], sets: dict) -> dict[str, Any]:
    """metrics (acc, loss or None without probabilities), confusion and per-class accuracy, as train.py writes them."""
    metrics: dict[str, float | None] = {}
    confusion = {}
    for name, (pred, probs) in predictions.items():
        labels = sets[name][2]
        metrics[f"{name}/acc"] = float((pred == labels).float().mean())
        metrics[f"{name}/loss"] = (float(F.nll_loss(probs.clamp_min(1e-12).log(), labels)) if probs is not None
                                   else None)  # fmt: skip
        confusion[name] = confusion_of(pred, labels)
    return {"metrics": metrics, "per_class_acc": per_class_accuracy(confusion), "confusion": confusion}


def run_baselines(cfg: DictConfig, out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Fits both baselines on the training split of ``cfg.data``, writes one run folder each; returns their results."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if "paths" in cfg:
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)  # resolvable without Hydra's runtime (tests, scripts)
    size = int(cfg.get("thumbnail", 16))
    datamodule = build_datamodule(cfg.data)
    sets = eval_sets(datamodule, size)
    split = str(cfg.data.get("split", "random"))
    folds = {"folds": int(cfg.data.folds), "fold": int(cfg.data.get("fold", 0))} if cfg.data.get("folds") else {}
    train_thumbs, train_feats, train_y = sets["train"]
    fit_start = time.perf_counter()
    area = BrightnessArea().fit(train_feats, train_y)
    fit_seconds = time.perf_counter() - fit_start
    by_set = {name: area.predict(feats) for name, (_, feats, _) in sets.items()}
    chosen = max(BrightnessArea.methods, key=lambda m: float((by_set["val"][m][0] == sets["val"][2]).float().mean()))
    nn = {name: (train_y[nearest(thumbs, train_thumbs)[1]], None) for name, (thumbs, _, _) in sets.items()}
    runs = {
        f"nn_thumb{size}": (nn, {"baseline": "1-NN on block-mean thumbnails, training split as memory",
                                 "thumbnail": size}, 0.0),
        "brightness_area": ({k: v[chosen] for k, v in by_set.items()},
                            {"baseline": "brightness and hand area", "method": chosen,
                             "method_chosen_on": "val/acc"}, fit_seconds),
    }  # fmt: skip
    results = {}
    for model, (predictions, details, seconds) in runs.items():
        fold = f"-fold{folds['fold']}" if folds else ""  # the folds of one fold set, side by side
        folder = out_dir / f"{model}-base{fold}-seed{int(cfg.seed)}"
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
        write_split_csv(datamodule, folder / "split.csv")
        result = {"model": model, "data": "base", "seed": int(cfg.seed), "status": "done", "split": split, **folds, **details,
                  "epochs_run": 0, "fit_seconds": round(seconds, 3), **result_of(predictions, sets),
                  "wall_seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
        write_json(folder / "metrics.json", result)
        results[model] = result
        accs = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items() if k.endswith("/acc"))
        print(f"{model} ({split} split) -> {folder}: {accs}")
    return results


def main() -> None:
    """Console entry point: Hydra composes conf/baselines.yaml with the command line's overrides."""

    @hydra.main(version_base="1.3", config_path=CONF, config_name="baselines")
    def _main(cfg: DictConfig) -> None:
        run_baselines(cfg, HydraConfig.get().runtime.output_dir)

    _main()
