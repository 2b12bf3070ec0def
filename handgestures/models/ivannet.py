"""IvanNet: the study's large network, 6,167,166 trainable parameters."""

from __future__ import annotations

import torch
from torch import nn

from handgestures.models.keras_init import keras_init_


def _conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k), nn.ReLU()]


class IvanNet(nn.Module):
    """Seven valid convolutions in three pooled blocks, then two hidden dense layers.

    Takes ``(B, 1, 128, 128)`` floats in [0, 1], returns ``(B, num_classes)`` logits.

    >>> IvanNet()(torch.zeros(1, 1, 128, 128)).shape
    torch.Size([1, 6])
    """

    def __init__(self, num_classes: int = 6, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv(in_channels, 20, 5),
            *_conv(20, 20, 5),
            nn.MaxPool2d(2),  # 20x60x60
            *_conv(20, 40, 3),
            *_conv(40, 40, 3),
            nn.MaxPool2d(2),  # 40x28x28
            *_conv(40, 80, 3),
            *_conv(80, 80, 3),
            *_conv(80, 80, 3),
            nn.MaxPool2d(2),  # 80x11x11
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(80 * 11 * 11, 600),
            nn.ReLU(),
            nn.Linear(600, 300),
            nn.ReLU(),
            nn.Linear(300, num_classes),
        )
        keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities, what the Keras model's output layer returned."""
        return self(x).softmax(dim=-1)
