"""The augmentation as one object owned by the DataModule, and the public batch preparation."""

import pytest
import torch
from conftest import write_fingers_folder

from handgestures.data import FingersDataModule
from handgestures.data.augment import KerasAugmentation, apply_keras_transform, sample_keras_params

AUG = {"rotation_range": 90, "width_shift_range": 0.2, "height_shift_range": 0.2, "zoom_range": 0.2,
       "horizontal_flip": True, "vertical_flip": True, "fill_mode": "constant", "cval": 51}  # fmt: skip


@pytest.fixture(scope="module")
def dm(tmp_path_factory):
    root = tmp_path_factory.mktemp("f")
    write_fingers_folder(root, per_stratum=6)
    dm = FingersDataModule(root=str(root), cache_dir=str(root / "cache"), batch_size=8, augment_train=True,
                           augmentation=AUG, seed=3)  # fmt: skip
    dm.setup("fit")
    return dm


def test_the_object_draws_and_warps_as_the_functions_do():
    aug = KerasAugmentation(AUG, seed=5)
    assert aug.warp_options == {"semantics": "keras2", "fill_mode": "constant", "cval": pytest.approx(0.2)}
    images = torch.rand(4, 1, 16, 16)
    expected = apply_keras_transform(
        images, sample_keras_params(4, (16, 16), generator=torch.Generator().manual_seed(5),
                                    **{k: v for k, v in AUG.items() if k not in ("fill_mode", "cval")}),
        fill_mode="constant", cval=0.2,
    )  # fmt: skip
    assert torch.equal(aug(images), expected)
    assert not torch.equal(aug(images), expected)  # the generator moved on


def test_state_dict_replays_the_draws():
    aug = KerasAugmentation(AUG, seed=1)
    aug.sample(3, (8, 8))
    state = aug.state_dict()
    first = aug.sample(5, (8, 8))
    aug.load_state_dict(state)
    assert all(torch.equal(first[k], v) for k, v in aug.sample(5, (8, 8)).items())


def test_unknown_names_are_named_in_the_error():
    with pytest.raises(ValueError, match=r"unknown augmentation parameters \['rotation'\]"):
        KerasAugmentation({"rotation": 90})
    assert not KerasAugmentation(None) and not KerasAugmentation({"fill_mode": "nearest"})


def test_prepare_batch_is_what_lightning_gets(dm):
    batch = next(iter(dm.train_dataloader()))
    plain, labels = dm.prepare_batch(dict(batch), training=False)
    assert torch.equal(plain, batch["image"].float() * (1.0 / 255.0)) and torch.equal(labels, batch["label"])
    assert plain.is_contiguous(memory_format=torch.channels_last)
    state = dm.state_dict()
    trained, _ = dm.prepare_batch(dict(batch), training=True)
    dm.load_state_dict(state)
    assert torch.equal(trained, dm.augmentation(batch["image"].float() * (1.0 / 255.0)))
    assert not torch.allclose(trained, plain)
    dm.load_state_dict(state)
    dm.trainer = None  # outside a fit: on_after_batch_transfer never augments
    assert torch.equal(dm.on_after_batch_transfer(dict(batch), 0)[0], plain)


def test_fixed_views_use_the_stored_parameters(dm):
    batch = next(iter(dm.test_dataloader()[3]))  # train_aug
    out, _ = dm.prepare_batch(batch, training=True)  # a view is never re-drawn
    assert torch.equal(out, dm.augmentation.apply(batch["image"].float() * (1.0 / 255.0), batch["view"]))
