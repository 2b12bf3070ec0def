"""Random parameters with Keras ``get_random_transform``'s distributions, from a torch Generator.

``docs/keras-augmentation.md`` §3 gives the distributions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch

from handgestures.data.augment.warp import _WARP_NAMES


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
