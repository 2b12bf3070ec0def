"""The image cache can only help: refused when stale, and a broken cache folder never stops a run."""

import errno
import logging
import os
import subprocess
import sys

import pytest
import torch
from conftest import write_fingers_folder

from handgestures.data import cache, load_fingers_folder
from handgestures.data.sources import load_builtin_hands


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(cache, "_warned", set())


def test_cache_folder_that_cannot_be_created_warns_once_and_the_run_goes_on(tmp_path, caplog):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    caplog.set_level(logging.WARNING)
    first = load_fingers_folder(root, cache_dir=blocker / "cache")
    second = load_fingers_folder(root, cache_dir=blocker / "cache")
    assert len(first) == 12 and torch.equal(first.images, second.images)
    warnings = [r for r in caplog.records if "cannot write the image cache" in r.getMessage()]
    assert len(warnings) == 1 and "goes on uncached" in warnings[0].getMessage()


def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch, caplog):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as out:
            out.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    data = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert len(data) == 12 and "No space left on device" in caplog.text
    assert list((tmp_path / "cache").iterdir()) == []  # neither an entry nor a temporary file
    monkeypatch.setattr(torch, "save", real_save)


def test_temporary_files_of_dead_processes_are_removed(tmp_path):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    (tmp_path / "cache").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "cache" / f".fingers-x.pt.{int(dead.stdout)}.tmp"
    stale.write_bytes(b"half an entry")
    alive = tmp_path / "cache" / f".fingers-y.pt.{os.getpid()}.tmp"  # a run writing right now
    alive.write_bytes(b"being written")
    load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert not stale.exists() and alive.exists()
    stale.write_bytes(b"left by a run killed after the entry was written")
    load_fingers_folder(root, cache_dir=tmp_path / "cache")  # a cache hit tidies up too
    assert not stale.exists() and alive.exists()


def test_entry_made_from_other_files_is_refused(tmp_path, caplog):
    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    first = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("fingers-*.pt")
    blob = torch.load(entry, weights_only=True)
    blob["files"][0] = "someone_else_0L.png\x001\x00beef"
    blob["images"] = torch.zeros_like(blob["images"])  # what a stale entry would serve
    torch.save(blob, entry)
    again = load_fingers_folder(root, cache_dir=tmp_path / "cache")
    assert "made from other files" in caplog.text and torch.equal(again.images, first.images)


def test_old_entries_are_pruned_past_the_size_limit(tmp_path):
    store = tmp_path / "cache"
    entries = []
    for i in range(3):
        before = set(store.glob("fingers-*.pt"))
        load_fingers_folder(write_fingers_folder(tmp_path / f"f{i}", per_stratum=1, seed=i), cache_dir=store)
        (entry,) = set(store.glob("fingers-*.pt")) - before
        os.utime(entry, (1e9 + i, 1e9 + i))  # entry i last used at time i: 0 is the oldest
        entries.append(entry)
    foreign = store / "notes.pt"
    foreign.write_bytes(b"x" * entries[0].stat().st_size)  # not an entry: never pruned
    limit_gb = 2.5 * entries[0].stat().st_size / 1e9  # room for two entries
    load_fingers_folder(tmp_path / "f0", cache_dir=store, cache_max_gb=limit_gb)  # a hit: 0 is now the newest
    load_fingers_folder(
        write_fingers_folder(tmp_path / "f3", per_stratum=1, seed=3), cache_dir=store, cache_max_gb=limit_gb
    )
    kept = set(store.glob("fingers-*.pt"))
    assert entries[0] in kept and entries[1] not in kept and entries[2] not in kept and len(kept) == 2
    assert foreign.exists()


def test_zero_size_limit_caches_nothing(tmp_path):
    data = load_builtin_hands(72, seed=0, cache_dir=tmp_path / "cache", cache_max_gb=0)
    assert len(data) == 72 and data.source == "built-in hands: 72, seed 0"
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.pt"))


def test_a_line_is_logged_before_each_slow_step_of_loading_a_folder(tmp_path, monkeypatch, caplog):
    """Reading every file, decoding, reading the cache: each can take seconds, and each is announced first."""
    from handgestures.data import fingers

    root = write_fingers_folder(tmp_path / "f", per_stratum=1)
    caplog.set_level(logging.INFO, logger="handgestures")
    before: dict[str, str] = {}  # step -> the last line logged when it started

    def announced(step, real):
        def wrapper(*args, **kwargs):
            before[step] = caplog.records[-1].getMessage() if caplog.records else ""
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(fingers, "scan_folder", announced("scan", fingers.scan_folder))
    monkeypatch.setattr(fingers, "decode_all", announced("decode", fingers.decode_all))
    monkeypatch.setattr(torch, "load", announced("cache", torch.load))
    load_fingers_folder(root, cache_dir=tmp_path / "cache")  # the first time: every file decoded
    assert before["scan"] == f"reading the PNG files under {root.resolve()} (names and content digests: " \
        "what the image cache is keyed on) ..."  # fmt: skip
    assert before["decode"] == f"decoding 12 images of {root.resolve()} (once: they are cached for later runs) ..."
    assert "cache" not in before
    load_fingers_folder(root, cache_dir=tmp_path / "cache")  # then from the cache
    line = before["cache"]
    assert line.startswith(f"reading the image cache {tmp_path / 'cache'}") and line.endswith(" MB) ..."), line
