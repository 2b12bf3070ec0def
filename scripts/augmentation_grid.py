"""Write a PNG grid of original and Keras-augmented samples, one row per image.

    python scripts/augmentation_grid.py                       # built-in hands
    python scripts/augmentation_grid.py --root PATH/TO/fingers/train --out grid.png

The parameters come from conf/data/augmented.yaml, so the picture shows exactly what the
augmented variant trains on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torchvision.utils import save_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handgestures.data.augment import KerasRandomAffine, make_augmentation_grid  # noqa: E402
from handgestures.data.sources import load_images  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="folder of Fingers PNGs (default: the built-in hands)")
    parser.add_argument("--out", default="outputs/augmentation_grid.png")
    parser.add_argument("--images", type=int, default=6, help="rows: one original image each")
    parser.add_argument("--augmented", type=int, default=7, help="augmented copies per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--semantics", choices=["keras2", "keras3"], default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    aug = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "data" / "augmented.yaml").augmentation)
    if args.semantics:
        aug["semantics"] = args.semantics
    data = load_images(args.root)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[: args.images]
    images = data.images[pick].float() / 255.0
    transform = KerasRandomAffine(**aug, generator=torch.Generator().manual_seed(args.seed))
    grid = make_augmentation_grid(images, transform, n_augmented=args.augmented)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out)
    print(out)
    return out


if __name__ == "__main__":
    main()
