"""A hub-ready model folder: ``config.json`` and ``model.safetensors``, read and written without pickle.

``python export.py format=hf`` writes the folder (with its model card, ``README.md``:
:mod:`handgestures.inference.hub`); predict, eval and the demo read it as they read a checkpoint.

* ``model.safetensors``: the network's ``state_dict`` (names as ``net.state_dict()`` gives
  them, e.g. ``features.0.weight``), contiguous, in the dtype it was trained in. A safetensors
  file holds raw tensors and a JSON header only, so reading it runs no code.
* ``config.json``: what rebuilds the network and its input: ``net_spec`` (a class of
  :mod:`handgestures.models` and its arguments, as in a checkpoint), the keys a hub reader looks
  for (``architectures``, ``num_classes``, ``id2label``, ``image_size``, ``channels``,
  ``rescale_factor``), the training identity (``training``: model, data, seed, precision, ...)
  and the checkpoint's whole ``description`` (data, split, augmentation, precision, version), so
  that eval and predict on the folder do exactly what they do on the checkpoint.

Every check names the file at fault and what was expected: a folder without one of the two
files, a config that is not JSON or lacks a key, a network the config cannot build, tensors
missing, unexpected, or of another shape or dtype than that network's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from handgestures.errors import CheckpointError
from handgestures.models.build import build_net

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
FORMAT = "handgestures-hf"
FORMAT_VERSION = 1
WRITTEN_BY = "`python export.py ckpt=RUN format=hf`"
# key -> (type, what it is), checked when a config is read
REQUIRED = {
    "net_spec": (dict, "the network: _target_ (a class of handgestures.models) and its arguments"),
    "num_classes": (int, "the number of classes"),
    "class_names": (list, "one name per class"),
    "image_size": (list, "[height, width] of the input"),
    "channels": (int, "input channels"),
    "channels_last": (bool, "whether the network runs in channels-last layout"),
    "description": (dict, "the checkpoint's description of its run (data, split, precision, ...)"),
}


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a ``config.json`` or a ``model.safetensors`` (then: a model folder)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in (CONFIG_FILE, WEIGHTS_FILE))


def _safetensors():
    try:
        import safetensors.torch  # an optional dependency: only model folders need it
    except ImportError as err:
        raise ImportError(
            f"model folders ({WEIGHTS_FILE}) need safetensors: pip install 'handgestures[export]'"
        ) from err
    return safetensors.torch


def _required_file(folder: Path, name: str) -> Path:
    file = folder / name
    if not file.is_file():
        raise CheckpointError(
            f"model folder {str(folder)!r} has no {name}: expected {CONFIG_FILE} and {WEIGHTS_FILE}, "
            f"as {WRITTEN_BY} writes them"
        )
    return file


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The checked ``config.json`` of ``folder``; a :class:`CheckpointError` naming the file and what is wrong."""
    file = _required_file(Path(folder), CONFIG_FILE)
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{str(file)!r} is not valid JSON ({err}): expected the config {WRITTEN_BY} writes"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{str(file)!r} is not a handgestures model config: expected \"format\": "
                              f"\"{FORMAT}\", found {found!r}")  # fmt: skip
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"{str(file)!r}: format_version {version!r} is not one this version reads "
                              f"(1 to {FORMAT_VERSION}): export the model again with this version")  # fmt: skip
    for key, (kind, what) in REQUIRED.items():
        value = config.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{str(file)!r}: {key!r} must be a {kind.__name__} ({what}), found {value!r}")
    names, n = config["class_names"], config["num_classes"]
    if len(names) != n or not all(isinstance(c, str) for c in names):
        raise CheckpointError(f"{str(file)!r}: class_names must be {n} strings (num_classes), found {names!r}")
    if config["net_spec"].get("num_classes", n) != n:
        raise CheckpointError(f"{str(file)!r}: net_spec's num_classes {config['net_spec']['num_classes']!r} is not "
                              f"num_classes {n}")  # fmt: skip
    return config


def build_from_config(config: dict[str, Any], folder: Path) -> nn.Module:
    """The (untrained) network ``config.json``'s ``net_spec`` names, or an error naming the file."""
    try:
        return build_net(config["net_spec"])
    except (CheckpointError, TypeError) as err:  # a class outside handgestures.models, or arguments it does not take
        raise CheckpointError(f"{str(folder / CONFIG_FILE)!r}: its net_spec {config['net_spec']} builds no network "
                              f"({err})") from None  # fmt: skip


def read_weights(folder: str | os.PathLike, net: nn.Module) -> dict[str, torch.Tensor]:
    """``model.safetensors`` of ``folder``, checked against ``net``: the same names, shapes and dtypes."""
    file = _required_file(Path(folder), WEIGHTS_FILE)
    load_file = _safetensors().load_file
    try:
        state = load_file(str(file), device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError, and OSError
        raise CheckpointError(f"{str(file)!r} is not a readable safetensors file: {err}") from None
    expected = net.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{str(file)!r} does not hold the weights of {type(net).__name__} ({CONFIG_FILE}'s "
                              f"net_spec): missing {missing[:5]}, unexpected {unexpected[:5]}")  # fmt: skip
    for name, tensor in state.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise CheckpointError(
                f"{str(file)!r}: tensor {name!r} is {tensor.dtype} of shape {list(tensor.shape)}, but "
                f"{type(net).__name__} ({CONFIG_FILE}'s net_spec) needs {want.dtype} of shape {list(want.shape)}"
            )
    return state


def load_pretrained(folder: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """``(network, config)`` of a model folder: the network built from config.json, its weights loaded, in eval mode."""
    folder = Path(folder)
    config = read_config(folder)
    net = build_from_config(config, folder)
    net.load_state_dict(read_weights(folder, net), strict=True)
    return net.eval(), config


def save_pretrained(net: nn.Module, config: dict[str, Any], folder: str | os.PathLike) -> list[Path]:
    """Writes ``net``'s weights and ``config`` into ``folder`` (which must exist); the paths written."""
    folder = Path(folder)
    weights = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    metadata = {"format": "pt", "handgestures": FORMAT, "architecture": type(net).__name__}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    _safetensors().save_file(weights, str(folder / WEIGHTS_FILE), metadata=metadata)
    os.chmod(folder / WEIGHTS_FILE, (folder / CONFIG_FILE).stat().st_mode & 0o777)  # safetensors writes 0600
    return [folder / CONFIG_FILE, folder / WEIGHTS_FILE]
