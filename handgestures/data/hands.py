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
pixels of a fist, so hand area or total brightness alone would already separate the
classes. Here the hand's scale is chosen so that its area (measured on a coarse grid
in the hand frame) follows one log-uniform law for every class, and the brightness
levels are drawn independently of the class: a model has to look at the shape (count
the capsules) rather than the amount of skin. Tests check this with a baseline that
only sees total brightness and hand area.

Speed and determinism
---------------------
Everything is vectorised with torch over chunks of images. The SDFs, the most costly
part, are evaluated on a half-resolution grid and bilinearly upsampled (a distance
field is nearly linear between samples, so edges stay sharp); shading, blending and
grain run at full resolution. 21,600 images take a few seconds on two CPU cores.

All per-image parameters come from one ``torch.Generator`` seeded with ``seed``; each
chunk's noise comes from its own generator whose seed is drawn from it. Only
element-wise operations, bilinear interpolation and exact integer sums are used, so
the output is bit-identical for a given ``seed`` and ``size`` whatever the number of
threads. Labels and hands are exactly balanced (``n / 12`` per pair) and shuffled.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["generate_hands"]

NUM_CLASSES = 6
CHUNK = 128  # images rendered at once: keeps memory small and the buffers cache-friendly

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
_FINGER_U = (-10.5, -3.5, 3.5, 10.5)
_FINGER_DROP = (3.0, 2.5, 3.0, 5.5)
_FINGER_TILT = (-9.0, -2.0, 6.0, 15.0)
_FINGER_LEN = (25.0, 28.0, 26.0, 20.0)
_FINGER_RADIUS = (3.6, 3.8, 3.6, 3.1)

# Where the hand's area is measured: a coarse grid in the hand frame that holds any hand.
_AREA_U = (-54.0, 54.0)
_AREA_V = (-70.0, 40.0)
_AREA_STEP = 2.5
_AREA_RANGE = (1050.0, 2350.0)  # pixels of a 128-pixel image, log-uniform


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
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or n % (2 * NUM_CLASSES):
        raise ValueError(
            f"n must be a positive multiple of 12 (6 finger counts x 2 hands, to balance "
            f"them exactly), got n={n!r}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got size={size!r}")

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
        digits[count, len(variants):] = digits[count, 0]
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
    p["wrist_w"] = _uniform(gen, n, 0.68, 0.82)
    length = _uniform(gen, n, 0.85, 1.15, 1) * _uniform(gen, n, 0.92, 1.08, 4)
    p["finger_len"] = length * torch.tensor(_FINGER_LEN)
    p["finger_r"] = _uniform(gen, n, 0.85, 1.15, 1) * torch.tensor(_FINGER_RADIUS)
    spread = _uniform(gen, n, 0.5, 1.9, 1)
    tilt = spread * torch.tensor(_FINGER_TILT) + 3.0 * torch.randn(n, 4, generator=gen)
    p["finger_tilt"] = torch.deg2rad(tilt)
    p["knuckle"] = _uniform(gen, n, 0.0, 2.5, 4)  # how far a folded finger pokes above its base
    p["fold"] = _uniform(gen, n, 6.0, 11.0, 4)  # how far it runs down over the palm
    p["thumb_angle"] = torch.deg2rad(_uniform(gen, n, 40.0, 80.0))  # raised: from vertical, outwards
    p["thumb_len"] = _uniform(gen, n, 18.0, 24.0)
    p["thumb_r"] = _uniform(gen, n, 3.8, 4.6)
    p["thumb_tip"] = torch.randn(n, 2, generator=gen) * 1.5  # folded: jitter of where its tip lies
    p["area"] = torch.exp(_uniform(gen, n, math.log(_AREA_RANGE[0]), math.log(_AREA_RANGE[1])))
    p["shift"] = _uniform(gen, n, -3.0, 3.0, 2)
    # Looks.
    p["soft"] = _uniform(gen, n, 0.7, 1.8)  # edge width, pixels
    p["hand"] = _uniform(gen, n, 150.0, 215.0)
    p["light"] = _uniform(gen, n, 0.0, 22.0)
    p["light_dir"] = _uniform(gen, n, 0.0, 2 * math.pi)
    p["rim"] = _uniform(gen, n, 15.0, 45.0)  # darkening towards the hand's outline
    p["crease"] = _uniform(gen, n, 20.0, 60.0)
    p["crease_w"] = _uniform(gen, n, 1.0, 2.0)
    p["texture"] = _uniform(gen, n, 3.0, 9.0)
    p["bg"] = _uniform(gen, n, 36.0, 64.0)
    p["clouds"] = _uniform(gen, n, 5.0, 12.0)
    p["grain"] = _uniform(gen, n, 1.0, 3.5)
    return p


# --------------------------------------------------------------------------- geometry


def _col(x: Tensor) -> Tensor:
    """A per-image value, shaped to broadcast against ``(B, H, W)`` grids."""
    return x[:, None, None]


def _capsule(u: Tensor, v: Tensor, au: Tensor, av: Tensor, bu: Tensor, bv: Tensor, r: Tensor) -> Tensor:
    """Distance to the segment a-b, minus r. a, b, r are per image ``(B,)``."""
    du, dv = bu - au, bv - av
    inv = _col(1.0 / (du * du + dv * dv + 1e-6))
    du, dv = _col(du), _col(dv)
    pu, pv = u - _col(au), v - _col(av)
    h = pu * du
    h.addcmul_(pv, dv).mul_(inv).clamp_(0.0, 1.0)
    pu.addcmul_(h, du, value=-1.0)
    pv.addcmul_(h, dv, value=-1.0)
    return pu.hypot_(pv).sub_(_col(r))


def _rounded_box(u: Tensor, v: Tensor, cu: Tensor, cv: Tensor, hu: Tensor, hv: Tensor, r: float) -> Tensor:
    """Distance to a box centred at (cu, cv) with half sizes (hu, hv) and corner radius r."""
    qu = (u - _col(cu)).abs_().sub_(_col(hu - r))
    qv = (v - _col(cv)).abs_().sub_(_col(hv - r))
    inside = torch.maximum(qu, qv).clamp_(max=0.0)
    return qu.clamp_(min=0.0).hypot_(qv.clamp_(min=0.0)).add_(inside).sub_(r)


def _smooth_min(a: Tensor, b: Tensor, k: float) -> Tensor:
    h = (b - a).mul_(0.5 / k).add_(0.5).clamp_(0.0, 1.0)
    return torch.lerp(b, a, h).sub_(h.mul_(1.0 - h).mul_(k))


def _hand_sdf(u: Tensor, v: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Signed distance (hand-frame units) to the hand and to its folded digits.

    ``u``, ``v``: ``(B, H, W)`` hand-frame coordinates of a left hand (a right hand's are
    mirrored before). Returns ``(hand, folded)``; ``folded`` is large where no digit is.
    """
    b = u.shape[0]
    zero = torch.zeros(b)
    half_w, half_h = 14.5 * p["palm_w"], 15.0 * p["palm_h"]
    top = -half_h
    palm = _rounded_box(u, v, zero, zero, half_w, half_h, 6.0)
    wrist_w = half_w * p["wrist_w"]
    wrist_half = 0.5 * (half_h + p["wrist_len"])
    wrist = _rounded_box(u, v, zero, half_h + p["wrist_len"] - wrist_half, wrist_w, wrist_half, 2.5)
    body = torch.minimum(palm, wrist)

    raised, folded = p["raised"] > 0.5, None
    fingers = None
    for i in range(4):
        up = raised[:, i + 1]
        base_u = _FINGER_U[i] * p["palm_w"]
        base_v = top + _FINGER_DROP[i]
        tilt = p["finger_tilt"][:, i]
        length = torch.where(up, p["finger_len"][:, i], -p["knuckle"][:, i])
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
    base_u, base_v = -0.72 * half_w, 0.35 * half_h
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
    n = len(p["area"])
    local_area = torch.empty(n, dtype=torch.float64)
    centroid = torch.empty(n, 2, dtype=torch.float64)
    iu = torch.arange(len(us), dtype=torch.float64)[None, None, :]
    iv = torch.arange(len(vs), dtype=torch.float64)[None, :, None]
    for start in range(0, n, CHUNK):
        part = slice(start, min(n, start + CHUNK))
        chunk = {k: v[part] for k, v in p.items()}
        b = part.stop - part.start
        u = us[None, None, :].expand(b, len(vs), len(us))
        v = vs[None, :, None].expand(b, len(vs), len(us))
        inside = (_hand_sdf(u, v, chunk)[0] < 0).double()  # integer sums: exact in any order
        count = inside.sum((1, 2))
        local_area[part] = count * _AREA_STEP**2
        centroid[part, 0] = _AREA_U[0] + _AREA_STEP * (0.5 + (inside * iu).sum((1, 2)) / count)
        centroid[part, 1] = _AREA_V[0] + _AREA_STEP * (0.5 + (inside * iv).sum((1, 2)) / count)
    # Image (reference pixel) position = origin + scale * R(angle) @ (mirror * aspect * u, v).
    scale = torch.sqrt(p["area"].double() / (p["aspect"].double() * local_area)).float()
    cu = (p["mirror"] * p["aspect"]) * centroid[:, 0].float()
    cv = centroid[:, 1].float()
    cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
    p["scale"] = scale
    p["origin_x"] = 64.0 + p["shift"][:, 0] - scale * (cos * cu - sin * cv)
    p["origin_y"] = 64.0 + p["shift"][:, 1] - scale * (sin * cu + cos * cv)


# --------------------------------------------------------------------------- rendering


# Smooth noise, two channels (background clouds, skin texture): random grids of 4, 8, 16
# and 32 cells, each enlarged and added to the next (a pyramid keeps the upsampling cheap).
_OCTAVES = ((4, (0.6, 0.0)), (8, (0.55, 0.45)), (16, (0.45, 0.55)), (32, (0.4, 0.55)))


def _noise(gen: torch.Generator, b: int, out: int) -> Tensor:
    """Smooth noise ``(B, 2, out, out)`` with a spread of about 1 per channel."""
    total = None
    for cells, amplitude in _OCTAVES:
        layer = torch.randn(b, 2, cells, cells, generator=gen) * torch.tensor(amplitude)[:, None, None]
        total = layer if total is None else layer + F.interpolate(total, size=(cells, cells), mode="bilinear")
    return F.interpolate(total, size=(out, out), mode="bilinear")


def _render(p: dict[str, Tensor], size: int, gen: torch.Generator) -> Tensor:
    """Images ``(B, size, size)`` uint8 for one chunk of parameters (placed by :func:`_place`)."""
    b = len(p["scale"])
    low = max(4, (size + 1) // 2)
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
    rim = (1.0 + hand / (3.0 * px)).clamp_(0.0, 1.0).square_()
    crease = (1.0 - folded.abs_() / _col(p["crease_w"] * px)).clamp_(0.0, 1.0).square_()
    crease *= (-0.5 - hand / px).clamp_(0.0, 1.0)
    level -= _col(p["rim"]) * rim + _col(p["crease"]) * crease
    background = _col(p["bg"]) + _col(p["clouds"]) * clouds
    fields = torch.stack([hand, background, level], 1)
    hand, background, level = F.interpolate(fields, size=(size, size), mode="bilinear").unbind(1)

    # Full resolution: the hand's soft edge, and grain.
    alpha = (0.5 - hand / _col(p["soft"] * px)).clamp_(0.0, 1.0)
    image = background.add_(alpha.mul_(level.sub_(background)))
    image.addcmul_(_col(p["grain"]), torch.randn(b, size, size, generator=gen))
    return image.round_().clamp_(0, 255).to(torch.uint8)
