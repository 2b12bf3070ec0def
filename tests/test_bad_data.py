"""Bad data found all at once and never silently: bad files, 16-bit images, links, duplicates, splits."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from conftest import write_fingers_folder
from helpers import TINY, compose_train
from PIL import Image

from handgestures.data import FingersDataModule, load_fingers_folder, stratified_split
from handgestures.data.problems import SHOWN, BadDataError
from handgestures.data.split import SPLITS
from handgestures.errors import UserError
from handgestures.plots import CLASS_NAMES
from handgestures.training.train import train


def add_bad_files(root):
    """One file of each kind of fault; returns {name: text its reason must hold}."""
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(root / "hand_seven.png")
    good = next(root.glob("*.png")).read_bytes()
    (root / "trunc_1L.png").write_bytes(good[: len(good) // 2])
    (root / "empty_2L.png").write_bytes(b"")
    (root / "text_3L.png").write_text("not an image")
    Image.fromarray(np.zeros((64, 32), np.uint8)).save(root / "small_4L.png")
    os.symlink(root / "gone.png", root / "link_5L.png")
    return {
        "hand_seven.png": "badly named", "trunc_1L.png": "cannot decode", "empty_2L.png": "empty file",
        "text_3L.png": "cannot decode", "small_4L.png": "is 32x64, expected 128x128", "link_5L.png": "broken symbolic link",
    }  # fmt: skip


def read_csv(path):
    with open(path) as f:
        return {row["path"]: row["reason"] for row in csv.DictReader(f)}


def test_every_bad_file_is_listed_with_its_reason_in_one_pass(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    expected = add_bad_files(root)
    with pytest.raises(BadDataError) as err:
        load_fingers_folder(root, cache_dir=tmp_path / "cache", report_dir=tmp_path / "run")
    message = str(err.value)
    assert (
        isinstance(err.value, UserError) and f"{len(expected)} bad files" in message and "data.on_error=skip" in message
    )
    listed = read_csv(tmp_path / "run" / "bad_files.csv")
    assert set(listed) == set(expected)
    for name, reason in expected.items():
        assert reason in listed[name] and name in message


def test_skip_trains_on_the_good_files_and_writes_skipped_csv(tmp_path, caplog):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    expected = add_bad_files(root)
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache", on_error="skip", report_dir=tmp_path / "run")
    assert len(data) == 12 and not set(data.names) & set(expected)
    assert set(read_csv(tmp_path / "run" / "skipped.csv")) == set(expected)
    assert "skipped 6 bad files" in caplog.text and "(6 bad files skipped)" in data.source
    # the second run is served from the cache and reports the same files again
    again = load_fingers_folder(root, cache_dir=tmp_path / "cache", on_error="skip", report_dir=tmp_path / "run2")
    assert again.names == data.names and set(read_csv(tmp_path / "run2" / "skipped.csv")) == set(expected)


def test_only_the_first_bad_files_on_screen_all_in_the_file(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    for i in range(SHOWN + 5):
        (root / f"bad{i:02d}_0L.png").write_bytes(b"junk")
    with pytest.raises(BadDataError, match=r"and 5 more") as err:
        load_fingers_folder(root, cache_dir=tmp_path / "cache", report_dir=tmp_path / "run")
    assert sum(line.startswith("  bad") for line in str(err.value).splitlines()) == SHOWN
    assert len(read_csv(tmp_path / "run" / "bad_files.csv")) == SHOWN + 5


def test_16_bit_images_are_scaled_not_saturated(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    deep = (np.arange(128 * 128, dtype=np.uint32).reshape(128, 128) * 4).astype(np.uint16)  # 0..65532
    Image.fromarray(deep).save(root / "deep_2R.png")
    assert Image.open(root / "deep_2R.png").mode == "I;16"
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    got = data.images[0, 0].numpy().astype(int)
    assert np.array_equal(got, (deep.astype(np.int64) * 255 + 32767) // 65535)
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) == 256  # the whole range, not all white


def test_symlinked_folders_are_followed_once_and_loops_reported(tmp_path, caplog):
    elsewhere = write_fingers_folder(tmp_path / "elsewhere", per_stratum=1, seed=1)
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    os.symlink(elsewhere, root / "more")
    os.symlink(root, root / "loop")  # a folder that contains itself
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert len(data) == 24 and sum(n.startswith("more" + os.sep) for n in data.names) == 12
    assert "folder 'loop' not read again" in caplog.text


def test_identical_files_under_train_and_test_are_reported_and_kept_together(tmp_path, caplog):
    root = write_fingers_folder(tmp_path / "f", per_stratum=12, subdirs=("train",))
    (root / "test").mkdir()
    copies = sorted((root / "train").glob("*.png"))[:30]
    for p in copies:
        (root / "test" / p.name).write_bytes(p.read_bytes())
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache", report_dir=tmp_path / "run")
    assert "30 files have the same pixels as another file" in caplog.text
    with open(tmp_path / "run" / "duplicates.csv") as f:
        pairs = list(csv.DictReader(f))
    assert {(r["path"], r["same_pixels_as"]) for r in pairs} == {
        (os.path.join("train", p.name), os.path.join("test", p.name)) for p in copies
    }
    split = stratified_split(data.labels, data.hands, seed=0, together=data.twins)
    where = {int(i): k for k in SPLITS for i in split[k]}
    assert sorted(where) == list(range(len(data)))  # still a partition
    for i, j in enumerate(data.twins.tolist()):
        assert where[i] == where[j]
    plain = stratified_split(data.labels, data.hands, seed=0)
    assert any(plain[k].tolist() != split[k].tolist() for k in SPLITS)  # without grouping, copies would leak


def test_grouping_leaves_a_split_without_duplicates_unchanged():
    labels, hands = torch.arange(6).repeat_interleave(20), torch.arange(2).repeat(60)
    plain = stratified_split(labels, hands, seed=3)
    grouped = stratified_split(labels, hands, seed=3, together=torch.arange(120))
    assert all(torch.equal(plain[k], grouped[k]) for k in SPLITS)


def test_identical_pixels_under_two_labels_are_bad_files(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    source = sorted(root.glob("*_0L.png"))[0]
    (root / "copy_4R.png").write_bytes(source.read_bytes())
    with pytest.raises(BadDataError, match="under another label") as err:
        load_fingers_folder(root, cache_dir=tmp_path / "cache", report_dir=tmp_path / "run")
    assert {source.name, "copy_4R.png"} <= set(read_csv(tmp_path / "run" / "bad_files.csv"))
    assert "2 bad files" in str(err.value)


@pytest.mark.parametrize("per_stratum,message", [(5, "split 'val' would be empty"), (6, None)])
def test_a_split_without_a_class_is_an_error_naming_class_and_counts(tmp_path, per_stratum, message):
    root = write_fingers_folder(tmp_path / "f", per_stratum=per_stratum)
    dm = FingersDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), report_dir=str(tmp_path / "run"))
    if message is None:
        dm.setup()
        assert [len(dm.splits[k]) for k in SPLITS] == [48, 12, 12]
        return
    with pytest.raises(BadDataError, match=message) as err:
        dm.setup()
    assert "'0 fingers'" in str(err.value) and "all    [10, 10, 10, 10, 10, 10]" in str(err.value)


def test_one_class_missing_everywhere_is_named(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=6)
    for p in root.glob("*_5?.png"):
        p.unlink()
    dm = FingersDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), report_dir=str(tmp_path / "run"))
    with pytest.raises(BadDataError, match="split 'train' would have no image of class '5 fingers'"):
        dm.setup()


def test_empty_root_is_refused_not_replaced_by_the_built_in_hands():
    with pytest.raises(ValueError, match="empty"):
        FingersDataModule(root="")


def test_per_class_accuracy_of_a_class_without_images_is_null(tmp_path):
    """Only the first test batch (2 images) is evaluated: the other classes have no images there."""
    root = write_fingers_folder(tmp_path / "f", per_stratum=6)
    overrides = ["epochs=1", "logger=none", "trainer.limit_train_batches=1", "data.eval_batch_size=2",
                 "trainer.limit_test_batches=1", f"data.root={root}"]  # fmt: skip
    train(compose_train(TINY + overrides, tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data_source"] == f"72 images from {root.resolve()}"
    for split, rows in metrics["confusion"].items():
        for i, row in enumerate(rows):
            assert (metrics["per_class_acc"][split][CLASS_NAMES[i]] is None) == (sum(row) == 0), (split, i)
    assert sum(v is None for v in metrics["per_class_acc"]["test"].values()) >= 4
