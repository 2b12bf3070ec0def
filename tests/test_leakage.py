"""handgestures-leakage: the neighbour distances, the summary and its files."""

from __future__ import annotations

import json

import torch
from conftest import write_fingers_folder
from test_grouping import recordings

from handgestures.analysis.leakage import analyse, label_neighbour_distances, main
from handgestures.data.grouping import thumbnails


def test_label_neighbour_distances_match_brute_force():
    gen = torch.Generator().manual_seed(0)
    x, labels = torch.rand(50, 16, generator=gen) * 255, torch.randint(0, 3, (50,), generator=gen)
    same, other = label_neighbour_distances(x, labels, block=7)
    full = (torch.cdist(x.double(), x.double()) / 4).fill_diagonal_(float("inf"))
    match = labels[:, None] == labels[None]
    assert torch.allclose(same.double(), full.masked_fill(~match, float("inf")).min(1).values, atol=1e-2)
    assert torch.allclose(other.double(), full.masked_fill(match, float("inf")).min(1).values, atol=1e-2)


def test_recordings_are_found_and_the_grouped_split_removes_their_leak():
    data = recordings()
    summary, arrays = analyse(data, threshold=9.0, max_group=12)
    # consecutive frames (RMS 3 apart) are each other's same-label neighbours; other labels are far
    assert summary["nearest_same_label"]["q99"] < 9.0 < summary["nearest_other_label"]["min"]
    assert summary["nearest_same_label"]["below_threshold"] == 1.0
    assert summary["nearest_other_label"]["below_threshold"] == 0.0
    assert summary["groups_chained_without_cap"]["groups"] == len(data) // 12  # one per recording
    assert summary["groups_capped"]["largest"] == 12
    assert summary["splits"]["random"]["test"]["near_copy_in_train"] > 0.9
    assert summary["splits"]["grouped"]["test"]["near_copy_in_train"] == 0.0
    # 4 whole recordings of 12 per (class, hand): 2 / 1 / 1 is the only way to keep every split
    assert summary["splits"]["grouped"]["sizes"] == {"train": 288, "val": 144, "test": 144}
    assert len(arrays["same"]) == len(data)
    same = label_neighbour_distances(thumbnails(data.images), data.labels)[0]
    assert summary["nearest_same_label"]["q50"] == round(float(torch.quantile(same.double(), 0.5)), 3)


def test_main_writes_json_and_png(tmp_path, capsys):
    root = write_fingers_folder(tmp_path / "imgs", per_stratum=6)
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--threshold", "5", "--no-progress"]) == 0
    summary = json.loads((out / "leakage.json").read_text())
    assert summary["images"] == 72 and summary["threshold"] == 5.0 and summary["data"] == "imgs"
    # random noise images: nothing is a near-copy of anything
    assert summary["nearest_same_label"]["below_threshold"] == 0.0
    assert summary["groups_capped"]["groups"] == 72
    assert (out / "leakage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "threshold 5" in printed and "grouped split" in printed and "leakage.json" in printed


def test_main_reports_a_bad_folder(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "missing" in capsys.readouterr().err
    assert main([str(write_fingers_folder(tmp_path / "i", per_stratum=1)), "--thumbnail", "7", "--no-progress",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "thumbnail size 7 must divide" in capsys.readouterr().err
