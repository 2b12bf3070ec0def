"""Config composition: every model x data choice, the study's numbers, overrides, errors."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, compose_train
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

import handgestures.runtime as runtime_module
from handgestures.training.train import build_datamodule, resolve_config_precision, resolve_precision


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
    fp32 = (model, data) == ("ivannet", "augmented")  # conf/model_data/ivannet_augmented.yaml
    assert cfg.trainer.precision == ("32-true" if fp32 else "auto")
    assert (
        resolve_config_precision(cfg) == cfg.trainer.precision in (("32-true",) if fp32 else ("bf16-mixed", "32-true"))
    )
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("sweep", [False, True])
def test_ivannet_augmented_trains_in_fp32_unless_told_otherwise(sweep, tmp_path):
    """The one combination bf16 destabilised (docs/bf16.md) defaults to fp32; an explicit choice still wins."""
    chosen = compose_train(["model=ivannet", "data=augmented", "trainer.precision=bf16-mixed"], tmp_path)
    assert chosen.trainer.precision == "bf16-mixed"
    extra = ["experiment=study"] if sweep else ["trainer=ddp"]
    assert compose_train(["model=ivannet", "data=augmented", *extra], tmp_path).trainer.precision == "32-true"
    assert compose_train(["model=ivannet", "data=base", *extra], tmp_path).trainer.precision == "auto"


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


@pytest.mark.parametrize(
    ("accelerator", "cuda", "mps", "bf16", "expected"),
    [
        ("auto", False, False, {"cpu": True}, "bf16-mixed"),      # AVX-512 BF16 / AMX CPU
        ("auto", False, False, {"cpu": False}, "32-true"),        # a CPU that would emulate bf16
        ("cpu", True, False, {"cpu": True, "cuda": False}, "bf16-mixed"),  # CPU asked for: the GPU does not matter
        ("auto", True, False, {"cpu": False, "cuda": True}, "bf16-mixed"),  # Ampere or newer
        ("gpu", True, False, {"cpu": True, "cuda": False}, "32-true"),      # older GPU: no emulated bf16
        ("auto", False, True, {"cpu": True}, "32-true"),          # Apple MPS
        ("mps", False, True, {"cpu": True}, "32-true"),
    ],
)  # fmt: skip
def test_auto_precision_follows_the_hardware(monkeypatch, accelerator, cuda, mps, bf16, expected):
    monkeypatch.setattr(runtime_module.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(runtime_module.torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(runtime_module, "native_bf16", lambda device: bf16[device])
    assert resolve_precision("auto", accelerator) == expected
    for explicit in ("32-true", "bf16-mixed", "16-mixed"):  # anything else is passed through untouched
        assert resolve_precision(explicit, accelerator) == explicit


def test_native_bf16_probe_matches_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("needs /proc/cpuinfo")
    flags = cpuinfo.read_text().split()
    assert runtime_module.native_bf16("cpu") == ("avx512_bf16" in flags or "amx_bf16" in flags)
