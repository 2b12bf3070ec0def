"""Shared fixtures: PNG folders the tests write, the real data when present, tiny configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# scripts the tests run as subprocesses, not test modules (--doctest-modules would import them)
collect_ignore = ["kill_driver.py"]

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fingers" / "train"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets a cache folder of its own session, never the user's ~/.cache."""
    monkeypatch.setenv("HANDGESTURES_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium that playwright drives for the browser tests; they skip without one (tests/browser.py)."""
    from browser import chromium_or_skip

    return chromium_or_skip()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA.is_dir() and any(REAL_DATA.iterdir())):
        pytest.skip(f"real Fingers images not found at {REAL_DATA}")
    return REAL_DATA


def write_fingers_folder(root: Path, per_stratum: int = 12, size: int = 128, seed: int = 0, subdirs=("",)) -> Path:
    """PNGs named like the Fingers dataset, ``per_stratum`` per (fingers, hand), pixel 0 = label*40 + hand."""
    rng = np.random.default_rng(seed)
    for i in range(per_stratum):
        for fingers in range(6):
            for hand in "LR":
                img = rng.integers(0, 256, (size, size), dtype=np.uint8)
                img[0, 0] = fingers * 40 + (hand == "R")
                folder = root / subdirs[i % len(subdirs)]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(folder / f"{i:04d}s{seed}_{fingers}{hand}.png")
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder of train.py on 240 built-in hands (1 epoch, 3 batches), trained once per session."""
    from helpers import TINY, compose_train

    from handgestures.training.train import train

    out = tmp_path_factory.mktemp("tiny-run")
    cache = tmp_path_factory.getbasetemp() / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANDGESTURES_CACHE", str(cache))
        train(compose_train([*TINY, "epochs=1", "trainer.limit_train_batches=3", "logger=none"], out))
    return out
