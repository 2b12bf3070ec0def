"""Multiruns: a failed job neither stops the sweep nor overwrites another; the study sweep's shape and names."""

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from handgestures.analysis.report import build_report

TINY_SWEEP = [
    "epochs=1", "data.builtin_size=240", "data.eval_batch_size=64", "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]  # fmt: skip
MISSING = "/nonexistent/folder"
RUN_FOLDER = re.compile(r"^([a-z]+-[a-z]+-seed\d+)(-job\d+)?$")  # conf/hydra/default.yaml's sweep subdir


def multirun(args, sweep_dir, tmp_path_factory):
    cmd = [sys.executable, "train.py", "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def job_folders(sweep_dir):
    return sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())


def job_data_root(folder):
    """The data.root this job ran with, from Hydra's record of its overrides."""
    overrides = OmegaConf.load(folder / ".hydra" / "overrides.yaml")
    return next(o.split("=", 1)[1] for o in overrides if o.startswith("data.root="))


@pytest.fixture(scope="module")
def half_failed(tmp_path_factory):
    """Two jobs: the built-in data (fine) and a folder that does not exist (fails while loading)."""
    sweep_dir = tmp_path_factory.mktemp("half_failed")
    out = multirun([f"data.root=null,{MISSING}", *TINY_SWEEP], sweep_dir, tmp_path_factory)
    return sweep_dir, out


def test_sweep_runs_every_job_then_lists_the_failed_and_exits_1(half_failed):
    sweep_dir, out = half_failed
    assert out.returncode == 1, out.stderr[-3000:]
    assert "#1 : data.root=/nonexistent/folder" in out.stderr + out.stdout  # the second job was launched
    assert "the sweep goes on" in out.stderr + out.stdout
    failed = [f for f in job_folders(sweep_dir) if (f / "failed.json").is_file()]
    summary = out.stderr[out.stderr.index("1 of 2 jobs of the sweep failed") :]
    assert f"  {failed[0].name}: UserError: invalid configuration" in summary and MISSING in summary
    assert not any(f"  {f.name}:" in summary for f in job_folders(sweep_dir) if f not in failed)


def test_failed_job_writes_failed_json_naming_the_folder(half_failed):
    sweep_dir, _ = half_failed
    failed = [f for f in job_folders(sweep_dir) if (f / "failed.json").is_file()]
    assert len(failed) == 1
    record = json.loads((failed[0] / "failed.json").read_text())
    assert MISSING in record["error"] and record["error"].startswith("UserError: invalid configuration")
    assert "data.root" in record["error"] and "\n" not in record["error"]  # one line, for the summary and report
    assert "Traceback" in record["traceback"]


def test_each_job_keeps_its_own_folder(half_failed):
    """Jobs that differ only in a non-name override must not share (and overwrite) a run folder."""
    sweep_dir, _ = half_failed
    folders = job_folders(sweep_dir)
    assert len(folders) == 2, (
        f"2 jobs wrote into {[f.name for f in folders]}: hydra.sweep.subdir must be unique per job "
        "(conf/hydra/default.yaml)"
    )
    good = [f for f in folders if job_data_root(f) == "null"]
    assert len(good) == 1
    assert json.loads((good[0] / "metrics.json").read_text())["status"] == "done"
    assert not (good[0] / "failed.json").exists()
    bad = [f for f in folders if job_data_root(f) == MISSING]
    assert len(bad) == 1 and (bad[0] / "failed.json").is_file() and not (bad[0] / "metrics.json").exists()


def test_report_marks_the_failed_job(half_failed, tmp_path):
    sweep_dir, _ = half_failed
    report = build_report(sweep_dir, tmp_path).read_text()
    assert "- failed: carlosnet-base-seed0" in report and MISSING in report
    assert "**failed**: UserError: invalid configuration" in report


def test_study_experiment_sweeps_model_data_and_3_seeds():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=study", "model=ivannet", "data=augmented", "seed=2"],
                      return_hydra_config=True)  # fmt: skip
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert params == {"model": ["carlosnet", "ivannet"], "data": ["base", "augmented"], "seed": ["0", "1", "2"]}
    cfg.hydra.job.num = 5  # set by the sweeper in a real multirun
    HydraConfig.instance().set_config(cfg)
    assert RUN_FOLDER.match(cfg.hydra.sweep.subdir)[1] == "ivannet-augmented-seed2"


def test_study_sweep_runs_12_jobs_named_by_their_choices(tmp_path_factory, tmp_path):
    """The real `-m experiment=study`, made to fail at once (no data): 12 jobs, 12 folders, nothing trained."""
    sweep_dir = tmp_path_factory.mktemp("study")
    out = multirun(["experiment=study", f"data.root={MISSING}", "logger=none", *TINY_SWEEP], sweep_dir,
                   tmp_path_factory)  # fmt: skip
    assert out.returncode == 1, out.stderr[-3000:]
    assert "12 of 12 jobs of the sweep failed" in out.stderr
    expected = {f"{m}-{d}-seed{s}" for m in ("carlosnet", "ivannet") for d in ("base", "augmented") for s in (0, 1, 2)}
    folders = job_folders(sweep_dir)
    assert sorted(RUN_FOLDER.match(f.name)[1] for f in folders) == sorted(expected)  # a "-job<N>" suffix is allowed
    for folder in folders:
        overrides = set(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
        model, data, seed = RUN_FOLDER.match(folder.name)[1].split("-")
        assert {f"model={model}", f"data={data}", f"seed={seed.removeprefix('seed')}"} <= overrides
        assert (folder / "failed.json").is_file() and not (folder / "metrics.json").exists()
    report = build_report(sweep_dir, tmp_path).read_text()
    assert report.count("- failed: ") == 12 and "- missing" not in report
