"""handgestures: a PyTorch Lightning reimplementation of the CarlosNet / IvanNet finger-counting study.

The package, by concern (each subpackage's docstring says what it owns and what it may import):

* :mod:`handgestures.data`: images (Fingers folders, built-in hands), splits, augmentation, the DataModule;
* :mod:`handgestures.models`: the two networks, and building one from its spec;
* :mod:`handgestures.runfolder`: a run's folder: its record, lock and signals, resume, checkpoints, model card;
* :mod:`handgestures.training`: one training run, ``train(cfg)``, and what it is made of;
* :mod:`handgestures.inference`: a trained model: predict, evaluate, export, demo;
* :mod:`handgestures.analysis`: finished runs: the study's tables, statistics, report, leakage, baselines;
* :mod:`handgestures.launch`: processes: the command-line entry, one process's job, DDP, threads, sweeps, search;
* shared leaves: :mod:`~handgestures.errors`, :mod:`~handgestures.runtime`, :mod:`~handgestures.plots`.

Imports point down this list's layers: data and models import only the leaves; runfolder adds
models; training adds data and runfolder; inference and analysis add training; launch may
import anything. ``tests/test_structure.py`` fails on any import cycle.
"""

import re
import sys
from importlib.util import find_spec
from pathlib import Path

__version__ = "0.1.0"

# The Hydra configs (conf/), beside the package in a source checkout, where the entry points run
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# ---- torch and torchvision: one pair of builds ------------------------------------------------
# A torchvision release is built against one torch release, 0.(N + 15) against 2.N (0.17 with
# 2.2, ..., 0.29 with 2.14), and against one build of it (CPU, a CUDA major, ROCm: the +cpu,
# +cu130 of their versions). Another pair fails late and obscurely ("operator torchvision::nms
# does not exist" when Lightning's metrics import torchvision), so both are compared when the
# package is imported, from the packages' version.py files, without importing torch (seconds).
# Where the package first imports torchvision itself, its compiled operators must have loaded
# too (:func:`require_torchvision`).
TORCHVISION_MINOR_OFFSET = 15
VERSION_LINE = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.M)


def installed_version(package: str) -> str | None:
    """``package.__version__`` read from its ``version.py`` without importing it; None where not found."""
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec and spec.submodule_search_locations) or []:
        try:
            found = VERSION_LINE.search((Path(folder) / "version.py").read_text())
        except OSError:
            continue
        if found:
            return found.group(1)
    return None


def paired_torchvision(torch_version: str) -> str | None:
    """The torchvision release built against ``torch_version`` (2.N.P: 0.(N + 15).P); None outside torch 2."""
    found = re.match(r"2\.(\d+)\.(\d+)", torch_version)
    return f"0.{int(found.group(1)) + TORCHVISION_MINOR_OFFSET}.{found.group(2)}" if found else None


def build_family(version: str) -> str | None:
    """The build a ``+local`` version names: "CPU", "CUDA 13" (cu130), "ROCm 6" (rocm6.2); None if it names none."""
    tag = version.partition("+")[2]
    if tag == "cpu":
        return "CPU"
    found = re.fullmatch(r"cu(\d+)\d|rocm(\d+)(\.\d+)*", tag)
    return None if not found else f"CUDA {found.group(1)}" if found.group(1) else f"ROCm {found.group(2)}"


def torch_pair_error(torch_version: str, torchvision_version: str, why: str) -> ImportError:
    """One sentence: both versions, why they fail together, and the command that installs a working pair."""
    public, _, build = torch_version.partition("+")
    paired = paired_torchvision(public)
    pin = f"=={paired}" if paired else ""
    index = f" --index-url https://download.pytorch.org/whl/{build}" if build else ""  # torch's own build
    return ImportError(f"torch {torch_version} and torchvision {torchvision_version} are builds that do not work "
                       f"together ({why}); reinstall both from the same index: "
                       f"pip install --force-reinstall torch=={public} torchvision{pin}{index}")  # fmt: skip


def check_torch_pair(torch_version: str | None = None, torchvision_version: str | None = None) -> None:
    """Raises :func:`torch_pair_error` unless torchvision is the release and build for torch's (default: installed)."""
    torch_version = torch_version or installed_version("torch")
    torchvision_version = torchvision_version or installed_version("torchvision")
    if not (torch_version and torchvision_version and (paired := paired_torchvision(torch_version))):
        return  # one is missing (its own import says so), or a torch outside the rule
    release, expected = torchvision_version.split(".")[:2], paired.split(".")[:2]
    if release != expected:
        why = f"torchvision {'.'.join(expected)} is the release for torch {'.'.join(torch_version.split('.')[:2])}"
        raise torch_pair_error(torch_version, torchvision_version, why)
    builds = build_family(torch_version), build_family(torchvision_version)
    if None not in builds and builds[0] != builds[1]:
        raise torch_pair_error(torch_version, torchvision_version, f"a {builds[0]} torch, a {builds[1]} torchvision")


def require_torchvision():
    """torchvision, imported, once its compiled operators have loaded into torch; else a :func:`torch_pair_error`."""
    import torch  # not when the package is imported: only where torchvision is needed

    try:
        import torchvision  # (as above)
    except ModuleNotFoundError:
        raise  # not installed: Python's own message names it
    except (ImportError, OSError, RuntimeError) as err:  # e.g. torchvision's own check of the CUDA versions
        why = f"importing torchvision failed: {type(err).__name__}: {err}"
        raise torch_pair_error(torch.__version__, installed_version("torchvision") or "?", why) from err
    if not torchvision.extension._has_ops():
        why = "torchvision's compiled operators do not load"
        raise torch_pair_error(torch.__version__, torchvision.__version__, why)
    return torchvision


def say_loading(command: str, what: str = "PyTorch") -> bool:
    """``COMMAND: loading WHAT (a few seconds) ...`` on stderr, where importing torch is still to come.

    Importing torch (2 s) and Lightning (2 s more) takes longer on a busy machine, and a command
    that prints nothing for that long looks hung; the entry points say so first. Nothing when
    torch is imported already (a command run from Python). Returns whether the line was printed.
    """
    if "torch" in sys.modules:
        return False
    print(f"{command}: loading {what} (a few seconds) ...", file=sys.stderr, flush=True)
    return True


check_torch_pair()
