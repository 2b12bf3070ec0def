"""Composing the project's Hydra config in tests, as `python train.py ...` would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

TINY = [
    "data.builtin_size=240",
    "data.eval_batch_size=64",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_train(overrides: list[str], out_dir: Path | None = None) -> DictConfig:
    """The train config with ``overrides``, its output folder set to ``out_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=out_dir is not None)
    if out_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)
            del cfg["hydra"]
    return cfg
