"""Training health: dead ReLU units, gradient norms and logits per epoch; where a collapse happened."""

from __future__ import annotations

import csv
import json
import math

import lightning as L
import pytest
import torch
from helpers import TINY, compose_train

import handgestures.training.train as train_module
from handgestures.models import CarlosNet, IvanNet
from handgestures.training.health import (
    ALL_STEPS_FILE,
    STEPS_FILE,
    append_steps,
    dead_fractions,
    diagnose,
    diagnosis_text,
    layer_names,
)


def test_layers_are_named_in_forward_order():
    params, relus = layer_names(IvanNet())
    assert list(params) == [f"conv{i}" for i in range(1, 8)] + ["fc1", "fc2", "out"]
    assert list(relus) == [f"conv{i}" for i in range(1, 8)] + ["fc1", "fc2"]
    assert [p.shape for p in params["fc1"]] == [torch.Size([600, 9680]), torch.Size([600])]
    params, relus = layer_names(CarlosNet())
    assert list(params) == ["conv1", "conv2", "conv3", "out"] and list(relus) == ["conv1", "conv2", "conv3"]


def test_a_layer_pushed_below_zero_is_fully_dead_and_the_logits_constant():
    torch.manual_seed(0)
    net = IvanNet()
    _, relus = layer_names(net)
    probe = torch.rand(8, 1, 128, 128)
    dead, max_logit = dead_fractions(net, relus, probe)
    assert set(dead) == set(relus) and all(0.0 <= v < 1.0 for v in dead.values())
    with torch.no_grad():
        assert max_logit == pytest.approx(float(net(probe).abs().max()), rel=1e-6)
        net.classifier[1].bias.fill_(-1e4)  # fc1: every neuron negative for every image
        net.classifier[5].bias.copy_(torch.arange(6.0))
    dead, max_logit = dead_fractions(net, relus, probe)
    assert dead["fc1"] == 1.0 and dead["fc2"] == 1.0  # fc2's input is zero and its bias 0: dead too
    assert max_logit == pytest.approx(5.0)  # the logits are the output bias alone
    assert dead["conv1"] < 1.0


def test_a_channel_alive_at_one_position_of_one_image_is_alive():
    relu = torch.nn.ReLU()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), relu)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.copy_(torch.tensor([-0.99, -2.0]))
    probe = torch.zeros(3, 1, 4, 4)
    probe[2, 0, 3, 3] = 1.0  # channel 0 positive at one position of one image; channel 1 never
    dead, _ = dead_fractions(net, {"conv1": relu}, probe)
    assert dead == {"conv1": 0.5}


def test_diagnose_names_the_first_dead_layer_and_the_step_its_gradient_stopped():
    ln6 = math.log(6)
    losses = [ln6, 1.2, 0.8, 0.7, 1.5, ln6 + 0.01, ln6, ln6 - 0.02, ln6]
    norms = [0.5, 0.4, 0.3, 0.3, 0.0, 0.2, 0.0, 0.0, 0.0]  # fc1's last non-zero gradient at index 5
    steps = [{"epoch": 1 + i // 5, "step": 100 + i, "loss": v, "grad_norm/fc1": n}
             for i, (v, n) in enumerate(zip(losses, norms))]  # fmt: skip
    result = diagnose(steps, {"conv1": 0.1, "fc1": 1.0, "fc2": 1.0})
    assert (result["epoch"], result["step"], result["loss_before"]) == (2, 106, ln6 + 0.01)
    assert result["layer"] == "fc1" and result["dead_layers"] == ["fc1", "fc2"]
    no_dead = diagnose(steps, {"conv1": 0.1, "fc1": 0.9})  # no dead layer: where the loss reached ln 6 and stayed
    assert (no_dead["layer"], no_dead["step"]) == (None, 105)
    assert diagnose(steps[:4], {"fc1": 0.2})["step"] is None


def test_diagnose_names_the_runaway_step_and_layer_when_nothing_died():
    # A fall of the validation accuracy alone: the training loss moves on, no layer dies; one step's
    # gradient ran away, in conv1 most (20x its median) though fc1's norm is larger in absolute terms.
    steps = [{"epoch": 3, "step": 750 + i, "loss": 1.5 + 0.01 * i, "grad_norm/conv1": 0.5, "grad_norm/fc1": 2.0}
             for i in range(9)]  # fmt: skip
    steps[6].update({"grad_norm/conv1": 10.0, "grad_norm/fc1": 4.0, "loss": 2.1})
    result = diagnose(steps, {"conv1": 0.05, "fc1": 0.3})
    assert (result["layer"], result["step"]) == (None, None)
    run = result["runaway"]
    assert (run["epoch"], run["step"], run["layer"], run["loss"]) == (3, 756, "conv1", 2.1)
    assert run["grad_norm"] == pytest.approx(math.hypot(10.0, 4.0))
    assert run["ratio"] == pytest.approx(math.hypot(10.0, 4.0) / math.hypot(0.5, 2.0))
    text = diagnosis_text(result)
    assert "did not stay at ln 6 and no ReLU layer is fully dead" in text and "reached ln" not in text
    assert "at epoch 3, step 756 (loss 2.100), furthest above its median in conv1" in text
    assert diagnose([{"epoch": 1, "step": 1, "loss": 1.0}], {})["runaway"] is None  # no per-layer norms kept


def test_diagnosis_text_says_what_diagnose_found():
    ln6 = math.log(6)
    steps = [{"epoch": 2, "step": 10 + i, "loss": v, "grad_norm/fc1": n}
             for i, (v, n) in enumerate([(1.0, 1.0), (1.2, 9.0), (ln6, 0.0), (ln6, 0.0)])]  # fmt: skip
    dead = diagnosis_text(diagnose(steps, {"conv1": 0.1, "fc1": 1.0}))
    assert dead.startswith("ReLU layer fc1 is fully dead, its gradient zero from epoch 2, step 12")
    assert "9.0, 18x the median step, at epoch 2, step 11" in dead
    flat = diagnosis_text(diagnose(steps, {"fc1": 0.4}), num_classes=6)
    assert flat.startswith("the training loss reached ln 6 at epoch 2, step 12 and stayed; no ReLU layer")


class KillFirstLayer(L.Callback):
    """At the start of epoch ``epoch`` (1-based), pushes conv1's bias far below zero: a dead layer."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            with torch.no_grad():
                pl_module.net.features[0].bias.fill_(-1e4)


@pytest.fixture(scope="module")
def collapsed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse")
    cfg = compose_train([*TINY, "epochs=3", "trainer.limit_train_batches=3", "trainer.precision=32-true", "optimizer.lr=0.05",
                         "guards.collapse.min_best=0.0", "model.fused=false",
                         "callbacks.training_health.write_steps=true"], out)  # fmt: skip
    build = train_module.build_run
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANDGESTURES_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.setattr(train_module, "build_run", lambda c, extra=(): build(c, (*extra, KillFirstLayer(2))))
        train_module.train(cfg)
    return out


def test_epochs_csv_and_tensorboard_carry_the_health_columns(collapsed_run):
    rows = list(csv.DictReader((collapsed_run / "epochs.csv").open()))
    assert len(rows) == 3
    for key in ("dead/conv1", "dead/conv3", "grad_norm/conv1", "grad_norm/out", "max_abs_logit"):
        assert key in rows[0], key
    assert float(rows[0]["dead/conv1"]) < 1.0 and float(rows[0]["grad_norm/conv1"]) > 0
    assert float(rows[1]["dead/conv1"]) == 1.0 and float(rows[2]["dead/conv1"]) == 1.0
    assert float(rows[2]["grad_norm/conv1"]) == 0.0 and float(rows[2]["grad_norm/out"]) > 0  # only the bias learns
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(collapsed_run / "tensorboard")).Reload()
    scalars = events.Tags()["scalars"]
    assert "health/dead/conv1" in scalars and "health/max_abs_logit" in scalars
    assert [e.value for e in events.Scalars("health/dead/conv1")][1:] == [1.0, 1.0]


def test_a_collapse_writes_the_steps_and_names_the_layer(collapsed_run):
    record = json.loads((collapsed_run / "metrics.json").read_text())
    diagnosis = record["collapse"]["diagnosis"]
    assert record["collapse"]["epoch"] == 2 and diagnosis["layer"] == "conv1"
    assert diagnosis["dead_layers"][0] == "conv1" and diagnosis["dead"]["conv1"] == 1.0
    assert diagnosis["steps_file"] == STEPS_FILE.format(epoch=2) == "collapse_steps_epoch002.csv"
    assert not (collapsed_run / STEPS_FILE.format(epoch=3)).exists()  # epoch 3 continues the same fall
    steps = list(csv.DictReader((collapsed_run / STEPS_FILE.format(epoch=2)).open()))
    assert [int(r["epoch"]) for r in steps] == [1] * 3 + [2] * 3  # TINY: 3 batches an epoch, 2 epochs kept
    assert [int(r["step"]) for r in steps] == list(range(1, 7))
    assert all(float(r["grad_norm/conv1"]) == 0.0 for r in steps[3:]) and float(steps[0]["grad_norm/conv1"]) > 0
    assert (diagnosis["epoch"], diagnosis["step"]) == (2, 4)  # conv1 died at the first step of epoch 2


def test_write_steps_keeps_every_step_and_the_epoch_means_are_its_means(collapsed_run):
    steps = list(csv.DictReader((collapsed_run / ALL_STEPS_FILE).open()))
    assert [int(r["step"]) for r in steps] == list(range(1, 10)) and [int(r["epoch"]) for r in steps] == [1] * 3 + [
        2
    ] * 3 + [3] * 3
    kept = list(csv.DictReader((collapsed_run / STEPS_FILE.format(epoch=2)).open()))
    assert steps[:6] == kept  # the same rows the collapse file holds
    epochs = list(csv.DictReader((collapsed_run / "epochs.csv").open()))
    for epoch, row in enumerate(epochs, start=1):
        mine = [float(r["grad_norm/out"]) for r in steps if int(r["epoch"]) == epoch]
        assert math.isclose(sum(mine) / len(mine), float(row["grad_norm/out"]), rel_tol=1e-6)


def test_append_steps_replaces_an_epoch_written_before(tmp_path):
    """A run killed after writing an epoch's steps and resumed from the checkpoint before writes them once."""
    path = tmp_path / ALL_STEPS_FILE
    first = [{"epoch": 1, "step": 1, "loss": 1.5}, {"epoch": 1, "step": 2, "loss": 1.4}]
    append_steps(path, 1, first)
    append_steps(path, 2, [{"epoch": 2, "step": 3, "loss": 1.3}])
    append_steps(path, 2, [{"epoch": 2, "step": 3, "loss": 1.2}])  # epoch 2 again, after a resume
    rows = list(csv.DictReader(path.open()))
    assert [(r["epoch"], r["step"], r["loss"]) for r in rows] == [
        ("1", "1", "1.5"),
        ("1", "2", "1.4"),
        ("2", "3", "1.2"),
    ]


def test_a_run_resumed_from_a_checkpoint_saved_at_an_epochs_last_batch_keeps_its_health_rows(tmp_path):
    """A per-step checkpoint that ends an epoch (scripts/ivannet_replay.py resumes from one, and SIGTERM in an
    epoch's last batch saves one) is restored without Lightning's epoch-start hook: the epoch still ends cleanly."""
    import os
    import shutil
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "run"
    every = ["+callbacks.every_epoch._target_=lightning.pytorch.callbacks.ModelCheckpoint",
             f"+callbacks.every_epoch.dirpath={out}/checkpoints/epochs", "+callbacks.every_epoch.monitor=null",
             "+callbacks.every_epoch.save_top_k=-1", "+callbacks.every_epoch.every_n_train_steps=3",
             "+callbacks.every_epoch.filename='step{step}'", "+callbacks.every_epoch.auto_insert_metric_name=false"]  # fmt: skip
    env = {**os.environ, "HANDGESTURES_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    args = [*TINY, "epochs=2", "trainer.limit_train_batches=3", "trainer.precision=32-true", *every,
            f"hydra.run.dir={out}", "trainer.enable_progress_bar=false"]  # fmt: skip
    subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    first = list(csv.DictReader((out / "epochs.csv").open()))
    shutil.copy2(out / "checkpoints" / "epochs" / "step3.ckpt", out / "checkpoints" / "last.ckpt")  # end of epoch 1
    with (out / "epochs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(first[0]))
        writer.writeheader()
        writer.writerow(first[0])
    (out / "metrics.json").unlink()
    again = subprocess.run([sys.executable, "train.py", f"resume={out}", "trainer.enable_progress_bar=false"],
                           cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    rows = list(csv.DictReader((out / "epochs.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["grad_norm/conv1"]) > 0 and rows[1]["dead/conv1"] == first[1]["dead/conv1"]
