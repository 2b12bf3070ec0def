"""optimizer=sgd_clipped: the study's SGD steps, with the gradient norm over all layers capped at trainer.gradient_clip_val."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from helpers import TINY, compose_train

from handgestures.training.train import build_run


class StepSizes(L.Callback):
    """The norm, over all parameters, of what each optimizer step changed."""

    def __init__(self) -> None:
        self.sizes: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        moved = sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(pl_module.parameters(), self.before))
        self.sizes.append(math.sqrt(moved))


def step_sizes(tmp_path, monkeypatch, *overrides: str) -> list[float]:
    monkeypatch.setenv("HANDGESTURES_CACHE", str(tmp_path / "cache"))
    cfg = compose_train([*TINY, "epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                         "trainer.precision=32-true", "model.fused=false", *overrides], tmp_path / "run")  # fmt: skip
    sizes = StepSizes()
    datamodule, module, trainer = build_run(cfg, (sizes,))
    trainer.fit(module, datamodule=datamodule)
    return sizes.sizes


@pytest.mark.parametrize("clip", [1e-3, 0.05])
def test_a_clipped_step_is_lr_times_the_cap_and_plain_steps_are_larger(tmp_path, monkeypatch, clip):
    plain = step_sizes(tmp_path / "plain", monkeypatch)
    clipped = step_sizes(
        tmp_path / "clipped", monkeypatch, "optimizer=sgd_clipped", f"trainer.gradient_clip_val={clip}"
    )
    assert len(plain) == len(clipped) == 3
    assert all(size > 0.01 * clip * 2 for size in plain)  # the study's steps: lr x a gradient norm far above the cap
    for size in clipped:  # SGD without momentum: the step is lr x the clipped gradient, whose norm is the cap
        assert size == pytest.approx(0.01 * clip, rel=1e-3)


def test_the_default_cap_leaves_an_ordinary_step_as_the_study_made_it(tmp_path, monkeypatch):
    """The first steps of a run have gradient norms far below 20: sgd_clipped takes the study's steps."""
    plain = step_sizes(tmp_path / "plain", monkeypatch)
    clipped = step_sizes(tmp_path / "clipped", monkeypatch, "optimizer=sgd_clipped")
    assert clipped == pytest.approx(plain, rel=1e-6) and torch.tensor(plain).max() < 0.01 * 20
