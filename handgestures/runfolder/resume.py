"""Resume a run into its own folder, exactly: `python train.py resume=RUN_DIR`.

A run resumes from its last epoch-end checkpoint (``checkpoints/last.ckpt``) with every
random state of that moment (torch CPU and CUDA, NumPy, Python; the datamodule's
augmentation generator is in the checkpoint through its ``state_dict``), and the training
shuffle is a function of (seed, epoch) (:mod:`handgestures.data.samplers`). An epoch that a
kill interrupted is replayed from its start, so the resumed run's weights and metrics equal
those of an uninterrupted run with the same seed. Without a checkpoint (killed during the
first epoch) the run starts again from scratch in the same folder, with the same result.

The run's own saved config.yaml is used. A command-line override that would change the
result is refused (the key, the saved and the new value are named); the keys of
:data:`ALLOWED_ON_RESUME` only change how the run is watched or how long it may take.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from handgestures.errors import CheckpointError, UserError
from handgestures.runfolder import record as rr
from handgestures.runfolder.checkpoints import safe_load
from handgestures.runfolder.legacy import upgrade_saved_config
from handgestures.runfolder.record import CHECKPOINT_DIR, CONFIG_FILE, EPOCHS_FILE, LAST_CHECKPOINT, METRICS_FILE

log = logging.getLogger(__name__)

RESUME_KEY = "resume"
ALLOWED_ON_RESUME = (
    "resume", "overwrite", "trainer.max_time", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.log_every_n_steps", "callbacks.progress_bar", "paths.cache_dir", "data.cache_dir", "data.num_workers",
    "data.huge_pages",
)  # fmt: skip


class RandomStates(L.Callback):
    """Saves the global random states in every checkpoint and restores them on resume.

    Lightning restores the model, the optimizer, the loops and the datamodule, but not the
    process's random generators, so anything drawing from them after a resume (dropout,
    a random initialisation of a later module) would differ from the uninterrupted run.
    The states are stored as tensors and plain values, which ``weights_only`` loading accepts.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate(),
        }  # fmt: skip
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))  # fmt: skip
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class FollowMovedFolder(L.Callback):
    """A resumed run whose folder was copied or moved: the checkpoint callbacks' records follow it.

    Lightning's ``ModelCheckpoint`` drops its record of the best checkpoints when the folder
    saved in the checkpoint differs from its own (it would then keep a worse epoch as "best");
    the saved paths are rebased onto where the folder is now before the callbacks load them.
    """

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        mine = {cb.state_key: cb for cb in trainer.checkpoint_callbacks}
        for key, state in (checkpoint.get("callbacks") or {}).items():
            callback = mine.get(key)
            if callback is None or not isinstance(state, dict) or not state.get("dirpath") or not callback.dirpath:
                continue
            old, new = os.path.normpath(str(state["dirpath"])), os.path.normpath(str(callback.dirpath))
            if old == new:
                continue

            def rebase(path: Any, old: str = old, new: str = new) -> Any:
                if isinstance(path, str) and path.startswith(old + os.sep):
                    return new + path[len(old) :]
                return path

            state["dirpath"] = callback.dirpath
            for name in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if name in state:
                    state[name] = rebase(state[name])
            if isinstance(state.get("best_k_models"), dict):
                state["best_k_models"] = {rebase(k): v for k, v in state["best_k_models"].items()}


def override_key(override: str) -> str:
    """The config key of a command-line override: ``+a.b=1`` -> ``a.b``, ``model=ivannet`` -> ``model``."""
    return override.split("=", 1)[0].lstrip("+~").strip()


def _allowed(key: str) -> bool:
    return key.startswith("hydra") or any(key == a or key.startswith(a + ".") for a in ALLOWED_ON_RESUME)


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def load_saved_config(run_dir: Path) -> DictConfig:
    """The resolved config a run folder was trained with (its config.yaml)."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        made_now = run_dir.is_dir() and all(
            (p.name.startswith(".hydra") or p.name == rr.RUN_LOG) and p.stat().st_mtime >= rr.PROCESS_STARTED
            for p in run_dir.iterdir()
        )
        if made_now:  # Hydra made the folder for this very command (resume= names the run folder)
            shutil.rmtree(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"resume={run_dir}: no such run folder")
        raise UserError(f"resume={run_dir}: the folder has no {CONFIG_FILE}, so it is not a run of train.py")
    return upgrade_saved_config(OmegaConf.load(path), run_dir)


def resumed_config(composed: DictConfig, overrides: list[str], run_dir: Path) -> DictConfig:
    """The saved config of ``run_dir`` with the allowed overrides applied.

    Raises UserError naming every override that would change the result (an override that
    repeats the saved value is accepted), and for a run that already finished.
    """
    saved = load_saved_config(run_dir)
    metrics = run_dir / METRICS_FILE
    if metrics.is_file() and rr.read_json(metrics).get(rr.KEY_STATUS) == rr.STATUS_DONE:
        raise UserError(f"resume={run_dir}: that run is already done (status '{rr.STATUS_DONE}' in {metrics})")
    refused, applied = [], []
    for override in overrides:
        key = override_key(override)
        if _allowed(key):
            applied.append(key)
            continue
        old, new = _value(saved, key), _value(composed, key)
        if old != new:
            refused.append(f"  {override}: {key} is {old!r} in the run's {CONFIG_FILE}, the override makes it {new!r}")
    if refused:
        allowed = ", ".join(ALLOWED_ON_RESUME[2:])
        raise UserError(
            f"resume={run_dir}: these overrides would change the result of the run, which resumes with its own "
            f"{CONFIG_FILE}:\n" + "\n".join(refused) + f"\nAllowed on resume: {allowed}."
        )
    with open_dict(saved):
        for key in applied:
            if key.startswith("hydra") or key in ("resume", "overwrite"):
                continue
            OmegaConf.update(saved, key, OmegaConf.select(composed, key), merge=False, force_add=True)
        saved.resume = str(run_dir)
        saved.paths.output_dir = str(run_dir)
        saved.run_info = saved.get("run_info") or composed.get("run_info")
    return saved


def completed_epochs(checkpoint: dict[str, Any]) -> int:
    """Epochs a checkpoint saved at an epoch's end had completed."""
    return int(checkpoint.get("epoch", -1)) + 1


def truncate_epochs_csv(path: Path, epochs: int) -> int:
    """Keeps the header and the well-formed rows of epochs 1..``epochs``; returns the rows kept."""
    if not path.is_file():
        return 0
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        rows = []
        for row in reader:
            try:
                if None not in row and int(row["epoch"]) <= epochs:
                    rows.append(row)
            except (KeyError, TypeError, ValueError):
                continue  # a row cut short by the kill
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def prune_checkpoints(folder: Path, checkpoint: dict[str, Any] | None, keep: Path | None = None) -> list[Path]:
    """Deletes the checkpoint files that ``checkpoint`` does not know (saved after it, by the killed run).

    The replayed epochs save them again; left in place, Lightning would add "-v1" copies.
    """
    known = {LAST_CHECKPOINT} | ({Path(keep).name} if keep else set())
    for state in ((checkpoint or {}).get("callbacks") or {}).values():
        if isinstance(state, dict) and "best_k_models" in state:
            known |= {Path(p).name for p in state["best_k_models"]}
            known |= {Path(p).name for p in (state.get("best_model_path"), state.get("last_model_path")) if p}
    removed = [p for p in sorted(folder.glob("*.ckpt")) if p.name not in known] if folder.is_dir() else []
    if checkpoint is None and (folder / LAST_CHECKPOINT).exists():
        removed.append(folder / LAST_CHECKPOINT)
    for path in removed:
        path.unlink()
        log.info("resume: removed %s, saved after the checkpoint the run resumes from", path)
    return removed


def resume_point(folder: Path) -> tuple[Path, dict[str, Any] | None]:
    """The checkpoint to resume from: last.ckpt, else the newest usable one; never a reason to delete one.

    A missing or unloadable last.ckpt (a kill while it was written, a deleted file) leaves the
    newest checkpoint that loads, a best one, whose finished epochs are kept. When checkpoints
    exist but none loads, the run stops with what to do, rather than training again over them.
    ``(last.ckpt's path, None)`` when the folder has no checkpoint at all: the run starts again.
    """
    last = folder / LAST_CHECKPOINT
    if last.is_file():
        try:
            return last, safe_load(last)
        except CheckpointError as err:
            log.warning("resume: %s cannot be used (%s); looking for another checkpoint", last, err)
    usable, unusable = [], []
    for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
        try:
            checkpoint = safe_load(path)
        except CheckpointError:
            unusable.append(path.name)
            continue
        usable.append((completed_epochs(checkpoint), path.name, path, checkpoint))
    if usable:
        epochs, _, path, checkpoint = max(usable, key=lambda u: (u[0], u[1]))
        log.warning("resume: no usable %s; resuming from %s (%d epochs done)", LAST_CHECKPOINT, path.name, epochs)
        return path, checkpoint
    if unusable:
        raise UserError(
            f"resume={folder.parent}: no checkpoint in {folder} can be loaded ({', '.join(unusable)}), so the run "
            "cannot continue; nothing was deleted. Train it again into a new folder, or with overwrite=true here."
        )
    return last, None


def prepare_resume(cfg: DictConfig, out_dir: Path) -> str | None:
    """For ``cfg.resume``: the checkpoint to resume from (None: start again), records trimmed to it.

    epochs.csv keeps the epochs the checkpoint completed; TensorBoard purges later steps
    (``purge_step``), so no epoch appears twice.
    """
    if not cfg.get(RESUME_KEY):
        return None
    last, checkpoint = resume_point(out_dir / CHECKPOINT_DIR)
    epochs = completed_epochs(checkpoint) if checkpoint is not None else 0
    kept = truncate_epochs_csv(out_dir / EPOCHS_FILE, epochs)
    prune_checkpoints(out_dir / CHECKPOINT_DIR, checkpoint, keep=last if checkpoint is not None else None)
    with open_dict(cfg):
        for logger in (cfg.get("logger") or {}).values():
            if str(logger.get("_target_", "")).endswith("TensorBoardLogger"):
                logger.purge_step = epochs + 1  # epochs are the steps of the curves (1-based)
    if checkpoint is None:
        log.info("resume: no checkpoint in %s, training again from the first epoch", out_dir)
        return None
    log.info("resume: from %s (%d epochs done, %d rows of %s kept)", last, epochs, kept, EPOCHS_FILE)
    return str(last)
