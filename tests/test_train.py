"""train(cfg) end to end on small built-in data: learning, outputs, seeds, TensorBoard."""

import json
import math
import subprocess
import sys

import pytest
from helpers import ROOT, TINY, compose_train
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handgestures.training.tb_layout import curve_tag, final_tag
from handgestures.training.train import resolve_precision, train

EVAL_SETS = ["train", "val", "test", "train_aug", "val_aug", "test_aug"]


def read_events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """CarlosNet on 1,200 built-in hands; a higher learning rate and momentum so a few epochs suffice."""
    out = tmp_path_factory.mktemp("learned")
    cfg = compose_train(
        TINY + ["data.builtin_size=1200", "epochs=6", "optimizer.lr=0.05", "optimizer.momentum=0.9", "logger=none"], out
    )
    return out, train(cfg)


def test_short_training_beats_chance(learned_run):
    out, metrics = learned_run
    assert metrics["test/acc"] > 0.5, metrics  # chance is 1/6
    assert metrics["test/loss"] < math.log(6) - 0.3
    rows = (out / "epochs.csv").read_text().splitlines()
    assert rows[0].split(",")[:6] == ["epoch", "step", "train/loss", "val/loss", "train/acc", "val/acc"]
    assert len(rows) == 7
    first, last = (list(map(float, r.split(","))) for r in (rows[1], rows[-1]))
    assert last[2] < first[2]  # training loss went down


def test_metrics_json_holds_the_best_checkpoint_results(learned_run):
    out, metrics = learned_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "done" and saved["model"] == "carlosnet" and saved["data"] == "base"
    assert set(saved["metrics"]) == {f"{s}/{m}" for s in EVAL_SETS for m in ("acc", "loss")}
    assert saved["metrics"] == metrics
    assert saved["best_val_acc"] == pytest.approx(metrics["val/acc"], abs=1e-6)  # best ckpt was the one evaluated
    confusion = saved["confusion"]["test"]
    n_test = 12 * (1200 // 12 // 6)  # floor(1/6) of each (class, hand) stratum
    assert sum(map(sum, confusion)) == n_test  # every test image counted once
    assert sum(confusion[i][i] for i in range(6)) / n_test == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert any(p.name.startswith("best-") for p in (out / "checkpoints").iterdir())
    # the default precision "auto" became the hardware's choice, recorded in both files
    assert saved["precision"] == resolve_precision("auto") != "auto"
    assert f"precision: {saved['precision']}" in (out / "config.yaml").read_text()


def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    overrides = TINY + ["epochs=1", "logger=none", "callbacks.model_checkpoint.save_last=false"]
    a = train(compose_train(overrides + ["seed=0"], tmp_path / "a"))
    b = train(compose_train(overrides + ["seed=0"], tmp_path / "b"))
    c = train(compose_train(overrides + ["seed=1"], tmp_path / "c"))
    assert a == b
    assert a != c
    assert (tmp_path / "a" / "epochs.csv").read_text().split("\n")[1].split(",")[:6] == \
        (tmp_path / "b" / "epochs.csv").read_text().split("\n")[1].split(",")[:6]  # fmt: skip


def test_train_py_subprocess_writes_metrics_and_events(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", "data=augmented", "epochs=2", "trainer.limit_train_batches=3",
           f"hydra.run.dir={run_dir}", *TINY]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["data"] == "augmented" and metrics["epochs_run"] == 2
    console = out.stdout + out.stderr
    assert console.count("set         accuracy") == 1  # the results table, once
    for noise in ("Tip:", "litlogger", "LeafSpec", "not supported by the model summary"):
        assert noise not in console, noise
    table = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines() if line.strip()}
    assert float(table["test_aug"][0]) == pytest.approx(metrics["metrics"]["test_aug/acc"], abs=1e-4)
    events = read_events(run_dir / "tensorboard")
    tags = events.Tags()
    rows = [line.split(",") for line in (run_dir / "epochs.csv").read_text().splitlines()]
    assert not [p for p in (run_dir / "tensorboard").iterdir() if p.is_dir()]  # one TensorBoard run per run
    for split in ("train", "val"):  # the split in the tag: curves/<metric>/<split>
        for metric in ("acc", "loss"):
            column = rows[0].index(f"{split}/{metric}")
            assert [(e.step, round(e.value, 5)) for e in events.Scalars(curve_tag(split, metric))] == \
                [(int(r[0]), round(float(r[column]), 5)) for r in rows[1:]], (split, metric)  # fmt: skip
    plain = [t for t in tags["scalars"] if not t.startswith("health/")]  # health: TrainingHealth's
    assert sorted(plain) == sorted(
        [curve_tag(s, m) for s in ("train", "val") for m in ("acc", "loss")]
        + [final_tag(name, m) for name in EVAL_SETS for m in ("acc", "loss")]
    )
    for name in EVAL_SETS:  # the final metrics: one point per set, at the last epoch
        final = events.Scalars(final_tag(name, "acc"))
        assert [(e.step, round(e.value, 6)) for e in final] == \
            [(metrics["epochs_run"], round(metrics["metrics"][f"{name}/acc"], 6))]  # fmt: skip
    assert set(tags["images"]) == {"samples/augmentation", "results/confusion_test"}
    # the HPARAMS tab: the run's choices and the real final metrics, no placeholder hp_metric
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    ).session_start_info
    assert start.hparams["model"].string_value == "carlosnet" and start.hparams["data"].string_value == "augmented"
    assert start.hparams["epochs"].number_value == 2
    assert start.hparams["precision"].string_value == metrics["precision"] == resolve_precision("auto")
    assert "hp_metric" not in tags["scalars"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        events.SummaryMetadata("_hparams_/experiment").plugin_data.content
    ).experiment
    columns = {(m.name.group, m.name.tag): m.display_name for m in experiment.metric_infos}
    assert columns == {
        ("", f"final/{long}/{name}"): f"{name} {long}" for name in EVAL_SETS for long in ("accuracy", "loss")
    }  # HPARAMS reads each from the run's own scalars (group "")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
