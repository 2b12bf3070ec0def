"""HandGestureClassifier: the one LightningModule, given any architecture.

It holds the training logic of the study (Keras 'sgd' + categorical cross-entropy) and
nothing about a particular network. Validation and evaluation metrics are torchmetrics
objects, one per stage and per evaluation set, so no stage ever reads another's state;
training keeps two running sums on the device instead (see ``training_step``). All are
reduced once per epoch rather than synchronised every step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from handgestures.models.build import build_net
from handgestures.models.pretrained import load_pretrained

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def _sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.0)


class HandGestureClassifier(L.LightningModule):
    """Trains ``net`` (logits out) with cross-entropy; predicts softmax probabilities.

    Args:
        net: a plain ``nn.Module`` mapping ``(B, 1, H, W)`` to ``(B, num_classes)`` logits.
        optimizer: a factory ``params -> Optimizer`` (Hydra ``_partial_: true``); the
            study's Keras 'sgd' (lr 0.01, no momentum) when omitted.
        eval_names: names of the dataloaders given to ``trainer.test`` (for example
            ``train``, ``val``, ``test``, ``train_aug``, ...); metrics are logged as
            ``<name>/acc`` and ``<name>/loss``.
        channels_last: keep weights and activations in channels-last layout (faster
            convolutions on CPU with bf16, and on GPUs).
        net_spec: the network as Hydra ``_target_`` + arguments; saved in checkpoints, and
            ``net`` is built from it when omitted, so ``load_from_checkpoint(path)`` needs
            no other argument (see :mod:`handgestures.training.checkpoint`).
        description: what a checkpoint says about its run (classes, preprocessing, data,
            seed, epochs, precision, version: :func:`handgestures.training.checkpoint.describe_run`).
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        optimizer: OptimizerFactory | None = None,
        num_classes: int = 6,
        eval_names: Sequence[str] = ("test",),
        channels_last: bool = True,
        net_spec: Mapping[str, Any] | None = None,
        description: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer"], logger=False)
        if net is None:
            if net_spec is None:
                raise ValueError("HandGestureClassifier needs a net, or a net_spec (_target_ + arguments) to build it")
            net = build_net(net_spec)
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.optimizer_factory = optimizer or _sgd
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_loss = MeanMetric()  # a metric object, so that DDP reduces it over every image once
        self.eval_names = list(eval_names)
        # ModuleDict keys may not shadow Module attributes ("train"), hence the "set_" prefix
        self.eval_acc = nn.ModuleDict(
            {f"set_{k}": MulticlassAccuracy(num_classes, average="micro") for k in eval_names}
        )
        self.eval_loss = nn.ModuleDict({f"set_{k}": MeanMetric() for k in eval_names})
        self.eval_confusion = nn.ModuleDict({f"set_{k}": MulticlassConfusionMatrix(num_classes) for k in eval_names})
        self.confusion: dict[str, torch.Tensor] = {}
        self._train_loss_sum = torch.zeros(())  # batch-size-weighted sum of this epoch's losses
        self._train_correct = torch.zeros((), dtype=torch.long)  # right predictions this epoch
        self._train_seen = 0

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> HandGestureClassifier:
        """The classifier of a model folder (``export.py format=hf``: config.json + model.safetensors), without pickle.

        The network is built from config.json's ``net_spec`` and its weights read from
        safetensors (:func:`handgestures.models.pretrained.load_pretrained`); the module carries
        the folder's description as a checkpoint would, so it can be evaluated, fine-tuned or
        saved again. ``Predictor.from_pretrained`` is the inference-side twin (its run's precision).
        """
        net, config = load_pretrained(folder)
        return cls(net=net, num_classes=config["num_classes"], channels_last=bool(config.get("channels_last", True)),
                   net_spec=config["net_spec"], description=config.get("description")).eval()  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    # Training and validation: epoch-level loss and accuracy. They go to callback_metrics
    # (checkpointing, progress bar); the EpochMetrics callback writes them per epoch.
    #
    # Training accumulates on its own and logs once per epoch, at the epoch's last batch:
    # each `self.log` call costs Lightning bookkeeping, and a torchmetrics update far more
    # than the two tensor ops here (docs/performance.md). The values are those `self.log(on_epoch=True)` and
    # MulticlassAccuracy(average="micro") gave (batch-size-weighted mean loss, right
    # predictions over images seen, argmax of the logits), and nothing syncs: the sums stay
    # tensors until the epoch ends.
    def on_train_epoch_start(self) -> None:
        self._train_loss_sum = torch.zeros((), device=self.device)
        self._train_correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._train_seen = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self._train_correct += (logits.detach().argmax(dim=1) == y).sum()
        self._train_loss_sum += loss.detach() * len(y)
        self._train_seen += len(y)
        if self._last_training_batch():
            # batch_size=1: Lightning's epoch mean of this single value is then the value itself
            loss_sum, correct, seen = self._epoch_sums()
            self.log("train/loss", loss_sum / seen, on_step=False, on_epoch=True, batch_size=1, logger=False)
            self.log("train/acc", correct / seen, on_step=False, on_epoch=True, batch_size=1,
                     logger=False, prog_bar=True)  # fmt: skip
        return loss

    def _epoch_sums(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This epoch's loss sum, right predictions and images seen, summed over DDP processes."""
        sums = torch.stack([self._train_loss_sum.float(), self._train_correct.float(),
                            torch.tensor(float(self._train_seen), device=self._train_loss_sum.device)])  # fmt: skip
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
        return sums[0], sums[1], sums[2]

    def _last_training_batch(self) -> bool:
        """Whether this batch ends the epoch (its last batch, or the run's ``max_steps``)."""
        trainer = self._trainer
        if trainer is None:
            return True  # called outside a Trainer: every batch is reported
        if trainer.is_last_batch:
            return True
        return trainer.max_steps > 0 and trainer.global_step + 1 >= trainer.max_steps

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc.update(logits, y)
        self.val_loss.update(F.cross_entropy(logits.float(), y, reduction="none"))
        self.log("val/loss", self.val_loss, on_epoch=True, logger=False, prog_bar=True)
        self.log("val/acc", self.val_acc, on_epoch=True, logger=False, prog_bar=True)

    # Evaluation of one model on several named sets (the study's cross-evaluation).
    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y = batch
        key = f"set_{self.eval_names[dataloader_idx]}"
        logits = self(x).float()
        self.eval_loss[key].update(F.cross_entropy(logits, y, reduction="none"))
        self.eval_acc[key].update(logits, y)
        self.eval_confusion[key].update(logits, y)

    def on_test_epoch_end(self) -> None:
        # not sent to the logger here: "train/acc" would collide with the training curve;
        # train() writes the final metrics to TensorBoard (handgestures.training.tb_layout.write_final)
        for name in self.eval_names:
            key = f"set_{name}"
            if self.eval_loss[key].update_count == 0:
                continue  # that set was not evaluated in this call
            self.log(f"{name}/acc", self.eval_acc[key].compute(), add_dataloader_idx=False, logger=False)
            self.log(f"{name}/loss", self.eval_loss[key].compute(), add_dataloader_idx=False, logger=False)
            self.confusion[name] = self.eval_confusion[key].compute().cpu()
            for metrics in (self.eval_acc, self.eval_loss, self.eval_confusion):
                metrics[key].reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds the split sizes the run used to the checkpoint's description."""
        hparams = checkpoint.get("hyper_parameters") or {}
        splits = getattr(getattr(self._trainer, "datamodule", None), "splits", None)
        if hparams.get("description") is not None and splits:
            hparams["description"] = {**hparams["description"], "split_sizes": {k: len(v) for k, v in splits.items()}}

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).float().softmax(dim=-1)
