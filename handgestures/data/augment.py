"""Keras ``ImageDataGenerator`` affine augmentation, batched, in PyTorch.

The study ran Keras' ``ImageDataGenerator(rotation_range=90, width_shift_range=0.2,
height_shift_range=0.2, zoom_range=0.2, horizontal_flip=True, vertical_flip=True)``.
torchvision's ``RandomAffine`` is not equivalent (constant fill instead of edge
replication, one isotropic scale, integer shifts, one parameter set per call), so
this module reproduces Keras' maths exactly (see ``shared/KERAS_SEMANTICS.md``
§2-§6, checked against the Keras goldens in ``tests/data/keras_golden``).

Conventions
-----------
* Images are ``(B, C, H, W)`` tensors (``(C, H, W)`` for the transform), any scale:
  the warp is linear, so warping 0..255 and rescaling by 1/255 afterwards (Keras'
  order) equals rescaling first, up to float rounding.
* Parameters are per-image 1-D tensors in Keras units: ``theta`` and ``shear`` in
  degrees, ``tx`` and ``ty`` in pixels, ``zx``/``zy`` zoom factors (``z > 1``
  zooms *out*), ``flip_horizontal``/``flip_vertical`` booleans.
* Two Keras implementations exist and give different images for the same
  parameters (§4):

  - ``"keras2"`` (alias ``"kp112"``): keras-preprocessing <= 1.1.2, i.e. Keras
    2.2/2.3 and tf.keras <= 2.8, what a 2019-2020 project ran. The matrix acts on
    (row, col); ``tx``/``zx`` act on rows, positive ``theta`` turns clockwise on
    screen, and the centre is pixel ``H/2 + 0.5`` (one pixel off).
  - ``"keras3"`` (alias ``"k3"``): keras >= 2.9 and Keras 3's legacy generator.
    The matrix acts on (x, y) = (col, row); positive ``theta`` is
    counter-clockwise; the centre is ``(H/2 - 0.5, W/2 - 0.5)`` assigned to
    (x, y), a Keras quirk that only matters for non-square images and is kept.

* Resampling is SciPy ``affine_transform(order=1)``: a pull mapping with bilinear
  interpolation, done here with ``F.grid_sample(align_corners=True)`` on the grid of
  ``F.affine_grid(align_corners=True)`` (built by a faster equivalent, see
  ``_grid``; on CPU the batch is warped in cache-sized chunks).
  ``fill_mode="nearest"`` (Keras' default, edge replication) is
  ``padding_mode="border"``. ``fill_mode="constant"`` follows
  SciPy >= 1.6 ``mode="constant"`` (the goldens' SciPy 1.17): a sample whose
  source coordinate lies outside ``[0, n-1]`` on either axis is ``cval``, every
  other sample is interpolated from in-range pixels only (no blending towards
  ``cval``). Coordinates within about 1e-5 of the edge (normalised units) count
  as inside, so float32 rounding cannot flip exact edge samples to ``cval``.
* Flips come *after* the warp in Keras (``flip_horizontal`` reverses columns,
  ``flip_vertical`` rows). A flip after a pull warp is the same as reversing the
  output coordinates, so the flips are folded exactly into the sampling matrix: no
  extra pass over the pixels.
* A sample whose warp parameters are all trivial is not warped at all (Keras skips
  the warp too): it is copied exactly, flips included.
* Random draws (``sample_keras_params``) follow Keras ``get_random_transform``
  distributions but use a ``torch.Generator``, not numpy's global stream: the
  statistics match, the individual draws do not. For an exact replay of a Keras run,
  draw with numpy and feed the parameters to :func:`apply_keras_transform`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import is_pure_tensor
from torchvision.utils import make_grid

__all__ = [
    "PARAM_NAMES",
    "KerasRandomAffine",
    "apply_keras_transform",
    "make_augmentation_grid",
    "sample_keras_params",
]

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


# --------------------------------------------------------------------------- warp


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
        raise ValueError(f"params[{name!r}] has shape {tuple(t.shape)}; expected ({batch},) (one value per image) or a scalar")
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
        flags = torch.stack([
            torch.zeros(batch, dtype=torch.bool, device=device) if v is None
            else _param_tensor(n, v, batch, device).to(device=device) != 0
            for n, v in zip(("flip_horizontal", "flip_vertical"), flips, strict=True)
        ], dim=1)  # (B, 2)
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
    """``F.affine_grid(mat, align_corners=True)``, about 6x faster on CPU.

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
    # input and the output stay in cache: 2-3x faster than one pass at batch 256.
    step = n if images.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (height * width))
    if step >= n:
        return _warp_chunk(images, mat, fill_mode, cval)
    return torch.cat([
        _warp_chunk(images[i:i + step], mat[i:i + step], fill_mode, cval) for i in range(0, n, step)
    ])


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


# ----------------------------------------------------------------------- sampling


def _check_range(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def _parse_shift(name: str, value: Any) -> tuple[str, Any]:
    """Keras' three shift modes: int n -> integer pixels, float -> uniform, sequence -> choice."""
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be a number or a sequence of numbers, not a bool")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"{name}={value!r} must be >= 0")
        return ("int", int(value))
    if isinstance(value, numbers.Real):
        return ("uniform", _check_range(name, value))
    if isinstance(value, (Sequence, torch.Tensor)) and not isinstance(value, str):
        values = [float(v) for v in value]
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name}={value!r} must be a non-empty sequence of finite numbers")
        return ("choice", values)
    raise ValueError(f"{name}={value!r} must be an int, a float or a sequence of numbers")


def _parse_zoom(value: Any) -> tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        z = _check_range("zoom_range", value)
        lo, hi = 1.0 - z, 1.0 + z
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        lo, hi = (_check_range("zoom_range", v) for v in value)
    else:
        raise ValueError(f"zoom_range={value!r} must be a float z (giving [1-z, 1+z]) or a pair [lo, hi]")
    if lo > hi:
        raise ValueError(f"zoom_range={value!r} gives lo={lo} > hi={hi}")
    return lo, hi


def _shift_bounds(mode: tuple[str, Any], size: int) -> tuple[float, float]:
    """(low, width) of a continuous shift, in pixels; (0, 0) for the discrete modes."""
    kind, value = mode
    if kind != "uniform":
        return 0.0, 0.0
    pixels = value * size if value < 1 else value
    return -pixels, 2.0 * pixels


def _draw_discrete_shift(mode: tuple[str, Any], u: torch.Tensor, u_sign: torch.Tensor, size: int) -> torch.Tensor:
    """Keras' ``choice(...) * choice([-1, 1])`` shifts (an int n or a sequence of values)."""
    kind, value = mode
    sign = torch.where(u_sign < 0.5, -1.0, 1.0)
    if kind == "int":  # np.random.choice(n) = choice(arange(n)); pixels
        return torch.floor(u * value).clamp_(max=value - 1) * sign
    values = torch.tensor(value, dtype=torch.float64)
    out = values[torch.floor(u * len(value)).long().clamp_(max=len(value) - 1)] * sign
    return out * size if max(value) < 1 else out


def sample_keras_params(
    n: int,
    image_size: tuple[int, int],
    *,
    rotation_range: float = 0.0,
    width_shift_range: Any = 0.0,
    height_shift_range: Any = 0.0,
    shear_range: float = 0.0,
    zoom_range: Any = 0.0,
    horizontal_flip: bool = False,
    vertical_flip: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Draw ``n`` parameter sets with Keras ``get_random_transform`` distributions (§3).

    * ``theta ~ U[-rotation_range, rotation_range)`` degrees; ``shear`` likewise.
    * ``tx`` from ``height_shift_range`` and ``ty`` from ``width_shift_range``
      (Keras' naming; ``image_size = (H, W)``): a float < 1 is a fraction of H (W),
      continuous; a float >= 1 is pixels, continuous; an int n gives integers
      ``choice(arange(n)) * choice([-1, 1])`` in (-n, n); a sequence gives
      ``choice(values) * choice([-1, 1])``, times H (W) if all values are < 1.
    * ``zoom_range`` z gives ``[1 - z, 1 + z]``, or pass ``[lo, hi]``; ``zx`` and
      ``zy`` are independent (anisotropic zoom, as Keras).
    * flips with p = 0.5 each, independent; ``False`` when disabled.

    Draws use ``generator`` (a CPU ``torch.Generator``, or the global torch RNG if
    None) on the CPU and the tensors are then moved to ``device``, so one seed gives
    the same parameters on every device. Every call consumes ``10 * n`` uniforms
    whatever the ranges, so enabling e.g. flips does not change the other draws.

    Returns:
        dict with float64 tensors ``theta, tx, ty, shear, zx, zy`` and bool tensors
        ``flip_horizontal, flip_vertical``, each of shape ``(n,)``.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n={n!r} must be an int >= 0")
    if (
        not isinstance(image_size, Sequence)
        or len(image_size) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in image_size)
    ):
        raise ValueError(f"image_size={image_size!r} must be a pair of positive ints (H, W)")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise ValueError(f"generator={generator!r} must be a CPU torch.Generator (draws are made on the CPU)")
    height, width = int(image_size[0]), int(image_size[1])
    rot = _check_range("rotation_range", rotation_range)
    shear_r = _check_range("shear_range", shear_range)
    tx_mode = _parse_shift("height_shift_range", height_shift_range)
    ty_mode = _parse_shift("width_shift_range", width_shift_range)
    zlo, zhi = _parse_zoom(zoom_range)

    # rows: theta, tx, tx sign, ty, ty sign, shear, zx, zy, flip h, flip v
    u = torch.rand(10, int(n), dtype=torch.float64, generator=generator)
    (tx_lo, tx_w), (ty_lo, ty_w) = _shift_bounds(tx_mode, height), _shift_bounds(ty_mode, width)
    low = torch.tensor([-rot, tx_lo, ty_lo, -shear_r, zlo, zlo], dtype=torch.float64)
    width_ = torch.tensor([2 * rot, tx_w, ty_w, 2 * shear_r, zhi - zlo, zhi - zlo], dtype=torch.float64)
    # U[low, low + width): a zero width gives exactly low (0 for angles and shifts, 1 for zoom)
    cont = torch.addcmul(low[:, None], width_[:, None], u[[0, 1, 3, 5, 6, 7]])
    if tx_mode[0] != "uniform" and tx_mode[1]:
        cont[1] = _draw_discrete_shift(tx_mode, u[1], u[2], height)
    if ty_mode[0] != "uniform" and ty_mode[1]:
        cont[2] = _draw_discrete_shift(ty_mode, u[3], u[4], width)
    flips = (u[8:10] < 0.5) & torch.tensor([[bool(horizontal_flip)], [bool(vertical_flip)]])
    if device is not None:
        cont, flips = cont.to(device), flips.to(device)
    out = dict(zip(_WARP_NAMES, cont.unbind(0), strict=True))
    out["flip_horizontal"], out["flip_vertical"] = flips.unbind(0)
    return out


# ---------------------------------------------------------------------- transform


class KerasRandomAffine(v2.Transform):
    """``ImageDataGenerator``'s random affine + flips as a torchvision v2 transform.

    Unlike ``v2.RandomAffine``, every image of a batch gets its own parameters,
    edges are replicated (``fill_mode='nearest'``), zoom is anisotropic and shifts
    are sub-pixel, exactly as Keras (see the module docstring).

    Inputs: a plain tensor or ``tv_tensors.Image`` of shape ``(C, H, W)`` (one
    image) or ``(B, C, H, W)`` (a batch, one parameter set per image), on any
    device. Floating inputs keep their dtype; ``uint8`` inputs are converted to
    float32 *on the same 0..255 scale* (no rescaling) and returned as float32, as
    Keras does. Other tv_tensors (boxes, masks, videos) are rejected. If several
    images are passed in one call they must have the same shape and share the
    parameters.

    Randomness: ``seed`` (an int) or ``generator`` (a CPU ``torch.Generator``) make
    the draws reproducible; with neither, the global torch RNG is used (this is what
    you want inside DataLoader workers, which reseed it per worker: a seeded
    generator would be copied into every worker and repeat the same draws). For
    training, the recommended use is on the batch after the device transfer, e.g.
    in ``LightningModule.on_after_batch_transfer``: ``x = aug(x)``.
    """

    _transformed_types = (is_pure_tensor, tv_tensors.Image)

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: Any = 0.0,
        height_shift_range: Any = 0.0,
        shear_range: float = 0.0,
        zoom_range: Any = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        semantics: str = "keras2",
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.semantics = _canonical_semantics(semantics)
        self.cval = _check_fill(fill_mode, cval)
        self.fill_mode = fill_mode
        self.rotation_range = _check_range("rotation_range", rotation_range)
        self.shear_range = _check_range("shear_range", shear_range)
        _parse_shift("width_shift_range", width_shift_range)
        _parse_shift("height_shift_range", height_shift_range)
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        _parse_zoom(zoom_range)
        self.zoom_range = zoom_range
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        if generator is not None and seed is not None:
            raise ValueError(f"pass either generator or seed, not both (seed={seed!r})")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise ValueError(f"seed={seed!r} must be an int")
            generator = torch.Generator().manual_seed(int(seed))
        if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
            raise ValueError(f"generator={generator!r} must be a CPU torch.Generator")
        self._generator = generator
        self._seed = seed

    @property
    def generator(self) -> torch.Generator | None:
        return self._generator

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        for inpt in flat_inputs:
            if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, tv_tensors.Image):
                raise ValueError(
                    f"{type(self).__name__} only transforms images; got {type(inpt).__name__}, "
                    "which it cannot transform consistently"
                )

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        shapes = {tuple(x.shape) for x in flat_inputs}
        if not shapes:  # nothing to transform: everything passes through
            return {"params": None}
        if len(shapes) != 1:
            raise ValueError(f"all images in one call must have the same shape, got {sorted(shapes)}")
        shape = shapes.pop()
        if len(shape) not in (3, 4):
            raise ValueError(f"image has shape {shape}; expected (C, H, W) or (B, C, H, W)")
        batch = 1 if len(shape) == 3 else shape[0]
        params = sample_keras_params(
            batch,
            (shape[-2], shape[-1]),
            rotation_range=self.rotation_range,
            width_shift_range=self.width_shift_range,
            height_shift_range=self.height_shift_range,
            shear_range=self.shear_range,
            zoom_range=self.zoom_range,
            horizontal_flip=self.horizontal_flip,
            vertical_flip=self.vertical_flip,
            generator=self._generator,
        )
        return {"params": params}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        x = inpt.as_subclass(torch.Tensor)
        if x.dtype == torch.uint8:
            x = x.float()
        elif not x.is_floating_point():
            raise ValueError(f"image dtype {x.dtype} is not supported; expected uint8 or a floating dtype")
        single = x.ndim == 3
        out = apply_keras_transform(
            x.unsqueeze(0) if single else x,
            params["params"],
            semantics=self.semantics,
            fill_mode=self.fill_mode,
            cval=self.cval,
        )
        if single:
            out = out.squeeze(0)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    # torchvision < 0.21 calls the private names.
    _get_params = make_params
    _transform = transform

    def extra_repr(self) -> str:
        parts = [
            f"rotation_range={self.rotation_range}",
            f"width_shift_range={self.width_shift_range}",
            f"height_shift_range={self.height_shift_range}",
            f"shear_range={self.shear_range}",
            f"zoom_range={self.zoom_range}",
            f"horizontal_flip={self.horizontal_flip}",
            f"vertical_flip={self.vertical_flip}",
            f"fill_mode={self.fill_mode!r}",
        ]
        if self.fill_mode == "constant":
            parts.append(f"cval={self.cval}")
        parts.append(f"semantics={self.semantics!r}")
        if self._seed is not None:
            parts.append(f"seed={self._seed}")
        elif self._generator is not None:
            parts.append("generator=<torch.Generator>")
        return ", ".join(parts)


# --------------------------------------------------------------------- inspection


@torch.no_grad()
def make_augmentation_grid(
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    n_augmented: int = 7,
) -> torch.Tensor:
    """One row per image: the original, then ``n_augmented`` augmented copies.

    ``images`` is ``(N, 1, H, W)`` (or 3 channels) float in [0, 1]; ``transform`` is
    called once on the ``N * n_augmented`` copies as a batch (a
    :class:`KerasRandomAffine` gives each copy its own parameters). Returns a
    ``(3, H', W')`` float grid in [0, 1] on the images' device, ready for
    ``torchvision.utils.save_image`` or TensorBoard ``add_image``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images has shape {shape}; expected (N, 1, H, W) or (N, 3, H, W)")
    if not images.is_floating_point():
        raise ValueError(f"images has dtype {images.dtype}; expected float in [0, 1]")
    if isinstance(n_augmented, bool) or not isinstance(n_augmented, numbers.Integral) or n_augmented < 0:
        raise ValueError(f"n_augmented={n_augmented!r} must be an int >= 0")
    n = images.shape[0]
    rows = [images.unsqueeze(1)]
    if n_augmented:
        augmented = transform(images.repeat_interleave(int(n_augmented), dim=0))
        rows.append(augmented.reshape(n, int(n_augmented), *images.shape[1:]).to(images.dtype))
    tiles = torch.cat(rows, dim=1).flatten(0, 1).clamp(0.0, 1.0)
    return make_grid(tiles, nrow=int(n_augmented) + 1, padding=2, pad_value=1.0)
