"""conv_maxpool2d (CarlosNet's first block as one batched matrix product) against conv2d + max_pool2d."""

import pytest
import torch
import torch.nn.functional as F

from handgestures.models import CarlosNet
from handgestures.models.fused import conv_maxpool2d

CASES = [  # batch, c_in, height, width, c_out, kernel, pool
    (4, 1, 128, 128, 4, 3, 3),  # CarlosNet's first block
    (3, 2, 20, 23, 5, 3, 2),  # incomplete windows dropped on both axes, two input channels
    (2, 4, 42, 42, 8, 5, 3),  # CarlosNet's second block's shapes
]


def reference(x, weight, bias, pool):
    return F.max_pool2d(F.conv2d(x, weight, bias), pool)


def grads(fn, x, weight, bias, grad_out):
    weight, bias = weight.detach().requires_grad_(), bias.detach().requires_grad_()
    out = fn(x, weight, bias)
    out.backward(grad_out)
    return out.detach(), weight.grad, bias.grad


@pytest.mark.parametrize("case", CASES)
def test_integer_values_give_identical_outputs_and_tie_routing(case):
    """Small integers make every sum exact and ties common: any tie sent elsewhere shows."""
    batch, c_in, h, w, c_out, k, p = case
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (batch, c_in, h, w), generator=g).float()
    weight = torch.randint(-2, 3, (c_out, c_in, k, k), generator=g).float()
    bias = torch.randint(-2, 3, (c_out,), generator=g).float()
    conv = F.conv2d(x, weight, bias)[..., : (h - k + 1) // p * p, : (w - k + 1) // p * p]
    windows = conv.unfold(2, p, p).unfold(3, p, p).flatten(-2)
    ties = (windows == windows.amax(-1, keepdim=True)).sum(-1) > 1
    assert ties.float().mean() > 0.05  # the case does exercise tie-breaking
    grad_out = torch.rand((batch, c_out, (h - k + 1) // p, (w - k + 1) // p), generator=g)
    ref = grads(lambda *a: reference(*a, p), x, weight, bias, grad_out)
    got = grads(lambda *a: conv_maxpool2d(*a, p), x, weight, bias, grad_out)
    assert torch.equal(got[0], ref[0])
    # the same winners get the gradient: only the summation order may differ
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got[2], ref[2], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_random_values_match_in_fp32(case):
    batch, c_in, h, w, c_out, k, p = case
    g = torch.Generator().manual_seed(1)
    x = torch.rand((batch, c_in, h, w), generator=g)
    weight = torch.randn((c_out, c_in, k, k), generator=g)
    bias = torch.randn((c_out,), generator=g)
    grad_out = torch.randn((batch, c_out, (h - k + 1) // p, (w - k + 1) // p), generator=g)
    ref = grads(lambda *a: reference(*a, p), x, weight, bias, grad_out)
    got = grads(lambda *a: conv_maxpool2d(*a, p), x, weight, bias, grad_out)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    # weight and bias gradients are sums over every output position, in another order than
    # oneDNN's (which also depends on the thread count): fp32 rounding grows with the sum
    for a, b in zip(got[1:], ref[1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_bf16_autocast_computes_in_bf16():
    g = torch.Generator().manual_seed(2)
    x = torch.rand((4, 1, 128, 128), generator=g)
    weight, bias = torch.randn((4, 1, 3, 3), generator=g), torch.randn((4,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = reference(x, weight, bias, 3)
        got = conv_maxpool2d(x, weight, bias, 3)
    assert got.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref.float(), rtol=2e-2, atol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert conv_maxpool2d(x, weight, bias, 3).dtype == torch.float32


def test_layout_nan_and_bad_input():
    x = torch.rand(2, 1, 20, 20)
    x[0, 0, 4, 4] = float("nan")
    weight, bias = torch.randn(3, 1, 3, 3), torch.randn(3)
    for fmt in (torch.channels_last, torch.contiguous_format):
        out = conv_maxpool2d(x, weight, bias, 3, fmt)
        assert out.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(out, reference(x, weight, bias, 3), equal_nan=True)
    assert out[0, :, 0:2, 0:2].isnan().all() and not out[1].isnan().any()  # a NaN poisons its windows only
    view = torch.rand(3, 2, 24, 25)[1:, 1:, 2:, 1:]  # offset, non-contiguous: strides are honoured
    torch.testing.assert_close(conv_maxpool2d(view, weight, bias, 3), reference(view, weight, bias, 3))
    empty = torch.rand(0, 1, 20, 20)  # an empty batch gives an empty result, as conv2d does
    out, weight_grad, bias_grad = grads(lambda *a: conv_maxpool2d(*a, 3), empty, weight, bias, torch.ones(0, 3, 6, 6))
    assert out.shape == reference(empty, weight, bias, 3).shape == (0, 3, 6, 6)
    assert not weight_grad.any() and not bias_grad.any()
    with pytest.raises(ValueError, match="no gradient to its input"):
        conv_maxpool2d(x.requires_grad_(), weight, bias, 3)
    with pytest.raises(ValueError, match="too small"):
        conv_maxpool2d(torch.rand(1, 1, 4, 4), weight, bias, 3)
    with pytest.raises(ValueError, match=r"\(2, 3, 20, 20\)"):
        conv_maxpool2d(torch.rand(2, 3, 20, 20), weight, bias, 3)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_carlosnet_fused_matches_unfused(channels_last, bf16):
    torch.manual_seed(0)
    fused, plain = CarlosNet(), CarlosNet(fused=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.rand(8, 1, 128, 128)
    x[:4, :, :64] = 0.25  # flat regions: ties
    y = torch.arange(8) % 6
    if channels_last:
        fused, plain = (m.to(memory_format=torch.channels_last) for m in (fused, plain))
        x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for net in (fused, plain):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        F.cross_entropy(logits.float(), y).backward()
        results.append((logits.float(), [p.grad for p in net.parameters()]))
    tol = {"rtol": 5e-2, "atol": 5e-2} if bf16 else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(results[0][0], results[1][0], **tol)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, **tol)


def test_carlosnet_falls_back_for_hooks_and_input_gradients():
    torch.manual_seed(0)
    net = CarlosNet()
    x = torch.rand(2, 1, 128, 128)
    seen = []
    handle = net.features[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    net(x)
    handle.remove()
    assert seen == [torch.Size([2, 4, 126, 126])]  # the hooked conv did run, whole
    assert net._fused_path(x) and not net._fused_path(x.clone().requires_grad_())
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    assert not net._fused_path(x)  # a global hook must see every layer run
    handle.remove()
    assert not CarlosNet(fused=False)._fused_path(x)
    # a saliency map: the input gets its gradient, as from the unfused network
    plain = CarlosNet(fused=False)
    plain.load_state_dict(net.state_dict())
    saliency = []
    for model in (net, plain):
        xi = x.clone().requires_grad_()
        model(xi)[:, 1].sum().backward()
        saliency.append(xi.grad)
    assert saliency[0].abs().sum() > 0
    torch.testing.assert_close(saliency[0], saliency[1])


def test_no_bias_and_frozen_parameters():
    g = torch.Generator().manual_seed(3)
    x = torch.rand((2, 1, 20, 20), generator=g)
    weight = torch.randn((3, 1, 3, 3), generator=g, requires_grad=True)
    grad_out = torch.randn((2, 3, 6, 6), generator=g)
    out = conv_maxpool2d(x, weight, None, 3)
    ref_weight = weight.detach().clone().requires_grad_()
    ref = reference(x, ref_weight, None, 3)
    torch.testing.assert_close(out, ref)
    out.backward(grad_out)
    ref.backward(grad_out)
    torch.testing.assert_close(weight.grad, ref_weight.grad)
    bias = torch.randn(3, generator=g, requires_grad=True)
    conv_maxpool2d(x, weight.detach(), bias, 3).backward(grad_out)  # frozen weights: bias alone learns
    torch.testing.assert_close(bias.grad, grad_out.sum((0, 2, 3)))


@pytest.mark.parametrize("size", [128, 139, 122])  # the input sizes the 3x3x16 dense layer takes
def test_carlosnet_reads_only_the_rows_that_reach_the_output(size):
    """The fused path skips the last input rows and columns; the unfused network proves them unused."""
    torch.manual_seed(0)
    plain = CarlosNet(fused=False)
    used = plain._used_extent(size)
    assert used == 122  # ((3 * 2 + 7 - 1) * 3 + 5 - 1) * 3 + 3 - 1
    x = torch.rand(8, 1, size, size, requires_grad=True)
    plain(x).sum().backward()
    assert not x.grad[..., used:, :].any() and not x.grad[..., :, used:].any()
    assert x.grad[..., used - 1, :].any() and x.grad[..., :, used - 1].any()  # and no fewer rows would do
    fused = CarlosNet()
    fused.load_state_dict(plain.state_dict())
    noisy = x.detach().clone()
    noisy[..., used:, :] = torch.rand_like(noisy[..., used:, :])
    torch.testing.assert_close(fused(noisy), plain(x.detach()), rtol=1e-5, atol=1e-6)
