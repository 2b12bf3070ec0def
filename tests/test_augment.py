"""Tests of handgestures.data.augment against the Keras goldens (CPU, numpy-free, fast).

``pytest -s`` prints the largest golden error per variant at the end of the module.
"""

from __future__ import annotations

import functools
import io
import lzma
import math
from pathlib import Path

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from handgestures.data.augment import (
    PARAM_NAMES,
    KerasRandomAffine,
    apply_keras_transform,
    make_augmentation_grid,
    sample_keras_params,
)

GOLDEN_FILE = Path(__file__).parent / "data" / "keras_golden" / "golden.pt.xz"
VARIANTS = {"keras2": "kp112", "keras3": "k3"}
ATOL = 1e-4  # on the 0..1 scale, float32 (docs/keras-augmentation.md §5)
PROJECT_CFG = dict(
    rotation_range=90,
    width_shift_range=0.2,
    height_shift_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    vertical_flip=True,
)

#: largest |error| seen per (variant, check), printed at module teardown (pytest -s)
GOLDEN_MAX_ERR: dict[str, float] = {}


def _record(key: str, err: float) -> None:
    GOLDEN_MAX_ERR[key] = max(GOLDEN_MAX_ERR.get(key, 0.0), err)


@pytest.fixture(scope="module", autouse=True)
def _report_golden_errors():
    yield
    if GOLDEN_MAX_ERR:
        print("\nlargest |error| vs Keras goldens (0..1 scale unless noted):")
        for key in sorted(GOLDEN_MAX_ERR):
            print(f"  {key:<40} {GOLDEN_MAX_ERR[key]:.3g}")


@functools.lru_cache(maxsize=1)
def golden() -> dict:
    return torch.load(io.BytesIO(lzma.decompress(GOLDEN_FILE.read_bytes())), weights_only=True)


def _cases() -> dict:
    return golden()["params"]["cases"]


def _case_list() -> list[tuple[str, str]]:
    # collected before golden() may be loaded: read the vendored params.json instead
    import json

    cases = json.loads((GOLDEN_FILE.parent / "params.json").read_text())["cases"]
    return [(case, image) for case, spec in cases.items() for image in spec["images"]]


def _params(cases: list[str], dtype=torch.float64) -> dict[str, torch.Tensor]:
    specs = [_cases()[c]["params"] for c in cases]
    out = {}
    for name in PARAM_NAMES:
        values = [s[name] for s in specs]
        out[name] = torch.tensor(values, dtype=torch.bool if name.startswith("flip") else dtype)
    return out


def _image(name: str, dtype=torch.float32) -> torch.Tensor:
    return golden()["inputs"][name].to(dtype)[None, None]


def _expected(variant: str, case: str, image: str) -> torch.Tensor:
    return golden()["outputs"][VARIANTS[variant]][case][image]


# ------------------------------------------------------------------ golden tests


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(("case", "image"), _case_list())
def test_golden_single(variant, case, image):
    out = apply_keras_transform(_image(image) / 255, _params([case]), semantics=variant)
    err = (out[0, 0].double() - _expected(variant, case, image).double() / 255).abs().max().item()
    _record(f"{variant} float32 single", err)
    assert err <= ATOL, (variant, case, image, err)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("image", ["rect12x16", "sq128"])
def test_golden_one_batched_call(variant, image):
    """All cases in ONE call: different parameters per sample of a batch."""
    cases = [c for c, spec in _cases().items() if image in spec["images"]]
    if image == "sq128":
        cases = cases * 2  # 50 images: more than one CPU chunk of 32 x 128 x 128
    x = _image(image).expand(len(cases), -1, -1, -1) / 255
    out = apply_keras_transform(x, _params(cases), semantics=variant)
    assert out.shape == x.shape
    for i, case in enumerate(cases):
        err = (out[i, 0].double() - _expected(variant, case, image).double() / 255).abs().max().item()
        _record(f"{variant} float32 batched", err)
        assert err <= ATOL, (variant, case, image, err)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_golden_rescaled(variant):
    """rand* cases: exactly what Keras' fit saw, standardize(apply_transform(x)) with rescale=1/255."""
    g = golden()
    cases = sorted(g["rescaled"][VARIANTS[variant]])
    assert len(cases) == 8
    x = _image("sq128").expand(len(cases), -1, -1, -1) * (1 / 255)
    out = apply_keras_transform(x, _params(cases), semantics=variant)
    scale = torch.tensor(g["params"]["rescale"], dtype=torch.float32)
    for i, case in enumerate(cases):
        raw = _expected(variant, case, "sq128")
        resid = g["rescaled"][VARIANTS[variant]][case]
        expected = ((raw * scale).view(torch.int32) + resid).view(torch.float32)  # lossless decode
        err = (out[i, 0].double() - expected.double()).abs().max().item()
        _record(f"{variant} float32 rescaled", err)
        assert err <= ATOL, (variant, case, err)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_golden_float64(variant):
    """float64 params and images: agrees with Keras to its float32 output rounding (0..255 scale)."""
    for image in ("rect12x16", "sq128"):
        cases = [c for c, spec in _cases().items() if image in spec["images"]]
        x = _image(image, torch.float64).expand(len(cases), -1, -1, -1)
        out = apply_keras_transform(x, _params(cases), semantics=variant)
        for i, case in enumerate(cases):
            err = (out[i, 0] - _expected(variant, case, image).double()).abs().max().item()
            _record(f"{variant} float64 (0..255 scale)", err)
            assert err <= 1e-4, (variant, case, image, err)


def test_variants_differ_and_half_precision_roundtrip():
    x = _image("sq128") / 255
    p = _params(["combo1"])
    a = apply_keras_transform(x, p, semantics="keras2")
    b = apply_keras_transform(x, p, semantics="kp112")
    c = apply_keras_transform(x, p, semantics="keras3")
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1
    h = apply_keras_transform(x.bfloat16(), p)
    assert h.dtype == torch.bfloat16
    assert (h.float() - a).abs().max() < 1e-2


# ------------------------------------------------- independent float64 reference


def _keras_matrix(p: dict, h: int, w: int, variant: str) -> list[list[float]]:
    """Keras apply_affine_transform's 3x3 matrix on (row, col), by explicit products."""

    def mul(a, b):
        return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]

    th, s = math.radians(p["theta"]), math.radians(p["shear"])
    m = mul(
        mul(
            [[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]],
            [[1, 0, p["tx"]], [0, 1, p["ty"]], [0, 0, 1]],
        ),
        mul([[1, -math.sin(s), 0], [0, math.cos(s), 0], [0, 0, 1]], [[p["zx"], 0, 0], [0, p["zy"], 0], [0, 0, 1]]),
    )
    o = (h / 2 + 0.5, w / 2 + 0.5) if variant == "keras2" else (h / 2 - 0.5, w / 2 - 0.5)
    m = mul(mul([[1, 0, o[0]], [0, 1, o[1]], [0, 0, 1]], m), [[1, 0, -o[0]], [0, 1, -o[1]], [0, 0, 1]])
    if variant == "keras3":  # Keras >= 2.9 swaps axes 0/1 for channels_last
        m = [[m[1][1], m[1][0], m[1][2]], [m[0][1], m[0][0], m[0][2]], [0, 0, 1]]
    return m


def _reference(img: torch.Tensor, p: dict, variant: str, fill_mode: str = "nearest", cval: float = 0.0):
    """SciPy affine_transform(order=1) pull mapping in float64 loops, then Keras' flips.

    mode='nearest' clamps the coordinate; mode='constant' (SciPy >= 1.6) gives cval when
    the coordinate is outside [0, n-1] on either axis, else interpolates in range.
    """
    h, w = img.shape
    a = img.double().tolist()
    m = _keras_matrix(p, h, w, variant)
    out = torch.empty(h, w, dtype=torch.float64)
    for r in range(h):
        for c in range(w):
            y = m[0][0] * r + m[0][1] * c + m[0][2]
            x = m[1][0] * r + m[1][1] * c + m[1][2]
            if fill_mode == "constant" and not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                out[r, c] = cval
                continue
            y, x = min(max(y, 0.0), h - 1.0), min(max(x, 0.0), w - 1.0)
            y0, x0 = min(int(math.floor(y)), h - 2), min(int(math.floor(x)), w - 2)
            fy, fx = y - y0, x - x0
            out[r, c] = (1 - fy) * ((1 - fx) * a[y0][x0] + fx * a[y0][x0 + 1]) + fy * (
                (1 - fx) * a[y0 + 1][x0] + fx * a[y0 + 1][x0 + 1]
            )
    if p["flip_horizontal"]:
        out = out.flip(1)
    if p["flip_vertical"]:
        out = out.flip(0)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reference_matches_golden_nearest(variant):
    """Validates the loop reference itself (nearest mode) against Keras."""
    img = golden()["inputs"]["rect12x16"]
    for case, spec in _cases().items():
        if "rect12x16" in spec["images"]:
            ref = _reference(img, spec["params"], variant)
            err = (ref - _expected(variant, case, "rect12x16").double()).abs().max().item()
            assert err < 1e-4, (case, err)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reference_matches_scipy_constant(variant):
    """Validates the loop reference in constant mode against vendored SciPy 1.17 outputs."""
    sc = golden()["scipy_constant"]
    img = golden()["inputs"][sc["image"]]
    assert len(sc["cases"][VARIANTS[variant]]) >= 5
    for case, expected in sc["cases"][VARIANTS[variant]].items():
        ref = _reference(img, _cases()[case]["params"], variant, "constant", sc["cval"])
        assert (ref - expected.double()).abs().max().item() < 1e-4, case


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_constant_fill_matches_scipy(variant):
    sc = golden()["scipy_constant"]
    cases = sorted(sc["cases"][VARIANTS[variant]])
    x = _image(sc["image"]).expand(len(cases), -1, -1, -1)
    out = apply_keras_transform(x, _params(cases), semantics=variant, fill_mode="constant", cval=sc["cval"])
    for i, case in enumerate(cases):
        err = (out[i, 0].double() - sc["cases"][VARIANTS[variant]][case].double()).abs().max().item()
        _record(f"{variant} constant vs scipy (0..255)", err)
        assert err <= 255 * ATOL, (case, err)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_random_params_vs_reference(variant, fill_mode):
    """Random images/params on an odd non-square size, nonzero cval, against the loop reference."""
    gen = torch.Generator().manual_seed(7)
    h, w = 9, 14
    n = 6
    imgs = torch.rand(n, 1, h, w, generator=gen, dtype=torch.float64)
    params = sample_keras_params(
        n,
        (h, w),
        rotation_range=180,
        width_shift_range=0.3,
        height_shift_range=0.3,
        shear_range=25,
        zoom_range=(0.6, 1.4),
        horizontal_flip=True,
        vertical_flip=True,
        generator=gen,
    )
    cval = 0.37
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        out = apply_keras_transform(imgs.to(dtype), params, semantics=variant, fill_mode=fill_mode, cval=cval)
        for i in range(n):
            p = {k: v[i].item() for k, v in params.items()}
            ref = _reference(imgs[i, 0], p, variant, fill_mode, cval)
            diff = (out[i, 0].double() - ref).abs()
            if fill_mode == "constant":
                assert (ref == cval).any() and (ref != cval).any()
            assert diff.max().item() <= tol, (dtype, i, diff.max().item())


# ------------------------------------------------------------------ the sampler


def _ks(sample: torch.Tensor, lo: float, hi: float) -> float:
    """Kolmogorov-Smirnov distance between the sample and U[lo, hi)."""
    s, _ = torch.sort(sample)
    n = s.numel()
    cdf = (s - lo) / (hi - lo)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - cdf).max().item(), (cdf - (i - 1) / n).max().item())


def test_sampler_statistics_project_config():
    n = 200_000
    h, w = 128, 96  # non-square: tx scales with H, ty with W
    p = sample_keras_params(n, (h, w), **PROJECT_CFG, generator=torch.Generator().manual_seed(123))
    assert set(p) == set(PARAM_NAMES)
    assert all(v.shape == (n,) for v in p.values())
    ks_crit = 1.95 / math.sqrt(n) * 1.5  # well beyond the 0.1% critical value
    for name, lo, hi in (
        ("theta", -90, 90),
        ("tx", -0.2 * h, 0.2 * h),
        ("ty", -0.2 * w, 0.2 * w),
        ("zx", 0.8, 1.2),
        ("zy", 0.8, 1.2),
    ):
        v = p[name]
        assert v.dtype == torch.float64
        assert v.min() >= lo and v.max() < hi, name
        sd_mean = (hi - lo) / math.sqrt(12 * n)
        assert abs(v.mean().item() - (lo + hi) / 2) < 5 * sd_mean, name
        assert v.var().item() == pytest.approx((hi - lo) ** 2 / 12, rel=0.02), name
        assert _ks(v, lo, hi) < ks_crit, name
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # empirical CDF at a few points
            assert (v < lo + q * (hi - lo)).double().mean().item() == pytest.approx(q, abs=0.005), (name, q)
    assert torch.all(p["shear"] == 0)
    assert abs(torch.corrcoef(torch.stack((p["zx"], p["zy"])))[0, 1].item()) < 5 / math.sqrt(n)
    assert abs(torch.corrcoef(torch.stack((p["tx"], p["ty"])))[0, 1].item()) < 5 / math.sqrt(n)
    fh, fv = p["flip_horizontal"], p["flip_vertical"]
    assert fh.dtype == torch.bool and fv.dtype == torch.bool
    assert fh.double().mean().item() == pytest.approx(0.5, abs=0.006)
    assert fv.double().mean().item() == pytest.approx(0.5, abs=0.006)
    assert (fh & fv).double().mean().item() == pytest.approx(0.25, abs=0.005)  # independent


def test_sampler_shift_modes_and_options():
    n = 100_000
    gen = torch.Generator().manual_seed(5)
    # int n: integers choice(arange(n)) * choice([-1, 1]) in (-n, n), pixels (not scaled)
    p = sample_keras_params(n, (64, 32), height_shift_range=5, width_shift_range=3, generator=gen)
    tx, ty = p["tx"], p["ty"]
    assert torch.equal(tx, tx.round()) and torch.equal(ty, ty.round())
    assert tx.min() == -4 and tx.max() == 4 and ty.min() == -2 and ty.max() == 2
    assert (tx == 0).double().mean().item() == pytest.approx(1 / 5, abs=0.01)
    for k in (-4, -1, 1, 4):
        assert (tx == k).double().mean().item() == pytest.approx(1 / 10, abs=0.01)
    # float >= 1: continuous pixels; sequence: choice * sign, times H if all < 1
    p = sample_keras_params(n, (64, 32), height_shift_range=5.0, width_shift_range=[0.1, 0.25], generator=gen)
    assert p["tx"].abs().max() <= 5 and (p["tx"] != p["tx"].round()).any()
    assert set(p["ty"].unique().tolist()) == {-8.0, -3.2, 3.2, 8.0}
    p = sample_keras_params(n, (64, 32), height_shift_range=(2, 7), generator=gen)
    assert set(p["tx"].unique().tolist()) == {-7.0, -2.0, 2.0, 7.0}
    # zoom pair, shear, disabled flips, zero ranges
    p = sample_keras_params(n, (8, 8), zoom_range=[0.5, 0.9], shear_range=10, generator=gen)
    assert p["zx"].min() >= 0.5 and p["zx"].max() < 0.9 and p["zx"].mean().item() == pytest.approx(0.7, abs=3e-3)
    assert p["shear"].abs().max() <= 10 and p["shear"].std().item() == pytest.approx(20 / math.sqrt(12), rel=0.02)
    assert not p["flip_horizontal"].any() and not p["flip_vertical"].any()
    assert torch.all(p["theta"] == 0) and torch.all(p["tx"] == 0) and torch.all(p["ty"] == 0)
    p = sample_keras_params(10, (8, 8), generator=gen)
    assert torch.all(p["zx"] == 1) and torch.all(p["zy"] == 1)


def test_sampler_determinism_and_stable_stream():
    a = sample_keras_params(50, (16, 16), **PROJECT_CFG, generator=torch.Generator().manual_seed(1))
    b = sample_keras_params(50, (16, 16), **PROJECT_CFG, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a[k], b[k]) for k in PARAM_NAMES)
    cfg = {**PROJECT_CFG, "horizontal_flip": False}
    c = sample_keras_params(50, (16, 16), **cfg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a["theta"], c["theta"]) and torch.equal(a["flip_vertical"], c["flip_vertical"])
    assert sample_keras_params(0, (4, 4))["theta"].shape == (0,)


# ---------------------------------------------------------------- the transform


def _rand_images(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_transform_single_and_batch_shapes():
    t = KerasRandomAffine(**PROJECT_CFG, seed=0)
    assert t(_rand_images(1, 20, 24)).shape == (1, 20, 24)
    assert t(_rand_images(3, 20, 24)).shape == (3, 20, 24)  # (C, H, W) with C = 3
    assert t(_rand_images(5, 1, 20, 24)).shape == (5, 1, 20, 24)
    img = tv_tensors.Image(_rand_images(1, 20, 24))
    out = t(img)
    assert isinstance(out, tv_tensors.Image) and out.shape == (1, 20, 24)
    sample = {"image": _rand_images(1, 20, 24), "label": 3}
    out = v2.Compose([t])(sample)
    assert out["label"] == 3 and out["image"].shape == (1, 20, 24)


def test_transform_per_image_params_and_determinism():
    x = _rand_images(1, 1, 32, 32).expand(2, -1, -1, -1).contiguous()
    out = KerasRandomAffine(**PROJECT_CFG, seed=3)(x)
    assert (out[0] - out[1]).abs().max() > 0.05  # identical images, different params
    again = KerasRandomAffine(**PROJECT_CFG, generator=torch.Generator().manual_seed(3))(x)
    assert torch.equal(out, again)
    other = KerasRandomAffine(**PROJECT_CFG, seed=4)(x)
    assert not torch.equal(out, other)
    # the batch is warped with exactly the params the sampler gives for that seed
    params = sample_keras_params(2, (32, 32), **PROJECT_CFG, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, apply_keras_transform(x, params))


def test_identity_is_exact_copy():
    x = _rand_images(4, 1, 17, 23)
    assert torch.equal(apply_keras_transform(x, {}), x)
    ident = {
        "theta": torch.zeros(4),
        "zx": torch.ones(4),
        "flip_horizontal": torch.tensor([0, 1, 0, 1]),
        "flip_vertical": torch.tensor([0, 0, 1, 1]),
    }
    out = apply_keras_transform(x, ident)
    expected = torch.stack([x[0], x[1].flip(-1), x[2].flip(-2), x[3].flip(-1).flip(-2)])
    assert torch.equal(out, expected)
    assert torch.equal(KerasRandomAffine(seed=0)(x), x)  # all ranges 0
    # mixed batch: identity samples copied exactly, the others warped as when alone
    mixed = {"theta": torch.tensor([0.0, 30.0, 0.0, -12.0]), "flip_horizontal": torch.tensor([1, 0, 0, 1])}
    out = apply_keras_transform(x, mixed, fill_mode="constant", cval=0.5)
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[2], x[2])
    alone = apply_keras_transform(x[[1, 3]], {k: v[[1, 3]] for k, v in mixed.items()}, fill_mode="constant", cval=0.5)
    assert torch.allclose(out[[1, 3]], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_cpu_chunking_is_exact(monkeypatch, fill_mode):
    """Warping in cache-sized chunks gives bit-identical results to one pass."""
    import handgestures.data.augment as augment

    x = _rand_images(10, 2, 16, 12)
    params = sample_keras_params(10, (16, 12), **PROJECT_CFG, generator=torch.Generator().manual_seed(4))
    monkeypatch.setattr(augment, "_CPU_CHUNK_PIXELS", 1 << 30)
    whole = apply_keras_transform(x, params, fill_mode=fill_mode, cval=0.3)
    monkeypatch.setattr(augment, "_CPU_CHUNK_PIXELS", 3 * 16 * 12)
    assert torch.equal(apply_keras_transform(x, params, fill_mode=fill_mode, cval=0.3), whole)


def test_params_as_python_numbers():
    """Parameters replayed from Keras' get_random_transform (Python numbers) are accepted."""
    x = _image("sq128") / 255
    spec = _cases()["combo3_shear"]["params"]
    out = apply_keras_transform(x, {k: [v] for k, v in spec.items() if v is not None})
    assert torch.equal(out, apply_keras_transform(x, _params(["combo3_shear"])))
    scalar = apply_keras_transform(x.expand(2, -1, -1, -1), {"theta": 30.0, "flip_vertical": True})
    assert torch.equal(scalar[0], scalar[1])


def test_uint8_input():
    x8 = (_rand_images(2, 1, 16, 16) * 255).to(torch.uint8)
    out = KerasRandomAffine(**PROJECT_CFG, seed=1)(x8)
    ref = KerasRandomAffine(**PROJECT_CFG, seed=1)(x8.float())
    assert out.dtype == torch.float32 and torch.equal(out, ref)
    assert out.max() > 1.5  # same 0..255 scale, not rescaled


def test_augmentation_grid():
    x = _rand_images(3, 1, 24, 20)
    grid = make_augmentation_grid(x, KerasRandomAffine(**PROJECT_CFG, seed=0), n_augmented=5)
    pad = 2
    assert grid.shape == (3, pad + 3 * (24 + pad), pad + 6 * (20 + pad))
    assert grid.min() >= 0 and grid.max() <= 1
    # first tile of each row is the original image
    assert torch.equal(grid[0, pad : pad + 24, pad : pad + 20], x[0, 0])
    assert torch.equal(grid[1, 2 * pad + 24 : 2 * pad + 48, pad : pad + 20], x[1, 0])
    assert make_augmentation_grid(x, KerasRandomAffine(seed=0), n_augmented=0).shape[-1] == 20 + 2 * pad
    assert "rotation_range=90" in repr(KerasRandomAffine(**PROJECT_CFG, seed=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    x = _rand_images(64, 1, 128, 128)
    for variant in VARIANTS:
        cpu = KerasRandomAffine(**PROJECT_CFG, semantics=variant, seed=9)(x)
        gpu = KerasRandomAffine(**PROJECT_CFG, semantics=variant, seed=9)(x.cuda())
        assert gpu.device.type == "cuda"
        assert (gpu.cpu() - cpu).abs().max().item() <= 1e-4
        p = sample_keras_params(
            64, (128, 128), **PROJECT_CFG, generator=torch.Generator().manual_seed(2), device="cuda"
        )
        assert p["theta"].device.type == "cuda"
        out = apply_keras_transform(x.cuda(), p, semantics=variant, fill_mode="constant", cval=0.25)
        ref = apply_keras_transform(
            x, {k: v.cpu() for k, v in p.items()}, semantics=variant, fill_mode="constant", cval=0.25
        )
        assert (out.cpu() - ref).abs().max().item() <= 1e-4
    img = golden()["inputs"]["sq128"].cuda()[None, None] / 255
    out = apply_keras_transform(img, _params(["combo2"]), semantics="keras2")
    assert (out[0, 0].cpu().double() - _expected("keras2", "combo2", "sq128").double() / 255).abs().max() <= ATOL


# ----------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: apply_keras_transform(torch.zeros(1, 1, 8, 8), {}, semantics="keras4"), "keras4"),
        (lambda: apply_keras_transform(torch.zeros(1, 1, 8, 8), {}, fill_mode="reflect"), "reflect"),
        (lambda: apply_keras_transform(torch.zeros(1, 1, 8, 8), {}, fill_mode="constant", cval="x"), "cval"),
        (lambda: apply_keras_transform(torch.zeros(1, 8, 8), {}), r"\(1, 8, 8\)"),
        (lambda: apply_keras_transform(torch.zeros(1, 1, 1, 8), {}), "1x8"),
        (lambda: apply_keras_transform(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), {}), "uint8"),
        (lambda: apply_keras_transform(torch.zeros(2, 1, 8, 8), {"theta": torch.zeros(3)}), r"theta.*\(3,\)"),
        (lambda: apply_keras_transform(torch.zeros(2, 1, 8, 8), {"rotation": torch.zeros(2)}), "rotation"),
        (lambda: apply_keras_transform(torch.zeros(2, 1, 8, 8), {"zx": torch.tensor([1.0, math.nan])}), "zx"),
        (lambda: apply_keras_transform(torch.zeros(2, 1, 8, 8), [1, 2]), "list"),
        (lambda: apply_keras_transform(torch.zeros(2, 1, 8, 8), {"tx": "5"}), "tx"),
        (lambda: sample_keras_params(4, (8, 8), zoom_range=[0.9, 1.0, 1.1]), "zoom_range"),
        (lambda: sample_keras_params(4, (8, 8), zoom_range=[1.2, 0.8]), "zoom_range"),
        (lambda: sample_keras_params(4, (8, 8), rotation_range=-5), "rotation_range=-5"),
        (lambda: sample_keras_params(4, (8, 8), width_shift_range="0.2"), "width_shift_range"),
        (lambda: sample_keras_params(4, (8, 8), height_shift_range=True), "height_shift_range"),
        (lambda: sample_keras_params(4, 8), "image_size=8"),
        (lambda: sample_keras_params(-1, (8, 8)), "n=-1"),
        (lambda: KerasRandomAffine(seed=1, generator=torch.Generator()), "seed"),
        (lambda: KerasRandomAffine(semantics="keras1"), "keras1"),
        (lambda: KerasRandomAffine(fill_mode="wrap"), "wrap"),
        (lambda: KerasRandomAffine(seed=0)(torch.zeros(8, 8)), r"\(8, 8\)"),
        (lambda: KerasRandomAffine(seed=0)(torch.zeros(1, 8, 8, dtype=torch.int32)), "int32"),
        (lambda: KerasRandomAffine(seed=0)(tv_tensors.Mask(torch.zeros(1, 8, 8))), "Mask"),
        (lambda: make_augmentation_grid(torch.zeros(8, 8), KerasRandomAffine()), "images"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
