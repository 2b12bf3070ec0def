"""`python export.py ...`: see conf/export.yaml and handgestures.inference.cli.run_export."""

import hydra
from omegaconf import DictConfig

from handgestures.inference.cli import run_export


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    code = run_export(cfg)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
