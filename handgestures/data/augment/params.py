"""The seven ``ImageDataGenerator`` parameters of the study's augmentation, as one dataclass.

Every place that needs the names or the values goes through :class:`KerasParams`: the
augmentation's config check, the batch augmenter, ``KerasRandomAffine``, the demo and the
benchmarks (``sample_keras_params`` and ``KerasRandomAffine`` keep the seven as keyword
arguments, as ``ImageDataGenerator`` takes them). The study's
values live in ``conf/data/augmented.yaml`` (:func:`study_params` reads them), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import yaml

from handgestures import CONF_DIR


@dataclass(frozen=True)
class KerasParams:
    """``ImageDataGenerator`` arguments (Keras' defaults: no augmentation)."""

    rotation_range: float = 0.0  # degrees, uniform in [-r, r]
    width_shift_range: Any = 0.0  # a fraction of the width, pixels (>= 1), or a list of choices
    height_shift_range: Any = 0.0
    shear_range: float = 0.0  # degrees
    zoom_range: Any = 0.0  # zx, zy independent in [1 - z, 1 + z], or a [low, high] pair
    horizontal_flip: bool = False
    vertical_flip: bool = False

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> KerasParams:
        """The Keras parameters of ``config`` (other keys, such as the warp options, are ignored)."""
        return cls(**{k: v for k, v in config.items() if k in KERAS_PARAM_NAMES})

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)


KERAS_PARAM_NAMES = tuple(f.name for f in fields(KerasParams))


def study_params() -> KerasParams:
    """The study's augmentation, as ``conf/data/augmented.yaml`` configures it."""
    config = yaml.safe_load((CONF_DIR / "data" / "augmented.yaml").read_text())
    return KerasParams.from_mapping(config["data"]["augmentation"])
