"""The folder reader, its cache, and the study's split."""

import os
import time

import numpy as np
import pytest
import torch
from conftest import write_fingers_folder
from PIL import Image

from handgestures.data import fingers, load_fingers_folder, parse_name, stratified_split
from handgestures.data.split import SPLITS


def test_parse_name():
    assert parse_name("a/b/00048bba-979b_0L.png") == (0, 0)
    assert parse_name("x_5R.png") == (5, 1)
    for bad in ["x_6L.png", "x_3.png", "x3L.png", "x_3X.png"]:
        with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
            parse_name(bad)


def test_reads_labels_recursively(tmp_path):
    root = write_fingers_folder(tmp_path / "fingers", per_stratum=4, subdirs=("train", "test"))
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert len(data) == 48 and data.images.shape == (48, 1, 128, 128) and data.images.dtype == torch.uint8
    assert {n.split(os.sep)[0] for n in data.names} == {"train", "test"}
    # the marker pixel written by the fixture encodes the label and hand of each file
    assert torch.equal(data.images[:, 0, 0, 0].long(), data.labels * 40 + data.hands)
    for name, label, hand in zip(data.names, data.labels.tolist(), data.hands.tolist()):
        assert parse_name(name) == (label, hand)


def test_badly_named_file_is_rejected_by_name(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(root / "hand_seven.png")
    with pytest.raises(ValueError, match="hand_seven.png"):
        load_fingers_folder(root, cache_dir=tmp_path / "cache")


def test_wrong_size_and_missing_folder_are_clear_errors(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1, size=64)
    with pytest.raises(ValueError, match=r"64x64, expected 128x128"):
        load_fingers_folder(root, cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_fingers_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no PNG"):
        load_fingers_folder(tmp_path / "empty")


def test_colour_images_become_keras_luma(tmp_path):
    root = tmp_path / "rgb"
    root.mkdir()
    rgb = np.zeros((128, 128, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(root / "a_1L.png")
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert int(data.images[0, 0, 5, 5]) == (200 * 299 + 100 * 587 + 50 * 114) // 1000  # ITU-R 601-2, PIL 'L'


def test_second_load_decodes_nothing(tmp_path, monkeypatch):
    root = write_fingers_folder(tmp_path / "f", per_stratum=2)
    path = sorted(root.glob("*.png"))[0]
    Image.open(path).save(path, compress_level=0)  # stored uncompressed: a new content keeps the size
    first = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    calls = []
    original = fingers.decode_png
    monkeypatch.setattr(fingers, "decode_png", lambda *a: calls.append(a) or original(*a))
    second = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert calls == []
    assert torch.equal(first.images, second.images) and first.names == second.names
    # the key is the content: touching a file decodes nothing; new pixels under the old
    # size and modification time (cp -p, rsync -a) are decoded again, from the files
    assert root / first.names[0] == path
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert calls == []
    st = path.stat()
    changed = np.asarray(Image.open(path)).copy()
    changed[5:9, 5:9] = 255 - changed[5:9, 5:9]
    Image.fromarray(changed).save(path, compress_level=0)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    third = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert len(calls) == len(first)
    assert torch.equal(third.images[0, 0], torch.from_numpy(changed)) and torch.equal(
        third.images[1:], first.images[1:]
    )


def test_corrupt_cache_is_rebuilt(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    first = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("fingers-*.pt")
    entry.write_bytes(b"not a cache")
    assert torch.equal(load_fingers_folder(root, cache_dir=tmp_path / "cache").images, first.images)


def test_split_sizes_and_stratification_exact():
    labels = torch.arange(6).repeat_interleave(60)
    hands = torch.arange(2).repeat(180)
    split = stratified_split(labels, hands, seed=0)
    assert [len(split[k]) for k in SPLITS] == [240, 60, 60]
    everything = torch.cat([split[k] for k in SPLITS]).sort().values
    assert torch.equal(everything, torch.arange(360))  # a partition: nothing lost or repeated
    for k, per in zip(SPLITS, (40, 10, 10)):
        counts = torch.bincount(labels[split[k]] * 2 + hands[split[k]], minlength=12)
        assert counts.tolist() == [per / 2] * 12
    assert not torch.equal(stratified_split(labels, hands, seed=1)["test"], split["test"])
    assert torch.equal(stratified_split(labels, hands, seed=0)["test"], split["test"])


def test_real_data_has_3000_per_class(real_data, tmp_path):
    data = load_fingers_folder(real_data, cache_dir=tmp_path / "cache")
    assert len(data) == 18000
    assert torch.bincount(data.labels).tolist() == [3000] * 6
    assert torch.bincount(data.labels * 2 + data.hands).tolist() == [1500] * 12
    split = stratified_split(data.labels, data.hands)
    assert [len(split[k]) for k in SPLITS] == [12000, 3000, 3000]
    for k, per in zip(SPLITS, (2000, 500, 500)):
        assert torch.bincount(data.labels[split[k]]).tolist() == [per] * 6
    # hand bright on a dark background, as the built-in hands imitate
    img = data.images.float()
    assert img[:, :, 48:80, 48:80].mean() > img[:, :, :8, :8].mean() + 20
