"""The per-image parameters of the built-in hands: which digits are raised, sizes, angles, looks.

Every number is drawn at once for the whole set from one generator, so how the images are
later split into chunks cannot change them. ``docs/built-in-hands.md`` explains the choices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NUM_CLASSES = 6

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

# Per finger (index, middle, ring, pinky): tilt from vertical (degrees, scaled by the
# spread), length and radius, at scale 1.
_FINGER_TILT = (-17.0, -5.0, 8.0, 21.0)
_FINGER_LEN = (27.0, 30.0, 28.0, 21.0)
_FINGER_RADIUS = (3.6, 3.8, 3.6, 3.1)
_AREA_RANGE = (1100.0, 2600.0)  # target hand area, pixels of a 128-pixel image, log-uniform


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)


def sample_params(labels: Tensor, hands: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
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
