"""torch and torchvision must be one pair of builds: a mismatch stops the import with one sentence on what to reinstall.

The mismatches are simulated (monkeypatched versions, or stand-in torch/torchvision packages put
first on a subprocess's path), so the real environment is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

import handgestures


def test_the_installed_pair_passes_and_its_compiled_operators_load():
    handgestures.check_torch_pair()
    torchvision = handgestures.require_torchvision()
    assert torchvision.extension._has_ops()
    assert handgestures.installed_version("torchvision") == torchvision.__version__


PAIRS = [("2.14.1+cu130", "0.29.1+cu130"), ("2.2.0", "0.17.0"), ("2.14.1", "0.29.0"), ("2.8.0+cu126", "0.23.0+cu128"),
         ("2.14.1+cpu", "0.29.1"), ("3.0.0", "0.1.0")]  # fmt: skip


@pytest.mark.parametrize(("torch", "torchvision"), PAIRS)
def test_pairs_of_one_release_pass(torch, torchvision):
    handgestures.check_torch_pair(torch, torchvision)  # a patch or a CUDA minor apart, a build not named: not judged


def test_a_cpu_torch_with_a_cuda_torchvision_is_a_mismatch(monkeypatch):
    installed = {"torch": "2.13.0+cpu", "torchvision": "0.28.0+cu130"}  # torchvision from PyPI on a CPU-only torch
    monkeypatch.setattr(handgestures, "installed_version", installed.get)
    with pytest.raises(ImportError) as err:
        handgestures.check_torch_pair()
    assert str(err.value) == ("torch 2.13.0+cpu and torchvision 0.28.0+cu130 are builds that do not work together "
                              "(a CPU torch, a CUDA 13 torchvision); reinstall both from the same index: "
                              "pip install --force-reinstall torch==2.13.0 torchvision==0.28.0 "
                              "--index-url https://download.pytorch.org/whl/cpu")  # fmt: skip


def test_a_mismatched_pair_names_both_versions_and_the_command(monkeypatch):
    installed = {"torch": "2.14.1+cpu", "torchvision": "0.28.0"}
    monkeypatch.setattr(handgestures, "installed_version", installed.get)
    with pytest.raises(ImportError) as err:
        handgestures.check_torch_pair()
    message = str(err.value)
    assert message.startswith("torch 2.14.1+cpu and torchvision 0.28.0 are builds that do not work together")
    assert "torchvision 0.29 is the release for torch 2.14" in message and "\n" not in message
    assert message.endswith("pip install --force-reinstall torch==2.14.1 torchvision==0.29.1 "
                            "--index-url https://download.pytorch.org/whl/cpu")  # fmt: skip


def test_operators_that_do_not_load_are_a_mismatch(monkeypatch):
    torchvision = handgestures.require_torchvision()
    monkeypatch.setattr(torchvision.extension, "_has_ops", lambda: False)
    with pytest.raises(
        ImportError, match=r"^torch \S+ and torchvision \S+ are builds .*compiled operators do not load"
    ):
        handgestures.require_torchvision()


def stand_ins(folder: Path, torch: str, torchvision: str, imported: str = "") -> dict[str, str]:
    """An environment whose path starts with stand-in packages of these versions (``imported``: torchvision's body)."""
    for name, version in (("torch", torch), ("torchvision", torchvision)):
        (folder / name).mkdir(parents=True)
        (folder / name / "version.py").write_text(f"__version__ = '{version}'\n")
    (folder / "torch" / "__init__.py").write_text("raise RuntimeError('the stand-in torch was imported')\n")
    (folder / "torchvision" / "__init__.py").write_text(textwrap.dedent(imported))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


def test_importing_the_package_stops_at_a_mismatched_pair_without_importing_torch(tmp_path):
    env = stand_ins(tmp_path, "2.5.1", "0.29.1")
    done = subprocess.run([sys.executable, "-c", "import handgestures"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "stand-in torch was imported" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("ImportError: torch 2.5.1 and torchvision 0.29.1 are builds that do not work together "
                    "(torchvision 0.20 is the release for torch 2.5); reinstall both from the same index: "
                    "pip install --force-reinstall torch==2.5.1 torchvision==0.20.1")  # fmt: skip


def test_a_torchvision_that_fails_to_import_is_reported_as_the_pair(tmp_path):
    import torch

    real = (torch.__version__, handgestures.paired_torchvision(torch.__version__))
    env = stand_ins(
        tmp_path / "stand-ins", *real, imported="raise RuntimeError('operator torchvision::nms does not exist')"
    )
    (tmp_path / "stand-ins" / "torch").rename(tmp_path / "unused-torch")  # the real torch, with a broken torchvision
    done = subprocess.run([sys.executable, "-c", "import handgestures.data.augment"], env=env, capture_output=True,
                          text=True)  # fmt: skip
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith(f"ImportError: torch {real[0]} and torchvision {real[1]} are ")
    assert "(importing torchvision failed: RuntimeError: operator torchvision::nms does not exist)" in last
