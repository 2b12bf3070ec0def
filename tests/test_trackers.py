"""logger=mlflow, wandb, csv and many: each tracker gets the hyperparameters, every epoch's curves,
the final metrics (and, for MLflow, the run's files), offline, in the run's own folders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from helpers import TINY, compose_train

from handgestures.errors import UserError
from handgestures.training.train import train
from handgestures.training.validate import validate_config

EPOCHS = 2
QUICK = [*TINY, f"epochs={EPOCHS}", "trainer.limit_train_batches=2", "trainer.precision=32-true"]
HPARAMS = {"model": "carlosnet", "data": "base", "seed": "0", "epochs": str(EPOCHS), "batch_size": "32"}


def run(tmp_path: Path, logger: str, *extra: str) -> Path:
    out = tmp_path / "run"
    cfg = compose_train([*QUICK, f"logger={logger}", f"paths.tracking_dir={tmp_path / 'tracking'}", *extra], out)
    validate_config(cfg)  # the new groups pass the checks a real run makes first
    train(cfg)
    assert json.loads((out / "metrics.json").read_text())["status"] == "done"
    return out


def check_mlflow(tmp_path: Path, out: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("handgestures")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == out.name and found.info.status == "FINISHED"
    assert HPARAMS.items() <= found.data.params.items()
    history = client.get_metric_history(found.info.run_id, "val/acc")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    epochs = list(csv.DictReader((out / "epochs.csv").open()))
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [float(r["val/acc"]) for r in epochs]
    )
    for key in ("train/loss", "val/loss", "train/acc"):
        assert len(client.get_metric_history(found.info.run_id, key)) == EPOCHS
    final = json.loads((out / "metrics.json").read_text())["metrics"]
    assert found.data.metrics["final/test/acc"] == pytest.approx(final["test/acc"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"metrics.json", "MODEL_CARD.md", "config.yaml"} <= artifacts
    assert (tmp_path / "tracking" / "mlartifacts").is_dir()  # the store's files beside it, not ./mlruns


def check_csv(out: Path) -> None:
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    curves = [r for r in rows if r.get("val/acc")]
    assert [int(r["step"]) for r in curves] == list(range(1, EPOCHS + 1))
    assert all(math.isfinite(float(r["train/loss"])) for r in curves)
    assert any(r.get("final/test/acc") for r in rows)
    assert "lr" in (out / "csv" / "hparams.yaml").read_text()


def test_mlflow_run_in_the_sqlite_store_with_params_curves_final_metrics_and_files(tmp_path):
    pytest.importorskip("mlflow")
    out = run(tmp_path, "mlflow")
    check_mlflow(tmp_path, out)
    assert not (out / "tensorboard").exists()


def test_csv_logger_writes_every_epoch_and_the_final_metrics(tmp_path):
    out = run(tmp_path, "csv")
    check_csv(out)


def test_wandb_offline_writes_its_run_folder(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    out = run(tmp_path, "wandb")
    (folder,) = (out / "wandb").glob("offline-run-*")
    assert list(folder.glob("*.wandb")), sorted(p.name for p in folder.iterdir())


def test_many_gives_tensorboard_csv_and_mlflow(tmp_path):
    pytest.importorskip("mlflow")
    out = run(tmp_path, "many")
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    check_csv(out)
    check_mlflow(tmp_path, out)


def test_a_tracker_that_is_not_installed_is_one_clear_config_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    cfg = compose_train([*QUICK, "logger=many"], tmp_path)
    with pytest.raises(UserError, match=r"logger.mlflow \(MLFlowLogger\) needs the mlflow package: pip install"):
        validate_config(cfg)
    with pytest.raises(UserError, match="unknown key 'logger.csv.colour'"):
        validate_config(compose_train([*QUICK, "logger=csv", "+logger.csv.colour=red"], tmp_path))
