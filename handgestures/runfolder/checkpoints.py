"""The checkpoints of a run folder: which one to use, and loading one without running code.

* :func:`resolve_checkpoint` is the one function that finds a run's best checkpoint (eval,
  predict, export, the demo and the model card all ask it).
* :func:`safe_load` is the one checkpoint loader: ``torch.load(weights_only=True)``, so a
  checkpoint whose pickle would run code is refused with a clear error and nothing in it runs.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from handgestures.errors import CheckpointError
from handgestures.models.pretrained import is_model_folder


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
    """A checkpoint or ONNX file itself, a model folder itself, or a run folder's best checkpoint.

    A model folder (``export.py format=hf``) is a folder holding ``config.json`` or
    ``model.safetensors``; its loader names the file when one is missing or malformed.
    In a run folder: metrics.json's ``best_checkpoint`` (also looked for under the folder's
    ``checkpoints/`` when the run was moved), else the ``best-*val_acc*.ckpt`` with the highest
    validation accuracy in its name, else ``checkpoints/last.ckpt``, else a single ``*.onnx``.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"ckpt={str(path)!r} is not a checkpoint file, a run folder or a model folder")
    if is_model_folder(path):
        return path
    metrics = path / "metrics.json"
    if metrics.is_file():
        try:
            best = json.loads(metrics.read_text()).get("best_checkpoint")
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{metrics} is not valid JSON: {err}") from None
        if best:
            # the folder's own file first: a copied or moved folder never uses the original's checkpoint
            own = [path / "checkpoints" / Path(best).name] + ([] if Path(best).is_absolute() else [path / best])
            for candidate in own:
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
        "checkpoints/best-*.ckpt, checkpoints/last.ckpt and a single *.onnx (nor is it a model folder: "
        "no config.json or model.safetensors)"
    )


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint lies in (``<run>/checkpoints/x.ckpt``), if it looks like one."""
    for folder in (checkpoint.parent.parent, checkpoint.parent):
        if (folder / "config.yaml").is_file() or (folder / "metrics.json").is_file():
            return folder
    return None
