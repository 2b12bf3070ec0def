"""CarlosNet: the study's small network, 8,006 trainable parameters."""

from __future__ import annotations

import torch
from torch import nn

from handgestures.models.keras_init import keras_init_


class CarlosNet(nn.Module):
    """Three valid convolutions with aggressive pooling, then one dense softmax layer.

    Takes ``(B, 1, 128, 128)`` floats in [0, 1], returns ``(B, num_classes)`` logits
    (the Keras model's softmax is applied by the loss in training and by
    :meth:`predict_proba` at inference).

    Keras applies each convolution's ReLU before the pooling; here each block pools first.
    Max-pooling commutes with ReLU (a monotone function, and the pooled maximum is the same
    element either way), so outputs and gradients are the same bit for bit
    (tests/test_models.py checks it against the Keras order), while ReLU and its backward
    touch 4-9x fewer values: channels_last training steps are 1.08-1.11x faster in fp32 and
    about 1.03x in bf16 (``scripts/bench_carlosnet.py``). The layer indices,
    hence checkpoint keys, are those of the Keras order (ReLU and pooling hold no weights).

    >>> CarlosNet()(torch.zeros(2, 1, 128, 128)).shape
    torch.Size([2, 6])
    """

    def __init__(self, num_classes: int = 6, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 4, 3), nn.MaxPool2d(3), nn.ReLU(),  # 4x126x126 -> 4x42x42
            nn.Conv2d(4, 8, 5), nn.MaxPool2d(3), nn.ReLU(),  # 8x38x38 -> 8x12x12
            nn.Conv2d(8, 16, 7), nn.MaxPool2d(2), nn.ReLU(),  # 16x6x6 -> 16x3x3
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 3 * 3, num_classes))
        keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities, what the Keras model's output layer returned."""
        return self(x).softmax(dim=-1)
