"""The demo as a user meets it: `handgestures-demo` started as a command, its page in headless Chromium.

A hand photo uploaded through the page's file input, and a frame from Chromium's fake camera
taken with the page's webcam source, each get the count the model gives that same image when
called directly. Skips without playwright or a Chromium binary (tests/browser.py). The upload's
screenshot is kept in outputs/demo/demo-screenshot.png for people to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from browser import CHROMIUM_FLAGS, FAKE_CAMERA_FLAGS, free_port, stop, wait_until_serving
from helpers import ROOT
from PIL import Image

pytest.importorskip("gradio")

from handgestures.inference.demo import count_label  # noqa: E402
from handgestures.inference.predictor import load_predictor  # noqa: E402
from handgestures.inference.preprocess import decode, to_tensor  # noqa: E402

SCREENSHOT = ROOT / "outputs" / "demo" / "demo-screenshot.png"
ANSWERED = "on it rotated"  # in the summary line, once the page has both predictions


def demo_command() -> list[str]:
    """``handgestures-demo`` as installed beside this interpreter; the same entry through ``-m`` otherwise."""
    script = Path(sys.executable).with_name("handgestures-demo")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "handgestures.launch.main", "demo"]


@pytest.fixture(scope="module")
def demo_url(chromium, tiny_run, tmp_path_factory):
    """The demo of the tiny run, served by its command on a free loopback port."""
    folder = tmp_path_factory.mktemp("demo-command")
    port = free_port()
    log = folder / "demo.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with log.open("w") as out:
        proc = subprocess.Popen([*demo_command(), f"ckpt={tiny_run}", f"port={port}"], cwd=folder, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, proc, log, expect=b"gradio")
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS + FAKE_CAMERA_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, demo_url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(demo_url, wait_until="networkidle")
    yield page
    context.close()


def shown(page) -> tuple[str, dict[str, float]]:
    """The page's predicted count (the prediction's heading) and its six probabilities (the bars' values)."""
    page.get_by_text(ANSWERED, exact=False).wait_for(timeout=120_000)
    block = page.locator("#prediction")
    heading = block.get_by_test_id("label-output-value").inner_text().strip()
    bars = block.locator("meter").all()
    return heading, {bar.get_attribute("aria-label"): float(bar.get_attribute("value")) for bar in bars}


def direct(run: Path, file: Path) -> torch.Tensor:
    """The six probabilities the model gives ``file`` called directly, read as the demo reads files."""
    decoded = decode(str(file))
    assert decoded.error is None, decoded.error
    return load_predictor(run).probabilities(to_tensor([decoded.pixels]))[0]


def assert_page_agrees(page, run: Path, file: Path) -> str:
    """The page shows the count and the six probabilities that the model gives ``file`` directly."""
    heading, probabilities = shown(page)
    expected = direct(run, file)
    assert heading == count_label(str(int(expected.argmax()))), (heading, expected.tolist())
    assert probabilities == pytest.approx({count_label(str(i)): p for i, p in enumerate(expected.tolist())}, abs=1e-6)
    return heading


@pytest.fixture(params=["built-in", "fingers"])
def hand_png(request, tmp_path) -> Path:
    """A 128x128 grayscale PNG of a hand: a built-in hand written as the Fingers dataset's, or a real one."""
    if request.param == "fingers":
        return sorted(request.getfixturevalue("real_data").glob("*.png"))[0]
    from handgestures.data.hands import generate_hands

    images, labels, hands = generate_hands(12, seed=11)
    path = tmp_path / f"0000builtin_{int(labels[3])}{'LR'[int(hands[3])]}.png"
    Image.fromarray(images[3, 0].numpy()).save(path)
    return path


def test_uploaded_png_gets_the_models_count_on_the_page(page, tiny_run, hand_png):
    with Image.open(hand_png) as img:
        assert (img.mode, img.size) == ("L", (128, 128))  # the Fingers dataset's format
    page.locator("input[type=file]").first.set_input_files(str(hand_png))
    heading = assert_page_agrees(page, tiny_run, hand_png)
    body = page.inner_text("body")
    assert "How many fingers?" in body and "prediction on the augmented image" in body
    assert f"{heading} (p = " in body and "resized" not in body  # 128x128: used as it is
    if "builtin" in hand_png.name:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1500)  # the output images fade in
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert Image.open(SCREENSHOT).size[0] == 1400


def test_webcam_frame_gets_the_models_count_on_the_page(page, tiny_run, tmp_path):
    page.get_by_label("Capture from camera").click()
    page.get_by_text("Click to Access Webcam").click()
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.videoWidth > 0 "
                           "&& v.readyState >= 2; }", timeout=60_000)  # fmt: skip
    page.get_by_label("capture photo").click()
    page.get_by_text(ANSWERED, exact=False).wait_for(timeout=120_000)
    # the frame the page sent, fetched back from the server as the browser shows it
    src = page.locator("#hand-image img").first.get_attribute("src")
    frame = tmp_path / "frame.png"
    frame.write_bytes(page.request.get(src).body())
    with Image.open(frame) as img:
        assert img.mode in ("RGB", "RGBA") and img.size[0] > 128  # a camera's frame, not one of the examples
    assert_page_agrees(page, tiny_run, frame)
    assert f"resized from {img.size[0]}x{img.size[1]} to 128x128" in page.inner_text("body")
