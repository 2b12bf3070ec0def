"""The demo page, in process: gradio's client on loopback, and a headless-Chromium screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from handgestures.inference.demo import count_label, launch  # noqa: E402
from handgestures.inference.predictor import load_predictor  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parents[1] / "outputs" / "demo" / "demo-screenshot.png"


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    examples = tmp_path_factory.mktemp("examples")
    from handgestures.data.hands import generate_hands

    images, labels, _ = generate_hands(12, seed=9)
    for i in range(3):
        Image.fromarray(images[i, 0].numpy()).save(examples / f"real{i}_{int(labels[i])}L.png")
    (app, url, _), page = launch(str(tiny_run), examples=str(examples), prevent_thread_lock=True, quiet=True)
    yield url, examples
    page.close()


def test_demo_answers_like_the_model_and_shows_an_augmented_view(tiny_run, server):
    url, examples = server
    assert url.startswith("http://127.0.0.1:")  # loopback by default
    client = gradio_client.Client(url, verbose=False)
    file = sorted(examples.glob("*.png"))[0]
    plain, augmented_file, augmented, text = client.predict(gradio_client.handle_file(str(file)), api_name="/predict")
    pixels = np.asarray(Image.open(file), dtype=np.float32) / 255
    expected = load_predictor(tiny_run).probabilities(torch.from_numpy(pixels)[None, None])[0]
    shown = {c["label"]: c["confidence"] for c in plain["confidences"]}
    assert [shown[count_label(str(i))] for i in range(6)] == pytest.approx(expected.tolist(), abs=1e-6)
    assert plain["label"] == count_label(str(int(expected.argmax())))
    view = np.asarray(Image.open(augmented_file).convert("L"), dtype=np.float32) / 255
    assert view.shape == (128, 128) and np.abs(view - pixels).mean() > 0.01  # a different image
    assert sum(c["confidence"] for c in augmented["confidences"]) == pytest.approx(1.0, abs=1e-5)
    assert f"**{plain['label']}**" in text and "rotated" in text


def test_demo_page_screenshot_in_headless_chromium(server):
    if CHROMIUM is None:
        pytest.skip("Chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, examples = server
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--no-first-run"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="networkidle")
            page.locator("input[type=file]").first.set_input_files(str(sorted(examples.glob("*.png"))[0]))
            page.get_by_text("on it rotated", exact=False).wait_for(timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)  # the output images fade in
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            body = page.inner_text("body")
        finally:
            browser.close()
    assert "How many fingers?" in body and "prediction on the augmented image" in body
    assert Image.open(SCREENSHOT).size[0] == 1400
