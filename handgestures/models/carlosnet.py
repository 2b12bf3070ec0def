"""CarlosNet: the study's small network, 8,006 trainable parameters."""

from __future__ import annotations

import torch
from torch import nn

from handgestures.models.fused import conv_maxpool2d
from handgestures.models.keras_init import keras_init_

_HOOK_KINDS = ("forward_hooks", "forward_pre_hooks", "backward_hooks", "backward_pre_hooks")


class CarlosNet(nn.Module):
    """Three valid convolutions with aggressive pooling, then one dense softmax layer.

    Takes ``(B, 1, 128, 128)`` floats in [0, 1], returns ``(B, num_classes)`` logits
    (the Keras model's softmax is applied by the loss in training and by
    :meth:`predict_proba` at inference).

    Keras applies each convolution's ReLU before the pooling; here each block pools first.
    Max-pooling commutes with ReLU (a monotone function, and the pooled maximum is the same
    element either way), so outputs and gradients are the same bit for bit
    (tests/test_models.py checks it against the Keras order), while ReLU and its backward
    touch 4-9x fewer values, which makes training steps faster
    (``benchmarks/carlosnet.py``). The layer indices,
    hence checkpoint keys, are those of the Keras order (ReLU and pooling hold no weights).

    With ``fused=True`` (the default) the first convolution and its max-pool run on the CPU
    as one batched matrix product (:func:`handgestures.models.fused.conv_maxpool2d`): the
    same function, up to the order of float additions, with MaxPool2d's tie-breaking (tested
    in tests/test_fused.py), and the network reads only the 122x122 input pixels that reach
    its output (:meth:`_used_extent`; the others are dropped by flooring pools). Whole
    training steps are much faster so (``benchmarks/carlosnet.py``; figures in
    docs/performance.md).
    The layers run one by one, over the whole input, instead off the CPU, when the input
    needs a gradient (saliency maps), and when a hook watches the block.

    >>> CarlosNet()(torch.zeros(2, 1, 128, 128)).shape
    torch.Size([2, 6])
    """

    def __init__(self, num_classes: int = 6, in_channels: int = 1, fused: bool = True) -> None:
        super().__init__()
        self.fused = fused
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 4, 3),
            nn.MaxPool2d(3),
            nn.ReLU(),  # 4x126x126 -> 4x42x42
            nn.Conv2d(4, 8, 5),
            nn.MaxPool2d(3),
            nn.ReLU(),  # 8x38x38 -> 8x12x12
            nn.Conv2d(8, 16, 7),
            nn.MaxPool2d(2),
            nn.ReLU(),  # 16x6x6 -> 16x3x3
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 3 * 3, num_classes))
        keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fused_path(x):
            return self.classifier(self.features(x))
        conv, _, relu, *rest = self.features
        after = rest[0].weight  # the next convolution's layout decides the block's output layout
        channels_last = after.is_contiguous(memory_format=torch.channels_last) and not after.is_contiguous()
        rows, cols = (self._used_extent(n) for n in x.shape[-2:])
        h = conv_maxpool2d(
            x[..., :rows, :cols],
            conv.weight,
            conv.bias,
            3,
            torch.channels_last if channels_last else torch.contiguous_format,
        )
        for layer in (relu, *rest):
            h = layer(h)
        return self.classifier(h)

    def _used_extent(self, size: int) -> int:
        """How many leading rows (or columns) of a ``size``-long input reach the output.

        Valid convolutions and flooring max-pools drop the last rows that do not fill a
        window. On 128x128 inputs the second block's pool uses 36 of its convolution's 38
        rows, which read 40 of the first block's 42 rows, which read 122 of the 128 input
        rows: computing only those gives the same logits and gradients (the dropped values
        never reach the output) with 9-10% less work in the first two blocks.
        """
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        pools = [m for m in self.features if isinstance(m, nn.MaxPool2d)]
        sizes = [size]
        for conv, pool in zip(convs, pools):  # forward: the sizes every block gives
            sizes.append((sizes[-1] - conv.kernel_size[0] + 1) // pool.kernel_size)
        if sizes[-1] < 1:
            return size  # too small for the network: the layers themselves say so
        used = sizes[-1]
        for conv, pool in zip(reversed(convs), reversed(pools)):  # backward: the rows each block reads
            used = used * pool.kernel_size + conv.kernel_size[0] - 1
        return used

    def _fused_path(self, x: torch.Tensor) -> bool:
        """Whether the first block runs as :func:`conv_maxpool2d` (the same result, faster).

        Only on the CPU (where it was measured), for inputs that need no gradient, and when
        no hook watches the first block's layers: a hook there must see them run.
        """
        if not self.fused or x.device.type != "cpu" or x.requires_grad:
            return False
        module_globals = vars(nn.modules.module)
        hooked = any(module_globals.get(f"_global_{kind}") for kind in _HOOK_KINDS)
        return not hooked and not any(
            getattr(m, f"_{kind}", None) for m in (self, self.features, *self.features[:3]) for kind in _HOOK_KINDS
        )

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities, what the Keras model's output layer returned."""
        return self(x).softmax(dim=-1)
