"""The built-in hands: a procedural stand-in for the Fingers dataset.

Without a copy of the real Fingers images (there is no download), the project trains on
these. Each image imitates the real photos: one bright hand, upright and centred, cut at
the wrist, on a dark, cloudy, grainy background; 8-bit grayscale, ``size`` x ``size``.

Design
------
*Geometry.* A hand is a union of signed-distance fields (SDFs) in a hand-local frame
whose units are pixels of a 128-pixel image at scale 1: a rounded-box palm, a
rounded-box wrist stub below it, and one capsule (a segment with a radius) per digit.
A raised finger is a long capsule leaning out of the top of the palm; a folded finger
is a short, thick capsule that pokes a few pixels above the palm (a knuckle bump) and
runs down over it, its outline drawn as a dark crease, as in a real fist. The thumb
sticks out sideways from the lower palm when raised and lies across the palm when
folded. Fingers join the palm through a smooth minimum, which makes webbing. A left
hand has its thumb on the image's left, as in the real data; a right hand is its mirror.

*Which digits are raised.* The count decides it, with the variants people use:
1 is mostly the index, sometimes the middle finger or the thumb; 2 is mostly index +
middle, sometimes thumb + index or index + pinky; 3 is index-middle-ring or
thumb-index-middle; 4 is the four fingers, sometimes thumb + three; 0 and 5 are fixed.

*Variation.* Per image: rotation (+-15 degrees), aspect, palm size, finger lengths,
widths, spread and individual tilts, thumb angle, wrist length, knuckle height, edge
softness, hand and background brightness, lighting gradient, shading, creases, hand
texture, background clouds and grain, and a small shift of the hand's centre of mass
from the image centre (the real hands are centred by mass to within about 2 pixels).

*Area does not give the count away.* In the real photos an open hand covers twice the
pixels of a fist (class means from about 1,070 to 2,270 pixels), so hand area or total
brightness alone already separates the classes: on 2,400 real images a nearest-mean or
k-nearest-neighbour classifier on those two numbers scores 0.5-0.65 (chance: 0.17).
Here each hand's scale is set from a target area drawn from one log-uniform law for
every class, times a faint echo of the hand's own area (its area to the power 0.25;
open hands still come out a little larger than fists), and all brightness levels are
drawn independently of the class. The same classifiers then score about 0.2, while a
small CNN learns the count: a model has to look at the shape, not the amount of skin.
The tests check both.

Speed and determinism
---------------------
Everything is vectorised with torch over chunks of 64 images (a few tens of MB). The
SDFs, the costly part, are evaluated on a half-resolution grid and upsampled 2x
bilinearly: a distance field is nearly linear between samples, so the edges stay sharp.
The smooth parts (lighting, skin texture, rim shading, creases, background clouds) are
also computed at half resolution; only the soft edge, the blend and the grain run at
full resolution. The hand's area and centre of mass, needed to place it, come from a
coarse grid in the hand frame. 21,600 images at 128 x 128 take about 10 s on two CPU
cores.

All per-image parameters come from one ``torch.Generator`` seeded with ``seed``, and
each chunk's noise from a generator whose seed is drawn from it. The output is
bit-identical for a given ``(n, seed, size)`` whatever the number of threads: only
operations whose rounding cannot depend on how torch splits the work are used
(additions, products, divisions, square roots, comparisons, copies, sums of integers;
transcendental functions only on per-chunk vectors, too small to be split), which is
why the 2x upsampling is written out rather than ``F.interpolate`` and lengths use
``sqrt`` rather than ``hypot``. Labels and hands are exactly balanced (``n / 12`` per
pair) and shuffled.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = ["generate_hands"]

NUM_CLASSES = 6
CHUNK = 64  # images rendered at once: keeps memory small (bigger chunks ran slower here)

# Digits, in hand order: thumb, index, middle, ring, pinky. For each finger count, the
# variants (which digits are raised) and their probabilities.
_VARIANTS: dict[int, list[tuple[tuple[int, int, int, int, int], float]]] = {
    0: [((0, 0, 0, 0, 0), 1.0)],
    1: [((0, 1, 0, 0, 0), 0.80), ((0, 0, 1, 0, 0), 0.10), ((1, 0, 0, 0, 0), 0.10)],
    2: [((0, 1, 1, 0, 0), 0.75), ((1, 1, 0, 0, 0), 0.15), ((0, 1, 0, 0, 1), 0.10)],
    3: [((0, 1, 1, 1, 0), 0.70), ((1, 1, 1, 0, 0), 0.30)],
    4: [((0, 1, 1, 1, 1), 0.90), ((1, 1, 1, 1, 0), 0.10)],
    5: [((1, 1, 1, 1, 1), 1.0)],
}

# The four fingers (index, middle, ring, pinky) in the hand frame of a left hand (thumb
# towards -u, fingers towards -v), at scale 1: base position across the palm's top,
# base height below the palm's top, tilt from vertical (degrees, scaled by the spread),
# length and radius.
_FINGER_U = (-11.0, -3.7, 3.7, 11.0)
_FINGER_DROP = (3.0, 2.5, 3.0, 5.5)
_FOLDED_DROP = (2.5, 0.0, 1.0, 2.5)  # folded, the knuckles make an arch
_FINGER_TILT = (-17.0, -5.0, 8.0, 21.0)
_FINGER_LEN = (27.0, 30.0, 28.0, 21.0)
_FINGER_RADIUS = (3.6, 3.8, 3.6, 3.1)

# Where the hand's area is measured: a coarse grid in the hand frame that holds any hand.
_AREA_U = (-54.0, 54.0)
_AREA_V = (-70.0, 40.0)
_AREA_STEP = 3.0
_AREA_RANGE = (1100.0, 2600.0)  # pixels of a 128-pixel image, log-uniform
_AREA_REFERENCE = 1600.0  # a middling hand's area at scale 1
_AREA_ECHO = 0.25  # how much of its own area a hand keeps (0: none, 1: all, as in photos)


def generate_hands(n: int = 21600, seed: int = 0, size: int = 128) -> tuple[Tensor, Tensor, Tensor]:
    """Render ``n`` procedural hand photos.

    Returns ``(images, labels, hands)``: ``images`` uint8 ``(n, 1, size, size)``,
    ``labels`` int64 ``(n,)`` in 0..5 (raised fingers), ``hands`` int64 ``(n,)``
    (0 = left, 1 = right). Exactly ``n / 12`` images per (label, hand), in a shuffled
    order; the same ``seed`` gives bit-identical tensors.

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

    params = _sample_params(labels, hands, gen)
    _place(params)
    chunk_seeds = torch.randint(0, 2**62, ((n + CHUNK - 1) // CHUNK,), generator=gen).tolist()

    images = torch.empty(n, 1, size, size, dtype=torch.uint8)
    for i, chunk_seed in enumerate(chunk_seeds):
        part = slice(i * CHUNK, min(n, (i + 1) * CHUNK))
        chunk = {k: v[part] for k, v in params.items()}
        images[part, 0] = _render(chunk, size, torch.Generator().manual_seed(chunk_seed))
    return images, labels, hands


# --------------------------------------------------------------------------- parameters


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)


def _sample_params(labels: Tensor, hands: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
    """Every per-image number, drawn at once for the whole set (so chunking cannot matter)."""
    n = len(labels)
    width = max(len(v) for v in _VARIANTS.values())
    digits = torch.zeros(NUM_CLASSES, width, 5)
    cumulative = torch.ones(NUM_CLASSES, width)
    for count, variants in _VARIANTS.items():
        for j, (raised, _) in enumerate(variants):
            digits[count, j] = torch.tensor(raised, dtype=torch.float32)
        digits[count, len(variants) :] = digits[count, 0]
        cumulative[count, : len(variants) - 1] = torch.tensor([prob for _, prob in variants]).cumsum(0)[:-1]
    pick = torch.rand(n, 1, generator=gen)
    variant = (pick >= cumulative[labels]).sum(1).clamp(max=width - 1)

    p: dict[str, Tensor] = {"raised": digits[labels, variant]}
    p["mirror"] = 1.0 - 2.0 * hands.float()  # left: +1 (thumb to -u on screen left), right: -1
    p["angle"] = torch.deg2rad(_uniform(gen, n, -15.0, 15.0))
    p["aspect"] = _uniform(gen, n, 0.9, 1.1)
    p["palm_w"] = _uniform(gen, n, 0.88, 1.12)
    p["palm_h"] = _uniform(gen, n, 0.88, 1.12)
    p["wrist_len"] = _uniform(gen, n, 5.0, 13.0)
    p["wrist_w"] = _uniform(gen, n, 0.6, 0.75)
    length = _uniform(gen, n, 0.85, 1.15, 1) * _uniform(gen, n, 0.92, 1.08, 4)
    p["finger_len"] = length * torch.tensor(_FINGER_LEN)
    p["finger_r"] = _uniform(gen, n, 0.85, 1.15, 1) * torch.tensor(_FINGER_RADIUS)
    spread = _uniform(gen, n, 0.8, 1.5, 1)
    tilt = spread * torch.tensor(_FINGER_TILT) + 3.0 * torch.randn(n, 4, generator=gen)
    p["finger_tilt"] = torch.deg2rad(tilt)
    p["knuckle"] = _uniform(gen, n, 0.0, 2.0, 4)  # how far a folded finger pokes above its base
    p["fold"] = _uniform(gen, n, 6.0, 11.0, 4)  # how far it runs down over the palm
    p["thumb_angle"] = torch.deg2rad(_uniform(gen, n, 50.0, 80.0))  # raised: from vertical, outwards
    p["thumb_len"] = _uniform(gen, n, 21.0, 27.0)
    p["thumb_r"] = _uniform(gen, n, 4.4, 5.2)
    p["thumb_tip"] = torch.randn(n, 2, generator=gen) * 1.5  # folded: jitter of where its tip lies
    p["log_area"] = _uniform(gen, n, math.log(_AREA_RANGE[0]), math.log(_AREA_RANGE[1]))
    p["shift"] = _uniform(gen, n, -3.0, 3.0, 2)
    # Looks.
    p["soft"] = _uniform(gen, n, 0.5, 1.4)  # edge width, pixels
    p["hand"] = _uniform(gen, n, 160.0, 225.0)
    p["light"] = _uniform(gen, n, 0.0, 30.0)
    p["light_dir"] = _uniform(gen, n, 0.0, 2 * math.pi)
    p["rim"] = _uniform(gen, n, 20.0, 60.0)  # darkening towards the hand's outline
    p["crease"] = _uniform(gen, n, 20.0, 55.0)
    p["crease_w"] = _uniform(gen, n, 1.8, 3.0)
    p["texture"] = _uniform(gen, n, 5.0, 14.0)
    p["bg"] = _uniform(gen, n, 36.0, 64.0)
    p["clouds"] = _uniform(gen, n, 6.0, 14.0)
    p["grain"] = _uniform(gen, n, 0.5, 2.0)
    return p


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


def _hand_sdf(u: Tensor, v: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Signed distance (hand-frame units) to the hand and to its folded digits.

    ``u``, ``v``: ``(B, H, W)`` hand-frame coordinates of a left hand (a right hand's are
    mirrored before). Returns ``(hand, folded)``; ``folded`` is large where no digit is.
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
        tilt = p["finger_tilt"][:, i]
        length = torch.where(up, p["finger_len"][:, i], p["knuckle"][:, i])
        tip_u = base_u + length * torch.sin(tilt)
        tip_v = base_v - length * torch.cos(tilt)
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
    tip_u = torch.where(thumb_up, base_u - p["thumb_len"] * torch.sin(p["thumb_angle"]), fold_u + p["thumb_tip"][:, 0])
    tip_v = torch.where(thumb_up, base_v - p["thumb_len"] * torch.cos(p["thumb_angle"]), fold_v + p["thumb_tip"][:, 1])
    thumb = _capsule(u, v, base_u, base_v, tip_u, tip_v, p["thumb_r"])
    fingers = torch.minimum(fingers, thumb)
    folded = torch.minimum(folded, thumb.masked_fill(_col(thumb_up), 1e3))
    return _smooth_min(body, fingers, 2.5), folded


# --------------------------------------------------------------------------- placement


def _place(p: dict[str, Tensor]) -> None:
    """Choose each hand's scale (from its target area) and offset (centre of mass at the
    image centre plus a small shift). Adds ``scale``, ``origin_x``, ``origin_y``."""
    us = torch.arange(_AREA_U[0] + _AREA_STEP / 2, _AREA_U[1], _AREA_STEP)
    vs = torch.arange(_AREA_V[0] + _AREA_STEP / 2, _AREA_V[1], _AREA_STEP)
    n = len(p["log_area"])
    iu = torch.arange(len(us), dtype=torch.float64)[None, None, :]
    iv = torch.arange(len(vs), dtype=torch.float64)[None, :, None]
    p["scale"], p["origin_x"], p["origin_y"] = (torch.empty(n) for _ in range(3))
    # Chunks of a few dozen images also keep every transcendental function single-threaded:
    # torch's SIMD and scalar paths may differ in the last bit.
    for start in range(0, n, CHUNK):
        part = slice(start, min(n, start + CHUNK))
        c = {k: v[part] for k, v in p.items()}
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
        cos, sin = torch.cos(c["angle"]), torch.sin(c["angle"])
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
    # Columns: output 2i blends input i with i - 1, output 2i + 1 with i + 1 (3:1).
    k = x.shape[-1]
    out = x.new_empty(*x.shape, 2)
    centre = x * 0.75
    torch.add(centre[..., 1:], x[..., :-1] * 0.25, out=out[..., 1:, 0])
    torch.add(centre[..., :-1], x[..., 1:] * 0.25, out=out[..., :-1, 1])
    out[..., 0, 0] = x[..., 0]
    out[..., k - 1, 1] = x[..., k - 1]
    x = out.flatten(-2)
    # Rows, likewise.
    k = x.shape[-2]
    out = x.new_empty(*x.shape[:-1], 2, x.shape[-1])
    centre = x * 0.75
    torch.add(centre[..., 1:, :], x[..., :-1, :] * 0.25, out=out[..., 1:, 0, :])
    torch.add(centre[..., :-1, :], x[..., 1:, :] * 0.25, out=out[..., :-1, 1, :])
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
    """Images ``(B, size, size)`` uint8 for one chunk of parameters (placed by :func:`_place`)."""
    b = len(p["scale"])
    low = size // 2 if size % 2 == 0 else size  # an odd size renders at full resolution
    # Hand-frame coordinates of the low-resolution grid's pixel centres (128-pixel units).
    centres = (torch.arange(low, dtype=torch.float32) + 0.5) * (128.0 / low)
    x = centres[None, None, :] - _col(p["origin_x"])
    y = centres[None, :, None] - _col(p["origin_y"])
    cos, sin = _col(torch.cos(p["angle"])), _col(torch.sin(p["angle"]))
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
    clouds, skin = _noise(gen, b, low).unbind(1)
    ramp = centres / 128.0 - 0.5
    level = _col(p["hand"]) + _col(p["texture"]) * skin
    level += _col(p["light"] * torch.cos(p["light_dir"])) * ramp[None, None, :]
    level += _col(p["light"] * torch.sin(p["light_dir"])) * ramp[None, :, None]
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
    image += _col(p["grain"]) * torch.randn(b, size, size, generator=gen)
    return image.round_().clamp_(0, 255).to(torch.uint8)
