"""The built-in hands: a procedural stand-in for the Fingers dataset.

Without a copy of the real Fingers images, the project trains on these. Each image
imitates the real photos: one bright hand, upright and centred, cut at the wrist, on a
dark, cloudy, grainy background; 8-bit grayscale, ``size`` x ``size``. A hand is a union
of signed-distance fields (palm, wrist, one capsule per digit) whose raised digits follow
the finger count with the variants people use; its size is drawn independently of the
class, so that hand area does not give the count away. ``docs/built-in-hands.md``
describes the design, and why each choice was made.

Speed and determinism: everything is vectorised with torch; the distance fields and the
smooth parts are computed at half resolution and upsampled 2x. Random numbers are drawn
per chunk of ``CHUNK`` images, from a generator seeded from ``seed``, and the chunks are
rendered side by side on the CPU's cores. The output is bit-identical for a given ``(n,
seed, size)`` whatever the number of threads: only operations whose rounding cannot
depend on how torch splits the work are used (additions, products, divisions, square
roots, comparisons, copies, sums of integers; transcendental functions only on per-chunk
vectors), which is why the 2x upsampling is written out rather than ``F.interpolate`` and
lengths use ``sqrt`` rather than ``hypot``. Labels and hands are exactly balanced (``n /
12`` per pair) and shuffled.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

__all__ = ["generate_hands"]

from handgestures.data.hand_params import NUM_CLASSES, sample_params

CHUNK = 64  # images per random-number draw (part of the output's definition: changing it changes the images)
_PLACED = ("scale", "origin_x", "origin_y")  # the parameters _place computes
_PART = 32  # images rendered at once inside a chunk (the fastest here: benchmarks/hands.py)

# The four fingers (index, middle, ring, pinky) in the hand frame of a left hand (thumb
# towards -u, fingers towards -v), at scale 1: base position across the palm's top and
# base height below the palm's top (their sizes and tilts: hand_params).
_FINGER_U = (-11.0, -3.7, 3.7, 11.0)
_FINGER_DROP = (3.0, 2.5, 3.0, 5.5)
_FOLDED_DROP = (2.5, 0.0, 1.0, 2.5)  # folded, the knuckles make an arch

# Where the hand's area is measured: a coarse grid in the hand frame that holds any hand.
_AREA_U = (-54.0, 54.0)
_AREA_V = (-70.0, 40.0)
_AREA_STEP = 3.0
_AREA_REFERENCE = 1600.0  # a middling hand's area at scale 1
_AREA_ECHO = 0.25  # how much of its own area a hand keeps (0: none, 1: all, as in photos)


def generate_hands(
    n: int = 21600, seed: int = 0, size: int = 128, progress: Callable[[int], None] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Render ``n`` procedural hand photos.

    Returns ``(images, labels, hands)``: ``images`` uint8 ``(n, 1, size, size)``,
    ``labels`` int64 ``(n,)`` in 0..5 (raised fingers), ``hands`` int64 ``(n,)``
    (0 = left, 1 = right). Exactly ``n / 12`` images per (label, hand), in a shuffled
    order; the same ``seed`` gives bit-identical tensors. ``progress`` is called with the
    number of images each finished chunk rendered, in order.

    >>> images, labels, hands = generate_hands(24, seed=1)
    >>> images.shape, images.dtype, labels.bincount().tolist(), hands.bincount().tolist()
    (torch.Size([24, 1, 128, 128]), torch.uint8, [4, 4, 4, 4, 4, 4], [12, 12])
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0 or n % (2 * NUM_CLASSES):
        raise ValueError(
            f"n must be a positive multiple of 12 (6 finger counts x 2 hands, to balance them exactly), got n={n!r}"
        )
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got size={size!r}")
    n, size = int(n), int(size)

    gen = torch.Generator().manual_seed(int(seed))
    pairs = torch.arange(2 * NUM_CLASSES).repeat_interleave(n // (2 * NUM_CLASSES))
    pairs = pairs[torch.randperm(n, generator=gen)]
    labels, hands = pairs // 2, pairs % 2

    params = sample_params(labels, hands, gen)
    params.update({key: torch.empty(n) for key in _PLACED})
    chunk_starts = range(0, n, CHUNK)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the chunks run side by side instead, with less synchronisation
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:  # torch releases the GIL in its kernels
            list(pool.map(lambda start: _place(params, slice(start, min(n, start + CHUNK))), chunk_starts))
            chunk_seeds = torch.randint(0, 2**62, (len(chunk_starts),), generator=gen).tolist()
            images = torch.empty(n, 1, size, size, dtype=torch.uint8)

            def render(i: int) -> int:
                part = slice(i * CHUNK, min(n, (i + 1) * CHUNK))
                chunk = {k: v[part] for k, v in params.items()}
                images[part, 0] = _render(chunk, size, torch.Generator().manual_seed(chunk_seeds[i]))
                return part.stop - part.start

            for done in pool.map(render, range(len(chunk_seeds))):
                if progress is not None:
                    progress(done)
    finally:
        torch.set_num_threads(threads)
    return images, labels, hands


# --------------------------------------------------------------------------- geometry


def _col(x: Tensor) -> Tensor:
    """A per-image value, shaped to broadcast against ``(B, H, W)`` grids."""
    return x[:, None, None]


def _length(x: Tensor, y: Tensor) -> Tensor:
    """sqrt(x^2 + y^2), in place in ``x``; not ``hypot``, whose SIMD and scalar paths may
    differ in the last bit (and which elements take which path depends on the threads)."""
    return x.mul_(x).add_(y * y).sqrt_()


def _capsule(u: Tensor, v: Tensor, au: Tensor, av: Tensor, bu: Tensor, bv: Tensor, r: Tensor) -> Tensor:
    """Distance to the segment a-b, minus r. a, b, r are per image ``(B,)``."""
    du, dv = bu - au, bv - av
    inv = _col(1.0 / (du * du + dv * dv + 1e-6))
    du, dv = _col(du), _col(dv)
    pu, pv = u - _col(au), v - _col(av)
    h = pu * du
    h += pv * dv
    h.mul_(inv).clamp_(0.0, 1.0)
    pu -= h * du
    pv -= h * dv
    return _length(pu, pv).sub_(_col(r))


def _rounded_box(u: Tensor, v: Tensor, cu: Tensor, cv: Tensor, hu: Tensor, hv: Tensor, r: float) -> Tensor:
    """Distance to a box centred at (cu, cv) with half sizes (hu, hv) and corner radius r."""
    qu = (u - _col(cu)).abs_().sub_(_col(hu - r))
    qv = (v - _col(cv)).abs_().sub_(_col(hv - r))
    inside = torch.maximum(qu, qv).clamp_(max=0.0)
    return _length(qu.clamp_(min=0.0), qv.clamp_(min=0.0)).add_(inside).sub_(r)


def _smooth_min(a: Tensor, b: Tensor, k: float) -> Tensor:
    h = (b - a).mul_(0.5 / k).add_(0.5).clamp_(0.0, 1.0)
    blend = (a - b).mul_(h).add_(b)
    return blend.sub_(h.mul_(1.0 - h).mul_(k))


def _with_trig(p: dict[str, Tensor]) -> dict[str, Tensor]:
    """``p`` plus the sines and cosines its geometry needs, computed once per chunk.

    Computed on the whole chunk's vectors, so that rendering a chunk in smaller parts cannot
    change which of torch's code paths (SIMD or scalar) computes a value.
    """
    tilt = [p["finger_tilt"][:, i] for i in range(4)]
    return {
        **p,
        "sin_tilt": torch.stack([torch.sin(t) for t in tilt]), "cos_tilt": torch.stack([torch.cos(t) for t in tilt]),
        "sin_thumb": torch.sin(p["thumb_angle"]), "cos_thumb": torch.cos(p["thumb_angle"]),
        "cos_angle": torch.cos(p["angle"]), "sin_angle": torch.sin(p["angle"]),
        "cos_light": torch.cos(p["light_dir"]), "sin_light": torch.sin(p["light_dir"]),
    }  # fmt: skip


def _part(p: dict[str, Tensor], part: slice) -> dict[str, Tensor]:
    """The images ``part`` of a chunk's parameters (the per-digit trig tables are (4, B))."""
    return {k: (v[:, part] if k in ("sin_tilt", "cos_tilt") else v[part]) for k, v in p.items()}


def _hand_sdf(u: Tensor, v: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Signed distance (hand-frame units) to the hand and to its folded digits.

    ``u``, ``v``: ``(B, H, W)`` hand-frame coordinates of a left hand (a right hand's are
    mirrored before). ``p``: parameters with :func:`_with_trig`'s tables. Returns ``(hand,
    folded)``; ``folded`` is large where no digit is.
    """
    b = u.shape[0]
    zero = torch.zeros(b)
    half_w, half_h = 14.5 * p["palm_w"], 15.0 * p["palm_h"]
    top = -half_h
    # The palm narrows from the knuckles (x1.1) to the wrist (x0.9).
    taper = (1.0 - 0.1 * v / _col(half_h)).clamp_(min=0.5)
    palm = _rounded_box(u / taper, v, zero, zero, half_w, half_h, 9.0)
    wrist_w = half_w * p["wrist_w"]
    wrist_half = 0.5 * (half_h + p["wrist_len"])
    wrist = _rounded_box(u, v, zero, half_h + p["wrist_len"] - wrist_half, wrist_w, wrist_half, 2.5)
    body = torch.minimum(palm, wrist)

    raised, folded = p["raised"] > 0.5, None
    fingers = None
    for i in range(4):
        up = raised[:, i + 1]
        base_u = _FINGER_U[i] * p["palm_w"]
        base_v = top + _FINGER_DROP[i] + torch.where(up, 0.0, _FOLDED_DROP[i])
        length = torch.where(up, p["finger_len"][:, i], p["knuckle"][:, i])
        tip_u = base_u + length * p["sin_tilt"][i]
        tip_v = base_v - length * p["cos_tilt"][i]
        # A folded finger: from just above its base down over the palm, a little thicker.
        end_u = torch.where(up, base_u, base_u + 0.8)
        end_v = torch.where(up, base_v, base_v + p["fold"][:, i])
        radius = p["finger_r"][:, i] * torch.where(up, 1.0, 1.12)
        d = _capsule(u, v, end_u, end_v, tip_u, tip_v, radius)
        fingers = d if fingers is None else torch.minimum(fingers, d)
        masked = d.masked_fill(_col(up), 1e3)
        folded = masked if folded is None else torch.minimum(folded, masked)

    # The thumb: out to the side from the lower palm when raised; across the palm when
    # folded, its tip at the folded fingers (holding the pinky when the ring finger is up).
    thumb_up = raised[:, 0]
    base_u, base_v = -0.7 * half_w, 0.5 * half_h
    any_folded = ~raised[:, 1:].all(1)
    holds_pinky = raised[:, 3] & ~raised[:, 4]
    fold_u = torch.where(holds_pinky, 9.0, torch.where(any_folded, 2.0, 4.0)) * p["palm_w"]
    fold_v = torch.where(any_folded, -0.3 * half_h, 0.1 * half_h)
    tip_u = torch.where(thumb_up, base_u - p["thumb_len"] * p["sin_thumb"], fold_u + p["thumb_tip"][:, 0])
    tip_v = torch.where(thumb_up, base_v - p["thumb_len"] * p["cos_thumb"], fold_v + p["thumb_tip"][:, 1])
    thumb = _capsule(u, v, base_u, base_v, tip_u, tip_v, p["thumb_r"])
    fingers = torch.minimum(fingers, thumb)
    folded = torch.minimum(folded, thumb.masked_fill(_col(thumb_up), 1e3))
    return _smooth_min(body, fingers, 2.5), folded


# --------------------------------------------------------------------------- placement


def _place(p: dict[str, Tensor], part: slice) -> None:
    """Choose each hand's scale (from its target area) and offset (centre of mass at the
    image centre plus a small shift), for the images ``part`` (at most ``CHUNK``, which also
    keeps every transcendental function single-threaded: torch's SIMD and scalar paths may
    differ in the last bit). Fills that part of ``p``'s ``scale``, ``origin_x``, ``origin_y``."""
    us = torch.arange(_AREA_U[0] + _AREA_STEP / 2, _AREA_U[1], _AREA_STEP)
    vs = torch.arange(_AREA_V[0] + _AREA_STEP / 2, _AREA_V[1], _AREA_STEP)
    iu = torch.arange(len(us), dtype=torch.float64)[None, None, :]
    iv = torch.arange(len(vs), dtype=torch.float64)[None, :, None]
    c = _with_trig({k: v[part] for k, v in p.items() if k not in _PLACED})
    b = part.stop - part.start
    u = us[None, None, :].expand(b, len(vs), len(us))
    v = vs[None, :, None].expand(b, len(vs), len(us))
    inside = (_hand_sdf(u, v, c)[0] < 0).double()  # integer sums: exact in any order
    count = inside.sum((1, 2))
    local_area = count * _AREA_STEP**2
    cu = _AREA_U[0] + _AREA_STEP * (0.5 + (inside * iu).sum((1, 2)) / count)
    cv = _AREA_V[0] + _AREA_STEP * (0.5 + (inside * iv).sum((1, 2)) / count)
    # Target area: a class-blind random factor times a faint echo of the hand's own
    # area (an open hand still comes out a little larger than a fist).
    area = torch.exp(c["log_area"].double()) * (local_area / _AREA_REFERENCE) ** _AREA_ECHO
    scale = torch.sqrt(area / (c["aspect"].double() * local_area)).float()
    # Image position (128-pixel units) = origin + scale * R(angle) (mirror * aspect * u, v).
    cu = (c["mirror"] * c["aspect"]) * cu.float()
    cv = cv.float()
    cos, sin = c["cos_angle"], c["sin_angle"]
    p["scale"][part] = scale
    p["origin_x"][part] = 64.0 + c["shift"][:, 0] - scale * (cos * cu - sin * cv)
    p["origin_y"][part] = 64.0 + c["shift"][:, 1] - scale * (sin * cu + cos * cv)


# --------------------------------------------------------------------------- rendering


# Smooth noise, two channels (background clouds, skin texture): random grids of 4, 8, 16,
# 32 and 64 cells (at size 128), each doubled and added to the next, a pyramid that keeps
# the upsampling cheap. Amplitudes per grid, (clouds, skin):
_OCTAVES = ((0.5, 0.0), (0.5, 0.45), (0.55, 0.55), (0.5, 0.5), (0.4, 0.35))


def _upsample2(x: Tensor) -> Tensor:
    """Double the last two dimensions by bilinear interpolation, as ``F.interpolate(x,
    scale_factor=2, mode="bilinear")`` does, but from copies, products and sums only:
    torch's kernel rounds differently depending on the number of threads."""
    # Columns: output 2i blends input i with i - 1, output 2i + 1 with i + 1 (3:1), each
    # written straight into its place in the interleaved result.
    k = x.shape[-1]
    centre, quarter = x * 0.75, x * 0.25
    cols = x.new_empty(*x.shape, 2)
    torch.add(centre[..., 1:], quarter[..., :-1], out=cols[..., 1:, 0])
    torch.add(centre[..., :-1], quarter[..., 1:], out=cols[..., :-1, 1])
    cols[..., 0, 0] = x[..., 0]
    cols[..., k - 1, 1] = x[..., k - 1]
    x = cols.flatten(-2)
    # Rows, likewise (whole rows: contiguous already).
    k = x.shape[-2]
    out = x.new_empty(*x.shape[:-1], 2, x.shape[-1])
    centre, quarter = x * 0.75, x * 0.25
    torch.add(centre[..., 1:, :], quarter[..., :-1, :], out=out[..., 1:, 0, :])
    torch.add(centre[..., :-1, :], quarter[..., 1:, :], out=out[..., :-1, 1, :])
    out[..., 0, 0, :] = x[..., 0, :]
    out[..., k - 1, 1, :] = x[..., k - 1, :]
    return out.flatten(-3, -2)


def _noise(gen: torch.Generator, b: int, out: int) -> Tensor:
    """Smooth noise ``(B, 2, out, out)`` with a spread of about 1 per channel."""
    cells = -(-out // 16)  # coarsest grid; the finest is 16 times as fine
    total = None
    for octave, amplitude in enumerate(_OCTAVES):
        side = cells << octave
        layer = torch.randn(b, 2, side, side, generator=gen) * torch.tensor(amplitude)[:, None, None]
        total = layer if total is None else layer + _upsample2(total)
    return total[..., :out, :out]


def _render(p: dict[str, Tensor], size: int, gen: torch.Generator) -> Tensor:
    """Images ``(B, size, size)`` uint8 for one chunk of parameters (placed by :func:`_place`).

    The chunk's random numbers are drawn first, in a fixed order; the images are then
    rendered a few at a time (``_PART`` images), whose working set stays in the CPU's cache.
    Every step is per image, so the parts give the same bits as one pass.
    """
    b = len(p["scale"])
    low = size // 2 if size % 2 == 0 else size  # an odd size renders at full resolution
    noise = _noise(gen, b, low)
    grain = torch.randn(b, size, size, generator=gen)
    p = _with_trig(p)
    out = torch.empty(b, size, size, dtype=torch.uint8)
    for start in range(0, b, _PART):
        part = slice(start, min(b, start + _PART))
        out[part] = _render_part(_part(p, part), size, low, noise[part], grain[part])
    return out


def _render_part(p: dict[str, Tensor], size: int, low: int, noise: Tensor, grain: Tensor) -> Tensor:
    """Images for a few parameter sets, with their smooth noise and grain already drawn."""
    # Hand-frame coordinates of the low-resolution grid's pixel centres (128-pixel units).
    centres = (torch.arange(low, dtype=torch.float32) + 0.5) * (128.0 / low)
    x = centres[None, None, :] - _col(p["origin_x"])
    y = centres[None, :, None] - _col(p["origin_y"])
    cos, sin = _col(p["cos_angle"]), _col(p["sin_angle"])
    inv = _col(1.0 / p["scale"])
    u = (cos * x + sin * y) * (inv * _col(p["mirror"] / p["aspect"]))
    v = (cos * y - sin * x) * inv
    hand, folded = _hand_sdf(u, v, p)
    px = size / 128.0  # output pixels per 128-pixel unit
    hand *= _col(p["scale"] * px)  # hand-frame units -> output pixels
    folded *= _col(p["scale"] * px)
    # Everything but the hand's edge and the grain is computed at low resolution: the
    # background level with its clouds; the skin level with texture, a lighting gradient,
    # a darker rim along the outline and creases along the folded digits' outlines.
    clouds, skin = noise.unbind(1)
    ramp = centres / 128.0 - 0.5
    level = _col(p["hand"]) + _col(p["texture"]) * skin
    level += _col(p["light"] * p["cos_light"]) * ramp[None, None, :]
    level += _col(p["light"] * p["sin_light"]) * ramp[None, :, None]
    rim = (1.0 + hand / (4.0 * px)).clamp_(0.0, 1.0).square_()
    crease = (1.0 - folded.abs_() / _col(p["crease_w"] * px)).clamp_(0.0, 1.0).square_()
    crease *= (-0.5 - hand / px).clamp_(0.0, 1.0)
    level -= _col(p["rim"]) * rim + _col(p["crease"]) * crease
    background = _col(p["bg"]) + _col(p["clouds"]) * clouds
    fields = torch.stack([hand, background, level], 1)
    if low != size:
        fields = _upsample2(fields)
    hand, background, level = fields.unbind(1)

    # Full resolution: the hand's soft edge, and grain.
    alpha = (0.5 - hand / _col(p["soft"] * px)).clamp_(0.0, 1.0)
    image = background.add_(alpha.mul_(level.sub_(background)))
    image += _col(p["grain"]) * grain
    return image.round_().clamp_(0, 255).to(torch.uint8)
