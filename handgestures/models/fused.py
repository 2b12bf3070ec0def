"""A valid convolution followed by non-overlapping max-pooling, as one batched matrix product.

CarlosNet's first block (a 3x3 convolution from 1 to 4 channels on 128x128 images, then a
3x3/3 max-pool) is a poor fit for oneDNN's convolution and pooling kernels: with one input
and four output channels neither vectorises well. Per batch of 32 on a 2-core CPU
(``scripts/bench_carlosnet.py``, forward + backward, channels_last) the pair took 2.8 + 3.0
ms in fp32 and 3.2 + 5.4 ms in bf16, most of a 10 ms training step.
:func:`conv_maxpool2d` computes the same thing differently:

1. every pooling window's input patch (``k + p - 1`` pixels square) is copied out once, into
   a ``(B, C_in * (k+p-1)^2, H_out * W_out)`` tensor;
2. one batched matrix product with a weight matrix that holds the kernel at each of the
   ``p * p`` positions of the window gives all convolution outputs of an image, grouped by
   window position;
3. a max over those ``p * p`` groups (``max_pool2d`` on a channels-last view, so the
   reduction runs across thousands of contiguous "channels" per image, vectorises, and
   splits the batch between threads) pools them;
4. the bias is added after the max (``max(s_i) + b == max(s_i + b)``: rounding is monotone).

Keeping the batch outermost matters: the same computation as one unbatched product, with
the batch inside the columns, left the max on one thread and the weight gradient as one
product with a 56,448-long inner dimension. ``scripts/bench_carlosnet.py`` measured whole
CarlosNet training steps at 1.43x the unfused model's speed that way and 1.66x batched
(bf16, channels_last; fp32: 1.01x and 1.14x).

Tie-breaking is MaxPool2d's: the first maximum in row-major window order wins and receives
the gradient. The backward pass scatters the pooled gradient to the winning positions and
computes the weight gradient with one batched matrix product; the input gets no gradient, so
the op is only for inputs that do not require one (the caller falls back otherwise).
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@cache
def _weight_index(c_out: int, c_in: int, k: int, p: int) -> torch.Tensor:
    """Where each entry of the window weight matrix comes from in the flattened kernel.

    Row ``(dy * p + dx) * c_out + c`` holds output channel ``c`` at window position
    ``(dy, dx)``; column ``ci * win^2 + u * win + v`` is input channel ``ci``, patch pixel
    ``(u, v)``. Entries outside the kernel point one past its end (a zero appended there).
    """
    win = k + p - 1
    index = torch.full((p * p * c_out, c_in * win * win), c_out * c_in * k * k, dtype=torch.long)
    c, ci, ky, kx = torch.meshgrid(*(torch.arange(n) for n in (c_out, c_in, k, k)), indexing="ij")
    source = ((c * c_in + ci) * k + ky) * k + kx
    for dy in range(p):
        for dx in range(p):
            rows = (dy * p + dx) * c_out + c
            cols = ci * win * win + (dy + ky) * win + (dx + kx)
            index[rows, cols] = source
    return index


class _MaxOverRows(torch.autograd.Function):
    """``y.max(1)`` for ``y`` of shape ``(B, P, M)``, first maximum wins (MaxPool2d's rule)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = y.contiguous()
        batch, rows, m = y.shape
        # (B, M, P, 1) with channels-last strides is the same memory: max_pool2d then reduces
        # over P for M contiguous channels at once, and splits the batch between threads.
        view = y.as_strided((batch, m, rows, 1), (rows * m, 1, m, m))
        values, index = F.max_pool2d(view, (rows, 1), return_indices=True)
        ctx.save_for_backward(index.view(batch, 1, m))
        ctx.rows, ctx.dtype = rows, y.dtype
        return values.view(batch, m)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        batch, _, m = index.shape
        grad = grad.to(ctx.dtype).reshape(batch, 1, m).contiguous()
        # scatter_ on bf16/fp16 takes a slow copying path; the same bits as integers do not.
        bits = _BITS[grad.element_size()]
        out = torch.zeros((batch, ctx.rows, m), dtype=bits, device=grad.device)
        return out.scatter_(1, index, grad.view(bits)).view(ctx.dtype)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast gives matrix products on ``device_type`` now; None when it is off."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def conv_maxpool2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    pool: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """``F.max_pool2d(F.conv2d(x, weight, bias), pool)`` for an ``x`` that needs no gradient.

    The convolution is valid (no padding), stride 1, undilated and ungrouped; the pooling
    has kernel = stride = ``pool`` and drops incomplete windows, as ``nn.MaxPool2d(pool)``.
    Under autocast the product runs in the autocast dtype, as ``conv2d`` would. The result
    is laid out in ``memory_format`` (``torch.channels_last`` or ``torch.contiguous_format``).
    """
    if x.requires_grad:
        raise ValueError("conv_maxpool2d gives no gradient to its input; use conv2d + max_pool2d for x that requires one")
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[1] != x.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"expected x (B, C, H, W) and a square kernel (C_out, C, k, k), got {tuple(x.shape)} and {tuple(weight.shape)}")
    batch, c_in, height, width = x.shape
    c_out, _, k, _ = weight.shape
    win = k + pool - 1
    out_h, out_w = (height - k + 1) // pool, (width - k + 1) // pool
    if out_h < 1 or out_w < 1:
        raise ValueError(f"input {height}x{width} is too small for a {k}x{k} convolution and {pool}x{pool} pooling")
    dtype = _autocast_dtype(x.device.type) or x.dtype
    x = x.to(dtype)
    index = _weight_index(c_out, c_in, k, pool).to(x.device)
    kernel = torch.cat([weight.reshape(-1), weight.new_zeros(1)])[index].to(dtype)

    sb, sc, sh, sw = x.stride()
    patches = x.as_strided(
        (batch, c_in, win, win, out_h, out_w), (sb, sc, sh, sw, pool * sh, pool * sw)
    ).reshape(batch, c_in * win * win, out_h * out_w)
    # (B, pool^2 * c_out, out_h * out_w), window position outermost in each image: a batched
    # product (its weight gradient is one too, summed over the batch). torch.matmul would
    # fold the batch into one product instead, and copy its input, output and gradient.
    conv = torch.bmm(kernel.expand(batch, -1, -1), patches)
    pooled = _MaxOverRows.apply(conv.view(batch, pool * pool, c_out * out_h * out_w)).view(batch, c_out, out_h, out_w)
    if bias is not None:
        pooled = pooled + bias.to(dtype).view(1, c_out, 1, 1)
    return pooled.contiguous(memory_format=memory_format)
