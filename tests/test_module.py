"""HandGestureClassifier's training bookkeeping, checked against values computed apart."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handgestures.training.module import HandGestureClassifier


class Recorder(L.Callback):
    """Keeps every training batch's logits (from a forward hook) and labels."""

    def __init__(self, net: nn.Module) -> None:
        self.logits: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        net.register_forward_hook(lambda m, i, out: self.logits.append(out.detach().clone()) if m.training else None)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.labels.append(batch[1].clone())


@pytest.mark.parametrize("epochs", [1, 2])
def test_epoch_loss_and_accuracy_are_the_weighted_means_of_the_batches(epochs):
    torch.manual_seed(0)
    n, batch = 70, 32  # the last batch holds 6 images: weighting by batch size matters
    x = torch.randn(n, 1, 4, 4)
    y = torch.randint(0, 6, (n,))
    x.view(n, 16)[torch.arange(50), y[:50]] += 3.0  # most images point at their class
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6))
    with torch.no_grad():  # logits start as the first six pixels: right about 3/4 of the time
        net[1].weight.copy_(torch.eye(6, 16))
        net[1].bias.zero_()
    module = HandGestureClassifier(net, channels_last=False)
    recorder = Recorder(net)
    trainer = L.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, accelerator="cpu", callbacks=[recorder],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True))

    per_epoch = 3
    assert len(recorder.logits) == len(recorder.labels) == per_epoch * epochs
    logits, labels = recorder.logits[-per_epoch:], recorder.labels[-per_epoch:]  # the last epoch's
    correct = sum(int((lg.argmax(1) == lb).sum()) for lg, lb in zip(logits, labels, strict=True))
    assert 0.5 < correct / n < 1.0
    loss_sum = sum(float(F.cross_entropy(lg, lb)) * len(lb) for lg, lb in zip(logits, labels, strict=True))
    metrics = trainer.callback_metrics
    assert float(metrics["train/acc"]) == pytest.approx(correct / n, abs=1e-7)
    assert float(metrics["train/loss"]) == pytest.approx(loss_sum / n, rel=1e-6)
    # the batches were not all alike: an unweighted mean of batch losses is a different value
    unweighted = sum(float(F.cross_entropy(lg, lb)) for lg, lb in zip(logits, labels, strict=True)) / per_epoch
    assert abs(unweighted - loss_sum / n) > 1e-4
