"""TensorBoard as a user sees it: the event files' layout, and `tensorboard --logdir` in headless Chromium.

The screenshots are kept in outputs/tensorboard-screenshots/ (timeseries.png, scalars.png,
images.png, hparams.png) for people to look at; the tests check what the pages show.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM_FLAGS, free_port, stop, wait_until_serving
from helpers import ROOT, TINY, compose_train
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handgestures.training.tb_layout import AUGMENTATION_TAG, CONFUSION_TAG, CURVE_TAGS, FINAL_TAGS
from handgestures.training.train import train

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
SCREENSHOTS = ROOT / "outputs" / "tensorboard-screenshots"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "carlosnet-augmented-seed0"
    overrides = [*TINY, "data=augmented", "epochs=3", "trainer.limit_train_batches=2", "trainer.limit_test_batches=1"]
    train(compose_train(overrides, out))
    return out


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_curves_are_one_chart_per_metric_with_a_run_per_split(run_dir):
    tb = run_dir / "tensorboard"
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    sets = {key.split("/")[0] for key in saved}
    assert {"test", "test_aug", "train", "val"} <= sets
    assert sorted(p.name for p in tb.iterdir() if p.is_dir()) == sorted(sets)  # a sub-run per set
    for name in sets:
        acc = events(tb / name)
        curves = sorted(CURVE_TAGS.values()) if name in ("train", "val") else []
        health = [t for t in acc.Tags()["scalars"] if t.startswith("health/")]  # TrainingHealth: train sub-run
        assert ("health/dead/conv1" in health) == (name == "train") and (name == "train" or not health), name
        assert sorted(set(acc.Tags()["scalars"]) - set(health)) == sorted([*curves, *FINAL_TAGS.values()]), name
        for tag in curves:
            assert [e.step for e in acc.Scalars(tag)] == [1, 2, 3]
        for metric, tag in FINAL_TAGS.items():  # one point, at the last epoch, the saved value
            assert [(e.step, pytest.approx(e.value, abs=1e-6)) for e in acc.Scalars(tag)] == \
                [(3, saved[f"{name}/{metric}"])], (name, tag)  # fmt: skip
        assert not acc.Tags()["images"]
    main = events(tb)
    assert main.Tags()["scalars"] == []  # no single-point charts of its own
    assert min(CURVE_TAGS.values()) < min(FINAL_TAGS.values())  # the curves' group sorts first
    assert set(main.Tags()["images"]) == {AUGMENTATION_TAG, CONFUSION_TAG}
    assert all(min(CURVE_TAGS.values()) < t for t in main.Tags()["images"])


@pytest.fixture(scope="module")
def tensorboard_url(run_dir, chromium, tmp_path_factory):
    port = free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir.parent), "--host", "127.0.0.1",
           "--port", str(port), "--load_fast", "false"]  # fmt: skip
    log = tmp_path_factory.mktemp("tensorboard") / "tensorboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url + "data/runs", proc, log, expect=b"train")
        yield url
    finally:
        stop(proc)


def open_tab(page, url: str, tab: str, *texts: str) -> None:
    """Opens ``tab`` and waits until each of ``texts`` is visible (shadow DOM included)."""
    page.goto(f"{url}#{tab}")
    for text in texts:
        page.locator(f"text={text} >> visible=true").first.wait_for(timeout=90_000)
    time.sleep(2)  # let the charts finish drawing before the screenshot


def top(page, text: str) -> float:
    return page.locator(f"text={text} >> visible=true").first.bounding_box()["y"]


@pytest.fixture(scope="module")
def page(tensorboard_url, chromium):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def test_time_series_opens_on_train_and_val_overlaid(page, tensorboard_url):
    open_tab(page, tensorboard_url, "timeseries", "curves/accuracy", "final/accuracy")
    page.screenshot(path=str(SCREENSHOTS / "timeseries.png"))
    assert top(page, "curves/accuracy") < top(page, "final/accuracy")  # the curves come first
    assert page.locator("text=hp/ >> visible=true").count() == 0
    text = re.sub(r"\s*/\s*", "/", page.inner_text("body"))
    chart = text[text.index("curves/accuracy") : text.index("curves/loss")]
    # the accuracy chart's legend: one line per split run
    assert "tensorboard/train" in chart and "tensorboard/val" in chart, chart


def test_scalars_opens_on_the_learning_curves(page, tensorboard_url):
    open_tab(page, tensorboard_url, "scalars", "tag: curves/accuracy", "tag: final/accuracy")
    page.screenshot(path=str(SCREENSHOTS / "scalars.png"))
    assert top(page, "tag: curves/accuracy") == top(page, "tag: curves/loss") < top(page, "tag: final/accuracy")


def test_augmentation_grid_says_which_column_is_the_original(page, tensorboard_url):
    open_tab(page, tensorboard_url, "images", "samples/augmentation", "results/confusion_test")
    page.screenshot(path=str(SCREENSHOTS / "images.png"), full_page=True)


def test_hparams_tab_holds_the_final_metrics(page, tensorboard_url, run_dir):
    open_tab(page, tensorboard_url, "hparams", "test_aug accuracy")
    page.screenshot(path=str(SCREENSHOTS / "hparams.png"))
    body = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": [], "startIndex": 0,
            "sliceSize": 10}  # fmt: skip
    request = urllib.request.Request(
        tensorboard_url + "data/plugin/hparams/session_groups",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    groups = json.loads(urllib.request.urlopen(request, timeout=30).read())["sessionGroups"]
    assert [g["name"] for g in groups] == [f"{run_dir.name}/tensorboard"]  # one row per run, not per split
    values = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in groups[0]["metricValues"]}
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    expected = {(k.split("/")[0], FINAL_TAGS[k.split("/")[1]]): v for k, v in saved.items()}
    assert values == pytest.approx(expected, abs=1e-6)
    assert groups[0]["hparams"]["model"] == "carlosnet" and groups[0]["hparams"]["data"] == "augmented"
