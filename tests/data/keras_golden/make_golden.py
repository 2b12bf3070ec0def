"""Pack a folder of Keras goldens (``.npy`` files and params.json) into ``golden.pt.xz`` (numpy-free tests).

The goldens' folder holds 4.7 MB of ``.npy`` files; this writes one lossless,
lzma-compressed ``torch.save`` archive (about 1.7 MB) that the tests read with
``torch.load`` only:

* ``inputs[image]``: float32 ``(H, W)`` on the 0..255 scale (channels_last ``(H, W, 1)``
  squeezed);
* ``outputs[variant][case][image]``: float32 ``(H, W)``, bit-identical to the ``.npy``;
* ``rescaled[variant][case]``: the ``*__sq128__rescaled.npy`` files, stored as the
  int32 bit difference from ``float32(output) * float32(1/255)`` (all zeros today,
  since Keras computes exactly that), so the archive stays small and still lossless;
* ``params``: the ``params.json`` dict.
* ``scipy_constant`` (only when SciPy is importable): ``fill_mode='constant'``
  references made with ``scipy.ndimage.affine_transform(order=1, mode='constant')``
  on ``rect12x16`` from the Keras matrix product (numpy port of
  ``apply_affine_transform`` of both variants, independent of the torch code).

Run from the repository root (numpy and torch needed; SciPy optional), e.g.::

    PYTHONPATH=<a site-packages with scipy> .venv/bin/python tests/data/keras_golden/make_golden.py \
        PATH/TO/keras_golden
"""

from __future__ import annotations

import io
import json
import lzma
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
CONSTANT_CVAL = 200.5
CONSTANT_CASES = ("theta_p30", "zoom_0.8", "txty_max", "combo1", "combo2", "combo3_shear")


def keras_matrix(p: dict, h: int, w: int, variant: str) -> np.ndarray:
    """numpy port of Keras ``apply_affine_transform``'s matrix on (row, col) indices."""
    th, s = np.deg2rad(p["theta"]), np.deg2rad(p["shear"])
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    shift = np.array([[1, 0, p["tx"]], [0, 1, p["ty"]], [0, 0, 1]])
    shear = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[p["zx"], 0, 0], [0, p["zy"], 0], [0, 0, 1]])
    m = rot @ shift @ shear @ zoom
    # transform_matrix_offset_center(m, h, w): kp112 o = x/2 + 0.5, Keras >= 2.9 o = x/2 - 0.5
    ox, oy = (h / 2 + 0.5, w / 2 + 0.5) if variant == "kp112" else (h / 2 - 0.5, w / 2 - 0.5)
    off = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
    back = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m = off @ m @ back
    if variant == "k3":  # col_axis > row_axis: swap rows 0/1 and columns 0/1
        m[:, [0, 1]] = m[:, [1, 0]]
        m[[0, 1]] = m[[1, 0]]
    return m


def scipy_constant(x: np.ndarray, p: dict, variant: str) -> tuple[np.ndarray, float]:
    from scipy import ndimage

    h, w = x.shape
    m = keras_matrix(p, h, w, variant)
    out = ndimage.affine_transform(
        x.astype(np.float64), m[:2, :2], m[:2, 2], order=1, mode="constant", cval=CONSTANT_CVAL
    )
    coords = m[:2, :2] @ np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).reshape(2, -1)
    coords = coords + m[:2, 2:]
    lim = np.array([h - 1, w - 1])[:, None]
    # distance (px) of the nearest source coordinate to an edge of [0, n-1]: must not be ~0
    margin = float(np.min(np.minimum(np.abs(coords), np.abs(coords - lim))))
    if p["flip_horizontal"]:
        out = out[:, ::-1]
    if p["flip_vertical"]:
        out = out[::-1, :]
    return np.ascontiguousarray(out.astype(np.float32)), margin


def scipy_nearest_check(x: np.ndarray, p: dict, variant: str, golden: np.ndarray) -> float:
    """Max |error| of this numpy port with mode='nearest' against the Keras golden (sanity)."""
    from scipy import ndimage

    m = keras_matrix(p, *x.shape, variant)
    out = ndimage.affine_transform(x.astype(np.float64), m[:2, :2], m[:2, 2], order=1, mode="nearest")
    if p["flip_horizontal"]:
        out = out[:, ::-1]
    if p["flip_vertical"]:
        out = out[::-1, :]
    return float(np.abs(out - golden).max())


def main(src: Path) -> None:
    params = json.loads((src / "params.json").read_text())
    inputs = {name: np.load(src / "inputs" / f"{name}.npy")[..., 0] for name in params["images"]}
    archive: dict = {
        "params": params,
        "inputs": {k: torch.from_numpy(v.copy()) for k, v in inputs.items()},
        "outputs": {},
        "rescaled": {},
    }
    for variant in ("kp112", "k3"):
        outs, resc = {}, {}
        for case, spec in params["cases"].items():
            outs[case] = {}
            for image in spec["images"]:
                arr = np.load(src / "outputs" / variant / f"{case}__{image}.npy")[..., 0]
                outs[case][image] = torch.from_numpy(arr.copy())
                rfile = src / "outputs" / variant / f"{case}__{image}__rescaled.npy"
                if rfile.exists():
                    r = np.load(rfile)[..., 0]
                    derived = arr * np.float32(params["rescale"])
                    resc[case] = torch.from_numpy(r.view(np.int32) - derived.view(np.int32))
        archive["outputs"][variant], archive["rescaled"][variant] = outs, resc
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("scipy not importable: no scipy_constant references", file=sys.stderr)
    else:
        archive["scipy_constant"] = {"cval": CONSTANT_CVAL, "image": "rect12x16", "cases": {}}
        for variant in ("kp112", "k3"):
            cases = {}
            check = max(
                scipy_nearest_check(
                    inputs["rect12x16"], spec["params"], variant, archive["outputs"][variant][case]["rect12x16"].numpy()
                )
                for case, spec in params["cases"].items()
                if "rect12x16" in spec["images"]
            )
            print(f"{variant}: numpy port, mode='nearest', max |err| vs Keras golden {check:.3g}", file=sys.stderr)
            assert check < 1e-3, check
            for case in CONSTANT_CASES:
                out, margin = scipy_constant(inputs["rect12x16"], params["cases"][case]["params"], variant)
                print(
                    f"{variant} {case}: min distance of a source coordinate to an edge {margin:.3g} px", file=sys.stderr
                )
                if margin > 1e-3:
                    cases[case] = torch.from_numpy(out)
            archive["scipy_constant"]["cases"][variant] = cases
    buf = io.BytesIO()
    torch.save(archive, buf)
    data = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    (HERE / "golden.pt.xz").write_bytes(data)
    (HERE / "params.json").write_text((src / "params.json").read_text())
    print(f"wrote {HERE / 'golden.pt.xz'}: {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_golden.py KERAS_GOLDEN_FOLDER")
    main(Path(sys.argv[1]))
