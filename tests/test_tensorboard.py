"""TensorBoard as a user sees it: the event files' layout, and `tensorboard --logdir` in headless Chromium.

The screenshots are kept in outputs/tensorboard-screenshots/ (timeseries.png, scalars.png,
custom_scalars.png, images.png, hparams.png) for people to look at; the tests check what the
pages show. Two runs share the log folder, as a sweep's do, so that the pages show how runs are
told apart.
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
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

from handgestures.training.tb_layout import AUGMENTATION_TAG, CONFUSION_TAG, LAYOUT, SPLITS, curve_tag, final_tag
from handgestures.training.train import train

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
SCREENSHOTS = ROOT / "outputs" / "tensorboard-screenshots"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Two runs under one folder, as `tensorboard --logdir outputs` finds a sweep's: the second is short."""
    parent = tmp_path_factory.mktemp("tb")
    longer = [*TINY, "data=augmented", "epochs=3", "trainer.limit_train_batches=2", "trainer.limit_test_batches=1"]
    shorter = [*TINY, "seed=1", "epochs=1", "trainer.limit_train_batches=1", "trainer.limit_test_batches=1"]
    folders = [parent / "carlosnet-augmented-seed0", parent / "carlosnet-base-seed1"]
    for overrides, out in zip((longer, shorter), folders, strict=True):
        train(compose_train(overrides, out))
    return folders


@pytest.fixture(scope="module")
def run_dir(runs) -> Path:
    return runs[0]


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_a_run_is_one_tensorboard_run_named_after_its_folder(runs):
    """TensorBoard names a run by its folder under --logdir: one short name per run, the runs' folders first."""
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(runs[0].parent))
    multiplexer.Reload()
    names = sorted(multiplexer.Runs())
    assert names == [f"{folder.name}/tensorboard" for folder in runs]  # no sub-run per split or set
    assert len({name.split("/")[0] for name in names}) == len(runs)  # told apart by their first word
    for name, folder in zip(names, runs, strict=True):
        assert len(name) == len(folder.name) + len("/tensorboard")
        assert "curves/accuracy/train" in multiplexer.GetAccumulator(name).Tags()["tensors"], name


def test_curves_and_final_metrics_carry_the_split_in_the_tag(run_dir):
    tb = run_dir / "tensorboard"
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    sets = {key.split("/")[0] for key in saved}
    assert {"test", "test_aug", "train", "val"} <= sets
    assert not [p for p in tb.iterdir() if p.is_dir()]  # one event folder: no sub-runs
    acc = events(tb)
    scalars = acc.Tags()["scalars"]
    health = [t for t in scalars if t.startswith("health/")]  # TrainingHealth
    assert "health/dead/conv1" in health
    curves = [curve_tag(split, metric) for split in SPLITS for metric in ("acc", "loss")]
    finals = [final_tag(name, metric) for name in sets for metric in ("acc", "loss")]
    assert sorted(set(scalars) - set(health)) == sorted([*curves, *finals])
    for tag in curves:
        assert [e.step for e in acc.Scalars(tag)] == [1, 2, 3]
    for key, value in saved.items():  # one point, at the last epoch, the saved value
        tag = final_tag(*key.split("/"))
        assert [(e.step, pytest.approx(e.value, abs=1e-6)) for e in acc.Scalars(tag)] == [(3, value)], tag
    assert max(curves) < min(finals) < min(health)  # the curves' group sorts first
    assert set(acc.Tags()["images"]) == {AUGMENTATION_TAG, CONFUSION_TAG}
    assert all(max(curves) < t for t in acc.Tags()["images"])


def test_custom_scalars_overlay_train_and_val_of_each_metric(run_dir):
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    acc = events(run_dir / "tensorboard")
    (layout_event,) = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(layout_event.tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}
    assert list(charts) == [title for category in LAYOUT.values() for title in category]
    scalars = acc.Tags()["scalars"]
    for title, patterns in charts.items():  # each chart draws the train and the val curve of one metric
        drawn = sorted(t for t in scalars if any(re.search(p, t) for p in patterns))
        metric = title.split()[0]
        assert drawn == [f"curves/{metric}/train", f"curves/{metric}/val"], title


@pytest.fixture(scope="module")
def tensorboard_url(runs, chromium, tmp_path_factory):
    port = free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(runs[0].parent), "--host", "127.0.0.1",
           "--port", str(port), "--load_fast", "false"]  # fmt: skip
    log = tmp_path_factory.mktemp("tensorboard") / "tensorboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}/"
    try:
        for folder in runs:  # both runs listed
            wait_until_serving(url + "data/runs", proc, log, expect=folder.name.encode())
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


def test_time_series_opens_on_the_learning_curves_a_line_per_run(page, tensorboard_url, runs):
    open_tab(page, tensorboard_url, "timeseries", "curves/accuracy/train", "final/accuracy/test")
    page.screenshot(path=str(SCREENSHOTS / "timeseries.png"))
    assert top(page, "curves/accuracy/train") < top(page, "final/accuracy/test")  # the curves come first
    assert page.locator("text=hp/ >> visible=true").count() == 0
    text = re.sub(r"\s*/\s*", "/", page.inner_text("body"))
    chart = text[text.index("curves/accuracy/train") : text.index("curves/accuracy/val")]
    for folder in runs:  # the chart's data table: a row per run, named after the run's folder
        assert chart.count(f"{folder.name}/tensorboard") == 1, chart
    assert "tensorboard/train" not in text and "tensorboard/val" not in text  # no sub-runs


def test_scalars_opens_on_the_learning_curves(page, tensorboard_url):
    open_tab(page, tensorboard_url, "scalars", "tag: curves/accuracy/train", "tag: final/accuracy/test")
    page.screenshot(path=str(SCREENSHOTS / "scalars.png"))
    assert top(page, "tag: curves/accuracy/train") < top(page, "tag: final/accuracy/test")


def test_custom_scalars_overlay_train_and_val(page, tensorboard_url):
    charts = [title for category in LAYOUT.values() for title in category]
    open_tab(page, tensorboard_url, "custom_scalars", *charts)
    page.screenshot(path=str(SCREENSHOTS / "custom_scalars.png"))


def test_augmentation_grid_says_which_column_is_the_original(page, tensorboard_url):
    open_tab(page, tensorboard_url, "images", "samples/augmentation", "results/confusion_test")
    page.screenshot(path=str(SCREENSHOTS / "images.png"), full_page=True)


def test_hparams_tab_holds_the_final_metrics(page, tensorboard_url, runs):
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
    groups = {g["name"]: g for g in groups}
    assert sorted(groups) == [f"{folder.name}/tensorboard" for folder in runs]  # one row per run
    for folder in runs:
        group = groups[f"{folder.name}/tensorboard"]
        values = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        saved = json.loads((folder / "metrics.json").read_text())["metrics"]
        assert values == pytest.approx({("", final_tag(*k.split("/"))): v for k, v in saved.items()}, abs=1e-6)
        model, data, _ = folder.name.split("-")
        assert group["hparams"]["model"] == model and group["hparams"]["data"] == data
