"""FingersDataModule: batching as Keras did, one uint8 copy, rescale once, augmentation where it belongs."""

import pytest
import torch
from conftest import write_fingers_folder

from handgestures.data import FingersDataModule

AUG = {"rotation_range": 90, "width_shift_range": 0.2, "height_shift_range": 0.2, "zoom_range": 0.2,
       "horizontal_flip": True, "vertical_flip": True, "fill_mode": "nearest", "semantics": "keras2"}  # fmt: skip


class FakeTrainer:
    training = True


def make(tmp_path, **kw):
    root = tmp_path / "f"
    if not root.exists():
        write_fingers_folder(root, per_stratum=12)  # 144 images: 96 / 24 / 24
    dm = FingersDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=32, eval_batch_size=10, **kw)
    dm.setup("fit")
    return dm


def transfer(dm, batch, training):
    dm.trainer = FakeTrainer() if training else None
    return dm.on_after_batch_transfer(batch, 0)


def test_batches_like_keras_fit(tmp_path):
    dm = make(tmp_path)
    sizes = [len(b["label"]) for b in dm.train_dataloader()]
    assert sizes == [32, 32, 32]
    assert [len(b["label"]) for b in dm.val_dataloader()] == [10, 10, 4]  # the last partial batch is kept
    loader = dm.train_dataloader()
    epoch1 = torch.cat([b["label"] for b in loader])
    epoch2 = torch.cat([b["label"] for b in loader])
    assert sorted(epoch1.tolist()) == sorted(epoch2.tolist()) == sorted(dm.splits["train"].labels.tolist())

    def order(epoch, loader=loader):
        loader.sampler.set_epoch(epoch)  # as Lightning does before every epoch
        return torch.cat([dm.splits["train"].indices[torch.as_tensor(s)] for s in loader.sampler])

    assert not torch.equal(order(0), order(1))  # reshuffled every epoch
    # the order is a function of (seed, epoch): a new loader (a resumed run) replays it
    assert torch.equal(order(1), order(1, make(tmp_path).train_dataloader()))
    assert not torch.equal(order(1), order(1, make(tmp_path, seed=1).train_dataloader()))


def test_one_uint8_copy_shared_by_every_split_and_view(tmp_path):
    dm = make(tmp_path, augmentation=AUG)
    pointers = {ds.data.images.data_ptr() for ds in [*dm.splits.values(), *dm.aug_views.values()]}
    assert pointers == {dm.data.images.data_ptr()} and dm.data.images.dtype == torch.uint8
    assert [len(dm.splits[k]) for k in ("train", "val", "test")] == [96, 24, 24]


def test_rescaled_once_and_plain_outside_training(tmp_path):
    dm = make(tmp_path, augment_train=True, augmentation=AUG)
    batch = next(iter(dm.val_dataloader()))
    x, y = transfer(dm, batch, training=False)
    assert x.dtype == torch.float32 and torch.equal(x, batch["image"].float() * (1 / 255))  # Keras: x *= rescale
    assert x.max() <= 1 and torch.equal(y, batch["label"])
    xt, _ = transfer(dm, batch, training=True)
    assert not torch.allclose(xt, x)  # augmented in training
    assert xt.min() >= 0 and xt.max() <= 1  # still on the [0, 1] scale: no second rescale


def test_base_variant_never_augments_training(tmp_path):
    dm = make(tmp_path, augmentation=AUG)  # base: parameters only for the evaluation views
    batch = next(iter(dm.train_dataloader()))
    x, _ = transfer(dm, batch, training=True)
    assert torch.equal(x, batch["image"].float() * (1 / 255))  # Keras: x *= rescale


def test_augmented_views_are_fixed_across_runs_and_seeds(tmp_path):
    a = make(tmp_path, augmentation=AUG, seed=0)
    b = make(tmp_path, augmentation=AUG, seed=5)
    assert a.eval_names == ["train", "val", "test", "train_aug", "val_aug", "test_aug"]
    loaders_a, loaders_b = a.test_dataloader(), b.test_dataloader()
    for la, lb in zip(loaders_a[3:], loaders_b[3:]):
        xa = transfer(a, next(iter(la)), training=False)[0]
        xb = transfer(b, next(iter(lb)), training=False)[0]
        assert torch.equal(xa, xb)
    plain = transfer(a, next(iter(loaders_a[2])), training=False)[0]
    view = transfer(a, next(iter(loaders_a[5])), training=False)[0]
    assert not torch.allclose(plain, view)  # the view is augmented
    c = make(tmp_path, augmentation=AUG, eval_view_seed=2)
    assert not torch.equal(transfer(c, next(iter(c.test_dataloader()[5])), False)[0], view)


def test_training_augmentation_is_seeded(tmp_path):
    runs = []
    for seed in (0, 0, 1):
        dm = make(tmp_path, augment_train=True, augmentation=AUG, seed=seed)
        batch = next(iter(dm.train_dataloader()))
        runs.append(transfer(dm, batch, training=True)[0])
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_bad_configuration_is_named(tmp_path):
    with pytest.raises(ValueError, match="rotaton_range"):
        FingersDataModule(augmentation={"rotaton_range": 90})
    with pytest.raises(ValueError, match="augment_train"):
        FingersDataModule(augment_train=True)


def test_batches_stay_in_place_on_the_cpu_and_move_elsewhere(tmp_path):
    dm = make(tmp_path, augmentation=AUG)
    batch = next(iter(dm.test_dataloader()[3]))  # an augmented view: a nested dict of tensors
    assert dm.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = dm.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert moved["image"].device.type == "meta" and moved["label"].device.type == "meta"
    assert set(moved["view"]) == set(batch["view"]) and all(v.device.type == "meta" for v in moved["view"].values())
    assert moved["image"].shape == batch["image"].shape


def _anon_huge_kb(tensor: torch.Tensor) -> int:
    """AnonHugePages summed over this process's mappings that overlap ``tensor``'s memory (smaps)."""
    start = tensor.untyped_storage().data_ptr()
    end = start + tensor.untyped_storage().nbytes()
    total, overlaps = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(v, 16) for v in head.split("-"))
                overlaps = lo < end and start < hi
            elif overlaps and head == "AnonHugePages:":
                total += int(line.split()[1])
    return total


def _thp_collapse_available() -> bool:
    import platform
    from pathlib import Path

    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text():
        return False
    major, minor = (int(v) for v in platform.release().split(".")[:2])
    return (major, minor) >= (6, 1)  # MADV_COLLAPSE


def test_dataset_held_in_huge_pages_with_values_unchanged():
    import mmap

    from handgestures.data.cache import HUGE_PAGE, back_with_huge_pages

    if not _thp_collapse_available():
        pytest.skip("needs Linux 6.1+ with transparent huge pages not 'never'")
    # a mapping of its own, kept out of huge pages until asked: where the kernel's mode is
    # "always", an ordinary allocation may already sit in huge pages and show no change
    size = 16 * 2**20
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer.madvise(mmap.MADV_NOHUGEPAGE)
    images = torch.frombuffer(buffer, dtype=torch.uint8).view(1024, 1, 128, 128)
    images.copy_(torch.randint(0, 256, images.shape, dtype=torch.uint8))  # 16 MB
    before = images.clone()
    assert _anon_huge_kb(images) < 16 * 1024 - 2 * HUGE_PAGE // 1024
    assert back_with_huge_pages(images)
    assert torch.equal(images, before)
    # every whole 2 MB page inside the 16 MB tensor: at least 14 MB of it
    assert _anon_huge_kb(images) >= 16 * 1024 - 2 * HUGE_PAGE // 1024
    assert not back_with_huge_pages(torch.zeros(1000, dtype=torch.uint8))  # no whole huge page inside
    assert not back_with_huge_pages(torch.zeros(2**23, dtype=torch.uint8, device="meta"))
    del images, before
    buffer.close()


def test_huge_pages_is_asked_for_the_dataset_only_when_configured(tmp_path, monkeypatch):
    import handgestures.data.datamodule as datamodule

    asked = []
    monkeypatch.setattr(datamodule, "back_with_huge_pages", lambda t: asked.append(t) or True)
    dm = make(tmp_path)
    assert len(asked) == 1 and asked[0] is dm.data.images
    make(tmp_path, huge_pages=False)
    assert len(asked) == 1
