"""Near-duplicate groups, the grouped split, and split.csv."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import write_fingers_folder

from handgestures.analysis.leakage import split_leakage
from handgestures.data.cache import ImageSet
from handgestures.data.datamodule import FingersDataModule
from handgestures.data.grouping import (
    distance_blocks,
    grouped_split,
    make_split,
    near_duplicate_groups,
    nearest,
    thumbnails,
    write_split_csv,
)
from handgestures.data.split import SPLITS, stratified_split


def recordings(per_stratum: int = 4, frames: int = 12, step: float = 3.0, seed: int = 0) -> ImageSet:
    """Each (class, hand) holds ``per_stratum`` recordings: a random image drifting by ``step`` grey levels a frame.

    Consecutive frames are near-copies; the first and last frame of a recording are not.
    """
    gen = torch.Generator().manual_seed(seed)
    images, labels, hands = [], [], []
    for stratum in range(12):
        for _ in range(per_stratum):
            start = torch.rand(1, 1, 16, 16, generator=gen) * 160 + 40
            drift = torch.randn(frames, 1, 16, 16, generator=gen).cumsum(0) * step
            frames_ = (start + drift).clamp(0, 255).round().to(torch.uint8)
            images.append(frames_.repeat_interleave(8, 2).repeat_interleave(8, 3))  # 128x128, 16x16 blocks
            labels += [stratum // 2] * frames
            hands += [stratum % 2] * frames
    images = torch.cat(images)
    return ImageSet(images, torch.tensor(labels), torch.tensor(hands), [f"img{i:05d}" for i in range(len(images))])


@pytest.fixture(scope="module")
def data() -> ImageSet:
    return recordings()


def test_thumbnails_are_block_means_and_sizes_must_divide():
    image = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    image[0, 0, :4, :4] = 200
    image[0, 0, 4:, 4:] = torch.tensor([[0, 100], [100, 0]], dtype=torch.uint8).repeat(2, 2)
    assert thumbnails(image, 2).tolist() == [[200.0, 0.0, 0.0, 50.0]]
    with pytest.raises(ValueError, match="thumbnail size 3 must divide the image size 8x8"):
        thumbnails(image, 3)


def test_blocked_distances_equal_the_full_matrix():
    x = torch.rand(37, 20) * 255
    full = torch.cdist(x.double(), x.double()) / 20**0.5
    blocks = torch.cat([d for _, d in distance_blocks(x, x, block=8)])
    # float32 |a|^2 + |b|^2 - 2ab: exact to 0.01 grey levels apart from a pair and itself,
    # where cancellation leaves up to ~0.2 (far below any near-copy threshold)
    off_diagonal = ~torch.eye(37, dtype=torch.bool)
    assert torch.allclose(blocks.double()[off_diagonal], full[off_diagonal], atol=1e-2)
    assert blocks.diagonal().abs().max() < 0.5
    dist, index = nearest(x, x, exclude_self=True, block=5)
    expected = full.fill_diagonal_(float("inf")).min(1)
    assert torch.equal(index, expected.indices) and torch.allclose(dist.double(), expected.values, atol=1e-2)


def test_groups_follow_recordings_and_respect_the_cap(data):
    thumbs = thumbnails(data.images)
    uncapped = near_duplicate_groups(thumbs, data.labels, data.hands, threshold=9.0, max_group=10**6)
    recording = torch.arange(len(data)) // 12
    # near-copies chain a whole recording, and nothing else, into one group
    assert len(torch.unique(uncapped)) == len(torch.unique(recording))
    assert all(len(torch.unique(recording[uncapped == g])) == 1 for g in torch.unique(uncapped))
    capped = near_duplicate_groups(thumbs, data.labels, data.hands, threshold=9.0, max_group=5)
    sizes = torch.bincount(capped)
    assert sizes.max() == 5 and len(sizes) > len(torch.unique(uncapped))
    strata = data.labels * 2 + data.hands
    assert all(len(torch.unique(strata[capped == g])) == 1 for g in torch.unique(capped))
    # the default cap is 1/12 of the smallest (class, hand): 48 // 12 = 4
    assert torch.bincount(near_duplicate_groups(thumbs, data.labels, data.hands, threshold=9.0)).max() == 4
    assert torch.equal(near_duplicate_groups(thumbs, data.labels, data.hands, 0.0), torch.arange(len(data)))


def test_grouped_split_keeps_groups_whole_and_every_stratum_everywhere(data):
    groups = torch.arange(len(data)) // 6  # half-recordings of 6 frames, 8 per (class, hand)
    split = grouped_split(data.labels, data.hands, groups, seed=3)
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(len(data)))
    owner = {}
    for name, idx in split.items():
        for g in groups[idx].tolist():
            assert owner.setdefault(g, name) == name  # no group in two splits
    strata = data.labels * 2 + data.hands
    for name, target in zip(SPLITS, (32, 8, 8)):  # of the 48 images of each (class, hand)
        counts = torch.bincount(strata[split[name]], minlength=12)
        assert (counts > 0).all()  # every class and hand in every split
        assert ((counts - target).abs() <= 2 * 6).all()  # within two groups of the target
        assert (counts - target <= 6 - 1).all()  # never a whole group over it
    again, other = (
        grouped_split(data.labels, data.hands, groups, seed=3),
        grouped_split(data.labels, data.hands, groups, seed=4),
    )
    assert all(torch.equal(split[k], again[k]) for k in SPLITS)
    assert not all(torch.equal(split[k], other[k]) for k in SPLITS)


def test_single_image_groups_give_the_random_split_sizes():
    labels, hands = torch.arange(150) % 6, (torch.arange(150) // 6) % 2
    split = grouped_split(labels, hands, torch.arange(150), seed=0)
    random = stratified_split(labels, hands, seed=0)
    assert [len(split[k]) for k in SPLITS] == [len(random[k]) for k in SPLITS]


def test_bad_groups_and_kinds_are_errors(data):
    groups = torch.zeros(len(data), dtype=torch.long)
    with pytest.raises(ValueError, match="spans two"):
        grouped_split(data.labels, data.hands, groups)
    with pytest.raises(ValueError, match="'clustered'"):
        make_split(data, "clustered")
    with pytest.raises(ValueError, match=r"\['radius'\]"):
        make_split(data, "grouped", grouping={"radius": 3})
    with pytest.raises(ValueError, match="'shuffled'"):
        FingersDataModule(split="shuffled")


def test_grouped_split_leaks_fewer_near_copies_than_the_random_one(data):
    thumbs = thumbnails(data.images)
    random, _ = make_split(data, "random", seed=0)
    grouped, groups = make_split(data, "grouped", seed=0, grouping={"threshold": 9.0, "max_group": 12})
    leak_random = split_leakage(thumbs, data.labels, random, 9.0, 4.0)
    leak_grouped = split_leakage(thumbs, data.labels, grouped, 9.0, 4.0)
    assert groups is not None and torch.bincount(groups).max() == 12  # whole recordings
    for name in ("val", "test"):
        assert leak_random[name]["near_copy_in_train"] > 0.9
        assert leak_grouped[name]["near_copy_in_train"] == 0.0


def test_split_csv_lists_every_image_once_with_its_split(tmp_path):
    root = write_fingers_folder(tmp_path / "imgs", per_stratum=6)
    for kind in ("random", "grouped"):
        dm = FingersDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), split=kind, huge_pages=False)
        path = write_split_csv(dm, tmp_path / f"{kind}.csv")
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == ["file", "class", "hand", "split", "group"]
        assert sorted(r["file"] for r in rows) == sorted(dm.data.names)
        for name, idx in dm.split_indices.items():
            assert sorted(r["file"] for r in rows if r["split"] == name) == sorted(dm.data.names[i] for i in idx)
        for r in rows:
            assert r["file"].endswith(f"_{r['class']}{r['hand']}.png")
        groups = {r["group"] for r in rows}
        assert groups == {""} if kind == "random" else "" not in groups


def test_a_grouped_split_groups_the_images_once_and_another_process_reads_the_stored_groups(tmp_path, monkeypatch):
    import handgestures.data.stored_groups as stored

    root = write_fingers_folder(tmp_path / "imgs", per_stratum=6)
    calls = []
    real = stored.near_duplicate_groups
    monkeypatch.setattr(stored, "near_duplicate_groups", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(stored, "_groups_memo", {})

    def grouped():
        dm = FingersDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), split="grouped", huge_pages=False)
        dm.setup()
        return dm

    first = grouped()
    assert len(calls) == 1 and len(list((tmp_path / "cache").glob("groups-*.pt"))) == 1
    computed, groups = make_split(first.data, "grouped", seed=0, grouping=first.grouping)  # grouping here, not stored
    assert torch.equal(groups, first.groups)
    assert all(torch.equal(computed[k], first.split_indices[k]) for k in SPLITS)
    monkeypatch.setattr(stored, "_groups_memo", {})  # another process: the stored copy, not a second grouping
    second = grouped()
    assert len(calls) == 1 and torch.equal(second.groups, first.groups)
    assert all(torch.equal(second.split_indices[k], first.split_indices[k]) for k in SPLITS)
