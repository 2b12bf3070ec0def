"""Keras default initialisation for PyTorch layers.

Keras initialises every ``Conv2D`` and ``Dense`` kernel with ``glorot_uniform`` and every
bias with zeros; PyTorch's default (``kaiming_uniform_(a=sqrt(5))`` plus a random bias) is
a different distribution. The fans agree (``cin*kh*kw`` / ``cout*kh*kw``), so
``xavier_uniform_`` reproduces Keras exactly.
"""

from __future__ import annotations

import math

from torch import nn


def glorot_bound(layer: nn.Conv2d | nn.Linear) -> float:
    """The uniform bound ``sqrt(6 / (fan_in + fan_out))`` Keras uses for ``layer``."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    return math.sqrt(6.0 / (fan_in + fan_out))


def keras_init_(module: nn.Module) -> nn.Module:
    """Re-initialise every Conv2d and Linear in ``module`` as Keras would; returns it."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
