"""Grouped k-fold cross-validation: folds of whole groups, balanced, no group in two of train/val/test."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from helpers import TINY, compose_train
from test_grouping import recordings

from handgestures.data.datamodule import FingersDataModule
from handgestures.data.folds import fold_split, grouped_folds, groups_of, make_fold_split
from handgestures.data.grouping import near_duplicate_groups, strata_of, thumbnails
from handgestures.data.split import SPLITS
from handgestures.training.validate import validate_config

GROUPING = {"threshold": 9.0, "max_group": 4}


@pytest.fixture(scope="module")
def data():
    return recordings(per_stratum=6, frames=12)  # 12 strata x 6 recordings x 12 frames = 864 images


def test_folds_deal_whole_groups_and_keep_every_stratum_balanced(data):
    groups = near_duplicate_groups(thumbnails(data.images, 16), data.labels, data.hands, **GROUPING)
    fold_of = grouped_folds(data.labels, data.hands, groups, k=5, seed=0)
    assert sorted(torch.unique(fold_of).tolist()) == [0, 1, 2, 3, 4]
    for g in torch.unique(groups):  # a group lies in one fold
        assert len(torch.unique(fold_of[groups == g])) == 1
    strata = strata_of(data.labels, data.hands)
    for s in torch.unique(strata):  # each (class, hand): every fold within one largest group of n/5
        counts = torch.bincount(fold_of[strata == s], minlength=5)
        largest = int(torch.bincount(groups[strata == s]).max())
        n = int((strata == s).sum())
        assert (counts > 0).all() and (counts - n / 5).abs().max() <= largest, (int(s), counts.tolist())
    assert torch.equal(fold_of, grouped_folds(data.labels, data.hands, groups, k=5, seed=0))  # deterministic
    assert not torch.equal(fold_of, grouped_folds(data.labels, data.hands, groups, k=5, seed=1))


def test_each_fold_is_the_test_set_once_and_no_group_spans_two_sets(data):
    groups = groups_of(data, GROUPING)
    fold_of = grouped_folds(data.labels, data.hands, groups, k=5, seed=0)
    tested = torch.zeros(len(data), dtype=torch.long)
    strata = strata_of(data.labels, data.hands)
    for fold in range(5):
        split = fold_split(data.labels, data.hands, groups, fold_of, fold, seed=0)
        assert torch.equal(split["test"], torch.nonzero(fold_of == fold).flatten())
        assert sum(len(split[k]) for k in SPLITS) == len(data)
        tested[split["test"]] += 1
        where = torch.empty(len(data), dtype=torch.long)
        for i, k in enumerate(SPLITS):
            where[split[k]] = i
        for g in torch.unique(groups):
            assert len(torch.unique(where[groups == g])) == 1, f"group {int(g)} in two sets (fold {fold})"
        for k in SPLITS:  # every class and hand in every set
            assert len(torch.unique(strata[split[k]])) == 12, (fold, k)
        # validation: about a sixth of each (class, hand), from the other folds
        val_share = len(split["val"]) / len(data)
        assert 0.12 < val_share < 0.21, val_share
    assert (tested == 1).all()


def test_too_many_folds_and_a_bad_fold_are_refused_with_what_to_do(data):
    groups = groups_of(data, GROUPING)
    per_stratum = min(len(torch.unique(groups[strata_of(data.labels, data.hands) == s])) for s in range(12))
    with pytest.raises(ValueError, match=rf"at most {per_stratum} folds.*data.folds <= {per_stratum}"):
        grouped_folds(data.labels, data.hands, groups, k=per_stratum + 1)
    with pytest.raises(ValueError, match="at least 2 folds"):
        grouped_folds(data.labels, data.hands, groups, k=1)
    fold_of = grouped_folds(data.labels, data.hands, groups, k=3)
    with pytest.raises(ValueError, match=r"data.fold=3: expected 0 <= fold < data.folds=3"):
        fold_split(data.labels, data.hands, groups, fold_of, 3)
    with pytest.raises(ValueError, match="needs data.split=grouped"):
        FingersDataModule(split="random", folds=5, fold=0)


def test_the_grouping_is_computed_once_per_dataset(data, monkeypatch):
    import handgestures.data.stored_groups as folds

    calls = []
    real = folds.near_duplicate_groups
    monkeypatch.setattr(folds, "near_duplicate_groups", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(folds, "_groups_memo", {})
    first = make_fold_split(data, 5, 0, 0, GROUPING)
    second = make_fold_split(data, 5, 3, 0, GROUPING)
    assert len(calls) == 1 and torch.equal(first[1], second[1]) and torch.equal(first[2], second[2])
    make_fold_split(data, 5, 0, 0, {**GROUPING, "threshold": 5.0})
    assert len(calls) == 2  # other parameters: grouped again


def test_the_grouping_is_reused_from_beside_the_image_cache_by_another_process(data, monkeypatch, tmp_path):
    import dataclasses

    import handgestures.data.stored_groups as folds

    cached = dataclasses.replace(data, cache_file=tmp_path / "hands-abc.pt")
    calls = []
    real = folds.near_duplicate_groups
    monkeypatch.setattr(folds, "near_duplicate_groups", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(folds, "_groups_memo", {})
    first = groups_of(cached, GROUPING)
    stored = list(tmp_path.glob("groups-hands-abc-*.pt"))
    assert len(calls) == 1 and len(stored) == 1
    monkeypatch.setattr(folds, "_groups_memo", {})  # a new process: memory is empty, the file is not
    assert torch.equal(groups_of(cached, GROUPING), first) and len(calls) == 1
    monkeypatch.setattr(folds, "_groups_memo", {})
    stored[0].write_bytes(b"not a torch file")  # unreadable: recomputed, the same groups
    assert torch.equal(groups_of(cached, GROUPING), first) and len(calls) == 2
    monkeypatch.setattr(folds, "_groups_memo", {})
    groups_of(cached, {**GROUPING, "threshold": 5.0})  # other parameters: their own file
    assert len(calls) == 3 and len(list(tmp_path.glob("groups-hands-abc-*.pt"))) == 2


def test_the_config_refuses_folds_of_the_random_split_and_folds_out_of_range(tmp_path):
    for overrides, expected in (
        (["data.folds=5"], "data.folds=5: expected null with data.split=random"),
        (["data.split=grouped", "data.folds=1"], "data.folds=1: expected an integer >= 2"),
        (["data.split=grouped", "data.folds=5", "data.fold=5"], "data.fold=5: expected an integer in [0, 4]"),
    ):
        with pytest.raises(Exception, match=expected.replace("[", r"\[").replace("]", r"\]")):
            validate_config(compose_train(overrides, tmp_path))
    validate_config(compose_train(["data.split=grouped", "data.folds=5", "data.fold=4"], tmp_path))


@pytest.mark.slow
def test_a_fold_run_records_its_fold_in_split_csv_and_metrics_json(tmp_path, monkeypatch):
    from handgestures.training.train import train

    monkeypatch.setenv("HANDGESTURES_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cfg = compose_train([*TINY, "data.builtin_size=480", "epochs=1", "trainer.limit_train_batches=2", "logger=none",
                         "data.split=grouped", "data.folds=3", "data.fold=1"], out)  # fmt: skip
    train(cfg)
    record = json.loads((out / "metrics.json").read_text())
    assert (record["split"], record["folds"], record["fold"]) == ("grouped", 3, 1)
    from handgestures.runfolder.checkpoints import safe_load

    described = safe_load(out / record["best_checkpoint"])["hyper_parameters"]["description"]["split"]
    assert described.startswith("grouped: ") and "fold 1 of 3 as the test set" in described
    rows = list(csv.DictReader((out / "split.csv").open()))
    assert {r["fold"] for r in rows} == {"0", "1", "2"}
    assert all((r["split"] == "test") == (r["fold"] == "1") for r in rows)
    by_group = {}
    for r in rows:
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_group.values())


def test_the_report_reads_a_fold_set_as_folds_with_the_corrected_interval(tmp_path):
    """Hand-made metrics.json of a 5-fold set: per-fold replicates, the mean over folds, Nadeau-Bengio's interval."""
    from handgestures.analysis.report import aggregate
    from handgestures.analysis.runs import load_runs
    from handgestures.analysis.stats import cv_ratio, mean_ci, paired_differences, tag_protocols
    from handgestures.analysis.study import TABLES

    accs = {"base": [0.97, 0.98, 0.96, 0.99, 0.975], "augmented": [0.95, 0.97, 0.94, 0.96, 0.955]}
    for data, values in accs.items():
        for fold, acc in enumerate(values):
            folder = tmp_path / f"carlosnet-{data}-fold{fold}-seed0-job{fold}"
            folder.mkdir()
            metrics = {k: acc for k in ("train/acc", "val/acc", "test/acc", "train_aug/acc", "val_aug/acc",
                                        "test_aug/acc")}  # fmt: skip
            metrics.update({k.replace("acc", "loss"): 0.1 for k in list(metrics)})
            (folder / "metrics.json").write_text(json.dumps({
                "model": "carlosnet", "data": data, "seed": 0, "status": "done", "split": "grouped", "folds": 5,
                "fold": fold, "metrics": metrics}))  # fmt: skip
    runs = tag_protocols(load_runs(tmp_path))
    assert {r.data for r in runs} == {"base_cv5", "augmented_cv5"}
    assert sorted(r.replicate for r in runs if r.data == "base_cv5") == [(0, f) for f in range(5)]
    base = next(t for t in TABLES if t.name == "base")
    cells = aggregate(runs, base)
    label = next(k for k in cells if "cross-validation" in k)
    test = cells[label][[key for _, key in base.columns].index("test/acc")]
    plain = mean_ci(accs["base"], bounds=(0, 1))
    assert test.n == 5 and test.mean == pytest.approx(sum(accs["base"]) / 5)
    ratio = (1 / 5) / (1 - 1 / 5 - 1 / 6)
    assert cv_ratio("base_cv5") == pytest.approx(ratio)
    widened = (test.ci_high - test.ci_low) / (plain["high"] - plain["low"])
    assert widened == pytest.approx(((1 / 5 + ratio) / (1 / 5)) ** 0.5, rel=1e-6)  # Nadeau-Bengio, not s/sqrt(n)
    diffs = [d for d in paired_differences(runs) if d["comparison"].startswith("CarlosNet: augmented - base (cv5")]
    test_diff = next(d for d in diffs if d["metric"] == "test/acc")
    assert test_diff["n"] == 5 and test_diff["seeds"] == [(0, f) for f in range(5)]
    assert test_diff["mean"] == pytest.approx(sum(a - b for a, b in zip(accs["augmented"], accs["base"])) / 5)
    from handgestures.analysis.report import build_report

    report = build_report(tmp_path, tmp_path / "report").read_text()
    assert "Nadeau and Bengio's corrected variance" in report and "by fold and seed" in report
    assert "| carlosnet | base_cv5 | 0, fold 3 | done |" in report  # one row per fold
    with (tmp_path / "report" / "runs.csv").open() as fh:
        assert sorted((r["data"], r["fold"]) for r in csv.DictReader(fh)) == sorted(
            (d, str(f)) for d in ("base_cv5", "augmented_cv5") for f in range(5)
        )


@pytest.mark.slow
def test_experiment_cv_runs_every_fold_as_one_sweep_and_the_report_reads_them(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import ROOT

    sweep = tmp_path / "cv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HANDGESTURES_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "train.py", "-m", "experiment=cv", "model=carlosnet", "data=base", "data.folds=3",
           "data.fold=range(3)", *TINY, "data.builtin_size=480", "epochs=1", "trainer.limit_train_batches=2",
           "logger=none", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    try:  # the cluster extra: its joblib launcher runs two folds at once, each in its own process
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401

        cmd += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    except ImportError:
        pass
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list((tmp_path / "cache").glob("groups-hands-*.pt"))) == 1  # one grouping, stored for every fold
    records = sorted((json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")), key=lambda r: r["fold"])
    assert [(r["folds"], r["fold"], r["status"]) for r in records] == [(3, f, "done") for f in range(3)]
    assert sorted(p.name.split("-")[2] for p in sweep.glob("*-job*")) == ["fold0", "fold1", "fold2"]
    from handgestures.analysis.report import build_report

    text = build_report(sweep, tmp_path / "report").read_text()
    assert "grouped 3-fold cross-validation" in text and "n=3" in text


@pytest.mark.slow
def test_a_killed_fold_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path):
    """SIGKILL in the second epoch of fold 1, then ``resume=``: the same metrics.json, fold recorded."""
    import os
    import subprocess
    import sys

    from helpers import ROOT

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HANDGESTURES_CACHE": str(tmp_path / "c")}
    args = ["data.split=grouped", "data.folds=3", "data.fold=1", *TINY, "data.builtin_size=480", "epochs=2",
            "trainer.precision=32-true", "logger=none"]  # fmt: skip

    def run(*cmd):
        return subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run("train.py", *args, f"hydra.run.dir={whole}").returncode == 0
    assert run("tests/kill_driver.py", "KILL", "2", "3", *args, f"hydra.run.dir={killed}").returncode == -9
    assert (
        not (killed / "metrics.json").exists() or json.loads((killed / "metrics.json").read_text())["status"] != "done"
    )
    out = run("train.py", f"resume={killed}")
    assert out.returncode == 0, out.stderr[-3000:]
    timing = {"fit_seconds", "startup_seconds", "train_images_per_second", "eval_seconds", "wall_seconds",
              "resumed_from", "best_checkpoint"}  # fmt: skip
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    assert (b["folds"], b["fold"], b["status"]) == (3, 1, "done") and b["resumed_from"]
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert (whole / "split.csv").read_text() == (killed / "split.csv").read_text()
