"""A run folder written by the code before the package was regrouped still works, wherever it lies.

tests/data/legacy_run was made by that code (commit 9632f70): CarlosNet on 240 built-in hands,
2 epochs of 3 batches, fp32, seed 0, killed (SIGKILL) at the start of epoch 2. Its config.yaml
names classes by their old paths (handgestures.callbacks.EpochMetrics), keeps the variant's
epochs under data, and holds the absolute paths of the folder it was written in.
tests/data/legacy_run_uninterrupted_metrics.json is the metrics.json of the same run left to
finish by that code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import ROOT
from omegaconf import OmegaConf

from handgestures.runfolder.legacy import upgrade_saved_config

FIXTURE = ROOT / "tests" / "data" / "legacy_run"
EXPECTED = json.loads((ROOT / "tests" / "data" / "legacy_run_uninterrupted_metrics.json").read_text())
WRITTEN_IN = "/tmp/legacy/legacy_run"  # where the old code wrote it (config.yaml's paths)
TIMING = {"fit_seconds", "startup_seconds", "train_images_per_second", "eval_seconds", "wall_seconds"}
# the numbers a run computes; identity, status, timings and paths aside
COMPARED = ("epochs_run", "best_val_acc", "metrics", "per_class_acc", "confusion", "collapse")


def python(args, cwd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HANDGESTURES_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def same(a, b) -> bool:
    """Equal, floats within 1e-6 (another CPU's kernels may round the last bit differently)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-6
    return a == b


@pytest.fixture
def copied(tmp_path):
    """The fixture copied to a new place, as a user copies a run folder."""
    run = tmp_path / "moved" / "legacy_run"
    shutil.copytree(FIXTURE, run)
    return run


def test_the_fixture_is_what_the_old_code_wrote():
    text = (FIXTURE / "config.yaml").read_text()
    assert "handgestures.callbacks.EpochMetrics" in text and WRITTEN_IN in text
    saved = OmegaConf.load(FIXTURE / "config.yaml")
    assert saved.data.epochs == 10 and saved.epochs == 2  # the variant's 10, overridden by epochs=2


def test_upgrade_renames_old_classes_moves_epochs_and_rebases_paths(copied):
    cfg = upgrade_saved_config(OmegaConf.load(copied / "config.yaml"), copied)
    text = OmegaConf.to_yaml(cfg)
    assert "handgestures.training.callbacks.EpochMetrics" in text and "handgestures.callbacks." not in text
    assert WRITTEN_IN not in text, "a path still points at the folder the run was written in"
    assert cfg.paths.output_dir == str(copied.resolve())
    assert cfg.callbacks.model_checkpoint.dirpath == str(copied.resolve() / "checkpoints")
    assert "epochs" not in cfg.data and cfg.epochs == 2
    assert cfg.data.cache_dir == "/tmp/hgcache", "a path outside the run folder is left alone"


@pytest.mark.slow
def test_a_copied_old_run_resumes_in_its_own_folder_and_matches_the_old_codes_numbers(copied, tmp_path):
    before = {p.relative_to(FIXTURE): p.stat().st_mtime_ns for p in FIXTURE.rglob("*")}
    original = sorted(os.listdir(WRITTEN_IN)) if os.path.isdir(WRITTEN_IN) else None
    out = python(["train.py", f"resume={copied}"], ROOT, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((copied / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["epochs_run"] == 2
    for key in COMPARED:  # exact resume: the numbers of the uninterrupted run of the old code
        assert same(metrics[key], EXPECTED[key]), (key, metrics[key], EXPECTED[key])
    assert (copied / "checkpoints" / "last.ckpt").is_file() and (copied / "MODEL_CARD.md").is_file()
    assert (sorted(os.listdir(WRITTEN_IN)) if os.path.isdir(WRITTEN_IN) else None) == original, "wrote outside the copy"
    assert {p.relative_to(FIXTURE): p.stat().st_mtime_ns for p in FIXTURE.rglob("*")} == before, "the original changed"
    text = (copied / "config.yaml").read_text()
    assert "handgestures.training.callbacks.EpochMetrics" in text and WRITTEN_IN not in text


@pytest.mark.slow
def test_a_copied_old_run_evaluates_predicts_and_exports_from_its_own_checkpoint(copied, tmp_path):
    best = sorted((copied / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1
    out = python(["eval.py", f"ckpt={copied}", f"hydra.run.dir={tmp_path / 'eval'}"], ROOT, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    evaluation = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert str(copied) in json.dumps(evaluation) and WRITTEN_IN not in json.dumps(evaluation)
    # the old run's test numbers (its best checkpoint, epoch 1), as its own code computed them
    assert evaluation["sets"]["test"]["accuracy"] == pytest.approx(EXPECTED["metrics"]["test/acc"], abs=1e-6)
    assert evaluation["sets"]["test"]["confusion"] == EXPECTED["confusion"]["test"]
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    from handgestures.data.hands import generate_hands

    pixels, labels, _ = generate_hands(12, seed=3)
    for i, image in enumerate(pixels):
        Image.fromarray(image.squeeze().numpy()).save(images / f"{i}_{int(labels[i])}L.png")
    out = python(["predict.py", f"ckpt={copied}", f"inputs={images}", "output=json"], ROOT, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [r for r in map(json.loads, (x for x in out.stdout.splitlines() if x.startswith("{"))) if "file" in r]
    assert len(lines) == 12 and all(0 <= r["fingers"] <= 5 for r in lines)
    assert str(copied) in out.stderr and WRITTEN_IN not in out.stderr
    pytest.importorskip("onnxruntime")
    onnx = tmp_path / "legacy.onnx"
    out = python(["export.py", f"ckpt={copied}", f"output={onnx}"], ROOT, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert onnx.is_file()
    from handgestures.inference.predictor import load_predictor

    ours, theirs = load_predictor(str(copied)), load_predictor(str(onnx))
    batch = pixels.float() / 255
    assert torch.allclose(ours.probabilities(batch), theirs.probabilities(batch), atol=1e-5)


def test_a_fresh_run_of_the_same_config_gives_the_old_codes_numbers(tmp_path):
    """The regrouping changed no number: the fixture's run, trained again from scratch today."""
    from helpers import compose_train

    from handgestures.training.train import train

    overrides = ["model=carlosnet", "data=base", "data.builtin_size=240", "data.eval_batch_size=64", "epochs=2",
                 "trainer.limit_train_batches=3", "trainer.precision=32-true", "logger=none", "seed=0",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANDGESTURES_CACHE", str(tmp_path / "cache"))
        train(compose_train(overrides, tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"] == "random" and metrics["status"] == "done"
    for key in COMPARED:
        assert same(metrics[key], EXPECTED[key]), (key, metrics[key], EXPECTED[key])
