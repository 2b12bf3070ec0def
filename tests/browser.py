"""Pages in headless Chromium (playwright) for the tests that look at what a user sees.

Playwright drives the system's Chromium (Debian's ``chromium`` package), or its own where
``playwright install chromium`` put one; the tests download no browser. Without playwright
or a Chromium binary the tests that need them skip, saying which is missing: that is the CI
case, where no browser is installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

# no network, no GPU, no sandbox (tests may run as root in a container)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]  # fmt: skip
# a fake camera (a moving test pattern) that a page may use without asking
FAKE_CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def chromium_or_skip() -> str:
    """The Chromium binary's path (the system's, else playwright's own); else the test skips, saying why."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    try:
        with sync_api.sync_playwright() as p:
            bundled = Path(p.chromium.executable_path)
    except Exception:  # a driver that does not start: no browser either way
        bundled = Path()
    if bundled.is_file():
        return str(bundled)
    pytest.skip("no Chromium binary on PATH (apt-get install chromium) nor playwright's (playwright install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path, expect: bytes = b"", seconds: int = 120) -> None:
    """Returns once ``url`` answers with ``expect`` in its body; fails if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if expect in response.read():
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds} s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
