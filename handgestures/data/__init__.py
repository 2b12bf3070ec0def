"""Data: the Fingers folder reader, the built-in hands, splits, Keras augmentation, the DataModule.

Names are imported lazily, so ``import handgestures.data.augment`` stays light (no
Lightning import) for users who only want the transform. DDP's per-rank samplers live in
:mod:`.samplers` beside the epoch shuffle.

May import: only the shared leaves (errors, runtime, and the package root's CONF_DIR and torchvision check);
nothing else of the package.
"""

from importlib import import_module

_EXPORTS = {
    "FingersDataModule": "handgestures.data.datamodule",
    "ImageSet": "handgestures.data.cache",
    "load_builtin_hands": "handgestures.data.sources",
    "load_images": "handgestures.data.sources",
    "load_fingers_folder": "handgestures.data.fingers",
    "parse_name": "handgestures.data.fingers",
    "stratified_split": "handgestures.data.split",
    "grouped_split": "handgestures.data.grouping",
    "near_duplicate_groups": "handgestures.data.grouping",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'handgestures.data' has no attribute {name!r}")
