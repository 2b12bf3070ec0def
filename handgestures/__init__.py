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

from pathlib import Path

__version__ = "0.1.0"

# The Hydra configs (conf/), beside the package in a source checkout, where the entry points run
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
