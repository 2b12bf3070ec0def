"""The training progress bar redraws on time, whatever the batch rate, and shows images/s."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from handgestures.training.progress import THROUGHPUT_KEY, TimedProgressBar, batch_size_of

BATCHES, BATCH = 12, 4


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowModel(L.LightningModule):
    """A linear model whose every training batch takes ``seconds`` on the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)
        self.clock, self.seconds = clock, seconds

    def training_step(self, batch, batch_idx):
        self.clock.now += self.seconds
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def drawn_steps(seconds_per_batch: float, capsys) -> tuple[list[int], str]:
    """Trains one epoch of BATCHES batches; returns the batch counts the bar showed, in order, and its text."""
    clock = FakeClock()
    data = TensorDataset(torch.randn(BATCHES * BATCH, 3), torch.randint(0, 2, (BATCHES * BATCH,)))
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[TimedProgressBar(refresh_seconds=0.5, clock=clock)], accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(SlowModel(clock, seconds_per_batch), DataLoader(data, batch_size=BATCH))
    out = capsys.readouterr().out
    shown = [int(n) for n in re.findall(rf"Epoch 0:[^\r\n]*?\b(\d+)/{BATCHES}\b", out)]
    return [n for i, n in enumerate(shown) if i == 0 or n != shown[i - 1]], out


def test_fast_batches_redraw_when_the_last_redraw_is_half_a_second_old(capsys):
    steps, out = drawn_steps(0.2, capsys)  # 2.5 batches per redraw interval
    assert steps == [0, 3, 6, 9, 12]  # by time (0.6 s, 1.2 s, ...), and at the last batch
    assert f"{THROUGHPUT_KEY}=20" in out  # 4 images per 0.2 s


def test_slow_batches_redraw_after_every_batch(capsys):
    steps, out = drawn_steps(2.0, capsys)  # IvanNet on a CPU: one batch every ~0.5 s or slower
    assert steps == list(range(BATCHES + 1))
    assert f"{THROUGHPUT_KEY}=2" in out and f"{THROUGHPUT_KEY}=20" not in out


@pytest.mark.parametrize(
    ("batch", "size"),
    [((torch.zeros(5, 1, 2, 2), torch.zeros(5)), 5), ({"image": torch.zeros(7, 3)}, 7), ([], 0), (torch.zeros(3), 3)],
)
def test_images_are_counted_from_the_batch_as_the_step_receives_it(batch, size):
    assert batch_size_of(batch) == size


def test_a_negative_interval_is_refused():
    with pytest.raises(ValueError, match="refresh_seconds"):
        TimedProgressBar(refresh_seconds=-1)
