"""Training health: see a collapse happen, and say at which step and in which layer.

A collapse of IvanNet to chance has one signature: a ReLU layer whose every unit is zero for
every image (a dead layer) leaves the logits constant, the loss at ln 6 and no gradient below
it. :class:`TrainingHealth` records, every epoch, into epochs.csv and TensorBoard
(``health/...``, in the run's one TensorBoard run, below the curves):

* ``dead/<layer>``: the fraction of dead ReLU units of each layer on a fixed probe batch (the
  first validation images): a unit (a channel of a convolution, a neuron of a dense layer) is
  dead when it is zero for every probe image and every position;
* ``grad_norm/<layer>``: the mean over the epoch's steps of the gradient norm of each layer's
  weights and bias (as the optimizer is about to use them);
* ``max_abs_logit``: the largest absolute logit on the probe batch.

And it keeps in memory, for the current and the previous epoch, the loss and the per-layer
gradient norms of every step. When the collapse guard fires
(:class:`~handgestures.training.guards.CollapseWatch`) they are written to
``collapse_steps_epoch<E>.csv`` in the run folder (E: the epoch of the fall), and
:func:`diagnose` names the first layer found fully dead and the step from which it stayed dead,
and the step whose gradient norm ran furthest away and in which layer (metrics.json's
``collapse.diagnosis``; :func:`diagnosis_text` is its sentence in the log). With ``write_steps=True`` every epoch's per-step rows
also go to ``steps.csv`` in the run folder (the norms are those before any gradient clipping, so
the file shows which steps a ``trainer.gradient_clip_val`` acted on).

Layers are named in forward order: ``conv1``, ``conv2``, ... for convolutions, ``fc1``, ... for
hidden dense layers, ``out`` for the last one; a ReLU takes the name of the layer before it.
The cost (one probe forward per epoch, one norm per layer per step) is measured by
``benchmarks/health.py``.
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
from collections import deque
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from handgestures.training.tb_layout import tensorboard_writer

log = logging.getLogger(__name__)

STEPS_FILE = "collapse_steps_epoch{epoch:03d}.csv"  # one per fall of validation accuracy
ALL_STEPS_FILE = "steps.csv"  # every epoch's per-step rows, with write_steps=True
TB_PREFIX = "health/"


def layer_names(net: nn.Module) -> tuple[dict[str, list[nn.Parameter]], dict[str, nn.Module]]:
    """(parameters of each weighted layer, each ReLU module), keyed by the names of the module docstring."""
    weighted = [m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    last_linear = next((m for m in reversed(weighted) if isinstance(m, nn.Linear)), None)
    names: dict[int, str] = {}
    counts = {"conv": 0, "fc": 0}
    for m in weighted:
        if m is last_linear:
            names[id(m)] = "out"
            continue
        kind = "fc" if isinstance(m, nn.Linear) else "conv"
        counts[kind] += 1
        names[id(m)] = f"{kind}{counts[kind]}"
    params = {names[id(m)]: [p for p in m.parameters() if p.requires_grad] for m in weighted}
    relus: dict[str, nn.Module] = {}
    current = None
    for m in net.modules():
        if id(m) in names:
            current = names[id(m)]
        elif isinstance(m, nn.ReLU) and current is not None and current not in relus:
            relus[current] = m
    return params, relus


def dead_fractions(net: nn.Module, relus: dict[str, nn.Module], probe: torch.Tensor) -> tuple[dict[str, float], float]:
    """(dead fraction of each ReLU layer, largest absolute logit) of ``net`` on ``probe``."""
    alive: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            dims = [d for d in range(output.dim()) if d != 1]  # every image and position; dim 1 = units
            alive[name] = (output.detach() > 0).any(dim=dims) if output.dim() > 1 else output.detach() > 0

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in relus.items()]
    try:
        with torch.no_grad():
            logits = net(probe)
    finally:
        for h in handles:
            h.remove()
    dead = {name: float(1.0 - alive[name].float().mean()) for name in relus if name in alive}
    return dead, float(logits.detach().float().abs().max())


def _trailing_start(steps: list[dict[str, float]], holds) -> int | None:
    """Index of the first of the last steps for which ``holds(step)`` is true (None if the last is not)."""
    start = None
    for i in range(len(steps) - 1, -1, -1):
        if not holds(steps[i]):
            break
        start = i
    return start


def diagnose(steps: list[dict[str, float]], dead: dict[str, float], num_classes: int = 6) -> dict[str, Any]:
    """Where a collapse happened: the layer that died, and the step from which it stayed dead.

    ``steps`` are per-step rows (``epoch``, ``step``, ``loss``, ``grad_norm/<layer>``); ``dead``
    the dead fractions measured after the collapse. The layer is the first (in forward order)
    ReLU layer found fully dead, where the signal stops; every fully dead layer is listed too.
    A dead layer passes no gradient to its own weights, so the step is the first of the last
    steps whose gradient norm there is exactly zero. Without a dead layer (the logits constant
    for another reason) the step is where the training loss reached ln(num_classes) and stayed
    (within 0.05). Neither may hold: a fall of the validation accuracy alone, the weights at the
    epoch's end predicting one class while the training loss moves on. In every case ``runaway``
    is the kept step with the largest gradient norm (all layers together), its ratio to the
    median step and the layer whose norm there is furthest above its own median: where the
    step that did it is to be looked for (None without per-layer norms).
    """
    fully_dead = [name for name, fraction in dead.items() if fraction >= 1.0]
    layer = fully_dead[0] if fully_dead else None
    key = f"grad_norm/{layer}"
    if layer is not None and steps and key in steps[0]:
        start = _trailing_start(steps, lambda s: s[key] == 0.0)
    else:
        start = _trailing_start(steps, lambda s: abs(s["loss"] - math.log(num_classes)) <= 0.05)
    result: dict[str, Any] = {"layer": layer, "dead_layers": fully_dead, "dead": dead,
                              "epoch": None, "step": None, "loss_before": None}  # fmt: skip
    if start is not None:
        result.update(epoch=int(steps[start]["epoch"]), step=int(steps[start]["step"]),
                      loss_before=steps[start - 1]["loss"] if start > 0 else None)  # fmt: skip
    result["runaway"] = runaway_step(steps)
    return result


def runaway_step(steps: list[dict[str, float]]) -> dict[str, Any] | None:
    """The step of ``steps`` with the largest gradient norm, all layers together, as :func:`diagnose` reports it.

    ``ratio`` is its norm over the median step's; ``layer`` the layer whose norm at that step is
    the largest multiple of its own median over ``steps``. None without ``grad_norm/`` columns.
    """
    keys = [k for k in (steps[0] if steps else {}) if k.startswith("grad_norm/")]
    if not keys:
        return None
    totals = [math.sqrt(sum(float(s[k]) ** 2 for k in keys)) for s in steps]
    i = max(range(len(steps)), key=totals.__getitem__)
    medians = {k: statistics.median(float(s[k]) for s in steps) for k in keys}
    rel = {k: float(steps[i][k]) / medians[k] for k in keys if medians[k] > 0}
    median_total = statistics.median(totals)
    return {
        "epoch": int(steps[i]["epoch"]), "step": int(steps[i]["step"]), "loss": float(steps[i]["loss"]),
        "grad_norm": totals[i], "ratio": totals[i] / median_total if median_total > 0 else None,
        "layer": max(rel, key=rel.__getitem__).removeprefix("grad_norm/") if rel else None,
    }  # fmt: skip


def diagnosis_text(diagnosis: dict[str, Any], num_classes: int = 6) -> str:
    """One sentence on :func:`diagnose`'s result, true in each of its cases, for the console and the log."""
    dead = {k: round(v, 3) for k, v in diagnosis.get("dead", {}).items()}
    if diagnosis.get("layer") is not None:
        where = (f"ReLU layer {diagnosis['layer']} is fully dead" + (
            f", its gradient zero from epoch {diagnosis['epoch']}, step {diagnosis['step']}"
            if diagnosis.get("step") is not None else ""))  # fmt: skip
    elif diagnosis.get("step") is not None:
        where = (f"the training loss reached ln {num_classes} at epoch {diagnosis['epoch']}, step "
                 f"{diagnosis['step']} and stayed; no ReLU layer is fully dead")  # fmt: skip
    else:
        where = (f"the training loss did not stay at ln {num_classes} and no ReLU layer is fully dead: "
                 "the weights at the epoch's end fell, not the training")  # fmt: skip
    text = f"{where} (dead fractions {dead})"
    if run := diagnosis.get("runaway"):
        ratio = f", {run['ratio']:.0f}x the median step" if run.get("ratio") else ""
        text += (f"; the largest gradient norm kept: {run['grad_norm']:.1f}{ratio}, at epoch {run['epoch']}, "
                 f"step {run['step']} (loss {run['loss']:.3f}), furthest above its median in {run['layer']}")  # fmt: skip
    return text


def append_steps(path: Path, epoch: int, rows: list[dict[str, Any]]) -> None:
    """Writes ``rows`` (epoch ``epoch``'s steps) to ``path`` after its rows of earlier epochs.

    Rows of this epoch or later already there (a run killed after writing them and resumed from
    the checkpoint before) are replaced, so a resumed run's file holds each step once.
    """
    if not rows:
        return
    kept: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="") as fh:
            kept = [r for r in csv.DictReader(fh) if int(r["epoch"]) < epoch]
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(kept)
        out.writerows(rows)


class TrainingHealth(L.Callback):
    """Per-epoch dead units, gradient norms and logits; per-step losses and gradient norms kept for a collapse.

    Args:
        probe_images: validation images in the fixed probe batch.
        keep_epochs: epochs of per-step data kept in memory (the current one and those before).
        write_steps: also write every epoch's per-step rows to ``steps.csv`` in the run folder.
    """

    def __init__(self, probe_images: int = 64, keep_epochs: int = 2, write_steps: bool = False) -> None:
        if probe_images < 1 or keep_epochs < 1:
            raise ValueError(f"probe_images={probe_images}, keep_epochs={keep_epochs}: expected integers >= 1")
        self.probe_images, self.keep_epochs = int(probe_images), int(keep_epochs)
        self.write_steps = bool(write_steps)
        self._probe: torch.Tensor | None = None
        self._params: dict[str, list[nn.Parameter]] = {}
        self._relus: dict[str, nn.Module] = {}
        self._flat: list[nn.Parameter] = []
        self._owners = torch.zeros(0, dtype=torch.long)
        self._epochs: deque[list[dict[str, Any]]] = deque(maxlen=self.keep_epochs)
        self._norms: list[torch.Tensor] = []  # this epoch's per-step norms, kept as tensors (no device sync)
        self._losses: list[torch.Tensor] = []
        self.row: dict[str, float] = {}
        self.dead: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._params, self._relus = layer_names(pl_module.net)
        # every parameter in one list and its layer's index, once: the per-step norm is one fused call
        self._flat = [p for params in self._params.values() for p in params]
        owners = [j for j, params in enumerate(self._params.values()) for _ in params]
        self._owners = torch.tensor(owners, dtype=torch.long, device=pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._norms, self._losses = [], []
        self._epochs.append([])

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        have = [i for i, p in enumerate(self._flat) if p.grad is not None]
        norms = torch.zeros(len(self._params), device=pl_module.device)
        if have:  # one fused kernel for every parameter's norm, as clip_grad_norm_ does
            squares = torch.stack(torch._foreach_norm([self._flat[i].grad.detach() for i in have])).float().pow(2)
            owners = self._owners if len(have) == len(self._flat) else self._owners[have]
            norms.index_add_(0, owners.to(squares.device), squares)
        self._norms.append(norms.sqrt())

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._losses.append(loss.detach().float())

    def _probe_batch(self, trainer: L.Trainer, device: torch.device) -> torch.Tensor | None:
        if self._probe is None:
            loaders = trainer.val_dataloaders
            loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
            if loader is None:
                return None
            datamodule = trainer.datamodule
            images = []
            for batch in loader:  # the loader's raw batches, prepared as validation prepares them (plain images)
                x, _ = (
                    datamodule.prepare_batch(batch, training=False) if hasattr(datamodule, "prepare_batch") else batch
                )
                images.append(x)
                if sum(len(b) for b in images) >= self.probe_images:
                    break
            if not images:
                return None
            self._probe = torch.cat(images)[: self.probe_images]
        return self._probe.to(device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        norms = torch.stack(self._norms).float().cpu() if self._norms else torch.zeros(0, len(self._params))
        losses = torch.stack(self._losses).cpu().tolist() if self._losses else []
        names = list(self._params)
        first = trainer.global_step - len(self._norms) + 1
        if (
            not self._epochs
        ):  # resumed from a checkpoint saved at the epoch's last batch: Lightning skips its start hook
            self._epochs.append([])
        self._epochs[-1].extend(
            {"epoch": epoch, "step": first + i, "loss": losses[i] if i < len(losses) else math.nan,
             **{f"grad_norm/{n}": float(v) for n, v in zip(names, norms[i].tolist())}}
            for i in range(len(norms))
        )  # fmt: skip
        if self.write_steps and trainer.is_global_zero:
            append_steps(Path(trainer.default_root_dir) / ALL_STEPS_FILE, epoch, self._epochs[-1])
        row = {f"grad_norm/{n}": float(norms[:, j].mean()) if len(norms) else math.nan for j, n in enumerate(names)}
        probe = self._probe_batch(trainer, pl_module.device)
        if probe is not None:
            with trainer.precision_plugin.forward_context():  # the numerics the network trains with
                self.dead, max_logit = dead_fractions(pl_module.net, self._relus, probe)
        else:
            self.dead, max_logit = {name: math.nan for name in self._relus}, math.nan
        row = {**{f"dead/{n}": v for n, v in self.dead.items()}, **row, "max_abs_logit": max_logit}
        self.row = row
        self._write_tensorboard(trainer, row, epoch)

    def _write_tensorboard(self, trainer: L.Trainer, row: dict[str, float], epoch: int) -> None:
        writer = tensorboard_writer(trainer) if trainer.is_global_zero else None
        if writer is None:
            return
        for key, value in row.items():
            if math.isfinite(value):
                writer.add_scalar(TB_PREFIX + key, value, epoch)

    def steps(self) -> list[dict[str, Any]]:
        """The per-step rows kept (the previous and the current epoch)."""
        return [row for epoch in self._epochs for row in epoch]

    def on_collapse(self, trainer: L.Trainer, event: dict[str, Any]) -> dict[str, Any]:
        """Called by the collapse guard at a new fall: writes the kept steps; returns the diagnosis for metrics.json."""
        steps = self.steps()
        diagnosis = diagnose(steps, self.dead, int(getattr(trainer.lightning_module.hparams, "num_classes", 6)))
        if trainer.is_global_zero and steps:
            path = Path(trainer.default_root_dir) / STEPS_FILE.format(epoch=int(event["epoch"]))
            with path.open("w", newline="") as fh:
                out = csv.DictWriter(fh, fieldnames=list(steps[0]))
                out.writeheader()
                out.writerows(steps)
            diagnosis["steps_file"] = path.name
            log.warning("collapse diagnosis: %s; per-step losses and gradient norms in %s", diagnosis_text(
                diagnosis, int(getattr(trainer.lightning_module.hparams, "num_classes", 6))), path)  # fmt: skip
        return diagnosis
