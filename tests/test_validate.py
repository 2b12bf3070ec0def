"""validate_config: every bad key named with its value and what is allowed, before any data is read."""

import copy
import subprocess
import sys

import pytest
from helpers import ROOT, TINY, compose_train
from omegaconf import OmegaConf, open_dict

from handgestures.errors import UserError
from handgestures.training.validate import allowed_top_level_keys, validate_config

BAD = [  # (key, value as an override gives it, text the message must hold); "+" adds a key
    ("epochs", -1, "epochs=-1: expected an integer >= 1"),
    ("epochs", 0, "epochs=0: expected an integer >= 1"),
    ("epochs", 2.5, "epochs=2.5: expected an integer"),
    ("seed", "abc", "seed='abc': expected an integer in [0, 4294967295]"),
    ("seed", -3, "seed=-3: expected an integer in [0,"),
    ("optimizer.lr", 0, "optimizer.lr=0: expected a finite number > 0"),
    ("optimizer.lr", float("nan"), "optimizer.lr=nan: expected a finite number > 0"),
    ("optimizer.momentum", 1.0, "optimizer.momentum=1.0: expected a number in [0, 1)"),
    ("batch_size", 0, "batch_size=0: expected an integer >= 1"),
    ("data.eval_batch_size", -5, "data.eval_batch_size=-5: expected an integer >= 1"),
    ("data.augmentation.zoom_range", 1.0, "data.augmentation.zoom_range=1.0: expected a number in [0, 1)"),
    ("data.augmentation.zoom_range", [0, 1.2], "data.augmentation.zoom_range=[0, 1.2]: expected"),
    (
        "data.augmentation.width_shift_range",
        128,
        "width_shift_range=128: expected a fraction in [0, 1), or pixels below",
    ),
    ("data.augmentation.height_shift_range", -0.1, "height_shift_range=-0.1: expected"),
    ("data.augmentation.rotation_range", 400, "rotation_range=400: expected degrees, a number in [0, 360]"),
    ("data.augmentation.shear_range", 90, "shear_range=90: expected degrees, a number in [0, 90)"),
    ("data.augmentation.fill_mode", "reflect", "fill_mode='reflect': expected one of nearest, constant"),
    ("data.augmentation.cval", 300, "cval=300: expected a number in [0, 255]"),
    ("data.augmentation.semantics", "keras4", "semantics='keras4': expected one of keras2, kp112, keras3, k3"),
    ("data.augmentation.horizontal_flip", "maybe", "horizontal_flip='maybe': expected true or false"),
    ("trainer.precision", 17, "trainer.precision=17: expected one of auto,"),
    ("trainer.accelerator", "abacus", "trainer.accelerator='abacus': expected one of auto, cpu, gpu"),
    (
        "trainer.gradient_clip_val",
        -1,
        "trainer.gradient_clip_val=-1: expected null (no clipping) or a finite number > 0",
    ),
    ("trainer.gradient_clip_val", float("inf"), "trainer.gradient_clip_val=inf: expected null (no clipping)"),
    ("trainer.gradient_clip_algorithm", "max", "trainer.gradient_clip_algorithm='max': expected null, norm or value"),
    ("trainer.limit_train_batches", 1.5, "trainer.limit_train_batches=1.5: expected null, a number of batches"),
    ("data.root", "", "data.root='': expected a folder of Fingers PNGs, or null for the built-in hands"),
    ("data.root", "/no/such/folder", "data.root='/no/such/folder': expected an existing folder"),
    ("data.on_error", "ignore", "data.on_error='ignore': expected one of raise, skip"),
    ("data.builtin_size", 10, "data.builtin_size=10: expected an integer >= 72"),
    ("data.image_size", 64, "data.image_size=64: expected 128"),
    ("data.split", "stratified", "data.split='stratified': expected one of random, grouped"),
    ("+data.grouping.radius", 3, "unknown key 'data.grouping.radius'"),
    ("data.cache_max_gb", -1, "data.cache_max_gb=-1: expected a number of GB >= 0"),
    (
        "+ckpt_path",
        "outputs/x/last.ckpt",
        "unknown key 'ckpt_path' (as +ckpt_path=... adds it); valid keys: batch_size,",
    ),
    ("+data.rooot", "x", "unknown key 'data.rooot'"),
    ("+data.epochs", 5, "unknown key 'data.epochs' (as +data.epochs=... adds it); valid keys of data: augment_train"),
    ("+model.dropout", 0.5, "unknown key 'model.dropout'"),
    ("+data.augmentation.brightness_range", [0.5, 1], "unknown key 'data.augmentation.brightness_range'"),
]


@pytest.fixture(scope="module")
def sound_cfg(tmp_path_factory):
    return compose_train(TINY, tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize("key,value,expected", BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_each_bad_value_is_named_with_what_is_allowed(key, value, expected, sound_cfg):
    cfg = copy.deepcopy(sound_cfg)
    with open_dict(cfg):
        OmegaConf.update(cfg, key.lstrip("+"), value, force_add=key.startswith("+"))
    with pytest.raises(UserError) as err:
        validate_config(cfg)
    assert expected in str(err.value)
    assert ("the epochs are the top-level key: epochs=N" in str(err.value)) == (key == "+data.epochs")
    assert str(err.value).startswith("invalid configuration: ")  # this one only: the rest is sound


def test_hydra_overrides_reach_the_same_checks(tmp_path):
    """As typed on the command line: ``data.root=`` is an empty string, ``+ckpt_path`` a new key."""
    cfg = compose_train(TINY + ["data.root=", "+ckpt_path=last.ckpt", "seed=abc"], tmp_path)
    with pytest.raises(UserError, match=r"\(3 problems\)") as err:
        validate_config(cfg)
    assert "data.root=''" in str(err.value) and "'ckpt_path'" in str(err.value) and "seed='abc'" in str(err.value)


@pytest.mark.parametrize("model", ["carlosnet", "ivannet"])
@pytest.mark.parametrize("data", ["base", "augmented"])
def test_the_study_configs_are_valid(model, data, tmp_path):
    cfg = compose_train([f"model={model}", f"data={data}"], tmp_path)
    validate_config(cfg)
    cfg.data.root = str(tmp_path)  # an existing folder is fine here: its files are read later
    validate_config(cfg)


def test_every_problem_is_listed_at_once(sound_cfg):
    cfg = copy.deepcopy(sound_cfg)
    with open_dict(cfg):
        cfg.epochs, cfg.optimizer.lr, cfg.ckpt_path, cfg.data.augmentation.fill_mode = 0, -1, "x", "wrap"
    with pytest.raises(UserError, match=r"\(4 problems\)") as err:
        validate_config(cfg)
    for key in ("epochs=0", "optimizer.lr=-1", "'ckpt_path'", "fill_mode='wrap'"):
        assert key in str(err.value)


def test_valid_keys_follow_the_config_files():
    keys = allowed_top_level_keys()
    assert {"seed", "epochs", "batch_size", "data", "model", "optimizer", "trainer", "experiment"} <= keys
    assert "ckpt_path" not in keys


def test_bad_override_stops_the_command_before_any_data(tmp_path):
    """``python train.py`` with a bad override: exit 1, the message, and no image was generated or read."""
    cache = tmp_path / "cache"
    cmd = [sys.executable, "train.py", "epochs=-1", "+ckpt_path=last.ckpt", f"hydra.run.dir={tmp_path / 'run'}", *TINY]
    env = {"PATH": "/usr/bin:/bin", "HANDGESTURES_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "epochs=-1: expected an integer >= 1" in out and "unknown key 'ckpt_path'" in out
    assert not cache.exists()  # the built-in hands were never generated
