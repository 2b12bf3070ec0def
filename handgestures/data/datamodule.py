"""FingersDataModule: the whole dataset once as uint8, batches gathered by index.

Design, for speed on a small CPU:
* the dataset lives in memory once, as uint8 (about 354 MB for 21,600 images); a batch is
  one fancy-index gather of the uint8 tensor, so there is no per-image Python work and no
  float copy of the dataset;
* that tensor is held in 2 MB pages where Linux allows (``huge_pages``): batches gather
  random rows of it, which costs TLB misses with 4 KB pages;
* pixels are scaled to [0, 1] exactly once, after the batch reaches its device;
* Keras augmentation (one :class:`~handgestures.data.augment.KerasAugmentation`) is one
  batched warp per training batch on that device, with parameters drawn per image from a
  seeded generator;
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
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from handgestures.data.augment import KerasAugmentation
from handgestures.data.augment.batch import KERAS_PARAM_NAMES  # noqa: F401  (re-exported: it lived here)
from handgestures.data.cache import ImageSet
from handgestures.data.folds import make_fold_split
from handgestures.data.grouping import SPLIT_KINDS, make_split
from handgestures.data.problems import check_splits
from handgestures.data.samplers import EpochBatchSampler, EpochShuffle, SequentialBatches, distributed_batches
from handgestures.data.sources import load_images
from handgestures.data.split import SPLITS
from handgestures.data.stored_groups import groups_of
from handgestures.runtime import back_with_huge_pages

log = logging.getLogger(__name__)


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
        # index_select copies whole rows: faster than advanced indexing here, the same bytes
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
        split: ``random`` (the study's) or ``grouped`` (near-duplicate groups kept inside one
            split: :mod:`handgestures.data.grouping`, whose parameters ``grouping`` holds).
        folds, fold: grouped k-fold cross-validation (``split`` must be ``grouped``): the
            groups dealt into ``folds`` folds, fold ``fold`` the test set (:mod:`handgestures.data.folds`).
        seed: seed of the training shuffle and of the training augmentation draws.
        eval_view_seed: seed of the fixed augmented evaluation views.
        huge_pages: hold the dataset in 2 MB pages on Linux (see
            :func:`handgestures.runtime.back_with_huge_pages`); a no-op elsewhere.
        on_error: ``raise`` (stop, listing every bad file) or ``skip`` (train on the good
            ones, listing the others in ``skipped.csv``); see :mod:`handgestures.data.problems`.
        report_dir: where the lists of bad and duplicate files go (the run folder);
            None for the cache folder's ``reports/``.
        cache_max_gb: size limit of the image cache folder (least recently used entries
            pruned past it); 0 caches nothing, None sets no limit.
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
        on_error: str = "raise",
        report_dir: str | None = None,
        cache_max_gb: float | None = None,
        split: str = "random",
        grouping: Mapping[str, Any] | None = None,
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        super().__init__()
        self.augmentation = KerasAugmentation(augmentation, seed)  # checks the parameter names
        if augment_train and not self.augmentation:
            raise ValueError("augment_train is true but no augmentation parameters are configured")
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        if split not in SPLIT_KINDS:
            raise ValueError(f"data.split must be one of {list(SPLIT_KINDS)}, got {split!r}")
        self.split, self.grouping, self.groups = split, dict(grouping or {}), None
        if folds is not None:
            if split != "grouped":
                raise ValueError(
                    f"data.folds={folds} needs data.split=grouped: folds of the random split would put near-copies "
                    "of test images in training (docs/leakage.md)"
                )
            if int(folds) < 2 or not 0 <= int(fold) < int(folds):
                raise ValueError(f"data.folds={folds}, data.fold={fold}: expected folds >= 2 and 0 <= fold < folds")
        self.folds, self.fold, self.fold_of = (int(folds) if folds is not None else None), int(fold), None
        if root == "":
            raise ValueError(
                "root is empty (an unset variable?): give a folder of Fingers PNGs, or None for the built-in hands"
            )
        self.root = os.path.expanduser(root) if root is not None else None
        self.on_error, self.report_dir, self.cache_max_gb = on_error, report_dir, cache_max_gb
        self.cache_dir = cache_dir
        self.builtin_size, self.builtin_seed, self.image_size = builtin_size, builtin_seed, image_size
        self.split_seed, self.seed, self.eval_view_seed = split_seed, seed, eval_view_seed
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.augment_train = augment_train
        self.huge_pages = huge_pages
        self.data: ImageSet | None = None
        self.splits: dict[str, IndexedImages] = {}
        self.aug_views: dict[str, IndexedImages] = {}

    # ---- set-up -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Decode or generate once, filling the on-disk cache."""
        self._load()

    def _load(self) -> ImageSet:
        if self.data is None:
            data = load_images(self.root, self.cache_dir, self.builtin_size, self.builtin_seed, self.image_size,
                               self.on_error, self.report_dir, self.cache_max_gb)  # fmt: skip
            log.info("data: %s", data.source)
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
        if self.folds is not None:  # grouped k-fold: fold `fold` is the test set
            self.split_indices, self.groups, self.fold_of = make_fold_split(
                data, self.folds, self.fold, self.split_seed, self.grouping
            )
        else:
            groups = groups_of(data, self.grouping) if self.split == "grouped" else None  # stored: computed once
            self.split_indices, self.groups = make_split(data, self.split, self.split_seed, self.grouping, groups)
        check_splits(self.split_indices, data.labels)
        self.splits = {k: IndexedImages(data, idx) for k, idx in self.split_indices.items()}
        if self.augmentation:
            size = tuple(data.images.shape[-2:])
            for i, (k, idx) in enumerate(self.split_indices.items()):
                views = self.augmentation.fixed_views(len(idx), size, seed=self.eval_view_seed * 1000 + i)
                self.aug_views[k] = IndexedImages(data, idx, views)
        log.info("split sizes: %s", {k: len(v) for k, v in self.splits.items()})

    # ---- loaders ----------------------------------------------------------------------
    def _loader(self, dataset: IndexedImages, batch_size: int, shuffle: bool) -> DataLoader:
        # the shuffle is a function of (seed, epoch), so a resumed run replays the same order
        sampler = EpochShuffle(len(dataset), self.seed) if shuffle else SequentialSampler(dataset)
        batches = EpochBatchSampler(sampler, batch_size, drop_last=False)  # Keras keeps the last partial batch
        overfit = getattr(self.trainer, "overfit_batches", 0) and self.trainer.state.fn == "fit"
        if overfit:  # trainer.overfit_batches: the same batches every epoch, in a sampler Lightning keeps
            batches = SequentialBatches(len(dataset), batch_size)
        return DataLoader(
            dataset,
            sampler=distributed_batches(batches, self.trainer, train=shuffle),  # DDP: this process's share
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # its draw per iterator leaves the global RNG alone
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
        # Lightning's walk over the nested dict would cost time at every step
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prepare_batch(batch, training=self.trainer is not None and self.trainer.training)

    def prepare_batch(self, batch: dict[str, Any], training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """A loader's batch, on its device, as the network takes it: ``(images, labels)``.

        Scales the uint8 pixels to [0, 1] (the one and only rescale), warps a fixed
        augmented view by its stored parameters, or, when ``training`` and the run trains
        augmented, with fresh parameters; channels-last images. Lightning calls it on every
        batch; benchmarks call it to measure exactly the training's data path.
        """
        images = batch["image"].float().mul_(1.0 / 255.0)
        if "view" in batch:
            images = self.augmentation.apply(images, batch["view"])
        elif training and self.augment_train:
            images = self.augment(images)
        return images.contiguous(memory_format=torch.channels_last), batch["label"]

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Fresh Keras parameters for every image of ``images``, then one batched warp."""
        return self.augmentation(images)

    @property
    def keras_params(self) -> dict[str, Any]:
        """The Keras ``ImageDataGenerator`` parameters (empty without augmentation)."""
        return self.augmentation.keras_params

    @property
    def warp_options(self) -> dict[str, Any]:
        """semantics, fill_mode and cval (on the 0..1 scale) of the warp."""
        return self.augmentation.warp_options

    def state_dict(self) -> dict[str, Any]:
        return {"aug_generator": self.augmentation.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.augmentation.generator.set_state(state["aug_generator"])


def build_datamodule(data_cfg: Any) -> FingersDataModule:
    """The DataModule of a ``data`` config (conf/data; every key is an argument of its ``_target_``)."""
    return instantiate(data_cfg, _convert_="all")
