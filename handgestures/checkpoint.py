"""Self-describing checkpoints: what a trained model needs to be rebuilt and used.

A run's checkpoints carry, in their hyperparameters:

* ``net_spec``: the network as a Hydra ``_target_`` with its arguments (the run's ``model``
  config), so :meth:`HandGestureClassifier.load_from_checkpoint` needs no other argument;
* ``description``: class names, the preprocessing (size, grey levels, scaling), the data
  source and its split, seed, epochs, precision and the project version
  (:func:`describe_run`); the split sizes are added when a checkpoint is written.

Everything there is plain Python data (str, numbers, lists, dicts), so checkpoints load with
``torch.load(weights_only=True)``: a checkpoint whose pickle would run code is refused, and
nothing in it runs. A network is rebuilt only from a class of :mod:`handgestures.models`,
never from an arbitrary ``_target_`` a file names.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import handgestures

CLASS_NAMES = [str(i) for i in range(6)]
ALLOWED_NET_PACKAGE = "handgestures.models"
DESCRIPTION_FORMAT = 1
# Kept out of the description: where the decoded-image cache lives is the user's business
DATA_KEYS_NOT_RECORDED = ("cache_dir", "epochs", "_target_")


class CheckpointError(ValueError):
    """A checkpoint (or a run folder) that cannot be used, with the reason."""


def plain(value: Any) -> Any:
    """``value`` as plain Python containers (OmegaConf resolved), safe for ``weights_only``."""
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def preprocessing(image_size: int = 128) -> dict[str, Any]:
    """The input the networks were trained on (see :mod:`handgestures.inference.preprocess`)."""
    return {
        "image_size": [int(image_size), int(image_size)],
        "channels": 1,
        "grey_levels": 256,
        "colour": "luma, ITU-R 601-2 (PIL mode 'L'), as Keras loads grayscale images",
        "scaling": "pixel / 255, float32 in [0, 1]",
        "layout": "(batch, 1, height, width)",
    }


def describe_run(cfg: DictConfig) -> dict[str, Any]:
    """The checkpoint hyperparameters of a run composed as ``cfg`` (train.yaml)."""
    data = {k: plain(v) for k, v in cfg.data.items() if k not in DATA_KEYS_NOT_RECORDED}
    if data.get("root"):
        data["root"] = os.path.abspath(os.path.expanduser(str(data["root"])))
    info = plain(cfg.get("run_info") or {})
    description = {
        "format": DESCRIPTION_FORMAT,
        "version": handgestures.__version__,
        "class_names": CLASS_NAMES[: int(cfg.model.get("num_classes", 6))],
        "preprocessing": preprocessing(int(cfg.data.get("image_size", 128))),
        "source": data.get("root") or "built-in hands",
        "split": "stratified by class and hand: 4/6 train, 1/6 val, 1/6 test (handgestures.data.split)",
        "data": data,
        "model_choice": info.get("model"),
        "data_choice": info.get("data"),
        "seed": int(cfg.seed),
        "epochs": int(cfg.epochs),
        "batch_size": int(cfg.batch_size),
        "precision": str(cfg.trainer.get("precision", "32-true")),
        "optimizer": plain(cfg.optimizer),
    }
    return {"net_spec": plain(cfg.model), "description": description}


def build_net(spec: Mapping[str, Any]) -> torch.nn.Module:
    """The network of ``spec`` (``_target_`` + arguments); only classes of handgestures.models."""
    spec = dict(spec)
    target = spec.pop("_target_", None)
    if not isinstance(target, str) or not target.startswith(ALLOWED_NET_PACKAGE + "."):
        raise CheckpointError(
            f"network _target_ {target!r} is not allowed: expected a class of {ALLOWED_NET_PACKAGE} "
            "(for example handgestures.models.CarlosNet)"
        )
    module_name, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"network _target_ {target!r} does not exist: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise CheckpointError(f"network _target_ {target!r} is not an nn.Module class")
    return cls(**{k: v for k, v in spec.items() if not k.startswith("_")})


def safe_load(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on the CPU; a clear error instead of any code run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"refusing to load checkpoint {str(path)!r}: it holds objects other than tensors and plain data, "
            f"which unpickling would have to run code to build (nothing was run). torch.load said: {first}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint: {err}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {str(path)!r} holds no state_dict: not a Lightning checkpoint")
    return checkpoint


_VAL_ACC = re.compile(r"val_acc(?P<acc>[0-9.]+?)\.ckpt$")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint or ONNX file itself, or a run folder's best checkpoint.

    In a run folder: metrics.json's ``best_checkpoint`` (also looked for under the folder's
    ``checkpoints/`` when the run was moved), else the ``best-*val_acc*.ckpt`` with the highest
    validation accuracy in its name, else ``checkpoints/last.ckpt``, else a single ``*.onnx``.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"ckpt={str(path)!r} is neither a checkpoint file nor a run folder")
    metrics = path / "metrics.json"
    if metrics.is_file():
        try:
            best = json.loads(metrics.read_text()).get("best_checkpoint")
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{metrics} is not valid JSON: {err}") from None
        if best:
            for candidate in (Path(best), path / "checkpoints" / Path(best).name):
                if candidate.is_file():
                    return candidate
    folder = path / "checkpoints"
    scored = []
    for file in folder.glob("best-*.ckpt") if folder.is_dir() else []:
        match = _VAL_ACC.search(file.name)
        scored.append((float(match["acc"].rstrip(".")) if match else -1.0, file.name, file))
    if scored:
        return max(scored)[2]
    if (folder / "last.ckpt").is_file():
        return folder / "last.ckpt"
    onnx_files = sorted(path.glob("*.onnx"))
    if len(onnx_files) == 1:
        return onnx_files[0]
    raise CheckpointError(
        f"run folder {str(path)!r} has no checkpoint: looked for metrics.json's best_checkpoint, "
        "checkpoints/best-*.ckpt, checkpoints/last.ckpt and a single *.onnx"
    )


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint lies in (``<run>/checkpoints/x.ckpt``), if it looks like one."""
    for folder in (checkpoint.parent.parent, checkpoint.parent):
        if (folder / "config.yaml").is_file() or (folder / "metrics.json").is_file():
            return folder
    return None


def hyperparameters(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The checkpoint's hyperparameters, completed from its run folder's config.yaml if older.

    Checkpoints written before they described themselves lack ``net_spec``: the run's
    config.yaml, when it is there, says the same.
    """
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "net_spec" not in hparams:
        run = run_dir_of(path)
        config = run / "config.yaml" if run else None
        if config is None or not config.is_file():
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not record its network (net_spec) and has no run folder "
                "config.yaml beside it: retrain it with this version, or keep it in its run folder"
            )
        hparams.update(describe_run(OmegaConf.load(config)))
    return hparams


def load_module(path: str | os.PathLike, eval_names: list[str] | None = None):
    """``(module, description)`` from a checkpoint file or run folder, in eval mode on the CPU."""
    from handgestures.module import HandGestureClassifier

    file = resolve_checkpoint(path)
    if file.suffix == ".onnx":
        raise CheckpointError(f"{str(file)!r} is an ONNX file, not a PyTorch checkpoint")
    checkpoint = safe_load(file)
    hparams = hyperparameters(checkpoint, file)
    if eval_names is not None:
        hparams["eval_names"] = list(eval_names)
    module = HandGestureClassifier(**hparams)
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if k.startswith("net.")]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {str(file)!r} does not fit its network: missing {missing}, unexpected {unexpected}"
        )
    module.eval()
    description = {**(hparams.get("description") or {}), "net_spec": hparams["net_spec"], "checkpoint": str(file)}
    return module, description
