"""``KerasAugmentation``: the configured augmentation of a run as one object.

It holds what the DataModule needs from a config's ``data.augmentation`` mapping: the
Keras ``ImageDataGenerator`` parameters, the warp options, and the seeded generator of the
training draws (its state goes into checkpoints, so a resumed run draws on where it stopped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from handgestures.data.augment.params import KERAS_PARAM_NAMES
from handgestures.data.augment.sampling import sample_keras_params
from handgestures.data.augment.transform import KerasRandomAffine
from handgestures.data.augment.warp import apply_keras_transform

WARP_OPTION_NAMES = ("fill_mode", "cval", "semantics")


class KerasAugmentation:
    """Keras parameters, warp options and the training draws' generator, from one config mapping.

    Args:
        config: Keras ``ImageDataGenerator`` parameters (``rotation_range``, ...) plus
            ``fill_mode``, ``cval`` (on Keras' 0..255 scale) and ``semantics`` (``keras2`` or
            ``keras3``); None or empty for no augmentation (the object is then falsy).
        seed: seed of the training draws' generator.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        config = dict(config or {})
        unknown = set(config) - set(KERAS_PARAM_NAMES) - set(WARP_OPTION_NAMES)
        if unknown:
            raise ValueError(
                f"unknown augmentation parameters {sorted(unknown)}; expected Keras names "
                f"{list(KERAS_PARAM_NAMES)} or {', '.join(WARP_OPTION_NAMES)}"
            )
        self.keras_params = {k: v for k, v in config.items() if k in KERAS_PARAM_NAMES}
        self.warp_options = {
            "semantics": config.get("semantics", "keras2"),
            "fill_mode": config.get("fill_mode", "nearest"),
            "cval": float(config.get("cval", 0.0)) / 255.0,  # Keras cval is on the 0..255 scale; images on 0..1
        }
        self.generator = torch.Generator().manual_seed(seed)

    def __bool__(self) -> bool:
        return bool(self.keras_params)

    def sample(self, n: int, image_size: tuple[int, int], generator: torch.Generator | None = None) -> dict:
        """``n`` parameter sets; from the training generator unless ``generator`` is given."""
        return sample_keras_params(n, image_size=image_size, generator=generator or self.generator, **self.keras_params)

    def fixed_views(self, n: int, image_size: tuple[int, int], seed: int) -> dict[str, torch.Tensor]:
        """Parameters of a fixed augmented view: the same ``n`` draws for the same ``seed``."""
        return self.sample(n, image_size, torch.Generator().manual_seed(seed))

    def apply(self, images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """The warp of ``images`` (float, 0..1) with the given per-image parameters."""
        return apply_keras_transform(images, params, **self.warp_options)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Fresh parameters for every image (drawn on the CPU: the same on any device), one batched warp."""
        return self.apply(images, self.sample(len(images), tuple(images.shape[-2:])))

    def transform(self, generator: torch.Generator | None = None) -> KerasRandomAffine:
        """The same augmentation as a torchvision transform (for grids and pipelines)."""
        return KerasRandomAffine(**self.keras_params, **self.warp_options, generator=generator)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
