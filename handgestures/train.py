"""``train(cfg)``: one run of the study, from a composed Hydra config to metrics.json.

Order of work, so that nothing finished is lost if a later step fails: the resolved config
is written first; checkpoints and epochs.csv are written during training; metrics.json is
written after training (status ``trained``) and rewritten after the cross-evaluation.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict

from handgestures.callbacks import tensorboard_writer
from handgestures.data.datamodule import FingersDataModule
from handgestures.distributed import is_rank_zero
from handgestures.module import HandGestureClassifier
from handgestures.plots import CLASS_NAMES, confusion_figure

log = logging.getLogger(__name__)

NOT_DATAMODULE_ARGS = ("epochs",)


class FirstStepTimer(L.Callback):
    """Records when the first training batch starts, to measure start-up time."""

    def __init__(self) -> None:
        self.first_step_at: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()


# glibc malloc: allocations up to 32 MiB come from the heap, and up to 1 GiB of freed heap
# stays mapped instead of going back to the kernel.
MALLOC_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit
MALLOC_TRIM_THRESHOLD = 2**30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)


def keep_freed_memory() -> bool:
    """Stop glibc from returning the activations' memory to the kernel after every step.

    PyTorch's CPU tensors come from ``malloc``. With glibc's defaults, the megabyte-sized
    activations of a step are ``mmap``-ed and unmapped, or trimmed off the heap top, at every
    step, and the next step page-faults the same memory in again: about 8,000 page faults
    per CarlosNet fp32 step and 87,000 per IvanNet fp32 step on this study. Keeping the
    memory makes steps 1.1-1.9x faster (CarlosNet fp32 base 21 -> 13 ms, augmented 30 -> 16
    ms; IvanNet fp32 434 -> 330 ms, bf16 134 -> 118 ms), and the numbers are unchanged. The
    resident memory then stays near its peak, which it reaches at every step anyway. A no-op
    (returns False) where the C library has no ``mallopt``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1 and ok
    return ok


AUTO_PRECISION = "auto"


def native_bf16(device: str) -> bool:
    """Whether ``device`` ("cpu" or "cuda") runs bf16 matrix products in hardware.

    CPU: AVX-512 BF16 or AMX tiles (a CPU without them emulates bf16 and gets slower than
    fp32). CUDA: compute capability 8.0 or newer, emulation excluded.
    """
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: Any, accelerator: Any = "auto") -> str:
    """The Trainer precision a run uses: ``precision`` itself unless it is ``"auto"``.

    ``"auto"`` (the default) is ``bf16-mixed`` on hardware with native bf16 and ``32-true``
    elsewhere (MPS, older GPUs, CPUs without AVX-512 BF16/AMX). Six paired seeds of augmented
    CarlosNet on the real images detect no accuracy lost to bf16-mixed (test 0.9747 against
    0.9759 in fp32, standard error of the difference 0.0039; the README's "bf16 against
    fp32"). On this project's AVX-512 BF16 CPU it trains IvanNet about 3.4x and CarlosNet
    1.3-1.5x as fast as fp32 (the README's Performance table, two sittings of
    ``scripts/benchmark.py``).
    """
    precision = str(precision)
    if precision != AUTO_PRECISION:
        return precision
    accelerator = str(accelerator).lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if native_bf16("cuda") else "32-true"
    if accelerator == "auto" and torch.backends.mps.is_available():
        return "32-true"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if native_bf16("cpu") else "32-true"
    return "32-true"  # mps, tpu, ...: no evidence for bf16 there


def resolve_config_precision(cfg: DictConfig) -> str:
    """Replaces ``trainer.precision: auto`` in ``cfg`` by the precision the run will use."""
    precision = resolve_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "auto"))
    with open_dict(cfg):
        cfg.trainer.precision = precision
    return precision


def trained_images(trainer: L.Trainer, datamodule: FingersDataModule) -> int:
    """Images seen in training (limit_train_batches honoured; the last batch may be partial)."""
    n, batch = len(datamodule.splits["train"]), datamodule.batch_size
    per_epoch = min(n, int(trainer.num_training_batches) * batch * trainer.world_size)  # DDP: all processes
    return per_epoch * trainer.current_epoch


def build_datamodule(data_cfg: DictConfig) -> FingersDataModule:
    kwargs = {k: v for k, v in data_cfg.items() if k not in NOT_DATAMODULE_ARGS}
    return instantiate(OmegaConf.create(kwargs), _convert_="all")


def run_name(cfg: DictConfig) -> dict[str, Any]:
    choices = cfg.get("run_info", {}) or {}
    return {
        "model": choices.get("model") or str(cfg.model._target_).rsplit(".", 1)[-1].lower(),
        "data": choices.get("data") or ("augmented" if cfg.data.augment_train else "base"),
        "seed": int(cfg.seed),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def summary_table(metrics: dict[str, float], names: list[str]) -> str:
    lines = [f"{'set':<10} {'accuracy':>9} {'loss':>10}", "-" * 31]
    for name in names:
        if f"{name}/acc" in metrics:
            lines.append(f"{name:<10} {metrics[f'{name}/acc']:>9.4f} {metrics[f'{name}/loss']:>10.5f}")
    return "\n".join(lines)


def hparams_of(cfg: DictConfig, info: dict[str, Any]) -> dict[str, Any]:
    return {
        **info,
        "epochs": int(cfg.epochs),
        "batch_size": int(cfg.batch_size),
        "lr": float(cfg.optimizer.get("lr", math.nan)),
        "momentum": float(cfg.optimizer.get("momentum", 0.0)),
        "precision": str(cfg.trainer.get("precision", "32-true")),
        "source": str(cfg.data.root or "built-in hands"),
        "semantics": str(cfg.data.augmentation.get("semantics", "keras2")) if cfg.data.augmentation else "none",
    }


def build_run(
    cfg: DictConfig, extra_callbacks: tuple[L.Callback, ...] = ()
) -> tuple[FingersDataModule, HandGestureClassifier, L.Trainer]:
    """Seeds, then builds the datamodule, the module and the trainer of one run from ``cfg``.

    ``train`` uses it, and so does ``scripts/benchmark.py`` (with timing callbacks added),
    so the benchmark measures exactly the objects a run trains with.
    """
    resolve_config_precision(cfg)
    if not keep_freed_memory():
        log.debug("mallopt unavailable: the C library's default memory trimming stays")
    L.seed_everything(int(cfg.seed), workers=True)
    datamodule = build_datamodule(cfg.data)
    net = instantiate(cfg.model)
    module = HandGestureClassifier(
        net, optimizer=instantiate(cfg.optimizer), num_classes=int(cfg.model.get("num_classes", 6)),
        eval_names=datamodule.eval_names, channels_last=bool(cfg.channels_last),
    )  # fmt: skip
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + [FirstStepTimer(), *extra_callbacks]
    if cfg.trainer.get("enable_progress_bar") is False:  # the flag wins over a configured bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    return datamodule, module, trainer


def train(cfg: DictConfig, started_at: float | None = None) -> dict[str, float]:
    """Train, checkpoint, cross-evaluate the best checkpoint; returns the final metrics."""
    started_at = started_at or time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    writes = is_rank_zero()  # DDP: the run folder is rank 0's alone
    out_dir.mkdir(parents=True, exist_ok=True)
    if writes:
        (out_dir / "failed.json").unlink(missing_ok=True)  # left by an earlier failed attempt here
    resolve_config_precision(cfg)  # config.yaml says which precision "auto" became here
    if writes:
        OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    info = run_name(cfg)
    datamodule, module, trainer = build_run(cfg)
    timer = next(c for c in trainer.callbacks if isinstance(c, FirstStepTimer))
    eval_names = datamodule.eval_names

    fit_start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    fit_seconds = time.perf_counter() - fit_start
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    result: dict[str, Any] = {
        **info,
        "status": "trained",
        "precision": str(cfg.trainer.precision),
        "epochs_run": trainer.current_epoch,
        "best_checkpoint": best,
        "best_val_acc": float(checkpoint.best_model_score) if best and checkpoint.best_model_score is not None else None,
        "fit_seconds": round(fit_seconds, 2),
        "startup_seconds": round(timer.first_step_at - started_at, 2) if timer.first_step_at else None,
        "train_images_per_second": round(trained_images(trainer, datamodule) / fit_seconds, 1),
    }  # fmt: skip
    if writes:
        write_json(out_dir / "metrics.json", result)

    eval_start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.split("/")[0] in eval_names}
    confusion = {k: v.tolist() for k, v in module.confusion.items()}
    per_class = {
        k: {CLASS_NAMES[i]: (row[i] / max(1, sum(row))) for i, row in enumerate(m)} for k, m in confusion.items()
    }
    result.update(
        status="done", metrics=metrics, per_class_acc=per_class, confusion=confusion,
        eval_seconds=round(time.perf_counter() - eval_start, 2),
        wall_seconds=round(time.perf_counter() - started_at, 2),
    )  # fmt: skip
    if writes:
        write_json(out_dir / "metrics.json", result)
    log_final(trainer, cfg, info, metrics, module.confusion)
    log.info("results of %s on %s (seed %d), best checkpoint:\n%s", info["model"], info["data"], info["seed"],
             summary_table(metrics, eval_names))  # fmt: skip
    print(
        f"\n{info['model']} / {info['data']} / seed {info['seed']} -> {out_dir}\n{summary_table(metrics, eval_names)}"
    )
    return metrics


def log_final(trainer: L.Trainer, cfg: DictConfig, info: dict, metrics: dict, confusion: dict) -> None:
    """HPARAMS with the real final metrics, and the test confusion matrix as an image."""
    hp_metrics = {f"hp/{k.replace('/', '_')}": v for k, v in metrics.items()}
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams_of(cfg, info), metrics=hp_metrics)
    writer = tensorboard_writer(trainer)
    if writer is not None and "test" in confusion:
        writer.add_figure("confusion/test", confusion_figure(confusion["test"], "test, best checkpoint"), 0)
        writer.flush()
