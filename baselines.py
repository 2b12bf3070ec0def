"""Reference baselines beside the networks: `python baselines.py data.root=... data.split=grouped`.

Writes one run folder per baseline (metrics.json as a trained run's, config.yaml, split.csv)
under the Hydra run folder; see conf/baselines.yaml and handgestures.baselines.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from handgestures.baselines import run_baselines


@hydra.main(version_base="1.3", config_path="conf", config_name="baselines")
def main(cfg: DictConfig) -> None:
    run_baselines(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
