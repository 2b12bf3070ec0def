"""``export.py format=hf``: a checkpoint as a hub-ready model folder, checked to give the same logits.

The folder holds ``model.safetensors`` and ``config.json`` (the format:
:mod:`handgestures.models.pretrained`) and ``README.md``, the run's model card under the YAML
front matter a model hub reads (:func:`handgestures.runfolder.card.hub_card`). It is written
under a temporary name beside ``output``, loaded back as predict and eval load it, and its
logits compared with the checkpoint's in fp32 on built-in hands with ``torch.equal``: only a
folder that gives the same numbers bit for bit is renamed to ``output``. An existing
``output`` is replaced only with ``overwrite`` and only when it is a model folder itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

import handgestures
from handgestures.errors import CheckpointError
from handgestures.inference.export import check_images, check_output
from handgestures.inference.predictor import TorchPredictor
from handgestures.models.pretrained import FILES, FORMAT, FORMAT_VERSION, is_model_folder, save_pretrained
from handgestures.runfolder.card import hub_card
from handgestures.runfolder.checkpoints import run_dir_of
from handgestures.training.checkpoint import CLASS_NAMES, load_module, preprocessing

RESCALE = 1 / 255  # pixel / 255: the networks' input scaling, without any mean or std normalisation


def default_output(checkpoint: Path) -> Path:
    """Where a model folder goes when ``output`` is not given: beside the checkpoint, ``<name>-hf``."""
    return checkpoint.with_name(f"{checkpoint.stem}-hf")


def hub_config(module, description: dict[str, Any]) -> dict[str, Any]:
    """config.json of ``module`` (from :func:`load_module`): the network, its input and its run."""
    spec = dict(description["net_spec"])
    architecture = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
    recorded = {k: v for k, v in description.items() if k not in ("net_spec", "checkpoint")}
    names = list(recorded.get("class_names") or CLASS_NAMES)
    prep = recorded.get("preprocessing") or preprocessing()
    data = recorded.get("data") or {}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "architecture": architecture, "architectures": [architecture], "net_spec": spec,
        "num_classes": len(names), "class_names": names,
        "id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)},
        "image_size": list(prep.get("image_size", [128, 128])), "channels": int(prep.get("channels", 1)),
        "rescale_factor": RESCALE, "normalize": False, "preprocessing": prep,
        "channels_last": bool(module.hparams.get("channels_last", True)),
        "training": {
            "model": recorded.get("model_choice") or architecture.lower(),
            "data": recorded.get("data_choice") or ("augmented" if data.get("augment_train") else "base"),
            "seed": recorded.get("seed"), "precision": recorded.get("precision"), "epochs": recorded.get("epochs"),
            "source": recorded.get("source"), "split": recorded.get("split"),
            "exported_from": Path(str(description.get("checkpoint"))).name,
        },
        "version": recorded.get("version"), "exported_with": handgestures.__version__,
        "description": recorded,
    }  # fmt: skip


def round_trip(checkpoint_module, folder: Path, images: torch.Tensor) -> dict[str, Any]:
    """The folder's logits against the checkpoint module's, in fp32 on ``images``: equal bit for bit or not."""
    module, description = load_module(folder)
    expected = TorchPredictor(checkpoint_module, {}, folder, precision="32-true").logits(images)
    got = TorchPredictor(module, description, folder, precision="32-true").logits(images)
    return {"images": len(images), "precision": "32-true", "bit_identical": bool(torch.equal(got, expected)),
            "max_abs_diff": float((got - expected).abs().max()) if len(images) else 0.0}  # fmt: skip


def _replace(partial: Path, final: Path, overwrite: bool) -> None:
    """Renames ``partial`` to ``final``; an existing ``final`` only with ``overwrite`` and only a model folder."""
    check_output(final, overwrite)  # not created meanwhile
    if not final.exists():
        os.replace(partial, final)
        return
    others = sorted(p.name for p in final.iterdir()) if final.is_dir() else []
    if not is_model_folder(final) or set(others) - set(FILES):
        raise ValueError(f"output {str(final)!r} exists and is not a model folder (it holds {others[:5] or 'a file'}): "
                         "not replaced; choose another output=")  # fmt: skip
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old)


def export_hf(
    ckpt: str | os.PathLike, output: str | os.PathLike, check_batch: int = 8, overwrite: bool = False
) -> dict[str, Any]:
    """Writes the model folder of ``ckpt`` (a checkpoint, run folder or model folder) to ``output``.

    Returns the folder, its files and the round-trip check (``check_batch`` built-in hands,
    0: none). A round trip that is not bit-identical raises, and nothing is written.
    """
    final = check_output(output, overwrite)
    module, description = load_module(ckpt)
    config = hub_config(module, description)
    source = Path(str(description["checkpoint"]))
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        save_pretrained(module.net, config, partial)
        (partial / "README.md").write_text(hub_card(config, run_dir_of(source) if source.is_file() else None))
        report: dict[str, Any] = {
            "folder": str(final),
            "format": "hf",
            "files": sorted(p.name for p in partial.iterdir()),
        }
        if check_batch > 0:
            report["round_trip"] = round_trip(module, partial, check_images(check_batch))
            if not report["round_trip"]["bit_identical"]:
                raise CheckpointError(f"the model folder for {str(source)!r} does not give the checkpoint's logits "
                                      f"bit for bit ({report['round_trip']}); nothing was written")  # fmt: skip
        _replace(partial, final, overwrite)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return report
