"""Config composition: every model x data choice, the study's numbers, overrides, errors."""

import subprocess
import sys

import pytest
from helpers import ROOT, compose_train
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from handgestures.train import build_datamodule


@pytest.mark.parametrize("model", ["carlosnet", "ivannet"])
@pytest.mark.parametrize("data", ["base", "augmented"])
def test_all_four_combinations_compose(model, data, tmp_path):
    cfg = compose_train([f"model={model}", f"data={data}"], tmp_path)
    net = instantiate(cfg.model)
    assert type(net).__name__.lower() == model
    assert cfg.trainer.max_epochs == (10 if data == "base" else 30)
    assert cfg.data.batch_size == 32 and cfg.optimizer.lr == 0.01 and cfg.optimizer.momentum == 0.0
    dm = build_datamodule(cfg.data)
    assert dm.augment_train is (data == "augmented")
    assert dm.keras_params == {
        "rotation_range": 90, "width_shift_range": 0.2, "height_shift_range": 0.2, "shear_range": 0.0,
        "zoom_range": 0.2, "horizontal_flip": True, "vertical_flip": True,
    }  # fmt: skip
    assert dm.warp_options["semantics"] == "keras2" and dm.warp_options["fill_mode"] == "nearest"
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_overrides(tmp_path):
    cfg = compose_train(["data=augmented", "epochs=3", "seed=0", "trainer.limit_train_batches=5",
                         "trainer.precision=bf16-mixed", "optimizer.lr=0.05"], tmp_path)  # fmt: skip
    assert cfg.trainer.max_epochs == 3 and cfg.seed == 0 and cfg.data.seed == 0
    trainer = instantiate(cfg.trainer, logger=False)
    assert trainer.limit_train_batches == 5 and trainer.precision == "bf16-mixed"
    assert instantiate(cfg.optimizer).keywords["lr"] == 0.05


@pytest.mark.parametrize(("group", "bad", "valid"), [("model", "resnet", ["carlosnet", "ivannet"]),
                                                     ("data", "mnist", ["augmented", "base"])])  # fmt: skip
def test_unknown_choice_lists_valid_ones(group, bad, valid, tmp_path):
    with pytest.raises(ConfigCompositionException) as err:
        compose_train([f"{group}={bad}"], tmp_path)
    message = str(err.value)
    assert bad in message and all(v in message for v in valid)


def test_unknown_choice_from_the_command_line():
    out = subprocess.run([sys.executable, "train.py", "model=resnet"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert "Could not find 'model/resnet'" in out.stderr and "carlosnet" in out.stderr and "ivannet" in out.stderr


def test_trainer_group_lists_every_trainer_argument(tmp_path):
    import inspect

    import lightning as L

    cfg = compose_train([], tmp_path)
    expected = set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "model_registry"}
    assert expected <= set(cfg.trainer), f"missing Trainer arguments: {sorted(expected - set(cfg.trainer))}"
