"""Property tests: any folder contents and any augmentation parameters end in a result or a clear error."""

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from handgestures.data import load_fingers_folder
from handgestures.data.augment import apply_keras_transform, sample_keras_params
from handgestures.data.problems import BadDataError

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES = ("L", "RGB", "RGBA", "LA", "P", "1", "I;16")

file_spec = st.fixed_dictionaries({
    "named": st.booleans(), "label": st.integers(0, 5), "hand": st.sampled_from("LR"),
    "content": st.sampled_from(["png", "png", "png", "junk", "empty", "truncated"]),
    "mode": st.sampled_from(MODES), "size": st.sampled_from([(128, 128), (128, 128), (127, 128), (1, 1), (200, 128)]),
    "seed": st.integers(0, 3), "junk": st.binary(min_size=1, max_size=64),
})  # fmt: skip


def make_png(spec) -> tuple[bytes, np.ndarray]:
    """The file's bytes and the uint8 grey image the reader must give for it."""
    rng = np.random.default_rng(spec["seed"])
    w, h = spec["size"]
    if spec["mode"] == "I;16":
        deep = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        img, grey = Image.fromarray(deep), ((deep.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    else:
        base = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img = base.convert(spec["mode"])
        grey = np.asarray(img.convert("L"))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue(), grey


@SETTINGS
@given(specs=st.lists(file_spec, min_size=1, max_size=6), on_error=st.sampled_from(["raise", "skip"]))
def test_folder_reader_gives_the_good_files_or_a_clear_error(specs, on_error):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "f"
        root.mkdir()
        good = {}
        for i, spec in enumerate(specs):
            name = f"f{i}_{spec['label']}{spec['hand']}.png" if spec["named"] else f"f{i}_x.png"
            data, grey = make_png(spec)
            if spec["content"] == "junk":
                data = b"\x00" + spec["junk"]  # never a PNG signature
            elif spec["content"] == "empty":
                data = b""
            elif spec["content"] == "truncated":
                data = data[: len(data) // 2]
            (root / name).write_bytes(data)
            if spec["named"] and spec["content"] == "png" and spec["size"] == (128, 128):
                good[name] = (grey, spec["label"] * 2 + (spec["hand"] == "R"))
        by_pixels = {}
        for grey, stratum in good.values():
            by_pixels.setdefault(grey.tobytes(), set()).add(stratum)
        good = {n: g for n, g in good.items() if len(by_pixels[g[0].tobytes()]) == 1}  # same pixels, two labels: bad
        try:
            data = load_fingers_folder(
                root, cache_dir=Path(tmp) / "cache", on_error=on_error, report_dir=Path(tmp) / "run"
            )
        except BadDataError as err:
            assert on_error == "raise" and len(good) < len(specs), err
            assert (Path(tmp) / "run" / "bad_files.csv").is_file()
            return
        except FileNotFoundError as err:
            assert not good and "no readable PNG" in str(err)
            return
        assert len(good) == len(specs) or on_error == "skip"
        assert sorted(data.names) == sorted(good) == data.names
        for i, name in enumerate(data.names):
            assert np.array_equal(data.images[i, 0].numpy(), good[name][0])
            assert int(data.labels[i]) * 2 + int(data.hands[i]) == good[name][1]


finite = st.floats(-1e3, 1e3, allow_nan=False)


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(2, 24), st.integers(2, 24)),
    rotation=st.floats(0, 360), shift=st.one_of(st.floats(0, 0.99), st.integers(0, 20), st.lists(st.floats(0, 0.9), min_size=1, max_size=3)),
    shear=st.floats(0, 89), zoom=st.one_of(st.floats(0, 0.99), st.tuples(st.floats(0.05, 1), st.floats(1, 3))),
    flips=st.tuples(st.booleans(), st.booleans()), fill=st.sampled_from(["nearest", "constant"]),
    semantics=st.sampled_from(["keras2", "keras3"]), dtype=st.sampled_from([torch.float32, torch.float64]),
    bounds=st.tuples(finite, finite), cval=st.floats(0, 1), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_augmented_images_stay_within_the_input_range(
    shape, rotation, shift, shear, zoom, flips, fill, semantics, dtype, bounds, cval, seed
):
    lo, hi = min(bounds), max(bounds)
    gen = torch.Generator().manual_seed(seed)
    images = (torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(dtype)
    params = sample_keras_params(
        shape[0], image_size=shape[2:], rotation_range=rotation, width_shift_range=shift, height_shift_range=shift,
        shear_range=shear, zoom_range=list(zoom) if isinstance(zoom, tuple) else zoom,
        horizontal_flip=flips[0], vertical_flip=flips[1], generator=gen,
    )  # fmt: skip
    out = apply_keras_transform(images, params, semantics=semantics, fill_mode=fill, cval=cval)
    assert out.shape == images.shape and out.dtype == dtype and bool(torch.isfinite(out).all())
    low, high = float(images.min()), float(images.max())
    if fill == "constant":
        low, high = min(low, cval), max(high, cval)
    tol = 1e-5 * max(1.0, abs(low), abs(high))
    assert float(out.min()) >= low - tol and float(out.max()) <= high + tol


junk_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10), st.booleans(), st.text(max_size=3),
    st.none(), st.lists(st.floats(-5, 5), max_size=4), st.just(torch.tensor([[1.0, 2.0]])),
)  # fmt: skip


@SETTINGS
@given(
    params=st.dictionaries(st.sampled_from(["theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical", "bogus"]), junk_value, max_size=4),
    batch=st.integers(1, 3), fill=st.sampled_from(["nearest", "constant", "mirror"]), cval=junk_value,
)  # fmt: skip
@example(params={"theta": 1.0}, batch=1, fill="constant", cval=3.402823466385289e38)  # just over float32's range
def test_any_warp_parameters_give_a_result_or_a_value_error(params, batch, fill, cval):
    images = torch.rand(batch, 1, 8, 8)
    try:
        out = apply_keras_transform(images, params, fill_mode=fill, cval=cval)
    except ValueError:
        return
    assert out.shape == images.shape and bool(torch.isfinite(out).all())


@SETTINGS
@given(
    n=st.one_of(st.integers(-2, 5), st.floats(), st.text(max_size=2)),
    size=st.one_of(st.tuples(st.integers(-2, 30), st.integers(-2, 30)), st.integers(), st.none()),
    rotation=junk_value, shift=junk_value, zoom=junk_value,
)  # fmt: skip
def test_any_sampling_arguments_give_parameters_or_a_value_error(n, size, rotation, shift, zoom):
    try:
        params = sample_keras_params(
            n, image_size=size, rotation_range=rotation, width_shift_range=shift, zoom_range=zoom
        )
    except ValueError:
        return
    assert all(len(v) == n for v in params.values())
    assert all(bool(torch.isfinite(v.double()).all()) for v in params.values())
    assert all(math.isfinite(float(v)) for v in params["zx"]) and bool((params["zx"] >= 0).all())


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_of_a_128_pixel_png_is_read(mode, tmp_path):
    data, grey = make_png({"mode": mode, "size": (128, 128), "seed": 0})
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a_3L.png").write_bytes(data)
    got = load_fingers_folder(tmp_path / "f", cache_dir=tmp_path / "cache")
    assert np.array_equal(got.images[0, 0].numpy(), grey)
