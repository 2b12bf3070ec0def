"""A valid convolution followed by non-overlapping max-pooling, as one batched matrix product.

CarlosNet's first block (a 3x3 convolution from 1 to 4 channels on 128x128 images, then a
3x3/3 max-pool) is a poor fit for oneDNN's convolution and pooling kernels: with one input
and four output channels neither vectorises well, and the pair took most of a training step
(``benchmarks/carlosnet.py``; figures in docs/performance.md).
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
product with a 56,448-long inner dimension, both slower (``benchmarks/carlosnet.py``); the
single autograd node below, with CarlosNet reading only the input rows that reach its
output, is faster still (docs/performance.md).

Tie-breaking is MaxPool2d's: the first maximum in row-major window order wins and receives
the gradient. The block is one autograd node with its own backward: it scatters the pooled
gradient to the winning positions, computes the kernel gradient with one batched matrix
product and adds it back onto the weights with one ``index_add_``, and sums the bias
gradient along contiguous rows. Recorded op by op instead, the same forward made a dozen
autograd nodes, a layout copy of the gradient and a bias sum across the channels-last
layout; the node alone made the block 6-10% faster (forward + backward, bf16). The input
gets no gradient, so the op is only for inputs that do not require one (the caller falls
back otherwise).
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@cache
def _placement(c_out: int, c_in: int, k: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the kernel's weights go in the window weight matrix, as two aligned index lists.

    The matrix has row ``(dy * p + dx) * c_out + c`` for output channel ``c`` at window
    position ``(dy, dx)`` and column ``ci * win^2 + u * win + v`` for input channel ``ci``,
    patch pixel ``(u, v)``, with ``win = k + p - 1``. Weight ``source[i]`` of the flattened
    ``(c_out, c_in, k, k)`` kernel goes to entry ``target[i]`` of the flattened matrix; every
    other entry is zero. Each weight appears ``p * p`` times, once per window position.
    """
    win = k + p - 1
    c, ci, ky, kx = torch.meshgrid(*(torch.arange(n) for n in (c_out, c_in, k, k)), indexing="ij")
    source = ((c * c_in + ci) * k + ky) * k + kx
    sources, targets = [], []
    for dy in range(p):
        for dx in range(p):
            rows = (dy * p + dx) * c_out + c
            cols = ci * win * win + (dy + ky) * win + (dx + kx)
            sources.append(source.reshape(-1))
            targets.append((rows * c_in * win * win + cols).reshape(-1))
    return torch.cat(sources), torch.cat(targets)


class _ConvMaxPool(torch.autograd.Function):
    """The whole block, forward and backward, as one autograd node (see the module docstring).

    One node instead of the dozen that the same ops recorded one by one would make: no
    autograd bookkeeping between them, and a backward that takes the pooled gradient once
    into the layout the scatter wants, sums the bias gradient from that, and scatters the
    kernel gradient back onto the weights with one ``index_add_``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, pool, memory_format, dtype):  # type: ignore[override]
        batch, c_in, height, width = x.shape
        c_out, _, k, _ = weight.shape
        win = k + pool - 1
        out_h, out_w = (height - k + 1) // pool, (width - k + 1) // pool
        rows, m = pool * pool * c_out, c_in * win * win
        source, target = (t.to(x.device) for t in _placement(c_out, c_in, k, pool))
        kernel = weight.new_zeros(rows * m, dtype=dtype)
        kernel[target] = weight.reshape(-1)[source].to(dtype)
        x = x.to(dtype)
        sb, sc, sh, sw = x.stride()
        patches = x.as_strided((batch, c_in, win, win, out_h, out_w), (sb, sc, sh, sw, pool * sh, pool * sw)).reshape(
            batch, m, out_h * out_w
        )
        # (B, pool^2 * c_out, out_h * out_w), window position outermost in each image: a
        # batched product (the kernel gradient is one too, summed over the batch).
        # torch.matmul would fold the batch into one product instead, and copy its input.
        conv = torch.bmm(kernel.view(rows, m).expand(batch, -1, -1), patches)
        # (B, M, P, 1) with channels-last strides is the same memory as (B, P, M): max_pool2d
        # then reduces over the P window positions for M contiguous "channels" at once, and
        # splits the batch between threads. The first maximum wins, as in MaxPool2d.
        size = c_out * out_h * out_w
        view = conv.as_strided((batch, size, pool * pool, 1), (pool * pool * size, 1, size, size))
        values, index = F.max_pool2d(view, (pool * pool, 1), return_indices=True)
        values = values.view(batch, c_out, out_h, out_w)
        if bias is not None:  # after the max: max(s_i) + b == max(s_i + b), as rounding is monotone
            values.add_(bias.to(dtype).view(1, c_out, 1, 1))
        # in place, then one copy into the wanted layout: an add that writes channels-last
        # from this plain layout does not vectorise and takes longer than both together
        out = values.contiguous(memory_format=memory_format)
        ctx.save_for_backward(patches, index.view(batch, 1, size))
        ctx.shape = (c_out, c_in, k, pool)
        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        patches, index = ctx.saved_tensors
        c_out, c_in, k, pool = ctx.shape
        batch, _, size = index.shape
        grad = grad.to(patches.dtype).contiguous()  # (B, c_out, out_h, out_w), plain layout
        grad_bias = None
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = grad.view(batch, c_out, size // c_out).sum(2, dtype=torch.float32).sum(0).to(ctx.bias_dtype)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            # scatter_ on bf16/fp16 takes a slow copying path; the same bits as integers do not
            bits = _BITS[grad.element_size()]
            full = torch.zeros((batch, pool * pool, size), dtype=bits, device=grad.device)
            full = full.scatter_(1, index, grad.view(batch, 1, size).view(bits)).view(patches.dtype)
            rows = pool * pool * c_out
            kernel_grad = torch.bmm(full.view(batch, rows, size // c_out), patches.transpose(1, 2)).sum(
                0, dtype=torch.float32
            )
            source, target = (t.to(grad.device) for t in _placement(c_out, c_in, k, pool))
            grad_weight = torch.zeros(c_out * c_in * k * k, dtype=torch.float32, device=grad.device)
            grad_weight.index_add_(0, source, kernel_grad.view(-1)[target])
            grad_weight = grad_weight.view(c_out, c_in, k, k).to(ctx.weight_dtype)
        return None, grad_weight, grad_bias, None, None, None


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
        raise ValueError(
            "conv_maxpool2d gives no gradient to its input; use conv2d + max_pool2d for x that requires one"
        )
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[1] != x.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(
            f"expected x (B, C, H, W) and a square kernel (C_out, C, k, k), got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    batch, c_in, height, width = x.shape
    c_out, _, k, _ = weight.shape
    out_h, out_w = (height - k + 1) // pool, (width - k + 1) // pool
    if out_h < 1 or out_w < 1:
        raise ValueError(f"input {height}x{width} is too small for a {k}x{k} convolution and {pool}x{pool} pooling")
    dtype = _autocast_dtype(x.device.type) or x.dtype
    return _ConvMaxPool.apply(x, weight, bias, pool, memory_format, dtype)
