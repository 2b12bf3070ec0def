"""A run folder of today's code, copied: it resumes, evaluates, predicts and exports from its own files.

The original stays where it was, so a path recorded in the copy's config.yaml, metrics.json or
checkpoints that still pointed at it would be read or written there: every test compares the
original's files before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from handgestures.inference.predictor import load_predictor
from handgestures.runfolder.checkpoints import resolve_checkpoint


def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def python(args: list[str], tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HANDGESTURES_CACHE": str(cache)}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def copy(tiny_run, tmp_path):
    """The tiny run copied elsewhere, the original left in place; (copy, the original's files before)."""
    run = tmp_path / "copied" / "run"
    shutil.copytree(tiny_run, run)
    assert str(tiny_run) in (run / "config.yaml").read_text()  # today's folders record where they were written
    return run, files_of(tiny_run)


def test_a_copy_without_last_ckpt_resumes_in_itself_from_its_best_checkpoint(copy, tiny_run, tmp_path,
                                                                             tmp_path_factory):  # fmt: skip
    run, before = copy
    (run / "metrics.json").unlink()  # as if killed after its last epoch's checkpoints
    (run / "checkpoints" / "last.ckpt").unlink()
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    out = python([str(ROOT / "train.py"), f"resume={run}"], tmp_path, tmp_path_factory.getbasetemp() / "cache")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"no usable last.ckpt; resuming from {best.name}" in out.stderr + out.stdout
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "done" and record["epochs_run"] == 1
    assert record["best_checkpoint"] == f"checkpoints/{best.name}" and best.is_file()  # kept, relative
    original = json.loads((tiny_run / "metrics.json").read_text())
    assert record["metrics"] == pytest.approx(original["metrics"], abs=1e-6)  # the same weights evaluated
    assert files_of(tiny_run) == before, "the resume wrote into the original folder"
    assert str(tiny_run) not in (run / "config.yaml").read_text()


def test_a_copy_is_evaluated_predicted_and_exported_from_its_own_checkpoint(copy, tiny_run, tmp_path):
    run, before = copy
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    assert resolve_checkpoint(run) == best  # the original's checkpoint is still there, and not used
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    for value in checkpoint["state_dict"].values():  # the copy's weights differ from the original's
        if value.is_floating_point():
            value.mul_(0.5)
    torch.save(checkpoint, best)
    batch = torch.rand(4, 1, 128, 128)
    ours, original = load_predictor(str(run)), load_predictor(str(tiny_run))
    assert ours.source == best and not torch.allclose(ours.probabilities(batch), original.probabilities(batch))
    from handgestures.inference.export import export_onnx

    pytest.importorskip("onnxscript")
    report = export_onnx(run, best.with_suffix(".onnx"), check_batch=2, try_fused=False)
    assert Path(report["onnx"]).parent == run / "checkpoints"
    exported = load_predictor(report["onnx"]).probabilities(batch)  # the copy's weights, not the original's
    gap = (exported - ours.probabilities(batch)).abs().max()
    assert gap < 1e-3 and gap < (exported - original.probabilities(batch)).abs().max() / 10
    assert files_of(tiny_run) == before
