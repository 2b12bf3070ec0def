"""Both architectures, layer for layer against the tables of docs/study.md."""

import pytest
import torch
from torch import nn

from handgestures.models import CarlosNet, IvanNet, glorot_bound

CARLOSNET_SHAPES = [
    (4, 126, 126), (4, 42, 42), (8, 38, 38), (8, 12, 12), (16, 6, 6), (16, 3, 3),
]  # fmt: skip
CARLOSNET_PARAMS = [40, 808, 6288, 870]
IVANNET_SHAPES = [
    (20, 124, 124), (20, 120, 120), (20, 60, 60), (40, 58, 58), (40, 56, 56), (40, 28, 28),
    (80, 26, 26), (80, 24, 24), (80, 22, 22), (80, 11, 11),
]  # fmt: skip
IVANNET_PARAMS = [520, 10020, 7240, 14440, 28880, 57680, 57680, 5808600, 180300, 1806]


def trainable(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def layer_shapes(net: nn.Module) -> list[tuple[int, ...]]:
    """Output shape after each convolution and each pool, in order."""
    shapes, x = [], torch.zeros(2, 1, 128, 128)
    for layer in net.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            shapes.append(tuple(x.shape[1:]))
    return shapes


@pytest.mark.parametrize(
    ("cls", "total", "per_layer", "shapes", "flat"),
    [
        (CarlosNet, 8006, CARLOSNET_PARAMS, CARLOSNET_SHAPES, 144),
        (IvanNet, 6167166, IVANNET_PARAMS, IVANNET_SHAPES, 9680),
    ],
)
def test_architecture_matches_study(cls, total, per_layer, shapes, flat):
    net = cls()
    assert trainable(net) == total
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [trainable(m) for m in layers] == per_layer
    assert layer_shapes(net) == shapes
    assert net.classifier[0](net.features(torch.zeros(2, 1, 128, 128))).shape == (2, flat)
    # valid convolutions, stride 1; pools with stride = pool size
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            assert m.padding == (0, 0) and m.stride == (1, 1)
        if isinstance(m, nn.MaxPool2d):
            assert m.stride == m.kernel_size and m.padding == 0
    logits = net(torch.rand(3, 1, 128, 128))
    assert logits.shape == (3, 6)
    probs = net.predict_proba(torch.rand(3, 1, 128, 128))
    assert torch.allclose(probs.sum(-1), torch.ones(3)) and (probs >= 0).all()


def test_relu_follows_every_conv_and_hidden_dense():
    for net in (CarlosNet(), IvanNet()):
        mods = list(net.features) + list(net.classifier)
        for i, m in enumerate(mods):
            if isinstance(m, nn.Conv2d) or (isinstance(m, nn.Linear) and m is not mods[-1]):
                # a ReLU next, or a max-pool and then a ReLU (the same function, see below)
                after = mods[i + 1 : i + 3]
                ok = isinstance(after[0], nn.ReLU) or (
                    isinstance(after[0], nn.MaxPool2d) and isinstance(after[1], nn.ReLU)
                )
                assert ok, f"{type(net).__name__} layer {i} lacks a ReLU"
        assert isinstance(mods[-1], nn.Linear)  # logits out: softmax lives in the loss / predict_proba


@pytest.mark.parametrize("bf16", [False, True])
def test_carlosnet_pool_then_relu_is_the_keras_order_bit_for_bit(bf16):
    """CarlosNet pools before its ReLUs; Keras' conv -> ReLU -> pool must give the same numbers.

    (Layer by layer: the fused first block, the same function, is tests/test_fused.py's.)
    """
    torch.manual_seed(0)
    net = CarlosNet(fused=False)
    f = net.features
    assert [type(m) for m in f[:3]] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU]
    keras_order = nn.Sequential(f[0], f[2], f[1], f[3], f[5], f[4], f[6], f[8], f[7], *net.classifier)
    x = torch.rand(8, 1, 128, 128) - 0.5
    x[:4, :, :64] = 0.25  # flat regions: ties inside the pooling windows
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(8) % 6
    grads = []
    for model in (net, keras_order):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        grads.append((logits.detach().clone(), [p.grad.clone() for p in net.parameters()]))
    (ours, ours_grads), (keras, keras_grads) = grads
    assert torch.equal(ours, keras)
    assert all(torch.equal(a, b) for a, b in zip(ours_grads, keras_grads))
    assert any(g.abs().sum() > 0 for g in ours_grads)  # gradients did flow


@pytest.mark.parametrize("cls", [CarlosNet, IvanNet])
def test_keras_initialisation(cls):
    torch.manual_seed(0)
    net = cls()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = glorot_bound(m)
            w = m.weight.detach()
            assert w.abs().max() <= bound
            # uniform on [-bound, bound]: the largest draw is close to the bound, the std is bound/sqrt(3)
            assert w.abs().max() > 0.8 * bound
            if w.numel() > 500:
                assert abs(w.std().item() - bound / 3**0.5) < 0.1 * bound
            assert torch.count_nonzero(m.bias) == 0


def test_glorot_bound_uses_keras_fans():
    conv = nn.Conv2d(1, 32, 3)  # Keras: fan_in = 1*3*3, fan_out = 32*3*3
    assert glorot_bound(conv) == pytest.approx((6 / (9 + 288)) ** 0.5)
    assert glorot_bound(nn.Linear(144, 6)) == pytest.approx((6 / 150) ** 0.5)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = CarlosNet().state_dict()
    torch.manual_seed(3)
    b = CarlosNet().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_module_optimizer_and_predict_step():
    from functools import partial

    from handgestures.training.module import HandGestureClassifier

    module = HandGestureClassifier(CarlosNet(), optimizer=partial(torch.optim.SGD, lr=0.02, momentum=0.5))
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["lr"] == 0.02 and opt.defaults["momentum"] == 0.5
    default = HandGestureClassifier(CarlosNet()).configure_optimizers()
    assert default.defaults["lr"] == 0.01 and default.defaults["momentum"] == 0.0  # Keras 'sgd'
    x = torch.rand(4, 1, 128, 128)
    probs = module.predict_step((x, torch.zeros(4, dtype=torch.long)), 0)
    assert probs.shape == (4, 6) and torch.allclose(probs.sum(-1), torch.ones(4))
    assert torch.allclose(probs, module.net(x).softmax(-1), atol=1e-6)
