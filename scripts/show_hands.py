"""Write a PNG grid of built-in hands, one row per (fingers, hand), to compare with real photos.

    python scripts/show_hands.py --out hands.png --per-row 8 --seed 0

Each row is labelled like the Fingers file names: ``3L`` = three fingers, left hand.
Pass ``--real DIR`` to add, under each row, the same number of real images of that class
from a Fingers folder (``<id>_<N><L|R>.png``), for a side-by-side look.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from handgestures.data.hands import generate_hands

MARGIN = 28


def _strip(images: torch.Tensor, pad: int = 2) -> Image.Image:
    grid = make_grid(images.float() / 255, nrow=len(images), padding=pad, pad_value=1.0)
    return Image.fromarray((grid[0] * 255).round().byte().numpy())


def _real_row(root: Path, name: str, count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    files = sorted(root.rglob(f"*_{name}.png"))
    picked = rng.choice(len(files), size=min(count, len(files)), replace=False) if files else []
    arrays = [np.asarray(Image.open(files[i]).convert("L").resize((size, size))) for i in picked]
    return torch.from_numpy(np.stack(arrays))[:, None] if arrays else torch.zeros(0, 1, size, size, dtype=torch.uint8)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("hands.png"))
    parser.add_argument("--per-row", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--real", type=Path, default=None, help="a Fingers folder to show real images from")
    args = parser.parse_args(argv)

    images, labels, hands = generate_hands(12 * args.per_row, seed=args.seed, size=args.size)
    rng = np.random.default_rng(args.seed)
    rows: list[tuple[str, Image.Image]] = []
    for fingers in range(6):
        for hand, letter in enumerate("LR"):
            name = f"{fingers}{letter}"
            rows.append((name, _strip(images[(labels == fingers) & (hands == hand)])))
            if args.real is not None:
                real = _real_row(args.real, name, args.per_row, args.size, rng)
                if len(real):
                    rows.append((f"{name}*", _strip(real)))

    width = MARGIN + max(strip.width for _, strip in rows)
    sheet = Image.new("L", (width, sum(strip.height for _, strip in rows)), 255)
    draw = ImageDraw.Draw(sheet)
    top = 0
    for name, strip in rows:
        sheet.paste(strip, (MARGIN, top))
        draw.text((3, top + strip.height // 2 - 5), name, fill=0)
        top += strip.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(rows)} rows; rows marked * are real images)" if args.real else f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
