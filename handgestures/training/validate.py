"""``validate_config(cfg)``: every key of a run checked before any data is read.

A mistyped override should cost a second, not a run: this runs before the images are
decoded or the built-in hands generated, and reports every problem at once, each naming
the key, the value given and what is allowed, as one :class:`~handgestures.errors.UserError`.

Unknown keys are refused too (``+ckpt_path=...`` would otherwise be accepted and ignored):
the top level may hold the keys of ``conf/train.yaml``, its config groups and the keys set
by ``# @package _global_`` files; ``data``, ``model``, ``optimizer`` and ``trainer`` may
hold the arguments of their ``_target_`` (and so may each ``logger.<name>``), read from its signature, so a key another part
of the project adds to a constructor is valid without a list to keep in step.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import traceback
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hydra.utils import get_object
from lightning.fabric.plugins.precision.precision import (
    _PRECISION_INPUT_INT,
    _PRECISION_INPUT_STR,
    _PRECISION_INPUT_STR_ALIAS,
)
from lightning.pytorch.accelerators import AcceleratorRegistry
from omegaconf import DictConfig, ListConfig, OmegaConf

from handgestures import CONF_DIR
from handgestures.data.augment.batch import WARP_OPTION_NAMES
from handgestures.data.augment.params import KERAS_PARAM_NAMES
from handgestures.data.grouping import SPLIT_KINDS
from handgestures.errors import UserError
from handgestures.runfolder import record as rr
from handgestures.training.trackers import missing_requirements

HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
SEED_MAX = 2**32 - 1  # Lightning's seed_everything replaces larger seeds by a random one
IMAGE_SIZE = 128  # the networks' input size
MIN_BUILTIN = 72  # 6 per (class, hand): one image of every class in validation and test
AUGMENTATION_KEYS = (*KERAS_PARAM_NAMES, *WARP_OPTION_NAMES)
FILL_MODES = ("nearest", "constant")
SEMANTICS = ("keras2", "kp112", "keras3", "k3")
ON_ERROR = ("raise", "skip")
GROUPING_KEYS = ("threshold", "thumbnail", "max_group", "neighbours")
LIMIT_KEYS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches")
_MISSING = object()


def allowed_top_level_keys(conf_dir: Path = CONF_DIR) -> set[str] | None:
    """Keys the top level of the train config may hold; None when ``conf/`` is not found."""
    primary = conf_dir / "train.yaml"
    if not primary.is_file():
        return None
    train = OmegaConf.to_container(OmegaConf.load(primary), resolve=False)
    keys = {k for k in train if k != "defaults"} | {"hydra", "run_info"}
    for entry in train.get("defaults", []):
        if isinstance(entry, dict):
            keys |= {str(k).split()[-1].split("/")[0] for k in entry}
        elif isinstance(entry, str) and entry != "_self_":
            keys.add(entry.split("/")[0])
    for path in conf_dir.glob("*/*.yaml"):  # groups that write to the top level
        text = path.read_text()
        if text.startswith("# @package _global_") or "\n# @package _global_" in text:
            extra = OmegaConf.load(path)
            keys |= {str(k) for k in extra if k != "defaults"} if isinstance(extra, DictConfig) else set()
    return keys


def _target_params(target: str) -> set[str] | None:
    """The keyword arguments ``target`` accepts, or None when it takes ``**kwargs``."""
    obj = get_object(target)
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != "self"}


def _fmt(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return repr(value)


class _Checker:
    """Collects problems; every check reads one key and names it in its message."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.problems: list[str] = []

    def get(self, key: str, default: Any = _MISSING) -> Any:
        try:
            value = OmegaConf.select(self.cfg, key, default=_MISSING, throw_on_missing=True)
        except Exception as err:  # an interpolation that cannot be resolved, a ??? value
            self.problems.append(f"{key}: cannot be read ({err})")
            return _MISSING
        if value is _MISSING:
            return default
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{key}={_fmt(value)}: expected {allowed}")

    def check(self, key: str, ok: Callable[[Any], bool], allowed: str, optional: bool = True) -> Any:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(self.cfg, parent, default=None) if parent else self.cfg
        if isinstance(node, DictConfig) and leaf in node and OmegaConf.is_interpolation(node, leaf):
            return self.get(key)  # a copy of another key (data.seed: ${seed}), checked there
        value = self.get(key)
        if value is _MISSING:
            if not optional:
                self.problems.append(f"{key} is missing: expected {allowed}")
            return _MISSING
        try:
            good = bool(ok(value))
        except (TypeError, ValueError, OverflowError):
            good = False
        if not good:
            self.fail(key, value, allowed)
            return _MISSING
        return value

    def integer(self, key: str, lo: int | None = None, hi: int | None = None, optional: bool = True) -> Any:
        bounds = f" >= {lo}" if hi is None and lo is not None else f" in [{lo}, {hi}]" if lo is not None else ""
        return self.check(key, lambda v: is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
                          f"an integer{bounds}", optional)  # fmt: skip

    def number(self, key: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
               allowed: str | None = None) -> Any:  # fmt: skip
        text = allowed or f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"

        def ok(v: Any) -> bool:
            if not is_number(v):
                return False
            v = float(v)
            return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

        return self.check(key, ok, text)

    def boolean(self, key: str) -> Any:
        return self.check(key, lambda v: isinstance(v, bool), "true or false")

    def choice(self, key: str, choices: Iterable[Any]) -> Any:
        choices = list(choices)
        return self.check(key, lambda v: v in choices, f"one of {', '.join(map(str, choices))}")

    def unknown_keys(self, node: str, allowed: set[str] | None, hint: Callable[[str], str] = lambda k: "") -> None:
        value = self.cfg if node == "" else OmegaConf.select(self.cfg, node, default=None)
        if allowed is None or not isinstance(value, DictConfig):
            return
        for key in sorted(set(value.keys()) - allowed - HYDRA_KEYS):
            full = f"{node}.{key}" if node else str(key)
            valid = ", ".join(sorted(allowed - HYDRA_KEYS))
            self.problems.append(f"unknown key {full!r} (as +{full}=... adds it); valid keys{' of ' + node if node else ''}: "
                                 f"{valid}{hint(str(key))}")  # fmt: skip


def data_key_hint(key: str) -> str:
    """Where an unknown ``data`` key belongs: the variant's epochs are the top-level ``epochs`` (no ``data.epochs``)."""
    return "; the epochs are the top-level key: epochs=N" if key == "epochs" else ""


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _shift_in_frame(value: Any, size: int) -> bool:
    """Keras shifts: a fraction < 1 of the size, or pixels (ints, or values >= 1) < the size."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(is_number(v) for v in values) or min(values) < 0:
        return False
    if isinstance(value, list):
        return max(values) < 1 or max(values) < size
    return value < size if is_int(value) or value >= 1 else value < 1


def _zoom_ok(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) == 2 and all(is_number(v) for v in value) and 0 < value[0] <= value[1]
    return is_number(value) and 0 <= value < 1


def _check_keys(c: _Checker) -> None:
    def hint(key: str) -> str:
        if key == "ckpt_path":
            return "; to continue a run, use resume=RUN_DIR" if "resume" in (top or ()) else ""
        return ""

    top = allowed_top_level_keys()
    c.unknown_keys("", top, hint)
    for node in ("data", "model", "optimizer", "trainer"):
        target = c.get(f"{node}._target_", None)
        if not isinstance(target, str):
            continue
        try:
            params = _target_params(target)
        except Exception as err:
            c.problems.append(f"{node}._target_={target!r}: cannot be imported ({type(err).__name__}: {err})")
            continue
        c.unknown_keys(node, params, data_key_hint if node == "data" else lambda k: "")
    loggers = c.get("logger", None)
    loggers = loggers if isinstance(loggers, dict) else {}
    for name, conf in loggers.items():  # each logger's keys: its class's arguments
        target = conf.get("_target_") if isinstance(conf, dict) else None
        if not isinstance(target, str):
            c.problems.append(f"logger.{name}: expected a logger config with a _target_ (conf/logger/)")
            continue
        try:
            c.unknown_keys(f"logger.{name}", _target_params(target))
        except Exception as err:
            c.problems.append(f"logger.{name}._target_={target!r}: cannot be imported ({type(err).__name__}: {err})")
    c.problems += missing_requirements(loggers)  # logger=mlflow without mlflow installed: the extra to install
    c.unknown_keys("data.augmentation", set(AUGMENTATION_KEYS))
    c.unknown_keys("data.grouping", set(GROUPING_KEYS))


def _check_data(c: _Checker) -> None:
    root = c.get("data.root", None)
    if root is not None:
        if not isinstance(root, str) or not root.strip():
            c.fail("data.root", root, "a folder of Fingers PNGs, or null for the built-in hands "
                   "(an empty value is often an unset variable)")  # fmt: skip
        elif not os.path.isdir(os.path.expanduser(root)):
            c.fail(
                "data.root",
                root,
                "an existing folder of Fingers PNGs (no folder there), or null for the built-in hands",
            )
    cache_dir = c.get("data.cache_dir", None)
    if cache_dir is not None and (not isinstance(cache_dir, str) or not cache_dir.strip()):
        c.fail("data.cache_dir", cache_dir, "a folder path, or null for the default cache folder")
    for key in ("data.builtin_seed", "data.split_seed", "data.eval_view_seed", "data.seed"):
        c.integer(key, 0, SEED_MAX)
    c.integer("data.builtin_size", MIN_BUILTIN)
    c.check("data.image_size", lambda v: v == IMAGE_SIZE, f"{IMAGE_SIZE} (the networks take 128x128 images)")
    c.integer("data.batch_size", 1)
    c.integer("data.eval_batch_size", 1)
    c.integer("data.num_workers", 0)
    for key in ("data.huge_pages", "data.augment_train"):
        c.boolean(key)
    c.choice("data.on_error", ON_ERROR)

    c.choice("data.split", SPLIT_KINDS)
    folds = c.get("data.folds", None)
    if folds is not None:
        if c.integer("data.folds", 2) is not None and isinstance(folds, int) and folds >= 2:
            c.integer("data.fold", 0, folds - 1)
        if c.get("data.split", "random") != "grouped":
            c.fail("data.folds", folds, "null with data.split=random (its folds would put near-copies of test images "
                   "in training); k-fold needs data.split=grouped")  # fmt: skip
    c.check(
        "data.cache_max_gb",
        lambda v: v is None or (is_number(v) and v >= 0),
        "a number of GB >= 0 (0: no cache), or null (no limit)",
    )
    augmentation = c.get("data.augmentation", None)
    if c.get("data.augment_train", False) is True and not augmentation:
        c.fail("data.augment_train", True, "false when data.augmentation is empty")
    if not isinstance(augmentation, dict):
        if augmentation is not None:
            c.fail("data.augmentation", augmentation, "a mapping of Keras ImageDataGenerator parameters")
        return
    a = "data.augmentation."
    c.number(a + "rotation_range", 0, 360, allowed="degrees, a number in [0, 360]")
    for key in ("width_shift_range", "height_shift_range"):
        c.check(a + key, lambda v: _shift_in_frame(v, IMAGE_SIZE),
                f"a fraction in [0, 1), or pixels below the image size {IMAGE_SIZE} (int, or a list), so the image stays in the frame")  # fmt: skip
    c.number(a + "shear_range", 0, 90, hi_open=True, allowed="degrees, a number in [0, 90) (90 flattens the image)")
    c.check(
        a + "zoom_range",
        _zoom_ok,
        "a number in [0, 1) (zoom factors in [1-z, 1+z] stay positive) or a pair [lo, hi] with 0 < lo <= hi",
    )
    c.boolean(a + "horizontal_flip")
    c.boolean(a + "vertical_flip")
    c.choice(a + "fill_mode", FILL_MODES)
    c.number(a + "cval", 0, 255, allowed="a number in [0, 255] (the fill value on the 0..255 scale)")
    c.choice(a + "semantics", SEMANTICS)


def _check_trainer(c: _Checker) -> None:
    precisions = ["auto", *typing.get_args(_PRECISION_INPUT_STR), *typing.get_args(_PRECISION_INPUT_STR_ALIAS)]
    precisions += list(typing.get_args(_PRECISION_INPUT_INT))
    c.check("trainer.precision", lambda v: v in precisions, f"one of {', '.join(dict.fromkeys(map(str, precisions)))}")
    accelerator = c.choice("trainer.accelerator", ("auto", "cpu", "gpu", "cuda", "mps", "tpu"))
    if accelerator is not _MISSING and accelerator != "auto":
        name = "cuda" if accelerator == "gpu" else accelerator
        if name in AcceleratorRegistry and not AcceleratorRegistry[name]["accelerator"].is_available():
            c.fail("trainer.accelerator", accelerator, f"an accelerator this machine has ({accelerator} is not available here; "
                   "auto picks the best one)")  # fmt: skip
    c.integer("trainer.max_epochs", 1)
    c.check("trainer.devices", lambda v: v == "auto" or v == -1 or (is_int(v) and v >= 1) or isinstance(v, list),
            "auto, -1, an integer >= 1 or a list of device indices")  # fmt: skip
    c.check("trainer.gradient_clip_val", lambda v: v is None or (is_number(v) and 0 < float(v) < math.inf),
            "null (no clipping) or a finite number > 0 (optimizer=sgd_clipped sets 20)")  # fmt: skip
    c.check("trainer.gradient_clip_algorithm", lambda v: v in (None, "norm", "value"), "null, norm or value")
    for key in LIMIT_KEYS:
        c.check(f"trainer.{key}", lambda v: v is None or (is_int(v) and v >= 0) or (is_number(v) and 0 <= v <= 1),
                "null, a number of batches >= 0, or a fraction in [0, 1]")  # fmt: skip


def validate_config(cfg: DictConfig, record_to: str | os.PathLike | None = None) -> None:
    """Raise one :class:`UserError` listing every problem of ``cfg``; return None when it is sound.

    ``record_to``: a run folder where a refusal is also written as failed.json, so that a
    sweep counts the job as failed and its summary names it (not in a folder that holds
    another run's metrics.json: a refused config changes nothing there).
    """
    try:
        _validate(cfg)
    except UserError as err:
        # never beside another run's results: a refused config changes nothing there
        if record_to is not None and not (Path(record_to) / rr.METRICS_FILE).exists():
            Path(record_to).mkdir(parents=True, exist_ok=True)
            trace = "".join(traceback.format_exception(err))
            rr.write_json(
                Path(record_to) / rr.FAILED_FILE, {"error": f"{type(err).__name__}: {err}", "traceback": trace}
            )
        raise


def _validate(cfg: DictConfig) -> None:
    c = _Checker(cfg)
    _check_keys(c)
    c.integer("epochs", 1, optional=False)
    c.integer("seed", 0, SEED_MAX, optional=False)
    c.integer("batch_size", 1)
    c.boolean("channels_last")
    c.number("optimizer.lr", 0, math.inf, lo_open=True, hi_open=True, allowed="a finite number > 0")
    c.number("optimizer.momentum", 0, 1, hi_open=True)
    c.number("optimizer.weight_decay", 0, math.inf, hi_open=True, allowed="a finite number >= 0")
    c.number("optimizer.dampening", 0, 1)
    if c.boolean("optimizer.nesterov") is True and not (c.get("optimizer.momentum", 0) or 0) > 0:
        c.fail("optimizer.nesterov", True, "false unless optimizer.momentum > 0")
    c.check("model.num_classes", lambda v: v == 6, "6 (0 to 5 raised fingers)")
    _check_data(c)
    _check_trainer(c)
    if len(c.problems) == 1:  # one line, so that a sweep's summary of failed jobs shows it whole
        raise UserError(f"invalid configuration: {c.problems[0]}")
    if c.problems:
        lines = "\n".join(f"  - {p}" for p in c.problems)
        raise UserError(f"invalid configuration ({len(c.problems)} problems):\n{lines}")
