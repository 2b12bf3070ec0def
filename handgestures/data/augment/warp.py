"""The warp maths: Keras' affine transform and flips as one batched ``grid_sample`` pull.

Validation of the options (semantics, fill) and the parameter names live here too, since
every other part of the package goes through them. The conventions are in the package
docstring (``handgestures.data.augment``) and ``docs/keras-augmentation.md`` §4-§5.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

#: Keys of a parameter dict, in Keras' ``get_random_transform`` naming.
PARAM_NAMES = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")
_WARP_NAMES = PARAM_NAMES[:6]
_WARP_DEFAULTS = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0)

_SEMANTICS = {"keras2": "keras2", "kp112": "keras2", "keras3": "keras3", "k3": "keras3"}
_FILL_MODES = ("nearest", "constant")
# Normalised-coordinate slack for the constant-fill inside test (about 6e-4 px at 128).
_INSIDE_EPS = 1e-5
# CPU warps run in chunks of this many output pixels (grid + images stay in cache).
_CPU_CHUNK_PIXELS = 1 << 19


def _canonical_semantics(semantics: Any) -> str:
    try:
        return _SEMANTICS[semantics]
    except (KeyError, TypeError):
        raise ValueError(
            f"semantics={semantics!r} is not supported; expected 'keras2' "
            "(keras-preprocessing <= 1.1.2, alias 'kp112') or 'keras3' (keras >= 2.9, alias 'k3')"
        ) from None


def _check_fill(fill_mode: Any, cval: Any) -> float:
    if fill_mode not in _FILL_MODES:
        raise ValueError(f"fill_mode={fill_mode!r} is not supported; expected one of {_FILL_MODES}")
    if isinstance(cval, bool) or not isinstance(cval, numbers.Real) or not math.isfinite(cval):
        raise ValueError(f"cval={cval!r} must be a finite real number")
    return float(cval)


def _param_tensor(
    name: str, value: Any, batch: int, device: torch.device | None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value
    else:  # numbers, lists, numpy arrays (e.g. parameters replayed from Keras)
        try:
            if isinstance(value, str):
                raise TypeError
            t = torch.as_tensor(value, dtype=dtype, device=device)  # float64: no float32 rounding
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"params[{name!r}] must be a tensor of shape ({batch},) or a number, got {value!r}"
            ) from None
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.shape != (batch,):
        raise ValueError(
            f"params[{name!r}] has shape {tuple(t.shape)}; expected ({batch},) (one value per image) or a scalar"
        )
    if t.is_complex():
        raise ValueError(f"params[{name!r}] has dtype {t.dtype}; expected a real or bool tensor")
    return t


def _coefficients(height: int, width: int, semantics: str) -> list[list[float]]:
    """Constant 7x6 map from per-image features to the normalised 2x3 matrix (row-major).

    Features ``f = [zx·cosθ, zx·sinθ, zy·cos(θ+s), zy·sin(θ+s), b0, b1, 1]`` where
    ``(b0, b1) = R(θ)·(tx, ty)``: Keras' ``A = R·Sh·Z`` is ``[[f0, -f3], [f1, f2]]``. The
    result is the closed form of ``N · P · Off(o) · R · T · Sh · Z · Off(-o) · P · N^-1``
    (§5), with ``N`` the ``align_corners=True`` normalisation.
    """
    sx, sy = (width - 1) / 2.0, (height - 1) / 2.0

    def unit(i: int, sign: float = 1.0) -> list[float]:
        v = [0.0] * 7
        v[i] = sign
        return v

    if semantics == "keras2":
        # (row, col) matrix, centre (H/2 + 0.5, W/2 + 0.5): in (x, y) it is P·M·P.
        a, b, c, d, e, f = unit(2), unit(1), unit(3, -1.0), unit(0), unit(5), unit(4)
        dcx, dcy = sx - (width / 2.0 + 0.5), sy - (height / 2.0 + 0.5)
    else:
        # (x, y) matrix, centre (H/2 - 0.5, W/2 - 0.5) assigned to (x, y) (the Keras quirk).
        a, b, c, d, e, f = unit(0), unit(3, -1.0), unit(1), unit(2), unit(4), unit(5)
        dcx, dcy = sx - (height / 2.0 - 0.5), sy - (width / 2.0 - 0.5)
    # x_in = a·(x - cx) + b·(y - cy) + e + cx with x = sx·(xn + 1) and y = sy·(yn + 1).
    cols = [
        a,
        [v * (sy / sx) for v in b],
        [(va * dcx + vb * dcy + ve) / sx for va, vb, ve in zip(a, b, e, strict=True)],
        [v * (sx / sy) for v in c],
        d,
        [(vc * dcx + vd * dcy + vf) / sy for vc, vd, vf in zip(c, d, f, strict=True)],
    ]
    cols[2][6] -= dcx / sx
    cols[5][6] -= dcy / sy
    return [list(row) for row in zip(*cols, strict=True)]


def _sampling_matrices(
    params: Mapping[str, Any], batch: int, height: int, width: int, semantics: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the normalised pull matrices (B, 2, 3) in float64 and the identity mask (B,).

    Built where the params live, in a handful of vectorised ops (this runs once per
    batch and must stay cheap next to the warp). The flips are folded in as sign
    changes of the output-coordinate columns (a flip after a pull warp reverses the
    output coordinates).
    """
    unknown = set(params) - set(PARAM_NAMES)
    if unknown:
        raise ValueError(f"unknown parameter name(s) {sorted(unknown)}; expected a subset of {PARAM_NAMES}")
    device = next((v.device for v in params.values() if isinstance(v, torch.Tensor)), None)
    warp = []
    for name, default in zip(_WARP_NAMES, _WARP_DEFAULTS, strict=True):
        value = params.get(name)
        if value is None:
            warp.append(torch.full((batch,), default, dtype=torch.float64, device=device))
        else:
            warp.append(_param_tensor(name, value, batch, device, torch.float64).to(device=device, dtype=torch.float64))
    p = torch.stack(warp)  # (6, B): theta, tx, ty, shear, zx, zy
    if not bool(torch.isfinite(p).all()):
        bad = [n for n, row in zip(_WARP_NAMES, p, strict=True) if not bool(torch.isfinite(row).all())]
        raise ValueError(f"params {bad} contain NaN or infinite values")
    identity = p.eq(p.new_tensor(_WARP_DEFAULTS)[:, None]).all(0)

    # polar() gives cos and sin in one pass; torch.cos/sin go multi-threaded from about
    # 100 elements on CPU, which costs milliseconds on a busy machine.
    ang = torch.deg2rad(torch.stack((p[0], p[0] + p[3])))  # θ, θ + shear
    unit = torch.polar(torch.ones_like(ang), ang)
    zoomed = torch.view_as_real(unit * p[4:6])  # (2, B, 2): zx·(cosθ, sinθ), zy·(cos, sin)(θ+s)
    shift = torch.view_as_real(torch.complex(p[1], p[2]) * unit[0])  # (B, 2): R(θ)·(tx, ty)
    feats = torch.cat((zoomed.transpose(0, 1).reshape(batch, 4), shift, shift.new_ones(batch, 1)), dim=1)
    coef = torch.tensor(_coefficients(height, width, semantics), dtype=torch.float64, device=device)
    mat = torch.mm(feats, coef).view(batch, 2, 3)

    flips = [params.get(n) for n in ("flip_horizontal", "flip_vertical")]
    if any(v is not None for v in flips):
        flags = torch.stack(
            [
                torch.zeros(batch, dtype=torch.bool, device=device)
                if v is None
                else _param_tensor(n, v, batch, device).to(device=device) != 0
                for n, v in zip(("flip_horizontal", "flip_vertical"), flips, strict=True)
            ],
            dim=1,
        )  # (B, 2)
        sign = torch.ones(batch, 1, 3, dtype=torch.float64, device=device)
        sign[:, 0, :2] = 1.0 - 2.0 * flags.to(torch.float64)
        mat = mat * sign  # column 0 scales output x (flip_horizontal), column 1 output y
    return mat, identity


def _flip_copy(images: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
    """Exact copy of identity-warp samples with their flips (read from ``mat``'s signs)."""
    fh = (mat[:, 0, 0] < 0).to(images.device).view(-1, 1, 1, 1)
    fv = (mat[:, 1, 1] < 0).to(images.device).view(-1, 1, 1, 1)
    out = torch.where(fh, images.flip(-1), images)
    return torch.where(fv, out.flip(-2), out)


def _grid(mat: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(mat, align_corners=True)``, computed faster on CPU (docs/performance.md).

    ``affine_grid`` fills an (N, H, W, 3) base grid and multiplies it by ``mat`` with a
    K=3 ``bmm``, which costs more than the ``grid_sample`` that follows. Here each
    (x, y) pair is one complex number, so the grid is a single broadcast add of two
    outer products with long vectorised inner loops (a float (N, H, W, 2) broadcast
    has inner loops of length 2). Same values up to float rounding (1 ulp).
    """
    n = mat.shape[0]
    cols = torch.view_as_complex(mat.transpose(1, 2).contiguous()).view(n, 3, 1, 1)  # x + i·y coefficients
    xs = torch.linspace(-1.0, 1.0, width, dtype=mat.dtype, device=mat.device).view(1, 1, width)
    ys = torch.linspace(-1.0, 1.0, height, dtype=mat.dtype, device=mat.device).view(1, height, 1)
    return torch.view_as_real(xs * cols[:, 0] + (ys * cols[:, 1] + cols[:, 2]))


def _warp_chunk(images: torch.Tensor, mat: torch.Tensor, fill_mode: str, cval: float) -> torch.Tensor:
    grid = _grid(mat, images.shape[-2], images.shape[-1])
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
    if fill_mode == "constant":
        outside = grid.abs().amax(-1) > 1.0 + _INSIDE_EPS  # (N, H, W): source off [0, n-1]
        out.masked_fill_(outside.unsqueeze(1), cval)
    return out


def _warp(images: torch.Tensor, mat: torch.Tensor, fill_mode: str, cval: float) -> torch.Tensor:
    mat = mat.to(device=images.device, dtype=images.dtype)
    n, _, height, width = images.shape
    # On CPU, warp a few images at a time (about 32 of 128x128) so that the grid, the
    # input and the output stay in cache: faster than one pass over a large batch.
    step = n if images.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (height * width))
    if step >= n:
        return _warp_chunk(images, mat, fill_mode, cval)
    return torch.cat([_warp_chunk(images[i : i + step], mat[i : i + step], fill_mode, cval) for i in range(0, n, step)])


def apply_keras_transform(
    images: torch.Tensor,
    params: Mapping[str, Any],
    semantics: str = "keras2",
    fill_mode: str = "nearest",
    cval: float = 0.0,
) -> torch.Tensor:
    """Apply Keras ``apply_transform`` (affine warp, then flips) with per-image parameters.

    Args:
        images: float tensor ``(B, C, H, W)`` on any device, any value scale
            (``cval`` is on the same scale). float16/bfloat16 are warped in float32
            and cast back.
        params: per-image tensors of shape ``(B,)`` (a number or 0-d tensor is
            broadcast) named ``theta, tx, ty, shear, zx, zy, flip_horizontal,
            flip_vertical`` in Keras units (degrees, pixels); missing keys are the
            identity. Give float64 values (as :func:`sample_keras_params` does):
            float32 params round e.g. ``tx=5.3`` to 5.3000002. The matrices are built
            in float64 where the params live and moved to the images' device as one
            (B, 2, 3) tensor: keep the params on the CPU, which avoids tiny device
            kernels and syncs.
        semantics: ``"keras2"`` (keras-preprocessing 1.1.2, the 2019-2020 maths) or
            ``"keras3"`` (keras >= 2.9); they differ in rotation sense, axes and centre.
        fill_mode: ``"nearest"`` (edge replication, Keras' default) or ``"constant"``.
        cval: fill value for ``"constant"``.

    Returns:
        Tensor of the same shape, dtype and device as ``images``.
    """
    sem = _canonical_semantics(semantics)
    cval = _check_fill(fill_mode, cval)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images has shape {tuple(images.shape)}; expected 4 dims (B, C, H, W)")
    if not images.is_floating_point():
        raise ValueError(f"images has dtype {images.dtype}; expected a floating dtype (convert uint8 first)")
    batch, _, height, width = images.shape
    if height < 2 or width < 2:
        raise ValueError(f"images has spatial size {height}x{width}; expected H >= 2 and W >= 2")
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of per-image tensors, got {type(params).__name__}")
    if batch == 0:
        return images.clone()

    in_dtype = images.dtype
    if fill_mode == "constant" and abs(cval) > torch.finfo(in_dtype).max:
        raise ValueError(
            f"cval={cval!r} does not fit the images' dtype {in_dtype} (largest {torch.finfo(in_dtype).max})"
        )
    if in_dtype in (torch.float16, torch.bfloat16):
        images = images.float()
    mat, identity = _sampling_matrices(params, batch, height, width, sem)
    n_identity = int(identity.sum())
    if n_identity == 0:
        out = _warp(images, mat, fill_mode, cval)
    elif n_identity == batch:
        out = _flip_copy(images, mat)
    else:
        warp_idx = (~identity).nonzero().squeeze(1)
        copy_idx = identity.nonzero().squeeze(1)
        out = torch.empty_like(images)
        dev_warp, dev_copy = warp_idx.to(images.device), copy_idx.to(images.device)
        out[dev_warp] = _warp(images[dev_warp], mat[warp_idx], fill_mode, cval)
        out[dev_copy] = _flip_copy(images[dev_copy], mat[copy_idx])
    return out.to(in_dtype)
