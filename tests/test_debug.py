"""debug= presets (conf/debug/) each end as documented, and the config tree printed at the start of a run."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from helpers import TINY, compose_train
from omegaconf import OmegaConf
from torch.utils.data import SequentialSampler

from handgestures.data.samplers import SequentialBatches
from handgestures.training.config_tree import plain_tree, print_config_tree
from handgestures.training.train import train
from handgestures.training.validate import validate_config

QUICK = [*TINY, "trainer.precision=32-true"]


def run(tmp_path: Path, *overrides: str) -> tuple[Path, dict]:
    out = tmp_path / "run"
    cfg = compose_train([*QUICK, *overrides], out)
    validate_config(cfg)
    return out, train(cfg)


def epochs(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "epochs.csv").open()))


def test_default_trains_one_epoch_of_three_batches_and_prints_the_config_tree(tmp_path, capsys):
    out, metrics = run(tmp_path, "debug=default")
    assert [(r["epoch"], r["step"]) for r in epochs(out)] == [("1", "3")]
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "done" and "test/acc" in metrics
    printed = capsys.readouterr().out
    assert f"config ({out / 'config.yaml'})" in printed
    assert "+-- model" in printed and "_target_: handgestures.models" in printed
    assert "limit_train_batches: 3" in printed and "detect_anomaly: true" in printed
    saved = OmegaConf.load(out / "config.yaml")  # still saved, resolved
    assert saved.trainer.limit_train_batches == 3 and saved.paths.output_dir == str(out)


def test_limit_trains_three_epochs_of_five_batches(tmp_path):
    out, _ = run(tmp_path, "debug=limit")
    assert [(r["epoch"], r["step"]) for r in epochs(out)] == [("1", "5"), ("2", "10"), ("3", "15")]
    assert json.loads((out / "metrics.json").read_text())["status"] == "done"


def test_overfit_uses_the_same_two_batches_every_epoch(tmp_path, recwarn):
    out, _ = run(tmp_path, "debug=overfit", "epochs=2")  # the preset's 20 epochs, cut for the test
    assert not [w for w in recwarn if "overfit" in str(w.message)]  # Lightning kept the loaders' own batches
    assert list(SequentialBatches(5, 2)) == [[0, 1], [2, 3], [4]] and isinstance(
        SequentialBatches(5, 2), SequentialSampler
    )
    assert [(r["epoch"], r["step"]) for r in epochs(out)] == [("1", "2"), ("2", "4")]
    assert json.loads((out / "metrics.json").read_text())["status"] == "done"


def test_profiler_writes_its_report_into_the_run_folder(tmp_path):
    out, _ = run(tmp_path, "debug=profiler")
    report = (out / "fit-profile.txt").read_text()
    assert "Profiler Report" in report and "run_training_batch" in report
    assert (out / "test-profile.txt").is_file()


def test_fdr_is_a_dry_run_that_ends_cleanly_without_metrics(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="handgestures.training.train"):
        out, metrics = run(tmp_path, "debug=fdr")
    assert metrics == {}
    assert not (out / "metrics.json").exists() and (out / "config.yaml").is_file()
    assert [(r["epoch"], r["step"]) for r in epochs(out)] == [("1", "1")]
    assert "dry run (trainer.fast_dev_run=True)" in caplog.text and "no metrics.json" in caplog.text


def test_the_tree_is_rich_on_a_terminal_and_plain_text_elsewhere():
    cfg = compose_train([*QUICK, "logger=csv"], Path("/tmp/run"))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    print_config_tree(cfg, stream=terminal)
    print_config_tree(cfg, stream=pipe)
    assert "──" in terminal.getvalue() and "logger" in terminal.getvalue()
    assert pipe.getvalue().rstrip("\n") == plain_tree(cfg) and "──" not in pipe.getvalue()
    names = [line[4:] for line in plain_tree(cfg).splitlines() if line[:4] in ("+-- ", "`-- ")]
    assert names[:7] == ["settings", "model", "data", "optimizer", "trainer", "callbacks", "logger"]
