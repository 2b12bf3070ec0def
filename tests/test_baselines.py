"""Reference baselines: run folders shaped like a trained run's, predictions checked by brute force."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from helpers import CONF
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from handgestures.analysis.baselines import BrightnessArea, run_baselines, size_features
from handgestures.data.grouping import thumbnails
from handgestures.training.train import build_datamodule


def baselines_config(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("baselines", overrides=["data.builtin_size=240", "data.huge_pages=false", *overrides])


@pytest.fixture(scope="module")
def baseline_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines")
    cfg = baselines_config("data.split=grouped", "thumbnail=8")
    return cfg, out, run_baselines(cfg, out)


def test_run_folders_have_a_trained_runs_metrics(baseline_runs):
    cfg, out, results = baseline_runs
    assert sorted(results) == ["brightness_area", "nn_thumb8"]
    for model in results:
        folder = out / f"{model}-base-seed0"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "done" and metrics["split"] == "grouped" and metrics["model"] == model
        sets = ["train", "val", "test", "train_aug", "val_aug", "test_aug"]
        assert sorted(metrics["metrics"]) == sorted(f"{s}/{m}" for s in sets for m in ("acc", "loss"))
        with (folder / "split.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        sizes = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
        for s in sets:
            confusion = torch.tensor(metrics["confusion"][s])
            assert confusion.sum() == sizes[s.removesuffix("_aug")]
            assert metrics["metrics"][f"{s}/acc"] == pytest.approx(float(confusion.trace() / confusion.sum()))
            per_class = confusion.diagonal() / confusion.sum(1)
            assert list(metrics["per_class_acc"][s].values()) == pytest.approx(per_class.tolist())


def test_nearest_neighbour_predictions_match_brute_force(baseline_runs):
    cfg, out, results = baseline_runs
    dm = build_datamodule(cfg.data)
    dm.setup("fit")
    train, val = (thumbnails(dm.splits[k].images, 8).double() for k in ("train", "val"))
    nearest = torch.cdist(val, train).argmin(1)
    expected = (dm.splits["train"].labels[nearest] == dm.splits["val"].labels).double().mean()
    metrics = results["nn_thumb8"]["metrics"]
    assert metrics["val/acc"] == pytest.approx(float(expected))
    assert metrics["train/acc"] == 1.0 and metrics["val/loss"] is None  # it finds itself; no probabilities


def test_brightness_area_method_is_chosen_on_validation(baseline_runs):
    cfg, _, results = baseline_runs
    dm = build_datamodule(cfg.data)
    dm.setup("fit")
    feats = {k: size_features(dm.splits[k].images) for k in ("train", "val")}
    model = BrightnessArea().fit(feats["train"], dm.splits["train"].labels)
    val_acc = {
        m: float((p == dm.splits["val"].labels).float().mean()) for m, (p, _) in model.predict(feats["val"]).items()
    }
    chosen = results["brightness_area"]["method"]
    assert val_acc[chosen] == max(val_acc.values())
    assert results["brightness_area"]["metrics"]["val/acc"] == pytest.approx(val_acc[chosen])


def test_size_features_are_brightness_and_hand_area():
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    images[0, 0, :2] = 255  # half the image is bright hand
    images[1, 0] = 100  # dim everywhere: no hand pixel
    assert torch.allclose(size_features(images), torch.tensor([[0.5, 0.5], [100 / 255, 0.0]]))
