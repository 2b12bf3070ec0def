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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import handgestures
from handgestures.data.grouping import SPLIT_KINDS
from handgestures.errors import CheckpointError
from handgestures.models import CarlosNet, IvanNet
from handgestures.models.pretrained import WEIGHTS_FILE, is_model_folder, load_pretrained
from handgestures.runfolder.checkpoints import resolve_checkpoint, run_dir_of, safe_load
from handgestures.training.module import HandGestureClassifier

CLASS_NAMES = [str(i) for i in range(6)]
DESCRIPTION_FORMAT = 1
# Kept out of the description: where the decoded-image cache lives is the user's business
DATA_KEYS_NOT_RECORDED = ("cache_dir", "_target_")


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
    split = str(cfg.data.get("split", "random"))
    description = {
        "format": DESCRIPTION_FORMAT,
        "version": handgestures.__version__,
        "class_names": CLASS_NAMES[: int(cfg.model.get("num_classes", 6))],
        "preprocessing": preprocessing(int(cfg.data.get("image_size", 128))),
        "source": data.get("root") or "built-in hands",
        "split": f"{split}: {SPLIT_KINDS.get(split, 'unknown')}"
        + (
            f"; fold {int(cfg.data.get('fold', 0))} of {int(cfg.data.folds)} as the test set (grouped k-fold)"
            if cfg.data.get("folds")
            else ""
        ),
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


def check_finite(state: Mapping[str, Any], file: Path) -> None:
    """A :class:`CheckpointError` naming the file and the first tensor holding NaN or infinity.

    Such weights give NaN probabilities for every image: predict, eval, export and the demo
    (which all load through :func:`load_module`) refuse them instead.
    """
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            bad = tensor[~tensor.isfinite()]
            raise CheckpointError(
                f"checkpoint {str(file)!r} has non-finite weights: tensor {name!r} holds {bad.numel()} of "
                f"{tensor.numel()} values that are NaN or infinite (first: {float(bad[0])}); it cannot predict. "
                "Use an earlier checkpoint of the run (checkpoints/), or retrain."
            )


def load_module(path: str | os.PathLike, eval_names: list[str] | None = None):
    """``(module, description)`` from a checkpoint file, run folder or model folder, in eval mode on the CPU."""
    file = resolve_checkpoint(path)
    if is_model_folder(file):
        return load_model_folder(file, eval_names)
    if file.suffix == ".onnx":
        raise CheckpointError(f"{str(file)!r} is an ONNX file, not a PyTorch checkpoint")
    checkpoint = safe_load(file)
    hparams = hyperparameters(checkpoint, file)
    if eval_names is not None:
        hparams["eval_names"] = list(eval_names)
    try:
        module = HandGestureClassifier(**hparams)
    except TypeError as err:  # arguments the named class does not take
        raise CheckpointError(f"checkpoint {str(file)!r}: its net_spec {dict(hparams['net_spec'])} builds no "
                              f"network ({err})") from None  # fmt: skip
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    check_finite(state, file)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError:  # the same names with other shapes
        missing, unexpected = ["(shapes differ)"], []
    missing = [k for k in missing if k.startswith("net.") or k == "(shapes differ)"]
    if missing or unexpected:
        raise CheckpointError(not_its_network(file, hparams, state, missing, unexpected))
    module.eval()
    description = {**(hparams.get("description") or {}), "net_spec": hparams["net_spec"], "checkpoint": str(file)}
    return module, description


def load_model_folder(folder: Path, eval_names: list[str] | None = None):
    """``(module, description)`` from a model folder (:mod:`handgestures.models.pretrained`), as from its checkpoint.

    The module is built as :func:`load_module` builds a checkpoint's (the same class, layout and
    weights), so it gives the checkpoint's outputs bit for bit; nothing is unpickled.
    """
    net, config = load_pretrained(folder)
    check_finite(net.state_dict(), folder / WEIGHTS_FILE)
    module = HandGestureClassifier(
        net=net, num_classes=config["num_classes"], channels_last=config["channels_last"],
        eval_names=list(eval_names) if eval_names is not None else ("test",), net_spec=config["net_spec"],
        description=config["description"],
    )  # fmt: skip
    module.eval()
    description = {**config["description"], "class_names": config["class_names"], "net_spec": config["net_spec"],
                   "checkpoint": str(folder)}  # fmt: skip
    return module, description


def weights_owner(state: Mapping[str, Any], num_classes: int) -> str | None:
    """The network of the project whose parameters have exactly the names and shapes of ``state``."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for net in (CarlosNet(num_classes), CarlosNet(num_classes, fused=False), IvanNet(num_classes)):
        if {f"net.{k}": tuple(v.shape) for k, v in net.state_dict().items()} == shapes:
            return type(net).__name__
    return None


def not_its_network(file: Path, hparams: Mapping[str, Any], state: Mapping[str, Any], missing, unexpected) -> str:
    """Why the weights of ``file`` do not fit the network its net_spec names, in one sentence."""
    named = str(hparams["net_spec"].get("_target_", "?")).rsplit(".", 1)[-1]
    owner = weights_owner(state, int(hparams.get("num_classes") or hparams["net_spec"].get("num_classes") or 6))
    if owner is not None and owner != named:
        return (f"checkpoint {str(file)!r} holds the weights of another network ({owner}), but its net_spec names "
                f"{named}: use a checkpoint of a {named} run, or this one with its own net_spec")  # fmt: skip
    return (f"checkpoint {str(file)!r} does not fit the network its net_spec names ({named}): missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}; it was not written by this project's train.py")  # fmt: skip
