"""FingersDataModule: the whole dataset once as uint8, batches gathered by index.

Design, for speed on a small CPU:
* the dataset lives in memory once, as uint8 (about 354 MB for 21,600 images); a batch is
  one fancy-index gather of the uint8 tensor, so there is no per-image Python work and no
  float copy of the dataset;
* that tensor is held in 2 MB pages where Linux allows (``huge_pages``): batches gather
  random rows of it, and with 4 KB pages CarlosNet's training loop ran about 1.08x slower;
* pixels are scaled to [0, 1] exactly once, after the batch reaches its device;
* Keras augmentation is one batched warp per training batch on that device, with
  parameters drawn per image from a seeded generator;
* the evaluation views of the generalisation table are the same augmented copies in every
  run: their parameters are drawn once per split from ``eval_view_seed``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from handgestures.data.augment import apply_keras_transform, sample_keras_params
from handgestures.data.cache import ImageSet, back_with_huge_pages
from handgestures.data.sources import load_images
from handgestures.data.split import SPLITS, stratified_split
from handgestures.distributed import eval_batches

log = logging.getLogger(__name__)

KERAS_PARAM_NAMES = (
    "rotation_range", "width_shift_range", "height_shift_range", "shear_range",
    "zoom_range", "horizontal_flip", "vertical_flip",
)  # fmt: skip


class IndexedImages(Dataset):
    """Images of one split, fetched a whole batch of indices at a time.

    It holds the dataset's uint8 tensor by reference and the split's indices, so all splits
    and augmented views share the one copy of the pixels. ``views`` optionally holds fixed
    per-image augmentation parameters (an augmented view), aligned with ``indices``.
    """

    def __init__(self, data: ImageSet, indices: torch.Tensor, views: dict[str, torch.Tensor] | None = None):
        self.data = data
        self.indices = indices
        self.labels = data.labels[indices]
        self.views = views

    @property
    def images(self) -> torch.Tensor:
        """This split's images (a gathered copy: for inspection, not for the training loop)."""
        return self.data.images[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, batch: list[int]) -> dict[str, Any]:
        idx = torch.as_tensor(batch)
        # index_select copies whole rows: about 5x faster than advanced indexing here
        # (0.08 against 0.4 ms for 32 images of 128x128), and the same bytes
        item = {"image": torch.index_select(self.data.images, 0, self.indices[idx]), "label": self.labels[idx]}
        if self.views is not None:
            item["view"] = {k: v[idx] for k, v in self.views.items()}
        return item


class FingersDataModule(L.LightningDataModule):
    """Train/val/test splits of the Fingers folder at ``root``, or of the built-in hands.

    Args:
        root: folder of ``<id>_<N><L|R>.png`` images (searched recursively); None for the
            built-in procedural hands.
        augment_train: apply the Keras augmentation to training batches (the study's
            augmented variant).
        augmentation: Keras ``ImageDataGenerator`` parameters (``rotation_range``, ...),
            plus ``fill_mode``, ``cval`` and ``semantics`` (``keras2`` or ``keras3``).
            Used for augmented training and for the fixed augmented evaluation views.
        split_seed: seed of the stratified split; independent of the training seed.
        seed: seed of the training shuffle and of the training augmentation draws.
        eval_view_seed: seed of the fixed augmented evaluation views.
        huge_pages: hold the dataset in 2 MB pages on Linux (see
            :func:`handgestures.data.cache.back_with_huge_pages`); a no-op elsewhere.
    """

    def __init__(
        self,
        root: str | None = None,
        cache_dir: str | None = None,
        builtin_size: int = 21600,
        builtin_seed: int = 0,
        image_size: int = 128,
        split_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        augment_train: bool = False,
        augmentation: Mapping[str, Any] | None = None,
        eval_view_seed: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        huge_pages: bool = True,
    ) -> None:
        super().__init__()
        augmentation = dict(augmentation or {})
        unknown = set(augmentation) - set(KERAS_PARAM_NAMES) - {"fill_mode", "cval", "semantics"}
        if unknown:
            raise ValueError(
                f"unknown augmentation parameters {sorted(unknown)}; expected Keras names "
                f"{list(KERAS_PARAM_NAMES)} or fill_mode, cval, semantics"
            )
        if augment_train and not augmentation:
            raise ValueError("augment_train is true but no augmentation parameters are configured")
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        self.root = os.path.expanduser(root) if root else None
        self.cache_dir = cache_dir
        self.builtin_size, self.builtin_seed, self.image_size = builtin_size, builtin_seed, image_size
        self.split_seed, self.seed, self.eval_view_seed = split_seed, seed, eval_view_seed
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.augment_train = augment_train
        self.huge_pages = huge_pages
        self.keras_params = {k: v for k, v in augmentation.items() if k in KERAS_PARAM_NAMES}
        self.warp_options = {
            "semantics": augmentation.get("semantics", "keras2"),
            "fill_mode": augmentation.get("fill_mode", "nearest"),
            "cval": float(augmentation.get("cval", 0.0)) / 255.0,  # Keras cval is on the 0..255 scale
        }
        self.data: ImageSet | None = None
        self.splits: dict[str, IndexedImages] = {}
        self.aug_views: dict[str, IndexedImages] = {}
        self._aug_generator = torch.Generator().manual_seed(seed)

    # ---- set-up -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Decode or generate once, filling the on-disk cache."""
        self._load()

    def _load(self) -> ImageSet:
        if self.data is None:
            data = load_images(self.root, self.cache_dir, self.builtin_size, self.builtin_seed, self.image_size)
            if self.huge_pages:
                start = time.perf_counter()
                held = back_with_huge_pages(data.images)
                log.info("dataset in 2 MB pages: %s (%.2f s)", held, time.perf_counter() - start)
            self.data = data
        return self.data

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = self._load()
        self.split_indices = stratified_split(data.labels, data.hands, seed=self.split_seed)
        self.splits = {k: IndexedImages(data, idx) for k, idx in self.split_indices.items()}
        if self.keras_params:
            size = tuple(data.images.shape[-2:])
            for i, (k, idx) in enumerate(self.split_indices.items()):
                gen = torch.Generator().manual_seed(self.eval_view_seed * 1000 + i)
                views = sample_keras_params(len(idx), image_size=size, generator=gen, **self.keras_params)
                self.aug_views[k] = IndexedImages(data, idx, views)
        log.info("split sizes: %s", {k: len(v) for k, v in self.splits.items()})

    # ---- loaders ----------------------------------------------------------------------
    def _loader(self, dataset: IndexedImages, batch_size: int, shuffle: bool) -> DataLoader:
        if shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.seed))
        else:
            sampler = SequentialSampler(dataset)
        batches = BatchSampler(sampler, batch_size, drop_last=False)  # Keras keeps the last partial batch
        if not shuffle:  # several processes: each evaluates its own share, no image twice
            batches = eval_batches(len(dataset), batch_size, self.trainer) or batches
        return DataLoader(
            dataset,
            sampler=batches,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits["train"], self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"], self.eval_batch_size, shuffle=False)

    @property
    def eval_names(self) -> list[str]:
        """The sets ``test_dataloader`` returns, in order: plain splits, then augmented views."""
        return list(SPLITS) + ([f"{k}_aug" for k in SPLITS] if self.keras_params else [])

    def test_dataloader(self) -> list[DataLoader]:
        """The cross-evaluation: plain train/val/test, then their fixed augmented views."""
        sets = {**self.splits, **{f"{k}_aug": v for k, v in self.aug_views.items()}}
        return [self._loader(sets[k], self.eval_batch_size, shuffle=False) for k in self.eval_names]

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], self.eval_batch_size, shuffle=False)

    # ---- on the device ----------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # batches are gathered from CPU tensors: on the CPU there is nothing to move, and
        # Lightning's walk over the nested dict costs about 0.1 ms a step (1-2% of CarlosNet's)
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch["image"].float().mul_(1.0 / 255.0)  # the one and only rescale
        if "view" in batch:
            images = apply_keras_transform(images, batch["view"], **self.warp_options)
        elif self.augment_train and self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return images.contiguous(memory_format=torch.channels_last), batch["label"]

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Fresh Keras parameters for every image of ``images``, then one batched warp."""
        # drawn on the CPU (the same numbers on any device); the warp moves what it needs
        params = sample_keras_params(
            len(images), image_size=tuple(images.shape[-2:]), generator=self._aug_generator, **self.keras_params
        )
        return apply_keras_transform(images, params, **self.warp_options)

    def state_dict(self) -> dict[str, Any]:
        return {"aug_generator": self._aug_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._aug_generator.set_state(state["aug_generator"])
